"""Tests of gsnn.runtime: checkpoints that are never silently skipped, and the JSON
writer's non-finite floats."""
import json
import math
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsnn.runtime.checkpoint import Checkpointer, CheckpointError
from gsnn.runtime.records import to_jsonable, write_json


def _state(offset=0.0):
    return {"w": jnp.arange(6.0).reshape(2, 3) + offset, "step": jnp.asarray(3, jnp.int32)}


def _two_steps(workdir):
    """A run folder with checkpoints at steps 1 and 2; returns the abstract state."""
    ckpt = Checkpointer(workdir)
    ckpt.save(1, _state(0.0), {"history": [1]})
    ckpt.save(2, _state(10.0), {"history": [1, 2]})
    ckpt.close()
    return jax.eval_shape(_state)


def _restore(workdir, abstract):
    ckpt = Checkpointer(workdir)
    try:
        return ckpt.restore_latest(abstract)
    finally:
        ckpt.close()


# --------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------


def test_no_checkpoint_restores_none(tmp_path):
    assert _restore(tmp_path / "fresh", jax.eval_shape(_state)) is None
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    assert _restore(tmp_path / "empty", jax.eval_shape(_state)) is None


def test_the_newest_checkpoint_round_trips(tmp_path):
    abstract = _two_steps(tmp_path)
    state, meta = _restore(tmp_path, abstract)
    np.testing.assert_array_equal(state["w"], _state(10.0)["w"])
    assert int(state["step"]) == 3 and meta == {"history": [1, 2]}


def _truncate_data(step_dir):
    files = [f for f in (step_dir / "state").rglob("*") if f.is_file() and f.parent.name == "d"]
    assert files
    for f in files:
        f.write_bytes(f.read_bytes()[:8])


@pytest.mark.parametrize("corrupt", [
    lambda d: (d / "meta" / "metadata").unlink(),
    lambda d: (d / "state" / "_METADATA").unlink(),
    _truncate_data,
    lambda d: shutil.rmtree(d / "state"),
], ids=["meta deleted", "state metadata deleted", "array data truncated", "state deleted"])
def test_an_unreadable_newest_checkpoint_raises_naming_it(tmp_path, corrupt):
    """Not the previous step, not a fresh start: an error that says how to go on."""
    abstract = _two_steps(tmp_path)
    newest = tmp_path / "checkpoints" / "2"
    corrupt(newest)
    with pytest.raises(CheckpointError) as e:
        _restore(tmp_path, abstract)
    msg = str(e.value)
    assert f"{newest} (step 2) cannot be read" in msg
    assert f"previous checkpoint (step 1), remove {newest}" in msg
    assert f"remove {tmp_path / 'checkpoints'} or use a new workdir" in msg
    # following the message's advice resumes from the previous step
    shutil.rmtree(newest)
    state, meta = _restore(tmp_path, abstract)
    np.testing.assert_array_equal(state["w"], _state(0.0)["w"])
    assert meta == {"history": [1]}


def test_the_only_checkpoint_unreadable_says_there_is_no_earlier_one(tmp_path):
    ckpt = Checkpointer(tmp_path)
    ckpt.save(5, _state(), {"history": []})
    ckpt.close()
    (tmp_path / "checkpoints" / "5" / "meta" / "metadata").unlink()
    with pytest.raises(CheckpointError, match=r"checkpoints/5 \(step 5\) cannot be read.*no earlier checkpoint"):
        _restore(tmp_path, jax.eval_shape(_state))


def test_a_checkpoint_of_another_shape_is_an_error_not_a_fresh_start(tmp_path):
    _two_steps(tmp_path)
    other = jax.eval_shape(lambda: {"w": jnp.zeros((4, 4)), "step": jnp.zeros((), jnp.int32)})
    with pytest.raises(CheckpointError, match="step 2"):
        _restore(tmp_path, other)


# --------------------------------------------------------------------------------------
# JSON records
# --------------------------------------------------------------------------------------


def test_nan_and_inf_are_written_as_nan_and_infinity_never_null(tmp_path):
    record = {"loss": float("nan"), "hi": float("inf"), "lo": -math.inf, "ok": 0.5,
              "np": np.float32("nan"), "arr": jnp.asarray([1.0, jnp.inf, -jnp.inf, jnp.nan]),
              "scalar": jnp.asarray(jnp.nan), "nested": [{"x": np.float64("-inf")}]}
    path = write_json(tmp_path / "sub" / "rec.json", record)
    text = path.read_text()
    assert "null" not in text
    assert '"loss": NaN' in text and '"hi": Infinity' in text and '"lo": -Infinity' in text
    back = json.loads(text)  # Python's json reads NaN/Infinity back
    assert math.isnan(back["loss"]) and back["hi"] == math.inf and back["lo"] == -math.inf
    assert back["ok"] == 0.5 and math.isnan(back["np"]) and math.isnan(back["scalar"])
    assert back["arr"][:3] == [1.0, math.inf, -math.inf] and math.isnan(back["arr"][3])
    assert back["nested"][0]["x"] == -math.inf
    assert to_jsonable(float("nan")) != to_jsonable(float("nan"))  # a float NaN, not None or a string
    assert isinstance(to_jsonable(np.float32("inf")), float)
