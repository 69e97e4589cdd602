"""Reading configs: Python config files, ``--set`` overrides, smoke shrinking, stored ``config.json``.

A config file defines ``get_config(arg: str | None = None) -> Config``; variants import a
base config and override a few fields (Flax examples / big_vision style). Configs are
found by path, or by name on :func:`config_search_path` (``$GSNN_CONFIG_PATH``,
``./experiments/configs/``, then the configs shipped in ``gsnn/assets/configs/``). ``--set a.b=c`` overrides any field by its dotted path; an
unknown key names the closest valid one. ``smoke=True`` (``--set smoke=true``) shrinks
any config to a CPU smoke test.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib.util
import json
import os
import pathlib
import sys
import types
import typing
from typing import Any

from gsnn.config.experiment import Config
from gsnn.config.migration import RENAMED_KEYS, migrate_stored_config

#: The configs that ship with gsnn (the demo's variants), searched after the user's folders.
PACKAGE_CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "assets" / "configs"


def replace(obj, **changes):
    """``dataclasses.replace`` that accepts dotted keys: ``replace(cfg, **{"train.epochs": 3})``.

    All changes to one section are made together (one ``dataclasses.replace`` of it), so
    a section that checks itself when built (:mod:`gsnn.config.evolve_sections`) sees
    them at once: ``evolve.search.population`` and ``evolve.evaluation.chunk_size`` may
    change together in any order.
    """
    names = [f.name for f in dataclasses.fields(obj)]
    direct, nested = {}, {}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if head not in names:
            raise KeyError(_unknown_key_message(obj, head))
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, sub in nested.items():
        child = direct.get(head, getattr(obj, head))
        if not dataclasses.is_dataclass(child):
            raise KeyError(f"{head!r} is a value, not a section; cannot set {head}.{next(iter(sub))}")
        direct[head] = replace(child, **sub)
    return dataclasses.replace(obj, **direct) if direct else obj


def all_keys(obj, prefix: str = "") -> list[str]:
    """Every settable dotted key of a config."""
    keys = []
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        path = f"{prefix}{f.name}"
        keys.append(path)
        if dataclasses.is_dataclass(v):
            keys.extend(all_keys(v, path + "."))
    return keys


def _unknown_key_message(obj, key: str, prefix: str = "") -> str:
    """Names the full dotted key and the closest valid one (``prefix`` ends with ``.``)."""
    names = [f.name for f in dataclasses.fields(obj)]
    close = difflib.get_close_matches(key, names, n=1)
    hint = f"; did you mean {prefix + close[0]!r}?" if close else ""
    where = f"under {prefix[:-1]!r}" if prefix else f"in {type(obj).__name__}"
    return f"unknown config key {prefix + key!r}{hint} (valid keys {where}: {names})"


def _field_type(obj, name: str):
    hints = typing.get_type_hints(type(obj))
    return hints[name]


_TUPLE_EXAMPLES = {
    tuple[str, ...]: "('evolved', 'random') (or bare words: evolved,random)",
    tuple[int, ...]: "(512, 256)",
    tuple[tuple[str, float], ...]: "(('encoding', 2.0),)",
    tuple[tuple[str, tuple[int, ...]], ...]: "(('conv1_conv', (28, 28)), ('conv2_conv', (19,)))",
}


def _coerce(text: str, tp) -> Any:
    """Parses ``text`` as a value of type ``tp`` (bool/int/float/str/tuple/Optional)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if text.lower() in ("none", "null"):
            return None
        return _coerce(text, args[0])
    if tp is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean (true/false), got {text!r}")
    if tp is int:
        return int(text)
    if tp is float:
        return float(text)
    if tp is str:
        return text
    if origin is tuple:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            if typing.get_args(tp)[:1] == (str,):  # tuple[str, ...] also takes bare words: evolved,random
                words = [w.strip() for w in text.strip("[]() ").split(",")]
                if all(w.isidentifier() for w in words):
                    return tuple(words)
            raise ValueError(f"expected a Python tuple literal such as {_TUPLE_EXAMPLES.get(tp, '(1, 2)')}, "
                             f"got {text!r}") from None
        if isinstance(value, (str, int, float)):
            value = (value,)
        return _to_tuple(list(value) if isinstance(value, (list, tuple)) else value)
    return json.loads(text)


