"""The search over allocations (evolve.allocation, gsnn.evolution.budget; DESIGN 1.3): the
population of masked individuals evaluates as the loop over them, the budget is kept by
projection or costs exactly the documented penalty, a small search returns an allocation
within budget, ``both`` holds the wiring genome and ``z`` together, and the wiring
genome's evaluation is what it was."""
from __future__ import annotations

import dataclasses
import json

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

from gsnn import config as cfgs
from gsnn import data as D
from gsnn import evolution as EV
from gsnn.core.tree import count_scalars
from gsnn.evolution import allocation as A
from gsnn.evolution import budget as BG
from gsnn.nn import networks as M


def _cfg(genome="allocation", over_budget="project", penalty=1.0, budget=0, population=4, generations=2):
    e = dict(search=cfgs.SearchConfig(population=population, generations=generations, std_init=1.0),
             inner=cfgs.InnerLoopConfig(steps=2, batch=16, val_size=40),
             evaluation=cfgs.EvaluationConfig(shard=False, chunk_size=0),
             fitness=cfgs.FitnessConfig(signal_every=0), final_variants=())
    return cfgs.Config(
        name="tiny_alloc",
        model=M.ModelConfig(arch="mlp", hidden=(16,), T=2,
                            genetic=cfgs.GeneticConfig(encoding="position", genes=4, rules=2)),
        train=cfgs.TrainConfig(learning_rate=0.05, epochs=1, batch_size=16, log_every=0),
        evolve=cfgs.EvolveConfig(**e, allocation=cfgs.AllocationConfig(
            genome=genome, over_budget=over_budget, penalty=penalty, budget=budget, max_genes=8)),
    ).validate()


SHAPE = (8, 8, 3)
BUDGET = 1_600  # below the uniform allocation's 1,946: some individuals are over it
PENALTY = 2.5


@pytest.fixture(scope="module")
def data():
    """The demo images at 8x8 (every 4th pixel): tiny networks, quick to compile."""
    d = D.load_dataset("demo").subset(train_per_class=12, test_per_class=4, seed=0)
    return D.ArrayDataset("demo_8px", d.train_images[:, ::4, ::4], d.train_labels, d.test_images[:, ::4, ::4],
                          d.test_labels, d.class_names)


@pytest.fixture(scope="module")
def problem(data):
    """The penalised search (every evaluation below is of this one problem)."""
    return EV.make_problem(_cfg(over_budget="penalty", penalty=PENALTY, budget=BUDGET), data)


def _genomes(search, seed, n):
    """``n`` genomes ``{"allocation": z}`` of different allocations (some over the budget)."""
    z = np.random.default_rng(seed).normal(size=(n, len(search.layout.layers), search.layout.rules + 1)) * 2.0
    return {BG.KEY: jnp.asarray(z, jnp.float32)}


def _args(problem):
    xb, yb = EV.generation_batches(problem, 0)
    return jax.random.key(3), jnp.asarray(xb), jnp.asarray(yb), jnp.asarray(0, jnp.int32)


def _search(problem, **changes):
    """The problem's search with other budget settings (its layout: the same network)."""
    return BG.make_search(_cfg(**changes), problem.search.layout)


def test_the_budget_defaults_to_the_uniform_allocations_count_and_starts_there(problem):
    s = _search(problem)
    assert (s.layout.genes, s.layout.rules) == (8, 2)  # built at max_genes x the model's rules
    small = M.build_model(_cfg().model)  # the model as configured: 4 genes x 2 rules
    count = count_scalars(jax.eval_shape(lambda k: M.init_variables(small, k, SHAPE), jax.random.key(0))["params"])
    assert s.budget == count == int(A.param_count(s.uniform, s.layout)) > BUDGET
    start = A.from_genome(BG.start_genome(s), s.layout)
    assert BG.counts(start) == ((4, 4), (4, 4))


