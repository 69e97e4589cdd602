"""Tests of the encoding registry (gsnn.core.encodings): R = 1 is the encodings before
the registry (a stored reference, with float32 tolerances), R > 1 against numpy, rank
and variance at initialisation, the Frobenius penalty and its gradient against finite
differences, path choice."""
from __future__ import annotations

import functools
import math
import pathlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsnn import config as cfgs
from gsnn.nn import layers as L
from gsnn.nn import networks as M
from gsnn import training
from gsnn.core import encodings

REFERENCE = pathlib.Path(__file__).parent / "data" / "encodings_r1_reference.npz"

_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0,
                                                    "xla_llvm_disable_expensive_passes": True})


class OneConv(nn.Module):
    """A GeneBank plus one 3x3 (or dense) Synapse; returns its weight ``[rows, C_out]``
    read out through the layer with one-hot inputs (no padding: one output position)."""

    cfg: L.GeneticConfig
    c_in: int
    c_out: int
    kernel: int | None = 3

    @nn.compact
    def __call__(self):
        bank = L.GeneBank(self, self.cfg)
        shared = bank.inputs(self.cfg.encoding, "pre", self.c_in, "post", self.c_out)
        k = self.kernel
        layer = L.Synapse(self.c_out, kernel_size=(k, k) if k else None, encoding=self.cfg.encoding,
                          genetic_cfg=self.cfg, padding=((0, 0), (0, 0)), name="syn")
        n = (k * k if k else 1) * self.c_in
        x = jnp.eye(n, dtype=jnp.float32).reshape((n, k, k, self.c_in) if k else (n, self.c_in))
        return layer(x, shared).reshape(n, self.c_out)


def _weight(cfg, c_in, c_out, key, kernel=3):
    mod = OneConv(cfg, c_in, c_out, kernel)
    params = _jit(mod.init)(key)["params"]
    return params, np.asarray(_jit(mod.apply)({"params": params}), np.float64)


# --------------------------------------------------------------------------------------
# R = 1: the registry is the encodings it replaced
# --------------------------------------------------------------------------------------


#: Tolerances of the stored reference, recorded on one machine and compared on any other.
#: XLA may order a float32 sum differently on another CPU (vector width, threads, ISA), and
#: G's orthogonal initialisation runs through a QR whose Householder sums reassociate too;
#: each reassociated sum of ``n`` float32 terms may move by up to ``n * 2**-24`` of the
#: sum of their magnitudes, in practice ``sqrt(n)`` times that. Measured against the
#: recording machine on this one, which reproduces it bitwise no more than issue 24's did
#: (default build, ``--xla_cpu_max_isa=SSE4_2``, one and two threads): init leaves moved by at most 2e-7 of their largest entry (G,
#: through the QR), one step's update by at most 3e-5 of its largest entry (an update of
#: ~3e-3 on a factor of ~0.6 is read back through that factor's float32 ulp, ~4e-8, so
#: 1e-5 of the update is rounding alone), the loss by 0. The bounds leave 50x (init) and
#: 30x (update) room and are far below what a changed encoding gives (an O(1) relative
#: change: a wrong scale, a transposed factor).
#: A spike that flips at the threshold on another CPU changes the update of a few entries
#: by a fraction of themselves; the update bound is relative to the leaf's largest entry.
INIT_TOL = 1e-5
UPDATE_TOL = 1e-3
LOSS_RTOL = 1e-5


def _close_to_leaf_scale(ref, got, tol, what):
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    assert ref.shape == got.shape, (what, ref.shape, got.shape)
    scale = max(np.abs(ref).max(), 1e-30)
    assert np.abs(ref - got).max() <= tol * scale, (what, np.abs(ref - got).max() / scale)


