"""The experiment scripts' own logic: the CIFAR-10 study's aggregation over seeds and the
rank analysis behind its reading (experiments/cifar10_study.py, rank_analysis.py)."""
import pathlib
import shlex
import statistics
import sys

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "experiments"))

import cifar10_study  # noqa: E402
import rank_analysis  # noqa: E402


def _record(variant, seed, acc, diverged=False, val=None):
    if diverged:
        return dict(variant=variant, seed=seed, diverged=True, error="non-finite", test_accuracy=None,
                    command=f"cmd {variant} {seed}")
    val = acc - 0.01 if val is None else val
    return dict(variant=variant, seed=seed, diverged=False, test_accuracy=acc, test_top5=0.9, encoding="position",
                history=[dict(epoch=1, val_accuracy=val / 2), dict(epoch=2, val_accuracy=val)], val_accuracy=val,
                genes=14, rules=2, first_direct=False, last_direct=True, width=1.0, weight_decay_on="factors",
                init_fan="fan_in", evolved=False, params=52550, direct_params=113962, compression=0.539, epochs=8,
                firing_rates={"conv1": 0.1 + seed, "conv2": 0.2}, mean_firing_rate=0.15, acs=10.0, macs=2.0,
                energy_uj=1.0 + seed, energy_uj_generated_once=0.5, weight_read_bytes_generated_once=4000,
                weight_read_bytes_per_inference=2000, epoch_seconds=60.0, command=f"cmd {variant} {seed}")


def test_study_aggregates_mean_std_over_finite_seeds_and_lists_diverged_ones():
    records = [_record("position_50", 0, 0.58), _record("position_50", 1, 0.60), _record("position_50", 2, None, True),
               _record("direct", 0, 0.62), _record("direct", 1, 0.61), _record("position_80_r2", 0, None, True)]
    for r in records[3:5]:
        r.update(encoding="direct", genes=0, rules=1, params=113962)
    rows = {r["variant"]: r for r in cifar10_study.aggregate(records)}
    assert list(rows) == ["direct", "position_50"]  # VARIANTS order, only variants with finite runs
    p = rows["position_50"]
    assert p["seeds"] == [0, 1] and p["diverged_seeds"] == [2]
    assert p["test_accuracy_mean"] == pytest.approx(0.59)
    assert p["test_accuracy_std"] == pytest.approx(statistics.stdev([0.58, 0.60]))
    assert p["val_accuracy_mean"] == pytest.approx(0.58)
    # what the selection compared, not a constant: the band's shared validation seeds
    assert p["selected_on"] == dict(band="50–80% fewer parameters", split="validation", seeds=p["val_seeds"],
                                    chosen=True)
    assert rows["direct"]["selected_on"] is None
    # paired by seed against direct: 0.58 - 0.62, 0.60 - 0.61
    assert p["paired_delta_mean"] == pytest.approx(-0.025) and p["paired_seeds"] == [0, 1]
    assert p["paired_delta_std"] == pytest.approx(statistics.stdev([-0.04, -0.01]))
    assert p["firing_rates"]["conv1"] == pytest.approx(0.6) and p["energy_uj"] == pytest.approx(1.5)
    assert p["val_accuracy_curve"] == pytest.approx([0.29, 0.58]) and p["test_accuracy_curve"] is None
    assert p["commands"] == ["cmd position_50 0", "cmd position_50 1", "cmd position_50 2"]
    assert rows["direct"]["test_accuracy_std"] == pytest.approx(statistics.stdev([0.62, 0.61]))
    failed = cifar10_study.all_diverged(records)
    assert list(failed) == ["position_80_r2"]  # every run diverged: no row, but reported
    block = cifar10_study.markdown_block(list(rows.values()), failed)
    assert "- Diverged in every run under the shared recipe: `position_80_r2` (seeds 0): non-finite" in block
    assert "# position_80_r2: diverged seeds [0]\ncmd position_80_r2 0" in block
    # two seeds: t(0.975, 1 dof) = tan(0.975 pi - pi/2) = 12.706, p = 1 - 2 atan(|t|) / pi
    import math
    half = math.tan(0.475 * math.pi) * statistics.stdev([-0.04, -0.01]) / math.sqrt(2)
    assert p["paired_delta_ci95"] == pytest.approx([-0.025 - half, -0.025 + half])
    assert p["paired_delta_p"] == pytest.approx(1 - 2 * math.atan(0.025 / 0.015) / math.pi) and p["n"] == 2
    assert ("| position_50 | position | 14 × 2 | 52,550 | 53.9% | 58.00 | 59.00 ± 1.41 | -2.50 ± 2.12 "
            f"[{100 * (-0.025 - half):+.2f}, {100 * (-0.025 + half):+.2f}], p {p['paired_delta_p']:.3f} | "
            "0, 1 (diverged: 2) |") in block
    assert "# position_50: 58.00, 60.00; diverged seeds [2]" in block and "cmd position_50 2" in block
    for key in ("variant", "encoding", "genes", "evolved", "params", "compression", "test_accuracy_mean",
                "test_accuracy_std", "seeds", "epochs",  # issue 5's record keys
                "rules", "first_direct", "last_direct", "width", "weight_decay_on", "selected_on",
                "paired_delta_mean", "paired_delta_std",  # issue 11's
                "n", "paired_delta_ci95", "paired_delta_p", "commit", "machine", "data_fingerprints"):  # issue 25's
        assert key in p


