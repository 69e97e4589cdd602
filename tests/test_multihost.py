"""Multi-host evolution on ``jax.distributed``, proven on one machine (docs/MULTIHOST.md).

Two processes with 2 CPU devices each run ``gsnn evolve`` as one job (coordinator on
127.0.0.1, gloo collectives) against one process with 4 CPU devices. Every device runs
the same compiled evaluation of its quarter of the population in both, and the host
loop's arithmetic is the same, so the records are compared bitwise (two setups of one
machine and build, not stored numbers). The two-process run is stopped by a SIGTERM to
one of its processes after the first generation and resumed; the resumed result must
equal the uninterrupted one-process run. The commands are the README's ("Evolving
populations on several devices or hosts").
"""
from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest

from gsnn import cli
from gsnn.runtime import distributed as DI

REPO = pathlib.Path(__file__).resolve().parents[1]
#: The README's command (``python -m gsnn.cli`` is ``gsnn`` without needing the install).
EVOLVE = [sys.executable, "-m", "gsnn.cli", "evolve", "--config", "evolve_mlp", "--set", "smoke=true"]
TIMES = ("seconds", "individual_steps_per_s", "epoch_seconds", "train_images_per_s")


def _env(devices: int, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "SLURM_", "OMPI_", "TPU_"))}
    return dict(env, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
                XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", **extra)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _job(workdir: pathlib.Path, logs: pathlib.Path, tag: str, flag: str = "--workdir") -> list[subprocess.Popen]:
    """The two processes of a job on this machine, 2 CPU devices each; output to logs/<tag><i>.log."""
    port = _free_port()
    procs = []
    for i in range(2):
        env = _env(2, JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i), JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}")
        with open(logs / f"{tag}{i}.log", "w") as out:
            procs.append(subprocess.Popen(EVOLVE + [flag, str(workdir)], env=env, cwd=REPO, stdout=out,
                                          stderr=subprocess.STDOUT))
    return procs


def _wait(procs: list[subprocess.Popen], logs: list[pathlib.Path], timeout: float = 240) -> list[int]:
    try:
        return [p.wait(timeout=timeout) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        raise AssertionError("timed out:\n" + "\n".join(log.read_text()[-2000:] for log in logs))


def _records(path: pathlib.Path):
    """evolution.json without its wall times; the job's size apart."""
    r = json.loads(path.read_text())

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in TIMES}
        return [strip(v) for v in x] if isinstance(x, list) else x

    return strip({k: v for k, v in r.items() if k not in ("processes", "devices")}), (r["processes"], r["devices"])


