"""The epoch loop against the bare step: images/s of ``train_and_evaluate``'s training
epochs and of a plain loop of the same jitted training step on the same batches.

    python benchmarks/loop_vs_step.py --arch convnet_s --width 0.5 --batch 128 --T 4 \\
        --steps 40 --epochs 4 --json benchmarks/results/loop_vs_step.json

Both paths train the same network from the same state on the same batches (random uint8
CIFAR-shaped images, 10 classes; crop+flip augmentation on the device). The bare loop is
the ceiling: every batch and step key is on the device before its clock starts, it
dispatches ``steps.train_step`` back to back and waits once, at the end of the epoch.
The epoch loop is the real one (:func:`gsnn.training.train_and_evaluate`, no workdir): it
gathers each batch on the host, prefetches it to the device, sums the metrics there and
fetches them every ``--log-every`` steps (0: once per epoch); its time is the history's
``epoch_seconds`` (training only, the evaluation excluded). The first epoch of each
(compilation) is left out; the rate is the median over the others. ``ratio`` = loop /
bare; the issue's goal is >= 0.95. Prints a table and writes JSON with the commit and
the machine (:func:`gsnn.runtime.provenance.provenance`).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import jax
import numpy as np

from gsnn import config as cfgs
from gsnn import data as D
from gsnn.nn import networks as M
from gsnn import training
from gsnn.runtime.provenance import provenance


def bench_config(args) -> cfgs.Config:
    return cfgs.Config(
        name="loop_vs_step", seed=0,
        model=M.ModelConfig(arch=args.arch, width=args.width, T=args.T),
        train=cfgs.TrainConfig(optimizer="sgd", learning_rate=0.05, epochs=args.epochs, batch_size=args.batch,
                            eval_batch_size=args.batch, log_every=args.log_every),
        data=cfgs.DataConfig(source="demo", augment=True),
    ).validate()


def synthetic(n_train: int, n_test: int, seed: int = 0) -> D.ArrayDataset:
    rng = np.random.default_rng(seed)
    img = lambda n: rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    lab = lambda n: rng.integers(0, 10, (n,)).astype(np.int32)
    return D.ArrayDataset("bench", img(n_train), lab(n_train), img(n_test), lab(n_test),
                          tuple(f"c{i}" for i in range(10)))


def bare_epochs(cfg: cfgs.Config, ds: D.ArrayDataset) -> list[float]:
    """Seconds per epoch of the bare step loop (batches and keys staged on the device)."""
    tc = cfg.train
    spe = D.num_batches(ds.num_train, tc.batch_size, True)
    steps = training.make_steps(cfg, spe, *D.stats_for(ds.name), ds.image_shape)
    k_init, k_train = training.run_keys(cfg.seed)
    state = steps.init(k_init)
    seconds = []
    for epoch in range(tc.epochs):
        batches = [jax.device_put(b) for b in ds.train_batches(tc.batch_size, cfg.seed, epoch)]
        keys = [jax.random.fold_in(k_train, epoch * spe + i) for i in range(spe)]
        jax.block_until_ready((batches, keys, state))
        t0 = time.perf_counter()
        for (x, y), k in zip(batches, keys):
            state, _ = steps.train_step(state, x, y, k)
        jax.block_until_ready(state)
        seconds.append(time.perf_counter() - t0)
    return seconds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="convnet_s")
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--T", type=int, default=4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=40, help="training steps per epoch")
    ap.add_argument("--epochs", type=int, default=4, help="epochs per path; the first is warm-up")
    ap.add_argument("--log-every", type=int, default=0, help="the loop's train.log_every")
    ap.add_argument("--json", default="benchmarks/results/loop_vs_step.json")
    args = ap.parse_args(argv)
    if args.epochs < 2:
        ap.error("--epochs must be >= 2 (the first epoch compiles and is left out)")
    cfg = bench_config(args)
    ds = synthetic(args.steps * args.batch, args.batch)
    images = args.steps * args.batch
    bare = bare_epochs(cfg, ds)
    hist = training.train_and_evaluate(cfg, None, dataset=ds, progress=False)["history"]
    loop = [h["epoch_seconds"] for h in hist]
    rate = lambda secs: images / statistics.median(secs[1:])
    row = dict(arch=args.arch, width=args.width, T=args.T, batch=args.batch, steps_per_epoch=args.steps,
               epochs=args.epochs, log_every=args.log_every, step_images_per_s=rate(bare),
               loop_images_per_s=rate(loop), ratio=rate(loop) / rate(bare), step_epoch_seconds=bare,
               loop_epoch_seconds=loop)
    print(f"{'path':<28} {'images/s':>10} {'ms/step':>9}   epochs (s)")
    for name, secs in (("bare jitted step", bare), (f"epoch loop (log_every={args.log_every})", loop)):
        print(f"{name:<28} {rate(secs):>10.1f} {1e3 * statistics.median(secs[1:]) / args.steps:>9.2f}   "
              + " ".join(f"{s:.2f}" for s in secs))
    print(f"loop / step = {row['ratio']:.3f}  ({args.arch} width {args.width}, T={args.T}, batch {args.batch}, "
          f"{args.steps} steps/epoch; {jax.devices()[0].device_kind})")
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        out = dict(results=[row], backend=jax.default_backend(), device=jax.devices()[0].device_kind,
                   provenance=provenance(),
                   command="python benchmarks/loop_vs_step.py " + " ".join(argv if argv is not None else sys.argv[1:]))
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
