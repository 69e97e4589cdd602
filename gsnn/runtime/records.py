"""Run records: plain-JSON copies of results and the one JSON writer."""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

import numpy as np

from gsnn.runtime import distributed as DI


def to_jsonable(obj: Any) -> Any:
    """A copy of ``obj`` made of plain JSON types (dicts with str keys, lists, floats...).

    NumPy and JAX scalars and arrays become Python numbers and lists, dataclasses dicts.
    Non-finite floats stay floats, so :func:`write_json` writes them as ``NaN``,
    ``Infinity`` and ``-Infinity`` (Python's ``json`` reads them back), never as ``null``.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if obj is None or isinstance(obj, str):
        return obj
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):  # jax / numpy arrays
        a = np.asarray(obj)
        return to_jsonable(a.item() if a.ndim == 0 else a.tolist())
    return str(obj)


def write_json(path: str | pathlib.Path | None, obj: Any, *, announce: bool = False) -> pathlib.Path | None:
    """Writes :func:`to_jsonable` of ``obj`` to ``path`` (parent folders created) with
    :func:`write_text`; does nothing without a path, nor on a process other than 0 of
    a job (returns ``None`` there). ``announce`` prints ``wrote <path>``."""
    if not path:
        return None
    p = write_text(path, json.dumps(to_jsonable(obj), indent=1))
    if announce and p is not None:
        print(f"wrote {p}")
    return p


def write_text(path: str | pathlib.Path, text: str) -> pathlib.Path | None:
    """Writes ``text`` to ``path`` atomically (a temporary file renamed over it, so a
    reader sees the old or the new file, never a part), parent folders created. In a job
    of several processes only process 0 writes (:mod:`gsnn.runtime.distributed`); the
    others return ``None``."""
    if not DI.is_primary():
        return None
    p = pathlib.Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, p)
    return p
