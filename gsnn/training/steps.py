"""The pure, jitted training and evaluation steps, the loss, and the train state.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gsnn import configs as C
from gsnn import data as D
from gsnn.nn import networks as M
from gsnn.training.optim import make_optimizer


class NonFiniteError(FloatingPointError):
    """The training loss, or the logits of an evaluation, became NaN or Inf."""


class TrainState(NamedTuple):
    """Everything that changes during training (a pytree; checkpointed whole).

    Attributes:
      step: ``int32 []`` optimiser steps taken.
      params: trainable parameters.
      batch_stats: BN running statistics.
      opt_state: optax state.
      lr_factor: ``float32 []`` multiplier of the schedule (lowered by ``nan_policy=skip``).
    """

    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    lr_factor: jax.Array


def weight_penalty(weight_sq, weight_decay: float) -> jax.Array:
    """``lambda/2 * sum ||W||_F^2`` over the generated weights sown in ``weight_sq``
    (``train.weight_decay_on=weights``)."""
    return 0.5 * weight_decay * sum(jax.tree_util.tree_leaves(weight_sq), jnp.zeros(()))


def cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: float = 0.0) -> jax.Array:
    """Mean softmax cross-entropy of ``[B, K]`` logits against int labels ``[B]``."""
    k = logits.shape[-1]
    onehot = jax.nn.one_hot(labels, k)
    if smoothing:
        onehot = onehot * (1 - smoothing) + smoothing / k
    return optax.softmax_cross_entropy(logits, onehot).mean()


@dataclasses.dataclass(frozen=True)
class Steps:
    """The jitted step functions of one experiment (closures over static settings)."""

    init: Callable  # key -> TrainState
    train_step: Callable  # (state, images_u8, labels, key) -> (state, metrics)
    eval_step: Callable  # (params, batch_stats, images_u8, labels) -> metrics (sums and counts)
    model: M.SpikingNetwork
    tx: optax.GradientTransformation
    pure_train_step: Callable  # the same, not jitted (to vmap/scan inside other functions)
    pure_eval_step: Callable
    state_from_variables: Callable  # {'params', 'batch_stats'} -> fresh TrainState


def default_init_fn(model: M.SpikingNetwork, input_shape) -> Callable:
    """``key -> {'params', 'batch_stats'}``: the model's ordinary random initialisation."""
    return lambda key: M.init_variables(model, key, input_shape)


