"""The allocation genome (gsnn.evolution.allocation, DESIGN 1.3): a network built at the
maximum and masked equals the smaller network built directly (GeneticConfig.layer_genes)
in outputs and gradients; an allocation's parameter count equals the directly built
network's pytree; a vmapped population of allocations equals the loop over them."""
from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsnn import cli
from gsnn.analysis import energy
from gsnn.nn import networks as M
from gsnn.config import GeneticConfig, LIFConfig, NeuronConfig
from gsnn.core.tree import count_scalars
from gsnn.evolution import allocation as A
from gsnn.nn.groups import group_labels

_jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0,
                                                    "xla_llvm_disable_expensive_passes": True})
# dense (an MLP over a flattened 4x4x2 map) and conv (convnet_s at width 1/8 on 8x8x3)
SHAPES = {"mlp": (4, 4, 2), "convnet_s": (8, 8, 3)}
GENES = 4


def _cfg(arch, encoding, rules, genes=GENES, **genetic):
    # a low threshold, so that T = 2 steps of these tiny layers spike
    spiking = NeuronConfig(lif=LIFConfig(v_th=0.3))
    return M.ModelConfig(arch=arch, num_classes=5, T=2, width=1.0 if arch == "mlp" else 0.125, hidden=(12, 10),
                         spiking=spiking,
                         genetic=GeneticConfig(encoding=encoding, genes=genes, rules=rules, **genetic)).validate()


@functools.lru_cache(maxsize=None)
def _setup(arch, encoding, rules):
    model = M.build_model(_cfg(arch, encoding, rules, execution="factorised" if rules == 1 else "auto"))
    layout = A.make_layout(model.cfg.genetic, *M.describe(model, SHAPES[arch]))
    variables = _jit(lambda k: M.init_variables(model, k, SHAPES[arch]))(jax.random.key(0))
    return model, layout, variables


def _allocation(layout, seed, at_max=True):
    """A fixed, uneven allocation: genes 1..g per rule, rules 1..R; with ``at_max`` the
    first layer at the maximum, else every layer below it (``G_r`` smaller than built)."""
    rng = np.random.default_rng(seed)
    n = len(layout.layers)
    genes = rng.integers(1, layout.genes + (1 if at_max else 0), (n, layout.rules))
    rules = rng.integers(1, layout.rules + 1, (n,))
    if at_max:
        genes[0], rules[0] = layout.genes, layout.rules
    return A.Allocation(jnp.asarray(genes, jnp.int32), jnp.asarray(rules, jnp.int32))


def _data(arch):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(6,) + SHAPES[arch]) * 2.0, jnp.float32)
    return x, jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)


def _loss_fn(model, variables, x, target):
    """A smooth loss of the logits (train-mode batch norm); grads w.r.t. ``params``."""
    def loss(params):
        logits, _ = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
        return jnp.sum(jnp.tanh(logits) * target), logits
    return jax.value_and_grad(loss, has_aux=True)


# The comparisons run in float64. The two sides sum the same terms in another order
# (zero-padded blocks, batched matmuls), and these tiny nets amplify rounding a lot
# (batch norm over channels of almost constant current, surrogate gradients): in
# float32 entries far below an array's scale differed by up to 13% (2e-3 of the
# array's largest entry); in float64 the worst difference is 1.3e-7 of it.
TOL = 1e-6


def _f64(tree):
    return jax.tree_util.tree_map(
        lambda a: jnp.asarray(a, jnp.float64) if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating) else a, tree)


