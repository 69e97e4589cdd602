"""Training-step benchmarks: the reference workloads W1/W2 and the real ``convnet_s`` step.

W1 and W2 are the workloads of the peer benchmarks (snnTorch, SpikingJelly, spyx;
``shared/bench/README.md``), built from gsnn's own layers:

- **W1 dense**: input 784 (the same real-valued current at every step), Linear 784->1024,
  LIF, Linear 1024->10, LIF; cross-entropy on output spike counts; T=25, batch 128.
- **W2 conv**: 32x32x3 input, conv3x3 3->64, LIF, avgpool 2, conv3x3 64->128, LIF, avgpool,
  conv3x3 128->256, LIF, avgpool, flatten 4096, Linear 4096->10 summed over time; T=4,
  batch 64; no normalisation.
- LIF ``v <- 0.9 v + I``, spike at ``v >= 1``, detached subtractive reset, atan surrogate
  (alpha 2); biases on every synapse; Adam, learning rate 1e-3.

``input="static"`` (gsnn's default for direct coding) runs the first synapse once on the
``[B, ...]`` input, because its input current is identical at every step; the result is
the same function with the same gradients. ``input="per_step"`` feeds a materialised
``[T, B, ...]`` input through the first synapse ``T`` times, as the peer scripts do.

``convnet_s`` is gsnn's real training step (:func:`gsnn.training.make_steps`: normalisation,
crop and flip, BN, SGD) at batch 128, T=4.

Reported per run: median/min/max ms per step over the timed steps (warm-up and
compilation excluded), samples/s, achieved GFLOP/s (the peer scripts' convention:
3 x forward FLOPs of the per-step formula, whatever the implementation skips), XLA's
compiled memory for one step (arguments + outputs + temporaries) and the process's peak
resident memory.
"""
from __future__ import annotations

import dataclasses
import platform
import resource
import statistics
import time
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from gsnn import config as cfgs
from gsnn import training as TR
from gsnn.core import lif
from gsnn.core.tree import count_scalars
from gsnn.nn import layers as L
from gsnn.nn import networks as M
from gsnn.runtime.records import write_json

WORKLOADS = ("w1", "w2", "convnet_s")
MODES = ("direct", "genetic")
INPUTS = ("static", "per_step")
REMATS = ("none", "lif")  # lif: jax.checkpoint around every LIF time step

W1 = dict(T=25, batch=128, n_in=784, n_hidden=1024, n_out=10)
W2 = dict(T=4, batch=64, hw=32, channels=(64, 128, 256), n_out=10)

# The peer workloads' neuron: beta 0.9 (tau 10 in the beta form), threshold 1,
# subtractive detached reset, atan surrogate with alpha 2.
PEER_NEURON = cfgs.NeuronConfig(
    lif=cfgs.LIFConfig(update="beta", reset="soft", v_th=1.0, surrogate="atan", alpha=2.0, detach_reset=True),
    tau=10.0,
)


def forward_macs(workload: str) -> int:
    """Multiply-accumulates of one forward pass over all T steps and the batch, counted
    per time step (the peer scripts' formula)."""
    if workload == "w1":
        w = W1
        return (w["n_in"] * w["n_hidden"] + w["n_hidden"] * w["n_out"]) * w["T"] * w["batch"]
    if workload == "w2":
        c1, c2, c3 = W2["channels"]
        per = 32 * 32 * 27 * c1 + 16 * 16 * 9 * c1 * c2 + 8 * 8 * 9 * c2 * c3 + 4096 * W2["n_out"]
        return per * W2["T"] * W2["batch"]
    raise ValueError(f"no MAC formula for workload {workload!r}")


