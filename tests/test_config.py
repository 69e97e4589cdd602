"""Tests of gsnn.config: typed overrides, helpful errors, dict round trip, the smoke
switch, and config files that import their base."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import jax
import pytest

from gsnn import config as cfgs
from gsnn.analysis import energy
from gsnn.nn import networks as M
from gsnn.config import GeneticConfig, LIFConfig
from gsnn.core.tree import count_scalars

REPO = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = REPO / "experiments" / "configs"


@pytest.fixture
def in_repo(monkeypatch):
    """Config names are searched in ./experiments/configs."""
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("GSNN_CONFIG_PATH", raising=False)


# --------------------------------------------------------------------------------------
# Overrides parse by field type
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "override,getter,expected",
    [
        ("model.genetic.first_direct=true", lambda c: c.model.genetic.first_direct, True),
        ("model.genetic.first_direct=Yes", lambda c: c.model.genetic.first_direct, True),
        ("data.augment=0", lambda c: c.data.augment, False),
        ("data.augment=off", lambda c: c.data.augment, False),
        ("train.epochs=3", lambda c: c.train.epochs, 3),
        ("model.T=6", lambda c: c.model.T, 6),
        ("seed=-2", lambda c: c.seed, -2),
        ("train.learning_rate=1e-3", lambda c: c.train.learning_rate, 0.001),
        ("train.learning_rate=2", lambda c: c.train.learning_rate, 2.0),
        ("model.width=0.5", lambda c: c.model.width, 0.5),
        ("model.arch=resnet18", lambda c: c.model.arch, "resnet18"),
        ("name=a=b", lambda c: c.name, "a=b"),  # only the first '=' splits
        ("data.source=123", lambda c: c.data.source, "123"),  # str stays str
        ("model.hidden=(64, 32)", lambda c: c.model.hidden, (64, 32)),
        ("model.hidden=[128]", lambda c: c.model.hidden, (128,)),
        ("train.lr_scale=(('encoding', 2.0), ('interaction', 0.5))", lambda c: c.train.lr_scale,
         (("encoding", 2.0), ("interaction", 0.5))),
        ("model.spiking.lif.alpha=none", lambda c: c.model.spiking.lif.alpha, None),
        ("model.spiking.lif.alpha=3", lambda c: c.model.spiking.lif.alpha, 3.0),
        ("model.spiking.lif.surrogate=sigmoid", lambda c: c.model.spiking.lif.surrogate, "sigmoid"),
        ("model.spiking.lif.detach_reset=false", lambda c: c.model.spiking.lif.detach_reset, False),
    ],
)
def test_override_parses_by_field_type(override, getter, expected):
    cfg = cfgs.apply_overrides(cfgs.Config(), [override])
    value = getter(cfg)
    assert value == expected and type(value) is type(expected), (value, type(value))


def test_override_keeps_other_fields_and_nested_types():
    cfg = cfgs.apply_overrides(cfgs.Config(), ["model.spiking.lif.v_th=0.5", "train.epochs=2"])
    assert isinstance(cfg.model.spiking.lif, LIFConfig)
    assert cfg.model.spiking.lif.v_th == 0.5 and cfg.model.spiking.lif.update == "tau"
    assert cfg.train.epochs == 2 and cfg.train.learning_rate == cfgs.TrainConfig().learning_rate
    assert cfgs.Config().train.epochs == 10  # the default is untouched (frozen)


@pytest.mark.parametrize(
    "override,match",
    [
        ("data.augment=maybe", "boolean"),
        ("train.epochs=3.5", "train.epochs"),
        ("train.learning_rate=fast", "learning_rate"),
        ("model.hidden=(64,", "model.hidden"),
        ("train.epochs", "key=value"),
    ],
)
def test_bad_override_values(override, match):
    with pytest.raises(ValueError, match=match):
        cfgs.apply_overrides(cfgs.Config(), [override])


@pytest.mark.parametrize(
    "override,closest",
    [
        ("train.learnin_rate=0.1", "train.learning_rate"),
        ("model.genetc.genes=4", "model.genetic"),
        ("model.genetic.gene=4", "model.genetic.genes"),
        ("sed=1", "seed"),
    ],
)
def test_unknown_key_names_closest(override, closest):
    with pytest.raises(KeyError, match=f"did you mean '{closest}'"):
        cfgs.apply_overrides(cfgs.Config(), [override])


def test_key_into_a_value_is_rejected():
    with pytest.raises(KeyError, match="not a section"):
        cfgs.apply_overrides(cfgs.Config(), ["seed.x=1"])


def test_replace_dotted_and_all_keys():
    cfg = cfgs.replace(cfgs.Config(), **{"model.genetic.genes": 7, "train.epochs": 1})
    assert cfg.model.genetic.genes == 7 and cfg.train.epochs == 1
    keys = cfgs.all_keys(cfgs.Config())
    for k in ("seed", "model.genetic.genes", "model.spiking.tau", "train.lr_scale", "data.source"):
        assert k in keys
    with pytest.raises(KeyError, match="epochs"):
        cfgs.replace(cfgs.Config(), **{"train.epoch": 1})


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def test_unknown_config_name_lists_valid(in_repo):
    with pytest.raises(ValueError, match="unknown config") as e:
        cfgs.load_config("convnet_s_cifar10_genetik")
    msg = str(e.value)
    assert "Did you mean 'convnet_s_cifar10_genetic'" in msg
    for name in ("convnet_s_cifar10_direct", "convnet_s_cifar10_genetic"):
        assert name in msg
    assert str(pathlib.Path("experiments") / "configs") in msg and "assets" in msg  # says where it looked


def test_a_name_not_found_elsewhere_says_where_it_looked(tmp_path, monkeypatch):
    """From another folder the repository's experiments/configs is not on the search
    path; the message names each folder searched (and that ./experiments/configs is
    missing), not just the closest shipped name."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GSNN_CONFIG_PATH", raising=False)
    with pytest.raises(ValueError) as e:
        cfgs.load_config("evolve_demo")
    msg = str(e.value)
    assert msg.startswith("unknown config 'evolve_demo': no evolve_demo.py in the folders searched, in order: ")
    assert f"{tmp_path / 'experiments' / 'configs'} (./experiments/configs of the current directory, no such folder)" in msg
    assert f"{cfgs.PACKAGE_CONFIGS} (shipped with gsnn)" in msg
    assert "$GSNN_CONFIG_PATH" in msg and "path to its .py file" in msg
    # and the remedy it names works
    monkeypatch.setenv("GSNN_CONFIG_PATH", str(CONFIGS))
    assert cfgs.load_config("evolve_demo").name == "evolve_demo"
    with pytest.raises(ValueError, match=f"{CONFIGS} \\(from \\$GSNN_CONFIG_PATH\\)"):
        cfgs.load_config("no_such_config")