def test_the_best_variant_is_chosen_on_validation_not_on_test():
    a, b = _record("position_50", 0, 0.60, val=0.50), _record("position_50_r2", 0, 0.55, val=0.52)
    rows = cifar10_study.aggregate([a, b])
    assert cifar10_study.best_on_validation(rows, 0.5, 0.8)["variant"] == "position_50_r2"
    assert cifar10_study.best_on_validation(rows, 0.8) is None


def test_the_best_variant_is_compared_on_the_seeds_every_candidate_has():
    """A three-seed candidate ahead on the shared seed 0 wins over a one-seed candidate
    whose single value beats the three-seed mean."""
    three = [_record("position_50_r2", s, 0.6, val=v) for s, v in ((0, 0.62), (1, 0.58), (2, 0.58))]
    one = [_record("position_50_r2_fan_out", 0, 0.6, val=0.61)]
    best = cifar10_study.best_on_validation(cifar10_study.aggregate(three + one), 0.5, 0.8)
    assert best["variant"] == "position_50_r2" and best["selection_seeds"] == [0]
    assert best["selection_val"] == pytest.approx(0.62)
    block = cifar10_study.markdown_block(cifar10_study.aggregate(three + one))
    assert "`position_50_r2` (val 62.00% on seeds 0, shared by every candidate)" in block


def test_a_recorded_command_reproduces_the_study_run(tmp_path):
    """Seed 1 at smoke size on the embedded set: the study runner's record and the
    recorded command, run through the CLI, give the same numbers."""
    from gsnn import cli

    budget = cifar10_study.BUDGET + ["data.source=demo", "data.train_per_class=12", "data.val_per_class=6",
                                     "data.test_per_class=6", "train.epochs=1", "train.batch_size=40",
                                     "train.eval_batch_size=60", "model.width=0.125", "model.T=2"]
    rec = cifar10_study.run_one("position_50_r2", 1, budget, tmp_path / "runs", tmp_path / "results")
    assert rec["rules"] == 2 and rec["genes"] == 14 and rec["last_direct"] and not rec["diverged"]
    argv = shlex.split(rec["command"])[1:] + ["--workdir", str(tmp_path / "cli"), "--json", str(tmp_path / "cli.json")]
    assert argv[0] == "train" and "seed=1" in argv
    assert cli.main(argv) == 0
    import json

    out = json.loads((tmp_path / "cli.json").read_text())
    assert out["test_accuracy"] == rec["test_accuracy"] and out["val_accuracy"] == rec["val_accuracy"]
    assert out["history"][0]["train_loss"] == rec["history"][0]["train_loss"]


def test_study_command_reproduces_the_config():
    from gsnn import config as cfgs

    budget = cifar10_study.BUDGET + ['train.lr_scale=(("interaction",0.25),)']  # quotes inside a tuple
    cmd = cifar10_study.command_for("position_50_ste", 1, budget)
    assert cmd.startswith("gsnn evolve --config convnet_s_cifar10_direct --set ")
    sets = shlex.split(cmd.split(" --set ", 1)[1])  # as a shell reads it
    assert cfgs.load_config("convnet_s_cifar10_direct", sets) == cifar10_study._config("position_50_ste", 1, budget)


def test_rank_truncation_is_the_best_low_rank_kernel():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(3, 3, 4, 6)).astype(np.float32)
    m = rank_analysis.kernel_matrix(kernel)
    assert m.shape == (36, 6)
    for r in (1, 3):
        t = rank_analysis.truncate(kernel, r)
        assert t.shape == kernel.shape
        assert np.linalg.matrix_rank(rank_analysis.kernel_matrix(t), tol=1e-4) == r
        s = np.linalg.svd(m, compute_uv=False)
        # Eckart-Young: the residual's Frobenius norm is the discarded singular values'.
        np.testing.assert_allclose(np.linalg.norm(m - rank_analysis.kernel_matrix(t)), np.sqrt(np.sum(s[r:] ** 2)),
                                   rtol=1e-4)
        assert rank_analysis.energy_in_top(kernel, r) == pytest.approx(np.sum(s[:r] ** 2) / np.sum(s ** 2), rel=1e-5)
    np.testing.assert_allclose(rank_analysis.truncate(kernel, 6), kernel, atol=1e-5)
    assert rank_analysis.energy_in_top(kernel, 6) == pytest.approx(1.0)


