"""The pure, jitted training and evaluation steps, the loss, and the train state.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gsnn import config as cfgs
from gsnn import data as D
from gsnn.nn import layers as L
from gsnn.nn import networks as M
from gsnn.training.metrics import prefetch_to_device
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
    # model -> the pure train step of this config for another model object of the same
    # parameters (e.g. gsnn.evolution.budget.Masked: the network with an allocation's masks)
    train_step_for: Callable | None = None


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
    """The pure evaluation step ``(params, batch_stats, images_u8, labels, key=None,
    valid=None) -> sums``: ``loss_sum``, ``correct``, ``correct_top5``, ``count``
    (examples), ``nonfinite`` (examples whose logits hold a NaN or Inf) and the
    firing-rate ``stats`` times ``count``. ``mean``, ``std``: per-channel normalisation of
    uint8 images. ``activity``: also return the ``activity`` collection times ``count``
    (every LIF layer's per-neuron ``firing_prob`` and its ``spike_change``, see
    :class:`gsnn.nn.layers.SpikingNeuron`), so that sums over batches divided by the
    examples are the statistics of the whole set.

    ``images_u8 [B, H, W, C]``, ``labels int [B]``. ``key``: the input coding's PRNG key
    for this batch (Poisson coding; default ``jax.random.key(0)``). ``valid``: ``int32 []``,
    only the first ``valid`` examples count (a padded last batch, see
    :func:`evaluate_batches`); the others are left out of every sum: counts, loss and the
    statistics (computed per example from the layers' outputs, :func:`_masked_statistics`).
    ``None``: all ``B`` count (the layers' own batch statistics)."""
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    collections = ["stats", "activity"] if activity else ["stats"]

    def eval_step(params, batch_stats, images_u8, labels, key=None, valid=None):
        images = D.normalize(images_u8, mean, std)
        b = labels.shape[0]
        key = jax.random.key(0) if key is None else key
        apply = lambda cols: model.apply({"params": params, "batch_stats": batch_stats}, images, train=False,
                                         mutable=cols, rngs={"coding": key})
        if valid is None:
            logits, updates = apply(collections)
            mask = None
            scale = lambda x: x * b
            stats = jax.tree_util.tree_map(scale, updates["stats"])
            act = jax.tree_util.tree_map(scale, updates["activity"]) if activity else None
        else:
            mask = jnp.arange(b) < valid
            with nn.intercept_methods(_masked_statistics(mask, activity)):
                logits, updates = apply(collections + ["masked_stats"] + (["masked_activity"] if activity else []))
            stats = _same_tree(updates["masked_stats"], updates["stats"], "stats")
            act = _same_tree(updates["masked_activity"], updates["activity"], "activity") if activity else None
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        top5 = jnp.any(jax.lax.top_k(logits, min(5, logits.shape[-1]))[1] == labels[:, None], -1)
        count = lambda v: jnp.sum(v if mask is None else mask & v)
        return dict(
            **({"activity": act} if activity else {}),
            loss_sum=jnp.sum(losses if mask is None else jnp.where(mask, losses, 0.0)),
            correct=count(jnp.argmax(logits, -1) == labels),
            correct_top5=count(top5),
            count=b if valid is None else jnp.asarray(valid, jnp.int32),
            nonfinite=count(~jnp.all(jnp.isfinite(logits), axis=-1)),
            stats=stats,
        )

    return eval_step


def _per_example(x: jax.Array, b: int) -> jax.Array:
    """``[B, ...]`` or time-folded ``[T*B, ...]`` (time major) -> ``[R, B, ...]``."""
    return x.reshape((x.shape[0] // b, b) + x.shape[1:])


def _masked_statistics(mask: jax.Array, activity: bool) -> Callable:
    """A Flax method interceptor that sows, next to each statistic the layers sow over the
    whole batch, its sum over the examples where ``mask [B]`` is true, into
    ``masked_stats`` (``firing_rate`` of every :class:`~gsnn.nn.layers.SpikingNeuron`,
    ``input_density`` of every spiking-input :class:`~gsnn.nn.layers.Synapse`) and, with
    ``activity``, ``masked_activity`` (``firing_prob``, ``spike_change``). The layers'
    statistics are means over the batch of per-example means, so the masked sum over a
    full mask is ``B`` times the layer's value (up to float32 reassociation)."""
    b = mask.shape[0]
    w = mask.astype(jnp.float32)

    def wsum(per_example):  # [B, ...] -> [...], the masked sum over examples
        return jnp.tensordot(w, per_example, axes=(0, 0))

    def sow(module, col, name, value):
        module.sow(col, name, value, reduce_fn=lambda _, new: new, init_fn=lambda: 0.0)

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        module = context.module
        if context.method_name != "__call__":
            return out
        if isinstance(module, L.SpikingNeuron):
            s = _per_example(out, b).astype(jnp.float32)  # [T, B, ...]
            per = jnp.moveaxis(s, 1, 0).reshape(b, s.shape[0], -1)  # [B, T, neurons]
            sow(module, "masked_stats", "firing_rate", wsum(per.mean(axis=(1, 2))))
            if activity:
                sow(module, "masked_activity", "firing_prob", wsum(s.mean(axis=0)))
                if s.shape[0] >= 2:
                    change = jnp.abs(per[:, 1:] - per[:, :-1]).mean(axis=(1, 2))
                    sow(module, "masked_activity", "spike_change", wsum(change))
        elif isinstance(module, L.Synapse) and not module.real_input:
            x = _per_example(args[0], b)
            per = jnp.moveaxis(x != 0, 1, 0).reshape(b, -1).astype(jnp.float32)
            sow(module, "masked_stats", "input_density", wsum(per.mean(axis=1)))
        return out

    return interceptor


def _same_tree(masked, reference, what: str):
    """``masked``, after checking it holds every statistic of ``reference`` (trace time)."""
    paths = lambda t: {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(t)[0]}
    got, want = paths(masked), paths(reference)
    if got != want:
        raise NotImplementedError(
            f"the masked evaluation step has no per-example version of the layers' {what} "
            f"{sorted(want - got)} (extra: {sorted(got - want)}); add it to gsnn.training.steps._masked_statistics")
    return masked


def make_steps(cfg: cfgs.Config, steps_per_epoch: int, mean, std, input_shape,
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

    def train_step_for(net):
        return make_train_step(
            net, tx, mean=mean, std=std, augment=dc.augment, crop_padding=dc.crop_padding,
            label_smoothing=tc.label_smoothing, nan_policy=tc.nan_policy,
            generated_weight_decay=tc.weight_decay if tc.weight_decay_on == "weights" else 0.0)

    train_step = train_step_for(model)
    eval_step = make_eval_step(model, mean=mean, std=std)
    return Steps(init=jax.jit(init), train_step=jax.jit(train_step, donate_argnums=0),
                 eval_step=jax.jit(eval_step), model=model, tx=tx, pure_train_step=train_step,
                 pure_eval_step=eval_step, state_from_variables=state_from_variables, train_step_for=train_step_for)


def evaluate(steps: Steps, params, batch_stats, images: np.ndarray, labels: np.ndarray,
             batch_size: int, key: jax.Array | None = None) -> dict:
    """Accuracy, top-5, loss and mean ``stats`` over a whole split (no example dropped);
    ``key``: as in :func:`evaluate_batches`.

    Raises:
      NonFiniteError: some example's logits hold a NaN or Inf (an argmax of NaN would
        count as class 0 and the loss would be NaN).
    """
    return evaluate_batches(steps, params, batch_stats,
                            D.batches(images, labels, batch_size, seed=0, epoch=0, shuffle=False, drop_remainder=False),
                            key=key, batch_size=batch_size)


def eval_batch_key(key: jax.Array, batch: int) -> jax.Array:
    """The input-coding key of evaluation batch ``batch`` (0-based) of an evaluation
    drawn from ``key``: ``fold_in(key, batch)``."""
    return jax.random.fold_in(key, batch)


def pad_batch(images: np.ndarray, labels: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``images [n, ...]``, ``labels [n]`` padded with zeros to ``batch_size`` rows
    (``n <= batch_size``), for :func:`make_eval_step`'s ``valid = n``."""
    n = len(labels)
    if n > batch_size:
        raise ValueError(f"a batch of {n} examples is larger than the evaluation batch size {batch_size}")
    if n == batch_size:
        return images, labels
    pad = lambda a: np.concatenate([a, np.zeros((batch_size - n,) + a.shape[1:], a.dtype)])
    return pad(np.asarray(images)), pad(np.asarray(labels))


def evaluate_batches(steps: Steps, params, batch_stats, batches, *, key: jax.Array | None = None,
                     batch_size: int | None = None) -> dict:
    """:func:`evaluate` over an iterator of ``(uint8 images [b, H, W, C], labels [b])``
    batches.

    Every batch is padded to ``batch_size`` rows (default: the first batch's size) and
    masked (``valid`` of :func:`make_eval_step`), so one compiled program serves every
    batch, a smaller last one included. Batch ``i``'s input coding draws from
    ``fold_in(key, i)`` (:func:`eval_batch_key`; ``key`` default ``jax.random.key(0)``):
    the same key gives the same evaluation. The sums stay on the device; one fetch at
    the end.

    Returns:
      ``accuracy``, ``top5`` (fractions), ``loss`` (mean cross-entropy, nats) and
      ``stats`` (the layers' statistics, means over the examples).
    Raises:
      NonFiniteError: ``evaluation: k of n examples gave non-finite logits ...``.
    """
    key = jax.random.key(0) if key is None else key
    totals = None

    def padded():
        size = batch_size
        for xb, yb in batches:
            size = size or len(yb)
            yield (*pad_batch(xb, yb, size), np.int32(len(yb)))

    for i, (xb, yb, n) in enumerate(prefetch_to_device(padded())):
        m = steps.eval_step(params, batch_stats, xb, yb, eval_batch_key(key, i), n)
        totals = m if totals is None else jax.tree_util.tree_map(jnp.add, totals, m)
    if totals is None:
        raise ValueError("evaluate_batches: no batches to evaluate (an empty split)")
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
