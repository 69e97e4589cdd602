"""The benchmark workloads compute what the peer workloads define: gsnn's W1/W2 networks
equal a plain per-time-step loop (loss and gradients), the static-input path equals the
per-step one, and ``gsnn bench`` writes the promised JSON. No timing is asserted."""
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from gsnn import bench as B
from gsnn import cli
from gsnn.nn import layers as L


def _atan_spike(u):
    """Heaviside forward, atan(alpha=2) surrogate backward, written independently."""
    a = 2.0
    surrogate = jnp.arctan(math.pi / 2 * a * u) / math.pi + 0.5  # its derivative is the atan surrogate
    return surrogate + lax.stop_gradient((u >= 0).astype(u.dtype) - surrogate)


def _loop_forward(params, x, workload, T):
    """Plain loop over time steps: synapses, LIF (v <- 0.9 v + I, detached subtractive reset)."""
    def lif(v, i):
        v = 0.9 * v + i
        s = _atan_spike(v - 1.0)
        return v - lax.stop_gradient(s), s

    if workload == "w1":
        p1, p2 = params["fc1"], params["fc2"]
        v1 = v2 = 0.0
        count = 0.0
        for _ in range(T):
            v1, s1 = lif(v1, x @ p1["kernel"] + p1["bias"])
            v2, s2 = lif(v2, s1 @ p2["kernel"] + p2["bias"])
            count = count + s2
        return count
    vs = [0.0, 0.0, 0.0]
    total = 0.0
    for _ in range(T):
        h = x
        for i in range(3):
            p = params[f"conv{i + 1}_syn"]
            cur = lax.conv_general_dilated(h, p["kernel"], (1, 1), "SAME",
                                           dimension_numbers=("NHWC", "HWIO", "NHWC")) + p["bias"]
            vs[i], s = lif(vs[i], cur)
            n, hh, ww, c = s.shape
            h = s.reshape(n, hh // 2, 2, ww // 2, 2, c).mean(axis=(2, 4))
        total = total + h.reshape(h.shape[0], -1) @ params["readout"]["kernel"] + params["readout_bias"]
    return total


@pytest.fixture
def small_workloads(monkeypatch):
    """W1 at 6 time steps (25 in the benchmark) and W2 at 8/32/32 channels (64/128/256):
    the same layers and code paths (conv2 and conv3 still take the Winograd path that
    ``auto`` picks on CPU from 32 input channels) at a fifth of the compile time."""
    monkeypatch.setitem(B.W1, "T", 6)
    monkeypatch.setitem(B.W2, "channels", (8, 32, 32))


@pytest.mark.parametrize("workload", ["w1", "w2"])
def test_workload_network_equals_a_plain_time_loop(workload, small_workloads):
    T = B.W1["T"] if workload == "w1" else B.W2["T"]
    shape = (3, 784) if workload == "w1" else (2, 32, 32, 3)
    x = jax.random.uniform(jax.random.key(0), shape) * (1.5 if workload == "w1" else 3.0)
    y = jnp.arange(shape[0]) % 10
    net = B._PeerNet(workload, L.GeneticConfig(), static_input=True)
    params = net.init(jax.random.key(1), x)["params"]
    if workload == "w1":  # larger weights so that both layers spike
        params = jax.tree.map(lambda a: a * 4.0, params)

    def loss(f, p):
        logits = f(p)
        return jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, y[:, None], 1)[:, 0])

    # both compiled (one XLA program each, not op-by-op): the same math, far faster on CPU
    gsnn_f = jax.jit(lambda p: net.apply({"params": p}, x))
    loop_f = jax.jit(lambda p: _loop_forward(p, x, workload, T))
    np.testing.assert_allclose(gsnn_f(params), loop_f(params), rtol=1e-5, atol=1e-4)
    assert float(jnp.abs(gsnn_f(params)).sum()) > 0  # the network is not silent
    g_gsnn = jax.jit(jax.grad(lambda p: loss(gsnn_f, p)))(params)
    g_loop = jax.jit(jax.grad(lambda p: loss(loop_f, p)))(params)
    for a, b in zip(jax.tree.leaves(g_gsnn), jax.tree.leaves(g_loop)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(g_gsnn))


@pytest.mark.parametrize("workload", ["w1", "w2"])
def test_static_input_path_equals_per_step_input(workload, small_workloads):
    T = B.W1["T"] if workload == "w1" else B.W2["T"]
    shape = (2, 784) if workload == "w1" else (2, 32, 32, 3)
    x = jax.random.uniform(jax.random.key(0), shape) * 2.0
    x_steps = jnp.broadcast_to(x[None], (T,) + shape).reshape((T * shape[0],) + shape[1:])
    static = B._PeerNet(workload, L.GeneticConfig(encoding="position", genes=8), static_input=True)
    per_step = B._PeerNet(workload, L.GeneticConfig(encoding="position", genes=8), static_input=False)
    params = static.init(jax.random.key(1), x)["params"]
    f_s = lambda p: jnp.sum(jnp.sin(static.apply({"params": p}, x)))
    f_t = lambda p: jnp.sum(jnp.sin(per_step.apply({"params": p}, x_steps)))
    np.testing.assert_allclose(jax.jit(f_s)(params), jax.jit(f_t)(params), rtol=1e-5)
    grads = [jax.jit(jax.grad(f))(params) for f in (f_s, f_t)]
    for a, b in zip(*map(jax.tree.leaves, grads)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(np.abs(b).max()))  # summation order


def test_macs_formula_matches_the_peer_workloads():
    assert B.forward_macs("w1") == (784 * 1024 + 1024 * 10) * 25 * 128
    assert B.forward_macs("w2") == (1024 * 27 * 64 + 256 * 576 * 128 + 64 * 1152 * 256 + 4096 * 10) * 4 * 64


def test_bench_cli_writes_the_promised_json(tmp_path, capsys):
    out = tmp_path / "w1.json"
    assert cli.main(["bench", "--workload", "w1", "--steps", "2", "--warmup", "0", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    for key in ("samples_per_s", "ms_median", "ms_min", "ms_max", "peak_rss_mb", "achieved_gflops", "step_memory_mb"):
        assert rec[key] > 0, key
    assert rec["ms_min"] <= rec["ms_median"] <= rec["ms_max"]
    assert rec["samples_per_s"] == pytest.approx(128 / rec["ms_median"] * 1e3)
    assert rec["n_timed"] == 2 and rec["command"].startswith("gsnn bench")
    assert "w1/direct" in capsys.readouterr().out


@pytest.mark.parametrize("argv,needle", [
    (["bench", "--mode", "genetic"], "--genes"),
    (["bench", "--mode", "genetic", "--genes", "0"], "--genes"),
])
def test_bench_bad_input_is_a_clear_error(argv, needle, capsys):
    assert cli.main(argv) == 2
    assert needle in capsys.readouterr().err


def test_unknown_workload_lists_the_valid_ones():
    with pytest.raises(ValueError, match="w1"):
        B.run_workload("w3")
