"""Tests of gsnn.core.lif: LIF dynamics against hand-computed traces, surrogates against
their analytic derivatives, the scan against a Python loop, PLIF, input coding."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsnn import config as cfgs
from gsnn.nn import layers as L
from gsnn.core import lif as neurons

# --------------------------------------------------------------------------------------
# LIF forward: hand-computed traces
# --------------------------------------------------------------------------------------


def _trace(leak, currents, config):
    """Runs lif_step in a Python loop; returns (v after each step, spikes)."""
    state = neurons.initial_state(np.shape(currents[0]))
    vs, ss = [], []
    for i in currents:
        state, s = neurons.lif_step(leak, state, jnp.asarray(i, jnp.float32), config)
        vs.append(float(state.v))
        ss.append(float(s))
    return vs, ss


def test_lif_tau_form_hard_reset_constant_current():
    # tau = 2 (leak 1/2), I = 1.5, v_th = 1, hard reset:
    # t0: v = 0 + (1.5 - 0)/2 = 0.75            -> no spike, v = 0.75
    # t1: v = 0.75 + (1.5 - 0.75)/2 = 1.125     -> spike, reset to 0
    # t2: v = 0.75 (as t0); t3 = 1.125 (spike) ... period 2.
    cfg = neurons.LIFConfig(update="tau", reset="hard", v_th=1.0)
    vs, ss = _trace(0.5, [1.5] * 6, cfg)
    np.testing.assert_allclose(vs, [0.75, 0.0, 0.75, 0.0, 0.75, 0.0], atol=1e-7)
    assert ss == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    # lif_run gives the same spikes, for a batch of identical neurons.
    spikes = neurons.lif_run(0.5, jnp.full((6, 3), 1.5), cfg)
    assert spikes.shape == (6, 3)
    np.testing.assert_array_equal(spikes[:, 0], ss)
    np.testing.assert_array_equal(spikes[:, 1], ss)


def test_lif_beta_form_soft_reset_constant_current():
    # beta = 0.5, I = 0.75, v_th = 1, soft (subtractive) reset, v <- beta v + I:
    # t0: 0.75                                 -> no spike
    # t1: 0.375 + 0.75 = 1.125                 -> spike, v = 0.125
    # t2: 0.0625 + 0.75 = 0.8125               -> no spike
    # t3: 0.40625 + 0.75 = 1.15625             -> spike, v = 0.15625
    # t4: 0.078125 + 0.75 = 0.828125           -> no spike
    # t5: 0.4140625 + 0.75 = 1.1640625         -> spike, v = 0.1640625
    cfg = neurons.LIFConfig(update="beta", reset="soft", v_th=1.0)
    vs, ss = _trace(0.5, [0.75] * 6, cfg)
    np.testing.assert_allclose(vs, [0.75, 0.125, 0.8125, 0.15625, 0.828125, 0.1640625], atol=1e-7)
    assert ss == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    np.testing.assert_array_equal(neurons.lif_run(0.5, jnp.full((6, 1), 0.75), cfg)[:, 0], ss)


def test_lif_tau_form_time_varying_current():
    # tau = 2, hard reset, I = [2, 0, 1, 3, 0.5, -1]:
    # t0: 0 + (2 - 0)/2 = 1.0 -> spike (v >= v_th counts), v = 0
    # t1: 0 + (0 - 0)/2 = 0
    # t2: 0 + (1 - 0)/2 = 0.5
    # t3: 0.5 + (3 - 0.5)/2 = 1.75 -> spike, v = 0
    # t4: 0 + (0.5 - 0)/2 = 0.25
    # t5: 0.25 + (-1 - 0.25)/2 = -0.375
    cfg = neurons.LIFConfig(update="tau", reset="hard")
    currents = [2.0, 0.0, 1.0, 3.0, 0.5, -1.0]
    vs, ss = _trace(0.5, currents, cfg)
    np.testing.assert_allclose(vs, [0.0, 0.0, 0.5, 0.0, 0.25, -0.375], atol=1e-7)
    assert ss == [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    np.testing.assert_array_equal(neurons.lif_run(0.5, jnp.array(currents)[:, None], cfg)[:, 0], ss)


def test_lif_tau_form_soft_reset_other_threshold():
    # tau = 4 (leak 1/4), v_th = 0.5, soft reset, I = 1:
    # t0: 0 + (1 - 0)/4 = 0.25
    # t1: 0.25 + 0.75/4 = 0.4375
    # t2: 0.4375 + 0.5625/4 = 0.578125 -> spike, v = 0.078125
    # t3: 0.078125 + 0.921875/4 = 0.30859375
    cfg = neurons.LIFConfig(update="tau", reset="soft", v_th=0.5)
    vs, ss = _trace(0.25, [1.0] * 4, cfg)
    np.testing.assert_allclose(vs, [0.25, 0.4375, 0.078125, 0.30859375], atol=1e-7)
    assert ss == [0.0, 0.0, 1.0, 0.0]


def test_leak_for_and_decay_from_tau():
    assert neurons.leak_for(neurons.LIFConfig(update="tau"), 4.0) == pytest.approx(0.25)
    assert neurons.leak_for(neurons.LIFConfig(update="beta"), 4.0) == pytest.approx(0.75)
    assert neurons.decay_from_tau(2.0) == pytest.approx(0.5)


# --------------------------------------------------------------------------------------
# Surrogates: Heaviside forward, analytic derivative backward
# --------------------------------------------------------------------------------------

# Written independently of gsnn: defaults and derivatives of each surrogate.
DEFAULT_ALPHA = {"atan": 2.0, "sigmoid": 4.0, "triangle": 1.0}


def _derivative(name, alpha, u):
    u = np.asarray(u, np.float64)
    if name == "atan":
        return (alpha / 2.0) / (1.0 + (np.pi / 2.0 * alpha * u) ** 2)
    if name == "sigmoid":
        e = np.exp(-alpha * u)
        return alpha * e / (1.0 + e) ** 2
    if name == "triangle":
        return np.clip(1.0 - np.abs(u) / alpha, 0.0, None) / alpha
    raise AssertionError(name)


U = np.concatenate([np.linspace(-3.0, 3.0, 121), [-1e-4, 0.0, 1e-4, 0.3333]]).astype(np.float32)


def test_surrogate_registry_complete():
    assert set(neurons.SURROGATES) == set(DEFAULT_ALPHA)


@pytest.mark.parametrize("name", sorted(neurons.SURROGATES))
@pytest.mark.parametrize("alpha", [None, 0.7, 3.0])
def test_surrogate_forward_is_heaviside(name, alpha):
    fn = neurons.get_surrogate(name, alpha)
    out = np.asarray(fn(jnp.asarray(U)))
    np.testing.assert_array_equal(out, (U >= 0).astype(np.float32))
    assert out[np.where(U == 0.0)[0][0]] == 1.0  # H(0) = 1


@pytest.mark.parametrize("name", sorted(neurons.SURROGATES))
@pytest.mark.parametrize("alpha", [None, 0.7, 3.0])
def test_surrogate_gradient_is_analytic_derivative(name, alpha):
    fn = neurons.get_surrogate(name, alpha)
    a = DEFAULT_ALPHA[name] if alpha is None else alpha
    grad = np.asarray(jax.vmap(jax.grad(lambda u: fn(u)))(jnp.asarray(U)))
    # atol 1e-6: float32 ``1 - sigmoid(x)`` cancels in the tails (peak values are ~0.1-1).
    np.testing.assert_allclose(grad, _derivative(name, a, U), rtol=1e-5, atol=1e-6)
    # Also through a multiplied cotangent (chain rule, batched).
    w = np.linspace(-2, 2, U.size).astype(np.float32)
    g2 = np.asarray(jax.grad(lambda u: jnp.sum(w * fn(u)))(jnp.asarray(U)))
    np.testing.assert_allclose(g2, w * _derivative(name, a, U), rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("name", sorted(neurons.SURROGATES))
def test_surrogate_default_alpha(name):
    """``alpha=None`` must give the factory's default (distinct from another alpha)."""
    u = jnp.asarray(0.2)
    g_default = jax.grad(neurons.get_surrogate(name))(u)
    g_explicit = jax.grad(neurons.SURROGATES[name](DEFAULT_ALPHA[name]))(u)
    assert float(g_default) == pytest.approx(float(g_explicit))
    assert float(g_default) == pytest.approx(float(_derivative(name, DEFAULT_ALPHA[name], 0.2)), rel=1e-5)