def test_variant_config_imports_its_base(in_repo):
    base = cfgs.load_config("convnet_s_cifar10_direct")
    by_path = cfgs.load_config(str(CONFIGS / "convnet_s_cifar10_genetic.py"))
    by_name = cfgs.load_config("convnet_s_cifar10_genetic")
    assert by_path == by_name
    assert by_path.name == "convnet_s_cifar10_genetic" != base.name
    assert base.model.genetic.encoding == "direct"
    assert by_path.model.genetic.encoding in ("position", "neuron") and by_path.model.genetic.genes > 0
    # everything but the name and the encoding comes from the base
    assert by_path.train == base.train and by_path.data == base.data
    assert dataclasses.replace(by_path.model, genetic=base.model.genetic) == base.model


def test_evolve_demo_race_races_at_the_final_recipes_steps_and_batch(in_repo):
    """``evolve_demo:race`` is ``evolve_demo`` plus a race on the validation images whose
    steps and batch are the final training's (epochs x training images // batch)."""
    from gsnn.data.embedded import load_demo

    race = cfgs.load_config("evolve_demo:race")
    plain = cfgs.load_config("evolve_demo")
    steps_per_epoch = len(load_demo().train_labels) // plain.train.batch_size
    assert steps_per_epoch == 78
    expected = cfgs.load_config("evolve_demo", ["evolve.race.top=4", "evolve.race.data=validation",
                                             f"evolve.race.batch={plain.train.batch_size}",
                                             f"evolve.race.steps={plain.train.epochs * steps_per_epoch}"])
    assert race == dataclasses.replace(expected, name="evolve_demo_race")
    assert plain.evolve.race.top == 0
    with pytest.raises(ValueError, match="evolve_demo takes no argument or 'race'"):
        cfgs.load_config("evolve_demo:fast")
    smoke = cfgs.load_config("evolve_demo:race", ["smoke=true"]).evolve
    assert (smoke.race.steps, smoke.race.batch, smoke.inner.batch) == (2, 8, 8)