@pytest.mark.parametrize("encoding,genes,path", [("position", 6, "factorised"), ("neuron", 6, "materialise")])
def test_rule1_init_and_train_step_match_the_pre_registry_encodings(encoding, genes, path):
    """tests/data/encodings_r1_reference.npz was written by commit 856e140 (before the
    registry): convnet_s at width 1/4, T=2, init with key 0, then one SGD step on fixed
    data; the npz also holds the direct and the other paths' cases. Compared with the
    tolerances above (another machine's XLA reassociates float32 sums), the init per
    leaf and the step's update ``step1 - init`` per leaf, each relative to the leaf's
    largest entry."""
    ref = np.load(REFERENCE)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, (8,)).astype(np.int32)
    cfg = cfgs.Config(name="ref", model=M.ModelConfig(arch="convnet_s", width=0.25, T=2,
                   genetic=cfgs.GeneticConfig(encoding=encoding, genes=genes, execution=path)),
                   train=cfgs.TrainConfig(epochs=1, batch_size=8), data=cfgs.DataConfig(source="demo")).validate()
    steps = training.make_steps(cfg, 10, (0.5,) * 3, (0.25,) * 3, (32, 32, 3))
    tag = f"{encoding}_{path}"
    state = steps.init(jax.random.key(0))
    init = {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_flatten_with_path(state.params)[0]}
    assert {f"{tag}/init/{k}" for k in init} == {k for k in ref if k.startswith(f"{tag}/init/")}
    for k, v in init.items():
        _close_to_leaf_scale(ref[f"{tag}/init/{k}"], v, INIT_TOL, f"init {k}")
    state, m = steps.train_step(state, jnp.asarray(images), jnp.asarray(labels), jax.random.key(1))
    assert float(m["loss"]) == pytest.approx(float(ref[f"{tag}/loss"]), rel=LOSS_RTOL)
    for k, v in jax.tree_util.tree_flatten_with_path(state.params)[0]:
        k = jax.tree_util.keystr(k)
        want = ref[f"{tag}/step1/{k}"].astype(np.float64) - ref[f"{tag}/init/{k}"]
        _close_to_leaf_scale(want, np.asarray(v, np.float64) - init[k], UPDATE_TOL, f"update {k}")


# --------------------------------------------------------------------------------------
# R > 1 against numpy
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("rules", [2, 3])
@pytest.mark.parametrize("encoding,kernel", [("position", 3), ("neuron", 3), ("position", None), ("neuron", None)])
def test_rule_product_equals_numpy(encoding, kernel, rules):
    g, c_in, c_out = 3, 4, 5
    cfg = L.GeneticConfig(encoding=encoding, genes=g, rules=rules, interaction_gain=1.3, spatial_std=0.8).validate()
    params, got = _weight(cfg, c_in, c_out, jax.random.key(3), kernel)
    P = 9 if kernel else 1
    G = np.asarray(params["G"], np.float64)
    assert G.shape == (rules, g, g)
    if encoding == "position":
        pre, post = (np.asarray(params["syn"][k], np.float64) for k in ("x_pre", "x_post"))
        pre_rms = post_rms = math.sqrt(2 / (P * c_in))
    else:
        xin, post = (np.asarray(params[k], np.float64) for k in ("pop_pre", "pop_post"))
        post_rms = 1 / math.sqrt(g)
        if kernel:
            S = np.asarray(params["syn"]["spatial"], np.float64)  # [R, 9, g]
            pre = np.stack([np.concatenate([xin[r] * S[r, p] for p in range(P)]) for r in range(rules)])
            pre_rms = post_rms * 0.8
        else:
            pre, pre_rms = xin, post_rms
    product = np.prod([pre[r] @ G[r] @ post[r].T for r in range(rules)], axis=0)
    # W is the numpy product times one fixed scale s
    s = np.sum(got * product) / np.sum(product * product)
    np.testing.assert_allclose(got, s * product, rtol=1e-5, atol=1e-6 * np.abs(got).max())
    # s is what gives W the Kaiming variance 2 / fan_in when every factor has its nominal
    # rms (G: 1.3 / sqrt(g)), measured here by Monte Carlo over independent numpy draws
    # of such factors (rules are independent, so the second moment is a product over them)
    rng = np.random.default_rng(5)
    n = 100_000
    moment = np.prod([np.mean(np.einsum("na,nab,nb->n", rng.normal(0, pre_rms, (n, g)),
                                        rng.normal(0, 1.3 / math.sqrt(g), (n, g, g)),
                                        rng.normal(0, post_rms, (n, g))) ** 2) for _ in range(rules)])
    assert s ** 2 * moment == pytest.approx(2 / (P * c_in), rel=0.04)  # Monte Carlo std ~1%