def test_vmapped_population_of_allocations_equals_the_loop(problem):
    pop = _genomes(problem.search, 0, 4)
    args = _args(problem)
    vm = jax.device_get(problem.evaluate_population(pop, *args))
    counts = set()
    for i in range(4):
        one = jax.device_get(problem.evaluate_one(jax.tree_util.tree_map(lambda a: a[i], pop), *args))
        assert int(vm["params"][i]) == int(one["params"])
        np.testing.assert_allclose(vm["losses"][i], one["losses"], rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(vm["fitness"][i], one["fitness"], rtol=2e-4, atol=2e-5)
        counts.add(int(one["params"]))
    assert len(counts) > 1  # the individuals are different networks


def test_over_budget_individuals_are_projected_onto_the_budget(problem):
    s = _search(problem, budget=BUDGET)
    z = _genomes(s, 1, 6)[BG.KEY]
    raw = [int(A.param_count(A.from_genome(zi, s.layout), s.layout)) for zi in z]
    assert max(raw) > s.budget  # some are over it
    for zi in z:
        alloc, info = BG.individual(zi, s)
        assert int(info["params"]) <= s.budget and float(info["budget_penalty"]) == 0.0
        assert int(info["params"]) == int(A.param_count(alloc, s.layout))


def test_over_budget_individuals_lose_exactly_the_documented_penalty(problem):
    pop = _genomes(problem.search, 2, 4)
    out = jax.device_get(problem.evaluate_population(pop, *_args(problem)))
    excess = np.maximum(0.0, np.asarray(out["params"], np.float64) / BUDGET - 1.0)
    assert (excess > 0).any() and (excess == 0).any()
    np.testing.assert_allclose(out["budget_penalty"], PENALTY * excess, rtol=1e-6)
    unpenalised = EV.fitness.combine(out["accuracy_term"], out["spatial"], out["temporal"], out["lambda_s"],
                                     out["lambda_t"])
    np.testing.assert_allclose(unpenalised - out["fitness"], PENALTY * excess, rtol=1e-5, atol=1e-6)


def test_a_small_search_returns_an_allocation_within_budget_and_its_finals(data):
    cfg = _cfg(budget=BUDGET, population=2, generations=1)
    evo = EV.evolve(cfg, None, dataset=data, progress=False)
    s = evo["problem"].search
    alloc, info = BG.individual(evo["best_genome"][BG.KEY], s)
    assert int(info["params"]) <= BUDGET and len(evo["generations"]) == 1
    finals = EV.pipeline.allocation_finals(cfg, evo["problem"], evo)
    rec = finals["record"]
    assert rec["evolved"]["params"] == int(info["params"]) and rec["evolved"]["within_budget"]
    assert rec["random"]["params"] <= BUDGET and rec["uniform"]["counts"] == [[4, 4], [4, 4]]
    json.dumps(rec)  # JSON-ready
    # each final's directly built network has the parameters its record counts
    for variant in ("evolved", "random", "uniform"):
        model = M.build_model(finals["models"][variant])
        shapes = jax.eval_shape(lambda k: M.init_variables(model, k, SHAPE), jax.random.key(0))["params"]
        assert count_scalars(shapes) == rec[variant]["params"], variant
    assert finals["models"]["uniform"] == cfg.model  # the model as configured
    assert "--allocation" in rec["evolved"]["params_command"]


def test_random_allocations_fill_the_budget_and_differ_by_key(problem):
    s = _search(problem, budget=BUDGET)
    draws = [BG.random_allocation(jax.random.key(i), s) for i in range(3)]
    assert len({BG.counts(d) for d in draws}) > 1
    for d in draws:
        count = int(A.param_count(d, s.layout))
        assert count <= s.budget
        # one more gene wherever one fits breaks the budget (or every gene is at the maximum)
        grown = d._replace(genes=jnp.minimum(d.genes + 1, s.layout.genes))
        assert int(A.param_count(grown, s.layout)) > s.budget or bool(jnp.all(d.genes == s.layout.genes))


def test_both_concatenates_the_wiring_genome_and_the_allocation(data):
    p = EV.make_problem(_cfg(genome="both"), data)
    wiring = EV.genome.default_genome(p.spec, p.reference_params)
    mean = BG.start(p.search, wiring)
    assert set(mean) == set(wiring) | {BG.KEY}
    z = mean[BG.KEY]
    assert z.shape == (len(p.search.layout.layers), p.search.layout.rules + 1)
    assert EV.genome.genome_size(mean) == EV.genome.genome_size(wiring) + z.size
    # the strategy's flat vector is the concatenation (its ravel of the pytree)
    flat, _ = jax.flatten_util.ravel_pytree(mean)
    assert flat.size == EV.genome.genome_size(wiring) + z.size


def test_the_wiring_genome_is_evaluated_as_before(data):
    """The default section changes nothing: no search, no budget keys, the zero genome."""
    cfg = dataclasses.replace(_cfg(), evolve=dataclasses.replace(_cfg().evolve, allocation=cfgs.AllocationConfig()))
    p = EV.make_problem(cfg, data)
    assert p.search is None and p.steps.model.cfg.genetic.genes == 4
    wiring = EV.genome.default_genome(p.spec, p.reference_params)
    assert BG.start(None, wiring) is wiring and BG.KEY not in wiring
    out = jax.eval_shape(p.evaluate_one, wiring, *_args(p))
    assert "params" not in out and "budget_penalty" not in out


def test_a_stored_config_without_the_section_loads_as_the_wiring_genome(tmp_path):
    d = json.loads(cfgs.Config().to_json())
    del d["evolve"]["allocation"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(d))
    assert cfgs.read_config_file(path).evolve.allocation == cfgs.AllocationConfig()