def test_load_config_applies_overrides_and_smoke(in_repo):
    cfg = cfgs.load_config("convnet_s_cifar10_genetic", ["train.epochs=2", "model.genetic.genes=8"])
    assert cfg.train.epochs == 2 and cfg.model.genetic.genes == 8
    smoke = cfgs.load_config("convnet_s_cifar10_genetic", ["smoke=true", "model.T=3"])
    assert smoke.smoke and smoke.model.T == 2 and smoke.train.epochs == 1


def test_load_missing_file_and_validation(in_repo, tmp_path):
    with pytest.raises(FileNotFoundError):
        cfgs.load_config(str(tmp_path / "nope.py"))
    bad = tmp_path / "bad.py"
    bad.write_text("X = 1\n")
    with pytest.raises(ValueError, match="get_config"):
        cfgs.load_config(str(bad))
    with pytest.raises(ValueError, match="unknown optimizer"):
        cfgs.load_config("convnet_s_cifar10_direct", ["train.optimizer=lamb"])
    with pytest.raises(ValueError, match="unknown parameter group"):
        cfgs.load_config("convnet_s_cifar10_direct", ["train.lr_scale=[['kernels', 2.0]]"])


@pytest.mark.parametrize("section,field,bad,good", [
    ("evolve.search", "std_init", [0.0, -0.1, float("nan")], [1e-6, 2.0]),
    ("evolve.search", "elite_ratio", [0.0, -0.5, 1.01, float("nan")], [0.01, 1.0]),
    ("evolve.fitness", "lambda_s", [-1e-6, float("nan")], [0.0, 3.0]),
    ("evolve.fitness", "lambda_t", [-1e-6], [0.0, 3.0]),
    ("train", "grad_clip", [-1e-6, float("nan")], [0.0, 1.0]),
    ("train", "weight_decay", [-1e-6, float("nan")], [0.0, 5e-4]),
    ("train", "label_smoothing", [-0.1, 1.0, 1.5, float("nan")], [0.0, 0.999]),
])
def test_numeric_ranges_are_validated_at_their_bounds(section, field, bad, good):
    """The edges of each range: the bad values (NaN among them) are refused naming the
    key, the good ones (the bounds included where the range is closed) pass."""
    def cfg(value):  # an evolve section refuses when built, the others in validate
        return cfgs.replace(cfgs.Config(), **{f"{section}.{field}": value})

    for value in bad:
        with pytest.raises(ValueError, match=f"{section}.{field}"):
            cfg(value).validate()
    for value in good:
        cfg(value).validate()


def test_override_one_element_tuple_with_trailing_comma():
    cfg = cfgs.apply_overrides(cfgs.Config(), ["train.lr_scale=(('encoding', 2.0),)"])
    assert cfg.train.lr_scale == (("encoding", 2.0),)
    cfg = cfgs.apply_overrides(cfgs.Config(), ["evolve.final_variants=()"])
    assert cfg.evolve.final_variants == ()
    with pytest.raises(ValueError, match=r"tuple literal such as \(\('encoding', 2.0\),\)"):
        cfgs.apply_overrides(cfgs.Config(), ["train.lr_scale=((encoding"])


