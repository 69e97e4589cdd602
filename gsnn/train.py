"""Training and evaluation with optax: pure jitted steps, a resumable epoch loop.

``train_and_evaluate(config, workdir)`` is the library entry point (Flax examples
style): it trains, evaluates every epoch, writes an orbax checkpoint after every epoch
and resumes from the newest one in ``workdir`` by itself. The step functions are pure:
``train_step(state, images, labels) -> (state, metrics)`` with metrics (loss, accuracy,
firing rates, gradient and parameter norms) computed inside ``jit``; the host stops on a
non-finite loss with a message naming the epoch and step.

Parameter groups (for per-group learning rates and weight decay): ``weight`` (direct
kernels), ``encoding`` (``x_pre``, ``x_post``, ``pop_*``), ``interaction`` (``G``),
``spatial`` (spatial gene codes), ``other`` (norm, biases, PLIF).
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gsnn import config as C
from gsnn import data as D
from gsnn import energy as E
from gsnn import models as M
from gsnn.runtime.checkpoint import Checkpointer
from gsnn.runtime.interrupt import GracefulInterrupt
from gsnn.runtime.records import write_json


class NonFiniteError(FloatingPointError):
    """The training loss became NaN or Inf."""


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


# --------------------------------------------------------------------------------------
# Optimiser
# --------------------------------------------------------------------------------------


def param_group(path: tuple) -> str:
    """The parameter group of a leaf, from its pytree path."""
    names = [getattr(k, "key", getattr(k, "name", str(k))) for k in path]
    leaf = str(names[-1])
    if leaf == "kernel":
        return "weight"
    if leaf in ("x_pre", "x_post") or leaf.startswith("pop_"):
        return "encoding"
    if leaf == "G":
        return "interaction"
    if leaf == "spatial":
        return "spatial"
    return "other"


def group_labels(params) -> Any:
    """A pytree of group names matching ``params``."""
    return jax.tree_util.tree_map_with_path(lambda p, _: param_group(p), params)


def learning_rate_schedule(tc: C.TrainConfig, steps_per_epoch: int) -> optax.Schedule:
    """Linear warm-up then cosine decay to 0 over ``epochs`` (optax schedule)."""
    total = max(1, tc.epochs * steps_per_epoch)
    warmup = int(round(tc.warmup_epochs * steps_per_epoch))
    if warmup > 0:
        return optax.warmup_cosine_decay_schedule(0.0, tc.learning_rate, warmup, total, 0.0)
    return optax.cosine_decay_schedule(tc.learning_rate, total)


def make_optimizer(tc: C.TrainConfig, steps_per_epoch: int, params) -> optax.GradientTransformation:
    """SGD (momentum, L2 decay) or AdamW (decoupled decay), per-group learning rates.

    The learning rate is applied last, so ``lr_scale`` multiplies every group's update
    and weight decay alike.
    """
    labels = group_labels(params)
    # decay on what is stored (factors), or only on direct kernels, while the generated
    # W are decayed through the loss (weights; see :func:`weight_penalty`)
    decayed = ("weight",) if tc.weight_decay_on == "weights" else ("weight", "encoding", "interaction", "spatial")
    decay_mask = jax.tree_util.tree_map(lambda g: g in decayed, labels)
    scales = dict(tc.lr_scale)
    group_scale = optax.multi_transform(
        {g: optax.scale(float(scales.get(g, 1.0))) for g in C.PARAM_GROUPS}, labels
    )
    schedule = learning_rate_schedule(tc, steps_per_epoch)
    parts = [optax.clip_by_global_norm(tc.grad_clip)] if tc.grad_clip > 0 else []
    if tc.optimizer == "sgd":
        parts += [optax.add_decayed_weights(tc.weight_decay, decay_mask), optax.trace(tc.momentum)]
    else:
        parts += [optax.scale_by_adam(tc.beta1, tc.beta2), optax.add_decayed_weights(tc.weight_decay, decay_mask)]
    parts += [group_scale, optax.scale_by_learning_rate(schedule)]
    return optax.chain(*parts)


# --------------------------------------------------------------------------------------
# Pure steps
# --------------------------------------------------------------------------------------


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
    eval_step: Callable  # (params, batch_stats, images_u8, labels) -> metrics (sums)
    model: M.SpikingNetwork
    tx: optax.GradientTransformation
    pure_train_step: Callable  # the same, not jitted (to vmap/scan inside other functions)
    pure_eval_step: Callable
    state_from_variables: Callable  # {'params', 'batch_stats'} -> fresh TrainState


def default_init_fn(model: M.SpikingNetwork, input_shape) -> Callable:
    """``key -> {'params', 'batch_stats'}``: the model's ordinary random initialisation."""
    return lambda key: M.init_variables(model, key, input_shape)


