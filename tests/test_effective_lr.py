"""The effective learning rate of generated weights (gsnn.analysis.effective_lr): one SGD
step's move of each layer's weight, against numpy's hand-written J J^T Gamma for two
position-encoded layers sharing G; 1 and 0 for direct weights; and the network's sown
weights are the ones its layers use."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsnn import config as cfgs
from gsnn.analysis import effective_lr as E
from gsnn.core import encodings
from gsnn.nn import networks as M


def test_two_layers_sharing_g_move_as_the_hand_computation():
    rng = np.random.default_rng(0)
    g, s1, s2 = 5, 0.7, 1.3
    p = dict(a1=rng.normal(size=(6, g)), b1=rng.normal(size=(4, g)), a2=rng.normal(size=(3, g)),
             b2=rng.normal(size=(7, g)), G=rng.normal(size=(g, g)))
    weights_of = lambda q: {"l1": s1 * q["a1"] @ q["G"] @ q["b1"].T, "l2": s2 * q["a2"] @ q["G"] @ q["b2"].T}
    probes = {"l1": rng.normal(size=(6, 4)), "l2": rng.normal(size=(3, 7))}
    out = E.effective_learning_rates(weights_of, {k: jnp.asarray(v) for k, v in p.items()},
                                     {k: jnp.asarray(v) for k, v in probes.items()})
    a1, b1, a2, b2, G, c = p["a1"], p["b1"], p["a2"], p["b2"], p["G"], probes["l1"]
    # the probe on layer 1: the SGD direction of each array, then the move of each weight
    d_a1, d_b1, d_G = s1 * c @ b1 @ G.T, s1 * c.T @ a1 @ G, s1 * a1.T @ c @ b1
    moved1 = s1 * (d_a1 @ G @ b1.T + a1 @ d_G @ b1.T + a1 @ G @ d_b1.T)
    moved2 = s2 * a2 @ d_G @ b2.T
    assert out["l1"]["self"] == pytest.approx(np.sum(c * moved1) / np.sum(c * c), rel=1e-5)
    assert out["l1"]["cross"] == pytest.approx(np.linalg.norm(moved2) / np.linalg.norm(c), rel=1e-5)
    assert out["l2"]["cross"] > 0 and out["l2"]["self"] > 0
    # G's learning rate at 0 (its group, ``interaction``): only layer 1's own arrays move
    frozen = E.effective_learning_rates(weights_of, {k: jnp.asarray(v) for k, v in p.items()},
                                        {k: jnp.asarray(v) for k, v in probes.items()}, {"interaction": 0.0})
    own = s1 * (d_a1 @ G @ b1.T + a1 @ G @ d_b1.T)
    assert frozen["l1"]["self"] == pytest.approx(np.sum(c * own) / np.sum(c * c), rel=1e-5)
    assert frozen["l1"]["cross"] == 0.0


def test_a_direct_weight_moves_by_its_own_gradient_and_nothing_else():
    rng = np.random.default_rng(1)
    params = {"w1": jnp.asarray(rng.normal(size=(3, 4))), "w2": jnp.asarray(rng.normal(size=(4, 2)))}
    out = E.effective_learning_rates(lambda q: {"a": q["w1"], "b": q["w2"]}, params,
                                     E.isotropic_probes({"a": params["w1"], "b": params["w2"]}, jax.random.key(0)))
    for v in out.values():
        assert v["self"] == pytest.approx(1.0, rel=1e-6) and v["cross"] == 0.0


@pytest.mark.parametrize("encoding", ["direct", "position"])
def test_the_network_sows_the_weights_its_layers_use(encoding):
    cfg = M.ModelConfig(arch="mlp", hidden=(8,), T=2, genetic=cfgs.GeneticConfig(encoding=encoding, genes=3))
    model = M.build_model(cfg)
    variables = M.init_variables(model, jax.random.key(0), (4, 4, 3))
    x = jax.random.uniform(jax.random.key(1), (2, 4, 4, 3))
    weights = E.weight_fn(model, variables, x, jax.random.key(2))(variables["params"])
    assert sorted(weights) == ["fc1_dense", "readout"] and weights["fc1_dense"].shape == (48, 8)
    p = variables["params"]
    if encoding == "direct":
        np.testing.assert_array_equal(np.asarray(weights["fc1_dense"]), np.asarray(p["fc1_dense"]["kernel"]))
    else:
        # the encoded layer's weight is s * x_pre G x_post^T with the shared G: the sown W
        # over its own x_pre, rescaled, equals G x_post^T up to the fixed scale
        w = np.asarray(weights["fc1_dense"])
        ref = np.asarray(p["fc1_dense"]["x_pre"]) @ np.asarray(p["G"]) @ np.asarray(p["fc1_dense"]["x_post"]).T
        scale = w.ravel() @ ref.ravel() / (ref.ravel() @ ref.ravel())
        np.testing.assert_allclose(w, scale * ref, rtol=1e-5, atol=1e-7)
        assert scale > 0
    rates = E.effective_learning_rates(E.weight_fn(model, variables, x, jax.random.key(2)), p,
                                       E.isotropic_probes(weights, jax.random.key(3)))
    assert (rates["fc1_dense"]["self"] == pytest.approx(1.0, rel=1e-5)) == (encoding == "direct")


def _two_layers(rng, g=4):
    """Two layers ``l1 = a G b^T``, ``l2 = b' G c^T`` in the names :mod:`gsnn.nn.groups`
    labels: per-layer factors (``encoding``) and a shared ``G`` (``interaction``)."""
    p = dict(l1=dict(x_pre=rng.normal(size=(6, g)), x_post=rng.normal(size=(4, g))),
             l2=dict(x_pre=rng.normal(size=(3, g)), x_post=rng.normal(size=(5, g))), G=rng.normal(size=(g, g)))
    weights_of = lambda q: {n: q[n]["x_pre"] @ q["G"] @ q[n]["x_post"].T for n in ("l1", "l2")}
    return jax.tree_util.tree_map(jnp.asarray, p), weights_of


def test_the_self_multiplier_splits_into_the_squared_gradient_of_each_label():
    rng = np.random.default_rng(2)
    p, weights_of = _two_layers(rng)
    probes = {"l1": jnp.asarray(rng.normal(size=(6, 4))), "l2": jnp.asarray(rng.normal(size=(3, 5)))}
    parts = E.self_contributions(weights_of, p, probes)
    a, b, G, c = (np.asarray(v) for v in (p["l1"]["x_pre"], p["l1"]["x_post"], p["G"], probes["l1"]))
    norm2 = np.sum(c * c)
    d_a, d_b, d_G = c @ b @ G.T, c.T @ a @ G, a.T @ c @ b
    assert parts["l1"]["encoding"] == pytest.approx((np.sum(d_a ** 2) + np.sum(d_b ** 2)) / norm2, rel=1e-5)
    assert parts["l1"]["interaction"] == pytest.approx(np.sum(d_G ** 2) / norm2, rel=1e-5)
    # the parts add up to the multiplier of the reverse-over-reverse path, at any scales
    scales = {"encoding": 0.3, "interaction": 2.0}
    rates = E.effective_learning_rates(weights_of, p, probes, scales)
    for layer in ("l1", "l2"):
        assert sum(scales[k] * v for k, v in parts[layer].items()) == pytest.approx(rates[layer]["self"], rel=1e-5)


@pytest.mark.parametrize("target", [0.5, 2.0])
def test_matching_scales_bring_every_layer_to_the_target(target):
    """Two ``neuron``-mode layers (populations a -> b -> c, a shared G): four labels for two
    layers, so the target is reached exactly, checked on the independent path."""
    rng = np.random.default_rng(3)
    g = 4
    p = dict(l1=dict(pop_a=rng.normal(size=(6, g)), pop_b=rng.normal(size=(4, g))),
             l2=dict(pop_c=rng.normal(size=(5, g))), G=rng.normal(size=(g, g)))
    p = jax.tree_util.tree_map(jnp.asarray, p)
    weights_of = lambda q: {"l1": 3.0 * q["l1"]["pop_a"] @ q["G"] @ q["l1"]["pop_b"].T,
                            "l2": 0.2 * q["l1"]["pop_b"] @ q["G"] @ q["l2"]["pop_c"].T}
    probes = {"l1": jnp.asarray(rng.normal(size=(6, 4))), "l2": jnp.asarray(rng.normal(size=(4, 5)))}
    parts = E.self_contributions(weights_of, p, probes)
    assert set(parts["l1"]) == {"pop_a", "pop_b", "interaction"} and set(parts["l2"]) == {"pop_b", "pop_c",
                                                                                          "interaction"}
    before = E.effective_learning_rates(weights_of, p, probes)
    assert before["l1"]["self"] / before["l2"]["self"] > 20  # far from matched
    scales = E.matching_scales(parts, target=target)
    after = E.effective_learning_rates(weights_of, p, probes, scales)
    for layer in ("l1", "l2"):
        assert after[layer]["self"] == pytest.approx(target, rel=2e-2)


def test_a_direct_network_keeps_its_rates_and_bad_targets_are_refused():
    parts = {"a": {"weight": 1.0}, "b": {"weight": 1.0}}
    assert E.matching_scales(parts) == pytest.approx({"weight": 1.0})
    assert E.matching_scales(parts, target=0.5) == pytest.approx({"weight": 0.5}, rel=1e-3)
    with pytest.raises(ValueError, match="positive"):
        E.matching_scales(parts, target=0.0)
    with pytest.raises(ValueError, match="nothing to match"):
        E.matching_scales({"a": {}})


def test_the_gradient_probe_is_the_loss_gradient_at_the_generated_weights():
    """Chain rule: the encoded net's own parameter gradient is J^T Gamma for the probe the
    direct twin gives, and the probe differs from the isotropic one."""
    import optax

    cfg = M.ModelConfig(arch="mlp", hidden=(8,), T=2, genetic=cfgs.GeneticConfig(encoding="position", genes=3))
    model = M.build_model(cfg)
    variables = M.init_variables(model, jax.random.key(0), (4, 4, 3))
    x = jax.random.normal(jax.random.key(1), (6, 4, 4, 3))
    labels = jnp.arange(6) % 10
    weights_of = E.weight_fn(model, variables, x[:1], jax.random.key(2))
    weights = weights_of(variables["params"])
    direct = M.build_model(dataclasses.replace(cfg, genetic=cfgs.GeneticConfig(encoding="direct")))
    template = M.init_variables(direct, jax.random.key(5), (4, 4, 3))["params"]
    probes = E.gradient_probes(direct, template, variables, weights, x, labels, jax.random.key(3))
    assert {k: v.shape for k, v in probes.items()} == {k: v.shape for k, v in weights.items()}

    def loss(params):
        logits, _ = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats", "stats"],
                                rngs={"coding": jax.random.key(3)})
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    own = jax.grad(loss)(variables["params"])
    _, vjp = jax.vjp(weights_of, variables["params"])
    (chain,) = vjp(probes)
    for name in ("x_pre", "x_post"):
        np.testing.assert_allclose(np.asarray(chain["fc1_dense"][name]), np.asarray(own["fc1_dense"][name]),
                                   rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.asarray(chain["G"]), np.asarray(own["G"]), rtol=1e-4, atol=1e-7)
    assert float(jnp.abs(chain["G"]).max()) > 0
    with pytest.raises(ValueError, match="no kernel"):
        E.gradient_probes(direct, template, variables, {**weights, "conv9": weights["readout"]}, x, labels,
                          jax.random.key(3))
