"""Tests of gsnn.nn.networks: parameter formula == parameter pytree for every architecture
and encoding, a hand-computed compression, output shapes, one-step learning, bad inputs,
Poisson coding and SEW residuals."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gsnn.analysis import energy
from gsnn.nn import layers as L
from gsnn.nn import networks as M
from gsnn.core.tree import count_scalars

ARCHS = sorted(M.ARCHITECTURES)
ENCODINGS = {
    "direct": L.GeneticConfig(encoding="direct"),
    "position": L.GeneticConfig(encoding="position", genes=8),
    "neuron": L.GeneticConfig(encoding="neuron", genes=8),
}


def _cfg(arch, encoding="direct", *, ends_direct=False, learnable_tau=False, width=0.125,
         num_classes=10, T=2, **kw):
    genetic = dataclasses.replace(ENCODINGS[encoding], first_direct=ends_direct, last_direct=ends_direct)
    neuron = L.NeuronConfig(learnable_tau=learnable_tau)
    return M.ModelConfig(arch=arch, num_classes=num_classes, T=T, width=width, hidden=(24, 16),
                         genetic=genetic, spiking=neuron, **kw)


def _key(seed):
    # RBG keys: XLA's RngBitGenerator compiles an init ~7x faster on CPU than threefry
    # (resnet18 at width 1/16: ~4 s against ~25 s), which dominates these tests' time.
    return jax.random.key(seed, impl="rbg")


# Unoptimised XLA code compiles ~25% faster; these tests run each program only a few times.
_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0,
                                                    "xla_llvm_disable_expensive_passes": True})


def _init(model, seed, shape):
    return _jit(lambda k: M.init_variables(model, k, shape))(_key(seed))


def _param_shapes(model, input_shape=None):
    return jax.eval_shape(lambda k: M.init_variables(model, k, input_shape), jax.random.key(0))["params"]


@functools.lru_cache(maxsize=None)
def _direct_count(arch, learnable_tau):
    return count_scalars(_param_shapes(M.build_model(_cfg(arch, learnable_tau=learnable_tau))))


# --------------------------------------------------------------------------------------
# Parameter formula against the parameter pytree
# --------------------------------------------------------------------------------------

PARAM_CASES = [
    (arch, enc, ends, tau, 1)
    for arch in ARCHS
    for enc in ENCODINGS
    for ends in ((False,) if enc == "direct" else (False, True))
    for tau in (False, True)
] + [(arch, enc, False, False, 2) for arch in ARCHS for enc in ("position", "neuron")]


@pytest.mark.parametrize("arch,encoding,ends_direct,learnable_tau,rules", PARAM_CASES)
def test_parameter_formula_matches_pytree(arch, encoding, ends_direct, learnable_tau, rules):
    cfg = _cfg(arch, encoding, ends_direct=ends_direct, learnable_tau=learnable_tau)
    model = M.build_model(dataclasses.replace(cfg, genetic=dataclasses.replace(cfg.genetic, rules=rules)))
    syn, neu, nrm = M.describe(model)
    report = energy.parameter_report(syn, neu, nrm)
    params = _param_shapes(model)
    assert report.stored_params == count_scalars(params)
    assert report.direct_params == _direct_count(arch, learnable_tau)
    # Structure of the tree: G and populations exactly where the encoding says.
    assert ("G" in params) == (encoding != "direct")
    assert any(k.startswith("pop_") for k in params) == (encoding == "neuron")
    if learnable_tau:
        assert sum(1 for v in params.values() if isinstance(v, dict) and "plif_w" in v) == len(neu)
    # First and last layers are direct exactly when asked (and the encoding is genetic).
    first, last = syn[0], syn[-1]
    assert first.real_input and last.name == "readout"
    want = "direct" if (ends_direct or encoding == "direct") else encoding
    assert first.encoding == want and last.encoding == want
    assert ("kernel" in params.get(first.name, {})) == (want == "direct")
    assert ("kernel" in params.get("readout", {})) == (want == "direct")
    if encoding != "direct":
        assert all(s.encoding == encoding for s in syn[1:-1])


def test_convnet_s_position_g16_compression_by_hand():
    """convnet_s, width 1, CIFAR 32x32x3, position encoding with g = 16."""
    cfg = M.ModelConfig(arch="convnet_s", genetic=L.GeneticConfig(encoding="position", genes=16))
    report = energy.parameter_report(*M.describe(M.build_model(cfg)))
    g = 16
    # direct: conv 3x3 3->32, 32->64, 64->128 (no bias), read-out 4*4*128 -> 10 (+ bias),
    # BN affine 2 * (32 + 64 + 128)
    direct = 9 * 3 * 32 + 9 * 32 * 64 + 9 * 64 * 128 + (2048 * 10 + 10) + 2 * (32 + 64 + 128)
    assert direct == 113962
    # position: G, then (x_pre rows + x_post rows) * g per layer, read-out bias, BN
    encoded = (g * g + (27 + 32) * g + (288 + 64) * g + (576 + 128) * g + (2048 + 10) * g + 10
               + 2 * (32 + 64 + 128))
    assert encoded == 51482
    assert report.direct_params == direct
    assert report.stored_params == encoded
    assert report.compression == pytest.approx(1 - 51482 / 113962)  # 0.5482
    assert report.interaction_params == 256 and report.population_params == 0


def test_convnet_s_neuron_g8_count_by_hand():
    """neuron mode: populations (input 3, conv1 32, conv2 64, conv3 128, out 10) x g,
    spatial codes 9 x g per conv, 16 x g for the read-out over the 4x4 map."""
    cfg = M.ModelConfig(arch="convnet_s", genetic=L.GeneticConfig(encoding="neuron", genes=8))
    model = M.build_model(cfg)
    report = energy.parameter_report(*M.describe(model))
    g = 8
    want = g * g + (3 + 32 + 64 + 128 + 10) * g + 3 * 9 * g + 16 * g + 10 + 2 * (32 + 64 + 128)
    assert report.stored_params == want == count_scalars(_param_shapes(model))


# --------------------------------------------------------------------------------------
# Output shapes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_classes", [10, 100])
@pytest.mark.parametrize("arch", ARCHS)
def test_forward_shape(arch, num_classes):
    model = M.build_model(_cfg(arch, "position", num_classes=num_classes, width=0.0625))
    shape = {"mlp": (8, 8, 3), "convnet_s": (16, 16, 3), "resnet34": (64, 64, 3)}.get(
        arch, M.default_input_shape(arch))
    B = 3
    if arch in ("mlp", "convnet_s") and num_classes == 10:  # small enough to run for real
        x = jnp.asarray(np.random.default_rng(0).normal(size=(B,) + shape), jnp.float32)
        v = _init(model, 1, shape)
        logits = _jit(model.apply)(v, x)
        assert logits.shape == (B, num_classes)
        assert bool(jnp.all(jnp.isfinite(logits)))
    else:  # shapes only
        x = jax.ShapeDtypeStruct((B,) + shape, jnp.float32)
        v = jax.eval_shape(lambda k: M.init_variables(model, k, shape), jax.random.key(1))
        out = jax.eval_shape(lambda vv, xx: model.apply(vv, xx), v, x)
        assert out.shape == (B, num_classes) and out.dtype == jnp.float32


def test_resnet34_default_input_shape():
    assert M.default_input_shape("resnet34") == (224, 224, 3)
    assert M.default_input_shape("resnet18") == (32, 32, 3)
    model = M.build_model(_cfg("resnet34", width=0.0625))
    v = jax.eval_shape(lambda k: M.init_variables(model, k), jax.random.key(0))
    out = jax.eval_shape(lambda vv: model.apply(vv, jnp.zeros((2, 224, 224, 3))), v)
    assert out.shape == (2, 10)


# --------------------------------------------------------------------------------------
# Learning: a few steps lower the loss on a fixed batch
# --------------------------------------------------------------------------------------

TRAIN_CASES = [
    ("mlp", "direct", "standard"), ("mlp", "position", "standard"), ("mlp", "neuron", "standard"),
    ("convnet_s", "direct", "standard"), ("convnet_s", "position", "standard"),
    ("convnet_s", "neuron", "standard"),
    ("resnet18", "direct", "standard"), ("resnet18", "position", "sew"),
    ("vgg11", "direct", "standard"), ("vgg11", "position", "standard"),
]
STEPS = 8


@pytest.mark.parametrize("arch,encoding,residual", TRAIN_CASES)
def test_training_steps_lower_the_loss(arch, encoding, residual):
    width = {"mlp": 1.0, "convnet_s": 0.25, "resnet18": 0.0625, "vgg11": 0.0625}[arch]
    shape = (32, 32, 3) if arch == "vgg11" else (8, 8, 3)  # VGG pools 5 times
    model = M.build_model(_cfg(arch, encoding, width=width, T=2, residual=residual))
    B = 8
    rng = np.random.default_rng(42)  # numpy data: no extra compiled programs
    x = jnp.asarray(rng.normal(size=(B,) + shape), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, size=B))
    tx = optax.adam(3e-2)

    def loss_fn(params, batch_stats):
        logits, new = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True,
                                  mutable=["batch_stats", "stats"])
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, (new["batch_stats"], new["stats"])

    @_jit  # one program: init, then STEPS Adam steps in a scan
    def train(key):
        variables = M.init_variables(model, key, shape)
        params = variables["params"]

        def step(carry, _):
            params, batch_stats, opt_state = carry
            (loss, (batch_stats, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch_stats)
            updates, opt_state = tx.update(grads, opt_state, params)
            leaf_norms = jax.tree.map(jnp.linalg.norm, grads)
            return (optax.apply_updates(params, updates), batch_stats, opt_state), (loss, leaf_norms, stats)

        carry = (params, variables["batch_stats"], tx.init(params))
        _, (losses, leaf_norms, stats) = jax.lax.scan(step, carry, None, length=STEPS)
        return losses, leaf_norms, stats

    losses, leaf_norms, stats = train(_key(7))
    losses = np.asarray(losses)
    # Every parameter leaf receives a finite gradient at the first step: the encodings,
    # G, spatial codes, BN and the read-out are all connected to the loss.
    for path, n in jax.tree_util.tree_leaves_with_path(leaf_norms):
        assert np.isfinite(n[0]) and n[0] > 0, jax.tree_util.keystr(path)
    assert np.all(np.isfinite(losses))
    # Tiny spiking nets on random labels learn noisily: compare the last three steps'
    # mean with the start (ln 10 = 2.30 for chance).
    assert np.mean(losses[-3:]) < losses[0] - 0.05, losses
    rates = energy.firing_rates(jax.tree.map(lambda a: a[0], stats))
    assert rates and all(0.0 <= r <= 1.0 for r in rates.values())
    # SEW adds a LIF after every projection shortcut; standard residuals have none.
    assert any(k.endswith("_down_lif") for k in rates) == (residual == "sew" and arch.startswith("resnet"))


# --------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------


def test_unknown_architecture_lists_valid():
    with pytest.raises(ValueError, match="unknown architecture") as e:
        M.build_model(M.ModelConfig(arch="resnet50"))
    for a in M.ARCHITECTURES:
        assert a in str(e.value)


def test_bad_images_raise_clear_errors():
    model = M.build_model(_cfg("mlp"))
    v = jax.eval_shape(lambda k: M.init_variables(model, k, (8, 8, 3)), jax.random.key(0))
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        jax.eval_shape(model.apply, v, jnp.zeros((8, 8, 3)))
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        jax.eval_shape(model.apply, v, jnp.zeros((1, 2, 8, 8, 3)))
    with pytest.raises(ValueError, match="float.*uint8"):
        jax.eval_shape(model.apply, v, jnp.zeros((2, 8, 8, 3), jnp.uint8))
    with pytest.raises(ValueError, match="float.*int32"):
        jax.eval_shape(model.apply, v, jnp.zeros((2, 8, 8, 3), jnp.int32))


@pytest.mark.parametrize("encoding", ["position", "neuron"])
@pytest.mark.parametrize("genes", [0, -3])
def test_genetic_encoding_needs_positive_genes(encoding, genes):
    cfg = M.ModelConfig(genetic=L.GeneticConfig(encoding=encoding, genes=genes))
    with pytest.raises(ValueError, match="genes"):
        M.build_model(cfg)


@pytest.mark.parametrize("T", [0, -1])
def test_time_steps_must_be_positive(T):
    with pytest.raises(ValueError, match="T"):
        M.build_model(M.ModelConfig(T=T))


def test_other_bad_model_settings():
    with pytest.raises(ValueError, match="poisson"):
        M.build_model(M.ModelConfig(input_coding="rate"))
    with pytest.raises(ValueError, match="sew"):
        M.build_model(M.ModelConfig(residual="dense"))
    with pytest.raises(ValueError, match="num_classes"):
        M.build_model(M.ModelConfig(num_classes=1))
    with pytest.raises(ValueError, match="width"):
        M.build_model(M.ModelConfig(width=0.0))


# --------------------------------------------------------------------------------------
# Poisson coding, SEW residual
# --------------------------------------------------------------------------------------


def test_poisson_input_coding():
    model = M.build_model(_cfg("convnet_s", "position", input_coding="poisson", width=0.25, T=4))
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(3, 16, 16, 3)), jnp.float32)
    v = _init(model, 1, (16, 16, 3))
    run = _jit(lambda k: model.apply(v, x, rngs={"coding": k}, mutable=["stats"]))
    (out1, s1), (out2, s2), (out3, s3) = (run(_key(k)) for k in (2, 2, 3))
    assert out1.shape == (3, 10) and bool(jnp.all(jnp.isfinite(out1)))
    np.testing.assert_array_equal(out1, out2)
    # The first synapse reads Poisson spikes with rate ~ mean(x) = 0.5; other keys give
    # other spikes.
    d1, d3 = energy.input_densities(s1["stats"]), energy.input_densities(s3["stats"])
    assert d1["conv1_conv"] == pytest.approx(float(jnp.mean(x)), abs=0.02)
    assert d1["conv1_conv"] != d3["conv1_conv"]
    assert energy.firing_rates(s1["stats"])["conv1"] > 0
    # The first synapse reads spikes every step (not a static real-valued image), so the
    # energy accounting counts accumulates for it.
    syn, _, _ = M.describe(model, (16, 16, 3))
    assert syn[0].runs_per_step == 1 and not syn[0].real_input
    direct_syn, _, _ = M.describe(M.build_model(_cfg("convnet_s", "position", width=0.25)), (16, 16, 3))
    assert direct_syn[0].runs_per_step == 0 and direct_syn[0].real_input


def test_sew_residual_resnet18():
    """Structure only (tracing); a SEW resnet18 trains in test_training_steps_lower_the_loss."""
    shape = (8, 8, 3)
    sew = M.describe(M.build_model(_cfg("resnet18", "position", residual="sew", width=0.0625)), shape)
    std = M.describe(M.build_model(_cfg("resnet18", "position", width=0.0625)), shape)
    sew_lifs = {n.name for n in sew[1]}
    std_lifs = {n.name for n in std[1]}
    # stages 2-4 start with a strided projection shortcut, each followed by its own LIF
    assert sew_lifs - std_lifs == {"layer2_1_down_lif", "layer3_1_down_lif", "layer4_1_down_lif"}
    assert [s.name for s in sew[0]] == [s.name for s in std[0]]