def make_steps(cfg: C.Config, steps_per_epoch: int, mean, std, input_shape,
               init_fn: Callable | None = None) -> Steps:
    """Builds the model, optimiser and the pure train/eval steps for ``cfg``.

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
    mean = jnp.asarray(mean, jnp.float32)
    std = jnp.asarray(std, jnp.float32)
    init_fn = init_fn or default_init_fn(model, input_shape)
    abstract_params = jax.eval_shape(default_init_fn(model, input_shape), jax.random.key(0))["params"]
    tx = make_optimizer(tc, steps_per_epoch, abstract_params)

    def state_from_variables(variables):
        params = variables["params"]
        return TrainState(jnp.zeros((), jnp.int32), params, variables.get("batch_stats", {}),
                          tx.init(params), jnp.ones((), jnp.float32))

    def init(key):
        return state_from_variables(init_fn(key))

    decay_weights = tc.weight_decay_on == "weights" and tc.weight_decay > 0
    mutable = ["batch_stats", "stats"] + (["weight_sq"] if decay_weights else [])

    def forward(params, batch_stats, images, k_coding):
        return model.apply({"params": params, "batch_stats": batch_stats}, images, train=True,
                           mutable=mutable, rngs={"coding": k_coding})

    def loss_fn(params, batch_stats, images, labels, key):
        """The objective; its aux reports the cross-entropy alone."""
        k_coding, _ = jax.random.split(key)
        logits, updates = forward(params, batch_stats, images, k_coding)
        loss = cross_entropy(logits, labels, tc.label_smoothing)
        objective = loss + weight_penalty(updates["weight_sq"], tc.weight_decay) if decay_weights else loss
        return objective, (loss, logits, updates)

    def train_step(state: TrainState, images_u8, labels, key):
        k_aug, k_model = jax.random.split(key)
        images = D.normalize(images_u8, mean, std)
        if dc.augment:
            images = D.random_crop_flip(k_aug, images, dc.crop_padding)
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
        if tc.nan_policy == "skip":
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

    def eval_step(params, batch_stats, images_u8, labels):
        images = D.normalize(images_u8, mean, std)
        logits, updates = model.apply(
            {"params": params, "batch_stats": batch_stats}, images, train=False,
            mutable=["stats"], rngs={"coding": jax.random.key(0)},
        )
        n = labels.shape[0]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        return dict(
            loss_sum=jnp.sum(losses),
            correct=jnp.sum(jnp.argmax(logits, -1) == labels),
            correct_top5=jnp.sum(jnp.any(jax.lax.top_k(logits, min(5, logits.shape[-1]))[1] == labels[:, None], -1)),
            count=n,
            stats=jax.tree_util.tree_map(lambda x: x * n, updates["stats"]),
        )

    return Steps(init=jax.jit(init), train_step=jax.jit(train_step, donate_argnums=0),
                 eval_step=jax.jit(eval_step), model=model, tx=tx, pure_train_step=train_step,
                 pure_eval_step=eval_step, state_from_variables=state_from_variables)


def evaluate(steps: Steps, params, batch_stats, images: np.ndarray, labels: np.ndarray,
             batch_size: int) -> dict:
    """Accuracy, top-5, loss and mean ``stats`` over a whole split (no example dropped)."""
    return evaluate_batches(steps, params, batch_stats,
                            D.batches(images, labels, batch_size, seed=0, epoch=0, shuffle=False, drop_remainder=False))


def evaluate_batches(steps: Steps, params, batch_stats, batches) -> dict:
    """:func:`evaluate` over an iterator of ``(uint8 images, labels)`` batches."""
    totals = None
    for xb, yb in batches:
        m = steps.eval_step(params, batch_stats, jnp.asarray(xb), jnp.asarray(yb))
        totals = m if totals is None else jax.tree_util.tree_map(jnp.add, totals, m)
    totals = jax.device_get(totals)
    n = float(totals["count"])
    return dict(
        accuracy=float(totals["correct"]) / n,
        top5=float(totals["correct_top5"]) / n,
        loss=float(totals["loss_sum"]) / n,
        stats=jax.tree_util.tree_map(lambda x: float(x) / n, totals["stats"]),
    )


# --------------------------------------------------------------------------------------
# The training loop
# --------------------------------------------------------------------------------------


def load_data(cfg: C.Config) -> D.ArrayDataset | D.StreamingDataset:
    """The dataset of ``cfg.data``, subset as configured; streamed from TFDS when
    ``data.stream`` (for data that does not fit in memory)."""
    dc = cfg.data
    if dc.stream:
        return D.open_tfds_stream(dc.source.removeprefix("tfds:"), data_dir=dc.data_dir or None)
    ds = D.load_dataset(dc.source, cache_dir=dc.cache_dir or None, data_dir=dc.data_dir or None,
                        sha256=dc.sha256 or None)
    if dc.train_per_class or dc.test_per_class or dc.val_per_class:
        ds = ds.subset(train_per_class=dc.train_per_class or None, test_per_class=dc.test_per_class or None,
                       seed=cfg.seed, val_per_class=dc.val_per_class or None)
    return ds


def _log(msg: str, progress: bool):
    if progress:
        print(msg, flush=True)


def _stats_summary(stats) -> dict:
    return {"firing_rates": E.firing_rates(stats), "input_densities": E.input_densities(stats)}


def run_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """``(init_key, train_key)`` of a :func:`train_and_evaluate` run with ``seed``:
    ``steps.init(init_key)`` rebuilds the run's initial state."""
    k_init, k_train = jax.random.split(jax.random.key(seed))
    return k_init, k_train