class _PeerNet(nn.Module):
    """W1 or W2 in gsnn layers. Input: static ``[B, ...]`` or folded ``[T*B, ...]``."""

    workload: str
    genetic: cfgs.GeneticConfig
    static_input: bool
    neuron: cfgs.NeuronConfig = PEER_NEURON
    conv_impl: str = "auto"
    stepwise: bool = True  # W1 per-step input: one lax.scan over whole time steps (see _w1_stepwise)

    @nn.compact
    def __call__(self, x):
        T = W1["T"] if self.workload == "w1" else W2["T"]
        bank = L.GeneBank(self, self.genetic)
        enc = self.genetic.encoding

        def synapse_layer(h, name, features, pre, post, kernel=None, static=False, bias=True):
            shared = bank.inputs(enc, pre, h.shape[-1], post, features)
            return L.Synapse(features, kernel_size=kernel, encoding=enc, genetic_cfg=self.genetic,
                             use_bias=bias, pre_population=pre, post_population=post,
                             real_input=(pre == "input"), static_input=static,
                             conv_impl=self.conv_impl, name=name), shared

        def synapse(h, name, features, pre, post, kernel=None, static=False, bias=True):
            layer, shared = synapse_layer(h, name, features, pre, post, kernel, static, bias)
            return layer(h, shared)

        def lif(h, name, static=False):
            return L.SpikingNeuron(T, self.neuron, name=name)(h, static)

        static = self.static_input
        if (self.workload == "w1" and not static and self.stepwise and not self.neuron.learnable_tau
                and not self.is_initializing()):
            return self._w1_stepwise(x, T, synapse_layer)
        if self.workload == "w1":
            h = lif(synapse(x, "fc1", W1["n_hidden"], "input", "hidden", static=static), "hidden", static)
            s = lif(synapse(h, "fc2", W1["n_out"], "hidden", "out"), "out")
            return L.unfold(s, T).sum(axis=0)  # spike counts [B, 10]
        pre = "input"
        for i, c in enumerate(W2["channels"]):
            name = f"conv{i + 1}"
            h = lif(synapse(x, name + "_syn", c, pre, name, kernel=(3, 3), static=static), name, static)
            x, pre, static = L.avg_pool(h), name, False
        summed = L.unfold(x, T).sum(axis=0)  # the readout is linear: sum over time first
        logits = synapse(summed, "readout", W2["n_out"], pre, "out", static=True, bias=False)
        return logits + T * self.param("readout_bias", nn.initializers.zeros, (W2["n_out"],))

    def _w1_stepwise(self, x, T, synapse_layer):
        """W1 with the input fed per step, run one time step at a time: both synapses and
        both LIF updates inside one ``lax.scan`` over T, as the peers' plain-JAX loop does.
        The same function as the time-folded path (float32 summation order aside), with
        the same parameters; a time step's ``[B, 1024]`` currents stay in cache instead of
        going through memory as ``[T*B, 1024]`` arrays (``benchmarks/README.md`` §1)."""
        seq = L.unfold(x, T)
        B = seq.shape[1]
        fc1, shared1 = synapse_layer(seq[0], "fc1", W1["n_hidden"], "input", "hidden")
        fc2, shared2 = synapse_layer(jnp.zeros((B, W1["n_hidden"]), x.dtype), "fc2", W1["n_out"], "hidden", "out")
        step = lif.make_lif_step(self.neuron.lif)
        leak = lif.leak_for(self.neuron.lif, self.neuron.tau)

        def body(carry, xt):
            v1, v2 = carry
            v1, s1 = step(leak, v1, fc1(xt, shared1))
            v2, s2 = step(leak, v2, fc2(s1, shared2))
            return (v1, v2), s2

        if self.neuron.remat:
            body = jax.checkpoint(body)
        init = (lif.initial_state((B, W1["n_hidden"]), x.dtype), lif.initial_state((B, W1["n_out"]), x.dtype))
        return jax.lax.scan(body, init, seq)[1].sum(axis=0)  # spike counts [B, 10]


@dataclasses.dataclass
class BenchResult:
    workload: str
    mode: str
    genes: int
    input: str
    batch: int
    T: int
    n_timed: int
    ms_median: float
    ms_min: float
    ms_max: float
    samples_per_s: float
    achieved_gflops: float | None
    gflop_per_step: float | None
    params: int
    compile_s: float
    step_memory_mb: float | None
    peak_rss_mb: float
    final_loss: float
    times_ms: list[float]
    settings: dict[str, Any]

    def asdict(self) -> dict:
        return dataclasses.asdict(self)


def compiled_memory_mb(jitted: Callable, *args) -> float | None:
    try:
        m = jitted.lower(*args).compile().memory_analysis()
        return (m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
                - m.alias_size_in_bytes) / 2**20
    except Exception:  # memory analysis is backend-dependent; never fail a benchmark on it
        return None


def _time(step: Callable[[], Any], n_warm: int, n_timed: int) -> tuple[float, list[float]]:
    t0 = time.perf_counter()
    jax.block_until_ready(step())
    compile_s = time.perf_counter() - t0
    for _ in range(n_warm):
        jax.block_until_ready(step())
    times = []
    for _ in range(n_timed):
        t0 = time.perf_counter()
        jax.block_until_ready(step())
        times.append(time.perf_counter() - t0)
    return compile_s, times


def _genetic_config(mode: str, genes: int | None, encoding: str, execution: str, rules: int = 1,
                    last_direct: bool = False) -> cfgs.GeneticConfig:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {list(MODES)}")
    if mode == "direct":
        return cfgs.GeneticConfig()
    if genes is None or genes < 1:
        raise ValueError(f"--mode genetic needs --genes >= 1, got {genes!r}")
    return cfgs.GeneticConfig(encoding=encoding, genes=genes, rules=rules, execution=execution,
                           last_direct=last_direct).validate()


