"""Tests of the genome, the fitness operators and the STE loop (gsnn.evolution: genome, fitness, loop)."""
import dataclasses
import json
import math
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gsnn import config as cfgs
from gsnn import data as D
from gsnn import evolution as EV
from gsnn import evolution as EVO
from gsnn.evolution import signal as SG
from gsnn.runtime.records import to_jsonable
from gsnn.evolution import genome as evolution_genome
from gsnn.evolution import loop as evolution_loop
from gsnn.evolution import fitness as F
from gsnn.evolution import genome as GN
from gsnn.nn import networks as M

REPO = pathlib.Path(__file__).resolve().parents[1]


#: The evolve sections of :func:`tiny_config` (each a dict of its fields) before a test's changes.
TINY_EVOLVE = dict(search=dict(population=4, generations=3), inner=dict(steps=3, batch=16, val_size=40),
                   wiring=dict(preserve_scale=False), fitness=dict(lambda_s=0.1, lambda_t=0.1, signal_every=0),
                   race=dict(), evaluation=dict(shard=False, chunk_size=0))


def tiny_config(encoding="position", interaction="compact", **evolve):
    """A tiny evolution config; ``evolve`` maps a section name (``search``, ``race``, ...)
    to a dict of the fields to change in it, or a top-level field to its value."""
    sections = {name: dict(fields) for name, fields in TINY_EVOLVE.items()}
    sections["wiring"]["interaction"] = interaction
    top = {}
    for key, value in evolve.items():
        if key in sections:
            sections[key].update(value)
        else:
            top[key] = value
    kinds = dict(search=cfgs.SearchConfig, inner=cfgs.InnerLoopConfig, wiring=cfgs.WiringGenomeConfig,
                 fitness=cfgs.FitnessConfig, race=cfgs.RaceConfig, evaluation=cfgs.EvaluationConfig)
    return cfgs.Config(
        name="tiny_evolve",
        model=M.ModelConfig(arch="mlp", hidden=(16,), T=2,
                            genetic=cfgs.GeneticConfig(encoding=encoding, genes=4)),
        train=cfgs.TrainConfig(learning_rate=0.05, epochs=1, batch_size=16, log_every=0),
        evolve=cfgs.EvolveConfig(**{k: kinds[k](**v) for k, v in sections.items()}, **top),
    ).validate()


@pytest.fixture(scope="module")
def tiny_data():
    return D.load_dataset("demo").subset(train_per_class=12, test_per_class=4, seed=0)


@pytest.fixture(scope="module")
def tiny_problem(tiny_data):
    return EV.make_problem(tiny_config(), tiny_data)


