"""Does the fitness predict what the full training gives? (issue 13, DESIGN 1.3)

A fitness can separate genomes reproducibly (``benchmarks/fitness_signal.py``) and
still reward the wrong thing: it scores a network after ``K`` inner steps, selection
wants the network after the whole recipe. For one population of genomes (the zero
genome, i.e. random wiring, then the strategy's first ask around it), this script

1. evaluates every genome's fitness terms with each inner-loop length ``K``
   (``--inner-steps``; the generation-0 minibatches and key of the run);
2. trains every genome's network with the config's recipe (``train``) and records its
   final validation accuracy (``data.val_per_class`` > 0 is required: the comparison
   is made on validation, never on test) and mean firing rate; a network whose
   training diverges counts at chance accuracy (what selecting its genome would give);
3. reports per ``K`` and term the Spearman correlation between the term and the final
   validation accuracy, and the selection gain: the final validation accuracy of the
   genome the fitness ranks first minus that of the zero genome.

    python experiments/fitness_horizon.py --config evolve_demo --seeds 0 --inner-steps 10 40 \\
        --set evolve.wiring.drive=true evolve.fixed_base=true evolve.search.std_init=1.0 \\
              evolve.fitness.metric=val_loss evolve.inner.val_size=2000 data.val_per_class=50 \\
        --out experiments/results/fitness_horizon_evolve_demo.json

Each final training checkpoints under ``--workdir``: a killed run resumes where it
stopped (the fitness evaluations are recomputed; they are deterministic).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from gsnn import config as cfgs
from gsnn import evolution as EV
from gsnn.evolution import genome as GN
from gsnn import training as TR
from gsnn.evolution.signal import spearman
from gsnn.runtime.records import write_json

#: Fitness terms correlated with the final accuracy; ``val_loss`` is expected to
#: correlate negatively (lower loss, higher accuracy), the others positively.
TERMS = ("fitness", "accuracy_term", "val_accuracy", "val_loss", "temporal", "spatial")


def population(problem, seed: int, size: int) -> list:
    """The zero genome, then ``size`` genomes of the strategy's first ask (its initial
    distribution around the zero genome, ``evolve.search.std_init``)."""
    e = problem.cfg.evolve
    mean = GN.default_genome(problem.spec, problem.reference_params)
    strat = EV.make_strategy(e.search.strategy, size, mean, std_init=e.search.std_init,
                             elite_ratio=e.search.elite_ratio)
    state = EV.strategy_init(strat, jax.random.key(seed + 1000), mean)
    asked, _ = strat.es.ask(jax.random.key(seed + 2000), state, strat.params)
    return [mean] + [jax.tree_util.tree_map(lambda a, i=i: a[i], asked) for i in range(size)]


def fitness_terms(problem, genomes: list, seed: int) -> list[dict]:
    """Each genome's fitness terms (floats) at generation 0 of ``problem``."""
    xb, yb = EV.generation_batches(problem, 0)
    key = jax.random.fold_in(jax.random.key(seed), 23)
    out = []
    for genome in genomes:
        r = jax.device_get(problem.evaluate_one(genome, key, jnp.asarray(xb), jnp.asarray(yb), 0))
        out.append({t: float(r[t]) for t in TERMS if t in r})
    return out


