"""orbax checkpoints of a loop's state and its JSON metadata (training and evolution)."""
from __future__ import annotations

import os
import pathlib
from typing import Any


class Checkpointer:
    """orbax checkpoints of (TrainState, metadata) under ``workdir/checkpoints``.

    Writes are atomic (orbax writes to a temporary folder and renames it); the two
    newest are kept so a half-written newest one can fall back to the previous.
    """

    def __init__(self, workdir: str | os.PathLike, max_to_keep: int = 2):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.dir = pathlib.Path(workdir).absolute() / "checkpoints"
        self.manager = ocp.CheckpointManager(
            self.dir, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        )

    def save(self, step: int, state, meta: dict) -> None:
        ocp = self._ocp
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                         meta=ocp.args.JsonSave(meta)))
        self.manager.wait_until_finished()

    def restore_latest(self, abstract_state) -> tuple[Any, dict] | None:
        """The newest readable checkpoint, or ``None``. A corrupt newest one is skipped
        with a warning and the previous one is used."""
        ocp = self._ocp
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                out = self.manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
                return out["state"], out["meta"]
            except Exception as e:  # noqa: BLE001 - any unreadable checkpoint
                print(f"warning: checkpoint {self.dir / str(step)} is unreadable ({type(e).__name__}: {e}); "
                      f"falling back to an older one", flush=True)
        return None

    def close(self):
        self.manager.close()
