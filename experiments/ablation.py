"""Ablation of the two dynamic regularisation operators of STE (DESIGN 1.3).

Evolves the same config with both operators, with each alone and with none, over
several seeds, and reports (mean ± std over seeds) the generations needed for the best
individual to reach a target validation accuracy, the final best fitness, the final
best validation accuracy, each arm's measured signal (the Spearman rank correlation of
the fitness between two independent evaluations of generation 1, ``evolve.fitness.signal_every``)
and, with ``--final``, the test accuracy of the evolved network after the config's
training recipe. Each run records its compute (seconds). Operators can be swapped for
alternative definitions (``--spatial effective_rank --temporal learning_curve_area``).

    python experiments/ablation.py --config evolve_demo --seeds 0 1 2 \
        --out experiments/results/ablation_evolve_demo.json

Every run checkpoints under ``--workdir`` and the script resumes where it stopped.
"""
import argparse
import json
import pathlib
import sys

import numpy as np

from gsnn import config as cfgs
from gsnn import evolution as EV
from gsnn import training as TR
from gsnn.analysis.plots import plot_ablation, save


def arms(spatial: str, temporal: str) -> dict[str, list[str]]:
    return {
        "both": [f"evolve.fitness.spatial_operator={spatial}", f"evolve.fitness.temporal_operator={temporal}"],
        "spatial_only": [f"evolve.fitness.spatial_operator={spatial}", "evolve.fitness.temporal_operator=none"],
        "temporal_only": ["evolve.fitness.spatial_operator=none", f"evolve.fitness.temporal_operator={temporal}"],
        "none": ["evolve.fitness.spatial_operator=none", "evolve.fitness.temporal_operator=none"],
    }


