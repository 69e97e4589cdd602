"""Metric writers: the scalars of every epoch or generation, for TensorBoard, written
beside the JSON records (which stay the reference; a writer changes no computation).

    with workdir_writer(workdir, resume_at=len(history)) as writer:
        for epoch in ...:
            ...
            writer.write_scalars(epoch + 1, record_scalars(record, group="train"))

Event files are written by tensorboardX (pure Python and protobuf): TensorFlow is never
imported. View them with ``tensorboard --logdir <workdir>/tensorboard`` (or the parent
folder of several workdirs, to compare runs).
"""
from __future__ import annotations

import numbers
import os
import pathlib
import time
from typing import Iterable, Mapping, Protocol

import tensorboardX
from tensorboardX.proto.summary_pb2 import Summary

from gsnn.runtime import distributed as DI

SPLITS = ("train", "val", "test")  # record keys ``<split>_<name>`` become tags ``<split>/<name>``


class MetricWriter(Protocol):
    """Something that takes scalars by step: ``step`` is the loop's own counter (the
    1-based epoch of training, the 1-based generation of evolution), not optimiser steps."""

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class _Writer:
    """Context manager support: ``with writer:`` closes it on the way out (exceptions too)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class NullWriter(_Writer):
    """Writes nothing (runs without a workdir)."""

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        pass


class TensorBoardWriter(_Writer):
    """Scalars as TensorBoard events under ``logdir`` (a ``tensorboardX.SummaryWriter``).

    Values are written as given, NaN and Inf included, in TensorBoard's ``simple_value``
    (float32), one event per step. The event file is created on the first write, so a
    writer that never writes leaves no file. ``purge_step``: on resuming, the first step this run writes;
    TensorBoard then drops older events at that step or later (those written after the
    last checkpoint by a run that was killed), so resumed curves hold each step once.
    Events are flushed every ``flush_secs`` seconds and on :meth:`close`.
    """

    def __init__(self, logdir: str | os.PathLike, *, purge_step: int | None = None, flush_secs: int = 10):
        self.logdir = pathlib.Path(logdir)
        self.purge_step = purge_step
        self.flush_secs = flush_secs
        self._writer: tensorboardX.SummaryWriter | None = None

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        if self._writer is None:
            # file names hold the time in whole seconds and the file is opened "wb": the
            # suffix keeps a quickly resumed run from overwriting the previous file
            self._writer = tensorboardX.SummaryWriter(str(self.logdir), purge_step=self.purge_step,
                                                      flush_secs=self.flush_secs, filename_suffix=f".{time.time_ns()}")
            self.purge_step = None  # a reopened writer appends
        # one Event per step holding every tag, built here rather than by add_scalar, which
        # logs a warning for every NaN or Inf value
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(v)) for tag, v in scalars.items()])
        self._writer.file_writer.add_summary(summary, int(step))

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class MultiWriter(_Writer):
    """Writes to each of ``writers`` in turn."""

    def __init__(self, writers: Iterable[MetricWriter]):
        self.writers = list(writers)

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        for w in self.writers:
            w.write_scalars(step, scalars)

    def flush(self) -> None:
        for w in self.writers:
            w.flush()

    def close(self) -> None:
        for w in self.writers:
            w.close()


def workdir_writer(workdir: str | os.PathLike | None, *, resume_at: int = 0) -> MetricWriter:
    """The writer of a loop's run: :class:`TensorBoardWriter` at ``<workdir>/tensorboard``,
    or a :class:`NullWriter` without a workdir and on every process but process 0 of a
    job. ``resume_at``: the number of epochs or generations already recorded (the next
    step written is ``resume_at + 1``)."""
    if workdir is None or not DI.is_primary():  # a job of several processes: process 0 writes
        return NullWriter()
    return TensorBoardWriter(pathlib.Path(workdir) / "tensorboard", purge_step=resume_at + 1 if resume_at else None)


def record_scalars(record: Mapping, *, group: str, tags: Mapping[str, str] | None = None,
                   skip: Iterable[str] = ()) -> dict[str, float]:
    """The numbers of a JSON record as ``tag -> float``.

    A key's tag is ``tags[key]`` if given, else ``<split>/<name>`` for a key
    ``<split>_<name>`` (split one of :data:`SPLITS`), else ``<group>/<key>``. Nested dicts
    of numbers become ``<tag>/<sub key>``; bools count as 0/1; strings, lists and ``None``
    are left out, and so are the keys in ``skip`` (e.g. the step itself).
    """
    tags, skip = dict(tags or {}), set(skip)
    out: dict[str, float] = {}
    for key, value in record.items():
        if key in skip:
            continue
        split, _, name = key.partition("_")
        tag = tags.get(key) or (f"{split}/{name}" if split in SPLITS and name else f"{group}/{key}")
        _add(out, tag, value)
    return out


def _add(out: dict, tag: str, value) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _add(out, f"{tag}/{k}", v)
    elif isinstance(value, numbers.Real):  # bool, int, float and NumPy scalars
        out[tag] = float(value)