def test_two_rules_reach_rank_beyond_genes_at_init():
    g, c_in, c_out = 4, 8, 32
    for rules, bound in ((1, g), (2, g * g)):
        cfg = L.GeneticConfig(encoding="position", genes=g, rules=rules).validate()
        _, w = _weight(cfg, c_in, c_out, jax.random.key(0))
        rank = np.linalg.matrix_rank(w, tol=1e-6 * np.linalg.norm(w, 2))
        assert rank == bound, (rules, rank)
        geom = encodings.Geometry((3, 3), c_in, c_out)
        assert encodings.max_rank(encodings.get("position"), geom, g, rules) == bound


@pytest.mark.parametrize("fan", encodings.FANS)
@pytest.mark.parametrize("rules", [1, 2])
@pytest.mark.parametrize("encoding", ["position", "neuron"])
def test_initial_variance_matches_its_target(encoding, rules, fan):
    c_in, c_out, g = 32, 96, 8
    cfg = L.GeneticConfig(encoding=encoding, genes=g, rules=rules, init_fan=fan).validate()
    mod = OneConv(cfg, c_in, c_out)
    second = _jit(lambda k: jnp.mean(mod.apply(mod.init(k)) ** 2))
    keys = jax.random.split(jax.random.key(11, impl="rbg"), 8)
    std = math.sqrt(np.mean([float(second(k)) for k in keys]))
    target = math.sqrt(2.0 / (9 * (c_in if fan == "fan_in" else c_out)))
    assert std == pytest.approx(target, rel=0.12), (std, target)


# --------------------------------------------------------------------------------------
# Weight decay on W
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("rules", [1, 2])
def test_frobenius_norm_from_gram_matrices_equals_the_materialised_norm(rules):
    rng = np.random.default_rng(0)
    shape = (lambda *s: s) if rules == 1 else (lambda *s: (rules,) + s)
    f = encodings.Factors(*(jnp.asarray(rng.normal(size=shape(*s)), jnp.float32)
                            for s in ((20, 5), (5, 5), (7, 5))), 1.0, 1.0)
    w = np.asarray(encodings.rule_product(f, 0.3), np.float64)
    assert float(encodings.frobenius_sq(f, 0.3)) == pytest.approx(np.sum(w ** 2), rel=1e-5)


