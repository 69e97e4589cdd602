"""Tests of gsnn.genetic and the genetic Synapse: weight generation against numpy,
materialised == factorised (outputs and gradients), variance matching, spectral
entropy, execution-path choice."""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsnn import config as cfgs
from gsnn.core import encodings, genetic
from gsnn.nn import layers as L
from gsnn.nn.specs import record_layers

RNG = np.random.default_rng(0)

# Unoptimised XLA code compiles ~2x faster on CPU; each program here runs once or twice.
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0,
                                                    "xla_llvm_disable_expensive_passes": True})


# --------------------------------------------------------------------------------------
# Pure generation functions against numpy
# --------------------------------------------------------------------------------------


def test_generate_weight_matches_numpy():
    g, n_pre, n_post = 5, 7, 4
    xp, G, xq = (RNG.normal(size=s).astype(np.float32) for s in ((n_pre, g), (g, g), (n_post, g)))
    w = genetic.generate_weight(jnp.asarray(xp), jnp.asarray(G), jnp.asarray(xq), 0.37)
    assert w.shape == (n_pre, n_post)
    ref = 0.37 * xp.astype(np.float64) @ G @ xq.T
    np.testing.assert_allclose(np.asarray(w), ref, rtol=1e-5, atol=1e-5)


def test_generate_kernel_matches_numpy_loop():
    g, kh, kw, c_in, c_out = 3, 3, 2, 4, 5
    pre = RNG.normal(size=(kh * kw * c_in, g))
    G = RNG.normal(size=(g, g))
    post = RNG.normal(size=(c_out, g))
    s = 0.5
    k = np.asarray(genetic.generate_kernel(*(jnp.asarray(a, jnp.float32) for a in (pre, G, post)), s, (kh, kw)))
    assert k.shape == (kh, kw, c_in, c_out)
    ref = np.zeros((kh, kw, c_in, c_out))
    for i in range(kh):
        for j in range(kw):
            for ci in range(c_in):
                row = (i * kw + j) * c_in + ci  # offset-major, row-major offsets
                for co in range(c_out):
                    ref[i, j, ci, co] = s * sum(
                        pre[row, a] * G[a, b] * post[co, b] for a in range(g) for b in range(g)
                    )
    np.testing.assert_allclose(k, ref, rtol=1e-5, atol=1e-5)


def test_spatial_pre_rows_matches_numpy():
    g, P, c_in = 4, 9, 3
    x_in = RNG.normal(size=(c_in, g)).astype(np.float32)
    S = RNG.normal(size=(P, g)).astype(np.float32)
    rows = np.asarray(genetic.spatial_pre_rows(jnp.asarray(x_in), jnp.asarray(S)))
    assert rows.shape == (P * c_in, g)
    for p in range(P):
        for c in range(c_in):
            np.testing.assert_allclose(rows[p * c_in + c], x_in[c] * S[p], rtol=1e-6)


def test_variance_matching_scale_hand_value():
    # kaiming_std(9) = sqrt(2)/3; s = (sqrt(2)/3) / (4 * 0.5 * 0.25 * 2)
    assert genetic.kaiming_std(9) == pytest.approx(math.sqrt(2) / 3)
    assert genetic.variance_matching_scale(9, 4, 0.5, 0.25, 2.0) == pytest.approx(math.sqrt(2) / 3 / 1.0)
    assert genetic.variance_matching_scale(8, 2, 1.0, 1.0, 1.0, gain=1.0) == pytest.approx(1 / (2 * math.sqrt(8)))


# --------------------------------------------------------------------------------------
# A one-layer network: a GeneBank (G, populations) and one Synapse
# --------------------------------------------------------------------------------------


class OneLayer(nn.Module):
    """A GeneBank plus one Synapse, as SpikingNetwork builds them."""

    features: int
    kernel: int | None
    stride: int
    encoding: str
    cfg: L.GeneticConfig
    padding: object = None

    @nn.compact
    def __call__(self, x):
        bank = L.GeneBank(self, self.cfg)
        shared = bank.inputs(self.encoding, "pre", x.shape[-1], "post", self.features)
        layer = L.Synapse(
            self.features, kernel_size=(self.kernel, self.kernel) if self.kernel else None,
            strides=self.stride, padding=self.padding, encoding=self.encoding,
            genetic_cfg=self.cfg, pre_population="pre", post_population="post", name="syn",
        )
        return layer(x, shared)


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


