"""Tests of the metric writers (gsnn.runtime.writers) and of the TensorBoard scalars that
training and evolution write beside their JSON records."""
import json
import math
import pathlib
import struct
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tensorboardX.crc32c import crc32c
from tensorboardX.proto.event_pb2 import Event

from gsnn import config as cfgs
from gsnn import data as D
from gsnn import evolution as EV
from gsnn.evolution import loop as evolution_loop
from gsnn.nn import networks as M
from gsnn import training
from gsnn.runtime import writers as W

REPO = pathlib.Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------
# A reader of event files: TFRecord framing, then the Event protobuf
# --------------------------------------------------------------------------------------


def _masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_events(path) -> list[Event]:
    """Every Event of one file; each record is ``uint64 length, uint32 masked crc of the
    length, data, uint32 masked crc of the data`` (little-endian), both CRCs checked."""
    raw = pathlib.Path(path).read_bytes()
    events, pos = [], 0
    while pos < len(raw):
        header = raw[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", raw[pos + 8:pos + 12])
        assert length_crc == _masked_crc(header)
        data = raw[pos + 12:pos + 12 + length]
        (data_crc,) = struct.unpack("<I", raw[pos + 12 + length:pos + 16 + length])
        assert data_crc == _masked_crc(data)
        events.append(Event.FromString(data))
        pos += 16 + length
    assert pos == len(raw)
    return events


def read_logdir(logdir) -> tuple[dict[str, list[tuple[int, float]]], list[Event]]:
    """``(tag -> [(step, value), ...], all events)`` over the event files of ``logdir``
    in the order they were written."""
    files = sorted(pathlib.Path(logdir).glob("events.out.tfevents.*"))  # as TensorBoard orders them
    assert files, f"no event file under {logdir}"
    scalars: dict[str, list[tuple[int, float]]] = {}
    events = [e for f in files for e in read_events(f)]
    for e in events:
        for v in e.summary.value:
            scalars.setdefault(v.tag, []).append((e.step, v.simple_value))
    return scalars, events


def same(a: float, b: float) -> bool:
    """Equal after TensorBoard's float32 storage, NaN equal to NaN."""
    a, b = np.float32(a), np.float32(b)
    return bool(a == b or (np.isnan(a) and np.isnan(b)))


# --------------------------------------------------------------------------------------
# The writers
# --------------------------------------------------------------------------------------


def test_tensorboard_writer_round_trips_tags_steps_and_non_finite_values(tmp_path):
    written = {1: {"train/loss": 2.5, "val/accuracy": 0.125},
               2: {"train/loss": float("nan"), "val/accuracy": 0.25, "train/skipped": 3},
               3: {"train/loss": float("inf"), "val/accuracy": -float("inf")}}
    with W.TensorBoardWriter(tmp_path / "tb") as w:
        for step, scalars in written.items():
            w.write_scalars(step, scalars)
    scalars, events = read_logdir(tmp_path / "tb")
    assert events[0].file_version == "brain.Event:2"
    assert set(scalars) == {"train/loss", "val/accuracy", "train/skipped"}
    for tag, got in scalars.items():
        want = [(step, s[tag]) for step, s in written.items() if tag in s]
        assert [s for s, _ in got] == [s for s, _ in want]
        assert all(same(g, w) for (_, g), (_, w) in zip(got, want)), (tag, got, want)
    assert math.isnan(scalars["train/loss"][1][1])


def test_writer_without_writes_leaves_no_file_and_null_and_multi_writers(tmp_path):
    with W.TensorBoardWriter(tmp_path / "unused"):
        pass
    assert not (tmp_path / "unused").exists()
    assert isinstance(W.workdir_writer(None), W.NullWriter)
    with W.MultiWriter([W.NullWriter(), W.workdir_writer(tmp_path / "run", resume_at=4)]) as w:
        w.write_scalars(5, {"a/b": 1.0})
    scalars, events = read_logdir(tmp_path / "run" / "tensorboard")
    assert scalars == {"a/b": [(5, 1.0)]}
    # resumed: a SessionLog.START at the first new step tells TensorBoard to drop older events from there on
    assert any(e.step == 5 and e.session_log.status == e.session_log.START for e in events)


def test_writers_opened_within_one_second_keep_their_own_files(tmp_path):
    for step in (1, 2, 3):
        with W.TensorBoardWriter(tmp_path) as w:
            w.write_scalars(step, {"x": float(step)})
    assert len(list(tmp_path.glob("events.out.tfevents.*"))) == 3
    assert read_logdir(tmp_path)[0] == {"x": [(1, 1.0), (2, 2.0), (3, 3.0)]}


def test_record_scalars_names_tags_by_split_and_group():
    record = {"epoch": 3, "train_loss": 0.5, "val_top5": 1, "grad_norm": 2.0, "firing_rates": {"fc1": 0.1},
              "ok": True, "name": "x", "hist": [1, 2], "none": None, "test_accuracy": np.float32(0.5)}
    got = W.record_scalars(record, group="train", skip=("epoch",), tags={"firing_rates": "val/firing_rates"})
    assert got == {"train/loss": 0.5, "val/top5": 1.0, "train/grad_norm": 2.0, "val/firing_rates/fc1": 0.1,
                   "train/ok": 1.0, "test/accuracy": 0.5}


def test_writing_events_never_imports_tensorflow(tmp_path):
    code = textwrap.dedent(f"""
        import importlib.util, sys
        from gsnn.runtime.writers import TensorBoardWriter
        with TensorBoardWriter({str(tmp_path)!r}) as w:
            w.write_scalars(1, {{"train/loss": 1.0, "val/accuracy": float("nan")}})
        loaded = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))
        assert not loaded, loaded
        print("tensorflow installed:", importlib.util.find_spec("tensorflow") is not None)
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert list(tmp_path.glob("events.out.tfevents.*"))


# --------------------------------------------------------------------------------------
# The loops
# --------------------------------------------------------------------------------------


def tiny_train_config():
    return cfgs.Config(
        name="tiny_tb",
        model=M.ModelConfig(arch="mlp", hidden=(32,), T=2, genetic=cfgs.GeneticConfig(encoding="direct")),
        train=cfgs.TrainConfig(optimizer="sgd", learning_rate=0.1, epochs=2, batch_size=50, eval_batch_size=100,
                            log_every=0),
        data=cfgs.DataConfig(source="demo", augment=False),
    ).validate()


def test_training_writes_the_history_to_tensorboard_across_a_resume(tmp_path):
    ds = D.load_dataset("demo").subset(train_per_class=20, test_per_class=10, seed=0)
    cfg = tiny_train_config()
    training.train_and_evaluate(cfg, tmp_path, dataset=ds, progress=False, stop_after_epochs=1)
    resumed = training.train_and_evaluate(cfg, tmp_path, dataset=ds, progress=False)
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert history == json.loads(json.dumps(resumed["history"]))

    scalars, events = read_logdir(tmp_path / "tensorboard")
    assert {"train/loss", "train/accuracy", "train/grad_norm", "test/loss", "test/accuracy", "test/top5",
            "train/epoch_seconds", "train/images_per_s", "train/skipped_steps"} <= set(scalars)
    assert any(t.startswith("test/firing_rates/") for t in scalars)
    assert any(t.startswith("train/firing_rates/") for t in scalars)
    for tag, key in [("train/loss", "train_loss"), ("train/accuracy", "train_accuracy"),
                     ("test/accuracy", "test_accuracy"), ("train/epoch_seconds", "epoch_seconds")]:
        assert [s for s, _ in scalars[tag]] == [h["epoch"] for h in history] == [1, 2]
        assert all(same(v, h[key]) for (_, v), h in zip(scalars[tag], history)), tag
    # the resumed call marks its first epoch so that TensorBoard drops anything newer from the killed one
    assert any(e.step == 2 and e.session_log.status == e.session_log.START for e in events)


@pytest.mark.slow  # ~10 s, most of it compiling
def test_evolution_writes_every_generation_to_tensorboard(tmp_path, monkeypatch):
    """Through the real loop (ask, evaluate, tell, checkpoint, resume) with the population
    evaluation replaced by a cheap function; spatial is NaN (but for one individual) to show
    NaN reaching TensorBoard."""
    real = EV.make_problem

    def cheap(cfg, dataset):
        p = real(cfg, dataset)

        def evaluate(pop, *args):
            f = -sum(jnp.sum(a ** 2, axis=tuple(range(1, a.ndim))) for a in jax.tree_util.tree_leaves(pop))
            zeros = jnp.zeros_like(f)
            # spatial NaN for all but individual 0, which stays a comparable best (a search
            # with no finite score at all is an error, SearchDivergedError)
            spatial = jnp.where(jnp.arange(f.shape[0]) == 0, 0.0, jnp.nan)
            return dict(fitness=f, accuracy_term=zeros + 0.5, val_accuracy=zeros + 0.5, val_loss=zeros + 2.0,
                        spatial=spatial, temporal=zeros, lambda_s=zeros, lambda_t=zeros)

        p.evaluate_population = evaluate
        return p

    monkeypatch.setattr(evolution_loop, "make_problem", cheap)
    ds = D.load_dataset("demo").subset(train_per_class=12, test_per_class=4, seed=0)
    cfg = cfgs.Config(
        name="tiny_evolve_tb",
        model=M.ModelConfig(arch="mlp", hidden=(16,), T=2, genetic=cfgs.GeneticConfig(encoding="position", genes=4)),
        train=cfgs.TrainConfig(learning_rate=0.05, epochs=1, batch_size=16, log_every=0),
        evolve=cfgs.EvolveConfig(search=cfgs.SearchConfig(strategy="open_es", population=4, generations=3),
                                 inner=cfgs.InnerLoopConfig(steps=2, batch=16, val_size=40),
                                 wiring=cfgs.WiringGenomeConfig(preserve_scale=False),
                                 fitness=cfgs.FitnessConfig(lambda_s=0.1, lambda_t=0.1, signal_every=0),
                                 evaluation=cfgs.EvaluationConfig(shard=False, chunk_size=0)),
    ).validate()
    EV.evolve(cfg, tmp_path, dataset=ds, progress=False, stop_after_generations=2)
    gens = EV.evolve(cfg, tmp_path, dataset=ds, progress=False)["generations"]
    scalars, events = read_logdir(tmp_path / "tensorboard")
    assert "evolve/generation" not in scalars
    assert set(scalars) == {f"evolve/{k}" for k in gens[0] if k != "generation"}
    for tag, got in scalars.items():
        key = tag.removeprefix("evolve/")
        assert [s for s, _ in got] == [g["generation"] for g in gens] == [1, 2, 3]
        assert all(same(v, g[key]) for (_, v), g in zip(got, gens)), key
    assert all(math.isnan(v) for _, v in scalars["evolve/mean_spatial"])
    assert any(e.step == 3 and e.session_log.status == e.session_log.START for e in events)