# --------------------------------------------------------------------------------------
# Genome
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["position", "neuron"])
@pytest.mark.parametrize("interaction", ["full", "compact"])
@pytest.mark.parametrize("evolve_encodings", [False, True])
def test_default_genome_rebuilds_the_random_initialisation(encoding, interaction, evolve_encodings):
    cfg = tiny_config(encoding, interaction, wiring=dict(full_encodings=evolve_encodings, per_gene_stats=True))
    model = M.build_model(cfg.model)
    spec = GN.genome_spec(cfg.model.genetic, M.describe(model)[0], cfg.evolve)
    ref = M.init_variables(model, jax.random.key(0))["params"]
    genome = GN.default_genome(spec, ref)
    rebuilt = GN.build_params(spec, genome, ref, ref["G"])
    for a, b in zip(jax.tree_util.tree_leaves(rebuilt), jax.tree_util.tree_leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert jax.tree_util.tree_structure(rebuilt) == jax.tree_util.tree_structure(ref)
    expected = {"position": 2 * 2, "neuron": 3}[encoding]  # 2 layers x (pre, post) / 3 populations
    assert len(spec.matrices) == expected


def test_genome_statistics_act_as_documented():
    cfg = tiny_config("neuron", "full", wiring=dict(per_gene_stats=False))
    model = M.build_model(cfg.model)
    spec = GN.genome_spec(cfg.model.genetic, M.describe(model)[0], cfg.evolve)
    base = M.init_variables(model, jax.random.key(3))["params"]
    genome = GN.default_genome(spec, base)
    mat = spec.matrices[0]
    genome["mean"][mat.key] = jnp.asarray([0.5])
    genome["log_std"][mat.key] = jnp.asarray([np.log(2.0)])
    params = GN.build_params(spec, genome, base, base["G"])
    expected = mat.std * 0.5 + 2.0 * base[mat.keypath[0]]
    np.testing.assert_allclose(params[mat.keypath[0]], expected, rtol=1e-6)


def test_genome_gains_scale_one_layer_each():
    """With wiring.gains, the zero genome is still the random initialisation; a log-gain
    of log 2 on one layer doubles that layer's x_pre rows (so its W), after preserve_scale,
    and leaves every other parameter as it was."""
    cfg = tiny_config("position", "compact", wiring=dict(gains=True, preserve_scale=True))
    model = M.build_model(cfg.model)
    synapses = M.describe(model)[0]
    spec = GN.genome_spec(cfg.model.genetic, synapses, cfg.evolve)
    assert spec.gains == tuple(f"{s.name}/x_pre" for s in synapses if s.encoding == "position")
    base = M.init_variables(model, jax.random.key(4))["params"]
    genome = GN.default_genome(spec, base)
    plain = GN.default_genome(GN.genome_spec(cfg.model.genetic, synapses, cfgs.replace(
        cfg.evolve, **{"wiring.gains": False})), base)
    assert GN.genome_size(genome) == GN.genome_size(plain) + len(spec.gains)
    for a, b in zip(jax.tree_util.tree_leaves(GN.build_params(spec, genome, base, base["G"])),
                    jax.tree_util.tree_leaves(base)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    key = spec.gains[0]
    genome["log_gain"][key] = jnp.asarray(np.log(2.0))
    built = GN.build_params(spec, genome, base, base["G"])
    flat_b, flat_0 = dict(jax.tree_util.tree_flatten_with_path(built)[0]), dict(jax.tree_util.tree_flatten_with_path(base)[0])
    for path, leaf in flat_b.items():
        name = "/".join(str(getattr(k, "key", k)) for k in path)
        np.testing.assert_allclose(leaf, (2.0 if name == key else 1.0) * flat_0[path], rtol=1e-6, atol=1e-7)
    assert "log-gains" in GN.genome_summary(spec, genome)
    neuron = tiny_config("neuron", "compact", wiring=dict(gains=True))
    with pytest.raises(ValueError, match="wiring.gains needs model.genetic.encoding='position'"):
        GN.genome_spec(neuron.model.genetic, M.describe(M.build_model(neuron.model))[0], neuron.evolve)


def _train_logits(net, params, batch_stats, x):
    """Logits of ``net`` on ``x`` in training mode (batch statistics of ``x``)."""
    out, _ = net.apply({"params": params, "batch_stats": batch_stats}, x, train=True, mutable=["batch_stats"])
    return np.asarray(out)


@pytest.mark.parametrize("encoding", ["position", "neuron"])
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_genome_drive_is_a_per_layer_threshold(encoding, reset):
    """A log-drive d on every batch-norm layer gives the logits of the same network with
    threshold v_th * exp(-d) (the spikes themselves change: d is not a no-op); d on one
    layer scales that layer's BN scale and shift only; the zero genome is the init."""
    cfg = tiny_config(encoding, "compact", wiring=dict(drive=True, preserve_scale=True))
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, hidden=(16, 12)))
    lif_cfg = dataclasses.replace(cfg.model.spiking.lif, reset=reset)

    def network(v_th):
        spiking = dataclasses.replace(cfg.model.spiking, lif=dataclasses.replace(lif_cfg, v_th=v_th))
        return M.build_model(dataclasses.replace(cfg.model, spiking=spiking).validate())

    model = network(1.0)
    synapses, _, norms = M.describe(model)
    spec = GN.genome_spec(cfg.model.genetic, synapses, cfg.evolve, norms)
    assert spec.drives == ("fc1_bn", "fc2_bn")
    variables = M.init_variables(model, jax.random.key(5))
    base = variables["params"]
    genome = GN.default_genome(spec, base)
    for a, b in zip(jax.tree_util.tree_leaves(GN.build_params(spec, genome, base, base["G"])),
                    jax.tree_util.tree_leaves(base)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    base = jax.tree_util.tree_map(lambda a: a, base)
    for name in spec.drives:  # a non-zero shift, so that scaling it matters
        base[name]["bn"]["bias"] = jnp.linspace(-0.3, 0.4, base[name]["bn"]["bias"].shape[0])
    x = jax.random.uniform(jax.random.key(6), (8, 32, 32, 3)) * 3.0
    logits = lambda net, params: _train_logits(net, params, variables["batch_stats"], x)

    d = 0.4
    genome["log_drive"] = {name: jnp.asarray(d) for name in spec.drives}
    driven = logits(model, GN.build_params(spec, genome, base, base["G"]))
    np.testing.assert_allclose(driven, logits(network(float(np.exp(-d))), base), rtol=1e-4, atol=1e-5)
    assert np.abs(driven - logits(model, base)).max() > 1e-2
    genome["log_drive"] = {name: jnp.asarray(d if name == "fc2_bn" else 0.0) for name in spec.drives}
    built = GN.build_params(spec, genome, base, base["G"])
    for name in spec.drives:
        for k in ("scale", "bias"):
            np.testing.assert_allclose(built[name]["bn"][k], (np.exp(d) if name == "fc2_bn" else 1.0)
                                       * np.asarray(base[name]["bn"][k]), rtol=1e-6)
    assert "2 layer log-drives" in GN.genome_summary(spec, genome)
    with pytest.raises(ValueError, match="wiring.drive needs the network's batch-norm layers"):
        GN.genome_spec(cfg.model.genetic, synapses, cfg.evolve)


def test_genome_tau_sets_each_layers_time_constant():
    """A log time-constant offset d on every PLIF layer gives the logits of the network
    with the fixed time constant 1 + (tau0 - 1) e^d (not a no-op); on one layer it moves
    that layer's PLIF parameter only; the zero genome is the init; a network without
    PLIF layers is refused with what to set."""
    cfg = tiny_config("position", "compact", wiring=dict(tau=True))
    tau0 = 2.0

    def network(tau, learnable):
        spiking = dataclasses.replace(cfg.model.spiking, tau=tau, learnable_tau=learnable)
        return M.build_model(dataclasses.replace(cfg.model, hidden=(16, 12), spiking=spiking).validate())

    model = network(tau0, True)
    synapses, neurons, norms = M.describe(model)
    spec = GN.genome_spec(cfg.model.genetic, synapses, cfg.evolve, norms, neurons)
    assert len(spec.taus) == 2
    variables = M.init_variables(model, jax.random.key(5))
    base = variables["params"]
    genome = GN.default_genome(spec, base)
    for a, b in zip(jax.tree_util.tree_leaves(GN.build_params(spec, genome, base, base["G"])),
                    jax.tree_util.tree_leaves(base)):
        np.testing.assert_array_equal(a, b)
    x = jax.random.uniform(jax.random.key(6), (8, 32, 32, 3)) * 3.0
    logits = lambda net, params: _train_logits(net, params, variables["batch_stats"], x)

    d = 0.7
    genome["log_tau"] = {name: jnp.asarray(d) for name in spec.taus}
    built = GN.build_params(spec, genome, base, base["G"])
    strip = lambda v: {kk: vv for kk, vv in v.items() if kk != "plif_w"} if isinstance(v, dict) else v
    fixed_params = {k: strip(v) for k, v in base.items() if not (isinstance(v, dict) and set(v) == {"plif_w"})}
    slow = logits(network(1.0 + (tau0 - 1.0) * float(np.exp(d)), False), fixed_params)
    np.testing.assert_allclose(logits(model, built), slow, rtol=1e-4, atol=1e-5)
    assert np.abs(slow - logits(model, base)).max() > 1e-2
    first = spec.taus[0]
    genome["log_tau"] = {name: jnp.asarray(d if name == first else 0.0) for name in spec.taus}
    built = GN.build_params(spec, genome, base, base["G"])
    for name in spec.taus:
        leak = 1.0 / (1.0 + np.exp(-float(built[name]["plif_w"])))  # 1/tau = sigmoid(w)
        assert leak == pytest.approx(1.0 / (1.0 + (tau0 - 1.0) * np.exp(d if name == first else 0.0)), rel=1e-6)
    assert "2 layer log time constants" in GN.genome_summary(spec, genome)
    plain = network(tau0, False)
    with pytest.raises(ValueError, match="wiring.tau .* model.spiking.learnable_tau=true"):
        GN.genome_spec(cfg.model.genetic, M.describe(plain)[0], cfg.evolve, M.describe(plain)[2],
                       M.describe(plain)[1])


def test_fixed_base_scores_every_genome_on_one_draw(tiny_data):
    """With evolve.fixed_base an individual's score does not depend on the generation's
    key (direct input coding and no augmentation: nothing else in the inner loop is
    random), and the final networks are built on that same draw whatever key the training
    passes; without it, another key is another base network and another score."""
    plain = lambda cfg: dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, augment=False))
    xb, yb = EV.generation_batches(EV.make_problem(plain(tiny_config()), tiny_data), 0)
    fixed = EV.make_problem(plain(tiny_config(fixed_base=True)), tiny_data)
    free = EV.make_problem(plain(tiny_config()), tiny_data)
    assert free.base_key is None
    genome = GN.default_genome(fixed.spec, fixed.reference_params)
    genome["log_std"] = jax.tree_util.tree_map(lambda a: a + 0.2, genome["log_std"])
    score = lambda pb, seed: float(pb.evaluate_one(genome, jax.random.key(seed), xb, yb, 0)["val_loss"])
    assert score(fixed, 1) == score(fixed, 2)
    assert score(free, 1) != score(free, 2)
    init = EVO.genome_init_fn(fixed, genome)
    a, b = init(jax.random.key(3)), init(jax.random.key(4))
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(x, y)
    base = M.init_variables(fixed.steps.model, fixed.base_key, tiny_data.image_shape)["params"]
    expected = GN.build_params(fixed.spec, genome, base, fixed.reference_G)
    for x, y in zip(jax.tree_util.tree_leaves(a["params"]), jax.tree_util.tree_leaves(expected)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("encoding", ["position", "neuron"])
def test_preserve_scale_keeps_every_factor_at_its_random_scale(encoding):
    cfg = tiny_config(encoding, "compact", wiring=dict(preserve_scale=True, per_gene_stats=True))
    model = M.build_model(cfg.model)
    spec = GN.genome_spec(cfg.model.genetic, M.describe(model)[0], cfg.evolve)
    base = M.init_variables(model, jax.random.key(1))["params"]
    genome = GN.default_genome(spec, base)
    for a, b in zip(jax.tree_util.tree_leaves(GN.build_params(spec, genome, base, base["G"])),
                    jax.tree_util.tree_leaves(base)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)  # the zero genome is still the init
    leaves, tree = jax.tree_util.tree_flatten(genome)
    keys = jax.random.split(jax.random.key(2), len(leaves))
    wild = jax.tree_util.tree_unflatten(tree, [l + 2.0 * jax.random.normal(k, l.shape) for l, k in zip(leaves, keys)])
    built = GN.build_params(spec, wild, base, base["G"])
    rms = lambda x: float(jnp.sqrt(jnp.mean(x * x)))
    assert float(jnp.linalg.norm(built["G"])) == pytest.approx(float(jnp.linalg.norm(base["G"])), rel=1e-5)
    assert not np.allclose(built["G"], base["G"], atol=1e-3)
    for mat in spec.matrices:
        new, old = evolution_genome._get(built, mat.keypath), evolution_genome._get(base, mat.keypath)
        assert rms(new) == pytest.approx(rms(old), rel=1e-5)
        assert not np.allclose(new, old, atol=1e-3)


def test_build_is_deterministic_and_differentiable(tiny_problem):
    p = tiny_problem
    genome = GN.default_genome(p.spec, p.reference_params)
    base = M.init_variables(p.steps.model, jax.random.key(5))["params"]
    a = GN.build_params(p.spec, genome, base, p.reference_G)
    b = GN.build_params(p.spec, genome, base, p.reference_G)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(x, y)

    def total(g):
        params = GN.build_params(p.spec, g, base, p.reference_G)
        return sum(jnp.sum(l ** 2) for l in jax.tree_util.tree_leaves(params))

    grads = jax.grad(total)(genome)
    for path, leaf in jax.tree_util.tree_leaves_with_path(grads):
        assert np.all(np.isfinite(leaf)), path
    assert float(jnp.abs(grads["interaction"]["log_scale"])) > 0
    assert all(float(jnp.abs(v).sum()) > 0 for v in grads["log_std"].values())
    # finite differences on one smooth direction (log_scale of the compact G0)
    eps = 1e-3
    plus = jax.tree_util.tree_map(lambda x: x, genome)
    plus["interaction"] = dict(genome["interaction"], log_scale=genome["interaction"]["log_scale"] + eps)
    minus = jax.tree_util.tree_map(lambda x: x, genome)
    minus["interaction"] = dict(genome["interaction"], log_scale=genome["interaction"]["log_scale"] - eps)
    fd = (total(plus) - total(minus)) / (2 * eps)
    np.testing.assert_allclose(fd, grads["interaction"]["log_scale"], rtol=2e-2)


def test_direct_model_cannot_be_evolved():
    cfg = dataclasses.replace(tiny_config(), model=M.ModelConfig(arch="mlp", hidden=(16,)))
    with pytest.raises(ValueError, match="genetically encoded"):
        GN.genome_spec(cfg.model.genetic, M.describe(M.build_model(cfg.model))[0], cfg.evolve)


def test_one_gene_with_the_spectral_entropy_is_refused_at_build(tiny_data):
    """H_S divides by log g: with g = 1 every individual would score non-finite and count
    as diverged; the run is refused before any generation instead."""
    one = lambda op: dataclasses.replace(tiny_config(fitness=dict(spatial_operator=op)), model=M.ModelConfig(
        arch="mlp", hidden=(16,), T=2, genetic=cfgs.GeneticConfig(encoding="position", genes=1))).validate()
    cfg = one("spatial_entropy")  # a valid config: training with g = 1 is fine
    with pytest.raises(ValueError, match=r"evolve.fitness.spatial_operator='spatial_entropy' needs model.genetic.genes "
                                         r">= 2 .*got genes=1"):
        EV.make_problem(cfg, tiny_data)
    with pytest.raises(ValueError, match="genes >= 2"):
        GN.genome_spec(cfg.model.genetic, M.describe(M.build_model(cfg.model))[0], cfg.evolve)
    spec = GN.genome_spec(one("effective_rank").model.genetic,
                          M.describe(M.build_model(cfg.model))[0], one("effective_rank").evolve)
    assert spec.genes == 1


def test_inner_learning_rate_none_means_the_train_rate_and_zero_is_rejected():
    from gsnn.evolution.problem import _inner_train_config

    cfg = tiny_config()  # train.learning_rate=0.05, evolve.inner.learning_rate None (the default)
    assert cfg.evolve.inner.learning_rate is None
    assert _inner_train_config(cfg).train.learning_rate == 0.05
    assert _inner_train_config(tiny_config(inner=dict(learning_rate=0.2))).train.learning_rate == 0.2
    for bad in (0.0, -0.1):
        with pytest.raises(ValueError, match="evolve.inner.learning_rate must be > 0, or None"):
            tiny_config(inner=dict(learning_rate=bad))


# --------------------------------------------------------------------------------------
# Fitness operators
# --------------------------------------------------------------------------------------


def _trace(G, losses, acc=0.5):
    return F.InnerLoopTrace(G, G, jnp.asarray(losses, jnp.float32), jnp.asarray(acc, jnp.float32))


def test_spatial_entropy_orthogonal_is_one_and_rank_one_is_near_zero():
    Q = jnp.linalg.qr(jax.random.normal(jax.random.key(0), (16, 16)))[0]
    assert float(F.spatial_entropy(_trace(3.0 * Q, [1.0]))) == pytest.approx(1.0, abs=1e-5)
    u = jax.random.normal(jax.random.key(1), (16, 1))
    assert float(F.spatial_entropy(_trace(u @ u.T, [1.0]))) < 0.05
    assert float(F.effective_rank(_trace(Q, [1.0]))) == pytest.approx(1.0, abs=1e-5)


def test_effective_rank_is_the_exponential_entropy_of_the_energy_spectrum_by_hand():
    """``exp(H(p)) / g`` with ``p = sigma^2 / sum sigma^2`` (not ``sigma``), for a ``G``
    with singular values (2, 1) behind two rotations, and the mean over rules."""
    def by_hand(p):
        return math.exp(-sum(q * math.log(q) for q in p)) / len(p)

    rot = lambda a: np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    G = rot(0.7) @ np.diag([2.0, 1.0]) @ rot(-1.9)  # singular values 2, 1
    want = by_hand([4 / 5, 1 / 5])  # sigma^2 = 4, 1: 0.8246 (sigma itself would give 0.9449)
    assert float(F.effective_rank(_trace(jnp.asarray(G, jnp.float32), [1.0]))) == pytest.approx(want, rel=1e-5)
    both = jnp.asarray(np.stack([G, np.diag([3.0, 3.0])]), jnp.float32)  # the second: equal values, 1
    assert float(F.effective_rank(_trace(both, [1.0]))) == pytest.approx((want + 1.0) / 2, rel=1e-5)


def test_learning_curve_area_uses_the_mean_loss_by_hand():
    """``1 - mean(losses) / L_start``, ``L_start`` the mean of the first ``max(1, K // 8)``."""
    losses = [2.0, 1.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # K = 8: L_start = 2; mean 9.5 / 8
    assert float(F.learning_curve_area(_trace(jnp.eye(2), losses))) == pytest.approx(1 - 9.5 / 16, rel=1e-6)
    losses = [2.0, 3.0] + [1.0] * 14  # K = 16: L_start = 2.5; mean 19 / 16
    assert float(F.learning_curve_area(_trace(jnp.eye(2), losses))) == pytest.approx(1 - 19 / 16 / 2.5, rel=1e-6)


def test_every_generation_draws_its_own_minibatches_from_the_training_split(tiny_problem):
    """Generation ``t``'s ``K`` minibatches: from the training split, labels with their
    images, deterministic in (seed, t), and another draw for every generation."""
    p = tiny_problem
    label_of = {im.tobytes(): int(y) for im, y in zip(p.train_split.train_images, p.train_split.train_labels)}
    draws = [EV.generation_batches(p, g) for g in range(3)]
    for xb, yb in draws:
        assert xb.shape[:2] == yb.shape == (3, 16)
        assert [label_of[im.tobytes()] for im in xb.reshape((-1,) + xb.shape[2:])] == yb.ravel().tolist()
    order = [[im.tobytes() for im in xb.reshape((-1,) + xb.shape[2:])] for xb, _ in draws]
    assert order[0] != order[1] and order[1] != order[2] and order[0] != order[2]
    again = EV.generation_batches(p, 1)
    np.testing.assert_array_equal(again[0], draws[1][0])
    np.testing.assert_array_equal(again[1], draws[1][1])


def test_compact_interaction_is_the_documented_formula_in_numpy():
    """``G0 = exp(log_scale) (Q + identity I + u v^T / sqrt(g))`` (gsnn.evolution.genome)."""
    cfg = tiny_config("position", "compact")  # g = 4, rank 2
    spec = GN.genome_spec(cfg.model.genetic, M.describe(M.build_model(cfg.model))[0], cfg.evolve)
    rng = np.random.default_rng(0)
    Q = np.linalg.qr(rng.normal(size=(4, 4)))[0]
    u, v = rng.normal(size=(4, 2)), rng.normal(size=(4, 2))
    genome = {"interaction": {"log_scale": jnp.asarray(0.3), "identity": jnp.asarray(-0.2),
                              "u": jnp.asarray(u, jnp.float32), "v": jnp.asarray(v, jnp.float32)}}
    got = np.asarray(evolution_genome.interaction_matrix(spec, genome, jnp.asarray(Q, jnp.float32)))
    want = math.exp(0.3) * (Q - 0.2 * np.eye(4) + u @ v.T / 2.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_temporal_difference_definition():
    G = jnp.eye(4)
    assert float(F.temporal_difference(_trace(G, [2.0] * 16))) == 0.0
    losses = np.linspace(2.0, 1.0, 16)  # window = 16 // 8 = 2 steps at each end
    start, end = losses[:2].mean(), losses[-2:].mean()
    assert float(F.temporal_difference(_trace(G, losses))) == pytest.approx((start - end) / start, rel=1e-6)
    assert float(F.learning_curve_area(_trace(G, [2.0] * 8))) == pytest.approx(0.0, abs=1e-7)


def test_make_fitness_takes_the_operators_and_schedules_as_values():
    tr = _trace(jnp.eye(4), np.linspace(2.0, 1.0, 8), acc=0.3)
    fit = F.make_fitness(lambda t: jnp.asarray(0.5), lambda t: jnp.asarray(0.25),
                         optax.linear_schedule(0.2, 0.0, 10), optax.constant_schedule(0.4))
    out = fit(tr, jnp.asarray(5))  # lambda_s halfway down: 0.1
    assert float(out["fitness"]) == pytest.approx(0.3 + 0.1 * 0.5 + 0.4 * 0.25, rel=1e-6)
    assert float(out["lambda_s"]) == pytest.approx(0.1) and not bool(out["diverged"])
    by_name = F.fitness(tr, jnp.asarray(5), lambda_s=optax.constant_schedule(0.2),
                        lambda_t=optax.constant_schedule(0.5))
    by_value = F.make_fitness(F.spatial_entropy, F.temporal_difference, optax.constant_schedule(0.2),
                              optax.constant_schedule(0.5))(tr, jnp.asarray(5))
    assert {k: float(v) for k, v in by_name.items()} == {k: float(v) for k, v in by_value.items()}


def test_fitness_combines_terms_with_schedules_and_flags_divergence():
    G = jnp.eye(4)
    tr = _trace(G, np.linspace(2.0, 1.0, 8), acc=0.3)
    out = F.fitness(tr, jnp.asarray(0), lambda_s=optax.constant_schedule(0.2),
                    lambda_t=optax.constant_schedule(0.5))
    # by hand: G = I has equal singular values, H_S = 1; K = 8 steps, window 1:
    # D_T = (2 - 1) / 2 = 0.5; F = 0.3 + 0.2 * 1 + 0.5 * 0.5
    assert float(out["spatial"]) == pytest.approx(1.0, rel=1e-6)
    assert float(out["temporal"]) == pytest.approx(0.5, rel=1e-6)
    assert float(out["fitness"]) == pytest.approx(0.75, rel=1e-6)
    off = F.fitness(tr, jnp.asarray(0), spatial="none", temporal="none",
                    lambda_s=optax.constant_schedule(0.2), lambda_t=optax.constant_schedule(0.5))
    assert float(off["fitness"]) == pytest.approx(0.3, rel=1e-6)
    bad = F.fitness(_trace(G, [2.0, np.nan, 1.0]), jnp.asarray(0))
    assert bool(bad["diverged"]) and float(bad["fitness"]) == -np.inf
    sched = F.lambda_schedule("cosine", 0.1, 10)
    assert float(sched(0)) == pytest.approx(0.1) and float(sched(10)) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="valid"):
        F.lambda_schedule("nope", 0.1, 10)


# --------------------------------------------------------------------------------------
# Population evaluation
# --------------------------------------------------------------------------------------


def test_vmapped_population_equals_individual_evaluations(tiny_problem):
    p = tiny_problem
    mean = GN.default_genome(p.spec, p.reference_params)
    leaves, tree = jax.tree_util.tree_flatten(mean)
    keys = jax.random.split(jax.random.key(9), len(leaves))
    pop = jax.tree_util.tree_unflatten(tree, [l[None] + 0.2 * jax.random.normal(k, (4,) + l.shape)
                                              for l, k in zip(leaves, keys)])
    xb, yb = (jnp.asarray(a) for a in EV.generation_batches(p, 0))
    key, gen = jax.random.key(4), jnp.asarray(0, jnp.int32)
    together = p.evaluate_population(pop, key, xb, yb, gen)
    for i in range(4):
        alone = p.evaluate_one(jax.tree_util.tree_map(lambda a: a[i], pop), key, xb, yb, gen)
        for name in ("fitness", "val_accuracy", "spatial", "temporal", "loss_start", "loss_end"):
            np.testing.assert_allclose(together[name][i], alone[name], rtol=2e-4, atol=1e-5, err_msg=name)
    assert len(set(np.round(np.asarray(together["loss_end"]), 5))) > 1  # individuals really differ


def test_auto_chunk_size_is_one_at_a_time_on_a_single_cpu():
    assert EV.resolve_chunk_size(cfgs.EvolveConfig()) == (1 if jax.default_backend() == "cpu" else 0)
    assert EV.resolve_chunk_size(cfgs.EvolveConfig(search=cfgs.SearchConfig(population=16),
                                                   evaluation=cfgs.EvaluationConfig(chunk_size=4))) == 4
    assert EV.resolve_chunk_size(cfgs.EvolveConfig(evaluation=cfgs.EvaluationConfig(chunk_size=0))) == 0


@pytest.mark.parametrize("chunk_size", [2, -1])
def test_chunked_population_equals_unchunked(tiny_data, chunk_size):
    full = EV.make_problem(tiny_config(), tiny_data)
    chunked = EV.make_problem(tiny_config(evaluation=dict(chunk_size=chunk_size)), tiny_data)
    mean = GN.default_genome(full.spec, full.reference_params)
    pop = jax.tree_util.tree_map(lambda l: jnp.stack([l, l + 0.1, l - 0.1, l * 0.5]), mean)
    xb, yb = (jnp.asarray(a) for a in EV.generation_batches(full, 1))
    args = (jax.random.key(1), xb, yb, jnp.asarray(1, jnp.int32))
    a = full.evaluate_population(pop, *args)
    b = chunked.evaluate_population(pop, *args)
    np.testing.assert_allclose(a["fitness"], b["fitness"], rtol=1e-5, atol=1e-6)


SHARD_SCRIPT = textwrap.dedent("""
    import os, json, sys
    import jax, jax.numpy as jnp, numpy as np
    assert len(jax.devices()) == 4, jax.devices()
    sys.path.insert(0, {tests!r})
    from test_evolve import tiny_config
    from gsnn import data as D
    from gsnn import evolution as EV
    from gsnn.evolution import genome as GN
    ds = D.load_dataset("demo").subset(train_per_class=12, test_per_class=4, seed=0)
    out = {{}}
    for shard in (False, True):
        p = EV.make_problem(tiny_config(evaluation=dict(shard=shard)), ds)
        mean = GN.default_genome(p.spec, p.reference_params)
        pop = jax.tree_util.tree_map(lambda l: jnp.stack([l, l + 0.1, l - 0.1, l * 0.5]), mean)
        xb, yb = (jnp.asarray(a) for a in EV.generation_batches(p, 0))
        m = p.evaluate_population(pop, jax.random.key(4), xb, yb, jnp.asarray(0, jnp.int32))
        if shard:
            out["n_shards"] = len(m["fitness"].sharding.device_set)
        out[str(shard)] = np.asarray(m["fitness"]).tolist()
    # a population of 5 on 4 devices: padded to 8, the 5 results as unsharded
    pop5 = jax.tree_util.tree_map(lambda l: jnp.concatenate([l, l[:1] * 0.25]), pop)
    m5 = p.evaluate_population(pop5, jax.random.key(4), xb, yb, jnp.asarray(0, jnp.int32))
    out["five"] = np.asarray(m5["fitness"]).tolist()
    out["five_alone"] = float(EV.make_problem(tiny_config(evaluation=dict(shard=False)), ds).evaluate_population(
        jax.tree_util.tree_map(lambda l: l[4:], pop5), jax.random.key(4), xb, yb, jnp.asarray(0, jnp.int32))["fitness"][0])
    print(json.dumps(out))
""")


def test_sharded_over_four_host_devices_equals_unsharded(tmp_path):
    script = tmp_path / "shard.py"
    script.write_text(SHARD_SCRIPT.format(tests=str(REPO / "tests")))
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["n_shards"] == 4
    np.testing.assert_allclose(out["True"], out["False"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["five"], out["False"] + [out["five_alone"]], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------


def _known_optimum(monkeypatch, sign=1.0):
    """Replaces the population evaluation by ``F(genome) = -||genome - target||^2``
    (target: the starting mean shifted by 0.5 in every value), through the real loop:
    ask, evaluate, non-finite to worst, tell. Returns the target holder."""
    real = EV.make_problem
    box = {}

    def known(cfg, dataset):
        p = real(cfg, dataset)
        target = jax.tree_util.tree_map(lambda a: a + 0.5, GN.default_genome(p.spec, p.reference_params))
        box["target"] = target

        def evaluate(pop, *args):
            sq = sum(jnp.sum((a - t[None]) ** 2, axis=tuple(range(1, a.ndim)))
                     for a, t in zip(jax.tree_util.tree_leaves(pop), jax.tree_util.tree_leaves(target)))
            f = sign * -sq
            zeros = jnp.zeros_like(f)
            return dict(fitness=f, accuracy_term=f, val_accuracy=f, val_loss=-f, spatial=zeros, temporal=zeros,
                        lambda_s=zeros, lambda_t=zeros)

        p.evaluate_population = evaluate
        return p

    monkeypatch.setattr(evolution_loop, "make_problem", known)
    return box


def _distance(genome, target):
    return float(np.sqrt(sum(np.sum((np.asarray(a) - np.asarray(t)) ** 2)
                             for a, t in zip(jax.tree_util.tree_leaves(genome), jax.tree_util.tree_leaves(target)))))


#: Hand-written (accuracy term, H_S, D_T) of every individual of a 2-generation search of
#: 4. With ``lambda_s = 0.5`` and ``lambda_t = 0.1`` decaying linearly to 0 at generation
#: 2, the last generation's lambdas are 0.25 and 0.05 (by hand), and the comparable score
#: A + 0.25 H_S + 0.05 D_T ranks X (0.5) > Y (0.475) > W (0.41) > Z (0.325) > the rest
#: (0.1). Generation 0's lambdas (0.5, 0.1) would rank Y (0.55) first, the last
#: generation's swapped (0.05, 0.25) W (0.65), each generation's own lambdas Y (0.55).
_TERMS = [[(0.40, 0.3, 0.0), (0.35, 0.0, 1.2), (0.1, 0.0, 0.0), (0.1, 0.0, 0.0)],   # Y, W, -, -
          [(0.1, 0.0, 0.0), (0.50, 0.0, 0.0), (0.1, 0.0, 0.0), (0.30, 0.0, 0.5)]]   # -, X, -, Z


def test_the_best_genome_and_the_archive_are_ranked_with_the_last_generations_lambdas(tiny_data, monkeypatch):
    real, pops, raced = EV.make_problem, [], {}

    def crafted(cfg, dataset):
        p = real(cfg, dataset)

        def evaluate(pop, key, xb, yb, generation):
            pops.append(jax.tree_util.tree_map(np.asarray, pop))
            a, hs, dt = (jnp.asarray(v, jnp.float32) for v in zip(*_TERMS[int(generation)]))
            return dict(fitness=a, accuracy_term=a, val_accuracy=a, val_loss=-a, spatial=hs, temporal=dt,
                        lambda_s=jnp.zeros(4), lambda_t=jnp.zeros(4))

        p.evaluate_population = evaluate
        return p

    def race(cfg, ds, archive, mean_genome, workdir, say):  # the archive the race would get
        raced["archive"] = archive
        return (dict(finalists=[dict(source="search", generation=int(archive.generation[0]))], winner=0),
                jax.tree_util.tree_map(lambda a: jnp.asarray(a[0]), archive.genomes))

    monkeypatch.setattr(evolution_loop, "make_problem", crafted)
    monkeypatch.setattr(evolution_loop, "_race", race)
    cfg = tiny_config(search=dict(generations=2), fitness=dict(lambda_s=0.5, lambda_t=0.1, lambda_schedule="linear"),
                      race=dict(top=3))
    r = EV.evolve(cfg, None, dataset=tiny_data, progress=False)
    assert len(pops) == 2
    assert r["best_fitness"] == pytest.approx(0.5) and r["best_generation"] == 2
    for got, want in zip(jax.tree.leaves(r["best_genome"]), jax.tree.leaves(pops[1])):
        np.testing.assert_array_equal(got, want[1])  # X
    archive = raced["archive"]
    assert archive.fitness == pytest.approx([0.5, 0.4 + 0.25 * 0.3, 0.35 + 0.05 * 1.2])
    assert archive.generation.tolist() == [2, 1, 1]  # X, Y, W
    for got, want in zip(jax.tree.leaves(archive.genomes), jax.tree.leaves(pops[1])):
        np.testing.assert_array_equal(got[0], want[1])
    for got, want in zip(jax.tree.leaves(archive.genomes), jax.tree.leaves(pops[0])):
        np.testing.assert_array_equal(got[1:], want[:2])


def test_evolution_moves_the_best_genome_toward_a_known_optimum(tiny_data, monkeypatch):
    box = _known_optimum(monkeypatch)
    cfg = tiny_config(search=dict(population=8, generations=12, std_init=0.3), evaluation=dict(inject_nan=(3,)))
    r = EV.evolve(cfg, None, dataset=tiny_data, progress=False)
    start = _distance(r["mean_genome"], box["target"])
    assert _distance(r["best_genome"], box["target"]) < 0.8 * start
    best = [g["best_fitness"] for g in r["generations"]]
    assert best[-1] > best[0] and all(g["diverged"] == 1 for g in r["generations"])  # the NaN one is worst


def test_a_flipped_sign_moves_away_from_the_optimum(tiny_data, monkeypatch):
    """The same loop told the opposite fitness climbs away: the direction test above
    fails if the sign given to the strategy is flipped."""
    box = _known_optimum(monkeypatch, sign=-1.0)
    r = EV.evolve(tiny_config(search=dict(population=8, generations=12, std_init=0.3)), None, dataset=tiny_data,
                  progress=False)
    assert _distance(r["best_genome"], box["target"]) > _distance(r["mean_genome"], box["target"])


def test_a_generations_statistics_leave_the_diverged_individuals_out():
    """One convention: means, std and maxima over the individuals of finite fitness,
    NaN when none; the best is the highest finite fitness. Individual 1 diverged (its
    fitness NaN) but has finite terms, which must not enter the means."""
    m = dict(fitness=[0.2, np.nan, 0.6, -np.inf], val_accuracy=[0.1, 0.9, 0.3, 0.8], val_loss=[2.0, 0.1, 1.0, 0.2],
             accuracy_term=[0.1, 0.9, 0.3, 0.8], spatial=[0.5, 0.0, 0.7, 0.0], temporal=[0.2, 0.9, 0.4, np.nan],
             lambda_s=[0.1] * 4, lambda_t=[0.2] * 4)
    rec = evolution_loop._summarise(4, {k: np.asarray(v) for k, v in m.items()}, 2.0, 3)
    assert rec["generation"] == 5 and rec["diverged"] == 2
    assert (rec["best_fitness"], rec["best_individual_val_accuracy"], rec["spatial"]) == (0.6, 0.3, 0.7)
    assert rec["mean_fitness"] == pytest.approx(0.4) and rec["std_fitness"] == pytest.approx(0.2)
    assert rec["mean_val_accuracy"] == pytest.approx(0.2) and rec["best_val_accuracy"] == pytest.approx(0.3)
    assert rec["mean_val_loss"] == pytest.approx(1.5) and rec["mean_spatial"] == pytest.approx(0.6)
    assert rec["mean_temporal"] == pytest.approx(0.3)
    assert rec["individual_steps_per_s"] == pytest.approx(4 * 3 / 2.0)
    none = evolution_loop._summarise(0, {k: np.asarray(v) for k, v in dict(m, fitness=[np.nan] * 4).items()}, 1.0, 3)
    assert none["diverged"] == 4
    assert all(np.isnan(none[k]) for k in ("best_fitness", "mean_fitness", "std_fitness", "best_val_accuracy",
                                            "mean_val_loss", "mean_spatial", "spatial", "accuracy_term"))


def test_a_search_in_which_every_individual_diverged_is_an_error_and_trains_nothing(tiny_data, tmp_path, monkeypatch):
    """Not the zero genome (the random wiring) handed on as "evolved": the pipeline stops
    before its final trainings, naming the cause; resuming the finished search says the same."""
    from gsnn.evolution import pipeline as PL

    trained = []
    monkeypatch.setattr(PL.TR, "train_and_evaluate", lambda *a, **k: trained.append(a))
    cfg = tiny_config(search=dict(generations=2), race=dict(top=2), evaluation=dict(inject_nan=(0, 1, 2, 3)),
                      final_variants=("evolved", "random"))
    for _ in range(2):
        with pytest.raises(evolution_loop.SearchDivergedError,
                           match=r"every individual of the search's 2 generation\(s\) diverged .*4 per generation"):
            EV.run_evolution(cfg, tmp_path, dataset=tiny_data, progress=False)
    assert trained == [] and not (tmp_path / "evolution" / "race.json").exists()


def test_diverging_individual_gets_worst_fitness_and_run_continues(tiny_data, monkeypatch):
    real = EV.make_problem

    def poisoned(cfg, dataset):
        p = real(cfg, dataset)
        inner = p.evaluate_population

        def evaluate(pop, *args):
            # individual 0 diverges: a huge log-std makes its encodings overflow to inf
            pop = jax.tree_util.tree_map(lambda x: x, pop)
            pop["log_std"] = {k: v.at[0].set(200.0) for k, v in pop["log_std"].items()}
            return inner(pop, *args)

        p.evaluate_population = evaluate
        return p

    monkeypatch.setattr(evolution_loop, "make_problem", poisoned)
    r = EV.evolve(tiny_config(search=dict(generations=2)), None, dataset=tiny_data, progress=False)
    assert [g["diverged"] for g in r["generations"]] == [1, 1]
    assert all(np.isfinite(g["best_fitness"]) for g in r["generations"])


def test_config_injected_nan_individual_is_worst_counted_and_the_generation_continues(tiny_data):
    r = EV.evolve(tiny_config(search=dict(generations=2), evaluation=dict(inject_nan=(2,))), None, dataset=tiny_data,
                  progress=False)
    assert [g["diverged"] for g in r["generations"]] == [1, 1]
    assert all(np.isfinite(g["best_fitness"]) and np.isfinite(g["mean_fitness"]) for g in r["generations"])
    assert np.isfinite(r["best_fitness"])
    with pytest.raises(ValueError, match="inject_nan"):
        tiny_config(evaluation=dict(inject_nan=(7,)))


def test_two_identical_evolutions_are_bitwise_identical(tiny_data):
    a = EV.evolve(tiny_config(search=dict(generations=2)), None, dataset=tiny_data, progress=False)
    b = EV.evolve(tiny_config(search=dict(generations=2)), None, dataset=tiny_data, progress=False)
    strip = lambda gs: [{k: v for k, v in g.items() if k not in ("seconds", "individual_steps_per_s")} for g in gs]
    assert json.dumps(strip(a["generations"])) == json.dumps(strip(b["generations"]))
    for x, y in zip(jax.tree.leaves(a["best_genome"]), jax.tree.leaves(b["best_genome"])):
        np.testing.assert_array_equal(x, y)


def test_sigterm_finishes_the_generation_checkpoints_and_resumes_exactly(tiny_data, tmp_path, monkeypatch):
    import signal

    from gsnn.runtime.interrupt import RunInterrupted

    cfg = tiny_config(search=dict(generations=3))
    whole = EV.evolve(cfg, tmp_path / "whole", dataset=tiny_data, progress=False)
    real = EV.make_problem

    def signalling(cfg, dataset):
        p = real(cfg, dataset)
        inner, calls = p.evaluate_population, []

        def evaluate(*args):
            calls.append(1)
            if len(calls) == 2:  # SIGTERM arrives while generation 2 is evaluated
                os.kill(os.getpid(), signal.SIGTERM)
            return inner(*args)

        p.evaluate_population = evaluate
        return p

    monkeypatch.setattr(evolution_loop, "make_problem", signalling)
    with pytest.raises(RunInterrupted, match="after generation 2/3") as info:
        EV.evolve(cfg, tmp_path / "split", dataset=tiny_data, progress=False)
    assert info.value.exit_code == 143 and "gsnn evolve --resume" in str(info.value)
    monkeypatch.setattr(evolution_loop, "make_problem", real)
    resumed = EV.evolve(cfg, tmp_path / "split", dataset=tiny_data, progress=False)
    assert [g["best_fitness"] for g in resumed["generations"]] == [g["best_fitness"] for g in whole["generations"]]
    assert resumed["best_fitness"] == whole["best_fitness"]


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tiny_data, tmp_path):
    cfg = tiny_config(search=dict(generations=4))
    whole = EV.evolve(cfg, tmp_path / "whole", dataset=tiny_data, progress=False)
    EV.evolve(cfg, tmp_path / "split", dataset=tiny_data, progress=False, stop_after_generations=2)
    # the checkpoint's config as an older gsnn stored it (a flat evolve section, in which
    # inner_learning_rate 0.0 meant the train rate; None means it now): the explicit
    # migration makes it the same config
    meta_files = list((tmp_path / "split" / "evolution" / "checkpoints").glob("*/meta/metadata"))
    assert meta_files
    for meta_file in meta_files:
        meta = json.loads(meta_file.read_text())
        nested = meta["config"]["evolve"]
        assert nested["inner"]["learning_rate"] is None
        flat = dict(fixed_base=nested["fixed_base"], final_variants=nested["final_variants"])
        for old, new in cfgs.RENAMED_KEYS.items():
            if old.startswith("evolve."):
                section, leaf = new.split(".")[1:]
                flat[old.split(".")[1]] = nested[section][leaf]
        flat["inner_learning_rate"] = 0.0
        meta["config"]["evolve"] = flat
        meta_file.write_text(json.dumps(meta))
    resumed = EV.evolve(cfg, tmp_path / "split", dataset=tiny_data, progress=False)
    assert [g["best_fitness"] for g in resumed["generations"]] == [g["best_fitness"] for g in whole["generations"]]
    assert resumed["best_fitness"] == whole["best_fitness"]


@pytest.mark.parametrize("strategy", ["cma_es", "sep_cma_es", "snes", "open_es", "simple_ga"])
def test_every_strategy_runs_a_generation(strategy, tiny_data):
    r = EV.evolve(tiny_config(search=dict(strategy=strategy, generations=2), inner=dict(steps=2)), None,
                  dataset=tiny_data, progress=False)
    assert len(r["generations"]) == 2 and np.isfinite(r["best_fitness"])


def test_bad_evolution_configs_are_rejected():
    with pytest.raises(ValueError, match="valid"):
        tiny_config(search=dict(strategy="nope"))
    with pytest.raises(ValueError, match="even"):
        tiny_config(search=dict(strategy="open_es", population=5))
    with pytest.raises(ValueError, match="chunk_size"):
        tiny_config(search=dict(population=6), evaluation=dict(chunk_size=4))
    with pytest.raises(ValueError, match="valid"):
        tiny_config(fitness=dict(spatial_operator="entropy"))


@pytest.mark.parametrize("encoding,interaction", [("position", "compact"), ("neuron", "full")])
def test_evolution_runs_with_interaction_rules(tiny_data, encoding, interaction):
    """(The position run also evolves per-layer log-gains, the neuron run log-drives.)"""
    cfg = tiny_config(encoding, interaction, search=dict(generations=2),
                      wiring=dict(gains=encoding == "position", drive=encoding == "neuron"))
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(
        cfg.model, genetic=dataclasses.replace(cfg.model.genetic, rules=2))).validate()
    r = EV.evolve(cfg, None, dataset=tiny_data, progress=False)
    assert r["problem"].reference_G.shape == (2, 4, 4)
    assert ("log_gain" in r["best_genome"]) == (encoding == "position")
    assert ("log_drive" in r["best_genome"]) == (encoding == "neuron")
    assert all(np.isfinite(g["best_fitness"]) and 0 < g["spatial"] <= 1 + 1e-5 for g in r["generations"])


# --------------------------------------------------------------------------------------
# Strategies and the pure generation step
# --------------------------------------------------------------------------------------


def test_strategy_table_factories_set_the_documented_values():
    from gsnn.evolution import strategies as S

    template = {"a": jnp.zeros((3,)), "b": jnp.zeros((2, 2))}
    made = {name: S.make_strategy(name, 6, template, std_init=0.07, elite_ratio=0.25) for name in S.STRATEGIES}
    for name in ("cma_es", "sep_cma_es", "snes"):
        assert float(made[name].params.std_init) == pytest.approx(0.07), name
    for name in ("open_es", "simple_ga"):
        assert float(made[name].es.std_schedule(0)) == pytest.approx(0.07), name
    for name in ("cma_es", "sep_cma_es", "simple_ga"):
        assert made[name].es.num_elites == 1, name  # int(0.25 * 6)
    with pytest.raises(ValueError, match="valid.*cma_es.*simple_ga"):
        S.make_strategy("nope", 6, template, std_init=0.1, elite_ratio=0.5)


def _step_runs(evaluate, mean, name, data):
    """The same generations of ``name`` (one per element of ``data``) three ways: the
    jit_parts Python loop (what ``evolve`` runs), the whole step under ``jax.jit``, and
    ``lax.scan`` over the stacked data. Returns ``{way: (final state, stacked metrics)}``."""
    from gsnn.evolution import step as ST
    from gsnn.evolution import strategies as S

    strategy = S.make_strategy(name, 4, mean, std_init=0.3, elite_ratio=0.5)
    k_init, key = jax.random.split(jax.random.key(3))
    start = ST.initial_state(S.strategy_init(strategy, k_init, mean), key)
    out = {}
    for way, jit_parts in (("parts", True), ("jit", False)):
        step = ST.make_evolution_step(strategy, evaluate, inject_nan=(1,), jit_parts=jit_parts)
        step = step if jit_parts else jax.jit(step)
        state, ms = start, []
        for d in data:
            state, m = step(state, d)
            ms.append(m)
        out[way] = (state, jax.tree_util.tree_map(lambda *a: jnp.stack(a), *ms))
    step = ST.make_evolution_step(strategy, evaluate, inject_nan=(1,))
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *data)
    out["scan"] = jax.jit(lambda s, d: jax.lax.scan(step, s, d))(start, stacked)
    return out


def _check_step_runs(out, generations, rtol, atol):
    ref_state, ref_m = out["parts"]
    assert int(ref_state.generation) == generations
    assert np.all(np.asarray(ref_m["told_fitness"])[:, 1] == EV.WORST_FITNESS)  # the NaN member
    assert np.all(np.isfinite(np.asarray(ref_m["told_fitness"])))
    first, last = (jax.tree_util.tree_map(lambda a: a[i], ref_m["population"]) for i in (0, generations - 1))
    assert _distance(first, last) > 0  # the strategy moved
    for way in ("jit", "scan"):
        state, m = out[way]
        np.testing.assert_array_equal(jax.random.key_data(state.key), jax.random.key_data(ref_state.key))
        assert int(state.generation) == generations
        for name in ("fitness", "told_fitness", "val_accuracy", "spatial", "temporal"):
            np.testing.assert_allclose(m[name], ref_m[name], rtol=rtol, atol=atol, err_msg=f"{way} {name}")
        for a, b in zip(jax.tree_util.tree_leaves(m["population"]), jax.tree_util.tree_leaves(ref_m["population"])):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"{way} population")
        for a, b in zip(jax.tree_util.tree_leaves(state.es_state), jax.tree_util.tree_leaves(ref_state.es_state)):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"{way} es_state")