def make_train_step(model: M.SpikingNetwork, tx: optax.GradientTransformation, *, mean, std, augment: bool,
                    crop_padding: int = 4, label_smoothing: float = 0.0, generated_weight_decay: float = 0.0,
                    nan_policy: str = "stop") -> Callable:
    """The pure training step ``(state, images_u8, labels, key) -> (state, metrics)``.

    Args:
      model: the network.
      tx: its optimiser (:func:`gsnn.training.optim.make_tx`).
      mean, std: per-channel normalisation of uint8 images, ``[C]``.
      augment: random crop (``crop_padding`` pixels of zero padding) and horizontal flip.
      label_smoothing: of the cross-entropy targets.
      generated_weight_decay: ``lambda`` of ``lambda/2 * sum ||W||^2`` over the weights the
        layers generate, through the loss (``train.weight_decay_on=weights``); 0: none.
      nan_policy: ``"stop"`` (apply every update; the loop stops on a non-finite loss)
        or ``"skip"`` (a step with a non-finite loss or gradient keeps the old state and
        halves ``lr_factor``).

    ``metrics``: ``loss`` (cross-entropy alone), ``accuracy``, ``finite``, ``grad_norm``,
    ``param_norm`` (before the step), ``firing_rates``.
    """
    if nan_policy not in ("stop", "skip"):
        raise ValueError(f"nan_policy must be 'stop' or 'skip', got {nan_policy!r}")
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    decay_weights = generated_weight_decay > 0
    mutable = ["batch_stats", "stats"] + (["weight_sq"] if decay_weights else [])

    def forward(params, batch_stats, images, k_coding):
        return model.apply({"params": params, "batch_stats": batch_stats}, images, train=True,
                           mutable=mutable, rngs={"coding": k_coding})

    def loss_fn(params, batch_stats, images, labels, key):
        """The objective; its aux reports the cross-entropy alone."""
        k_coding, _ = jax.random.split(key)
        logits, updates = forward(params, batch_stats, images, k_coding)
        loss = cross_entropy(logits, labels, label_smoothing)
        objective = loss + weight_penalty(updates["weight_sq"], generated_weight_decay) if decay_weights else loss
        return objective, (loss, logits, updates)

    def train_step(state: TrainState, images_u8, labels, key):
        k_aug, k_model = jax.random.split(key)
        images = D.normalize(images_u8, mean, std)
        if augment:
            images = D.random_crop_flip(k_aug, images, crop_padding)
        (_, (loss, logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.batch_stats, images, labels, k_model
        )
        upd, opt_state = tx.update(grads, state.opt_state, state.params)
        upd = jax.tree_util.tree_map(lambda u: u * state.lr_factor, upd)
        params = optax.apply_updates(state.params, upd)
        finite = jnp.isfinite(loss) & jnp.all(
            jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)])
        )
        new = TrainState(state.step + 1, params, updates["batch_stats"], opt_state, state.lr_factor)
        if nan_policy == "skip":
            # drop the update and halve the learning rate; the step still counts
            keep = lambda a, b: jnp.where(finite, a, b)
            new = TrainState(state.step + 1, jax.tree_util.tree_map(keep, params, state.params),
                             jax.tree_util.tree_map(keep, updates["batch_stats"], state.batch_stats),
                             jax.tree_util.tree_map(keep, opt_state, state.opt_state),
                             jnp.where(finite, state.lr_factor, state.lr_factor * 0.5))
        metrics = dict(
            loss=loss,
            accuracy=jnp.mean(jnp.argmax(logits, -1) == labels),
            finite=finite,
            grad_norm=optax.tree.norm(grads),
            param_norm=optax.tree.norm(state.params),
            firing_rates=updates["stats"],
        )
        return new, metrics

    return train_step


def make_eval_step(model: M.SpikingNetwork, *, mean, std, activity: bool = False) -> Callable:
    """The pure evaluation step ``(params, batch_stats, images_u8, labels) -> sums``:
    ``loss_sum``, ``correct``, ``correct_top5``, ``count`` (examples), ``nonfinite``
    (examples whose logits hold a NaN or Inf) and the firing-rate ``stats`` times
    ``count``. ``mean``, ``std``: per-channel normalisation of uint8 images.
    ``activity``: also return the ``activity`` collection times ``count`` (every LIF
    layer's per-neuron ``firing_prob`` and its ``spike_change``, see
    :class:`gsnn.nn.layers.SpikingNeuron`), so that sums over equal batches divided by
    the examples are the statistics of the whole set."""
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    collections = ["stats", "activity"] if activity else ["stats"]

    def eval_step(params, batch_stats, images_u8, labels):
        images = D.normalize(images_u8, mean, std)
        logits, updates = model.apply(
            {"params": params, "batch_stats": batch_stats}, images, train=False,
            mutable=collections, rngs={"coding": jax.random.key(0)},
        )
        n = labels.shape[0]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        extra = {"activity": jax.tree_util.tree_map(lambda x: x * n, updates["activity"])} if activity else {}
        return dict(
            **extra,
            loss_sum=jnp.sum(losses),
            correct=jnp.sum(jnp.argmax(logits, -1) == labels),
            correct_top5=jnp.sum(jnp.any(jax.lax.top_k(logits, min(5, logits.shape[-1]))[1] == labels[:, None], -1)),
            count=n,
            nonfinite=jnp.sum(~jnp.all(jnp.isfinite(logits), axis=-1)),
            stats=jax.tree_util.tree_map(lambda x: x * n, updates["stats"]),
        )

    return eval_step


