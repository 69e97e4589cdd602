"""The final race (gsnn.evolution.race) on hand-built archives and a hand-written table of
race fitness per repeat and finalist: the winner is the finalist of the best mean over
repeats; a finalist that diverged in a repeat cannot win; ties are decided as documented;
a race in which every finalist diverged is an error. Nothing here runs a search, so
nothing depends on where one wanders."""
import types

import numpy as np
import pytest

from gsnn import config as cfgs
from gsnn.evolution import loop as EVL
from gsnn.evolution import race as RC

NAN = float("nan")


def _config(repeats: int) -> cfgs.Config:
    return cfgs.Config(
        name="race", model=cfgs.ModelConfig(arch="mlp", hidden=(8,), T=1, genetic=cfgs.GeneticConfig(encoding="position",
                                                                                              genes=2)),
        evolve=cfgs.EvolveConfig(search=cfgs.SearchConfig(population=4, generations=5),
                                 fitness=cfgs.FitnessConfig(signal_every=0),
                                 race=cfgs.RaceConfig(top=3, steps=7, repeats=repeats),
                                 evaluation=cfgs.EvaluationConfig(shard=False))).validate()


def _archive() -> tuple[RC.Archive, dict]:
    """Three searched genomes ``w = 10, 11, 12`` (search scores 0.9 > 0.7 > 0.4) and the
    zero genome: the finalists are them in this order, the random wiring last."""
    mean = {"w": np.zeros(1)}
    archive = RC.Archive(np.array([0.9, 0.7, 0.4]), np.array([3, 1, 2]), {"w": np.array([[10.0], [11.0], [12.0]])})
    return archive, mean


def _race(monkeypatch, table, tmp_path=None, evaluations=None):
    """Races the hand-built finalists with ``table [R][C]`` as the race fitness of
    finalist ``c`` in repeat ``r`` (validation accuracy ``table / 10``); returns the race
    record and the winner's genome (through the loop's ``_race``, which reads a record
    stored in ``tmp_path`` back instead: then ``evaluations=0``)."""
    table = np.asarray(table, np.float64)
    calls = []

    def evaluate(genomes, key, xb, yb, generation, vx, vy):
        assert np.asarray(genomes["w"]).ravel().tolist() == [10.0, 11.0, 12.0, 0.0]
        assert int(generation) == 4  # the last generation's lambdas
        r = len(calls)
        calls.append(r)
        return dict(fitness=table[r], val_loss=-table[r], val_accuracy=table[r] / 10)

    monkeypatch.setattr(RC, "make_problem", lambda cfg, ds: types.SimpleNamespace(evaluate_population_on=evaluate))
    monkeypatch.setattr(RC, "check_race_sizes", lambda problem: None)
    monkeypatch.setattr(RC, "race_data", lambda problem, r: (np.zeros((1, 1)),) * 4)
    archive, mean = _archive()
    record, genome = EVL._race(_config(len(table)), None, archive, mean, tmp_path, lambda *a, **k: None)
    assert len(calls) == (len(table) if evaluations is None else evaluations)  # all finalists at once per repeat
    return record, genome


def test_the_winner_has_the_best_mean_over_repeats_not_the_best_last_or_first_repeat(monkeypatch, tmp_path):
    table = [[1.0, 0.3, 0.0, 0.2],   # repeat 0: finalist 0 leads
             [0.0, 0.5, 0.1, 0.2],
             [0.2, 0.6, 0.9, 0.2]]   # repeat 2: finalist 2 leads
    record, genome = _race(monkeypatch, table, tmp_path)
    means = [0.4, 1.4 / 3, 1.0 / 3, 0.2]  # by hand
    assert record["winner"] == 1 and record["tied"] == []
    assert float(genome["w"][0]) == 11.0  # the winner's genome is handed on
    rows = record["finalists"]
    assert [f["race_fitness"] for f in rows] == pytest.approx(means)
    assert [f["race_fitness_repeats"] for f in rows] == [list(col) for col in zip(*table)]
    assert [f["source"] for f in rows] == [RC.SEARCH] * 3 + [RC.BASELINE]
    assert [f["generation"] for f in rows] == [3, 1, 2, 0] and rows[0]["search_fitness"] == 0.9
    assert (record["steps"], record["repeats"]) == (7, 3)
    # paired leads over the random wiring, by hand: finalist 1's accuracy deltas per repeat
    d = np.array([0.3 - 0.2, 0.5 - 0.2, 0.6 - 0.2]) / 10
    lead = record["leads_over_random"][1]["val_accuracy"]
    assert lead["mean"] == pytest.approx(d.mean()) and lead["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(3))
    # read back from the workdir when raced again with the same settings: not re-evaluated
    again, _ = _race(monkeypatch, [[0.0] * 4] * 3, tmp_path, evaluations=0)
    assert again["winner"] == 1 and again["finalists"] == rows


def test_a_finalist_that_diverged_in_one_repeat_cannot_win(monkeypatch):
    table = [[0.3, 0.9, 0.0, 0.2],
             [0.5, NAN, 0.1, 0.2],   # finalist 1 diverged here: its mean is -inf whatever else it scored
             [0.4, 0.9, 0.2, 0.2]]
    record, genome = _race(monkeypatch, table)
    assert record["winner"] == 0 and float(genome["w"][0]) == 10.0
    assert record["finalists"][1]["race_fitness"] == -np.inf
    assert record["finalists"][1]["race_fitness_repeats"] == [0.9, -np.inf, 0.9]


@pytest.mark.parametrize("table,winner,tied", [
    # a searched genome that only ties the random wiring has not beaten it: the random wiring
    ([[0.5, 0.25, 0.0, 0.5], [0.5, 0.25, 0.0, 0.5]], 3, [0, 3]),
    # a tie among searched genomes: the one the search ranked first
    ([[0.25, 0.75, 0.0, 0.1], [0.75, 0.25, 0.0, 0.1]], 0, [0, 1]),
    ([[0.0, 0.75, 0.75, 0.1], [0.0, 0.25, 0.25, 0.1]], 1, [1, 2]),
])
def test_ties_go_to_the_random_wiring_then_to_the_search_order(monkeypatch, table, winner, tied):
    record, _ = _race(monkeypatch, table)
    assert (record["winner"], record["tied"]) == (winner, tied)


def test_a_race_in_which_every_finalist_diverged_is_an_error(monkeypatch):
    table = [[NAN, 0.5, -np.inf, 0.2], [0.1, np.inf, 0.3, NAN]]  # each diverged in some repeat
    with pytest.raises(ValueError, match=r"every race finalist diverged in at least one of its 2 repeat\(s\).*"
                                         r"resume it with gsnn evolve --resume"):
        _race(monkeypatch, table)


@pytest.mark.parametrize("strategy, finalists, raced_as", [("open_es", 3, "cma_es"), ("open_es", 4, "open_es"),
                                                            ("snes", 3, "snes")])
def test_the_race_config_sizes_the_population_to_the_finalists_and_accepts_an_odd_open_es_race(
        strategy, finalists, raced_as):
    cfg = _config(2)
    cfg = cfgs.Config(**{**cfg.__dict__, "evolve": cfgs.EvolveConfig(
        **{**cfg.evolve.__dict__, "search": cfgs.SearchConfig(strategy=strategy, population=4, generations=5)})})
    rc = RC.race_config(cfg, finalists).validate()
    assert rc.evolve.search.population == finalists and rc.evolve.search.strategy == raced_as
    assert rc.evolve.inner.steps == 7 and rc.evolve.fitness.signal_every == 0
