"""Which fitness separates genomes? Signal per second of compute (issue 13, DESIGN 1.3).

For each fitness definition (fitness metric x inner steps K x validation images x
operator pair), one generation of ``--config`` (default ``evolve_demo``) is evaluated
twice, with independent inner minibatches and validation subsets
(``evolve.fitness.signal_every=1``: :mod:`gsnn.evolution.signal`). Per term it reports the
Spearman rank correlation of the two evaluations and the between/within-genome
variance ratio, next to the seconds one population evaluation takes (the second
evaluation, whose program is already compiled). A term with signal separates genomes
by more than its own noise: Spearman near 1, variance ratio well above 0.5. Signal per
second of compute is ``ρ F per 100 s`` (:func:`signal_per_100s`), which tells apart
two definitions of equal ρ and unequal cost.

    python benchmarks/fitness_signal.py --json benchmarks/results/fitness_signal.json

Each definition runs in a fresh workdir (no final training). ``--seeds`` repeats the
grid with other seeds (other genome-0 populations and data draws).
"""
from __future__ import annotations

import argparse
import itertools
import platform
import sys
import tempfile
import time

import jax

from gsnn import config as cfgs
from gsnn.evolution import loop as EL
from gsnn.evolution.signal import SIGNAL_TERMS
from gsnn.runtime.records import write_json

OPERATORS = {"first": ("spatial_entropy", "temporal_difference"),
             "activity": ("activity_entropy", "activity_difference")}


def measure_definition(config: str, seed: int, metric: str, inner_steps: int, val_size: int, operators: str,
                       extra: list[str]) -> dict:
    """Generation 1 of ``config`` evaluated twice under one fitness definition."""
    spatial, temporal = OPERATORS[operators]
    cfg = cfgs.load_config(config, [f"seed={seed}", "evolve.search.generations=1", "evolve.fitness.signal_every=1",
                                 f"evolve.fitness.metric={metric}", f"evolve.inner.steps={inner_steps}",
                                 f"evolve.inner.val_size={val_size}", f"evolve.fitness.spatial_operator={spatial}",
                                 f"evolve.fitness.temporal_operator={temporal}"] + extra)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as wd:
        r = EL.evolve(cfg, wd, progress=False)
    rec = r["signal"]["history"][0]
    row = dict(config=config, seed=seed, fitness_metric=metric, inner_steps=inner_steps, val_size=val_size,
               operators=operators, population=cfg.evolve.search.population, members=rec["members"],
               evaluation_seconds=rec["seconds"], wall_s=time.perf_counter() - t0,
               terms={t: rec["terms"][t] for t in SIGNAL_TERMS if t in rec["terms"]})
    return dict(row, fitness_spearman_per_100s=signal_per_100s(row))


def signal_per_100s(row: dict) -> float | None:
    """The fitness's rank correlation between the two evaluations per 100 seconds of
    one population evaluation (``None`` when ρ is undefined)."""
    rho = row["terms"]["fitness"]["spearman"]
    return None if rho is None else 100 * rho / row["evaluation_seconds"]


def _table(rows: list[dict]) -> str:
    head = ["seed", "metric", "K", "val", "operators", "eval s", "ρ fitness", "ρ F per 100 s", "ρ acc", "ρ loss",
            "ρ H_S", "ρ D_T", "vr fitness", "vr loss"]
    fmt = lambda x: "nan" if x is None else f"{x:.2f}"
    lines = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        t = r["terms"]
        rho = lambda k: fmt(t[k]["spearman"]) if k in t else "-"
        vr = lambda k: fmt(t[k]["variance_ratio"]) if k in t else "-"
        lines.append(" | ".join([str(r["seed"]), r["fitness_metric"], str(r["inner_steps"]), str(r["val_size"]),
                                 r["operators"], f"{r['evaluation_seconds']:.1f}", rho("fitness"),
                                 fmt(signal_per_100s(r)),
                                 rho("val_accuracy"), rho("val_loss"), rho("spatial"), rho("temporal"),
                                 vr("fitness"), vr("val_loss")]))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="evolve_demo")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--metrics", nargs="+", default=["val_accuracy", "val_loss"])
    ap.add_argument("--inner-steps", type=int, nargs="+", default=[10, 40])
    ap.add_argument("--val-sizes", type=int, nargs="+", default=[500, 2000])
    ap.add_argument("--operators", nargs="+", choices=list(OPERATORS), default=list(OPERATORS))
    ap.add_argument("--set", dest="overrides", nargs="*", default=[], help="further config overrides for every run")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = []
    grid = list(itertools.product(args.seeds, args.metrics, args.inner_steps, args.val_sizes, args.operators))
    for i, (seed, metric, k, v, ops) in enumerate(grid):
        print(f"[{i + 1}/{len(grid)}] seed {seed}, {metric}, K={k}, val {v}, {ops} operators", flush=True)
        rows.append(measure_definition(args.config, seed, metric, k, v, ops, args.overrides))
        t = rows[-1]["terms"]["fitness"]
        print(f"    fitness ρ {t['spearman']:.3f}, variance ratio {t['variance_ratio']:.2f}, "
              f"{rows[-1]['evaluation_seconds']:.1f} s per evaluation", flush=True)
    print(_table(rows))
    write_json(args.json, dict(benchmark="fitness_signal", command="python " + " ".join(sys.argv),
                               platform=platform.platform(), backend=jax.default_backend(), rows=rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
