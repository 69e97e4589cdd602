"""The evolve section's nested sections (gsnn.config.evolve, gsnn.config.evolve_sections):
each section refuses a bad value when it is built, the checks across sections are
EvolveConfig's, and the flat keys of older gsnn versions (``--set evolve.race_top=3``,
stored ``config.json`` files and result records) still load, under the nested names."""
from __future__ import annotations

import dataclasses
import glob
import json
import pathlib

import pytest

from gsnn import config as cfgs

REPO = pathlib.Path(__file__).resolve().parents[1]

#: The fields of the flat EvolveConfig before the sections (each now a renamed key), and
#: the two that stayed at the top.
OLD_FLAT_FIELDS = (
    "strategy", "population", "generations", "std_init", "elite_ratio", "inner_steps", "inner_batch",
    "inner_learning_rate", "val_size", "genome_interaction", "compact_rank", "per_gene_stats", "evolve_encodings",
    "genome_gains", "genome_drive", "fixed_base", "genome_tau", "preserve_scale", "spatial_operator",
    "temporal_operator", "fitness_metric", "signal_every", "race_top", "race_steps", "race_batch", "race_data",
    "race_repeats", "race_baseline", "lambda_s", "lambda_t", "lambda_schedule", "chunk_size", "shard",
    "target_val_accuracy", "inject_nan", "final_variants")
KEPT_AT_TOP = ("fixed_base", "final_variants")


def _flat_evolve(cfg: cfgs.Config) -> dict:
    """``cfg``'s evolve section as the old flat dict (a stored config of an older gsnn)."""
    nested = json.loads(cfg.to_json())["evolve"]
    flat = {}
    for old in OLD_FLAT_FIELDS:
        node = nested
        *sections, leaf = (cfgs.RENAMED_KEYS.get(f"evolve.{old}", f"evolve.{old}")).split(".")[1:]
        for name in sections:
            node = node[name]
        flat[old] = node[leaf]
    return flat


def _nondefault() -> cfgs.Config:
    return cfgs.apply_overrides(cfgs.Config(), [
        "evolve.search.strategy=open_es", "evolve.search.population=8", "evolve.search.std_init=0.2",
        "evolve.inner.steps=7", "evolve.inner.learning_rate=0.03", "evolve.wiring.interaction=compact",
        "evolve.wiring.drive=true", "evolve.wiring.full_encodings=true", "evolve.fitness.metric=val_accuracy",
        "evolve.fitness.lambda_t=0.5", "evolve.race.top=3", "evolve.race.data=validation",
        "evolve.evaluation.chunk_size=4", "evolve.evaluation.inject_nan=(1, 2)", "evolve.fixed_base=true"])


def test_every_old_flat_key_is_renamed_to_a_nested_key():
    fields = set(cfgs.all_keys(cfgs.EvolveConfig()))
    for old in OLD_FLAT_FIELDS:
        if old in KEPT_AT_TOP:
            assert old in fields and f"evolve.{old}" not in cfgs.RENAMED_KEYS
            continue
        new = cfgs.RENAMED_KEYS[f"evolve.{old}"]
        assert new.startswith("evolve.") and new[len("evolve."):] in fields, (old, new)
    assert "allocation.genome" in fields  # the allocation genome's section, new with no flat ancestor


def test_old_flat_set_keys_load_to_the_nested_config(capsys):
    """``--set evolve.race_top=3`` (the recorded commands of older runs) is read as
    ``evolve.race.top=3``, with a note; every old key gives the value its new key does."""
    want = _nondefault()
    def text(v):
        return repr(tuple(v)) if isinstance(v, list) else "none" if v is None else str(v).lower() \
            if isinstance(v, bool) else str(v)

    old = [f"evolve.{k}={text(v)}" for k, v in _flat_evolve(want).items() if k not in KEPT_AT_TOP]
    got = cfgs.apply_overrides(cfgs.Config(), old + ["evolve.fixed_base=true"])
    assert got == want
    assert "'evolve.race_top' is now 'evolve.race.top'" in capsys.readouterr().err
    assert cfgs.load_config("evolve_demo", ["evolve.race_top=2", "evolve.inner_steps=3"]) == \
        cfgs.load_config("evolve_demo", ["evolve.race.top=2", "evolve.inner.steps=3"])


def test_an_old_stored_flat_evolve_section_loads_to_the_nested_config(tmp_path):
    want = _nondefault()
    d = json.loads(want.to_json())
    d["evolve"] = _flat_evolve(want)
    migrated, changes = cfgs.migrate_stored_config(d)
    assert "renamed evolve.race_top -> evolve.race.top" in changes
    # every value came from the file, but the allocation section, which the flat layout never had
    assert [c for c in changes if c.startswith("added evolve.")] == \
        [f"added {k}={v!r}" for k, v in cfgs.ADDED_KEYS.items() if k.startswith("evolve.allocation.")]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(d))
    assert cfgs.read_config_file(path) == want
    assert cfgs.migrate_stored_config(migrated)[1] == []


