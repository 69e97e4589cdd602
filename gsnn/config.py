"""Experiment configuration: one frozen dataclass tree, loaded from Python config files.

A config file defines ``get_config(arg: str | None = None) -> Config``; variants import a
base config and override a few fields (Flax examples / big_vision style). Configs are
found by path, or by name in ``./experiments/configs/`` and then among the built-ins of
:data:`BUILTIN_CONFIGS`. ``--set a.b=c`` overrides any field by its dotted path; an
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
import types
import typing
from typing import Any, Callable

from gsnn.layers import GeneticConfig, NeuronConfig
from gsnn.models import ModelConfig
from gsnn.neurons import LIFConfig

OPTIMIZERS = ("sgd", "adamw")
DECAY_TARGETS = ("factors", "weights")
PARAM_GROUPS = ("weight", "encoding", "interaction", "spatial", "other")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are prepared.

    Attributes:
      source: ``"demo"`` (embedded), a tfds name (``cifar10``, ``cifar100``,
        ``imagenet2012``; ``tfds:<name>`` forces tfds), or a path to an image-folder
        tree or its ``.tar.gz``.
      cache_dir: decoded-array cache (default ``$GSNN_CACHE_DIR`` or ``~/.cache/gsnn``).
      data_dir: tfds data directory.
      train_per_class: class-balanced training subset (``0`` = all).
      test_per_class: class-balanced test subset (``0`` = all).
      val_per_class: class-balanced validation split drawn from the training images
        *outside* the training subset (``0`` = none). With ``train_per_class=0`` it is
        held out of the training split. With a validation split, every epoch is
        evaluated on it and the test split is read once, at the end (DESIGN 1.6).
      augment: random crop (padding 4) and horizontal flip during training.
      crop_padding: zero padding of the random crop.
      sha256: expected digest of an archive ``source`` (archives named in
        ``gsnn.data.KNOWN_SHA256`` are checked without it).
      stream: read a TFDS ``source`` batch by batch instead of loading it into memory
        (ImageNet); no class-balanced subsets.
    """

    source: str = "demo"
    cache_dir: str = ""
    data_dir: str = ""
    train_per_class: int = 0
    test_per_class: int = 0
    val_per_class: int = 0
    augment: bool = True
    crop_padding: int = 4
    sha256: str = ""
    stream: bool = False


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation recipe.

    Attributes:
      optimizer: ``"sgd"`` (momentum, L2 weight decay) or ``"adamw"`` (decoupled decay).
      learning_rate: peak learning rate (after warm-up), cosine-decayed to 0.
      momentum: SGD momentum (Nesterov off); Adam's ``b1`` is ``beta1``.
      beta1, beta2: Adam moments.
      weight_decay: L2 decay ``lambda``; never on norm parameters, biases or PLIF.
      weight_decay_on: ``"factors"``: decay on what is stored (direct kernels,
        encodings, spatial codes, ``G``); ``"weights"``: decay on what the network uses,
        ``lambda/2 * ||W||^2`` of every generated ``W`` added to the loss (gradient
        through the generation) and none on encodings or ``G``; direct kernels are
        decayed alike in both (DESIGN 1.1). With ``adamw`` the ``weights`` penalty goes
        through Adam's scaling (coupled), while kernels keep the decoupled decay.
      epochs: training epochs.
      warmup_epochs: linear warm-up (fractional allowed).
      batch_size: training batch size.
      eval_batch_size: evaluation batch size.
      label_smoothing: cross-entropy label smoothing.
      grad_clip: global-norm clipping (0 = off).
      lr_scale: per parameter group learning-rate multipliers, as ``((group, factor),
        ...)`` with groups ``weight``, ``encoding``, ``interaction``, ``spatial``, ``other``.
      nan_policy: ``"stop"`` (raise, naming epoch and step) or ``"skip"`` (drop the
        step's update and halve the learning rate).
      log_every: progress line every this many steps (0 = once per epoch).

    """

    optimizer: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 5e-4
    weight_decay_on: str = "factors"
    epochs: int = 10
    warmup_epochs: float = 0.0
    batch_size: int = 128
    eval_batch_size: int = 500
    label_smoothing: float = 0.0
    grad_clip: float = 0.0
    lr_scale: tuple[tuple[str, float], ...] = ()
    nan_policy: str = "stop"
    log_every: int = 50


STRATEGIES = ("cma_es", "sep_cma_es", "snes", "open_es", "simple_ga")


@dataclasses.dataclass(frozen=True)
class EvolveConfig:
    """Spatio-temporal evolution of the initial wiring rules (DESIGN 1.3).

    Attributes:
      strategy: evosax strategy name (``cma_es``, ``sep_cma_es``, ``snes``, ``open_es``,
        ``simple_ga``).
      population: individuals per generation.
      generations: generations.
      std_init: the strategy's initial search std (in genome units).
      elite_ratio: SimpleGA's elite fraction.
      inner_steps: ``K`` optimiser steps per individual (the config's optimiser, cosine
        over ``K``, peak ``inner_learning_rate``).
      inner_batch: minibatch size of the inner loop (the same batches for everyone).
      inner_learning_rate: peak inner learning rate (0 = ``train.learning_rate``).
      val_size: validation images held out (class-stratified) from the training data.
      genome_interaction: ``"full"`` (``G0`` is ``g x g`` genes) or ``"compact"`` (a
        log-scale, an identity weight and rank-``compact_rank`` factors on top of the
        run's random orthogonal ``G``).
      compact_rank: rank of the compact ``G0`` update.
      per_gene_stats: mean/log-std per gene (``[g]``) rather than one scalar per matrix.
      evolve_encodings: evolve the full initial encodings too (large genomes).
      preserve_scale: rescale every built encoding matrix to the rms of the random draws
        it replaces and ``G`` to the norm of the reference ``G`` (see gsnn.genome), so
        evolution shapes the wiring but keeps the balanced, trainable scale.
      spatial_operator, temporal_operator: names in ``gsnn.fitness`` registries
        (``none`` switches an operator off).
      lambda_s, lambda_t: operator weights at generation 0.
      lambda_schedule: ``constant``, ``linear``, ``cosine`` or ``exponential`` decay over
        ``generations``.
      chunk_size: evaluate the population in vmapped chunks of this size, one chunk
        after another (0 = all at once; -1 = auto: one individual at a time on a single
        CPU device, where vmap measured slower than a loop, else all at once;
        ``benchmarks/README.md``).
      shard: shard the population axis over ``jax.devices()``.
      target_val_accuracy: report the first generation whose best reaches it (0 = off).
      inject_nan: fault injection: indices of individuals whose genome is replaced by NaN
        before every evaluation (the strategy still sees the real genome). Checks that a
        diverging individual gets the worst fitness and the generation goes on.
      final_variants: what to train to convergence afterwards, with ``train``'s recipe:
        ``evolved`` (best genome), ``random`` (same encoding, random wiring), ``direct``.
    """

    strategy: str = "cma_es"
    population: int = 16
    generations: int = 10
    std_init: float = 0.3
    elite_ratio: float = 0.5
    inner_steps: int = 20
    inner_batch: int = 64
    inner_learning_rate: float = 0.0
    val_size: int = 1000
    genome_interaction: str = "full"
    compact_rank: int = 2
    per_gene_stats: bool = False
    evolve_encodings: bool = False
    preserve_scale: bool = True
    spatial_operator: str = "spatial_entropy"
    temporal_operator: str = "temporal_difference"
    lambda_s: float = 0.1
    lambda_t: float = 0.1
    lambda_schedule: str = "cosine"
    chunk_size: int = -1
    shard: bool = True
    target_val_accuracy: float = 0.0
    inject_nan: tuple[int, ...] = ()
    final_variants: tuple[str, ...] = ("evolved", "random", "direct")

    def validate(self) -> "EvolveConfig":
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; valid: {list(STRATEGIES)}")
        if self.population < 2:
            raise ValueError(f"evolve.population must be >= 2, got {self.population}")
        if self.strategy == "open_es" and self.population % 2:
            raise ValueError(f"evolve.population must be even for open_es (antithetic pairs), got {self.population}")
        for name in ("generations", "inner_steps", "inner_batch", "val_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"evolve.{name} must be >= 1, got {getattr(self, name)}")
        if self.genome_interaction not in ("full", "compact"):
            raise ValueError(f"unknown evolve.genome_interaction {self.genome_interaction!r}; valid: ['full', 'compact']")
        if self.chunk_size < -1:
            raise ValueError(f"evolve.chunk_size must be >= 0 (or -1 for auto), got {self.chunk_size}")
        if any(not 0 <= i < self.population for i in self.inject_nan):
            raise ValueError(f"evolve.inject_nan {self.inject_nan} must index the population (0..{self.population - 1})")
        if self.chunk_size > 0 and self.population % self.chunk_size:
            raise ValueError(f"evolve.population ({self.population}) must be a multiple of evolve.chunk_size ({self.chunk_size})")
        from gsnn import fitness  # late import: fitness imports genetic only

        fitness.get_operator(fitness.SPATIAL_OPERATORS, self.spatial_operator, "spatial")
        fitness.get_operator(fitness.TEMPORAL_OPERATORS, self.temporal_operator, "temporal")
        if self.lambda_schedule not in fitness.SCHEDULES:
            raise ValueError(f"unknown evolve.lambda_schedule {self.lambda_schedule!r}; valid: {list(fitness.SCHEDULES)}")
        for v in self.final_variants:
            if v not in ("evolved", "random", "direct"):
                raise ValueError(f"unknown final variant {v!r}; valid: ['evolved', 'random', 'direct']")
        return self


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole experiment. ``name`` is for reports; ``seed`` drives every random choice."""

    name: str = "unnamed"
    seed: int = 0
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    data: DataConfig = DataConfig()
    evolve: EvolveConfig = EvolveConfig()
    smoke: bool = False

    def validate(self) -> "Config":
        self.model.validate()
        self.evolve.validate()
        t = self.train
        if t.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {t.optimizer!r}; valid: {list(OPTIMIZERS)}")
        if t.nan_policy not in ("stop", "skip"):
            raise ValueError(f"unknown nan_policy {t.nan_policy!r}; valid: ['stop', 'skip']")
        if t.weight_decay_on not in DECAY_TARGETS:
            raise ValueError(f"unknown train.weight_decay_on {t.weight_decay_on!r}; valid: {list(DECAY_TARGETS)}")

        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(t, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(t, name)}")
        if t.learning_rate <= 0:
            raise ValueError(f"train.learning_rate must be > 0, got {t.learning_rate}")
        if not 0 <= t.warmup_epochs < t.epochs:
            raise ValueError(f"train.warmup_epochs ({t.warmup_epochs}) must be >= 0 and less than train.epochs "
                             f"({t.epochs})")
        for group, _ in t.lr_scale:
            if group not in PARAM_GROUPS:
                raise ValueError(f"unknown parameter group {group!r} in train.lr_scale; valid: {list(PARAM_GROUPS)}")
        d = self.data
        if d.stream and (d.train_per_class or d.test_per_class or d.val_per_class):
            raise ValueError("data.stream reads the whole TFDS splits; set data.train_per_class=0, "
                             "data.test_per_class=0 and data.val_per_class=0 (or data.stream=false for a "
                             "subset in memory)")
        for name in ("train_per_class", "test_per_class", "val_per_class"):
            if getattr(d, name) < 0:
                raise ValueError(f"data.{name} must be >= 0, got {getattr(d, name)}")
        if d.stream:
            src = d.source.removeprefix("tfds:")
            if src in ("demo", "") or src.endswith((".tar.gz", ".tgz", ".tar")) or pathlib.Path(src).exists():
                raise ValueError(f"data.stream needs a TFDS dataset name as data.source, got {d.source!r}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def replace(obj, **changes):
    """``dataclasses.replace`` that accepts dotted keys: ``replace(cfg, **{"train.epochs": 3})``."""
    out = obj
    for key, value in changes.items():
        out = _set_path(out, key.split("."), value)
    return out


def _set_path(obj, parts: list[str], value):
    field_names = [f.name for f in dataclasses.fields(obj)]
    head = parts[0]
    if head not in field_names:
        raise KeyError(_unknown_key_message(obj, head))
    if len(parts) == 1:
        return dataclasses.replace(obj, **{head: value})
    child = getattr(obj, head)
    if not dataclasses.is_dataclass(child):
        raise KeyError(f"{head!r} is a value, not a section; cannot set {'.'.join(parts)}")
    return dataclasses.replace(obj, **{head: _set_path(child, parts[1:], value)})


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
            raise ValueError(f"expected a Python tuple literal such as (('encoding', 2.0),), got {text!r}") from None
        if isinstance(value, (str, int, float)):
            value = (value,)
        return _to_tuple(list(value) if isinstance(value, (list, tuple)) else value)
    return json.loads(text)


def _to_tuple(value):
    if isinstance(value, list):
        return tuple(_to_tuple(v) for v in value)
    return value


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Applies ``key=value`` strings (dotted keys, values parsed by the field's type)."""
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
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
        cfg = replace(cfg, **{key.strip(): value})
    return cfg


def shrink_for_smoke(cfg: Config) -> Config:
    """A CPU smoke-test version of any config: tiny width, batch, T and one epoch; an
    evolution of 2 generations of 4 individuals that trains only its first final variant."""
    m, t, d, e = cfg.model, cfg.train, cfg.data, cfg.evolve
    return dataclasses.replace(
        cfg,
        smoke=True,
        evolve=dataclasses.replace(e, population=min(e.population, 4), generations=min(e.generations, 2),
                                   inner_steps=min(e.inner_steps, 2), inner_batch=min(e.inner_batch, 8),
                                   val_size=min(e.val_size, 20), chunk_size=-1,
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


# Built-in configs (available without the repository's experiments/ folder).
BUILTIN_CONFIGS: dict[str, Callable[[], Config]] = {}


def register(name: str):
    """Decorator: registers a built-in config factory under ``name``."""

    def wrap(fn):
        BUILTIN_CONFIGS[name] = fn
        return fn

    return wrap


def config_search_path() -> list[pathlib.Path]:
    paths = [pathlib.Path.cwd() / "experiments" / "configs"]
    env = os.environ.get("GSNN_CONFIG_PATH")
    if env:
        paths = [pathlib.Path(p) for p in env.split(os.pathsep)] + paths
    return paths


def _register_builtins() -> None:
    import gsnn.demo  # noqa: F401 - registers the demo_* configs


def available_configs() -> list[str]:
    _register_builtins()
    names = set(BUILTIN_CONFIGS)
    for d in config_search_path():
        if d.is_dir():
            names.update(p.stem for p in d.glob("*.py") if not p.stem.startswith("_"))
    return sorted(names)


def _load_file(path: pathlib.Path, arg: str | None) -> Config:
    spec = importlib.util.spec_from_file_location(f"gsnn_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    import sys

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
            _register_builtins()
            if name in BUILTIN_CONFIGS:
                cfg = BUILTIN_CONFIGS[name]()
            else:
                valid = available_configs()
                close = difflib.get_close_matches(name, valid, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"unknown config {name!r}.{hint} Valid names: {valid}")
    overrides = list(overrides or [])
    smoke = any(o.replace(" ", "").lower() in ("smoke=true", "smoke=1") for o in overrides)
    overrides = [o for o in overrides if not o.replace(" ", "").lower().startswith("smoke=")]
    cfg = apply_overrides(cfg, overrides)
    if smoke:
        cfg = shrink_for_smoke(cfg)
    return cfg.validate()


def from_dict(d: dict) -> Config:
    """Inverse of :meth:`Config.to_dict` (for checkpoints and result files)."""

    def build(cls, data):
        kwargs = {}
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            v = data[f.name]
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                v = build(tp, v)
            elif isinstance(v, list):
                v = _to_tuple(v)
            kwargs[f.name] = v
        return cls(**kwargs)

    return build(Config, d)


__all__ = [
    "Config", "DataConfig", "TrainConfig", "EvolveConfig", "ModelConfig", "GeneticConfig", "NeuronConfig",
    "LIFConfig", "load_config", "apply_overrides", "replace", "from_dict", "register",
    "available_configs", "shrink_for_smoke", "all_keys",
]