def test_study_plots_name_every_variant(tmp_path):
    from gsnn.analysis import plots

    records = [_record(v, s, 0.5 + 0.01 * i + 0.005 * s) for i, v in enumerate(cifar10_study.VARIANTS) for s in (0, 1)]
    for r in records:
        r["encoding"] = "direct" if r["variant"] == "direct" else r["encoding"]
    rows = cifar10_study.aggregate(records)
    acc_png, rate_png = plots.plot_study(rows, tmp_path)
    assert acc_png.stat().st_size > 10_000 and rate_png.stat().st_size > 10_000
    points = [dict(label=r["variant"], params=r["params"], accuracy=r["test_accuracy_mean"],
                   compression=r["compression"]) for r in rows]
    ax = plots.plot_accuracy_vs_params(points, legend=True)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [f"{r['variant']} (54% fewer params)" for r in rows]
    plots.plt.close("all")


def test_narrowed_direct_nets_report_compression_against_the_full_width_net():
    full, narrow = _record("direct", 0, 0.62), _record("direct_w065", 0, 0.61)
    for r, n in ((full, 113962), (narrow, 53461)):
        r.update(encoding="direct", params=n, direct_params=n, compression=0.0)
    rows = {r["variant"]: r for r in cifar10_study.aggregate([full, narrow])}
    assert rows["direct"]["compression"] == 0.0
    assert rows["direct_w065"]["compression"] == pytest.approx(1 - 53461 / 113962)
    assert rows["direct_w065"]["direct_params"] == 113962


def test_ablation_reports_each_arm_with_signal_test_accuracy_and_generations_to_target(tmp_path):
    """experiments/ablation.py at toy size (two of its four arms): each run's signal (generation 1),
    the trained evolved net's test accuracy, and generations to target by its definition
    (the first generation whose best validation accuracy reaches the target)."""
    import ablation

    out = tmp_path / "ablation.json"
    tiny = ["model.hidden=(16,)", "evolve.search.population=4", "evolve.search.generations=2", "evolve.inner.steps=2",
            "evolve.inner.batch=16", "evolve.inner.val_size=40", "evolve.fitness.signal_every=1", "evolve.evaluation.chunk_size=0",
            "train.epochs=1", "data.train_per_class=16", "data.test_per_class=4"]
    ablation.main(["--config", "evolve_mlp", "--seeds", "0", "--final", "--target", "1e-6", "--arms", "both", "none",
                   "--workdir", str(tmp_path / "runs"), "--out", str(out), "--set", *tiny])
    result = __import__("json").loads(out.read_text())
    assert [s["arm"] for s in result["summary"]] == ["both", "none"]
    for r in result["runs"]:
        assert 0.0 <= r["test_accuracy"] <= 1.0
        assert r["signal"][0]["generation"] == 1 and "fitness" in r["signal"][0]["terms"]
        assert r["generations_to_target"] == next(i + 1 for i, a in enumerate(r["best_val_accuracy_per_generation"])
                                                  if a >= 1e-6)
        assert r["evolution_seconds"] > 0 and r["final_seconds"] > 0
        assert [g["best_val_accuracy"] for g in r["generations"]] == r["best_val_accuracy_per_generation"]
    both = result["summary"][0]
    assert both["test_accuracy_mean"] == pytest.approx(result["runs"][0]["test_accuracy"])
    assert "test accuracy" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".png").stat().st_size > 0


def test_ablation_plot_draws_each_arms_mean_curve_over_seeds():
    from gsnn.analysis.plots import plot_ablation

    runs = [dict(arm="both", best_val_accuracy_per_generation=[0.1, 0.3, 0.4]),
            dict(arm="none", best_val_accuracy_per_generation=[0.2, 0.2, 0.2]),
            dict(arm="both", best_val_accuracy_per_generation=[0.3, 0.5, 0.4])]
    ax = plot_ablation(runs, target=0.35)
    both, none, target = ax.lines
    np.testing.assert_allclose(both.get_ydata(), [0.2, 0.4, 0.4])
    np.testing.assert_allclose(none.get_ydata(), [0.2, 0.2, 0.2])
    np.testing.assert_allclose(both.get_xdata(), [1, 2, 3])
    assert list(target.get_ydata()) == [0.35, 0.35]


def test_fitness_horizon_correlates_recorded_terms_with_final_validation_accuracy(tmp_path):
    """experiments/fitness_horizon.py at toy size: the zero genome comes first, each
    correlation is the Spearman correlation of the recorded term with the recorded final
    validation accuracies (numpy ranks here), the selection gain is the selected
    genome's final accuracy minus the zero genome's; no validation split is an error."""
    import fitness_horizon

    tiny = ["model.hidden=(16,)", "evolve.inner.batch=16", "evolve.inner.val_size=40", "train.epochs=1",
            "data.train_per_class=20", "data.test_per_class=4", "evolve.wiring.drive=true", "evolve.fixed_base=true"]
    out = tmp_path / "fh.json"
    fitness_horizon.main(["--config", "evolve_mlp", "--seeds", "0", "--inner-steps", "2", "--population", "3",
                          "--workdir", str(tmp_path / "runs"), "--out", str(out),
                          "--set", *tiny, "data.val_per_class=4"])
    run = __import__("json").loads(out.read_text())["runs"][0]
    assert run["genomes"] == 4 and len(run["finals"]) == 4
    from scipy.stats import spearmanr

    final = np.asarray([f["val_accuracy"] for f in run["finals"]])
    checked = 0
    for term, c in run["correlation"]["2"].items():
        vals = np.asarray([row[term] for row in run["terms"]["2"]])
        if np.ptp(vals) == 0 or np.ptp(final) == 0:
            continue  # undefined (NaN) correlation
        assert c["spearman_with_final_val"] == pytest.approx(spearmanr(vals, final).statistic)
        assert c["selection_gain"] == pytest.approx(final[c["selected"]] - final[0])
        checked += 1
    assert checked >= 2
    assert out.with_suffix(".png").exists()
    with pytest.raises(ValueError, match="data.val_per_class"):
        fitness_horizon.run_seed("evolve_mlp", 0, [2], tiny, 2, tmp_path / "r2", progress=False)