def train_and_evaluate(
    cfg: C.Config,
    workdir: str | os.PathLike | None = None,
    *,
    dataset: D.ArrayDataset | None = None,
    progress: bool = True,
    stop_after_epochs: int | None = None,
    init_fn: Callable | None = None,
    resume_hint: str | None = None,
) -> dict:
    """Trains ``cfg``; evaluates every epoch on the validation split (``data.val_per_class``)
    and the test split once at the end, or, without a validation split, on the test split
    every epoch (DESIGN 1.6).

    SIGINT/SIGTERM finish the current step, write a checkpoint (with the position inside
    the epoch) and raise :class:`gsnn.runtime.interrupt.RunInterrupted`; resuming continues from
    that step and ends with the same result as an uninterrupted run.

    Args:
      cfg: a validated :class:`gsnn.config.Config`.
      workdir: checkpoints and ``metrics.json`` go here; an existing checkpoint of the
        same config is resumed. ``None``: no checkpoints.
      dataset: pre-loaded data (else loaded from ``cfg.data``).
      progress: print progress lines.
      stop_after_epochs: stop early after this many epochs of *this call* (for tests of
        resumption); the schedule still spans ``cfg.train.epochs``.
      init_fn: ``key -> {'params', 'batch_stats'}`` replacing the random initialisation
        (an evolved genome's network).
      resume_hint: the command printed on interruption (default ``gsnn train --resume``).

    Returns:
      dict with ``history`` (per-epoch records), ``test_accuracy``, ``val_accuracy``
      (the last epoch's, or ``None``), ``params`` (:class:`gsnn.energy.ParamReport` as
      dict), ``energy``, ``config``.
    """
    cfg = cfg.validate()
    tc = cfg.train
    ds = dataset if dataset is not None else load_data(cfg)
    if ds.num_classes != cfg.model.num_classes:
        raise ValueError(f"model.num_classes={cfg.model.num_classes} but the data {ds.name!r} has "
                         f"{ds.num_classes} classes; set model.num_classes={ds.num_classes}")
    n_train = ds.num_train
    if tc.batch_size > n_train:
        raise ValueError(f"train.batch_size={tc.batch_size} is larger than the training set ({n_train} images)")
    steps_per_epoch = D.num_batches(n_train, tc.batch_size, True)
    mean, std = D.stats_for(ds.name)
    steps = make_steps(cfg, steps_per_epoch, mean, std, ds.image_shape, init_fn)
    k_init, k_train = run_keys(cfg.seed)
    state = steps.init(k_init)

    history: list[dict] = []
    partial = None  # progress inside an epoch, from a checkpoint written on SIGINT/SIGTERM
    ckpt = Checkpointer(workdir) if workdir is not None else None
    if workdir is not None:
        wd = pathlib.Path(workdir)
        wd.mkdir(parents=True, exist_ok=True)
        cfg_file = wd / "config.json"
        if cfg_file.exists():
            # read through from_dict so that keys of fields since removed do not count
            old = json.loads(C.from_dict(json.loads(cfg_file.read_text())).to_json())
            new = json.loads(cfg.to_json())
            if old != new:
                diff = sorted(k for k in set(_flat(old)) | set(_flat(new)) if _flat(old).get(k) != _flat(new).get(k))
                raise ValueError(f"workdir {wd} holds a run of a different config (differs in {diff}); "
                                 f"use a new workdir or the same config")
        else:
            cfg_file.write_text(cfg.to_json())
        restored = ckpt.restore_latest(jax.eval_shape(lambda: state))
        if restored is not None:
            state, meta = restored
            history = meta["history"]
            partial = meta.get("partial")
            where = (f"epoch {partial['epoch'] + 1} step {partial['step']}" if partial
                     else f"the end of epoch {len(history)}")
            _log(f"resumed from {ckpt.dir} at {where} (step {int(state.step)})", progress)

    model_specs = M.describe(steps.model, ds.image_shape, batch=tc.eval_batch_size)
    param_report = E.parameter_report(*model_specs)
    gc = cfg.model.genetic
    rules = f" x {gc.rules} rules" if gc.rules > 1 else ""
    _log(f"{cfg.name}: {cfg.model.arch} {gc.encoding}"
         f"{'' if gc.encoding == 'direct' else f' g={gc.genes}{rules}'}, "
         f"params {param_report.genetic_params:,} (direct {param_report.direct_params:,}, "
         f"compression {param_report.compression:.1%}), {n_train} train images, "
         f"{steps_per_epoch} steps/epoch", progress)

    resume_hint = resume_hint or f"gsnn train --resume {workdir}"
    with GracefulInterrupt() as stop:
        return _train_epochs(cfg, workdir, ds, steps, state, history, partial, ckpt, k_train, steps_per_epoch,
                             param_report, model_specs, progress, stop_after_epochs, stop, resume_hint)


