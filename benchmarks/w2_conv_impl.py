"""W2 with the input fed per step: gsnn's training step with each convolution path for
the layers ``auto`` runs as Winograd, interleaved in one process.

    python benchmarks/w2_conv_impl.py --reps 10 --json benchmarks/results/w2_conv_impl.json

Every path is the step of ``gsnn bench --workload w2 --input per_step``
(``bench._peer_step``: forward over T = 4, cross-entropy, backward, Adam; batch 64, so
the convolutions see T*B = 256 images). They differ only in what
:func:`gsnn.core.conv.choose_impl` returns while the step is traced:

- ``auto``: the library's choice (conv1 ``patches``, conv2 and conv3 ``winograd``);
- any other implementation name, e.g. ``taps`` (``auto``'s choice before Winograd):
  that implementation wherever ``auto`` picks ``winograd``, ``auto``'s choice elsewhere.

One untimed call each (compilation) and ``--warm`` warm-up calls, then ``--reps`` rounds
of one call of each path in turn. Reported (:func:`gsnn.bench.interleaved`): median wall
and process-CPU ms, and each path's speed relative to the first (its time / the path's
time; > 1 is faster).
"""
from __future__ import annotations

import argparse
import sys

import jax

from gsnn import bench as GB
from gsnn.core import conv
from gsnn.nn import layers as L
from gsnn.runtime.provenance import provenance

T, B = GB.W2["T"], GB.W2["batch"]


def step_fn(path: str):
    """The W2 per-step training step, traced and compiled with ``path``'s convolutions.

    Returns ``(step, picks)``: a no-argument callable running one step, and the
    implementation each convolution got (kernel shape -> name)."""
    conv.validate_impl(path)
    orig = conv.choose_impl
    picks = {}

    def choose(kernel_shape, *args, **kwargs):
        impl = orig(kernel_shape, *args, **kwargs)
        impl = path if impl == "winograd" and path != "auto" else impl
        picks[str(tuple(kernel_shape))] = impl
        return impl

    conv.choose_impl = choose
    try:
        step, *_ = GB._peer_step("w2", L.GeneticConfig(), "per_step", "none", "auto")
        jax.block_until_ready(step())  # trace and compile while the patch holds
    finally:
        conv.choose_impl = orig
    return step, picks


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--paths", nargs="+", default=["taps", "auto"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    paths = {name: step_fn(name) for name in args.paths}
    for step, _ in paths.values():
        for _ in range(args.warm):
            jax.block_until_ready(step())
    rows = GB.interleaved({name: step for name, (step, _) in paths.items()}, args.reps, B,
                          {name: dict(convolutions=picks) for name, (_, picks) in paths.items()})
    for name, row in rows.items():
        print(f"{name}: {', '.join(row['convolutions'].values())}")
    GB.write_result(args.json, dict(  # no-op without --json
        benchmark="w2_conv_impl", command="python benchmarks/w2_conv_impl.py " + " ".join(sys.argv[1:]), T=T, batch=B,
        reps=args.reps, warm=args.warm, baseline=args.paths[0], paths=rows, provenance=provenance()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