# (name, encoding, input shape [N, ...], features, kernel, stride)
PATH_CASES = [
    ("dense_position_vec", "position", (6, 13), 7, None, 1),
    ("dense_position_map", "position", (6, 5, 5, 3), 7, None, 1),
    ("dense_neuron_vec", "neuron", (6, 13), 7, None, 1),
    ("dense_neuron_flatmap", "neuron", (6, 7, 7, 3), 5, None, 1),
    ("conv_position_k3_s1_7x7", "position", (4, 7, 7, 3), 6, 3, 1),
    ("conv_position_k3_s2_9x9", "position", (4, 9, 9, 3), 6, 3, 2),
    ("conv_position_k1_s1_7x7", "position", (4, 7, 7, 3), 6, 1, 1),
    ("conv_position_k1_s2_9x9", "position", (4, 9, 9, 3), 6, 1, 2),
    ("conv_neuron_k3_s1_7x7", "neuron", (4, 7, 7, 3), 6, 3, 1),
    ("conv_neuron_k3_s2_9x9", "neuron", (4, 9, 9, 3), 6, 3, 2),
    ("conv_neuron_k3_s2_7x7", "neuron", (4, 7, 7, 3), 6, 3, 2),
    ("conv_neuron_k1_s1_9x9", "neuron", (4, 9, 9, 3), 6, 1, 1),
    ("conv_neuron_k1_s2_7x7", "neuron", (4, 7, 7, 3), 6, 1, 2),
]


def _pair(encoding, features, kernel, stride, genes=4):
    mk = lambda path: OneLayer(features, kernel, stride, encoding,
                               L.GeneticConfig(encoding=encoding, genes=genes, execution=path))
    return mk("materialise"), mk("factorised")