def _train_epochs(cfg, workdir, ds, steps, state, history, partial, ckpt, k_train, steps_per_epoch,
                  param_report, model_specs, progress, stop_after_epochs, stop, resume_hint):
    """The epoch loop of :func:`train_and_evaluate` (its arguments, resolved)."""
    tc = cfg.train
    start_epoch = len(history)
    epochs_run = 0
    # with a validation split every epoch is evaluated on it and the test split is read
    # once, at the end (DESIGN 1.6); without one, every epoch on the test split
    split = "val" if getattr(ds, "num_val", 0) else "test"
    eval_batches = ds.val_batches if split == "val" else ds.test_batches
    ev = None  # the newest evaluation of the current state on `split`, if any
    for epoch in range(start_epoch, tc.epochs):
        if stop_after_epochs is not None and epochs_run >= stop_after_epochs:
            break
        t0 = time.perf_counter()
        sums = dict(loss=0.0, accuracy=0.0, grad_norm=0.0)
        count = 0
        skipped = 0
        rates = None
        first_step, elapsed_before = 0, 0.0
        if partial is not None and partial["epoch"] == epoch:
            sums, count, skipped, rates = partial["sums"], partial["count"], partial["skipped"], partial["rates"]
            first_step, elapsed_before = partial["step"], partial["seconds"]
        partial = None
        for i, (xb, yb) in enumerate(ds.train_batches(tc.batch_size, cfg.seed, epoch)):
            if i < first_step:
                continue
            step_key = jax.random.fold_in(k_train, int(epoch * steps_per_epoch + i))
            state, m = steps.train_step(state, jnp.asarray(xb), jnp.asarray(yb), step_key)
            m = jax.device_get(m)
            if not m["finite"]:
                if tc.nan_policy == "stop":
                    raise NonFiniteError(
                        f"non-finite loss ({m['loss']}) or gradient at epoch {epoch + 1}, step {i + 1} "
                        f"(global step {int(state.step)}); lower train.learning_rate, enable train.grad_clip, "
                        f"or set train.nan_policy=skip")
                skipped += 1
            else:
                for k in sums:
                    sums[k] += float(m[k])
                count += 1
                rates = jax.tree_util.tree_map(float, m["firing_rates"])
            if stop.requested:
                where = f"at epoch {epoch + 1}, step {i + 1}/{steps_per_epoch}"
                if ckpt is None:
                    raise stop.interrupted(where + " (no workdir: nothing saved)", "a new run")
                part = dict(epoch=epoch, step=i + 1, sums=sums, count=count, skipped=skipped, rates=rates,
                            seconds=elapsed_before + time.perf_counter() - t0)
                ckpt.save(epoch * steps_per_epoch + i + 1, state,
                          {"history": history, "config": cfg.to_dict(), "partial": part})
                ckpt.close()
                raise stop.interrupted(where, resume_hint)
            if not m["finite"]:
                continue
            if progress and tc.log_every and (i + 1) % tc.log_every == 0:
                rate = (i + 1 - first_step) * tc.batch_size / (time.perf_counter() - t0)
                print(f"  epoch {epoch + 1} step {i + 1}/{steps_per_epoch} loss {sums['loss'] / count:.4f} "
                      f"acc {sums['accuracy'] / count:.3f} ({rate:.0f} img/s)", flush=True)
        train_time = elapsed_before + time.perf_counter() - t0
        ev = evaluate_batches(steps, state.params, state.batch_stats, eval_batches(tc.eval_batch_size))
        record = {
            "epoch": epoch + 1,
            "train_loss": sums["loss"] / max(count, 1),
            "train_accuracy": sums["accuracy"] / max(count, 1),
            "grad_norm": sums["grad_norm"] / max(count, 1),
            f"{split}_loss": ev["loss"],
            f"{split}_accuracy": ev["accuracy"],
            f"{split}_top5": ev["top5"],
        }
        record.update(
            firing_rates=E.firing_rates(ev["stats"]),
            train_firing_rates=E.firing_rates(rates or {}),
            skipped_steps=skipped,
            epoch_seconds=train_time,
            train_images_per_s=steps_per_epoch * tc.batch_size / train_time,
        )
        history.append(record)
        epochs_run += 1
        _log(f"epoch {epoch + 1}/{tc.epochs}: train loss {record['train_loss']:.4f} acc {record['train_accuracy']:.3f} | "
             f"{split} loss {record[split + '_loss']:.4f} acc {record[split + '_accuracy']:.4f} | "
             f"rate {np.mean(list(record['firing_rates'].values()) or [0]):.3f} | "
             f"{train_time:.1f}s ({record['train_images_per_s']:.0f} img/s)", progress)
        if ckpt is not None:
            ckpt.save((epoch + 1) * steps_per_epoch, state, {"history": history, "config": cfg.to_dict()})
        if stop.requested:
            if ckpt is None:
                raise stop.interrupted(f"after epoch {epoch + 1} (no workdir: nothing saved)", "a new run")
            ckpt.close()
            raise stop.interrupted(f"after epoch {epoch + 1}", resume_hint)

    final = ev if (ev is not None and split == "test") else evaluate_batches(
        steps, state.params, state.batch_stats, ds.test_batches(tc.eval_batch_size))
    energy = E.energy_report(param_report, model_specs[0], final["stats"], cfg.model.T, batch=1)
    result = dict(
        name=cfg.name,
        config=cfg.to_dict(),
        history=history,
        epochs_completed=len(history),
        test_accuracy=final["accuracy"],
        test_top5=final["top5"],
        test_loss=final["loss"],
        val_accuracy=history[-1]["val_accuracy"] if split == "val" and history else None,
        val_loss=history[-1]["val_loss"] if split == "val" and history else None,
        params=param_report.as_dict(),
        energy=energy,
    )
    if ckpt is not None:
        ckpt.close()
        write_json(pathlib.Path(workdir) / "metrics.json", result)
    result["state"] = state
    return result


