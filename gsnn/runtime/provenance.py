"""Where a result came from (DESIGN 1.6): the code's git commit and whether the tree was
dirty, the versions of the libraries that compute it, and the machine.

A rerun on another machine may drift in float32, so a record carries these beside the
data fingerprint (:meth:`gsnn.data.ArrayDataset.fingerprint`), and a report that mixes
commits or machines in one table says so (:func:`mixed`).
"""
from __future__ import annotations

import functools
import importlib.metadata
import os
import pathlib
import platform
import subprocess

#: The value of a provenance field a record written before it existed lacks.
UNRECORDED = "unrecorded"
LIBRARIES = ("jax", "jaxlib", "flax", "optax", "evosax")


def _git(*args: str) -> str | None:
    root = pathlib.Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def code_version() -> dict:
    """``{"commit": sha or "not a git checkout", "dirty": bool or None}`` of the gsnn
    source in use (dirty: tracked files differ from the commit)."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return dict(commit="not a git checkout", dirty=None)
    return dict(commit=commit, dirty=bool(_git("status", "--porcelain", "--untracked-files=no")))


def _cpu_model() -> str:
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def machine() -> dict:
    """``{"cpu", "cores", "arch", "system", "device_kind", "devices"}`` of this process
    (``device_kind`` of JAX's first device, ``devices`` the global count)."""
    import jax  # imported here so the module is cheap to import for reports

    devs = jax.devices()
    return dict(cpu=_cpu_model(), cores=os.cpu_count(), arch=platform.machine(), system=platform.system(),
                device_kind=devs[0].device_kind, devices=len(devs))


def library_versions() -> dict:
    """Installed versions of :data:`LIBRARIES` (``"not installed"`` for a missing one)."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def provenance() -> dict:
    """The record of DESIGN 1.6: ``{"commit", "dirty", "versions", "machine"}``."""
    return dict(**code_version(), versions=library_versions(), machine=machine())


def machine_label(m: dict | str | None) -> str:
    """One line naming a machine record (or :data:`UNRECORDED`)."""
    if not isinstance(m, dict):
        return UNRECORDED
    return f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('device_kind', '?')}"


def mixed(records: list[dict]) -> dict:
    """What a table built from ``records`` (each with an optional ``provenance``) mixes:
    ``{"commits": [...], "machines": [...]}``, sorted, :data:`UNRECORDED` for records
    without provenance."""
    commits, machines = set(), set()
    for r in records:
        p = r.get("provenance") or {}
        c = p.get("commit", UNRECORDED)
        commits.add(c + ("+dirty" if p.get("dirty") else ""))
        machines.add(machine_label(p.get("machine")))
    return dict(commits=sorted(commits), machines=sorted(machines))