@pytest.mark.parametrize("case", PATH_CASES, ids=[c[0] for c in PATH_CASES])
def test_materialised_equals_factorised(case):
    _, encoding, shape, features, kernel, stride = case
    mat, fac = _pair(encoding, features, kernel, stride)
    # Data from numpy: eager jax.random calls compile a new program for every shape.
    rng = np.random.default_rng(PATH_CASES.index(case))
    x = jnp.asarray(rng.normal(size=shape), jnp.float32)
    kp = jax.random.key(PATH_CASES.index(case), impl="rbg")  # RBG: cheaper to compile on CPU
    shapes_m = jax.eval_shape(mat.init, kp, x)["params"]
    shapes_f = jax.eval_shape(fac.init, kp, x)["params"]
    # identical parameter trees (structure and shapes)
    assert jax.tree_util.tree_structure(shapes_m) == jax.tree_util.tree_structure(shapes_f)
    assert jax.tree.map(jnp.shape, shapes_m) == jax.tree.map(jnp.shape, shapes_f)
    expected = {"position": {"x_pre", "x_post"}, "neuron": {"spatial"}}[encoding]
    if encoding == "neuron" and kernel is None and len(shape) == 2:
        expected = set()
    assert set(shapes_m.get("syn", {})) == expected
    y_shape = jax.eval_shape(mat.apply, {"params": shapes_m}, x).shape
    r = jnp.asarray(rng.normal(size=y_shape), jnp.float32)

    @_jit  # one compiled program per case: init once, both paths, both gradients
    def run(kp, x):
        params = mat.init(kp, x)["params"]
        # Perturb every parameter away from its init, so no path can rely on init values.
        leaves, tree = jax.tree.flatten(params)
        keys = jax.random.split(jax.random.fold_in(kp, 1), len(leaves))
        params = tree.unflatten([p + 0.3 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])

        def forward_and_grads(module):
            def loss(p, xx):
                y = module.apply({"params": p}, xx)
                return jnp.sum(r * y), y

            return jax.grad(loss, argnums=(0, 1), has_aux=True)(params, x)

        return forward_and_grads(mat), forward_and_grads(fac)

    ((gp_m, gx_m), y_m), ((gp_f, gx_f), y_f) = run(kp, x)
    assert y_m.shape == y_f.shape
    assert y_m.shape[0] == shape[0] and y_m.shape[-1] == features
    if kernel is not None:
        out = (shape[1] + 2 * (kernel // 2) - kernel) // stride + 1
        assert y_m.shape == (shape[0], out, out, features)
    assert float(jnp.linalg.norm(y_m)) > 0
    assert _rel(y_f, y_m) < 1e-5
    assert _rel(gx_f, gx_m) < 1e-4
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(gp_m), jax.tree_util.tree_leaves(gp_f)):
        assert float(jnp.linalg.norm(a)) > 0, path
        assert _rel(b, a) < 1e-4, path


def test_paths_recorded_in_specs():
    """The LayerSpec records the path actually used (forced or chosen)."""
    x = jnp.zeros((2, 7, 7, 3))
    for path in ("materialise", "factorised"):
        m = OneLayer(6, 3, 1, "neuron", L.GeneticConfig(encoding="neuron", genes=4, execution=path))
        with record_layers() as specs:
            jax.eval_shape(m.init, jax.random.key(0), x)
        (spec,) = [s for s in specs if isinstance(s, L.LayerSpec)]
        assert spec.execution == path and spec.spatial_rows == 9 and spec.pre_rows == 3
        assert spec.in_positions == 49 and spec.out_positions == 49


# --------------------------------------------------------------------------------------
# Generated weight of a Synapse equals the hand formula from its parameters
# --------------------------------------------------------------------------------------


def _init_and_matrix(module, kernel, c_in, hw=None):
    """Initialises ``module`` and reads its weight out as a ``[rows, C_out]`` matrix with
    one-hot inputs (one compiled program).

    Conv: a k x k input with no padding gives a 1x1 output, so one-hot inputs over
    (offset, channel) read the kernel row by row, offset-major. Dense over a map: one-hot
    maps read the rows in NHWC-flattened order.
    """
    if kernel is None:
        n = c_in if hw is None else hw * hw * c_in
        shape = (n, c_in) if hw is None else (n, hw, hw, c_in)
    else:
        n = kernel * kernel * c_in
        shape = (n, kernel, kernel, c_in)
    x = np.eye(n, dtype=np.float32).reshape(shape)

    @_jit
    def run(key):
        params = module.init(key, x)["params"]
        return params, module.apply({"params": params}, x).reshape(n, -1)

    params, w = run(jax.random.key(5, impl="rbg"))
    return params, np.asarray(w, np.float64)


@pytest.mark.parametrize("scheme", cfgs.INIT_SCHEMES)
@pytest.mark.parametrize("kind", ["conv3", "dense", "dense_flatmap"])
@pytest.mark.parametrize("encoding", ["position", "neuron"])
def test_generated_weight_equals_hand_formula(encoding, kind, scheme):
    g, c_in, c_out = 4, 3, 5
    kernel = 3 if kind == "conv3" else None
    hw = 3 if kind == "dense_flatmap" else None
    cfg = L.GeneticConfig(encoding=encoding, genes=g, execution="materialise", init_scheme=scheme,
                          interaction_gain=1.3, spatial_std=0.8, encoding_gain=1.1)
    m = OneLayer(c_out, kernel, 1, encoding, cfg, padding=((0, 0), (0, 0)))
    params, got = _init_and_matrix(m, kernel, c_in, hw)
    P = 9 if (kernel or hw) else 1
    fan_in = P * c_in
    G = np.asarray(params["G"], np.float64)
    irms = 1.3 / math.sqrt(g)
    if encoding == "position":
        pre, post = (np.asarray(params["syn"][k], np.float64) for k in ("x_pre", "x_post"))
        std = 1.1 * (math.sqrt(2 / fan_in) if scheme == "balanced" else 1.0)
        pre_rms = post_rms = std
        if pre.size >= 100:  # the init really has that std (loose: few samples)
            assert np.sqrt(np.mean(pre**2)) == pytest.approx(std, rel=0.3)
    else:
        xin, post = (np.asarray(params[k], np.float64) for k in ("pop_pre", "pop_post"))
        std = 1.1 * (1 / math.sqrt(g) if scheme == "balanced" else 1.0)
        post_rms = std
        if kind == "dense":
            pre, pre_rms = xin, std
        else:
            S = np.asarray(params["syn"]["spatial"], np.float64)
            pre = np.concatenate([xin * S[p] for p in range(P)])  # offset-major
            pre_rms = std * 0.8
    s = genetic.variance_matching_scale(fan_in, g, pre_rms, irms, post_rms)
    W = s * pre @ G @ post.T
    np.testing.assert_allclose(got, W, rtol=2e-5, atol=1e-6 * np.abs(W).max())


# --------------------------------------------------------------------------------------
# Variance matching at initialisation
# --------------------------------------------------------------------------------------


class _Kernel(nn.Module):
    """Returns the generated kernel ``[9*C_in, C_out]`` of a 3x3 conv Synapse, read out
    through the layer itself: one-hot 3x3 inputs, no padding, give a 1x1 output per
    (offset, channel) row."""

    cfg: L.GeneticConfig
    c_in: int
    c_out: int

    @nn.compact
    def __call__(self):
        bank = L.GeneBank(self, self.cfg)
        enc = self.cfg.encoding
        shared = bank.inputs(enc, "pre", self.c_in, "post", self.c_out)
        layer = L.Synapse(self.c_out, kernel_size=(3, 3), encoding=enc, genetic_cfg=self.cfg,
                          padding=((0, 0), (0, 0)), name="syn")
        n = 9 * self.c_in
        x = jnp.eye(n, dtype=jnp.float32).reshape(n, 3, 3, self.c_in)
        return layer(x, shared).reshape(n, self.c_out)


@pytest.mark.parametrize("interaction_init", cfgs.INTERACTION_INITS)
@pytest.mark.parametrize("scheme", cfgs.INIT_SCHEMES)
@pytest.mark.parametrize("encoding", ["position", "neuron"])
def test_variance_matching_at_init(encoding, scheme, interaction_init):
    c_in, c_out, g = 64, 128, 16
    cfg = L.GeneticConfig(encoding=encoding, genes=g, execution="materialise", init_scheme=scheme,
                          interaction_init=interaction_init)
    mod = _Kernel(cfg, c_in, c_out)

    @_jit
    def second_moment(key):
        w = mod.apply(mod.init(key))
        return jnp.mean(w**2), jnp.mean(w)

    keys = jax.random.split(jax.random.key(7, impl="rbg"), 6)
    ms = [second_moment(k) for k in keys]
    std = math.sqrt(np.mean([float(m[0]) for m in ms]))
    target = math.sqrt(2.0 / (9 * c_in))  # Kaiming, fan_in = 3*3*64
    assert std == pytest.approx(target, rel=0.10), (std, target)
    assert abs(np.mean([float(m[1]) for m in ms])) < 0.1 * target


def test_direct_synapse_kaiming_std():
    m = OneLayer(128, 3, 1, "direct", L.GeneticConfig())
    params = _jit(m.init)(jax.random.key(0, impl="rbg"), jnp.zeros((1, 3, 3, 64)))["params"]
    assert set(params) == {"syn"} and set(params["syn"]) == {"kernel"}
    assert float(jnp.std(params["syn"]["kernel"])) == pytest.approx(math.sqrt(2 / 576), rel=0.02)


# --------------------------------------------------------------------------------------
# Spectral entropy
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("g", [4, 16])
def test_spectral_entropy_orthogonal_is_one(g):
    q, _ = np.linalg.qr(RNG.normal(size=(g, g)))
    for scale in (1.0, 3.7, 0.01):
        assert float(genetic.spectral_entropy(jnp.asarray(scale * q, jnp.float32))) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("g", [4, 16])
def test_spectral_entropy_rank_one_is_near_zero(g):
    G = np.outer(RNG.normal(size=g), RNG.normal(size=g))
    assert float(genetic.spectral_entropy(jnp.asarray(G, jnp.float32))) < 0.05


def test_spectral_entropy_hand_value():
    # singular values (2, 2, 0, 0): p = (1/2, 1/2, 0, 0), H = log 2 / log 4 = 1/2
    assert float(genetic.spectral_entropy(jnp.diag(jnp.array([2.0, -2.0, 0.0, 0.0])))) == pytest.approx(0.5, abs=1e-5)
    # singular values (3, 1): p = (3/4, 1/4), H = -(.75 ln .75 + .25 ln .25) / ln 2
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)) / math.log(2)
    assert float(genetic.spectral_entropy(jnp.array([[0.0, 3.0], [1.0, 0.0]]))) == pytest.approx(h, abs=1e-5)


