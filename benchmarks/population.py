"""Population evaluation throughput: vmapped population vs a loop of single evaluations.

One evaluation = build the network from a genome, train K inner steps, validate (the
whole STE individual, ``gsnn.evolution``). For each population size P it times

* ``vmap``: ``Problem.evaluate_population`` on P genomes at once (one jitted call);
* ``loop``: ``Problem.evaluate_one`` called P times from Python (jitted once, reused);
* ``map``: one jitted call, individuals one after another (``chunk_size=1``, ``lax.map``;
  the default on one CPU device);
* ``chunked``: vmapped chunks of ``--chunk`` under ``lax.map`` (where P > chunk);
* ``sharded``: the vmapped population sharded over all devices (with
  ``--host-devices N``, N forced CPU devices; where P divides by N);

warm-up (compilation) excluded, median of ``--repeats``. Prints a table and writes JSON.

    python benchmarks/population.py --width 0.25 --sizes 1 4 16 64 --host-devices 4 \
        --json benchmarks/results/population_demo_width.json

With an allocation genome (``--config evolve_demo:allocation --noise 1.0``) the members
are networks of different sizes masked from one maximal network, so they still vmap; each
row then lists the members' parameter counts.
"""
import os
import sys

if "--host-devices" in sys.argv:  # must be set before jax is imported
    _n = sys.argv[sys.argv.index("--host-devices") + 1]
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={_n}").strip()

import argparse
import resource
import statistics
import time

import jax
import jax.numpy as jnp

from gsnn import bench as B
from gsnn import config as cfgs
from gsnn import data as D
from gsnn import evolution as EV
from gsnn.evolution import budget as BG
from gsnn.evolution import genome as GN


def population_of(problem, P, key, noise):
    """P genomes around the search's starting mean (the wiring genome's zero genome, an
    allocation search's uniform allocation, or both), each leaf plus ``noise`` × N(0, 1)."""
    mean = BG.start(problem.search, GN.default_genome(problem.spec, problem.reference_params))
    leaves, tree = jax.tree_util.tree_flatten(mean)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [l[None] + noise * jax.random.normal(k, (P,) + l.shape) for l, k in zip(leaves, keys)])


def timed(fn, repeats):
    jax.block_until_ready(fn())  # warm-up / compile
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="evolve_demo")
    ap.add_argument("--width", type=float, default=None)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--chunk", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--host-devices", type=int, default=1, help="forced CPU devices (for the sharded column)")
    ap.add_argument("--loop-max", type=int, default=64, help="skip the Python loop above this P")
    ap.add_argument("--noise", type=float, default=0.1,
                    help="std of the genomes around the starting mean (an allocation genome's z is a logit: "
                         "1.0 gives individuals of different sizes)")
    ap.add_argument("--set", nargs="*", default=[], dest="overrides")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    sets = list(args.overrides) + ([f"model.width={args.width}"] if args.width else [])
    ds = D.load_dataset("demo")
    rows = []
    def problem_for(P, chunk, shard=False):
        return EV.make_problem(cfgs.load_config(args.config, sets + [
            f"evolve.search.population={max(P, 2)}", f"evolve.evaluation.chunk_size={chunk}",
            f"evolve.evaluation.shard={shard}"]), ds)

    for P in args.sizes:
        problem = problem_for(P, 0)
        steps = problem.cfg.evolve.inner.steps
        xb, yb = (jnp.asarray(a) for a in EV.generation_batches(problem, 0))
        pop = population_of(problem, P, jax.random.key(1), args.noise)
        gen = jnp.asarray(0, jnp.int32)
        key = jax.random.key(2)
        evaluate = jax.jit(jax.vmap(problem.evaluate_one, in_axes=(0, None, None, None, None)))
        row = dict(P=P, vmap_s=timed(lambda: evaluate(pop, key, xb, yb, gen)["fitness"], args.repeats))
        if P <= args.loop_max:
            singles = [jax.tree_util.tree_map(lambda a: a[i], pop) for i in range(P)]
            row["loop_s"] = timed(lambda: [problem.evaluate_one(g, key, xb, yb, gen)["fitness"] for g in singles],
                                  args.repeats)
        if P > 1:
            mp = problem_for(P, 1)
            row["map_s"] = timed(lambda: mp.evaluate_population(pop, key, xb, yb, gen)["fitness"], args.repeats)
        if P > args.chunk and P % args.chunk == 0:
            cp = problem_for(P, args.chunk)
            row["chunked_s"] = timed(lambda: cp.evaluate_population(pop, key, xb, yb, gen)["fitness"], args.repeats)
        n_dev = len(jax.devices())
        if n_dev > 1 and P % n_dev == 0:
            sp = problem_for(P, 0, shard=True)
            row["sharded_s"] = timed(lambda: sp.evaluate_population(pop, key, xb, yb, gen)["fitness"], args.repeats)
        best = min((k for k in row if k.endswith("_s")), key=row.get)
        row.update(best=best[:-2], best_individual_steps_per_s=P * steps / row[best],
                   peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        if "loop_s" in row:
            row["speedup_vmap_over_loop"] = row["loop_s"] / row["vmap_s"]
        if problem.search is not None:  # an allocation population: how different its members are
            row["member_params"] = [int(BG.individual(z, problem.search)[1]["params"]) for z in pop[BG.KEY]]
        rows.append(row)
        cols = "  ".join(f"{k[:-2]} {row[k]:7.2f}s" for k in ("vmap_s", "loop_s", "map_s", "chunked_s", "sharded_s")
                         if k in row)
        print(f"P={P:3d}  {cols}  best {row['best']} ({row['best_individual_steps_per_s']:.1f} indiv·steps/s)  "
              f"RSS {row['peak_rss_mb']:.0f} MB", flush=True)
    B.write_result(args.json, dict(B.environment(), cpu_count=os.cpu_count(), config=args.config, overrides=sets,
                                   results=rows, command="python benchmarks/population.py "
                                   + " ".join(argv if argv is not None else sys.argv[1:])))


if __name__ == "__main__":
    main()