def _to_tuple(value):
    if isinstance(value, list):
        return tuple(_to_tuple(v) for v in value)
    return value


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Applies ``key=value`` strings (dotted keys, values parsed by the field's type), all
    at once (:func:`replace`); a key given twice takes its last value."""
    changes = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, text = item.split("=", 1)
        key = _renamed_key(key.strip())
        parts = key.split(".")
        obj = cfg
        for i, p in enumerate(parts[:-1]):
            if p not in [f.name for f in dataclasses.fields(obj)]:
                raise KeyError(_unknown_key_message(obj, p, "".join(q + "." for q in parts[:i])))
            obj = getattr(obj, p)
            if not dataclasses.is_dataclass(obj):
                raise KeyError(f"{p!r} is a value, not a section, in override {item!r}")
        if parts[-1] not in [f.name for f in dataclasses.fields(obj)]:
            raise KeyError(_unknown_key_message(obj, parts[-1], "".join(q + "." for q in parts[:-1])))
        try:
            value = _coerce(text.strip(), _field_type(obj, parts[-1]))
        except (ValueError, json.JSONDecodeError) as e:
            raise ValueError(f"cannot parse {text!r} for {key}: {e}") from None
        changes[key] = value
    return replace(cfg, **changes)


def _renamed_key(key: str) -> str:
    """``key`` with a renamed prefix (:data:`RENAMED_KEYS`) replaced; says so on stderr."""
    for old, new in RENAMED_KEYS.items():
        if key == old or key.startswith(old + "."):
            renamed = new + key[len(old):]
            print(f"note: config key {key!r} is now {renamed!r}; read as {renamed!r}", file=sys.stderr)
            return renamed
    return key


def shrink_for_smoke(cfg: Config) -> Config:
    """A CPU smoke-test version of any config: tiny width, batch, T and one epoch; an
    evolution of 2 generations of 4 individuals that trains only its first final variant."""
    m, t, d, e = cfg.model, cfg.train, cfg.data, cfg.evolve
    return dataclasses.replace(
        cfg,
        smoke=True,
        evolve=dataclasses.replace(
            e, search=dataclasses.replace(e.search, population=min(e.search.population, 4),
                                          generations=min(e.search.generations, 2)),
            inner=dataclasses.replace(e.inner, steps=min(e.inner.steps, 2), batch=min(e.inner.batch, 8),
                                      val_size=min(e.inner.val_size, 20)),
            race=dataclasses.replace(e.race, steps=min(e.race.steps, 2), batch=min(e.race.batch, 8)),
            evaluation=dataclasses.replace(e.evaluation, chunk_size=-1),
            final_variants=e.final_variants[:1]),
        model=dataclasses.replace(m, width=min(m.width, 0.125), T=min(m.T, 2),
                                  hidden=tuple(min(h, 32) for h in m.hidden)),
        train=dataclasses.replace(t, epochs=1, warmup_epochs=0.0, batch_size=min(t.batch_size, 16),
                                  eval_batch_size=min(t.eval_batch_size, 32), log_every=0),
        # a streamed source cannot be subset (it is never in memory)
        data=dataclasses.replace(d, train_per_class=0 if d.stream else min(d.train_per_class or 8, 8),
                                 test_per_class=0 if d.stream else min(d.test_per_class or 4, 4),
                                 val_per_class=min(d.val_per_class, 4)),
    )


def config_search_path() -> list[pathlib.Path]:
    """Where config names are looked up, in order: ``$GSNN_CONFIG_PATH`` (``os.pathsep``
    separated), ``./experiments/configs``, then the configs shipped with gsnn."""
    paths = [pathlib.Path.cwd() / "experiments" / "configs", PACKAGE_CONFIGS]
    env = os.environ.get("GSNN_CONFIG_PATH")
    if env:
        paths = [pathlib.Path(p) for p in env.split(os.pathsep)] + paths
    return paths


def _not_found_message(name: str) -> str:
    """Where a config name was looked for (each folder, and why it is searched), the
    names found there, and the ways to point gsnn at a config elsewhere."""
    env = [pathlib.Path(d) for d in os.environ.get("GSNN_CONFIG_PATH", "").split(os.pathsep) if d]
    why = {str(d): "from $GSNN_CONFIG_PATH" for d in env}
    why[str(pathlib.Path.cwd() / "experiments" / "configs")] = "./experiments/configs of the current directory"
    why[str(PACKAGE_CONFIGS)] = "shipped with gsnn"
    searched = "; ".join(f"{d} ({why.get(str(d), 'searched')}{'' if d.is_dir() else ', no such folder'})"
                         for d in config_search_path())
    valid = available_configs()
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return (f"unknown config {name!r}: no {name}.py in the folders searched, in order: {searched}.{hint} "
            f"Names found there: {valid}. For a config elsewhere, pass the path to its .py file, run from the "
            f"folder that holds experiments/configs, or add its folder to $GSNN_CONFIG_PATH")


def available_configs() -> list[str]:
    """Every config name found on :func:`config_search_path`."""
    names = set()
    for d in config_search_path():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.py") if not p.stem.startswith("_"))
    return sorted(names)


def _load_file(path: pathlib.Path, arg: str | None) -> Config:
    spec = importlib.util.spec_from_file_location(f"gsnn_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # variants import their base config
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ValueError(f"config file {path} has a syntax error at line {e.lineno}: {e.msg}") from None
    except ImportError as e:
        raise ValueError(f"config file {path} failed to import {e.name!r}: {e}") from None
    finally:
        sys.path.remove(str(path.parent))
    if not hasattr(module, "get_config"):
        raise ValueError(f"config file {path} defines no get_config()")
    return module.get_config(arg) if arg is not None else module.get_config()


def load_config(name_or_path: str, overrides: list[str] | None = None) -> Config:
    """Loads a config by path or name, applies ``key=value`` overrides, validates.

    ``name:arg`` passes ``arg`` to ``get_config``. ``smoke=true`` among the overrides
    shrinks the config for a CPU smoke test.
    """
    name, _, arg = name_or_path.partition(":")
    arg = arg or None
    path = pathlib.Path(name)
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        cfg = _load_file(path, arg)
    else:
        for d in config_search_path():
            candidate = d / f"{name}.py"
            if candidate.is_file():
                cfg = _load_file(candidate, arg)
                break
        else:
            raise ValueError(_not_found_message(name))
    overrides = list(overrides or [])
    smoke = any(o.replace(" ", "").lower() in ("smoke=true", "smoke=1") for o in overrides)
    overrides = [o for o in overrides if not o.replace(" ", "").lower().startswith("smoke=")]
    cfg = apply_overrides(cfg, overrides)
    if smoke:
        cfg = shrink_for_smoke(cfg)
    return cfg.validate()


def from_dict(d: dict, *, source: str = "config") -> Config:
    """Inverse of :meth:`Config.to_dict` (for checkpoints and result files); strict.

    Every field of the schema must be present and nothing else: a stored config that
    lacks a key or holds one the schema does not know is not silently completed or
    trimmed. Stored files written by older versions go through
    :func:`read_config_file`, which migrates them explicitly first.

    Args:
      d: nested dict as written by :meth:`Config.to_json` (lists stand for tuples).
      source: what ``d`` came from, named in the error (e.g. a ``config.json`` path).

    Raises:
      ValueError: naming every unknown and every missing dotted key, e.g.
        ``config.json: unknown key(s) model.foo; missing key(s) train.bar``.
    """
    unknown, missing = _key_mismatch(Config, d, "", source)
    if unknown or missing:
        parts = ([f"unknown key(s) {', '.join(unknown)}"] if unknown else []) + \
                ([f"missing key(s) {', '.join(missing)}"] if missing else [])
        raise ValueError(f"{source}: {'; '.join(parts)}. It does not match this gsnn version's config schema "
                         f"(gsnn.config.Config): fix the file's keys, or start over in a new workdir")

    def build(cls, data):
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in dataclasses.fields(cls):
            v, tp = data[f.name], hints[f.name]
            if dataclasses.is_dataclass(tp):
                v = build(tp, v)
            elif isinstance(v, list):
                v = _to_tuple(v)
            kwargs[f.name] = v
        return cls(**kwargs)

    return build(Config, d)


def _key_mismatch(cls, data, prefix: str, source: str) -> tuple[list[str], list[str]]:
    """``(unknown, missing)`` dotted keys of ``data`` against the dataclass ``cls``."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: {prefix[:-1] or 'the config'} must be a section (a JSON object) of "
                         f"{cls.__name__}'s keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [prefix + k for k in data if k not in names]
    missing = []
    for name in names:
        if name not in data:
            missing.append(prefix + name)
        elif dataclasses.is_dataclass(hints[name]):
            u, m = _key_mismatch(hints[name], data[name], f"{prefix}{name}.", source)
            unknown += u
            missing += m
    return unknown, missing


def read_config_file(path: str | os.PathLike) -> Config:
    """The config stored in a run's ``config.json``: read, migrated by
    :func:`migrate_stored_config`, then built by the strict :func:`from_dict`.

    Not validated, but for what a section checks when it is built (the evolve
    sections): callers validate (after their ``--set`` overrides, if any).

    Raises:
      FileNotFoundError: no file at ``path``.
      ValueError: the file is not JSON, or (after migration) lacks keys or holds
        unknown ones; the message names the file and the keys.
    """
    p = pathlib.Path(path)
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{p} is not valid JSON ({e.msg} at line {e.lineno}); the file is damaged: fix it, "
                         f"or start over in a new workdir") from None
    if not isinstance(d, dict):
        raise ValueError(f"{p} holds a JSON {type(d).__name__}, not a config object; pass a run's config.json")
    migrated, _ = migrate_stored_config(d)
    return from_dict(migrated, source=str(p))


__all__ = ["PACKAGE_CONFIGS", "all_keys", "apply_overrides", "available_configs", "config_search_path", "from_dict",
           "load_config", "read_config_file", "replace", "shrink_for_smoke"]