# --------------------------------------------------------------------------------------
# Execution-path cost model
# --------------------------------------------------------------------------------------


def test_cost_model_hand_values():
    # conv 3x3, 16 -> 32 channels, 8x8 -> 8x8, g = 4
    assert genetic.materialised_macs(9, 16, 32, 64) == 64 * 9 * 16 * 32
    assert genetic.synthesis_macs(9, 16, 32, 4) == 4 * 4 * 32 + 9 * 16 * 4 * 32
    assert genetic.factorised_macs("position", 9, 16, 32, 4, 64, 64) == (64 * 9 * 16 * 4, 64 * 4 * 32)
    assert genetic.factorised_macs("neuron", 9, 16, 32, 4, 64, 64) == (64 * 16 * 4, 64 * (9 * 4 + 4 * 32))


def test_choose_execution_factorised_when_cheaper():
    # Wide conv, few genes: per example, materialised 8*8*9*256*256 = 37.7M MACs,
    # factorised (position) 8*8*(9*256*8 + 8*256) = 1.31M.
    assert genetic.choose_execution("position", 9, 256, 256, 8, 64, 64, examples=64) == "factorised"
    assert genetic.choose_execution("neuron", 9, 256, 256, 8, 64, 64, examples=64) == "factorised"
    # Dense 4096 -> 4096, g = 16: materialised 16.8M vs factorised 131k per example.
    assert genetic.choose_execution("position", 1, 4096, 4096, 16, 1, 1, examples=8) == "factorised"