def mean_std(xs):
    """Mean and std (``ddof = 1``: the seeds are a sample; 0 for one value) of the defined values (a run that never reached the target gives
    ``None``; a signal measured on a population whose ranks were all tied gives NaN)."""
    xs = [x for x in xs if x is not None and np.isfinite(x)]
    if not xs:
        return None, None
    return float(np.mean(xs)), float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="evolve_demo")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--spatial", default="spatial_entropy")
    ap.add_argument("--temporal", default="temporal_difference")
    ap.add_argument("--set", nargs="*", default=[], dest="overrides")
    ap.add_argument("--workdir", default="runs/ablation")
    ap.add_argument("--out", default=None)
    ap.add_argument("--arms", nargs="+", choices=list(arms("", "")), default=None,
                    help="run only these arms (default: all four)")
    ap.add_argument("--final", action="store_true",
                    help="train the best genome of every run with the config's recipe and report its test accuracy")
    ap.add_argument("--target", type=float, default=None,
                    help="validation accuracy to reach (default: the config's, else halfway between the "
                         "mean first-generation and mean final best over all runs)")
    args = ap.parse_args(argv)
    base = cfgs.load_config(args.config, args.overrides)
    target = args.target if args.target is not None else base.evolve.search.target_val_accuracy
    tag = f"{args.spatial}+{args.temporal}"
    out = pathlib.Path(args.out or f"experiments/results/ablation_{base.name}_{tag.replace('+', '_')}.json")
    dataset = TR.load_data(base)
    runs = []
    chosen = {a: sets for a, sets in arms(args.spatial, args.temporal).items() if args.arms is None or a in args.arms}
    for arm, sets in chosen.items():
        for seed in args.seeds:
            finals = "evolve.final_variants=('evolved',)" if args.final else "evolve.final_variants=()"
            cfg = cfgs.load_config(args.config, args.overrides + sets + [f"seed={seed}", finals])
            wd = pathlib.Path(args.workdir) / f"{base.name}_{tag}_{arm}_s{seed}"
            print(f"== {arm} seed {seed}", flush=True)
            r = EV.run_evolution(cfg, wd, dataset=dataset, progress=True)
            gens = r["generations"]
            final = r["final"].get("evolved")
            signal = r["signal"]["history"]
            runs.append(dict(arm=arm, seed=seed,
                             final_best_fitness=gens[-1]["best_fitness"],
                             final_best_val_accuracy=max(g["best_val_accuracy"] for g in gens),
                             best_val_accuracy_per_generation=[g["best_val_accuracy"] for g in gens],
                             best_fitness_per_generation=[g["best_fitness"] for g in gens],
                             signal_spearman=r["signal"]["spearman"],
                             generations=gens,
                             signal=signal,
                             test_accuracy=final["test_accuracy"] if final else None,
                             evolution_seconds=sum(g["seconds"] for g in gens)
                             + sum(rec.get("seconds", 0.0) for rec in signal),
                             final_seconds=sum(h["epoch_seconds"] for h in final["history"]) if final else 0.0))
    if not target:
        # data-driven target: halfway between the mean first-generation best and the
        # mean final best validation accuracy over all runs
        first = np.mean([r["best_val_accuracy_per_generation"][0] for r in runs])
        last = np.mean([max(r["best_val_accuracy_per_generation"]) for r in runs])
        target = float(round((first + last) / 2, 4))
    for r in runs:
        r["generations_to_target"] = next(
            (i + 1 for i, a in enumerate(r["best_val_accuracy_per_generation"]) if a >= target), None)
    summary = []
    for arm in chosen:
        rs = [r for r in runs if r["arm"] == arm]
        reached = [r["generations_to_target"] for r in rs]
        g_mean, g_std = mean_std(reached)
        f_mean, f_std = mean_std([r["final_best_fitness"] for r in rs])
        a_mean, a_std = mean_std([r["final_best_val_accuracy"] for r in rs])
        t_mean, t_std = mean_std([r["test_accuracy"] for r in rs])
        s_mean, s_std = mean_std([r["signal_spearman"] for r in rs])
        summary.append(dict(arm=arm, seeds=len(rs), reached_target=sum(x is not None for x in reached),
                            generations_to_target_mean=g_mean, generations_to_target_std=g_std,
                            final_best_fitness_mean=f_mean, final_best_fitness_std=f_std,
                            final_best_val_accuracy_mean=a_mean, final_best_val_accuracy_std=a_std,
                            test_accuracy_mean=t_mean, test_accuracy_std=t_std,
                            signal_spearman_mean=s_mean, signal_spearman_std=s_std,
                            seconds_per_run=float(np.mean([r["evolution_seconds"] + r["final_seconds"] for r in rs]))))
    command = "python experiments/ablation.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = dict(config=args.config, operators=tag, target_val_accuracy=target, seeds=args.seeds,
                  command=command, summary=summary, runs=runs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    fmt = lambda m, s, d=2: "n/a" if m is None else f"{m:.{d}f} ± {s:.{d}f}"
    lines = [f"Ablation of {tag} on `{args.config}` (target validation accuracy {target}), seeds {args.seeds}.",
             "", f"Command: `{command}`", "",
             "| arm | reached target | generations to target (of those that reached) | final-generation best fitness "
             "| best validation accuracy | test accuracy (evolved, trained) | signal ρ of F, generation 1 | s per run |",
             "|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['arm']} | {s['reached_target']}/{s['seeds']} "
                     f"| {fmt(s['generations_to_target_mean'], s['generations_to_target_std'], 1)} "
                     f"| {fmt(s['final_best_fitness_mean'], s['final_best_fitness_std'], 4)} "
                     f"| {fmt(s['final_best_val_accuracy_mean'], s['final_best_val_accuracy_std'], 4)} "
                     f"| {fmt(s['test_accuracy_mean'], s['test_accuracy_std'], 4)} "
                     f"| {fmt(s['signal_spearman_mean'], s['signal_spearman_std'], 2)} "
                     f"| {s['seconds_per_run']:.0f} |")
    table = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(table)
    ax = plot_ablation(runs, target=target, title=f"{args.config}: {tag}")
    save(ax.figure, out.with_suffix(".png"))
    print("\n" + table)
    print(f"wrote {out}, {out.with_suffix('.md')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    sys.exit(main())