def test_an_old_flat_evolve_section_missing_added_keys_gets_their_old_values():
    """A flat section from before the race, the signal and the fitness metric existed:
    the renamed keys move, the added ones come with the values those runs used."""
    flat = _flat_evolve(cfgs.Config())
    for key in ("race_top", "race_steps", "race_batch", "race_data", "race_repeats", "race_baseline",
                "signal_every", "fitness_metric", "genome_drive", "inject_nan"):
        del flat[key]
    flat["inner_learning_rate"] = 0.0  # meant train.learning_rate
    d = dict(json.loads(cfgs.Config().to_json()), evolve=flat)
    cfg = cfgs.from_dict(cfgs.migrate_stored_config(d)[0])
    assert cfg.evolve.race == cfgs.RaceConfig() and cfg.evolve.fitness.signal_every == 0
    assert cfg.evolve.fitness.metric == "val_accuracy" and cfg.evolve.inner.learning_rate is None


def test_stored_result_configs_load_with_their_values():
    """Every result record under experiments/results that holds a config (flat evolve
    sections, all of them) loads, and each old flat value is the new key's."""
    paths = sorted(glob.glob(str(REPO / "experiments" / "results" / "**" / "*.json"), recursive=True))
    n = 0
    for p in paths:
        try:
            d = json.loads(pathlib.Path(p).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if not (isinstance(d, dict) and isinstance(d.get("config"), dict) and "evolve" in d["config"]):
            continue
        cfg = cfgs.from_dict(cfgs.migrate_stored_config(d["config"])[0], source=p).validate()
        flat, now = d["config"]["evolve"], _flat_evolve(cfg)
        for k, v in flat.items():
            if k in now and not (k == "inner_learning_rate" and v == 0.0):
                assert now[k] == v, (p, k)
        n += 1
    assert n > 0


def test_several_overrides_of_one_section_or_across_sections_apply_together():
    """Overrides are applied at once, so a pair that is valid only together passes in
    either order (each section is built once, with all its changes)."""
    base = cfgs.apply_overrides(cfgs.Config(), ["evolve.search.population=8", "evolve.evaluation.chunk_size=4"])
    for keys in (["evolve.search.population=6", "evolve.evaluation.chunk_size=3"],
                 ["evolve.evaluation.chunk_size=3", "evolve.search.population=6"]):
        cfg = cfgs.apply_overrides(base, keys)
        assert (cfg.evolve.search.population, cfg.evolve.evaluation.chunk_size) == (6, 3)
    race = cfgs.apply_overrides(cfgs.Config(), ["evolve.race.baseline=false", "evolve.race.top=2"])
    assert race.evolve.race == cfgs.RaceConfig(top=2, baseline=False)
    assert cfgs.apply_overrides(cfgs.Config(), ["evolve.race.top=2", "evolve.race.top=3"]).evolve.race.top == 3


@pytest.mark.parametrize("build, needle", [
    (lambda: cfgs.SearchConfig(population=1), "evolve.search.population must be >= 2"),
    (lambda: cfgs.InnerLoopConfig(steps=0), "evolve.inner.steps must be >= 1"),
    (lambda: cfgs.InnerLoopConfig(learning_rate=0.0), "evolve.inner.learning_rate must be > 0"),
    (lambda: cfgs.WiringGenomeConfig(interaction="sparse"), "unknown evolve.wiring.interaction 'sparse'"),
    (lambda: cfgs.FitnessConfig(metric="loss"), "unknown evolve.fitness.metric 'loss'"),
    (lambda: cfgs.FitnessConfig(signal_every=-1), "evolve.fitness.signal_every must be >= 0"),
    (lambda: cfgs.RaceConfig(top=1, baseline=False), "a race needs at least 2 finalists"),
    (lambda: cfgs.EvaluationConfig(chunk_size=-2), "evolve.evaluation.chunk_size must be >= 0"),
    (lambda: cfgs.EvolveConfig(evaluation=cfgs.EvaluationConfig(inject_nan=(16,))),
     "evolve.evaluation.inject_nan (16,) must index the population (0..15)"),
    (lambda: cfgs.EvolveConfig(final_variants=("best",)), "unknown final variant 'best'"),
    (lambda: cfgs.replace(cfgs.Config(), **{"evolve.search.strategy": "pso"}), "unknown strategy 'pso'"),
])
def test_each_section_refuses_a_bad_value_when_built(build, needle):
    with pytest.raises(ValueError) as e:
        build()
    assert needle in str(e.value)


def test_sections_are_frozen_and_validate_returns_them():
    e = cfgs.EvolveConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.search.population = 3
    assert e.validate() is e and e.race.validate() is e.race
