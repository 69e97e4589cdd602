"""The resumable epoch loop: ``train_and_evaluate(config, workdir)`` trains, evaluates
every epoch, checkpoints after every epoch and resumes from the newest checkpoint in
``workdir``; :func:`load_trained` reads a finished run back.
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

from gsnn import config as cfgs
from gsnn.config import read_config_file
from gsnn import data as D
from gsnn.analysis import energy as E
from gsnn.nn import networks as M
from gsnn.runtime.checkpoint import Checkpointer
from gsnn.runtime.loop import ResumableLoop, Snapshot
from gsnn.runtime.provenance import provenance
from gsnn.runtime.records import write_json, write_text
from gsnn.runtime.writers import record_scalars, workdir_writer
from gsnn.training.metrics import EpochSums, Totals, prefetch_to_device
from gsnn.training.steps import NonFiniteError, Steps, TrainState, evaluate_batches, make_steps


def load_data(cfg: cfgs.Config) -> D.ArrayDataset | D.StreamingDataset:
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


def run_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """``(init_key, train_key)`` of a :func:`train_and_evaluate` run with ``seed``:
    ``steps.init(init_key)`` rebuilds the run's initial state."""
    k_init, k_train = jax.random.split(jax.random.key(seed))
    return k_init, k_train


def eval_key(seed: int) -> jax.Array:
    """The key every evaluation of a :func:`train_and_evaluate` run with ``seed`` draws
    its input coding from (batch ``i`` from ``fold_in(eval_key(seed), i)``, see
    :func:`gsnn.training.steps.evaluate_batches`): each epoch's evaluation and the final
    test see the same Poisson draws, so they differ only by the weights, and a rerun or
    a resumed run evaluates identically."""
    return jax.random.fold_in(jax.random.key(seed), _EVAL_STREAM)


_EVAL_STREAM = 0x6576616C  # "eval": a stream of the run's seed apart from run_keys' split


