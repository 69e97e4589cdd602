"""Evolved wiring against its random-wiring twin, paired by seed, from finished
``gsnn evolve`` runs (DESIGN 1.3, issue 13's acceptance).

Each run's ``evolution.json`` holds the evolved network's final record and its twin's
(``evolve.fixed_base``: the same base draw with the zero genome, trained with the same
recipe on the same data). Runs are grouped by a label; per group the script reports
the per-seed differences evolved − twin in test accuracy, their mean and std, how many
are positive, and, for a run with a final race, who won it and by how much, and the
genome's effect at the race's horizon: each search finalist's race validation accuracy
minus the random wiring's (the best of them per run, and their mean over the group).

    python experiments/evolved_vs_twin.py \\
        --group race_held_out experiments/results/evolve_demo/evolution_race.json \\
            experiments/results/evolve_demo/evolution_race_s1.json \\
        --out experiments/results/evolve_demo/evolved_vs_twin.json

Writes the JSON and a Markdown table next to it (``.md``).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from gsnn.analysis.stats import paired_difference, verdict
from gsnn.evolution.race import BASELINE


def run_row(path: str | pathlib.Path) -> dict:
    """One run's paired numbers: seed, test accuracies (evolved, twin, direct when
    trained), firing rates, the selected genome's generation and, with a race, its
    winner and the race fitness of the winner and of the random wiring."""
    r = json.loads(pathlib.Path(path).read_text())
    final = r["final"]
    if "evolved" not in final or "random" not in final:
        raise ValueError(f"{path}: needs the 'evolved' and 'random' finals (evolve.final_variants)")
    if not r["config"]["evolve"].get("fixed_base", False):
        raise ValueError(f"{path}: its random network is another base draw (evolve.fixed_base=false), not a twin")
    evolved, twin = final["evolved"]["test_accuracy"], final["random"]["test_accuracy"]
    row = dict(file=str(path), seed=r["config"]["seed"], evolved=evolved, twin=twin, delta=evolved - twin,
               direct=final["direct"]["test_accuracy"] if "direct" in final else None,
               evolved_firing=final["evolved"]["mean_firing_rate"], twin_firing=final["random"]["mean_firing_rate"],
               search_best_generation=r["best_generation"], race=None)
    race = r.get("race")
    if race:
        win = race["finalists"][race["winner"]]
        base = next((f for f in race["finalists"] if f["source"] == BASELINE), None)
        lead = ([f["race_val_accuracy"] - base["race_val_accuracy"] for f in race["finalists"] if f is not base]
                if base else [])
        row["race"] = dict(steps=race["steps"], batch=race.get("batch"), data=race.get("data", "held_out"),
                           winner=win["source"], winner_generation=win["generation"],
                           winner_race_fitness=win["race_fitness"],
                           random_race_fitness=base["race_fitness"] if base else None,
                           finalists_minus_random_val_accuracy=lead)
    return row


def summarise(label: str, rows: list[dict]) -> dict:
    """The paired differences of one group (:func:`gsnn.analysis.stats.paired_difference`:
    n, mean, std with ``ddof = 1``, 95% t-interval, paired t-test p) and their verdict."""
    seeds = [r["seed"] for r in rows]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"group {label}: seeds {seeds} repeat; one run per seed")
    d = np.asarray([r["delta"] for r in rows])
    pd = paired_difference(d)
    lead = [x for r in rows if r["race"] for x in r["race"]["finalists_minus_random_val_accuracy"]]
    return dict(label=label, seeds=seeds, n=pd.n, delta_mean=pd.mean, delta_std=pd.std or 0.0,
                delta_ci95=None if pd.ci95 is None else list(pd.ci95), delta_p=pd.p, verdict=verdict(pd),
                finalists_minus_random_mean=float(np.mean(lead)) if lead else None,
                finalists_ahead_of_random=int(np.sum(np.asarray(lead) > 0)), finalists=len(lead),
                positive=int(np.sum(d > 0)), evolved_mean=float(np.mean([r["evolved"] for r in rows])),
                twin_mean=float(np.mean([r["twin"] for r in rows])),
                random_won_race=sum(1 for r in rows if r["race"] and r["race"]["winner"] == BASELINE), runs=rows)


def markdown(groups: list[dict]) -> str:
    lines = ["| group | seed | evolved | twin | evolved − twin | direct | firing evolved (twin) | selected "
             "| race: best finalist − random wiring, val acc |",
             "|---|---|---|---|---|---|---|---|---|"]
    for g in groups:
        for r in g["runs"]:
            race = r["race"]
            sel = (f"generation {r['search_best_generation']} (search)" if race is None
                   else "random wiring (race)" if race["winner"] == BASELINE
                   else f"generation {race['winner_generation']} (race)")
            direct = "–" if r["direct"] is None else f"{100 * r['direct']:.2f}%"
            lead = race["finalists_minus_random_val_accuracy"] if race else []
            lead = f"{100 * max(lead):+.2f}" if lead else "–"
            lines.append(f"| {g['label']} | {r['seed']} | {100 * r['evolved']:.2f}% | {100 * r['twin']:.2f}% "
                         f"| {100 * r['delta']:+.2f} | {direct} | {r['evolved_firing']:.3f} ({r['twin_firing']:.3f}) "
                         f"| {sel} | {lead} |")
        mean_lead = ("–" if g["finalists_minus_random_mean"] is None else
                     f"all finalists: {100 * g['finalists_minus_random_mean']:+.2f} "
                     f"({g['finalists_ahead_of_random']}/{g['finalists']} ahead)")
        lines.append(f"| **{g['label']}** | mean | {100 * g['evolved_mean']:.2f}% | {100 * g['twin_mean']:.2f}% "
                     f"| **{100 * g['delta_mean']:+.2f} ± {100 * g['delta_std']:.2f}** ({g['positive']}/"
                     f"{len(g['runs'])} positive; {g['verdict']}) | | | | {mean_lead} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--group", nargs="+", action="append", required=True, metavar=("LABEL", "EVOLUTION_JSON"),
                    help="a label and the evolution.json files of its runs (one per seed); repeatable")
    ap.add_argument("--out", required=True, help="the JSON to write (and .md beside it)")
    args = ap.parse_args(argv)
    groups = []
    for label, *files in args.group:
        if not files:
            raise SystemExit(f"error: --group {label} lists no evolution.json")
        groups.append(summarise(label, [run_row(f) for f in files]))
    command = "python experiments/evolved_vs_twin.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(command=command, groups=groups), indent=1))
    table = markdown(groups)
    out.with_suffix(".md").write_text(f"Command: `{command}`\n\n{table}")
    print(table)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