@pytest.mark.parametrize("text, expected", [("evolved", ("evolved",)), ("evolved,random", ("evolved", "random")),
                                            ("[evolved, direct]", ("evolved", "direct")),
                                            ("('random',)", ("random",))])
def test_a_tuple_of_names_takes_bare_words(text, expected):
    cfg = cfgs.apply_overrides(cfgs.Config(), [f"evolve.final_variants={text}"])
    assert cfg.evolve.final_variants == expected


def test_a_bad_tuple_override_names_an_example_of_its_own_type():
    with pytest.raises(ValueError, match=r"such as \(512, 256\), got 'a b'"):
        cfgs.apply_overrides(cfgs.Config(), ["model.hidden=a b"])
    with pytest.raises(ValueError, match="bare words"):
        cfgs.apply_overrides(cfgs.Config(), ["evolve.final_variants=evolved;random"])


def test_config_file_with_argument(in_repo, tmp_path):
    f = tmp_path / "variant.py"
    f.write_text(
        "from gsnn.config import Config\n"
        "def get_config(arg=None):\n"
        "    return Config(name='v-' + str(arg), seed=int(arg or 0))\n"
    )
    cfg = cfgs.load_config(f"{f}:5")
    assert cfg.name == "v-5" and cfg.seed == 5


# --------------------------------------------------------------------------------------
# Dict round trip and smoke
# --------------------------------------------------------------------------------------


def _nondefault():
    return cfgs.Config(
        name="x", seed=3,
        model=M.ModelConfig(arch="resnet18", num_classes=100, T=3, width=0.5, hidden=(64, 32),
                            genetic=GeneticConfig(encoding="neuron", genes=12, first_direct=True),
                            spiking=cfgs.NeuronConfig(lif=LIFConfig(update="beta", alpha=3.0), tau=3.0)),
        train=cfgs.TrainConfig(optimizer="adamw", lr_scale=(("encoding", 2.0), ("interaction", 0.5))),
        data=cfgs.DataConfig(source="cifar100", train_per_class=5),
    )


@pytest.mark.parametrize("make", [cfgs.Config, _nondefault], ids=["default", "nondefault"])
def test_from_dict_round_trip(make):
    cfg = make()
    back = cfgs.from_dict(cfg.to_dict())
    assert back == cfg
    assert isinstance(back.model.genetic, GeneticConfig)
    assert isinstance(back.train.lr_scale, tuple)


@pytest.mark.parametrize("make", [cfgs.Config, _nondefault], ids=["default", "nondefault"])
def test_from_dict_round_trip_through_json(make):
    """Checkpoints and result files store the config as JSON."""
    cfg = make()
    back = cfgs.from_dict(json.loads(cfg.to_json()))
    assert back == cfg
    assert isinstance(back.model.hidden, tuple) and isinstance(back.train.lr_scale, tuple)
    assert all(isinstance(item, tuple) for item in back.train.lr_scale)
    assert isinstance(back.model.spiking.lif, LIFConfig)


def test_from_json_keeps_lif_config_type():
    """A LIF config read back from JSON must be a LIFConfig, not a tuple that merely
    compares equal (``.update`` would fail when a checkpointed run resumes)."""
    back = cfgs.from_dict(json.loads(_nondefault().to_json()))
    assert isinstance(back.model.spiking.lif, LIFConfig)
    assert back.model.spiking.lif.update == "beta"


def test_from_dict_names_every_unknown_and_missing_key():
    """A stored config is not silently completed with defaults or trimmed."""
    d = json.loads(cfgs.Config().to_json())
    del d["train"]["epochs"]
    del d["model"]["spiking"]["lif"]["v_th"]
    d["model"]["foo"] = 1
    d["bar"] = 2
    with pytest.raises(ValueError) as e:
        cfgs.from_dict(d, source="run/config.json")
    msg = str(e.value)
    assert msg.startswith("run/config.json: unknown key(s) bar, model.foo; "
                          "missing key(s) model.spiking.lif.v_th, train.epochs")