def test_evolved_variant_with_a_twin_writes_both_records_from_one_run():
    """position_50_r2_ste's run trains the evolved net and its twin (same base draw, zero
    genome): both records come from that run, the twin is never run alone, and both
    carry the run's command; a run without the random final cannot make the twin."""
    hist = [dict(epoch=1, epoch_seconds=10.0), dict(epoch=2, epoch_seconds=30.0)]
    result = dict(generations=[{}] * 6, best_generation=3, genome_size=53, signal=dict(spearman=0.6),
                  final=dict(evolved=dict(test_accuracy=0.61, history=hist),
                             random=dict(test_accuracy=0.62, history=hist)))
    rec, (twin, twin_rec) = cifar10_study.evolution_records(result, "position_50_r2_ste")
    assert twin == "position_50_r2_ste_twin" and cifar10_study.RANDOM_TWIN["position_50_r2_ste"] == twin
    assert rec["test_accuracy"] == 0.61 and twin_rec["test_accuracy"] == 0.62
    assert rec["evolution"]["best_generation"] == 3 and "evolution" not in twin_rec
    assert rec["epoch_seconds"] == twin_rec["epoch_seconds"] == 20.0
    budget = cifar10_study.BUDGET
    assert (cifar10_study.command_for(twin, 1, budget) == cifar10_study.command_for("position_50_r2_ste", 1, budget)
            and cifar10_study.command_for(twin, 1, budget).startswith("gsnn evolve"))
    assert cifar10_study.evolution_records(result, "position_50_ste")[1] is None
    del result["final"]["random"]
    with pytest.raises(ValueError, match="final_variants"):
        cifar10_study.evolution_records(result, "position_50_r2_ste")


def test_encoded_variants_are_paired_with_the_direct_net_of_their_size():
    """Against the narrowed direct net whose parameter count is within 5%, seed by seed
    over the seeds both ran; a narrowed net of another size is not a partner."""
    enc = [_record("position_50_r2", s, a) for s, a in ((0, 0.61), (1, 0.62), (2, 0.63))]
    small = [_record("direct_w065", s, a) for s, a in ((0, 0.60), (1, 0.58))]
    tiny = [_record("direct_w037", 0, 0.50)]
    for r, params, width in [(r, 53461, 0.65) for r in small] + [(r, 20764, 0.37) for r in tiny]:
        r.update(encoding="direct", genes=0, rules=1, params=params, width=width)
    rows = {r["variant"]: r for r in cifar10_study.aggregate(enc + small + tiny)}
    p = rows["position_50_r2"]
    assert p["equal_size_direct"] == "direct_w065" and p["equal_size_seeds"] == [0, 1]
    assert p["equal_size_delta_mean"] == pytest.approx(np.mean([0.01, 0.04]))
    assert p["equal_size_delta_std"] == pytest.approx(statistics.stdev([0.01, 0.04]))
    assert rows["direct_w065"]["equal_size_direct"] is None
    block = cifar10_study.markdown_block(list(rows.values()))
    assert "| position_50_r2 | 52,550 | direct_w065 | 53,461 | +2.50 ± 2.12 [" in block
    assert p["equal_size_delta_ci95"][0] < 0 < p["equal_size_delta_ci95"][1] and "not detected" in p["equal_size_verdict"]


