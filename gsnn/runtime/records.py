"""Run records: plain-JSON copies of results and the one JSON writer."""
from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

import numpy as np


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
    """Writes :func:`to_jsonable` of ``obj`` to ``path`` (parent folders created); does
    nothing without a path. ``announce`` prints ``wrote <path>``."""
    if not path:
        return None
    p = pathlib.Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(to_jsonable(obj), indent=1))
    if announce:
        print(f"wrote {p}")
    return p
