"""orbax checkpoints of a loop's state and its JSON metadata (training and evolution)."""
from __future__ import annotations

import os
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gsnn.runtime import distributed as DI


class CheckpointError(RuntimeError):
    """The newest checkpoint of a run exists but cannot be read; nothing was restored.

    The message names the checkpoint and the two ways on: remove it to resume from the
    previous one, or remove the checkpoint folder (or use a new workdir) to start over.
    """


class Checkpointer:
    """orbax checkpoints of (TrainState, metadata) under ``workdir/checkpoints``.

    In a job of several processes every process calls :meth:`save` and
    :meth:`restore_latest`; the folder must be one every host sees (a shared filesystem).

    Writes are atomic (orbax writes to a temporary folder and renames it); the two
    newest are kept, so when the newest is damaged the previous one is still there to
    resume from (after removing the newest; :meth:`restore_latest` never skips it by itself).
    """

    def __init__(self, workdir: str | os.PathLike, max_to_keep: int = 2):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.dir = pathlib.Path(workdir).absolute() / "checkpoints"
        self.manager = ocp.CheckpointManager(
            self.dir, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        )

    def save(self, step: int, state, meta: dict) -> None:
        """Writes ``state`` and ``meta`` as checkpoint ``step`` (every process of a job
        calls it; the state's values are process-local copies, the same on every process:
        :mod:`gsnn.runtime.distributed`). Across processes they are saved as NumPy
        arrays, which orbax writes from process 0 only; one process saves them as they are."""
        ocp = self._ocp
        if DI.multiprocess():
            state = jax.device_get(state)
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                         meta=ocp.args.JsonSave(meta)))
        self.manager.wait_until_finished()

    def restore_latest(self, abstract_state) -> tuple[Any, dict] | None:
        """The newest checkpoint as ``(state, meta)``, or ``None`` when there is none.

        Never falls back silently: a newest checkpoint that exists but cannot be read
        (damaged files, or a state of another shape than ``abstract_state``) raises
        :class:`CheckpointError` instead of restoring an older one or starting fresh.

        Args:
          abstract_state: the state's pytree of ``jax.ShapeDtypeStruct`` (``jax.eval_shape``).

        Raises:
          CheckpointError: naming ``<dir>/<step>`` and how to go on.
        """
        ocp = self._ocp
        listed = sorted(self.manager.all_steps())
        on_disk = sorted(int(p.name) for p in self.dir.iterdir() if p.is_dir() and p.name.isdigit()) \
            if self.dir.is_dir() else []
        steps = sorted(set(listed) | set(on_disk))
        if not steps:
            return None
        step = steps[-1]
        if step not in listed:
            raise self._unreadable(step, steps, "orbax does not recognise it as a finished checkpoint")
        across = DI.multiprocess()
        if across:  # every process reads the whole arrays, as NumPy (no sharding to name)
            abstract_state = jax.tree_util.tree_map(lambda s: np.empty(s.shape, s.dtype), abstract_state)
        try:
            out = self.manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
        except Exception as e:  # noqa: BLE001 - whatever orbax raises, the checkpoint is unreadable
            first = (str(e).strip().splitlines() or [""])[0][:300]
            raise self._unreadable(step, steps, f"{type(e).__name__}: {first}") from e
        state = jax.tree_util.tree_map(jnp.asarray, out["state"]) if across else out["state"]
        return state, out["meta"]

    def _unreadable(self, step: int, steps: list[int], why: str) -> CheckpointError:
        path = self.dir / str(step)
        start_over = f"to start over, remove {self.dir} or use a new workdir"
        how = (f"To resume from the previous checkpoint (step {steps[-2]}), remove {path}; {start_over}"
               if len(steps) > 1 else f"There is no earlier checkpoint; {start_over}")
        return CheckpointError(f"the newest checkpoint {path} (step {step}) cannot be read ({why}); nothing was "
                               f"restored. {how}")

    def close(self):
        self.manager.close()