def test_an_evolved_variant_is_paired_with_its_random_twin_by_seed():
    """Evolved minus twin, per seed over the seeds both ran, on test and on validation;
    a variant without a twin gets no such keys."""
    evo = [_record("position_50_r2_ste", s, a, val=v) for s, a, v in ((0, 0.615, 0.605), (1, 0.60, 0.62),
                                                                        (2, 0.63, 0.61))]
    twin = [_record("position_50_r2_ste_twin", s, a, val=v) for s, a, v in ((0, 0.62, 0.62), (1, 0.58, 0.61))]
    for r in evo:
        r["evolved"] = True
    rows = {r["variant"]: r for r in cifar10_study.aggregate(evo + twin + [_record("position_50_r2", 0, 0.6)])}
    t, v = rows["position_50_r2_ste"]["twin_test_delta"], rows["position_50_r2_ste"]["twin_val_delta"]
    assert t["seeds"] == [0, 1] and t["deltas"] == pytest.approx([-0.005, 0.02]) and t["positive"] == 1
    assert t["mean"] == pytest.approx(0.0075) and t["std"] == pytest.approx(statistics.stdev([-0.005, 0.02]))
    assert v["deltas"] == pytest.approx([-0.015, 0.01]) and v["mean"] == pytest.approx(-0.0025)
    assert "twin_test_delta" not in rows["position_50_r2"] and "twin_test_delta" not in rows["position_50_r2_ste_twin"]
    block = cifar10_study.markdown_block(list(rows.values()))
    # two seeds: 95% interval mean ± tan(0.475 pi) std / sqrt(2); p = 1 - 2 atan(|t|) / pi
    import math
    half = math.tan(0.475 * math.pi) * statistics.stdev([-0.005, 0.02]) / math.sqrt(2)
    assert t["ci95"] == pytest.approx([0.0075 - half, 0.0075 + half])
    assert t["p"] == pytest.approx(1 - 2 * math.atan(0.0075 / (statistics.stdev([-0.005, 0.02]) / math.sqrt(2))) / math.pi)
    assert (f"| position_50_r2_ste | position_50_r2_ste_twin | s0: -0.50, s1: +2.00 | +0.75 ± 1.77 "
            f"[{100 * (0.0075 - half):+.2f}, {100 * (0.0075 + half):+.2f}], p {t['p']:.3f} | -0.25 ± 1.77 [") in block
    assert "| 1/2 |" in block


def _evolution_record(path, seed, evolved, twin, race_winner=None, fixed_base=True):
    import json

    finals = dict(evolved=dict(test_accuracy=evolved, mean_firing_rate=0.2),
                  random=dict(test_accuracy=twin, mean_firing_rate=0.1))
    race = None
    if race_winner is not None:
        race = dict(steps=234, batch=64, data="validation", winner=race_winner,
                    finalists=[dict(source="search", generation=3, race_fitness=-1.8, race_val_accuracy=0.30),
                               dict(source="search", generation=5, race_fitness=-2.0, race_val_accuracy=0.24),
                               dict(source="random wiring", generation=0, race_fitness=-1.9, race_val_accuracy=0.27)])
    path.write_text(json.dumps(dict(config=dict(seed=seed, evolve=dict(fixed_base=fixed_base)), final=finals,
                                    best_generation=3, race=race)))
    return str(path)


def test_evolved_vs_twin_pairs_runs_by_seed(tmp_path):
    """The paired differences, their mean and sample std (ddof 1), by hand."""
    import json

    import evolved_vs_twin

    files = [_evolution_record(tmp_path / "a.json", 0, 0.40, 0.38, race_winner=0),
             _evolution_record(tmp_path / "b.json", 1, 0.35, 0.36, race_winner=2),
             _evolution_record(tmp_path / "c.json", 2, 0.39, 0.36)]
    out = tmp_path / "pairs.json"
    evolved_vs_twin.main(["--group", "race", *files, "--out", str(out)])
    g = json.loads(out.read_text())["groups"][0]
    d = [0.02, -0.01, 0.03]
    assert [r["delta"] for r in g["runs"]] == pytest.approx(d)
    assert g["delta_mean"] == pytest.approx(sum(d) / 3)
    assert g["delta_std"] == pytest.approx(statistics.stdev(d)) and g["n"] == 3
    assert g["positive"] == 2 and g["random_won_race"] == 1 and g["runs"][2]["race"] is None
    assert g["runs"][0]["race"]["winner_race_fitness"] == -1.8 and g["runs"][0]["race"]["random_race_fitness"] == -1.9
    assert "+1.33 ± 2.08** (2/3 positive; not detected" in out.with_suffix(".md").read_text()
    assert g["runs"][0]["race"]["finalists_minus_random_val_accuracy"] == pytest.approx([0.03, -0.03])
    assert g["finalists_minus_random_mean"] == pytest.approx(0.0) and g["finalists_ahead_of_random"] == 2
    assert g["finalists"] == 4 and "| +3.00 |" in out.with_suffix(".md").read_text()
    with pytest.raises(ValueError, match="seeds \\[0, 0\\] repeat"):
        evolved_vs_twin.main(["--group", "x", files[0], files[0], "--out", str(out)])
    other = _evolution_record(tmp_path / "d.json", 0, 0.4, 0.3, fixed_base=False)
    with pytest.raises(ValueError, match="not a twin"):
        evolved_vs_twin.main(["--group", "x", other, "--out", str(out)])


