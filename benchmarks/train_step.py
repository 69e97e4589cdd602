"""Training-step throughput of a gsnn model (samples/s), warm-up excluded.

    python benchmarks/train_step.py --arch convnet_s --encodings direct position:16 neuron:32 \
        --batch 128 --T 4 --steps 10 --json benchmarks/results/train_step_convnet_s.json

Prints a table (median/min/max ms per step, samples/s, peak RSS) and writes JSON. The
step is gsnn's real one (`gsnn.train.make_steps`: normalisation, crop+flip, forward,
cross-entropy, backward, SGD update) on random uint8 images.
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
from gsnn import train as TR


def bench(arch: str, encoding: str, genes: int, batch: int, T: int, n_steps: int, width: float, path: str):
    cfg = C.Config(model=C.ModelConfig(arch=arch, T=T, width=width,
                                       genetic=C.GeneticConfig(encoding=encoding, genes=genes, path=path)),
                   train=C.TrainConfig(batch_size=batch)).validate()
    shape = (224, 224, 3) if arch == "resnet34" else (32, 32, 3)
    steps = TR.make_steps(cfg, 100, (0.5,) * 3, (0.25,) * 3, shape)
    state = steps.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.integers(0, 256, (batch,) + shape, dtype=np.uint8))
    y = jnp.asarray(rng.integers(0, 10, (batch,)), jnp.int32)
    t0 = time.perf_counter()
    state, m = steps.train_step(state, x, y, jax.random.key(1))
    jax.block_until_ready(m["loss"])
    compile_s = time.perf_counter() - t0
    for i in range(2):
        state, m = steps.train_step(state, x, y, jax.random.key(2 + i))
    jax.block_until_ready(m["loss"])
    times = []
    for i in range(n_steps):
        t0 = time.perf_counter()
        state, m = steps.train_step(state, x, y, jax.random.key(10 + i))
        jax.block_until_ready(m["loss"])
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return dict(arch=arch, encoding=encoding, genes=genes, path=path, batch=batch, T=T, width=width,
                ms_median=med * 1e3, ms_min=min(times) * 1e3, ms_max=max(times) * 1e3,
                samples_per_s=batch / med, first_call_s=compile_s,
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="convnet_s")
    ap.add_argument("--encodings", nargs="+", default=["direct", "position:16", "neuron:32"])
    ap.add_argument("--path", default="auto")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--T", type=int, default=4)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = []
    for item in args.encodings:
        enc, _, g = item.partition(":")
        rows.append(bench(args.arch, enc, int(g or 0), args.batch, args.T, args.steps, args.width, args.path))
        r = rows[-1]
        print(f"{r['arch']:10s} {r['encoding']:9s} g={r['genes']:<4d} {r['ms_median']:8.1f} ms "
              f"(min {r['ms_min']:.1f}, max {r['ms_max']:.1f})  {r['samples_per_s']:8.1f} samples/s  "
              f"RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    out = dict(machine=platform.processor() or platform.machine(), jax=jax.__version__,
               devices=[str(d) for d in jax.devices()], command="python benchmarks/train_step.py " + " ".join(sys.argv[1:]),
               results=rows)
    if args.json:
        p = pathlib.Path(args.json)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