def test_choose_execution_materialise_when_cheaper():
    # Tiny layer, many genes: per example materialised 10*10 = 100 MACs (+ 47,360 once),
    # factorised 10*64 + 64*10 = 1,280; over 1000 examples 147,360 < 1,280,000.
    assert genetic.choose_execution("position", 1, 10, 10, 64, 1, 1, examples=1000) == "materialise"
    # First conv of a CIFAR net: 3 -> 32 channels, g = 32, 32x32 positions:
    # materialised 1024*27*32 = 884,736; factorised 1024*(27*32 + 32*32) = 1,933,312.
    assert genetic.choose_execution("position", 9, 3, 32, 32, 1024, 1024, examples=256) == "materialise"


def test_choose_execution_charges_depthwise_stage_by_backend():
    # neuron conv 32 -> 64, 16x16, g = 128, batch x time 512: factorised is 13,440 MACs
    # per position against 18,432 materialised, but 1,152 of them are depthwise, which
    # XLA CPU runs ~100x slower per MAC (benchmarks/depthwise_cost.py).
    args = ("neuron", 9, 32, 64, 128, 256, 256)
    assert genetic.choose_execution(*args, examples=512, backend="gpu") == "factorised"
    assert genetic.choose_execution(*args, examples=512, backend="cpu") == "materialise"
    # position mode has no depthwise stage: the backend does not matter.
    for backend in ("cpu", "gpu"):
        assert genetic.choose_execution("position", 9, 64, 128, 8, 64, 64, examples=512, backend=backend) == "factorised"


def test_choose_execution_synthesis_cost_amortised():
    # Dense 512 -> 512, g = 400: per example materialised 512*512 = 262,144 MACs,
    # factorised 2*512*400 = 409,600, but generating W costs
    # 400*400*512 + 512*400*512 = 186.7M once. One example: 186.9M > 409,600 ->
    # factorised; 100,000 examples: 26.4G < 41.0G -> materialise.
    assert genetic.choose_execution("position", 1, 512, 512, 400, 1, 1, examples=1) == "factorised"
    assert genetic.choose_execution("position", 1, 512, 512, 400, 1, 1, examples=100_000) == "materialise"


def test_validation_errors_list_valid_names():
    with pytest.raises(ValueError, match="position"):
        encodings.get("positional")
    with pytest.raises(ValueError, match="factorised"):
        genetic.validate_execution("fast")
    with pytest.raises(ValueError, match="orthogonal"):
        L.GeneticConfig(encoding="position", genes=4, interaction_init="eye").validate()
    with pytest.raises(ValueError, match="balanced"):
        L.GeneticConfig(encoding="position", genes=4, init_scheme="xavier").validate()
    with pytest.raises(ValueError, match="genes"):
        L.GeneticConfig(encoding="neuron", genes=0).validate()


def test_spectral_entropy_of_rules_is_their_mean_and_one_gene_is_an_error():
    rng = np.random.default_rng(0)
    Gs = jnp.asarray(rng.normal(size=(2, 5, 5)), jnp.float32)
    want = np.mean([float(genetic.spectral_entropy(G)) for G in Gs])
    assert float(genetic.spectral_entropy(Gs)) == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="g >= 2"):
        genetic.spectral_entropy(jnp.ones((1, 1)))