def test_a_regime_row_pairs_with_direct_and_the_narrowed_net_and_reports_the_gap(tmp_path, monkeypatch):
    """regimes.py: a wide variant is paired by seed with direct width 1 and with the
    narrowed direct net of its size from the baseline records; intervals and the gap by hand."""
    import json
    import math

    import regimes

    base, wide = tmp_path / "base", tmp_path / "wide"
    for folder, recs in ((base, [("direct", 0, 0.60), ("direct", 1, 0.62), ("direct", 2, 0.61),
                                 ("direct_w065", 0, 0.55), ("direct_w065", 1, 0.56), ("direct_w065", 2, 0.57)]),
                         (wide, [("wide_neuron_50_r2", 0, 0.61), ("wide_neuron_50_r2", 1, 0.64),
                                 ("wide_neuron_50_r2", 2, 0.62)])):
        folder.mkdir()
        for v, s, a in recs:
            r = _record(v, s, a)
            r.update(params={"direct": 113962, "direct_w065": 53461}.get(v, 53900),
                     encoding="direct" if v.startswith("direct") else "neuron", train_val_gap=0.1 + s / 100,
                     provenance=dict(commit="abc", dirty=False, machine=dict(cpu="x", cores=2, device_kind="cpu")))
            (folder / f"{v}_s{s}.json").write_text(json.dumps(r))
    monkeypatch.setitem(regimes.REGIMES, "wide", dict(results=wide, variants=["wide_neuron_50_r2"], baselines=base))
    (row,) = regimes.regime_rows("wide")
    d = [0.01, 0.02, 0.01]  # vs direct, by seed
    half = math.sqrt(2 * 0.95**2 / (1 - 0.95**2)) * statistics.stdev(d) / math.sqrt(3)  # t quantile, 2 dof
    assert row["paired_delta_mean"] == pytest.approx(statistics.mean(d))
    assert row["paired_delta_ci95"] == pytest.approx([statistics.mean(d) - half, statistics.mean(d) + half])
    assert row["narrowed_direct"] == "direct_w065" and row["paired_delta_vs_narrowed_mean"] == pytest.approx(0.0633333)
    assert row["compression"] == pytest.approx(1 - 53900 / 113962) and row["train_val_gap"] == pytest.approx(0.11)
    assert row["commits"] == ["abc"] and row["machines"] == ["x, 2 cores, cpu"] and row["seeds"] == [0, 1, 2]
    assert "| wide_neuron_50_r2 |" in regimes.markdown([row])
    # the costs beside it: energy in both conventions (mean over seeds: 1, 2, 3 µJ per inference) and kB read
    assert "| wide_neuron_50_r2 | 53,900 | 0.00 | 0.00 | 0.50 / 2.00 | 4 / 2 | – |" in regimes.markdown([row])


def test_each_variants_learning_rate_is_the_validation_best_and_must_be_bracketed(tmp_path, monkeypatch):
    """lr_choice.py picks each variant's rate by validation accuracy (the study's own
    record at 0.1), and the per-variant regime refuses a rate at the top of its grid."""
    import json

    import lr_choice
    import regimes

    study, out = tmp_path / "study", tmp_path / "lr"
    monkeypatch.setattr(cifar10_study, "RESULTS", study)
    monkeypatch.setattr(lr_choice, "OUT", out)
    val = {"direct": {0.05: 0.57, 0.1: 0.62, 0.2: 0.645}, "position_50_r2": {0.05: 0.59, 0.1: 0.6176, 0.2: 0.60}}
    for variant, by_lr in val.items():
        for lr, v in by_lr.items():
            lr_choice.folder(lr).mkdir(parents=True, exist_ok=True)
            (lr_choice.folder(lr) / f"{variant}_s0.json").write_text(json.dumps(dict(val_accuracy=v)))
    rows = {r["variant"]: r for r in lr_choice.table()}
    assert rows["position_50_r2"]["chosen_lr"] == 0.1 and not rows["position_50_r2"]["at_grid_edge"]
    assert rows["direct"]["chosen_lr"] == 0.2 and rows["direct"]["at_grid_edge"]
    assert rows["direct"]["gain_over_study_lr"] == pytest.approx(2.5)
    assert lr_choice.main(["report"]) == 0
    assert regimes.chosen_lrs(["position_50_r2"]) == {"position_50_r2": 0.1}
    with pytest.raises(SystemExit, match=r"top of the grid .* for \['direct'\]"):
        regimes.chosen_lrs(["direct", "position_50_r2"])
    with pytest.raises(SystemExit, match=r"no learning rate chosen for \['neuron_50_r2'\]"):
        regimes.chosen_lrs(["neuron_50_r2"])


def test_bracket_doubles_the_top_rate_until_the_best_is_inside_the_grid(tmp_path, monkeypatch):
    import json

    import lr_choice

    monkeypatch.setattr(cifar10_study, "RESULTS", tmp_path / "study")
    monkeypatch.setattr(lr_choice, "OUT", tmp_path / "lr")
    ran = []

    def fake_run(lr, variants, seed, match=False, regime="underfit_10k"):  # peaks at lr 0.4 (0.8 matched)
        ran.append((lr, match))
        for v in variants:
            lr_choice.folder(lr, match).mkdir(parents=True, exist_ok=True)
            acc = 0.6 - abs(lr - (0.8 if match else 0.4))
            (lr_choice.folder(lr, match) / f"{v}_s{seed}.json").write_text(json.dumps(dict(val_accuracy=acc)))

    monkeypatch.setattr(lr_choice, "run_at", fake_run)
    assert lr_choice.main(["run", "--variants", "direct", "--lrs", "0.1", "0.2", "--bracket"]) == 0
    assert ran == [(0.1, False), (0.2, False), (0.4, False), (0.8, False)]
    (row,) = lr_choice.table()
    assert row["chosen_lr"] == 0.4 and not row["at_grid_edge"]
    # matched rates: their own folders and rows, one run is a row, bracketed the same way
    ran.clear()
    assert lr_choice.main(["run", "--match", "--variants", "direct", "--lrs", "0.4", "--bracket"]) == 0
    assert ran == [(0.4, True), (0.8, True), (1.6, True)]
    rows = {r["variant"]: r for r in lr_choice.table()}
    assert rows["direct+match"]["chosen_lr"] == 0.8 and not rows["direct+match"]["at_grid_edge"]
    # its gain is over the unmatched study run at 0.1 (30 points below the peak)
    assert rows["direct+match"]["gain_over_study_lr"] == pytest.approx(30.0)


