"""The ``gsnn`` command: params, train (with kill-and-resume), demo --quick."""
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from gsnn import cli
from gsnn.config import GeneticConfig, ModelConfig
from gsnn.nn import networks

REPO = pathlib.Path(__file__).resolve().parents[1]
PARAM_KEYS = {"direct_params", "stored_params", "compression", "per_layer", "arch", "encoding", "genes"}
# timing fields differ between any two runs; everything else must match bitwise
TIMING_KEYS = {"epoch_seconds", "train_images_per_s"}


def _params(tmp_path, *extra):
    path = tmp_path / "out" / "params.json"  # parent created by the CLI
    assert cli.main(["params", "--arch", "resnet19", "--num-classes", "10", *extra, "--json", str(path)]) == 0
    return json.loads(path.read_text())


def _tree_count(d, first_direct: bool, last_direct: bool) -> tuple[int, int]:
    """Independent counts for a params report ``d``: the scalars of the network's
    initialised parameter tree (what it stores and trains), and of the same network with
    every layer direct (what ``direct_params`` counts)."""

    def count(genetic):
        model = networks.build_model(ModelConfig(arch=d["arch"], num_classes=10, genetic=genetic))
        tree = jax.eval_shape(lambda: networks.init_variables(model, jax.random.key(0), (32, 32, 3)))["params"]
        return sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(tree))

    encoded = GeneticConfig(encoding=d["encoding"], genes=d["genes"] if d["encoding"] != "direct" else 0,
                            first_direct=first_direct, last_direct=last_direct)
    return count(encoded), count(GeneticConfig())


def _check_consistent(d, first_direct=False, last_direct=False):
    assert PARAM_KEYS <= set(d)
    assert (d["stored_params"], d["direct_params"]) == _tree_count(d, first_direct, last_direct)
    layers = d["per_layer"]
    assert d["direct_params"] == sum(r["direct_params"] for r in layers) + d["unencoded_params"]
    assert d["stored_params"] == (sum(r["stored_params"] for r in layers) + d["interaction_params"]
                                   + d["population_params"] + d["unencoded_params"])
    assert d["compression"] == pytest.approx(1 - d["stored_params"] / d["direct_params"])
    if d["encoding"] != "direct":
        assert d["interaction_params"] == d["genes"] ** 2


def test_params_resnet19_position(tmp_path, capsys):
    d = _params(tmp_path, "--encoding", "position", "--genes", "96")
    _check_consistent(d)
    assert (d["arch"], d["encoding"], d["genes"]) == ("resnet19", "position", 96)
    assert 0.5 <= d["compression"] <= 0.8
    assert all(r["encoding"] == "position" for r in d["per_layer"])
    out = capsys.readouterr().out
    assert "stem_conv" in out and "compression" in out and f"{d['stored_params']:,}" in out


def test_params_resnet19_neuron_first_last_direct(tmp_path):
    d = _params(tmp_path, "--encoding", "neuron", "--genes", "64")
    _check_consistent(d)
    assert d["compression"] > 0.9
    e = _params(tmp_path, "--encoding", "neuron", "--genes", "64", "--first-direct", "--last-direct")
    _check_consistent(e, first_direct=True, last_direct=True)
    assert [r["encoding"] for r in e["per_layer"]][0] == "direct"
    assert [r["encoding"] for r in e["per_layer"]][-1] == "direct"
    assert e["direct_params"] == d["direct_params"] and e["stored_params"] > d["stored_params"]


def test_params_direct_has_no_compression(tmp_path):
    d = _params(tmp_path)
    _check_consistent(d)
    assert d["stored_params"] == d["direct_params"] and d["compression"] == 0