@pytest.mark.parametrize("rules,path", [(1, "factorised"), (1, "materialise"), (2, "materialise")])
def test_weight_decay_gradient_equals_finite_differences_of_the_penalty(rules, path):
    """The sown ||W||^2 of a position conv, through ``train.weight_penalty``: its gradient
    against central differences of a float64 numpy penalty on the same parameters."""
    g, c_in, c_out, lam = 3, 2, 4, 0.3
    cfg = L.GeneticConfig(encoding="position", genes=g, rules=rules, execution=path).validate()
    x = jnp.ones((1, 5, 5, c_in))
    mod = _Net(cfg, c_out)
    params = mod.init(jax.random.key(0), x)["params"]

    def penalty(p):
        _, upd = mod.apply({"params": p}, x, mutable=["weight_sq"])
        return training.weight_penalty(upd["weight_sq"], lam)

    grads = jax.grad(penalty)(params)
    s = encodings.fixed_scale(encodings.Geometry((3, 3), c_in, c_out), g, rules, math.sqrt(2 / (9 * c_in)),
                              1 / math.sqrt(g), math.sqrt(2 / (9 * c_in)))

    def np_penalty(pre, G, post):
        prods = [pre[r] @ G[r] @ post[r].T for r in range(rules)] if rules > 1 else [pre @ G @ post.T]
        return lam / 2 * np.sum((s * np.prod(prods, axis=0)) ** 2)

    arrays = {"x_pre": np.asarray(params["syn"]["x_pre"], np.float64), "G": np.asarray(params["G"], np.float64),
              "x_post": np.asarray(params["syn"]["x_post"], np.float64)}
    assert float(penalty(params)) == pytest.approx(np_penalty(arrays["x_pre"], arrays["G"], arrays["x_post"]),
                                                   rel=1e-5)
    got = {"x_pre": grads["syn"]["x_pre"], "G": grads["G"], "x_post": grads["syn"]["x_post"]}
    eps = 1e-6
    for name in arrays:
        for idx in [tuple(i) for i in np.random.default_rng(1).integers(0, arrays[name].shape, (4, arrays[name].ndim))]:
            plus, minus = ({k: v.copy() for k, v in arrays.items()} for _ in range(2))
            plus[name][idx] += eps
            minus[name][idx] -= eps
            fd = (np_penalty(plus["x_pre"], plus["G"], plus["x_post"])
                  - np_penalty(minus["x_pre"], minus["G"], minus["x_post"])) / (2 * eps)
            assert float(got[name][idx]) == pytest.approx(fd, rel=2e-3, abs=1e-7), (name, idx)


class _Net(nn.Module):
    cfg: L.GeneticConfig
    c_out: int

    @nn.compact
    def __call__(self, x):
        shared = L.GeneBank(self, self.cfg).inputs("position", "pre", x.shape[-1], "post", self.c_out)
        return L.Synapse(self.c_out, kernel_size=(3, 3), encoding="position", genetic_cfg=self.cfg, name="syn")(x, shared)


def test_weight_decay_on_weights_moves_decay_from_factors_into_the_loss():
    params = {"G": jnp.ones((2, 2)), "l": {"x_pre": jnp.ones((3, 2)), "kernel": jnp.ones((2,)), "bias": jnp.ones(())}}
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    for target, decayed in (("factors", {"G", "x_pre", "kernel"}), ("weights", {"kernel"})):
        tc = cfgs.TrainConfig(learning_rate=1.0, momentum=0.0, weight_decay=0.5, weight_decay_on=target, epochs=1)
        tx = training.make_optimizer(tc, 10, params)
        upd, _ = tx.update(zeros, tx.init(params), params)
        moved = {jax.tree_util.keystr(k).split("'")[-2] for k, u in jax.tree_util.tree_flatten_with_path(upd)[0]
                 if float(jnp.abs(u).max()) > 0}
        assert moved == decayed, target


# --------------------------------------------------------------------------------------
# Paths and validation
# --------------------------------------------------------------------------------------


def test_auto_path_materialises_rules_and_factorised_rules_are_an_error():
    cfg = M.ModelConfig(arch="convnet_s", width=0.25,
                        genetic=L.GeneticConfig(encoding="neuron", genes=4, rules=2, execution="auto"))
    syn, _, _ = M.describe(M.build_model(cfg))
    assert {s.execution for s in syn} == {"materialise"} and {s.rules for s in syn} == {2}
    with pytest.raises(ValueError, match="factorised.*rules=2"):
        L.GeneticConfig(encoding="position", genes=4, rules=2, execution="factorised").validate()
    with pytest.raises(ValueError, match="rules must be an int >= 1"):
        L.GeneticConfig(encoding="position", genes=4, rules=0).validate()
    with pytest.raises(ValueError, match="init_fan"):
        L.GeneticConfig(encoding="position", genes=4, init_fan="fan_avg").validate()