@pytest.mark.parametrize("edit, needle", [
    (lambda d: d["train"].pop("epochs"), "missing key(s) train.epochs"),
    (lambda d: d["evolve"].update(inner_lr=0.1), "unknown key(s) evolve.inner_lr"),
    (lambda d: d.pop("evolve"), "missing key(s) evolve"),
    (lambda d: d.update(model=3), "model must be a section"),
])
def test_from_dict_rejects_one_bad_key(edit, needle):
    d = json.loads(cfgs.Config().to_json())
    edit(d)
    with pytest.raises(ValueError, match="config") as e:
        cfgs.from_dict(d)
    assert needle in str(e.value)


def test_read_config_file_round_trips_and_names_the_file(tmp_path):
    cfg = _nondefault()
    path = tmp_path / "config.json"
    path.write_text(cfg.to_json())
    assert cfgs.read_config_file(path) == cfg
    d = json.loads(cfg.to_json())
    d["model"]["genetic"]["genez"] = 3
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=r"config\.json: unknown key\(s\) model\.genetic\.genez") as e:
        cfgs.read_config_file(path)
    assert str(path) in str(e.value)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        cfgs.read_config_file(path)


def test_read_config_file_migrates_inner_learning_rate_zero_to_none(tmp_path):
    """0.0 meant "train.learning_rate" in stored configs; None means it now."""
    d = json.loads(cfgs.Config().to_json())
    d["evolve"]["inner"]["learning_rate"] = 0.0
    path = tmp_path / "config.json"
    path.write_text(json.dumps(d))
    assert cfgs.read_config_file(path).evolve.inner.learning_rate is None
    assert cfgs.read_config_file(path) == cfgs.Config()
    d["evolve"]["inner"]["learning_rate"] = 0.01  # any other value is kept
    path.write_text(json.dumps(d))
    assert cfgs.read_config_file(path).evolve.inner.learning_rate == 0.01
    with pytest.raises(ValueError, match="inner.learning_rate must be > 0"):
        cfgs.load_config("demo_direct", ["evolve.inner.learning_rate=0"])
    assert cfgs.load_config("demo_direct", ["evolve.inner.learning_rate=none"]).evolve.inner.learning_rate is None


def test_read_config_file_migrates_only_the_listed_added_keys(tmp_path):
    """A config.json of an older gsnn lacks keys added since; the migration adds each
    with the value those runs used, and any other missing key still raises."""
    d = json.loads(cfgs.Config().to_json())
    for key in cfgs.ADDED_KEYS:
        *sections, leaf = key.split(".")
        node = d
        for s in sections:
            node = node[s]
        del node[leaf]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(d))
    cfg = cfgs.read_config_file(path)
    assert cfg.evolve.wiring.preserve_scale is False and cfg.model.conv_impl == "xla"
    assert cfg.model.genetic.rules == 1 and cfg.data.val_per_class == 0 and cfg.evolve.evaluation.inject_nan == ()
    assert cfg.evolve.fitness.signal_every == 0 and cfg.evolve.fitness.metric == "val_accuracy"  # as those runs did
    migrated, changes = cfgs.migrate_stored_config(d)
    assert len(changes) == len(cfgs.ADDED_KEYS) and cfgs.migrate_stored_config(migrated)[1] == []
    assert "preserve_scale" not in d["evolve"]  # the input is not modified
    del d["train"]["momentum"]  # not an added key: no default is invented for it
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=r"missing key\(s\) train\.momentum\. "):
        cfgs.read_config_file(path)