@pytest.mark.parametrize("argv, needle", [
    (["params", "--arch", "resnet20", "--num-classes", "10"], "resnet19"),
    (["params", "--arch", "convnet_s", "--num-classes", "10", "--encoding", "neuron"], "--genes"),
    (["params", "--arch", "convnet_s", "--num-classes", "10", "--input-shape", "32,32"], "H,W,C"),
    (["train", "--config", "no_such_config"], "demo_direct"),
    (["train", "--config", "demo_direct", "--set", "train.epoch=3"], "epochs"),
    (["train", "--resume", "/nonexistent/run"], "/nonexistent/run"),
])
def test_bad_input_exits_2_without_traceback(argv, needle, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and "Traceback" not in err


def test_unknown_arch_lists_valid_names(capsys):
    assert cli.main(["params", "--arch", "nope", "--num-classes", "10"]) == 2
    err = capsys.readouterr().err
    for name in ("convnet_s", "mlp", "resnet18", "resnet19", "resnet34", "vgg11", "vgg16"):
        assert name in err


def test_resume_requires_a_run(tmp_path, capsys):
    assert cli.main(["train", "--config", "demo_direct", "--resume", str(tmp_path)]) == 2
    assert "neither" in capsys.readouterr().err


def test_resume_reads_the_stored_config_strictly(tmp_path, capsys):
    """``gsnn train --resume DIR`` takes DIR/config.json as it is: a key the schema does
    not know (or lacks) is reported with the file, not dropped or defaulted."""
    from gsnn import config as cfgs

    stored = json.loads(cfgs.load_config("demo_direct").to_json())
    stored["model"]["foo"] = 1
    del stored["train"]["epochs"]
    (tmp_path / "config.json").write_text(json.dumps(stored))
    assert cli.main(["train", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'config.json'}: unknown key(s) model.foo; missing key(s) train.epochs" in err


def test_evolve_config_name_from_another_folder_names_the_search_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GSNN_CONFIG_PATH", raising=False)
    assert cli.main(["evolve", "--config", "evolve_demo"]) == 2
    err = capsys.readouterr().err
    assert "error: unknown config 'evolve_demo': no evolve_demo.py in the folders searched" in err
    assert str(tmp_path / "experiments" / "configs") in err and "GSNN_CONFIG_PATH" in err


@pytest.mark.slow
def test_train_smoke_writes_json(tmp_path, capsys):
    out = tmp_path / "res" / "train.json"
    rc = cli.main(["train", "--config", "demo_direct", "--set", "smoke=true", "--workdir", str(tmp_path / "wd"),
                   "--json", str(out), "--quiet"])
    assert rc == 0
    r = json.loads(out.read_text())
    assert 0.0 <= r["test_accuracy"] <= 1.0
    assert "state" not in r and len(r["history"]) == 1
    assert r["config"]["smoke"] is True
    assert {"energy_uj", "acs", "macs", "mean_firing_rate"} <= set(r["energy"])
    text = capsys.readouterr().out
    assert "test acc" in text and "energy uJ/inf" in text and "epoch 1/1" not in text  # --quiet


@pytest.mark.slow
def test_demo_quick(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--quick", "--evolve", "--out", str(out)]) == 0
    r = json.loads((out / "demo.json").read_text())
    assert [v["variant"] for v in r["variants"]] == ["direct", "neuron_r2", "direct_w033", "position_r2", "position",
                                                     "evolved"]
    gens = r["evolution"]["generations"]
    assert len(gens) == 2 and all(g["generation"] == i + 1 for i, g in enumerate(gens))
    for v in r["variants"]:
        assert 0 <= v["test_accuracy"] <= 1 and v["params"] > 0 and v["energy_uj"] > 0
        assert 0 < v["deployed_energy_uj"] <= v["energy_uj"] + 1e-12  # generating W once never costs more
        assert v["firing_rates"] and len(v["history"]) == 1
    rows = {v["variant"]: v for v in r["variants"]}
    assert rows["direct"]["deployed_energy_uj"] == pytest.approx(rows["direct"]["energy_uj"])
    assert rows["neuron_r2"]["rules"] == 2 and rows["neuron_r2"]["synthesis_macs"] > 0
    assert rows["direct_w033"]["width"] < rows["direct"]["width"]
    assert r["settings"]["quick"] is True
    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "uJ/inf (W once)" in text and "neuron_r2 (g=40x2)" in text and "evolved (g=" in text
    assert "One seed on 100 test images" in text and "experiments/RESULTS.md" in text
    assert r["evolution"]["paired"] and "on the same base draw (a paired twin)" in text
    assert r["evolution"]["signal"]["every"] == r["evolution"]["settings"]["fitness"]["signal_every"]


def test_demo_says_when_evolved_trails_random_wiring_and_why():
    from gsnn import demo

    rows = lambda evolved: [dict(variant="position", test_accuracy=0.353), dict(variant="evolved", test_accuracy=evolved)]
    evo = dict(signal=dict(spearman=0.12))
    text = demo._evolved_vs_random(rows(0.307), evo)
    assert "evolved is 4.6 points below random wiring" in text and "generation 1: 0.12" in text
    assert "close to random" in text
    assert demo._evolved_vs_random(rows(0.36), evo) == ""  # not worse: nothing to explain
    assert "not measured" in demo._evolved_vs_random(rows(0.30), dict(signal=dict(spearman=None)))
    # a fitness with signal: the reason is then the horizon, not the noise
    text = demo._evolved_vs_random(rows(0.30), dict(signal=dict(spearman=0.71)))
    assert "separates genomes (rank correlation 0.71" in text and "horizon" in text and "noise" not in text


def _strip_timing(history):
    return [{k: v for k, v in h.items() if k not in TIMING_KEYS} for h in history]


TINY_TRAIN = ["train", "--config", "demo_direct", "--set", "model.width=0.125", "model.T=2", "train.epochs=3",
              "train.batch_size=16", "train.eval_batch_size=40", "data.train_per_class=128",
              "data.test_per_class=4", "train.log_every=0"]


def _env():
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _checkpoints(wd: pathlib.Path) -> list[int]:
    d = wd / "checkpoints"
    return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def _start_and_wait_for_checkpoint(tmp_path, wd, out):
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "gsnn.cli", *TINY_TRAIN, "--workdir", str(wd), "--json", str(out)],
                            stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=tmp_path)
    deadline = time.time() + 180
    while not _checkpoints(wd):
        assert proc.poll() is None, (tmp_path / "killed.log").read_text()
        assert time.time() < deadline, "no checkpoint after 180 s"
        time.sleep(0.02)
    return proc, log


def _resume_and_compare(tmp_path, wd, out, ref):
    resumed = subprocess.run([sys.executable, "-m", "gsnn.cli", "train", "--resume", str(wd), "--json", str(out)],
                             capture_output=True, text=True, env=_env(), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed from" in resumed.stdout
    r = json.loads(out.read_text())
    assert len(r["history"]) == 3
    assert _strip_timing(r["history"]) == _strip_timing(ref["history"])
    for key in ("test_accuracy", "test_top5", "test_loss", "energy", "params"):
        assert r[key] == ref[key], key


@pytest.fixture(scope="module")
def train_reference(tmp_path_factory):
    """An uninterrupted run of TINY_TRAIN: its JSON result."""
    tmp = tmp_path_factory.mktemp("ref")
    assert cli.main(TINY_TRAIN + ["--workdir", str(tmp / "ref"), "--json", str(tmp / "ref.json"), "--quiet"]) == 0
    ref = json.loads((tmp / "ref.json").read_text())
    ref["workdir"] = str(tmp / "ref")
    return ref


def test_two_identical_training_runs_give_identical_json(tmp_path, train_reference):
    out = tmp_path / "again.json"
    assert cli.main(TINY_TRAIN + ["--workdir", str(tmp_path / "again"), "--json", str(out), "--quiet"]) == 0
    again = json.loads(out.read_text())
    again["workdir"] = train_reference["workdir"]
    a, b = (dict(r, history=_strip_timing(r["history"])) for r in (again, train_reference))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_eval_robustness_at_zero_noise_reproduces_the_test_accuracy(tmp_path, train_reference, capsys):
    out, png = tmp_path / "rob.json", tmp_path / "rob.png"
    wd = train_reference["workdir"]
    assert cli.main(["eval", "--workdir", wd, "--labels", "tiny", "--robustness", "--json", str(out),
                     "--plot", str(png)]) == 0
    r = json.loads(out.read_text())
    acc = train_reference["test_accuracy"]
    assert r["runs"]["tiny"]["test_accuracy"] == acc
    rob = r["robustness"]["tiny"]
    assert [x["level"] for x in rob["time_steps"]] == [2, 1]
    assert rob["input_noise"][0] == dict(level=0.0, accuracy=acc)
    assert rob["param_noise"][0] == dict(level=0.0, accuracy=acc)
    assert rob["time_steps"][0] == dict(level=2, accuracy=acc)
    assert len(rob["input_noise"]) == 5 and len(rob["param_noise"]) == 5
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "| parameter noise eps |" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0])
def test_kill_and_resume_matches_uninterrupted_run(tmp_path, train_reference, seed):
    """SIGKILL at a seeded random moment after the first checkpoint, resume: the same
    history and accuracy as the uninterrupted run."""
    wd, out = tmp_path / "run", tmp_path / "run.json"
    proc, log = _start_and_wait_for_checkpoint(tmp_path, wd, out)
    # within the first of the two epochs left (80 steps each: long enough that a loop
    # which no longer waits on the host each step still has work left to lose)
    time.sleep(random.Random(seed).uniform(0.0, 0.2))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    log.close()
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists(), "the run finished before it was killed; the test needs longer epochs"
    _resume_and_compare(tmp_path, wd, out, train_reference)