def _quadratic_evaluate(target):
    """A cheap stand-in for the population evaluation that still reads every argument:
    ``-||genome - target||^2`` plus small terms of the key, the images and the generation."""

    def evaluate(pop, key, images, labels, generation):
        sq = sum(jnp.sum((a - t[None]) ** 2, axis=tuple(range(1, a.ndim)))
                 for a, t in zip(jax.tree_util.tree_leaves(pop), jax.tree_util.tree_leaves(target)))
        extra = 1e-3 * (jax.random.uniform(key) + jnp.mean(images / 255.0) + jnp.mean(labels) + generation)
        f = -sq + extra
        return dict(fitness=f, val_accuracy=f, spatial=jnp.zeros_like(f), temporal=jnp.ones_like(f))

    return evaluate


@pytest.mark.parametrize("strategy", list(EV.STRATEGIES))
def test_the_generation_step_under_jit_and_scan_equals_the_host_loop(tiny_problem, strategy):
    mean = GN.default_genome(tiny_problem.spec, tiny_problem.reference_params)
    target = jax.tree_util.tree_map(lambda a: a + 0.5, mean)
    data = [EV.GenerationData(*EV.generation_batches(tiny_problem, g)) for g in range(3)]
    _check_step_runs(_step_runs(_quadratic_evaluate(target), mean, strategy, data), 3, rtol=1e-5, atol=1e-6)


