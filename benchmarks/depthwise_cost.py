"""Cost per MAC of a depthwise 3x3 convolution against a dense one (forward + both
gradients), the constant behind ``gsnn.core.genetic.DEPTHWISE_MAC_COST``.

    python benchmarks/depthwise_cost.py --json benchmarks/results/depthwise_cost.json

A ``neuron``-encoded convolution's factorised path is pointwise C_in -> g, depthwise
3x3 on g channels, pointwise g -> C_out (DESIGN 1.1). It has fewer MACs than the
materialised conv, but XLA runs the depthwise stage far below matmul efficiency; the
automatic path choice charges it by the ratio measured here. Shapes are convnet_s's
(batch 128 x T 4 = 512 examples) at the gene counts of the CIFAR-10 study.
"""
import argparse
import sys

import jax
import jax.numpy as jnp
from jax import lax

from gsnn import bench as B

# (name, N, H, C_in, C_out, g)
SHAPES = [
    ("convnet_s.conv2 g=32", 512, 16, 32, 64, 32),
    ("convnet_s.conv2 g=128", 512, 16, 32, 64, 128),
    ("convnet_s.conv3 g=32", 512, 8, 64, 128, 32),
    ("convnet_s.conv3 g=128", 512, 8, 64, 128, 128),
]
DIMS = ("NHWC", "HWIO", "NHWC")


def _fwd_bwd(groups: int):
    def loss(x, k):
        y = lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=DIMS, feature_group_count=groups)
        return jnp.sum(y * y)

    return jax.jit(jax.grad(loss, argnums=(0, 1)))



def measure(n: int, h: int, c_in: int, c_out: int, g: int, reps: int) -> dict:
    key = jax.random.key(0)
    x = (jax.random.uniform(key, (n, h, h, c_in)) < 0.1).astype(jnp.float32)  # spike-like input
    k = 0.01 * jax.random.normal(key, (3, 3, c_in, c_out))
    t_dense = B.median_seconds(_fwd_bwd(1), (x, k), reps)
    xg = jax.random.normal(key, (n, h, h, g))
    kd = 0.1 * jax.random.normal(key, (3, 3, 1, g))
    t_dw = B.median_seconds(_fwd_bwd(g), (xg, kd), reps)
    macs_dense, macs_dw = n * h * h * 9 * c_in * c_out, n * h * h * 9 * g
    return dict(dense_ms=1e3 * t_dense, depthwise_ms=1e3 * t_dw,
                dense_gmacs=3 * macs_dense / t_dense / 1e9, depthwise_gmacs=3 * macs_dw / t_dw / 1e9,
                cost_ratio=(t_dw / macs_dw) / (t_dense / macs_dense))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    rows = []
    print(f"{'shape':24s} {'dense ms':>9s} {'GMAC/s':>7s} {'depthwise ms':>13s} {'GMAC/s':>7s} {'cost/MAC':>9s}")
    for name, n, h, c_in, c_out, g in SHAPES:
        r = dict(shape=name, n=n, h=h, c_in=c_in, c_out=c_out, genes=g, **measure(n, h, c_in, c_out, g, args.reps))
        rows.append(r)
        print(f"{name:24s} {r['dense_ms']:9.0f} {r['dense_gmacs']:7.2f} {r['depthwise_ms']:13.0f} "
              f"{r['depthwise_gmacs']:7.2f} {r['cost_ratio']:8.0f}x", flush=True)
    B.write_result(args.json, dict(environment=B.environment(), rows=rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