def test_a_rate_is_chosen_in_the_scarce_regime_on_its_own_budget_and_runs(tmp_path, monkeypatch):
    """``--regime scarce_250``: the runs get the regime's budget and their own folders, the
    regime's records at 0.1 are its lr-0.1 column, and the study's table does not see them."""
    import json

    import lr_choice
    import regimes

    monkeypatch.setattr(cifar10_study, "RESULTS", tmp_path / "study")
    monkeypatch.setattr(lr_choice, "OUT", tmp_path / "lr")
    monkeypatch.setitem(regimes.REGIMES, "scarce_250", dict(results=tmp_path / "scarce", variants=["direct"]))
    monkeypatch.setattr(regimes, "SCARCE_EPOCHS", tmp_path / "epochs.json")
    (tmp_path / "epochs.json").write_text(json.dumps(dict(chosen_epochs=150)))
    calls = []

    def fake_main(argv):  # validation accuracy 0.65 at 0.1 (the regime's own run), 0.66 at 0.2
        calls.append(argv)
        out = pathlib.Path(argv[argv.index("--results") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "direct_s0.json").write_text(json.dumps(dict(val_accuracy=0.66)))
        return 0

    monkeypatch.setattr(cifar10_study, "main", fake_main)
    (tmp_path / "scarce").mkdir()
    (tmp_path / "scarce" / "direct_s0.json").write_text(json.dumps(dict(val_accuracy=0.65)))
    assert lr_choice.main(["run", "--regime", "scarce_250", "--variants", "direct", "--lrs", "0.1", "0.2"]) == 0
    (argv,) = calls  # 0.1 is the regime's own run
    assert argv[argv.index("--results") + 1] == str(tmp_path / "lr" / "scarce_250" / "lr0.2")
    assert argv[argv.index("--runs") + 1] == str(pathlib.Path("runs/lr_choice/scarce_250/lr0.2"))
    budget = argv[argv.index("--budget") + 1:]
    assert "train.epochs=150" in budget and "data.train_per_class=250" in budget
    (row,) = lr_choice.table(0, "scarce_250")
    assert row["val_accuracy"] == {"0.1": 65.0, "0.2": 66.0} and row["gain_over_study_lr"] == pytest.approx(1.0)
    assert lr_choice.table(0) == []  # the study regime's table holds none of it
    assert lr_choice.main(["report", "--regime", "scarce_250"]) == 0
    saved = json.loads((tmp_path / "lr" / "scarce_250" / "lr_choice.json").read_text())
    assert saved["regime"] == "scarce_250" and saved["command"].endswith("--regime scarce_250")


def _tuned_regime(tmp_path, monkeypatch, variant: str, val_by_lr: dict, match: bool = False):
    """``lr_choice`` and ``regimes`` pointed at ``tmp_path``, the regime ``underfit_10k_lr``
    holding ``variant`` alone, its seed-0 records at each rate of ``val_by_lr``, reported."""
    import json

    import lr_choice
    import regimes

    monkeypatch.setattr(cifar10_study, "RESULTS", tmp_path / "study")
    monkeypatch.setattr(lr_choice, "OUT", tmp_path / "lr")
    monkeypatch.setitem(regimes.REGIMES, "underfit_10k_lr", dict(results=tmp_path / "tuned", variants=[variant],
                                                                 tuned_from="underfit_10k"))
    base = variant.removesuffix(lr_choice.MATCH)
    for lr, v in val_by_lr.items():
        lr_choice.folder(lr, match).mkdir(parents=True, exist_ok=True)
        (lr_choice.folder(lr, match) / f"{base}_s0.json").write_text(
            json.dumps(dict(val_accuracy=v, lr=lr, seed=0, variant=base)))
    assert lr_choice.main(["report"]) == 0


def test_the_per_variant_lr_regime_reuses_the_choosing_run_and_trains_the_other_seeds(tmp_path, monkeypatch):
    import argparse
    import json

    import regimes

    _tuned_regime(tmp_path, monkeypatch, "direct", {0.1: 0.62, 0.2: 0.65, 0.4: 0.64})
    calls = []
    monkeypatch.setattr(cifar10_study, "main", lambda argv: calls.append(argv) or 0)
    args = argparse.Namespace(regime="underfit_10k_lr", seeds=[0, 1, 2], variants=None)
    assert regimes.cmd_run(args) == 0
    assert json.loads((tmp_path / "tuned" / "direct_s0.json").read_text())["lr"] == 0.2  # the choosing run
    (argv,) = calls
    assert argv[argv.index("--seeds") + 1:argv.index("--variants")] == ["1", "2"]
    assert "train.learning_rate=0.2" in argv and argv[argv.index("--variants") + 1] == "direct"


def test_a_matched_row_trains_each_seed_with_its_own_scales_under_its_own_name(tmp_path, monkeypatch):
    import argparse
    import json

    import lr_choice
    import regimes

    _tuned_regime(tmp_path, monkeypatch, "position_50_r2+match", {0.2: 0.62, 0.4: 0.64, 0.8: 0.63}, match=True)
    monkeypatch.setattr(lr_choice, "matched_scales", lambda v, seed: (("encoding", 0.25 + seed),))
    calls = []

    def fake_main(argv):
        calls.append(argv)
        raw = pathlib.Path(argv[argv.index("--results") + 1])
        raw.mkdir(parents=True, exist_ok=True)
        seed = int(argv[argv.index("--seeds") + 1])
        (raw / f"position_50_r2_s{seed}.json").write_text(json.dumps(dict(seed=seed, variant="position_50_r2")))
        return 0

    monkeypatch.setattr(cifar10_study, "main", fake_main)
    assert regimes.cmd_run(argparse.Namespace(regime="underfit_10k_lr", seeds=[0, 1, 2], variants=None)) == 0
    assert [c[c.index("--seeds") + 1] for c in calls] == ["1", "2"]
    assert all("train.learning_rate=0.4" in c for c in calls)
    assert "train.lr_scale=(('encoding', 2.25),)" in calls[1]
    for seed, lr in ((0, 0.4), (1, None), (2, None)):
        rec = json.loads((tmp_path / "tuned" / f"position_50_r2+match_s{seed}.json").read_text())
        assert rec["variant"] == "position_50_r2+match" and rec.get("lr") == lr


def test_the_scarce_tuned_regime_trains_at_the_scarce_choice_on_the_scarce_budget(tmp_path, monkeypatch):
    import argparse
    import json

    import lr_choice
    import regimes

    monkeypatch.setattr(lr_choice, "OUT", tmp_path / "lr")
    monkeypatch.setitem(regimes.REGIMES, "scarce_250", dict(results=tmp_path / "scarce", variants=["direct"]))
    monkeypatch.setitem(regimes.REGIMES, "scarce_250_lr", dict(results=tmp_path / "tuned", variants=["direct"],
                                                               tuned_from="scarce_250"))
    monkeypatch.setattr(regimes, "SCARCE_EPOCHS", tmp_path / "epochs.json")
    (tmp_path / "epochs.json").write_text(json.dumps(dict(chosen_epochs=150)))
    for lr, v in {0.1: 0.64, 0.2: 0.66, 0.4: 0.65}.items():  # 0.1: the scarce regime's own run
        lr_choice.folder(lr, regime="scarce_250").mkdir(parents=True, exist_ok=True)
        (lr_choice.folder(lr, regime="scarce_250") / "direct_s0.json").write_text(
            json.dumps(dict(val_accuracy=v, lr=lr, seed=0, variant="direct")))
    assert lr_choice.main(["report", "--regime", "scarce_250"]) == 0
    with pytest.raises(SystemExit, match="lr_choice.json is missing"):  # the study regime has no choice here
        regimes.chosen_lrs(["direct"])
    calls = []
    monkeypatch.setattr(cifar10_study, "main", lambda argv: calls.append(argv) or 0)
    assert regimes.cmd_run(argparse.Namespace(regime="scarce_250_lr", seeds=[0, 1, 2], variants=None)) == 0
    assert json.loads((tmp_path / "tuned" / "direct_s0.json").read_text())["lr"] == 0.2  # the choosing run
    (argv,) = calls
    assert argv[argv.index("--seeds") + 1:argv.index("--variants")] == ["1", "2"]
    budget = argv[argv.index("--budget") + 1:argv.index("--set")]
    assert "train.epochs=150" in budget and "data.train_per_class=250" in budget
    assert "train.learning_rate=0.2" in argv


def test_a_variant_at_the_study_rate_reuses_the_study_runs(tmp_path, monkeypatch):
    import argparse
    import json

    import lr_choice
    import regimes

    _tuned_regime(tmp_path, monkeypatch, "direct", {0.05: 0.60, 0.1: 0.62, 0.2: 0.61})
    (lr_choice.folder(0.1) / "direct_s1.json").write_text(json.dumps(dict(val_accuracy=0.63, lr=0.1, seed=1)))
    calls = []
    monkeypatch.setattr(cifar10_study, "main", lambda argv: calls.append(argv) or 0)
    assert regimes.cmd_run(argparse.Namespace(regime="underfit_10k_lr", seeds=[0, 1, 2], variants=None)) == 0
    assert json.loads((tmp_path / "tuned" / "direct_s1.json").read_text())["val_accuracy"] == 0.63
    (argv,) = calls  # only the seed the study lacks is trained
    assert argv[argv.index("--seeds") + 1:argv.index("--variants")] == ["2"]