def test_the_generation_step_with_the_real_evaluation_under_jit_and_scan(tiny_problem):
    mean = GN.default_genome(tiny_problem.spec, tiny_problem.reference_params)
    data = [EV.GenerationData(*EV.generation_batches(tiny_problem, g)) for g in range(3)]
    _check_step_runs(_step_runs(tiny_problem.evaluate_population, mean, "cma_es", data), 3, rtol=1e-4, atol=1e-5)


def _distance_evaluate(target, nan_at=None):
    """``F = -||genome - target||^2`` per member (maximised), the population evaluation's
    interface; with ``nan_at = (generation, member)`` that member scores NaN in that
    generation (a diverged individual)."""

    def evaluate(pop, key, images, labels, generation):
        f = -sum(jnp.sum((a - t[None]) ** 2, axis=tuple(range(1, a.ndim)))
                 for a, t in zip(jax.tree_util.tree_leaves(pop), jax.tree_util.tree_leaves(target)))
        if nan_at is not None:
            f = jnp.where((generation == nan_at[0]) & (jnp.arange(f.shape[0]) == nan_at[1]), jnp.nan, f)
        return dict(fitness=f)

    return evaluate


@pytest.mark.parametrize("strategy", ["cma_es", "snes"])
def test_the_generation_step_moves_the_best_genome_toward_a_known_optimum(strategy):
    """The direction test: the real step (ask, evaluate, non-finite -> worst, tell the
    negation) on ``F = -||genome - target||^2`` brings the best genome close to the
    target. Telling the strategy ``+F`` instead of ``-F`` makes it climb away and this
    fails. A NaN individual in generation 3 is told the worst fitness and the run goes on."""
    from gsnn.evolution import step as ST
    from gsnn.evolution import strategies as S

    template = {"a": jnp.zeros((3,)), "b": jnp.zeros((2, 2))}
    target = {"a": jnp.asarray([1.0, -0.5, 0.8]), "b": jnp.full((2, 2), 0.6)}
    generations, nan_gen, nan_member = 40, 3, 2
    strat = S.make_strategy(strategy, 8, template, std_init=0.3, elite_ratio=0.5)
    k_init, key = jax.random.split(jax.random.key(0))
    start = ST.initial_state(S.strategy_init(strat, k_init, template), key)
    step = ST.make_evolution_step(strat, _distance_evaluate(target, (nan_gen, nan_member)))
    data = EV.GenerationData(jnp.zeros((generations, 1), jnp.uint8), jnp.zeros((generations, 1), jnp.int32))
    state, m = jax.jit(lambda s, d: jax.lax.scan(step, s, d))(start, data)
    told = np.asarray(m["told_fitness"])
    best = [_distance(jax.tree_util.tree_map(lambda a: a[g, int(np.argmax(told[g]))], m["population"]), target)
            for g in range(generations)]
    assert _distance(template, target) == pytest.approx(np.sqrt(3.33), rel=1e-6)
    assert best[-1] < 0.2 * best[0], best  # clearly closer: 1.38 -> below 0.28 (measured 0.06-0.07)
    assert best[-1] < min(best[:5])  # and still improving after the first generations
    # the NaN individual: told the worst fitness, ranked last; every value told is finite
    assert told[nan_gen, nan_member] == EV.WORST_FITNESS and int(np.argmin(told[nan_gen])) == nan_member
    assert np.all(np.isfinite(told)) and np.isnan(np.asarray(m["fitness"])[nan_gen, nan_member])
    assert all(np.all(np.isfinite(np.asarray(l))) for l in jax.tree_util.tree_leaves(state.es_state))
    assert int(state.generation) == generations