# --------------------------------------------------------------------------------------
# Gradients: lax.scan (lif_run) against an independent Python-loop reference
# --------------------------------------------------------------------------------------


def _ref_spike(alpha):
    """Independent atan surrogate (custom_vjp, not gsnn's custom_jvp)."""

    @jax.custom_vjp
    def spike(u):
        return jnp.where(u >= 0, 1.0, 0.0).astype(u.dtype)

    def fwd(u):
        return spike(u), u

    def bwd(u, g):
        return (g * (alpha / 2) / (1 + (jnp.pi / 2 * alpha * u) ** 2),)

    spike.defvjp(fwd, bwd)
    return spike


def _ref_run(leak, currents, update, reset, v_th, detach, alpha=2.0):
    spike = _ref_spike(alpha)
    v = jnp.zeros_like(currents[0])
    out = []
    for t in range(currents.shape[0]):
        i = currents[t]
        v = v + (i - v) * leak if update == "tau" else leak * v + i
        s = spike(v - v_th)
        r = jax.lax.stop_gradient(s) if detach else s
        v = v * (1 - r) if reset == "hard" else v - r * v_th
        out.append(s)
    return jnp.stack(out)


@pytest.mark.parametrize("update", cfgs.UPDATE_FORMS)
@pytest.mark.parametrize("reset", cfgs.RESETS)
@pytest.mark.parametrize("detach", [True, False])
def test_lif_run_gradients_match_loop_reference(update, reset, detach):
    T, B, N = 6, 3, 5
    rng = np.random.default_rng(0)
    currents = jnp.asarray(1.2 * rng.normal(size=(T, B, N)) + 0.6, jnp.float32)
    weights = jnp.asarray(rng.normal(size=(T, B, N)), jnp.float32)
    leak0 = 0.5 if update == "tau" else 0.6
    cfg = neurons.LIFConfig(update=update, reset=reset, v_th=0.8, surrogate="atan", alpha=2.0,
                            detach_reset=detach)

    def loss_scan(leak, cur, remat=False):
        return jnp.sum(weights * neurons.lif_run(leak, cur, cfg, remat=remat))

    def loss_ref(leak, cur):
        return jnp.sum(weights * _ref_run(leak, cur, update, reset, 0.8, detach))

    s_scan = neurons.lif_run(leak0, currents, cfg)
    s_ref = _ref_run(leak0, currents, update, reset, 0.8, detach)
    np.testing.assert_array_equal(np.asarray(s_scan), np.asarray(s_ref))
    assert 0 < float(jnp.mean(s_ref)) < 1  # the test exercises both branches

    g_scan = jax.grad(loss_scan, argnums=(0, 1))(leak0, currents)
    g_ref = jax.grad(loss_ref, argnums=(0, 1))(leak0, currents)
    g_remat = jax.grad(lambda l, c: loss_scan(l, c, remat=True), argnums=(0, 1))(leak0, currents)
    for a, b in zip(g_scan, g_ref):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    for a, b in zip(g_scan, g_remat):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    assert float(jnp.abs(g_scan[1]).sum()) > 0 and abs(float(g_scan[0])) > 0