@pytest.mark.slow
def test_sigterm_checkpoints_then_resume_matches_uninterrupted_run(tmp_path, train_reference):
    """SIGTERM finishes the step, writes a checkpoint (mid-epoch), exits 143 with the
    resume command; resuming gives the uninterrupted run's result. SIGINT goes through the
    same handler (tests/test_interrupt.py checks that it is installed for both)."""
    wd, out = tmp_path / "run", tmp_path / "run.json"
    proc, log = _start_and_wait_for_checkpoint(tmp_path, wd, out)
    before = _checkpoints(wd)
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=120)
    log.close()
    text = (tmp_path / "killed.log").read_text()
    assert proc.returncode == 143, text
    assert f"Resume with: gsnn train --resume {wd}" in text
    # a signal inside an epoch writes a checkpoint at that step; one that lands between
    # the epoch's checkpoint and the next step stops on that checkpoint
    assert ("stopped at epoch" in text and _checkpoints(wd)[-1] > before[-1]) or "stopped after epoch" in text, text
    assert not out.exists()
    _resume_and_compare(tmp_path, wd, out, train_reference)


EVOLVE_CONFIG = '''
from gsnn.config import (Config, DataConfig, EvolveConfig, GeneticConfig, InnerLoopConfig, ModelConfig, SearchConfig,
                         TrainConfig, WiringGenomeConfig)


def get_config(arg=None):
    return Config(
        name="tiny_evolve", seed=3,
        model=ModelConfig(arch="mlp", hidden=(16,), T=2, genetic=GeneticConfig(encoding="position", genes=4)),
        train=TrainConfig(learning_rate=0.05, epochs=2, batch_size=20, eval_batch_size=40, log_every=0),
        data=DataConfig(source="demo", train_per_class=12, test_per_class=4, augment=False),
        evolve=EvolveConfig(search=SearchConfig(population=4, generations=6),
                            inner=InnerLoopConfig(steps=3, batch=16, val_size=40),
                            wiring=WiringGenomeConfig(interaction="compact"), final_variants=("evolved", "random")),
    )
'''