# --------------------------------------------------------------------------------------
# The accuracy term and the activity operators
# --------------------------------------------------------------------------------------


def _numpy_cross_entropy(logits, labels):
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(labels)), labels]


def activity_config(signal_every: int = 0, **evolve):
    """:func:`tiny_config` with the val_loss term and both activity operators (the tests
    that use it share its compiled programs through the persistent compilation cache)."""
    fitness = dict(metric="val_loss", spatial_operator="activity_entropy", temporal_operator="activity_difference",
                   signal_every=signal_every)
    return tiny_config(fitness=fitness, **evolve)


@pytest.fixture(scope="module")
def activity_problem(tiny_data):
    return EV.make_problem(activity_config(), tiny_data)


def _trained_individual(p, **kwargs):
    """The default genome trained as its evaluation trains it: its evaluation (``score_one``
    of ``train_one``, which is ``evaluate_one``) and the trained network run on the whole
    validation set at once, ``(evaluation, logits [N, classes], labels [N], flax updates)``."""
    genome = GN.default_genome(p.spec, p.reference_params)
    xb, yb = EV.generation_batches(p, 0)
    trained = p.train_one(genome, jax.random.key(4), xb, yb)
    out = p.score_one(*trained, jnp.asarray(0, jnp.int32), p.val_x, p.val_y)
    state = trained[1]
    mean, std = D.stats_for(p.train_split.name)
    images = D.normalize(np.asarray(p.val_x).reshape((-1,) + p.val_x.shape[2:]), mean, std)
    logits, updates = p.steps.model.apply({"params": state.params, "batch_stats": state.batch_stats}, images,
                                          train=False, rngs={"coding": jax.random.key(0)}, **kwargs)
    return out, np.asarray(logits), np.asarray(p.val_y).reshape(-1), updates