def train_and_evaluate(
    cfg: cfgs.Config,
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
      workdir: checkpoints, ``metrics.json`` and TensorBoard scalars (``tensorboard/``,
        step = epoch) go here; an existing checkpoint of the same config is resumed.
        ``None``: no checkpoints.
      dataset: pre-loaded data (else loaded from ``cfg.data``).
      progress: print progress lines.
      stop_after_epochs: stop early after this many epochs of *this call* (for tests of
        resumption); the schedule still spans ``cfg.train.epochs``.
      init_fn: ``key -> {'params', 'batch_stats'}`` replacing the random initialisation
        (an evolved genome's network).
      resume_hint: the command printed on interruption (default ``gsnn train --resume``).

    Returns:
      dict with ``history`` (per-epoch records: ``train_loss``, ``train_accuracy``,
      ``grad_norm`` and ``train_firing_rates`` (per LIF layer, spikes per neuron per time
      step) are means over the epoch's finite training steps, summed on the device;
      ``skipped_steps``; the evaluated split's ``*_loss``, ``*_accuracy``, ``*_top5``,
      ``firing_rates``; ``epoch_seconds``, ``train_images_per_s``), ``test_accuracy``, ``val_accuracy``
      (the last epoch's, or ``None``), ``params`` (:class:`gsnn.analysis.energy.ParamReport` as
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
    resume_hint = resume_hint or f"gsnn train --resume {workdir}"
    loop = ResumableLoop(workdir, config=cfg.to_dict(), resume_hint=resume_hint)
    if workdir is not None:
        wd = pathlib.Path(workdir)
        wd.mkdir(parents=True, exist_ok=True)
        cfg_file = wd / "config.json"
        if cfg_file.exists():
            # read strictly, after the explicit migration of older files (gsnn.config.read_config_file)
            old = json.loads(read_config_file(cfg_file).to_json())
            loop.check_same_config(old, json.loads(cfg.to_json()), where=f"workdir {wd}")
        else:
            write_text(cfg_file, cfg.to_json())  # process 0 of a job; atomic
        restored = loop.restore(jax.eval_shape(lambda: state))
        if restored is not None:
            state, meta = restored
            history = meta["history"]
            partial = meta.get("partial")
            where = (f"epoch {partial['epoch'] + 1} step {partial['step']}" if partial
                     else f"the end of epoch {len(history)}")
            _log(f"resumed from {loop.dir} at {where} (step {int(state.step)})", progress)

    model_specs = M.describe(steps.model, ds.image_shape, batch=tc.eval_batch_size)
    param_report = E.parameter_report(*model_specs)
    gc = cfg.model.genetic
    rules = f" x {gc.rules} rules" if gc.rules > 1 else ""
    _log(f"{cfg.name}: {cfg.model.arch} {gc.encoding}"
         f"{'' if gc.encoding == 'direct' else f' g={gc.genes}{rules}'}, "
         f"params {param_report.stored_params:,} (direct {param_report.direct_params:,}, "
         f"compression {param_report.compression:.1%}), {n_train} train images, "
         f"{steps_per_epoch} steps/epoch", progress)

    with loop, workdir_writer(workdir, resume_at=len(history)) as writer:
        run = EpochRun(cfg, workdir, ds, steps, k_train, eval_key(cfg.seed), steps_per_epoch, param_report, model_specs, progress,
                       stop_after_epochs, writer)
        return _train_epochs(loop, EpochLoopState(state, history, partial), run)


class EpochLoopState(NamedTuple):
    """Where the epoch loop stands: the train state, the finished epochs' records and
    the progress inside an interrupted epoch (``None`` at an epoch boundary)."""

    train_state: TrainState
    history: list
    partial: dict | None


@dataclasses.dataclass(frozen=True)
class EpochRun:
    """The values :func:`train_and_evaluate` built for its epoch loop."""

    cfg: cfgs.Config
    workdir: str | os.PathLike | None
    ds: Any
    steps: Steps
    k_train: jax.Array
    k_eval: jax.Array
    steps_per_epoch: int
    param_report: Any
    model_specs: Any
    progress: bool
    stop_after_epochs: int | None
    writer: Any


#: ``jax.random.fold_in`` as one dispatch (the same bits; eager it is several small ops per step)
_fold_in = jax.jit(jax.random.fold_in)


def _check_finite(totals: Totals, epoch: int, steps_per_epoch: int, nan_policy: str) -> None:
    """Raises :class:`NonFiniteError` naming the epoch's first non-finite step, under
    ``nan_policy=stop``."""
    if nan_policy == "stop" and totals.first_bad >= 0:
        step = totals.first_bad + 1
        raise NonFiniteError(
            f"non-finite loss ({totals.bad_loss}) or gradient at epoch {epoch + 1}, step {step} "
            f"(global step {epoch * steps_per_epoch + step}); lower train.learning_rate, enable train.grad_clip, "
            f"or set train.nan_policy=skip")


def _train_epochs(loop: ResumableLoop, ls: EpochLoopState, run: EpochRun) -> dict:
    """The epoch loop of :func:`train_and_evaluate`; every epoch's record also goes to
    ``run.writer`` (TensorBoard scalars, step = epoch).

    The host does not wait on the device inside an epoch: the step metrics are summed on
    the device (:class:`gsnn.training.metrics.EpochSums`) and fetched every
    ``train.log_every`` steps (once per epoch where it is 0), at the epoch's end and on an
    interruption; the next batch goes to the device while a step runs."""
    cfg, ds, steps, steps_per_epoch, progress = run.cfg, run.ds, run.steps, run.steps_per_epoch, run.progress
    tc = cfg.train
    state, history, partial = ls
    start_epoch = len(history)
    epochs_run = 0
    # with a validation split every epoch is evaluated on it and the test split is read
    # once, at the end (DESIGN 1.6); without one, every epoch on the test split
    split = "val" if getattr(ds, "num_val", 0) else "test"
    eval_batches = ds.val_batches if split == "val" else ds.test_batches
    evaluate = lambda st, batches: evaluate_batches(steps, st.params, st.batch_stats, batches, key=run.k_eval,
                                                    batch_size=tc.eval_batch_size)
    ev = None  # the newest evaluation of the current state on `split`, if any
    for epoch in range(start_epoch, tc.epochs):
        if run.stop_after_epochs is not None and epochs_run >= run.stop_after_epochs:
            break
        t0 = time.perf_counter()
        first_step, elapsed_before, resumed = 0, 0.0, None
        if partial is not None and partial["epoch"] == epoch:
            first_step, elapsed_before, resumed = partial["step"], partial["seconds"], partial
        partial = None
        sums = EpochSums(first_step, resumed)
        totals = None  # the newest fetch of `sums`
        batches = prefetch_to_device(ds.train_batches(tc.batch_size, cfg.seed, epoch, start_batch=first_step))
        for i, (xb, yb) in enumerate(batches, start=first_step):
            step_key = _fold_in(run.k_train, epoch * steps_per_epoch + i)
            state, m = steps.train_step(state, xb, yb, step_key)
            sums.add(m)
            log_now = bool(tc.log_every) and (i + 1) % tc.log_every == 0
            stop = loop.requested  # read once: a signal may land between two reads
            totals = None
            if log_now or stop or i + 1 == steps_per_epoch:
                totals = sums.fetch()
                _check_finite(totals, epoch, steps_per_epoch, tc.nan_policy)
            if stop:
                part = dict(epoch=epoch, step=i + 1, seconds=elapsed_before + time.perf_counter() - t0,
                            **totals.as_partial())
                loop.stop_if_requested(f"at epoch {epoch + 1}, step {i + 1}/{steps_per_epoch}",
                                       Snapshot(epoch * steps_per_epoch + i + 1, state,
                                                {"history": history, "partial": part}))
            if progress and log_now and totals.count:
                rate = (i + 1 - first_step) * tc.batch_size / (time.perf_counter() - t0)
                print(f"  epoch {epoch + 1} step {i + 1}/{steps_per_epoch} loss {totals.mean('loss'):.4f} "
                      f"acc {totals.mean('accuracy'):.3f} ({rate:.0f} img/s)", flush=True)
        if totals is None:  # the data gave fewer batches than steps_per_epoch, or none were left
            totals = sums.fetch()
            _check_finite(totals, epoch, steps_per_epoch, tc.nan_policy)
        train_time = elapsed_before + time.perf_counter() - t0
        record = {
            "epoch": epoch + 1,
            "train_loss": totals.mean("loss"),
            "train_accuracy": totals.mean("accuracy"),
            "grad_norm": totals.mean("grad_norm"),
        }
        evaluated = (epoch + 1) % tc.eval_every == 0 or epoch + 1 == tc.epochs
        if evaluated:
            ev = evaluate(state, eval_batches(tc.eval_batch_size))
            record.update({f"{split}_loss": ev["loss"], f"{split}_accuracy": ev["accuracy"],
                           f"{split}_top5": ev["top5"], "firing_rates": E.firing_rates(ev["stats"])})
        else:
            ev = None  # not evaluated this epoch: the state moved on since the last evaluation
        record.update(
            train_firing_rates=E.firing_rates(totals.mean_rates()),
            skipped_steps=totals.skipped,
            epoch_seconds=train_time,
            train_images_per_s=steps_per_epoch * tc.batch_size / train_time,
        )
        history.append(record)
        run.writer.write_scalars(epoch + 1, record_scalars(record, group="train", skip=("epoch",),
                                                           tags={"firing_rates": f"{split}/firing_rates"}))
        run.writer.flush()
        epochs_run += 1
        scores = (f"{split} loss {record[split + '_loss']:.4f} acc {record[split + '_accuracy']:.4f} | "
                  f"rate {np.mean(list(record['firing_rates'].values()) or [0]):.3f} | ") if evaluated else ""
        _log(f"epoch {epoch + 1}/{tc.epochs}: train loss {record['train_loss']:.4f} acc {record['train_accuracy']:.3f} | "
             f"{scores}{train_time:.1f}s ({record['train_images_per_s']:.0f} img/s)", progress)
        loop.save((epoch + 1) * steps_per_epoch, state, {"history": history})
        loop.stop_if_requested(f"after epoch {epoch + 1}")

    final = ev if (ev is not None and split == "test") else evaluate(state, ds.test_batches(tc.eval_batch_size))
    energy = E.energy_report(run.param_report, run.model_specs[0], final["stats"], cfg.model.T, batch=1)
    last = history[-1] if history else {}
    result = dict(
        name=cfg.name,
        config=cfg.to_dict(),
        history=history,
        epochs_completed=len(history),
        test_accuracy=final["accuracy"],
        test_top5=final["top5"],
        test_loss=final["loss"],
        val_accuracy=last.get("val_accuracy") if split == "val" else None,
        val_loss=last.get("val_loss") if split == "val" else None,
        params=run.param_report.as_dict(),
        energy=energy,
        data_fingerprint=ds.fingerprint() if hasattr(ds, "fingerprint") else "streamed: whole TFDS splits",
        provenance=provenance(),
    )
    if tc.final_train_eval:
        result.update(train_evaluation(steps, state, ds, tc.eval_batch_size, result["val_accuracy"], run.k_eval))
    if loop.checkpointing:
        loop.close()
        write_json(pathlib.Path(run.workdir) / "metrics.json", result)
    result["state"] = state
    return result


def train_evaluation(steps: Steps, state: TrainState, ds, batch_size: int, val_accuracy: float | None,
                     key: jax.Array | None = None) -> dict:
    """The training subset evaluated like the validation split (no augmentation, the
    trained state): ``train_eval_accuracy``, ``train_eval_loss`` and ``train_val_gap``
    (training minus validation accuracy, fractions; ``None`` without a validation split).
    ``key``: the evaluation's input-coding key (:func:`eval_key`).
    The history's ``train_accuracy`` is a running mean over augmented batches while the
    weights move, so it does not measure overfitting."""
    if not hasattr(ds, "train_images"):
        raise ValueError("train.final_train_eval needs an in-memory dataset; a streamed one (data.stream) has "
                         "no training subset to evaluate: set train.final_train_eval=false")
    batches = D.batches(ds.train_images, ds.train_labels, batch_size, seed=0, epoch=0, shuffle=False,
                        drop_remainder=False)
    ev = evaluate_batches(steps, state.params, state.batch_stats, batches, key=key, batch_size=batch_size)
    gap = None if val_accuracy is None else ev["accuracy"] - val_accuracy
    return dict(train_eval_accuracy=ev["accuracy"], train_eval_loss=ev["loss"], train_val_gap=gap)


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
    cfg = read_config_file(cfg_file).validate()
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

