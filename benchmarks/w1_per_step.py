"""W1 with the input fed per step: gsnn's training step against the peers' plain-JAX
``lax.scan``, interleaved in one process.

    python benchmarks/w1_per_step.py --reps 20 --json benchmarks/results/w1_per_step.json

Paths (W1: 784 -> 1024 LIF -> 10 LIF, T=25, batch 128, cross-entropy on spike counts,
Adam 1e-3; ``gsnn/bench.py`` and ``../shared/bench/README.md``):

- ``ref``: the peers' plain-JAX reference, the ``ref`` path of
  ``shared/bench/peers/bench_jax.py`` copied below (custom_jvp atan spike, both synapses
  and both LIF updates inside one ``lax.scan``, optax Adam; ``x_seq`` passed as an
  argument of the jitted step, as there);
- ``gsnn``: ``gsnn bench --workload w1 --input per_step`` (``bench._peer_step``), which
  runs the network one whole time step at a time (``_PeerNet._w1_stepwise``);
- ``gsnn-folded``: the same network time-folded layer by layer (synapse on ``[T*B, ...]``,
  then the LIF recurrence in its own fully unrolled scan): gsnn's path before this change;
- ``gsnn-folded-u1``: the same with the LIF scan not unrolled.

One untimed call each (compilation) and ``--warm`` warm-up calls, then ``--reps`` rounds
of one call of each path in turn (A, B, C, A, B, C, ...). Reported: median wall ms, median
process CPU ms (less sensitive to other processes on a shared CPU), and each path's
speed relative to ``ref`` (ref time / path time; > 1 is faster than the reference). Also
XLA's cost analysis of each compiled step (``ref``'s while-loop body counts once there).
Writes JSON with :func:`gsnn.runtime.provenance.provenance`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from gsnn import bench as GB
from gsnn.core import lif as LIF
from gsnn.nn import layers as L
from gsnn.runtime.provenance import provenance

T, B = GB.W1["T"], GB.W1["batch"]
BETA, THRESH, ATAN_ALPHA, LR = 0.9, 1.0, 2.0, 1e-3  # shared/bench/peers/common.py


# ---- copied from shared/bench/peers/bench_jax.py (impl "ref", workload "w1") ----------
@jax.custom_jvp
def spike(u):
    return (u > 0).astype(u.dtype)


@spike.defjvp
def _spike_jvp(p, t):
    (u,), (du,) = p, t
    a = ATAN_ALPHA
    g = (a / 2) / (1 + (jnp.pi / 2 * a * u) ** 2)   # snnTorch atan surrogate
    return spike(u), g * du


def lif_step(v, i):
    v = BETA * v + i
    s = spike(v - THRESH)
    v = v - lax.stop_gradient(s) * THRESH          # subtractive reset, detached
    return v, s


def uinit(key, shape, fan_in):
    b = 1.0 / np.sqrt(fan_in)
    return jax.random.uniform(key, shape, jnp.float32, -b, b)


def init_params(key):
    k = jax.random.split(key, 8)
    return dict(W1=uinit(k[0], (784, 1024), 784), b1=uinit(k[1], (1024,), 784),
                W2=uinit(k[2], (1024, 10), 1024), b2=uinit(k[3], (10,), 1024))


def fwd_ref(p, xs):
    def body(c, xt):
        v1, v2 = c
        v1, s1 = lif_step(v1, xt @ p['W1'] + p['b1'])
        v2, s2 = lif_step(v2, s1 @ p['W2'] + p['b2'])
        return (v1, v2), s2
    init = (jnp.zeros((B, 1024)), jnp.zeros((B, 10)))
    return lax.scan(body, init, xs)[1].sum(0)               # spike counts


def ref_step_fn():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((B, 784)) * 0.5 + 0.3).astype(np.float32)
    x_seq = jnp.asarray(np.repeat(x[None], T, 0))                 # [T,B,784] materialised
    y = jnp.asarray(rng.integers(0, 10, (B,)))
    tx = optax.adam(LR)

    def loss_fn(p, xs, y):
        return optax.softmax_cross_entropy_with_integer_labels(fwd_ref(p, xs), y).mean()

    @jax.jit
    def train_step(p, o, xs, y):
        l, g = jax.value_and_grad(loss_fn)(p, xs, y)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o, l
    state = [init_params(jax.random.PRNGKey(0))]
    state.append(tx.init(state[0]))

    def step():
        state[0], state[1], l = train_step(state[0], state[1], x_seq, y)
        return l
    return step, (train_step, (state[0], state[1], x_seq, y))
# ---- end of the copy ------------------------------------------------------------------


def gsnn_step_fn(stepwise: bool, unroll: int | None = None):
    orig = LIF.lif_run
    if unroll is not None:
        LIF.lif_run = lambda *a, **k: orig(*a, **{**k, "unroll": unroll})
    try:
        step, (jitted, args), *_ = GB._peer_step("w1", L.GeneticConfig(), "per_step", "none", "auto",
                                                 stepwise=stepwise)
        jax.block_until_ready(step())  # trace and compile while the patch holds
    finally:
        LIF.lif_run = orig
    return step, (jitted, args)


def cost(jitted, args) -> dict:
    ca = jitted.lower(*args).compile().cost_analysis()
    ca = ca[0] if isinstance(ca, list) else ca
    return {k: float(ca[k]) for k in ("flops", "bytes accessed", "transcendentals") if k in ca}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--paths", nargs="+", default=["ref", "gsnn", "gsnn-folded", "gsnn-folded-u1"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    makers = {"ref": ref_step_fn, "gsnn": lambda: gsnn_step_fn(True),
              "gsnn-folded": lambda: gsnn_step_fn(False), "gsnn-folded-u1": lambda: gsnn_step_fn(False, 1)}
    paths = {name: makers[name]() for name in args.paths}
    costs = {name: cost(*jit_args) for name, (_, jit_args) in paths.items()}
    for step, _ in paths.values():
        for _ in range(1 + args.warm):
            jax.block_until_ready(step())
    rows = GB.interleaved({name: step for name, (step, _) in paths.items()}, args.reps, B,
                          {name: dict(cost_analysis=c) for name, c in costs.items()})
    base = args.paths[0]
    record = dict(benchmark="w1_per_step", command=" ".join([os.path.basename(sys.argv[0])] + (argv or sys.argv[1:])),
                  T=T, batch=B, reps=args.reps, warm=args.warm, baseline=base, paths=rows,
                  provenance=provenance())
    if args.json:
        GB.write_result(args.json, record)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
