"""experiments/allocation.py end to end on its smoke path (generated 8x8 data, the config
shrunk): sample, fitness at one horizon, train, spearman, structure, surrogate, study and
surrogate-study and direct of one seed, report (budget-choice is two such searches; run by hand on
--smoke)."""
import argparse
import json
import pathlib
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

import allocation as X  # noqa: E402


def test_the_allocation_experiment_runs_on_its_smoke_path(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the study's config is found in ./experiments/configs
    common = ["--budget", "82", "--smoke", "--results", str(tmp_path / "res"), "--runs", str(tmp_path / "runs")]
    assert X.main(["sample", "--n", "4", "--seed", "0"] + common) == 0
    samples = json.loads((tmp_path / "res" / "b82_neuron" / "samples.json").read_text())
    assert all(s["params"] <= samples["budget"] for s in samples["samples"])
    assert X.main(["fitness", "--horizons", "2"] + common) == 0
    assert X.main(["train"] + common) == 0
    with pytest.raises(SystemExit, match=r"--samples \[7\]: not in"):
        X.main(["train", "--seed", "1", "--samples", "2", "7"] + common)
    assert X.main(["train", "--seed", "1", "--samples", "2"] + common) == 0  # a split repeat: only that index
    repeat = sorted((tmp_path / "res" / "b82_neuron" / "train").glob("*_s1.json"))
    assert [p.name for p in repeat] == ["sample2_s1.json"]
    repeat[0].unlink()  # a partial repeat stops `surrogate` (tested below); this one only checks the split
    assert X.main(["spearman"] + common) == 0
    sp = json.loads((tmp_path / "res" / "b82_neuron" / "spearman.json").read_text())
    assert len({str(s["counts"]) for s in samples["samples"]}) == 4 and sp["repeated_allocations_left_out"] == []
    assert [r["horizon"] for r in sp["horizons"]] == [2] and all(r["n"] == 4 for r in sp["horizons"])
    assert (tmp_path / "res" / "b82_neuron" / "spearman.png").read_bytes()[:4] == b"\x89PNG"
    assert X.main(["structure"] + common) == 0
    assert (tmp_path / "res" / "b82_neuron" / "structure.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit, match="run `surrogate` first"):
        X.main(["surrogate-study", "--seeds", "0"] + common)
    assert X.main(["surrogate"] + common) == 0
    sur = json.loads((tmp_path / "res" / "b82_neuron" / "surrogate.json").read_text())
    assert sur["n"] == 4 and sur["found"]["within_budget"] and len(sur["points"]) == 4  # no uniform row in --smoke
    assert (tmp_path / "res" / "b82_neuron" / "surrogate.png").read_bytes()[:4] == b"\x89PNG"
    assert X.main(["surrogate-study", "--seeds", "0"] + common) == 0
    with pytest.raises(SystemExit, match="no over-budget rule chosen yet"):  # no silent default
        X.main(["study", "--seeds", "0"] + common)
    assert X.main(["study", "--seeds", "0", "--over-budget", "project", "--inner-steps", "2"] + common) == 0
    out = tmp_path / "allocation.json"
    assert X.main(["report", "--results", str(tmp_path / "res"), "--out", str(out)]) == 0
    assert all(r["paired_delta_vs_direct"] is None for r in json.loads(out.read_text()))  # no direct record yet
    assert X.main(["direct", "--seeds", "0"] + common) == 0
    direct = json.loads((tmp_path / "res" / "direct" / "s0.json").read_text())
    assert direct["params"] == direct["direct_params"] and "encoding=direct" in direct["command"]
    assert X.main(["report", "--results", str(tmp_path / "res"), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["arm"] for r in rows] == ["evolved", "uniform", "random", "surrogate", "direct"]
    for r in rows[:4]:  # each arm minus direct, seed by seed
        assert r["paired_delta_vs_direct"]["mean"] == pytest.approx(r["test_accuracies"][0] - direct["test_accuracy"])
    assert rows[4]["test_accuracies"] == [direct["test_accuracy"]] and rows[4]["paired_delta_vs_direct"] is None
    assert rows[4]["compression"] == [0.0] and rows[4]["paired_delta_vs_uniform"] is None and rows[4]["within_budget"] is None
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert [r["within_budget"] for r in rows[:4]] == [[p <= r["budget_params"] for p in r["params"]] for r in rows[:4]]
    keys = {"budget", "arm", "seeds", "test_accuracies", "params", "within_budget", "compression", "allocation",
            "paired_delta_vs_uniform", "search_seconds", "commands", "fitness_vs_trained_spearman"}
    assert keys <= set(rows[0])
    assert rows[0]["params"][0] <= rows[0]["budget_params"] and rows[0]["paired_delta_vs_uniform"]["n"] == 1
    assert rows[3]["params"][0] == sur["found"]["params"] and rows[3]["paired_delta_vs_uniform"]["n"] == 1
    assert keys - {"fitness_vs_trained_spearman"} <= set(rows[3]) and rows[3]["surrogate"]["loo"] == sur["loo"]


def test_a_repeated_allocation_counts_once_in_the_correlation():
    samples = [dict(index=0, counts=[[3, 2]]), dict(index=1, counts=[[4]]), dict(index=2, counts=[[3, 2]]),
               dict(index=3, counts=[[2, 3]])]
    assert X.distinct_samples(samples) == ([0, 1, 3], [2])


def _args(tmp_path, budget="54", mode="position"):
    """The parsed arguments the helpers under test read."""
    return argparse.Namespace(results=str(tmp_path), budget=budget, mode=mode, inner_steps=None, over_budget=None)


def test_every_budget_uses_the_horizon_and_rule_chosen_at_54(tmp_path):
    args = lambda budget, mode: _args(tmp_path, budget, mode)
    b82 = args("82", "neuron")
    with pytest.raises(SystemExit, match="no horizon chosen yet"):
        X.horizon(b82)
    X.write(X.folder(args("54", "position")) / "spearman.json", dict(chosen_horizon=160))
    X.write(X.folder(args("54", "position")) / "budget_choice.json", dict(chosen="penalty"))
    assert (X.horizon(b82), X.over_budget_rule(b82)) == (160, "penalty")
    X.write(X.folder(b82) / "spearman.json", dict(chosen_horizon=40))  # a budget's own choice comes first
    assert X.horizon(b82) == 40
    b82.inner_steps, b82.over_budget = 10, "project"
    assert (X.horizon(b82), X.over_budget_rule(b82)) == (10, "project")


def test_budget_choice_refuses_a_study_seed(tmp_path):
    with pytest.raises(SystemExit, match="is a study seed"):
        X.main(["budget-choice", "--budget", "54", "--seed", "0", "--smoke", "--results", str(tmp_path)])


def test_the_horizon_is_one_whose_ranking_carries_else_the_fixed_fallback(tmp_path):
    from scipy.stats import spearmanr

    args = _args(tmp_path)
    acc = [0.50, 0.52, 0.55, 0.57, 0.60, 0.61]
    X.write(X.folder(args) / "samples.json", dict(samples=[dict(index=i, counts=[[i + 1]]) for i in range(6)]))
    (X.folder(args) / "train").mkdir()
    for i, a in enumerate(acc):
        X.write(X.trained_path(args, i, 0), dict(index=i, seed=0, val_accuracy=a))
    fit = lambda k, ranks: X.write(X.folder(args) / f"fitness_K{k}.json",
                                   dict(rows=[dict(index=i, fitness=float(v)) for i, v in enumerate(ranks)]))
    fitness = {10: [3, 1, 5, 0, 2, 4], 40: [0, 1, 2, 3, 4, 5], X.FALLBACK_HORIZON: [1, 0, 3, 2, 5, 4]}
    for k, ranks in fitness.items():
        fit(k, ranks)
    table = X.spearman_table(args)
    np.testing.assert_allclose([r["rho"] for r in table["horizons"]],
                               [spearmanr(fitness[k], acc)[0] for k in sorted(fitness)], atol=1e-12)
    assert table["chosen_horizon"] == 40  # the only interval above 0 (the fallback's rho 0.83 at n 6 reaches 0)
    (X.folder(args) / "fitness_K40.json").unlink()
    fit(2 * X.FALLBACK_HORIZON, [0, 2, 1, 4, 5, 3])  # longer, but its interval (rho 0.77, n 6) reaches 0 too
    table = X.spearman_table(args)
    assert table["chosen_horizon"] == X.FALLBACK_HORIZON and "told apart from 0" in table["chosen_because"]
    # a repeat at seed 1, first partial (the choice stays on seed 0), then complete; every
    # allocation moved by the same amount: all of the spread is the allocations', no noise
    X.write(X.trained_path(args, 0, 1), dict(index=0, seed=1, val_accuracy=acc[0] + 0.01))
    assert "partial (1 of 6)" in X.spearman_table(args)["chosen_because"]
    for i, a in enumerate(acc):
        X.write(X.trained_path(args, i, 1), dict(index=i, seed=1, val_accuracy=a + 0.01))
    table = X.spearman_table(args)
    rel = table["reliability"]
    assert table["target_key"] == "_mean" and "partial" not in table["chosen_because"]
    assert rel["n"] == 6 and rel["noise_sd_points"] < 1e-9 and abs(rel["pearson"] - 1) < 1e-9
    assert abs(rel["between_allocation_sd_points"] - np.std(np.array(acc) * 100, ddof=1)) < 1e-9
    assert abs(rel["ceiling_one_training"] - 1) < 1e-9 and abs(rel["ceiling_mean_of_two"] - 1) < 1e-9


def test_structure_ranks_each_layers_genes_and_rules_against_accuracy_and_fitness(tmp_path):
    from scipy.stats import spearmanr

    args = _args(tmp_path)
    genes = [[[4], [2, 2]], [[3, 3], [1]], [[1], [4, 4]], [[2, 1], [3]], [[4, 4], [2]], [[1], [1]]]
    acc0, acc1 = [0.50, 0.55, 0.61, 0.52, 0.48, 0.57], [0.51, 0.53, 0.60, 0.54, 0.47, 0.56]
    fitness = [2, 5, 0, 1, 4, 3]
    samples = [dict(index=i, counts=g, layers={"a": dict(genes=g[0], rules=len(g[0])), "b": dict(genes=g[1], rules=len(g[1]))})
               for i, g in enumerate(genes)]
    X.write(X.folder(args) / "samples.json", dict(samples=samples))
    (X.folder(args) / "train").mkdir()
    for i in range(6):
        X.write(X.trained_path(args, i, 0), dict(index=i, seed=0, val_accuracy=acc0[i]))
    X.write(X.folder(args) / "fitness_K40.json", dict(rows=[dict(index=i, fitness=f) for i, f in enumerate(fitness)]))
    table = X.structure_table(args)
    rows = {r["feature"]: r for r in table["rows"]}
    a_genes = [sum(g[0]) for g in genes]
    assert set(rows) == {"a genes", "a rules", "b genes", "b rules"} and "trained_mean" not in rows["a genes"]
    assert abs(rows["a genes"]["trained_s0"]["rho"] - spearmanr(a_genes, acc0)[0]) < 1e-12
    assert abs(rows["b rules"]["fitness_K40"]["rho"] - spearmanr([len(g[1]) for g in genes], fitness)[0]) < 1e-12
    for i in range(6):
        X.write(X.trained_path(args, i, 1), dict(index=i, seed=1, val_accuracy=acc1[i]))
    rows = {r["feature"]: r for r in X.structure_table(args)["rows"]}
    mean = (np.array(acc0) + np.array(acc1)) / 2
    assert abs(rows["a genes"]["trained_s1"]["rho"] - spearmanr(a_genes, acc1)[0]) < 1e-12
    assert abs(rows["a genes"]["trained_mean"]["rho"] - spearmanr(a_genes, mean)[0]) < 1e-12
    assert rows["a genes"]["trained_mean"]["n"] == 6


def test_the_surrogate_refuses_a_partial_repeat_and_fits_each_allocations_mean(tmp_path):
    args = _args(tmp_path, "82", "neuron")
    args.smoke = True
    search = X.search_of(X.config(args, 0), X.SMOKE_SHAPE)
    samples = [dict(index=i, counts=[[g] for _ in search.layout.layers]) for i, g in enumerate((1, 2, 3, 4))]
    X.write(X.folder(args) / "samples.json", dict(samples=samples))
    (X.folder(args) / "train").mkdir()
    for i in range(4):
        X.write(X.trained_path(args, i, 0), dict(index=i, seed=0, val_accuracy=0.5 + 0.01 * i, history=[]))
    X.write(X.trained_path(args, 0, 1), dict(index=0, seed=1, val_accuracy=0.6, history=[]))
    with pytest.raises(SystemExit, match="partial \\(1 of 4"):
        X.surrogate_data(args, search)
    for i in range(1, 4):
        X.write(X.trained_path(args, i, 1), dict(index=i, seed=1, val_accuracy=0.52, history=[]))
    data = X.surrogate_data(args, search)
    np.testing.assert_allclose(data["y"], [55.0, 51.5, 52.0, 52.5])  # percent, the mean of seeds 0 and 1
    assert data["seeds"] == [0, 1] and data["x"][:, 0].tolist() == [1, 2, 3, 4]  # first layer's genes