def test_val_loss_metric_is_minus_the_numpy_validation_cross_entropy(activity_problem):
    out, logits, labels, _ = _trained_individual(activity_problem, mutable=["stats"])
    ce = _numpy_cross_entropy(logits, labels)
    assert len(labels) == 40 and float(out["accuracy_term"]) == pytest.approx(-ce.mean(), rel=1e-5)
    assert float(out["val_loss"]) == pytest.approx(ce.mean(), rel=1e-5)
    assert float(out["val_accuracy"]) == pytest.approx(np.mean(logits.argmax(1) == labels))
    expected = -ce.mean() + float(out["lambda_s"]) * float(out["spatial"]) + float(out["lambda_t"]) * float(out["temporal"])
    assert float(out["fitness"]) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match=r"evolve.fitness.metric 'loss'; valid: \['val_accuracy', 'val_loss'\]"):
        tiny_config(fitness=dict(metric="loss"))


def _numpy_activity(layers):
    """Reference activity operators on spike arrays ``[T, B, N]`` by plain loops."""
    entropies, changes = [], []
    for s in layers:
        T, B, N = s.shape
        h, c = [], []
        for n in range(N):
            p = sum(s[t, b, n] for t in range(T) for b in range(B)) / (T * B)
            h.append(sum(-q * np.log2(q) for q in (p, 1 - p) if q > 0))
            c.append(sum(abs(s[t + 1, b, n] - s[t, b, n]) for t in range(T - 1) for b in range(B)) / ((T - 1) * B))
        entropies.append(np.mean(h))
        changes.append(np.mean(c))
    return np.mean(entropies), np.mean(changes)


def _activity_trace(layers):
    from gsnn.core import activity as A

    coll = {f"lif{i}": {"firing_prob": A.firing_probability(jnp.asarray(s)), "spike_change": A.spike_change(jnp.asarray(s))}
            for i, s in enumerate(layers)}
    G = jnp.eye(2)
    return F.InnerLoopTrace(G, G, jnp.ones((2,)), jnp.asarray(0.5), activity=F.spike_activity(coll))