def _peer_step(workload, genetic, input_mode, remat, conv_impl, stepwise=True):
    T, B = (W1["T"], W1["batch"]) if workload == "w1" else (W2["T"], W2["batch"])
    rng = np.random.default_rng(0)
    if workload == "w1":
        x = (rng.standard_normal((B, W1["n_in"])) * 0.5 + 0.3).astype(np.float32)
    else:
        x = rng.random((B, 32, 32, 3), dtype=np.float32)
    static = input_mode == "static"
    if not static:
        x = np.broadcast_to(x[None], (T,) + x.shape).reshape((T * B,) + x.shape[1:]).copy()
    x = jnp.asarray(x)
    y = jnp.asarray(rng.integers(0, 10, (B,)), jnp.int32)
    neuron = dataclasses.replace(PEER_NEURON, remat=remat == "lif")
    model = _PeerNet(workload, genetic, static, neuron, conv_impl, stepwise)
    params = model.init(jax.random.key(0), x)["params"]
    tx = optax.adam(1e-3)

    def loss_fn(p):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": p}, x), y).mean()

    @jax.jit
    def train_step(p, opt):
        loss, g = jax.value_and_grad(loss_fn)(p)
        updates, opt = tx.update(g, opt, p)
        return optax.apply_updates(p, updates), opt, loss

    state = [params, tx.init(params)]

    def step():
        state[0], state[1], loss = train_step(state[0], state[1])
        return loss

    return step, (train_step, tuple(state)), params, T, B, (lambda: float(train_step(*state)[2]))


def _model_step(arch, genetic, remat, conv_impl, batch, T, width):
    """gsnn's real training step for an architecture on random uint8 images."""

    cfg = cfgs.Config(model=cfgs.ModelConfig(arch=arch, T=T, width=width, genetic=genetic, conv_impl=conv_impl,
                                       spiking=cfgs.NeuronConfig(remat=remat == "lif")),
                   train=cfgs.TrainConfig(batch_size=batch)).validate()
    shape = tuple(M.default_input_shape(arch))
    steps = TR.make_steps(cfg, 100, (0.5,) * 3, (0.25,) * 3, shape)
    ts = steps.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.integers(0, 256, (batch,) + shape, dtype=np.uint8))
    y = jnp.asarray(rng.integers(0, cfg.model.num_classes, (batch,)), jnp.int32)
    state = [ts]
    key = jax.random.key(1)

    def step():
        state[0], metrics = steps.train_step(state[0], x, y, key)
        return metrics["loss"]

    return (step, (steps.train_step, (ts, x, y, key)), ts.params, T, batch,
            lambda: float(steps.train_step(state[0], x, y, key)[1]["loss"]))


def run_workload(workload: str, mode: str = "direct", genes: int | None = None, *, encoding: str = "position",
                 execution: str = "auto", input_mode: str = "static", n_timed: int = 10, n_warm: int = 2,
                 remat: str = "none", conv_impl: str = "auto", batch: int = 128, T: int = 4,
                 width: float = 1.0, rules: int = 1, last_direct: bool = False) -> BenchResult:
    """Times one workload's training step (see the module doc). ``workload`` is ``w1``,
    ``w2`` or any architecture of :data:`gsnn.nn.networks.ARCHITECTURES` (gsnn's real step;
    ``batch``, ``T`` and ``width`` apply to these only). Raises ``ValueError`` on unknown
    names or impossible settings."""

    if workload not in WORKLOADS and workload not in M.ARCHITECTURES:
        raise ValueError(f"unknown workload {workload!r}; valid: {list(WORKLOADS)} or an architecture "
                         f"{sorted(M.ARCHITECTURES)}")
    if input_mode not in INPUTS:
        raise ValueError(f"unknown input mode {input_mode!r}; valid: {list(INPUTS)}")
    if n_timed < 1:
        raise ValueError(f"n_timed must be >= 1, got {n_timed}")
    if remat not in REMATS:
        raise ValueError(f"unknown remat {remat!r}; valid: {list(REMATS)}")
    genetic = _genetic_config(mode, genes, encoding, execution, rules, last_direct)
    if workload not in ("w1", "w2"):
        step, (jitted, args), params, T, B, final = _model_step(workload, genetic, remat, conv_impl, batch, T, width)
        gflop = None
    else:
        step, (jitted, args), params, T, B, final = _peer_step(workload, genetic, input_mode, remat, conv_impl)
        gflop = 6 * forward_macs(workload) / 1e9
    memory = compiled_memory_mb(jitted, *args)
    compile_s, times = _time(step, n_warm, n_timed)
    med = statistics.median(times)
    return BenchResult(
        workload=workload, mode=mode, genes=int(genes or 0) if mode == "genetic" else 0, input=input_mode,
        batch=B, T=T, n_timed=n_timed, ms_median=med * 1e3, ms_min=min(times) * 1e3, ms_max=max(times) * 1e3,
        samples_per_s=B / med, achieved_gflops=gflop / med if gflop else None, gflop_per_step=gflop,
        params=count_scalars(params), compile_s=compile_s,
        step_memory_mb=memory, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        final_loss=final(), times_ms=[round(t * 1e3, 2) for t in times],
        settings=dict(encoding=encoding if mode == "genetic" else "direct", rules=rules, last_direct=last_direct,
                      execution=execution, remat=remat,
                      conv_impl=conv_impl, width=width, backend=jax.default_backend(), jax=jax.__version__,
                      machine=platform.processor() or platform.machine()),
    )


