"""Multi-process jobs (``jax.distributed``): joining one, and the few cross-process
operations the training and evolution loops need. See docs/MULTIHOST.md.

    join()                      # before any JAX computation; no-op for one process
    if is_primary(): write ...  # JSON, TensorBoard, plots: process 0 only
    gather(tree)                # global jax.Arrays -> full NumPy arrays on every process

:func:`join` starts a job from ``JAX_NUM_PROCESSES`` (> 1), ``JAX_COORDINATOR_ADDRESS``
and ``JAX_PROCESS_ID``, or, without them, where JAX's own cluster detection applies
(SLURM, Open MPI, Cloud TPU pods); otherwise the run stays one process. It is the only
place gsnn calls ``jax.distributed.initialize``.

Every process runs the same program on the same config and seed: each one computes
the same host-side values (generation batches, the strategy's ``ask``/``tell``) itself,
and :func:`check_same` verifies that they agree before they enter a sharded program.
"""
from __future__ import annotations

import os
import sys
import zlib
from typing import Any, Mapping

import jax
import numpy as np

NUM_PROCESSES, COORDINATOR, PROCESS_ID = "JAX_NUM_PROCESSES", "JAX_COORDINATOR_ADDRESS", "JAX_PROCESS_ID"


def _cluster(env: Mapping[str, str]) -> str | None:
    """The multi-process cluster JAX's ``initialize()`` detects by itself, or ``None``
    (one process: a single SLURM task or MPI rank is not a job to join)."""
    if "SLURM_JOB_ID" in env and int(env.get("SLURM_NTASKS", "1") or 1) > 1:
        return "SLURM"
    if "OMPI_MCA_orte_hnp_uri" in env and int(env.get("OMPI_COMM_WORLD_SIZE", "1") or 1) > 1:
        return "Open MPI"
    if len([h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1:
        return "Cloud TPU pod"
    return None


def _int(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError:
        raise ValueError(f"{name}={env[name]!r} is not an integer") from None


def use_gloo_on_cpu() -> None:
    """Cross-process collectives on CPU need an implementation: gloo (TCP) unless one
    was chosen (``JAX_CPU_COLLECTIVES_IMPLEMENTATION``, e.g. ``mpi``). jax 0.10 defaults
    to gloo; older versions to none, where every gather across processes fails."""
    if jax.config.jax_cpu_collectives_implementation is None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")


def join(env: Mapping[str, str] | None = None) -> bool:
    """Joins the multi-process job the environment describes; returns whether it did.

    ``JAX_NUM_PROCESSES`` > 1 needs ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process
    0, reachable from every host) and ``JAX_PROCESS_ID`` (0 .. n-1). Without
    ``JAX_NUM_PROCESSES``, a SLURM job of several tasks, an Open MPI job of several ranks
    or a Cloud TPU pod is joined by JAX's own detection. Anything else (or
    ``JAX_NUM_PROCESSES=1``) is one process: nothing happens. Already joined: nothing.

    Must run before any JAX computation (``jax.distributed.initialize``'s rule).

    Raises:
      ValueError: an incomplete or malformed ``JAX_*`` setting, saying which to set.
    """
    env = os.environ if env is None else env
    if jax.distributed.is_initialized():
        return True
    if NUM_PROCESSES in env:
        n = _int(env, NUM_PROCESSES)
        if n < 1:
            raise ValueError(f"{NUM_PROCESSES}={n}: the number of processes must be >= 1")
        if n == 1:
            return False
        missing = [k for k in (COORDINATOR, PROCESS_ID) if not env.get(k)]
        if missing:
            raise ValueError(f"{NUM_PROCESSES}={n} needs {' and '.join(missing)} too: {COORDINATOR}=host:port of "
                             f"process 0 and {PROCESS_ID}=0..{n - 1}, a different one on every process")
        pid = _int(env, PROCESS_ID)
        if not 0 <= pid < n:
            raise ValueError(f"{PROCESS_ID}={pid} must be in 0..{n - 1} ({NUM_PROCESSES}={n})")
        use_gloo_on_cpu()
        jax.distributed.initialize(env[COORDINATOR], n, pid)
        return True
    if _cluster(env) is not None:
        use_gloo_on_cpu()
        jax.distributed.initialize()
        return True
    return False


def leave() -> None:
    """Shuts the job down (a barrier of every process); nothing for one process."""
    if jax.distributed.is_initialized():
        jax.distributed.shutdown()


def process_count() -> int:
    return jax.process_count()


def multiprocess() -> bool:
    """Whether this run is one process of several (a joined job; reading it starts no backend otherwise)."""
    return jax.distributed.is_initialized() and jax.process_count() > 1


def is_primary() -> bool:
    """Whether this process writes the run's records (JSON, TensorBoard, plots): process 0,
    or the only one."""
    return not jax.distributed.is_initialized() or jax.process_index() == 0


def job_record() -> dict:
    """``{'processes': n, 'devices': global device count}`` for run records."""
    return dict(processes=jax.process_count(), devices=jax.device_count())


class _Labelled:
    """A text stream that starts every line with ``label``."""

    def __init__(self, stream, label: str):
        self._stream, self._label, self._at_start = stream, label, True

    def write(self, text: str) -> int:
        out = []
        for piece in text.splitlines(keepends=True):
            if self._at_start:
                out.append(self._label)
            out.append(piece)
            self._at_start = piece.endswith("\n")
        self._stream.write("".join(out))
        return len(text)

    def __getattr__(self, name):  # flush, fileno, isatty, encoding...
        return getattr(self._stream, name)


def label_output() -> None:
    """In a job of several processes, prefixes every line this process prints (stdout
    and stderr) with ``[process i/n] ``; one process prints as before."""
    if multiprocess() and not isinstance(sys.stdout, _Labelled):
        label = f"[process {jax.process_index()}/{jax.process_count()}] "
        sys.stdout, sys.stderr = _Labelled(sys.stdout, label), _Labelled(sys.stderr, label)


def global_array(value: np.ndarray, sharding: jax.sharding.Sharding) -> jax.Array:
    """A global ``jax.Array`` with ``sharding`` from ``value``, the whole array, which
    every process holds (each process places its own devices' slices)."""
    value = np.asarray(value)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def gather(tree: Any) -> Any:
    """Every leaf (a global ``jax.Array``, possibly spanning other processes' devices) as
    the whole NumPy array, on every process (``multihost_utils.process_allgather``)."""
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)


def max_over_processes(value: int) -> int:
    """The largest of every process's ``value`` (every process must call it)."""
    return int(np.max(gather(np.asarray([value], np.int32))))


def fingerprint(value) -> int:
    """CRC32 of an array's shape, dtype and bytes."""
    a = np.ascontiguousarray(np.asarray(value))
    return zlib.crc32(a.tobytes(), zlib.crc32(f"{a.shape}{a.dtype}".encode()))


def check_same(values: Mapping[str, Any], what: str) -> None:
    """Raises ``RuntimeError`` unless every process holds the same ``values`` (name ->
    pytree of arrays), compared by :func:`fingerprint`; every process must call it.

    Every process computes the host-side inputs of a sharded program itself (the same
    seed, config and data give the same values); this catches a host with other data
    files, another config or a numerically different ``ask`` before they mix."""
    names = list(values)
    prints = np.asarray([zlib.crc32(np.asarray([fingerprint(leaf) for leaf in jax.tree_util.tree_leaves(values[k])],
                                               np.uint32).tobytes()) for k in names], np.uint32)
    every = np.asarray(gather(prints[None]))  # [processes, len(names)]
    differ = [names[j] for j in range(len(names)) if len(set(every[:, j].tolist())) > 1]
    if differ:
        raise RuntimeError(f"the processes of this job hold different {what} ({', '.join(differ)}): every process "
                           f"must run the same config, seed and data files (same gsnn and jax versions too)")