def test_activity_operators_on_hand_made_spike_trains():
    from gsnn.core import activity as A

    # T = 4 steps, B = 2 examples; neurons: never, always, alternating 0101 (p = 0.5,
    # change 1), one example always and the other never (p = 0.5, change 0)
    never, always = np.zeros((4, 2)), np.ones((4, 2))
    alternating = np.tile(np.asarray([0.0, 1.0, 0.0, 1.0])[:, None], (1, 2))
    split = np.stack([np.ones(4), np.zeros(4)], axis=1)
    hand = np.stack([never, always, alternating, split], axis=-1)  # [T, B, N]
    np.testing.assert_allclose(A.firing_probability(jnp.asarray(hand)), [0.0, 1.0, 0.5, 0.5])
    np.testing.assert_allclose(A.binary_entropy_bits(jnp.asarray([0.0, 1.0, 0.5, 0.25])),
                               [0.0, 0.0, 1.0, 0.8112781], rtol=1e-6)
    trace = _activity_trace([hand])
    assert float(F.activity_entropy(trace)) == pytest.approx(0.5)  # (0 + 0 + 1 + 1) / 4 bits
    assert float(F.activity_difference(trace)) == pytest.approx(0.25)  # (0 + 0 + 1 + 0) / 4
    # and against plain loops, over two layers of random spikes (layers weigh the same)
    rng = np.random.default_rng(0)
    layers = [hand, (rng.random((4, 2, 6)) < rng.random(6)).astype(np.float64)]
    want_h, want_d = _numpy_activity(layers)
    trace = _activity_trace(layers)
    assert float(F.activity_entropy(trace)) == pytest.approx(want_h, rel=1e-5)
    assert float(F.activity_difference(trace)) == pytest.approx(want_d, rel=1e-5)
    with pytest.raises(ValueError, match="T >= 2"):
        A.spike_change(jnp.ones((1, 2, 3)))
    with pytest.raises(ValueError, match="needs the spiking activity"):
        F.activity_entropy(_trace(jnp.eye(2), [1.0]))


def test_activity_operators_of_an_evaluation_match_numpy_on_the_captured_spikes(activity_problem):
    """The evaluation's H_S and D_T with the activity operators equal the plain loops on
    the trained individual's spikes over the validation images (captured from the LIF
    layers' outputs, not from what they sow); and the sown firing probability averages
    to the firing rate the layer reports."""
    from gsnn.nn import layers as NL

    out, _, labels, updates = _trained_individual(
        activity_problem, mutable=["stats", "activity", "intermediates"],
        capture_intermediates=lambda mdl, _: isinstance(mdl, NL.SpikingNeuron))
    T = activity_problem.cfg.model.T
    spikes = [np.asarray(v["__call__"][0]).reshape((T, len(labels), -1))
              for _, v in sorted(updates["intermediates"].items())]
    assert len(spikes) == 1 and spikes[0].shape == (2, 40, 16)  # mlp hidden=(16,), T=2
    want_h, want_d = _numpy_activity(spikes)
    assert 0 < want_h < 1 and 0 < want_d < 1
    assert float(out["spatial"]) == pytest.approx(want_h, rel=1e-4)
    assert float(out["temporal"]) == pytest.approx(want_d, rel=1e-4)
    for name, sown in updates["activity"].items():
        assert float(jnp.mean(sown["firing_prob"])) == pytest.approx(float(updates["stats"][name]["firing_rate"]),
                                                                      rel=1e-5)


@pytest.fixture(scope="module")
def activity_run(tiny_data):
    """A tiny evolution of 3 generations with the val_loss term and both activity operators."""
    return EV.evolve(activity_config(search=dict(generations=3)), None, dataset=tiny_data, progress=False)


def test_evolution_runs_with_the_activity_operators(activity_run, tiny_data):
    r = activity_run
    assert len(r["generations"]) == 3
    for g in r["generations"]:
        assert np.isfinite(g["best_fitness"]) and g["diverged"] == 0
        assert 0 < g["spatial"] <= 1 and 0 < g["mean_spatial"] <= 1
        assert 0 <= g["temporal"] <= 1 and 0 <= g["mean_temporal"] <= 1
    one_step = dataclasses.replace(tiny_config(fitness=dict(temporal_operator="activity_difference")),
                                   model=M.ModelConfig(arch="mlp", hidden=(16,), T=1,
                                                       genetic=cfgs.GeneticConfig(encoding="position", genes=4)))
    with pytest.raises(ValueError, match=r"evolve.fitness.temporal_operator='activity_difference' needs model.T >= 2"):
        EV.make_problem(one_step.validate(), tiny_data)


# --------------------------------------------------------------------------------------
# The signal measurement: the second evaluation's data and the loop
# --------------------------------------------------------------------------------------


def test_signal_batches_are_independent_held_out_and_deterministic(tiny_problem, tiny_data):
    p = tiny_problem
    xb, yb, vx, vy = EVO.signal_batches(p, 0)
    run_xb, run_yb = EVO.generation_batches(p, 0)
    assert xb.shape == run_xb.shape and yb.shape == run_yb.shape and yb.dtype == run_yb.dtype
    assert vx.shape == p.val_x.shape and vy.shape == p.val_y.shape and vx.dtype == np.uint8
    assert not np.array_equal(xb, run_xb)  # not the run's minibatches
    rows = lambda a: {r.tobytes() for r in a.reshape((-1,) + a.shape[-3:])}
    train_rows = rows(np.asarray(p.train_split.train_images))
    assert rows(vx) <= train_rows and rows(xb) <= train_rows  # drawn from the training split
    assert not rows(vx) & rows(xb)  # the validation images are held out from the inner training
    assert not rows(vx) & rows(np.asarray(p.val_x))  # and are not the run's validation images
    again = EVO.signal_batches(p, 0)
    assert all(np.array_equal(a, b) for a, b in zip((xb, yb, vx, vy), again))
    assert not np.array_equal(EVO.signal_batches(p, 1)[2], vx)  # a new draw every generation
    with pytest.raises(ValueError, match=r"evolve.fitness.signal_every=3 .* 70 validation images .* only 50 images"):
        EVO.evolve(tiny_config(inner=dict(val_size=70), fitness=dict(signal_every=3)), None, dataset=tiny_data,
                   progress=False)
    with pytest.raises(ValueError, match="signal_every must be >= 0"):
        tiny_config(fitness=dict(signal_every=-1))


def test_the_signal_measurement_leaves_the_evolution_bitwise_unchanged(activity_run, tiny_data):
    """Measured at generations 1 and 3 (every 2, from the first): the evolution is bitwise
    the run without the measurement (its resume is tested by test_cli's kill and resume)."""
    plain = activity_run
    measured = EVO.evolve(activity_config(search=dict(generations=3), signal_every=2), None, dataset=tiny_data,
                          progress=False)
    for a, b in zip(jax.tree.leaves(plain["best_genome"]), jax.tree.leaves(measured["best_genome"])):
        np.testing.assert_array_equal(a, b)
    strip = lambda gs: [{k: v for k, v in g.items() if k not in ("seconds", "individual_steps_per_s")} for g in gs]
    assert json.dumps(strip(plain["generations"])) == json.dumps(strip(measured["generations"]))
    assert plain["best_fitness"] == measured["best_fitness"]
    assert plain["signal"] == dict(every=0, spearman=None, variance_ratio=None, history=[])
    s = json.loads(json.dumps(to_jsonable(measured["signal"])))  # as evolution.json holds it
    assert s["every"] == 2 and [r["generation"] for r in s["history"]] == [1, 3]
    assert s["spearman"] == s["history"][0]["terms"]["fitness"]["spearman"]
    assert s["variance_ratio"] == s["history"][0]["terms"]["fitness"]["variance_ratio"]
    for rec in s["history"]:
        assert set(rec["terms"]) == set(SG.SIGNAL_TERMS) and rec["members"] == 4
        for term in rec["terms"].values():
            assert np.isnan(term["spearman"]) or -1 <= term["spearman"] <= 1
            assert np.isnan(term["variance_ratio"]) or term["variance_ratio"] >= 0
    # the second evaluation really differs from the first (independent data and keys)
    assert s["history"][0]["terms"]["fitness"]["variance_ratio"] != np.inf


# --------------------------------------------------------------------------------------
# The final race: the archive and the longer horizon
# --------------------------------------------------------------------------------------


def test_the_archive_keeps_the_best_genomes_of_all_generations():
    """Against a plain list of every (score, generation, genome) sorted by hand: ties keep
    the earlier entry, diverged individuals (-inf) never enter."""
    from gsnn.evolution import race as RC

    rng = np.random.default_rng(0)
    mean = {"a": np.zeros(2), "b": {"c": np.zeros(())}}
    archive = RC.empty_archive(mean, 4)
    seen = []
    for gen in range(1, 4):
        scores = rng.integers(0, 5, 6).astype(np.float64)  # small integers: ties happen
        scores[gen] = -np.inf
        pop = {"a": rng.normal(size=(6, 2)), "b": {"c": rng.normal(size=6)}}
        archive = RC.update_archive(archive, scores, pop, gen)
        seen += [(scores[i], gen, pop["a"][i], pop["b"]["c"][i]) for i in range(6) if np.isfinite(scores[i])]
    best = []
    for entry in seen:  # insertion into a list kept best-first; equal scores go after earlier ones
        pos = next((j for j, b in enumerate(best) if entry[0] > b[0]), len(best))
        best.insert(pos, entry)
    best = best[:4]
    np.testing.assert_array_equal(archive.fitness, [b[0] for b in best])
    np.testing.assert_array_equal(archive.generation, [b[1] for b in best])
    np.testing.assert_array_equal(archive.genomes["a"], np.stack([b[2] for b in best]))
    np.testing.assert_array_equal(archive.genomes["b"]["c"], [b[3] for b in best])
    genomes, about = RC.finalists(archive, mean, baseline=True)
    assert genomes["a"].shape == (5, 2) and about[-1]["source"] == RC.BASELINE
    np.testing.assert_array_equal(genomes["a"][-1], 0.0)  # the zero genome races last
    half = RC.empty_archive(mean, 3)._replace(fitness=np.array([1.0, -np.inf, -np.inf]))
    with pytest.raises(ValueError, match="at least 2 finalists"):
        RC.finalists(half, mean, baseline=False)