def median_seconds(fn: Callable, args: tuple, reps: int) -> float:
    """Median wall time of ``fn(*args)`` over ``reps`` calls, after one untimed call
    (compilation); waits for the results each time."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved(steps: dict[str, Callable[[], Any]], reps: int, batch: int, extra: dict | None = None) -> dict:
    """Times warm ``steps`` in rounds of one call each (A, B, ..., A, B, ...), waiting for
    every result, and prints a table. The first step is the baseline.

    Returns, per name: median ``wall_ms`` and process ``cpu_ms``, ``samples_per_s``
    (``batch`` / wall), ``speed_vs_ref`` and ``cpu_speed_vs_ref`` (baseline time / this
    time; > 1 is faster), the ``reps`` times, and the entries of ``extra[name]``."""
    wall = {n: [] for n in steps}
    cpu = {n: [] for n in steps}
    for _ in range(reps):
        for name, step in steps.items():
            c0, t0 = time.process_time(), time.perf_counter()
            jax.block_until_ready(step())
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    base = next(iter(steps))
    mw, mc = statistics.median(wall[base]), statistics.median(cpu[base])
    print(f"{'path':16s} {'wall ms':>9s} {'cpu ms':>9s} {'samples/s':>10s} {'speed vs ' + base:>14s} "
          f"{'cpu speed vs ' + base:>18s}")
    rows = {}
    for name in steps:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        rows[name] = dict(wall_ms=w * 1e3, cpu_ms=c * 1e3, samples_per_s=batch / w, speed_vs_ref=mw / w,
                          cpu_speed_vs_ref=mc / c, wall_times_ms=[round(t * 1e3, 2) for t in wall[name]],
                          cpu_times_ms=[round(t * 1e3, 2) for t in cpu[name]], **(extra or {}).get(name, {}))
        print(f"{name:16s} {w * 1e3:9.1f} {c * 1e3:9.1f} {batch / w:10.1f} {mw / w:14.3f} {mc / c:18.3f}")
    return rows


def environment() -> dict:
    """Where a benchmark ran: machine, backend, devices, jax version."""
    return dict(machine=platform.processor() or platform.machine(), backend=jax.default_backend(),
                devices=[str(d) for d in jax.devices()], jax=jax.__version__)


def write_result(path: str | None, record: dict) -> None:
    """Writes a benchmark's JSON record (parent folders created); no-op without a path."""
    write_json(path, record)


def format_row(r: BenchResult) -> str:
    gf = f"{r.achieved_gflops:7.1f}" if r.achieved_gflops else "      -"
    mem = f"{r.step_memory_mb:8.0f}" if r.step_memory_mb is not None else "       -"
    enc = r.settings.get("encoding", "direct")
    rules = r.settings.get("rules", 1)
    name = f"{r.workload}/{r.mode}" + (f" {enc[:3]} g={r.genes}" if r.genes else "") + (f"x{rules}" if rules > 1 else "")
    name += "" if r.input == "static" else " per-step"
    name += f" T={r.T}" if r.workload not in ("w1", "w2") else ""
    name += f" remat={r.settings['remat']}" if r.settings.get("remat", "none") != "none" else ""
    return (f"{name:28s} {r.ms_median:9.1f} {r.ms_min:9.1f} {r.ms_max:9.1f} {r.samples_per_s:10.1f} {gf} "
            f"{mem} {r.peak_rss_mb:8.0f}")


HEADER = (f"{'workload':28s} {'ms med':>9s} {'ms min':>9s} {'ms max':>9s} {'samples/s':>10s} {'GFLOP/s':>7s} "
          f"{'step MB':>8s} {'RSS MB':>8s}")