def test_renamed_keys_migrate_in_stored_configs_and_in_overrides(tmp_path, capsys):
    """A config stored under the old names (``model.neuron``, ``model.genetic.path``)
    reads as the same config under the new ones; an old ``--set`` key is read under its
    new name with a note on stderr."""
    want = cfgs.apply_overrides(cfgs.Config(), ["model.spiking.lif.v_th=0.5", "model.genetic.execution=materialise"])
    d = json.loads(want.to_json())
    d["model"]["neuron"] = d["model"].pop("spiking")
    d["model"]["genetic"]["path"] = d["model"]["genetic"].pop("execution")
    migrated, changes = cfgs.migrate_stored_config(d)
    assert changes == ["renamed model.neuron -> model.spiking", "renamed model.genetic.path -> model.genetic.execution"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(d))
    assert cfgs.read_config_file(path) == want
    assert cfgs.apply_overrides(cfgs.Config(), ["model.neuron.lif.v_th=0.5", "model.genetic.path=materialise"]) == want
    err = capsys.readouterr().err
    assert "'model.neuron.lif.v_th' is now 'model.spiking.lif.v_th'" in err
    assert "'model.genetic.path' is now 'model.genetic.execution'" in err


@pytest.mark.parametrize("name", ["convnet_s_cifar10_direct", "convnet_s_cifar10_genetic"])
def test_shrink_for_smoke_is_valid_and_tiny(in_repo, name):
    cfg = cfgs.load_config(name)
    smoke = cfgs.shrink_for_smoke(cfg).validate()
    assert smoke.smoke
    assert smoke.model.width <= 0.125 and smoke.model.T <= 2
    assert smoke.train.epochs == 1 and smoke.train.batch_size <= 16
    assert 0 < smoke.data.train_per_class <= 8 and 0 < smoke.data.test_per_class <= 4
    # the rest is unchanged
    assert smoke.model.arch == cfg.model.arch and smoke.model.genetic == cfg.model.genetic
    # and the tiny model builds
    model = M.build_model(smoke.model)
    report = energy.parameter_report(*M.describe(model))
    shapes = jax.eval_shape(lambda k: M.init_variables(model, k), jax.random.key(0))["params"]
    assert report.stored_params == count_scalars(shapes) < 20_000


def test_shrink_for_smoke_keeps_small_values():
    cfg = cfgs.Config(model=M.ModelConfig(width=0.05, T=1, hidden=(8,)),
                   train=cfgs.TrainConfig(batch_size=4),
                   data=cfgs.DataConfig(train_per_class=2, test_per_class=1))
    s = cfgs.shrink_for_smoke(cfg)
    assert s.model.width == 0.05 and s.model.T == 1 and s.model.hidden == (8,)
    assert s.train.batch_size == 4 and s.data.train_per_class == 2 and s.data.test_per_class == 1
    big = cfgs.shrink_for_smoke(cfgs.Config(model=M.ModelConfig(hidden=(512, 256))))
    assert big.model.hidden == (32, 32)


def test_schema_names_equal_the_registries():
    """The schema validates names without importing the code behind them (the schema
    modules of gsnn.config import nothing from gsnn's math); each name tuple must equal
    its registry's keys."""
    from gsnn.evolution import fitness
    from gsnn.core import lif as neurons
    from gsnn.evolution import strategies
    from gsnn.core import conv, encodings, genetic

    pairs = {
        "SURROGATE_NAMES": tuple(neurons.SURROGATES),
        "ENCODING_NAMES": tuple(encodings.ENCODINGS),
        "FACTORISED_ENCODINGS": tuple(n for n, e in encodings.ENCODINGS.items() if e.factorised is not None),
        "EXECUTIONS": genetic.EXECUTIONS,
        "FANS": encodings.FANS,
        "ARCHITECTURE_NAMES": tuple(M.ARCHITECTURES),
        "CONV_IMPLS": conv.CONV_IMPLS,
        "STRATEGY_NAMES": tuple(strategies.STRATEGIES),
        "SPATIAL_OPERATOR_NAMES": tuple(fitness.SPATIAL_OPERATORS),
        "TEMPORAL_OPERATOR_NAMES": tuple(fitness.TEMPORAL_OPERATORS),
        "FITNESS_METRICS": tuple(fitness.ACCURACY_TERMS),
        "LAMBDA_SCHEDULES": fitness.SCHEDULES,
    }
    for name, registry in pairs.items():
        assert getattr(cfgs, name) == registry, name
    assert all(encodings.get(n).encoded == (n != "direct") for n in cfgs.ENCODING_NAMES)