def run_seed(config: str, seed: int, inner_steps: list[int], overrides: list[str], size: int,
             workdir: pathlib.Path, progress: bool = True) -> dict:
    """One seed: the population's fitness terms per ``K`` and its trained accuracies."""
    cfg = cfgs.load_config(config, overrides + [f"seed={seed}", "evolve.final_variants=()"])
    if not cfg.data.val_per_class:
        raise ValueError("fitness_horizon compares with the final validation accuracy: set data.val_per_class > 0 "
                         "(e.g. --set data.val_per_class=50); the test split is never used for this choice")
    ds = TR.load_data(cfg)
    problems = {k: EV.make_problem(cfgs.replace(cfg, **{"evolve.inner.steps": k}), ds) for k in inner_steps}
    first = problems[inner_steps[0]]
    genomes = population(first, seed, size)
    t0 = time.perf_counter()
    terms = {}
    for k, problem in problems.items():
        terms[k] = fitness_terms(problem, genomes, seed)
        if progress:
            print(f"seed {seed}: fitness at K={k} for {len(genomes)} genomes ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    fitness_seconds = time.perf_counter() - t0
    final_cfg = EV.variant_config(cfg, "evolved")
    finals = []
    chance = 1.0 / cfg.model.num_classes
    for i, genome in enumerate(genomes):
        t1 = time.perf_counter()
        try:
            rec = TR.result_record(TR.train_and_evaluate(
                final_cfg, workdir / f"{cfg.name}_s{seed}_genome{i}", dataset=ds, progress=False,
                init_fn=EV.genome_init_fn(first, genome)))
            final = dict(val_accuracy=rec["val_accuracy"], mean_firing_rate=rec["mean_firing_rate"], diverged=False,
                         epoch_seconds=sum(h["epoch_seconds"] for h in rec["history"]))
        except TR.NonFiniteError as err:  # what selecting this genome would give: a network at chance
            final = dict(val_accuracy=chance, mean_firing_rate=None, diverged=True, error=str(err),
                         epoch_seconds=time.perf_counter() - t1)
        finals.append(final)
        if progress:
            rate = "diverged" if final["diverged"] else f"firing rate {final['mean_firing_rate']:.3f}"
            print(f"seed {seed}: genome {i}{' (zero)' if i == 0 else ''} trained: val acc "
                  f"{final['val_accuracy']:.4f}, {rate}", flush=True)
    final_val = np.asarray([f["val_accuracy"] for f in finals])
    per_k = {}
    for k in inner_steps:
        per_term = {}
        for t in TERMS:
            vals = np.asarray([row.get(t, np.nan) for row in terms[k]], np.float64)
            ok = np.isfinite(vals)
            if ok.sum() < 3:
                continue
            # the genome the term ranks first (loss: lowest), among finite ones
            best = int(np.nanargmin(np.where(ok, vals, np.nan)) if t == "val_loss"
                       else np.nanargmax(np.where(ok, vals, np.nan)))
            per_term[t] = dict(spearman_with_final_val=spearman(vals[ok], final_val[ok]), members=int(ok.sum()),
                               selected=best, selection_gain=float(final_val[best] - final_val[0]))
        per_k[str(k)] = per_term
    return dict(seed=seed, genomes=len(genomes), terms={str(k): v for k, v in terms.items()}, finals=finals,
                correlation=per_k, fitness_seconds=fitness_seconds,
                final_seconds=float(sum(f["epoch_seconds"] for f in finals)))


def _plot(result: dict, path: pathlib.Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = result["inner_steps"]
    clip = 3.0  # losses above it (exploded inner loops) are drawn at it, as crosses
    fig, axes = plt.subplots(1, len(ks), figsize=(4.2 * len(ks), 3.6), squeeze=False)
    for ax, k in zip(axes[0], ks):
        for i, run in enumerate(result["runs"]):
            x = np.asarray([row.get("val_loss", np.nan) for row in run["terms"][str(k)]], np.float64)
            x = np.where(np.isfinite(x), x, np.inf)
            y = np.asarray([f["val_accuracy"] for f in run["finals"]])
            color = f"C{i}"
            ok = x[1:] <= clip
            ax.scatter(x[1:][ok], y[1:][ok], s=14, color=color, label=f"seed {run['seed']}")
            ax.scatter(np.full((~ok).sum(), clip), y[1:][~ok], s=18, marker="x", color=color)
            ax.scatter(min(x[0], clip), y[0], s=90, marker="*", color=color, edgecolors="k")
        ax.axvline(np.log(result.get("num_classes", 10)), color="0.6", lw=0.8, ls=":")
        ax.set_xlabel(f"validation loss after K={k} inner steps")
        ax.set_ylabel("final validation accuracy")
    axes[0][0].legend(fontsize=7, title=f"★ zero genome, × loss > {clip:g}, : chance", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="evolve_demo")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--inner-steps", type=int, nargs="+", default=[10, 40])
    ap.add_argument("--population", type=int, default=None, help="genomes besides the zero genome (default: the config's)")
    ap.add_argument("--set", dest="overrides", nargs="*", default=[])
    ap.add_argument("--workdir", default="runs/fitness_horizon")
    ap.add_argument("--out", default="experiments/results/fitness_horizon.json")
    args = ap.parse_args(argv)
    size = args.population or cfgs.load_config(args.config, args.overrides).evolve.search.population
    command = "python experiments/fitness_horizon.py " + " ".join(argv if argv is not None else sys.argv[1:])
    out = pathlib.Path(args.out)
    runs = []
    for seed in args.seeds:  # the file is rewritten after every seed: a killed run keeps the finished ones
        runs.append(run_seed(args.config, seed, args.inner_steps, args.overrides, size, pathlib.Path(args.workdir)))
        result = dict(experiment="fitness_horizon", command=command, config=args.config, overrides=args.overrides,
                      inner_steps=args.inner_steps, runs=runs)
        write_json(out, result)
        _plot(result, out.with_suffix(".png"))
    head = ["seed", "K", "term", "ρ with final val acc", "selected", "selection gain (points)"]
    print(" | ".join(head) + "\n" + " | ".join("---" for _ in head))
    for run in runs:
        for k, per_term in run["correlation"].items():
            for t, c in per_term.items():
                print(f"{run['seed']} | {k} | {t} | {c['spearman_with_final_val']:+.2f} | {c['selected']} "
                      f"| {100 * c['selection_gain']:+.2f}")
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