@pytest.mark.slow
def test_evolve_kill_and_resume_matches_uninterrupted_run(tmp_path):
    """``gsnn evolve`` SIGKILLed during a generation, resumed: the same final result."""
    config = tmp_path / "tiny_evolve.py"
    config.write_text(EVOLVE_CONFIG)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    ref_json = tmp_path / "ref.json"
    assert cli.main(["evolve", "--config", str(config), "--workdir", str(tmp_path / "ref"),
                     "--json", str(ref_json), "--quiet"]) == 0
    ref = json.loads(ref_json.read_text())
    assert len(ref["generations"]) == 6 and set(ref["final"]) == {"evolved", "random"}
    # the signal measurement (every 5 by default, from the first generation), as evolution.json holds it
    stored = json.loads((tmp_path / "ref" / "evolution.json").read_text())["signal"]
    assert [s["generation"] for s in stored["history"]] == [1, 6] and stored == ref["signal"]
    assert stored["spearman"] == stored["history"][0]["terms"]["fitness"]["spearman"]
    assert (tmp_path / "ref" / "evolution.png").read_bytes()[:4] == b"\x89PNG"

    wd, out = tmp_path / "run", tmp_path / "run.json"
    cmd = [sys.executable, "-m", "gsnn.cli", "evolve", "--config", str(config)]
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(cmd + ["--workdir", str(wd), "--json", str(out)], stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        deadline = time.time() + 300
        while not (wd / "evolution" / "checkpoints" / "2").is_dir():
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()
            assert time.time() < deadline, "no generation checkpoint after 300 s"
            time.sleep(0.02)
        time.sleep(random.Random(1).uniform(0.0, 0.5))  # a seeded random moment in generation 3 or later
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not out.exists()
    resumed = subprocess.run(cmd + ["--resume", str(wd), "--json", str(out)], capture_output=True, text=True,
                             env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed evolution at generation" in resumed.stdout
    r = json.loads(out.read_text())
    assert r["best_fitness"] == ref["best_fitness"]
    # the selected genome, restored from the checkpoint, as evolution.json stores it
    assert set(ref["best_genome"]) == {"interaction", "mean", "log_std"} and r["best_genome"] == ref["best_genome"]
    assert np.asarray(ref["best_genome"]["interaction"]["u"]).shape == (4, 2)
    strip = lambda gs: [{k: v for k, v in g.items() if k not in ("seconds", "individual_steps_per_s")} for g in gs]
    assert strip(r["generations"]) == strip(ref["generations"])
    # the measurement before the kill came back from the checkpoint, the later one was redone
    assert strip(r["signal"]["history"]) == strip(ref["signal"]["history"])
    assert r["signal"]["spearman"] == ref["signal"]["spearman"]
    for variant in ("evolved", "random"):
        assert r["final"][variant]["test_accuracy"] == ref["final"][variant]["test_accuracy"]
        assert _strip_timing(r["final"][variant]["history"]) == _strip_timing(ref["final"][variant]["history"])