def load_trained(workdir: str | os.PathLike, dataset: D.ArrayDataset | None = None):
    """The config (from ``workdir/config.json``), the newest trained state and the data
    of a finished or interrupted :func:`train_and_evaluate` run.

    Returns:
      ``(cfg, state, dataset)``.
    Raises:
      FileNotFoundError: ``workdir`` is not a training workdir or holds no checkpoint.
    """
    wd = pathlib.Path(workdir)
    cfg_file = wd / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{wd}: no config.json; pass the workdir of a gsnn train run")
    cfg = C.from_dict(json.loads(cfg_file.read_text())).validate()
    ds = dataset if dataset is not None else load_data(cfg)
    mean, std = D.stats_for(ds.name)
    steps = make_steps(cfg, 1, mean, std, ds.image_shape)
    abstract = jax.eval_shape(steps.init, jax.random.key(0))
    ckpt = Checkpointer(wd)
    restored = ckpt.restore_latest(abstract)
    ckpt.close()
    if restored is None:
        raise FileNotFoundError(f"{wd}: no readable checkpoint under {wd / 'checkpoints'}; train first")
    return cfg, restored[0], ds


HISTORY_KEYS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy",
                "epoch_seconds")


def result_record(result: dict) -> dict:
    """The summary of one :func:`train_and_evaluate` result for tables and JSON:
    accuracy, parameters, compression, firing rates, energy, epochs and a slim history."""
    energy, params = result["energy"], result["params"]
    return dict(
        test_accuracy=result["test_accuracy"],
        test_top5=result["test_top5"],
        params=params["genetic_params"],
        direct_params=params["direct_params"],
        compression=params["compression"],
        mean_firing_rate=energy["mean_firing_rate"],
        firing_rates=energy["firing_rates"],
        energy_uj=energy["energy_uj"],
        energy_uj_generated_once=energy["energy_uj_generated_once"],
        weight_read_bytes_generated_once=energy["weight_read_bytes_generated_once"],
        weight_read_bytes_per_inference=energy["weight_read_bytes_per_inference"],
        acs=energy["acs"],
        macs=energy["macs"],
        epochs=result["epochs_completed"],
        val_accuracy=result["val_accuracy"],
        val_loss=result["val_loss"],
        history=[{k: h[k] for k in HISTORY_KEYS if k in h} for h in result["history"]],
    )


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
