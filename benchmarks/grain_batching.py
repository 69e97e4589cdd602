"""Should gsnn's epoch batching move to grain? (issue 12, DESIGN §3)

Compares ``gsnn.data.batches`` with the grain pipeline a user would write for it
(``MapDataset.source(...).shuffle(seed).batch(B, drop_remainder=True)``, iterated
through ``to_iter_dataset()`` with its checkpointable iterator) on the CPU study's
training set shape (10,000 uint8 32×32×3 images, batch 128):

* ``epoch_ms``: one epoch of batches produced on the host (median of ``--repeats``);
* ``same_order``: whether the batches equal gsnn's (which the stored study records
  and their resume tests rely on);
* ``resume_exact``: whether restoring an iterator state saved after batch k replays
  batches k+1.. exactly (grain: ``get_state``/``set_state``; gsnn: ``start_batch``);
* ``lines``: source lines of the batching code in gsnn (``batches`` + ``num_batches``).

grain is not a gsnn dependency: install it to run this (``pip install grain``).

    python benchmarks/grain_batching.py --json benchmarks/results/grain_batching.json
"""
from __future__ import annotations

import argparse
import inspect
import json
import platform
import statistics
import time

import numpy as np

from gsnn.data import pipeline


def _time_epoch(make_iter, repeats: int) -> tuple[float, list]:
    times, first = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = [(np.asarray(x), np.asarray(y)) for x, y in make_iter()]
        times.append(time.perf_counter() - t0)
        first = first or out
    return 1e3 * statistics.median(times), first


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    try:
        import grain
    except ImportError as e:
        raise SystemExit(f"this benchmark needs grain (pip install grain): {e}")

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, args.n).astype(np.int32)
    seed, epoch, k = 0, 0, 7

    gsnn_ms, ours = _time_epoch(lambda: pipeline.batches(images, labels, args.batch, seed=seed, epoch=epoch),
                                args.repeats)

    class _Source:  # random access over the arrays, as grain's data sources give
        def __len__(self):
            return args.n

        def __getitem__(self, i):
            return images[i], labels[i]

    def grain_ds():
        return grain.MapDataset.source(_Source()).seed(seed).shuffle().batch(args.batch, drop_remainder=True)

    grain_ms, theirs = _time_epoch(lambda: iter(grain_ds().to_iter_dataset()), args.repeats)
    same_order = len(ours) == len(theirs) and all(np.array_equal(a[1], b[1]) for a, b in zip(ours, theirs))

    it = iter(grain_ds().to_iter_dataset())
    for _ in range(k):
        next(it)
    state = it.get_state()
    rest = [np.asarray(y) for _, y in it]
    it2 = iter(grain_ds().to_iter_dataset())
    it2.set_state(state)
    grain_resume = all(np.array_equal(a, np.asarray(y)) for a, (_, y) in zip(rest, it2))
    ours_resume = all(np.array_equal(a[1], b[1]) for a, b in zip(
        ours[k:], pipeline.batches(images, labels, args.batch, seed=seed, epoch=epoch, start_batch=k)))
    lines = sum(len(inspect.getsource(f).splitlines()) for f in (pipeline.batches, pipeline.num_batches))

    rows = [dict(pipeline="gsnn.data.batches", epoch_ms=gsnn_ms, batches=len(ours), same_order=True,
                 resume_exact=ours_resume, lines=lines),
            dict(pipeline=f"grain {grain.__version__ if hasattr(grain, '__version__') else ''} MapDataset".strip(),
                 epoch_ms=grain_ms, batches=len(theirs), same_order=same_order, resume_exact=grain_resume,
                 lines=None)]
    print(f"{'pipeline':32s} {'epoch ms':>9s} {'batches':>8s} {'same order':>10s} {'resume exact':>12s} {'lines':>6s}")
    for r in rows:
        print(f"{r['pipeline']:32s} {r['epoch_ms']:9.1f} {r['batches']:8d} {str(r['same_order']):>10s} "
              f"{str(r['resume_exact']):>12s} {str(r['lines'] or '-'):>6s}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(rows=rows, n=args.n, batch=args.batch, repeats=args.repeats,
                           machine=platform.processor() or platform.machine()), f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