def test_detach_reset_changes_gradient():
    """Sanity: the two reset-gradient settings are really different (so the test above
    can tell them apart)."""
    cur = jnp.full((5, 1), 1.5)
    grads = []
    for detach in (True, False):
        cfg = neurons.LIFConfig(detach_reset=detach)
        grads.append(jax.grad(lambda c: jnp.sum(neurons.lif_run(0.5, c, cfg) * jnp.arange(1.0, 6.0)[:, None]))(cur))
    assert not np.allclose(grads[0], grads[1])


# --------------------------------------------------------------------------------------
# PLIF
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [1.25, 2.0, 3.0, 10.0])
def test_plif_init_gives_inverse_tau(tau):
    assert float(neurons.plif_leak(jnp.asarray(neurons.plif_init(tau)))) == pytest.approx(1.0 / tau, rel=1e-6)


@pytest.mark.parametrize("update", cfgs.UPDATE_FORMS)
def test_spiking_neuron_learnable_tau(update):
    T, B, N = 4, 2, 6
    cfg = L.NeuronConfig(lif=neurons.LIFConfig(update=update), tau=3.0, learnable_tau=True)
    layer = L.SpikingNeuron(T, cfg)
    rng = np.random.default_rng(1)
    x = jnp.asarray(1.5 * rng.normal(size=(T * B, N)) + 0.8, jnp.float32)
    params = layer.init(jax.random.key(0), x)["params"]
    assert set(params) == {"plif_w"}
    assert float(params["plif_w"]) == pytest.approx(-math.log(2.0))  # sigmoid(w) = 1/3

    # Forward equals a fixed-tau neuron with the same tau.
    fixed = L.SpikingNeuron(T, L.NeuronConfig(lif=cfg.lif, tau=3.0))
    np.testing.assert_array_equal(layer.apply({"params": params}, x), fixed.apply({}, x))

    r = jnp.asarray(rng.normal(size=(T * B, N)), jnp.float32)
    g = jax.grad(lambda p: jnp.sum(r * layer.apply({"params": p}, x)))(params)
    assert float(jnp.abs(g["plif_w"])) > 1e-6

    # ... and equals the gradient of the reference loop w.r.t. the leak, by the chain rule.
    w = params["plif_w"]
    inv_tau = jax.nn.sigmoid(w)
    seq = x.reshape(T, B, N)
    leak = inv_tau if update == "tau" else 1.0 - inv_tau
    dleak = jax.grad(lambda l: jnp.sum(r.reshape(T, B, N) * _ref_run(l, seq, update, "hard", 1.0, True)))(leak)
    dleak_dw = inv_tau * (1 - inv_tau) * (1.0 if update == "tau" else -1.0)
    np.testing.assert_allclose(float(g["plif_w"]), float(dleak * dleak_dw), rtol=1e-4, atol=1e-6)


