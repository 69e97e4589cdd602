"""The resumable loop both the epoch loop and the generation loop run on: checkpoints
under one folder, the same-config check, graceful SIGINT/SIGTERM.

    loop = ResumableLoop(workdir, config=cfg.to_dict(), resume_hint="gsnn train --resume ...")
    restored = loop.restore(abstract_tree)          # (tree, meta) or None
    with loop:                                      # SIGINT/SIGTERM become a flag
        for unit in ...:
            ...
            loop.save(step, tree, meta)             # meta gains "config"
            loop.stop_if_requested(f"after epoch {n}")
        loop.close()

Checkpoints go to ``directory/checkpoints`` (training: the workdir; evolution:
``workdir/evolution``). With ``directory=None`` nothing is saved or restored and an
interruption says so.
"""
from __future__ import annotations

import os
import pathlib
import signal
from typing import Any, NamedTuple

from gsnn.runtime import distributed as DI
from gsnn.runtime.checkpoint import Checkpointer
from gsnn.runtime.interrupt import GracefulInterrupt


class Snapshot(NamedTuple):
    """What one checkpoint holds: the step it is numbered by, a device pytree and JSON
    metadata (history, position inside the unit, best so far...)."""

    step: int
    tree: Any
    meta: dict


def flat_dict(d: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}} -> {"a.b": 1}``."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat_dict(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_diff(old: dict, new: dict) -> list[str]:
    """The dotted keys whose values differ between two config dicts (sorted)."""
    a, b = flat_dict(old), flat_dict(new)
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def check_same_config(old: dict, new: dict, holder: str) -> None:
    """Raises ``ValueError`` naming the differing keys when ``old != new``; ``holder``
    starts the message (``"workdir W holds a run"``)."""
    if old != new:
        raise ValueError(f"{holder} of a different config (differs in {config_diff(old, new)}); "
                         f"use a new workdir or the same config")


class ResumableLoop:
    """Checkpoints, the resume protocol and graceful interruption of one loop.

    Args:
      directory: the folder whose ``checkpoints/`` this loop writes (created), or
        ``None``: no checkpoints.
      config: the run's config as a dict; saved in every checkpoint's metadata.
      resume_hint: the command printed when an interruption stops the run.
      what: how messages name a run (``"a run"``, ``"an evolution"``).
      max_to_keep: checkpoints kept (the newest ones).
    """

    def __init__(self, directory: str | os.PathLike | None, *, config: dict, resume_hint: str,
                 what: str = "a run", max_to_keep: int = 2):
        self.config = config
        self.resume_hint = resume_hint
        self.what = what
        self._ckpt = Checkpointer(directory, max_to_keep=max_to_keep) if directory is not None else None
        self._interrupt = GracefulInterrupt()
        self._closed = False

    @property
    def checkpointing(self) -> bool:
        return self._ckpt is not None

    @property
    def dir(self) -> pathlib.Path | None:
        """The checkpoint folder (``directory/checkpoints``), or ``None``."""
        return self._ckpt.dir if self._ckpt is not None else None

    @property
    def requested(self) -> bool:
        """Whether SIGINT/SIGTERM arrived (inside ``with loop``). In a job of several
        processes, whether it arrived at any of them: every process reads it at the same
        point of the loop (a gather), so all stop after the same step."""
        if DI.multiprocess():
            signum = DI.max_over_processes(self._interrupt.signum or 0)
            if signum and not self._interrupt.requested:
                self._interrupt.signum = signum
                print(f"another process of this job received {signal.Signals(signum).name}: stopping with it",
                      flush=True)
        return self._interrupt.requested

    def __enter__(self) -> "ResumableLoop":
        self._interrupt.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._interrupt.__exit__(*exc)
        self.close()

    def restore(self, abstract_tree) -> tuple[Any, dict] | None:
        """``(tree, meta)`` of the newest checkpoint, or ``None`` (none, or no directory)."""
        if self._ckpt is None:
            return None
        return self._ckpt.restore_latest(abstract_tree)

    def check_same_config(self, old: dict, new: dict, where: str | os.PathLike | None = None) -> None:
        """:func:`check_same_config` with this loop's wording; ``where`` defaults to the
        checkpoint folder."""
        check_same_config(old, new, f"{where if where is not None else self.dir} holds {self.what}")

    def save(self, step: int, tree, meta: dict) -> None:
        """A checkpoint numbered ``step``; ``meta`` is stored with ``config`` added.
        Does nothing without a directory."""
        if self._ckpt is not None:
            self._ckpt.save(step, tree, {**meta, "config": self.config})

    def stop_if_requested(self, where: str, snapshot: Snapshot | None = None) -> None:
        """After SIGINT/SIGTERM: save ``snapshot`` (when given), close and raise
        :class:`~gsnn.runtime.interrupt.RunInterrupted` saying ``where`` the run
        stopped and how to resume. Otherwise nothing."""
        if not self.requested:
            return
        if self._ckpt is None:
            raise self._interrupt.interrupted(where + " (no workdir: nothing saved)", "a new run")
        if snapshot is not None:
            self.save(*snapshot)
        self.close()
        raise self._interrupt.interrupted(where, self.resume_hint)

    def close(self) -> None:
        """Waits for and closes the checkpointer (once)."""
        if self._ckpt is not None and not self._closed:
            self._ckpt.close()
        self._closed = True