def make_steps(cfg: C.Config, steps_per_epoch: int, mean, std, input_shape,
               init_fn: Callable | None = None) -> Steps:
    """Builds the model, optimiser and the train/eval steps of ``cfg``: the one place
    where a config is unpacked into the value-taking factories :func:`make_train_step`,
    :func:`make_eval_step` and :func:`gsnn.training.optim.make_tx`.

    Args:
      cfg: experiment config.
      steps_per_epoch: for the learning-rate schedule.
      mean, std: per-channel normalisation of uint8 images.
      input_shape: ``(H, W, C)``.
      init_fn: ``key -> {'params', 'batch_stats'}``; default: the model's random init
        (evolution passes a network built from a genome).
    """
    model = M.build_model(cfg.model)
    tc, dc = cfg.train, cfg.data
    init_fn = init_fn or default_init_fn(model, input_shape)
    abstract_params = jax.eval_shape(default_init_fn(model, input_shape), jax.random.key(0))["params"]
    tx = make_optimizer(tc, steps_per_epoch, abstract_params)

    def state_from_variables(variables):
        params = variables["params"]
        return TrainState(jnp.zeros((), jnp.int32), params, variables.get("batch_stats", {}),
                          tx.init(params), jnp.ones((), jnp.float32))

    def init(key):
        return state_from_variables(init_fn(key))

    train_step = make_train_step(
        model, tx, mean=mean, std=std, augment=dc.augment, crop_padding=dc.crop_padding,
        label_smoothing=tc.label_smoothing, nan_policy=tc.nan_policy,
        generated_weight_decay=tc.weight_decay if tc.weight_decay_on == "weights" else 0.0)
    eval_step = make_eval_step(model, mean=mean, std=std)
    return Steps(init=jax.jit(init), train_step=jax.jit(train_step, donate_argnums=0),
                 eval_step=jax.jit(eval_step), model=model, tx=tx, pure_train_step=train_step,
                 pure_eval_step=eval_step, state_from_variables=state_from_variables)


def evaluate(steps: Steps, params, batch_stats, images: np.ndarray, labels: np.ndarray,
             batch_size: int) -> dict:
    """Accuracy, top-5, loss and mean ``stats`` over a whole split (no example dropped).

    Raises:
      NonFiniteError: some example's logits hold a NaN or Inf (an argmax of NaN would
        count as class 0 and the loss would be NaN).
    """
    return evaluate_batches(steps, params, batch_stats,
                            D.batches(images, labels, batch_size, seed=0, epoch=0, shuffle=False, drop_remainder=False))


def evaluate_batches(steps: Steps, params, batch_stats, batches) -> dict:
    """:func:`evaluate` over an iterator of ``(uint8 images, labels)`` batches.

    Raises:
      NonFiniteError: ``evaluation: k of n examples gave non-finite logits ...``.
    """
    totals = None
    for xb, yb in batches:
        m = steps.eval_step(params, batch_stats, jnp.asarray(xb), jnp.asarray(yb))
        totals = m if totals is None else jax.tree_util.tree_map(jnp.add, totals, m)
    totals = jax.device_get(totals)
    n = float(totals["count"])
    bad = int(totals["nonfinite"])
    if bad:
        raise NonFiniteError(f"evaluation: {bad} of {int(n)} examples gave non-finite logits (NaN or Inf), so "
                             f"their accuracy and loss mean nothing; the parameters (or batch statistics) hold "
                             f"non-finite values or overflow: check the checkpoint, or retrain with a lower "
                             f"train.learning_rate or train.grad_clip > 0")
    return dict(
        accuracy=float(totals["correct"]) / n,
        top5=float(totals["correct_top5"]) / n,
        loss=float(totals["loss_sum"]) / n,
        stats=jax.tree_util.tree_map(lambda x: float(x) / n, totals["stats"]),
    )