def _race_on(monkeypatch, favourite, data=None, sign=-1.0):
    """The race's evaluation replaced by ``F(genome) = sign * ||genome - favourite(mean)||^2``
    (the search stays the real one); returns the calls' populations (and appends each
    call's other arguments to ``data``)."""
    from gsnn.evolution import race as RC

    real, calls = RC.make_problem, []
    data = [] if data is None else data

    def known(cfg, dataset):
        p = real(cfg, dataset)
        target = favourite(GN.default_genome(p.spec, p.reference_params))

        def evaluate(pop, *args):
            calls.append(pop)
            data.append(args)
            sq = sum(jnp.sum((a - t[None]) ** 2, axis=tuple(range(1, a.ndim)))
                     for a, t in zip(jax.tree_util.tree_leaves(pop), jax.tree_util.tree_leaves(target)))
            return dict(fitness=sign * sq, val_loss=-sign * sq, val_accuracy=sign * sq)

        p.evaluate_population_on = evaluate
        return p

    monkeypatch.setattr(RC, "make_problem", known)
    return calls


def test_the_race_after_a_search_hands_its_winner_on_and_is_stored(tiny_data, tmp_path, monkeypatch):
    """The race wired into ``evolve``: finalists from the search's archive, the winner's
    genome handed on, the record stored and read back. Which finalist wins on a
    hand-built archive is tests/test_race.py's; here the race scores
    ``F = +||genome - zero genome||^2``, which every searched genome (a random draw off
    the zero genome) beats the random wiring (F = 0) at, wherever the search went."""
    from gsnn.evolution import race as RC

    cfg = tiny_config(search=dict(generations=2), race=dict(top=3, steps=2, repeats=2))
    calls = _race_on(monkeypatch, lambda m: m, sign=1.0)
    r = EV.evolve(cfg, tmp_path, dataset=tiny_data, progress=False)
    race = r["race"]
    assert len(calls) == 2 and race["steps"] == 2 and race["repeats"] == 2  # one evaluation per repeat
    assert [f["source"] for f in race["finalists"]] == [RC.SEARCH] * 3 + [RC.BASELINE]
    scores = [f["race_fitness"] for f in race["finalists"]]
    assert race["winner"] == int(np.argmax(scores)) and race["finalists"][race["winner"]]["source"] == RC.SEARCH
    winner = jax.tree_util.tree_map(lambda a: a[race["winner"]], calls[0])
    for a, b in zip(jax.tree.leaves(winner), jax.tree.leaves(r["best_genome"])):
        np.testing.assert_array_equal(a, b)
    # each finalist's lead over the random wiring, paired by repeat, by hand
    base = race["finalists"][3]
    for f, lead in zip(race["finalists"], race["leads_over_random"]):
        d = np.subtract(f["race_val_accuracy_repeats"], base["race_val_accuracy_repeats"])
        assert lead["val_accuracy"]["mean"] == pytest.approx(np.mean(d))
        assert lead["val_accuracy"]["se"] == pytest.approx(abs(d[0] - d[1]) / 2)  # std (ddof 1) / sqrt(2), 2 repeats
        assert lead["fitness"]["mean"] == pytest.approx(f["race_fitness"] - base["race_fitness"])
    # the finalists are the search's best, by the search's score
    search = [f["search_fitness"] for f in race["finalists"][:3]]
    assert search == sorted(search, reverse=True) and search[0] == r["best_fitness"]
    # resumed after the race: read back, not raced again
    again = EV.evolve(cfg, tmp_path, dataset=tiny_data, progress=False)
    assert len(calls) == 2 and again["race"] == json.loads(json.dumps(to_jsonable(race)))
    # resumed with other race settings: the same search, raced again
    longer = EV.evolve(tiny_config(search=dict(generations=2), race=dict(top=3, steps=4, repeats=2)), tmp_path,
                       dataset=tiny_data, progress=False)
    assert len(calls) == 4 and longer["race"]["steps"] == 4 and longer["generations"] == r["generations"]
    # the final networks are chosen after the search too: no new race, no error
    EV.evolve(tiny_config(search=dict(generations=2), race=dict(top=3, steps=4, repeats=2), final_variants=()), tmp_path,
              dataset=tiny_data, progress=False)
    assert len(calls) == 4
    with pytest.raises(ValueError, match=r"differs in \['evolve.race.top'\]"):
        EV.evolve(tiny_config(search=dict(generations=2), race=dict(top=2, steps=4, repeats=2)), tmp_path,
                  dataset=tiny_data, progress=False)


@pytest.mark.parametrize("where", ["held_out", "validation"])
def test_a_race_the_training_split_cannot_feed_is_refused_before_the_search(where, tiny_data, tmp_path):
    n = len(tiny_data.train_labels) - 40  # the training split: all but val_size
    cfg = tiny_config(search=dict(generations=2), race=dict(top=2, data=where, batch=n + 1))
    with pytest.raises(ValueError, match=f"minibatches of {n + 1} \\(evolve.race.batch\\).* holds only {n} images"):
        EV.evolve(cfg, tmp_path, dataset=tiny_data, progress=False)
    assert not (tmp_path / "evolution" / "checkpoints").exists() or not any((tmp_path / "evolution" / "checkpoints").iterdir())
    held = 40 if where == "held_out" else 0  # held-out judging images come out of the same split
    EV.evolve(tiny_config(search=dict(generations=1), race=dict(top=2, data=where, batch=n - held, steps=1)), tmp_path / "ok",
              dataset=tiny_data, progress=False)


@pytest.mark.parametrize("where", ["held_out", "validation"])
def test_the_race_trains_and_judges_on_the_data_race_data_names(where, tiny_data, monkeypatch):
    """``held_out``: judged on training-split images (none of the run's validation set),
    trained on the rest; ``validation``: judged on the run's validation set, trained on
    minibatches of ``race_batch`` from the whole training split."""
    cfg = tiny_config(search=dict(generations=1), race=dict(top=2, steps=3, batch=24, data=where))
    data = []
    _race_on(monkeypatch, lambda m: m, data)
    race = EV.evolve(cfg, None, dataset=tiny_data, progress=False)["race"]
    assert (race["steps"], race["batch"], race["data"]) == (3, 24, where)
    _, xb, yb, _, vx, vy = data[0]
    problem = EV.make_problem(cfg, tiny_data)
    as_bytes = lambda images: [im.tobytes() for im in np.asarray(images).reshape((-1,) + images.shape[-3:])]
    train, val = set(as_bytes(problem.train_split.train_images)), set(as_bytes(problem.val_x))
    seen, judged = set(as_bytes(xb)), set(as_bytes(vx))
    assert xb.shape[:2] == yb.shape == (3, 24) and seen <= train and not seen & judged
    assert len(train) == 80 and len(val) == 40
    if where == "validation":
        np.testing.assert_array_equal(vx, problem.val_x)
        np.testing.assert_array_equal(vy, problem.val_y)
        assert len(seen) == 72  # the first pass over all 80 training images: 3 whole batches
    else:
        # the 40 training images left: one whole batch per pass, three passes
        assert judged <= train and not judged & val and len(judged) == 40 and 24 <= len(seen) <= 40
    with pytest.raises(ValueError, match="unknown evolve.race.data 'test'"):
        tiny_config(race=dict(top=2, data="test"))
    with pytest.raises(ValueError, match="race.batch must be >= 1"):
        tiny_config(race=dict(top=2, batch=-1))


def test_a_race_won_by_the_random_wiring_trains_it_once_as_both_finals(tiny_data, tmp_path, monkeypatch):
    from gsnn.evolution import pipeline as PL
    from gsnn.evolution import race as RC

    cfg = tiny_config(search=dict(generations=2), race=dict(top=2, steps=2), fixed_base=True,
                      final_variants=("evolved", "random"))
    _race_on(monkeypatch, lambda m: m)  # the race favours the zero genome itself
    real, trained = PL.TR.train_and_evaluate, []
    monkeypatch.setattr(PL.TR, "train_and_evaluate", lambda cfg, *a, **k: trained.append(cfg.name) or real(cfg, *a, **k))
    r = EV.run_evolution(cfg, tmp_path, dataset=tiny_data, progress=False)
    assert r["race"]["finalists"][r["race"]["winner"]]["source"] == RC.BASELINE
    assert np.all(np.asarray(r["best_genome"]["interaction"]["u"]) == 0)  # the zero genome
    assert trained == ["tiny_evolve_evolved"]
    assert r["final"]["random"]["test_accuracy"] == r["final"]["evolved"]["test_accuracy"]
    assert r["final"]["random"]["variant"] == "random"


def test_the_race_with_the_real_evaluation_resumes_and_rejects_bad_configs(tiny_data, tmp_path):
    cfg = tiny_config(search=dict(generations=2), race=dict(top=2, steps=3))
    r = EV.evolve(cfg, None, dataset=tiny_data, progress=False)
    race = r["race"]
    assert len(race["finalists"]) == 3 and all(np.isfinite(f["race_fitness"]) for f in race["finalists"])
    assert race["winner"] == int(np.argmax([f["race_fitness"] for f in race["finalists"]]))
    # stopped after generation 1, resumed: the archive comes back from the checkpoint
    assert EV.evolve(cfg, tmp_path, dataset=tiny_data, progress=False, stop_after_generations=1)["race"] is None
    resumed = EV.evolve(cfg, tmp_path, dataset=tiny_data, progress=False)
    assert resumed["race"]["finalists"] == race["finalists"] and resumed["race"]["winner"] == race["winner"]
    assert EV.evolve(tiny_config(search=dict(generations=1)), None, dataset=tiny_data, progress=False)["race"] is None
    with pytest.raises(ValueError, match="at least 2 finalists"):
        tiny_config(race=dict(top=1, baseline=False))
    with pytest.raises(ValueError, match="race.top must be >= 0"):
        tiny_config(race=dict(top=-1))
    with pytest.raises(ValueError, match=r"race.top=2 races .* 70 held-out judging images .* only 50 images.*race.top=0"):
        EV.evolve(tiny_config(search=dict(generations=1), inner=dict(val_size=70), race=dict(top=2)), None,
                  dataset=tiny_data, progress=False)