@pytest.mark.slow
def test_two_processes_equal_one_with_four_devices_and_resume_after_sigterm(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    with open(logs / "one.log", "w") as out:  # the reference, meanwhile
        one = subprocess.Popen(EVOLVE + ["--workdir", str(tmp_path / "one")], env=_env(4), cwd=REPO, stdout=out,
                               stderr=subprocess.STDOUT)
    two = tmp_path / "two"
    job = _job(two, logs, "stopped")
    first = [logs / "stopped0.log", logs / "stopped1.log"]
    deadline = time.monotonic() + 240
    while "gen   1/2" not in first[0].read_text():  # once the first generation is reported,
        assert time.monotonic() < deadline and all(p.poll() is None for p in job), first[0].read_text()[-3000:]
        time.sleep(0.02)
    job[1].send_signal(signal.SIGTERM)  # SIGTERM to process 1 only: both stop after that generation
    assert _wait(job, first) == [143, 143], first[0].read_text()[-3000:] + first[1].read_text()[-3000:]
    text = [f.read_text() for f in first]
    assert all("stopped after generation 1/2" in t for t in text), text[0][-3000:]
    assert "another process of this job received SIGTERM" in text[0]
    assert sorted(p.name for p in (two / "evolution" / "checkpoints").iterdir() if p.name.isdigit()) == ["1"]
    assert not (two / "evolution.json").exists()
    # every line of gsnn's says which process speaks (gloo's own lines say their rank)
    assert all(line.startswith("[process 1/2] ") for line in text[1].splitlines() if not line.startswith("[Gloo]"))
    assert "[process 1/2] gen   1/2" in text[1]

    again = [logs / "resumed0.log", logs / "resumed1.log"]
    assert _wait(_job(two, logs, "resumed", "--resume"), again) == [0, 0], again[0].read_text()[-3000:]
    assert "resumed evolution at generation 1" in again[1].read_text()
    assert _wait([one], [logs / "one.log"]) == [0]

    ref, ref_job = _records(tmp_path / "one" / "evolution.json")
    got, got_job = _records(two / "evolution.json")
    assert (ref_job, got_job) == ((1, 4), (2, 4))
    assert [g["generation"] for g in got["generations"]] == [1, 2]
    for key in ("best_fitness", "mean_fitness"):  # bitwise: the same programs
        assert [g[key] for g in got["generations"]] == [g[key] for g in ref["generations"]], key
    assert got["best_genome"] == ref["best_genome"]
    assert got == ref  # everything else too, the final training's records included
    # process 0 alone wrote the records: one TensorBoard file per launch
    assert len(list((two / "tensorboard").glob("events.*"))) == 2
    assert "wrote" not in "".join(f.read_text() for f in (logs / "resumed1.log",))


CHECK_SCRIPT = """
import sys
import jax
import numpy as np
from gsnn.runtime import distributed as DI

assert DI.join() and DI.multiprocess() and DI.is_primary() == (jax.process_index() == 0)
print("max", DI.max_over_processes(jax.process_index() + 5), flush=True)
i = jax.process_index() if sys.argv[1] == "differ" else 0
DI.check_same(dict(a=np.arange(3), b=dict(c=np.arange(4.0) + i)), "test values")
print("same", flush=True)
DI.leave()
"""


@pytest.mark.slow
@pytest.mark.parametrize("case", ["same", "differ"])
def test_check_same_across_two_processes_names_what_differs(tmp_path, case):
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, "-c", CHECK_SCRIPT, case], cwd=REPO, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT,
                              env=_env(1, JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i),
                                       JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}")) for i in range(2)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all("max 6" in o for o in outs), outs
    if case == "same":
        assert [p.returncode for p in procs] == [0, 0] and all("same" in o for o in outs), outs
    else:
        assert all(p.returncode != 0 for p in procs), outs
        assert all("hold different test values (b): every process must run the same config" in o for o in outs), outs


def test_join_reads_the_environment_and_says_what_is_missing():
    assert DI.join({}) is False and DI.join({"JAX_NUM_PROCESSES": "1"}) is False
    with pytest.raises(ValueError, match="JAX_COORDINATOR_ADDRESS and JAX_PROCESS_ID"):
        DI.join({"JAX_NUM_PROCESSES": "2"})
    with pytest.raises(ValueError, match=r"JAX_PROCESS_ID=2 must be in 0\.\.1"):
        DI.join({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "2", "JAX_COORDINATOR_ADDRESS": "127.0.0.1:1"})
    with pytest.raises(ValueError, match="not an integer"):
        DI.join({"JAX_NUM_PROCESSES": "two"})
    assert DI._cluster({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}) == "SLURM"
    assert DI._cluster({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}) is None
    assert DI._cluster({"TPU_WORKER_HOSTNAMES": "a,b"}) == "Cloud TPU pod"


def test_gsnn_train_refuses_a_job_of_several_processes(monkeypatch, capsys):
    monkeypatch.setattr(DI, "multiprocess", lambda: True)
    monkeypatch.setattr(DI, "process_count", lambda: 2)
    monkeypatch.setattr(DI, "label_output", lambda: None)
    assert cli.main(["train", "--config", "demo_direct", "--set", "smoke=true"]) == cli.EXIT_BAD_INPUT
    assert "gsnn train runs in one process, but this job has 2" in capsys.readouterr().err


def test_labelled_output_prefixes_every_line():
    import io

    buf = io.StringIO()
    out = DI._Labelled(buf, "[process 1/2] ")
    out.write("a\nb")
    out.write("c\n\nd\n")
    assert buf.getvalue() == "[process 1/2] a\n[process 1/2] bc\n[process 1/2] \n[process 1/2] d\n"