def _close(a, b, tol=TOL):
    """Every entry within ``tol`` of the array's largest magnitude."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype == np.float64
    np.testing.assert_allclose(a, b, rtol=0, atol=tol * max(float(np.max(np.abs(b))), 1e-30))


def _sq(tree):
    return float(sum(jnp.sum(jnp.square(v)) for v in jax.tree_util.tree_leaves(tree)))


# every (architecture, encoding) with two rules (stacked arrays, a rule mask); one rule
# (unstacked arrays) once per encoding, on the factorised path (rules = 1 is the only
# one it has; the directly built network materialises W)
CASES = [(arch, enc, 2) for arch in SHAPES for enc in ("position", "neuron")] + [
    ("convnet_s", "neuron", 1), ("mlp", "position", 1)]


@pytest.mark.parametrize("arch,encoding,rules", CASES)
def test_masked_network_equals_the_directly_built_one(arch, encoding, rules):
    model, layout, variables = _setup(arch, encoding, rules)  # built in float32, as always
    alloc = _allocation(layout, seed=3)
    small = M.build_model(dataclasses.replace(
        model.cfg, genetic=dataclasses.replace(model.cfg.genetic, layer_genes=A.layer_genes(alloc, layout))))
    # the direct network's own parameter tree is exactly the slices' (structure and shapes)
    own = jax.eval_shape(lambda k: M.init_variables(small, k, SHAPES[arch]), jax.random.key(0))["params"]
    small_params = A.slice_params(variables["params"], alloc, layout)
    assert jax.tree_util.tree_structure(own) == jax.tree_util.tree_structure(small_params)
    assert jax.tree_util.tree_map(lambda a: a.shape, own) == jax.tree_util.tree_map(lambda a: a.shape, small_params)
    with jax.enable_x64(True):
        _masked_equals_direct(arch, model, small, layout, variables, alloc)


def _masked_equals_direct(arch, model, small, layout, variables, alloc):
    params = _f64(A.rescale_init(variables["params"], alloc, layout))
    x, target = _f64(_data(arch))
    batch_stats = _f64(variables["batch_stats"])
    masked = {"batch_stats": batch_stats, "allocation": A.allocation_variables(alloc, layout)}
    (loss_m, logits_m), grads_m = _jit(_loss_fn(model, masked, x, target))(params)

    small_params = A.slice_params(params, alloc, layout)
    (loss_d, logits_d), grads_d = _jit(_loss_fn(small, {"batch_stats": batch_stats}, x, target))(small_params)

    _close(logits_m, logits_d)
    assert float(jnp.std(logits_d)) > 1e-3  # not a trivially silent network
    sliced = A.slice_params(grads_m, alloc, layout)
    jax.tree_util.tree_map(_close, sliced, grads_d)
    # the masked gradient has nothing outside the active slices
    np.testing.assert_allclose(_sq(grads_m), _sq(sliced), rtol=1e-5)
    assert _sq(grads_d) > 0


@pytest.mark.parametrize("arch,encoding,rules", CASES)
def test_param_count_equals_the_directly_built_pytree(arch, encoding, rules):
    model, layout, _ = _setup(arch, encoding, rules)
    for seed, at_max in ((3, True), (4, False)):
        alloc = _allocation(layout, seed, at_max)
        small = M.build_model(dataclasses.replace(
            model.cfg, genetic=dataclasses.replace(model.cfg.genetic, layer_genes=A.layer_genes(alloc, layout))))
        shapes = jax.eval_shape(lambda k: M.init_variables(small, k, SHAPES[arch]), jax.random.key(0))["params"]
        count = int(A.param_count(alloc, layout))
        assert count == count_scalars(shapes)
        assert count == energy.parameter_report(*M.describe(small, SHAPES[arch])).stored_params
    # the full allocation counts the maximal network
    full = A.uniform(layout, layout.genes, layout.rules)
    max_shapes = jax.eval_shape(lambda k: M.init_variables(model, k, SHAPES[arch]), jax.random.key(0))["params"]
    assert int(A.param_count(full, layout)) == count_scalars(max_shapes)


def test_shared_arrays_count_once_at_their_largest_active_block():
    """By hand: neuron-mode MLP 32 -> 12 -> 10 -> 5 (a 4x4x2 image), g = 4, R = 2."""
    _, layout, _ = _setup("mlp", "neuron", 2)
    assert [lay.name for lay in layout.layers] == ["fc1_dense", "fc2_dense", "readout"]
    alloc = A.Allocation(jnp.asarray([[3, 2], [1, 4], [2, 4]], jnp.int32), jnp.asarray([2, 1, 2], jnp.int32))
    # G_1 at max(3, 1, 2) = 3, G_2 at max(2, -, 4) = 4 (fc2 has rule 2 off)
    g = 3 * 3 + 4 * 4
    # the MLP flattens the image first: populations input(32) [3, 2], fc1(12) [max(3,1), 2],
    # fc2(10) [max(1,2), 4], out(5) [2, 4]; dense layers over vectors have no spatial code
    pops = 32 * (3 + 2) + 12 * (3 + 2) + 10 * (2 + 4) + 5 * (2 + 4)
    fixed = 2 * (12 + 10) + 5  # two batch norms, the read-out bias
    assert int(A.param_count(alloc, layout)) == g + pops + fixed


def test_vmapped_population_equals_the_loop():
    setup = _setup("convnet_s", "neuron", 2)  # shared populations: the widest case
    with jax.enable_x64(True):
        _vmap_equals_loop(*setup)


def _vmap_equals_loop(model, layout, variables):
    allocs = [_allocation(layout, seed) for seed in (3, 5, 6)]
    x, target = _f64(_data("convnet_s"))
    variables = _f64(variables)

    def one(alloc):
        masked = {"batch_stats": variables["batch_stats"], "allocation": A.allocation_variables(alloc, layout)}
        (loss, _), grads = _loss_fn(model, masked, x, target)(A.rescale_init(variables["params"], alloc, layout))
        return loss, grads, A.param_count(alloc, layout)

    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), *allocs)
    vmapped = _jit(jax.vmap(one))(stacked)
    one_jit = _jit(one)
    for i, alloc in enumerate(allocs):
        looped = one_jit(alloc)
        # Same process, same program per individual; vmap batches the matmuls, which may
        # sum in another order: rounding only (TOL), counts exactly.
        assert int(vmapped[2][i]) == int(looped[2])
        _close(vmapped[0][i], looped[0])
        jax.tree_util.tree_map(lambda a, b: _close(a[i], b), vmapped[1], looped[1])
    assert len({round(float(v), 4) for v in vmapped[0]}) == 3  # the individuals do differ


@pytest.mark.parametrize("encoding", ["position", "neuron"])
def test_masked_weights_start_at_the_target_variance(encoding):
    """rescale_init + scales give W the Kaiming variance at its active size: mean
    ||W||^2 over draws equals fan_in * C_out * 2/fan_in (a wrong scale is off by (g/m)^R)."""
    model = M.build_model(_cfg("convnet_s", encoding, 2, genes=8))
    layout = A.make_layout(model.cfg.genetic, *M.describe(model, SHAPES["convnet_s"]))
    alloc = A.Allocation(jnp.asarray([[2, 3], [3, 2], [2, 2], [8, 8]], jnp.int32), jnp.asarray([2, 2, 2, 1], jnp.int32))
    x = jnp.ones((2,) + SHAPES["convnet_s"], jnp.float32)

    def sq(key):
        v = M.init_variables(model, key, SHAPES["convnet_s"])
        v = {**v, "params": A.rescale_init(v["params"], alloc, layout),
             "allocation": A.allocation_variables(alloc, layout)}
        _, out = model.apply(v, x, mutable=["weight_sq", "batch_stats"])
        return out["weight_sq"]

    # ||W||^2 of a draw is heavy-tailed (few genes, products of rules): 1,024 draws put
    # the mean within 10% (measured 0.90-1.03); a missing rescale is off by >= 8/3.
    draws = _jit(jax.vmap(sq))(jax.random.split(jax.random.key(2), 1024))
    for layer in layout.layers:
        expected = layer.geometry.fan_in * layer.geometry.c_out * 2.0 / layer.geometry.fan_in
        ratio = float(jnp.mean(draws[layer.name]["frobenius_sq"])) / expected
        assert 0.8 < ratio < 1.25, (layer.name, ratio)


def test_genome_maps_to_counts_in_range_and_back():
    _, layout, _ = _setup("convnet_s", "position", 2)
    z = jnp.asarray(np.random.default_rng(0).normal(size=(len(layout.layers), layout.rules + 1)) * 4, jnp.float32)
    alloc = A.from_genome(z, layout)
    assert int(alloc.genes.min()) >= 1 and int(alloc.genes.max()) <= layout.genes
    assert int(alloc.rules.min()) >= 1 and int(alloc.rules.max()) <= layout.rules
    extreme = A.from_genome(jnp.stack([jnp.full(z.shape[1], -50.0), jnp.full(z.shape[1], 50.0)] * 2), layout)
    assert extreme.genes[0].tolist() == [1, 1] and extreme.genes[1].tolist() == [GENES, GENES]
    assert extreme.rules.tolist() == [1, 2, 1, 2]
    back = A.from_genome(A.to_genome(alloc, layout), layout)
    assert back.genes.tolist() == alloc.genes.tolist() and back.rules.tolist() == alloc.rules.tolist()


def test_over_budget_allocation_is_projected_onto_the_budget():
    _, layout, _ = _setup("convnet_s", "neuron", 2)
    full = int(A.param_count(A.uniform(layout, layout.genes, layout.rules), layout))
    floor = int(A.param_count(A.uniform(layout, 1, layout.rules), layout))
    project = _jit(lambda a, b: A.project(a, layout, b))
    for seed in range(4):
        alloc = _allocation(layout, seed)
        count = int(A.param_count(alloc, layout))
        # within budget: unchanged
        same = project(alloc, count)
        assert same.genes.tolist() == alloc.genes.tolist() and same.rules.tolist() == alloc.rules.tolist()
        for budget in (count - 1, (count + floor) // 2):
            p = project(alloc, budget)
            assert int(A.param_count(p, layout)) <= budget
            assert p.rules.tolist() == alloc.rules.tolist()
            g, h = np.asarray(alloc.genes).ravel(), np.asarray(p.genes).ravel()
            assert np.all(h <= g) and np.all(h >= 1)
            assert np.all((g[:, None] >= g[None, :]) <= (h[:, None] >= h[None, :]))  # order kept
            # the largest scale: one gene more wherever it can grow would break the budget
            grown = alloc._replace(genes=jnp.asarray(np.minimum(np.asarray(p.genes) + 1, np.asarray(alloc.genes))))
            assert int(A.param_count(grown, layout)) > budget or grown.genes.tolist() == alloc.genes.tolist()
    assert full > floor


def test_gsnn_params_reports_an_allocation():
    counts = ((4, 3), (2,), (1, 4), (3,))
    rep = cli.params_report("convnet_s", 5, "position", 4, width=0.125, input_shape=SHAPES["convnet_s"],
                            rules=2, allocation=counts)
    model = M.build_model(M.ModelConfig(arch="convnet_s", num_classes=5, width=0.125,
                                        genetic=GeneticConfig(encoding="position", genes=4, rules=2)).validate())
    layout = A.make_layout(model.cfg.genetic, *M.describe(model, SHAPES["convnet_s"]))
    assert rep["stored_params"] == int(A.param_count(A.from_counts(counts, layout), layout))
    assert rep["allocation"] == {"conv1_conv": [4, 3], "conv2_conv": [2], "conv3_conv": [1, 4], "readout": [3]}
    with pytest.raises(ValueError, match="needs 1..2 rules of 1..4 genes"):
        A.from_counts(((5,), (2,), (1,), (3,)), layout)


def test_per_rule_arrays_keep_their_parameter_group():
    _, layout, variables = _setup("mlp", "neuron", 2)
    labels = group_labels(A.slice_params(variables["params"], _allocation(layout, 3), layout))
    assert set(labels["G"]) == {"interaction"} and set(labels["pop_fc1"]) == {"encoding"}
