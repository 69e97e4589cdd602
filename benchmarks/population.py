"""Population evaluation throughput: vmapped population vs a loop of single evaluations.

One evaluation = build the network from a genome, train K inner steps, validate (the
whole STE individual, ``gsnn.evolve``). For each population size P it times

* ``vmap``: ``Problem.evaluate_population`` on P genomes at once (one jitted call);
* ``loop``: ``Problem.evaluate_one`` called P times (jitted once, reused);
* ``chunked``: vmapped chunks of ``--chunk`` under ``lax.map`` (where P > chunk);

warm-up (compilation) excluded, median of ``--repeats``. Prints a table and writes JSON.

    python benchmarks/population.py --width 0.25 --sizes 1 4 16 64 \
        --json benchmarks/results/population_demo_width.json
"""
import argparse
import json
import pathlib
import platform
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from gsnn import config as C
from gsnn import data as D
from gsnn import evolve as EV
from gsnn import genome as GN


def population_of(problem, P, key):
    mean = GN.default_genome(problem.spec, problem.reference_params)
    leaves, tree = jax.tree_util.tree_flatten(mean)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [l[None] + 0.1 * jax.random.normal(k, (P,) + l.shape) for l, k in zip(leaves, keys)])


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
    ap.add_argument("--set", nargs="*", default=[], dest="overrides")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    sets = list(args.overrides) + ([f"model.width={args.width}"] if args.width else [])
    ds = D.load_dataset("demo")
    rows = []
    for P in args.sizes:
        cfg = C.load_config(args.config, sets + [f"evolve.population={max(P, 2)}", "evolve.chunk_size=0"])
        problem = EV.make_problem(cfg, ds)
        xb, yb = (jnp.asarray(a) for a in EV.generation_batches(problem, 0))
        pop = population_of(problem, P, jax.random.key(1))
        gen = jnp.asarray(0, jnp.int32)
        key = jax.random.key(2)
        evaluate = jax.jit(jax.vmap(problem.evaluate_one.__wrapped__ if hasattr(problem.evaluate_one, "__wrapped__")
                                    else problem.evaluate_one, in_axes=(0, None, None, None, None)))
        t_vmap = timed(lambda: evaluate(pop, key, xb, yb, gen)["fitness"], args.repeats)
        singles = [jax.tree_util.tree_map(lambda a: a[i], pop) for i in range(P)]
        t_loop = timed(lambda: [problem.evaluate_one(g, key, xb, yb, gen)["fitness"] for g in singles], args.repeats)
        row = dict(P=P, vmap_s=t_vmap, loop_s=t_loop, speedup_vmap_over_loop=t_loop / t_vmap,
                   vmap_individual_steps_per_s=P * cfg.evolve.inner_steps / t_vmap,
                   loop_individual_steps_per_s=P * cfg.evolve.inner_steps / t_loop)
        if P > args.chunk and P % args.chunk == 0:
            ccfg = C.load_config(args.config, sets + [f"evolve.population={P}", f"evolve.chunk_size={args.chunk}",
                                                      "evolve.shard=false"])
            cproblem = EV.make_problem(ccfg, ds)
            row["chunked_s"] = timed(lambda: cproblem.evaluate_population(pop, key, xb, yb, gen)["fitness"], args.repeats)
        row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append(row)
        print(f"P={P:3d}  vmap {t_vmap:7.2f}s  loop {t_loop:7.2f}s  vmap/loop speed-up {t_loop / t_vmap:5.2f}x  "
              + (f"chunked({args.chunk}) {row['chunked_s']:7.2f}s  " if "chunked_s" in row else "")
              + f"{row['vmap_individual_steps_per_s']:.1f} indiv·steps/s  RSS {row['peak_rss_mb']:.0f} MB", flush=True)
    out = dict(machine=platform.processor() or platform.machine(), cpu_count=__import__("os").cpu_count(),
               jax=jax.__version__, devices=[str(d) for d in jax.devices()],
               command="python benchmarks/population.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               config=args.config, overrides=sets, results=rows)
    if args.json:
        p = pathlib.Path(args.json)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