def test_fixed_tau_neuron_has_no_params():
    layer = L.SpikingNeuron(2, L.NeuronConfig())
    assert layer.init(jax.random.key(0), jnp.ones((4, 3))).get("params", {}) == {}


# --------------------------------------------------------------------------------------
# Validation and input coding
# --------------------------------------------------------------------------------------


def test_unknown_surrogate_lists_valid_names():
    with pytest.raises(ValueError, match="unknown surrogate") as e:
        neurons.get_surrogate("relu")
    for name in neurons.SURROGATES:
        assert name in str(e.value)
    with pytest.raises(ValueError, match="atan"):
        neurons.LIFConfig(surrogate="nope").validate()


def test_unknown_update_and_reset_list_valid_names():
    with pytest.raises(ValueError, match="unknown LIF update") as e:
        neurons.LIFConfig(update="exp").validate()
    assert "tau" in str(e.value) and "beta" in str(e.value)
    with pytest.raises(ValueError, match="unknown LIF reset") as e:
        neurons.LIFConfig(reset="zero").validate()
    assert "hard" in str(e.value) and "soft" in str(e.value)
    with pytest.raises(ValueError, match="v_th"):
        neurons.LIFConfig(v_th=0.0).validate()


def test_lif_step_rejects_unknown_forms():
    """The pure step must not silently treat an unknown name as one of the valid ones."""
    s0 = neurons.initial_state((2,))
    with pytest.raises(ValueError, match="beta"):
        neurons.lif_step(0.5, s0, jnp.ones(2), neurons.LIFConfig(update="Tau"))
    with pytest.raises(ValueError, match="soft"):
        neurons.lif_run(0.5, jnp.ones((3, 2)), neurons.LIFConfig(reset="subtract"))
    with pytest.raises(ValueError, match="hard"):  # when the step is built, before any input
        neurons.make_lif_step(neurons.LIFConfig(reset="zero"))



def test_neuron_config_rejects_tau_le_one():
    with pytest.raises(ValueError, match="tau"):
        L.NeuronConfig(tau=1.0).validate()


def test_poisson_encode_rate_matches_clipped_input():
    x = jnp.array([[-0.5, 0.0, 0.1, 0.25], [0.5, 0.8, 1.0, 1.7]])
    T = 4000
    s = neurons.poisson_encode(jax.random.key(3), x, T)
    assert s.shape == (T, 2, 4) and s.dtype == x.dtype
    assert set(np.unique(np.asarray(s)).tolist()) <= {0.0, 1.0}
    rate = np.asarray(s.mean(axis=0))
    p = np.clip(np.asarray(x), 0, 1)
    # Binomial std: sqrt(p(1-p)/T) <= 0.008; allow 4 sigma.
    np.testing.assert_allclose(rate, p, atol=0.032)
    assert rate[0, 0] == 0.0 and rate[0, 1] == 0.0 and rate[1, 2] == 1.0 and rate[1, 3] == 1.0
    # Different keys, different spikes; the same key, the same spikes.
    s2 = neurons.poisson_encode(jax.random.key(4), x, T)
    assert not np.array_equal(np.asarray(s), np.asarray(s2))
    np.testing.assert_array_equal(s, neurons.poisson_encode(jax.random.key(3), x, T))


def test_direct_encode_shape_and_values():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 5, 5, 2)), jnp.float32)
    y = neurons.direct_encode(x, 4)
    assert y.shape == (4, 3, 5, 5, 2)
    for t in range(4):
        np.testing.assert_array_equal(y[t], x)
