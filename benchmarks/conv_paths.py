"""Per-shape speed of the convolution implementations in :mod:`gsnn.core.conv` (CPU or GPU).

    python benchmarks/conv_paths.py --json benchmarks/results/conv_paths_winograd.json

For every shape (the W2 workload's three convolutions at T*B = 256, and convnet_s's at
T*B = 512, plus a stride-2 and an odd-sized one) it times, jitted and warm, the forward
pass, the input gradient and the weight gradient of each implementation, and prints
achieved GFLOP/s, nominal: the direct convolution's 2*MACs / median time, whatever the
implementation computes (Winograd multiplies 2.25x fewer). Inputs are spike-like {0,1}
maps. ``winograd`` runs on the 3x3 stride-1 shapes only.
"""
import argparse
import sys

import jax
import jax.numpy as jnp
import numpy as np

from gsnn import bench as B
from gsnn.core import conv

# (name, N, H, C_in, C_out, k, stride)
SHAPES = [
    ("w2.conv1", 256, 32, 3, 64, 3, 1),
    ("w2.conv2", 256, 16, 64, 128, 3, 1),
    ("w2.conv3", 256, 8, 128, 256, 3, 1),
    ("convnet_s.conv2", 512, 16, 32, 64, 3, 1),
    ("convnet_s.conv3", 512, 8, 64, 128, 3, 1),
    ("resnet.down_s2", 256, 16, 64, 128, 3, 2),
    ("odd_7x7_s2", 64, 15, 24, 40, 3, 2),
]



def bench_shape(name, n, h, c_in, c_out, k, stride, reps, impls):
    rng = np.random.default_rng(0)
    x = jnp.asarray((rng.random((n, h, h, c_in)) < 0.2).astype(np.float32))
    w = jnp.asarray(rng.standard_normal((k, k, c_in, c_out)).astype(np.float32) * 0.05)
    y = conv.conv2d(x, w, stride, "SAME", impl="xla")
    dy = jnp.asarray(rng.standard_normal(y.shape).astype(np.float32))
    gflop = 2 * y.shape[0] * y.shape[1] * y.shape[2] * k * k * c_in * c_out / 1e9
    rows = []
    for impl in impls:
        if impl == "winograd" and (k != 3 or stride != 1):
            continue
        f = lambda xx, ww: conv.conv2d(xx, ww, stride, "SAME", impl=impl)
        fwd = jax.jit(f)
        dw = jax.jit(lambda xx, ww, d: jax.vjp(lambda v: f(xx, v), ww)[1](d)[0])
        dx = jax.jit(lambda xx, ww, d: jax.vjp(lambda v: f(v, ww), xx)[1](d)[0])
        both = jax.jit(lambda xx, ww, d: jax.vjp(f, xx, ww)[1](d))
        t = dict(fwd=B.median_seconds(fwd, (x, w), reps), dx=B.median_seconds(dx, (x, w, dy), reps),
                 dw=B.median_seconds(dw, (x, w, dy), reps), fwd_bwd=B.median_seconds(both, (x, w, dy), reps))
        rows.append(dict(shape=name, impl=impl, N=n, H=h, C_in=c_in, C_out=c_out, k=k, stride=stride,
                         gflop=gflop, **{f"ms_{key}": v * 1e3 for key, v in t.items()},
                         **{f"gflops_{key}": gflop / v for key, v in t.items() if key != "fwd_bwd"},
                         gflops_fwd_bwd=2 * gflop / t["fwd_bwd"]))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--impls", nargs="+", default=["xla", "taps", "patches", "winograd"])
    ap.add_argument("--shapes", nargs="+", default=[s[0] for s in SHAPES], choices=[s[0] for s in SHAPES])
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = []
    print(f"{'shape':18s} {'impl':8s} {'GFLOP':>6s} {'fwd':>7s} {'dX':>7s} {'dW':>7s}  GFLOP/s   "
          f"{'fwd+dW+dX ms':>12s}  auto picks")
    for shape in (s for s in SHAPES if s[0] in args.shapes):
        for r in bench_shape(*shape, args.reps, args.impls):
            rows.append(r)
            auto = conv.choose_impl((r["k"], r["k"], r["C_in"], r["C_out"]), r["stride"])
            print(f"{r['shape']:18s} {r['impl']:8s} {r['gflop']:6.2f} {r['gflops_fwd']:7.1f} {r['gflops_dx']:7.1f} "
                  f"{r['gflops_dw']:7.1f}           {r['ms_fwd'] + r['ms_dx'] + r['ms_dw']:12.1f}  {auto}", flush=True)
    B.write_result(args.json, dict(B.environment(), results=rows,
                                   command="python benchmarks/conv_paths.py " + " ".join(sys.argv[1:])))


if __name__ == "__main__":
    main()
