"""The surrogate fitness of the allocation genome (gsnn.evolution.surrogate): its features
count what the allocation activates, the ridge fit equals an independent least-squares
solution, the choice of its strength follows the data, its nested leave-one-out never
uses the point it predicts, the box is a wall, and the search on it finds the
brute-force optimum of a small allocation space within the budget."""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsnn import config as cfgs
from gsnn.evolution import allocation as A
from gsnn.evolution import surrogate as SU
from gsnn.nn import networks as M


@pytest.fixture(scope="module")
def layout():
    model = M.build_model(M.ModelConfig(arch="mlp", hidden=(16,), T=2,
                                        genetic=cfgs.GeneticConfig(encoding="position", genes=4, rules=2)))
    return A.make_layout(model.cfg.genetic, *M.describe(model, (8, 8, 3)))


def test_features_are_each_layers_active_genes_and_rules():
    alloc = A.Allocation(jnp.asarray([[3, 5], [4, 7]], jnp.int32), jnp.asarray([2, 1], jnp.int32))
    np.testing.assert_array_equal(np.asarray(SU.features(alloc)), [8, 2, 4, 1])  # layer 1's second rule is off


def test_the_even_split_keeps_each_layers_genes_and_rules(layout):
    alloc = A.Allocation(jnp.asarray([[1, 4], [3, 2]], jnp.int32), jnp.asarray([2, 1], jnp.int32))
    even = A.even_split(alloc, layout)
    np.testing.assert_array_equal(np.asarray(even.genes), [[3, 2], [3, 1]])  # 5 over two rules; 3 over one
    np.testing.assert_array_equal(np.asarray(SU.features(even)), np.asarray(SU.features(alloc)))
    # the search evaluates the even split of what its genome decodes to (within budget: no projection)
    model = SU.Ridge(np.zeros(4), np.ones(4), np.ones(4), 0.0, 1.0)
    box = SU.Box(np.zeros(4), np.full(4, 9.0), np.ones(4))
    fit, seen = SU.surrogate_fitness(A.to_genome(alloc, layout), layout, 10**6, model, box)
    np.testing.assert_array_equal(np.asarray(seen.genes), [[3, 2], [3, 1]])
    assert float(fit) == -float(np.sum(np.asarray(SU.features(alloc))))


def test_the_ridge_fit_equals_an_augmented_least_squares_solution():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3)) * [1.0, 5.0, 0.2] + [0.0, 10.0, -3.0]
    y = x @ [0.5, -0.2, 3.0] + rng.normal(size=12)
    lam = 2.0
    model = SU.fit_ridge(x, y, lam)
    # independent: minimise |y - b - Z w|^2 + lam |w|^2 as one least-squares problem over
    # [w, b], the penalty rows sqrt(lam) I appended, the intercept unpenalised
    z = (x - x.mean(0)) / x.std(0)
    a = np.vstack([np.hstack([z, np.ones((12, 1))]), np.hstack([np.sqrt(lam) * np.eye(3), np.zeros((3, 1))])])
    sol = np.linalg.lstsq(a, np.concatenate([y, np.zeros(3)]), rcond=None)[0]
    np.testing.assert_allclose(model.weights, sol[:3], rtol=1e-9)
    np.testing.assert_allclose(model.intercept, sol[3], rtol=1e-9)
    np.testing.assert_allclose(np.asarray(SU.predict(model, jnp.asarray(x, jnp.float32))), z @ sol[:3] + sol[3],
                               rtol=1e-4)


def test_a_constant_feature_gets_no_weight_and_bad_input_says_what_to_fix():
    x = np.stack([np.arange(6.0), np.full(6, 3.0)], axis=1)
    model = SU.fit_ridge(x, 2 * np.arange(6.0), 1.0)
    assert model.weights[1] == 0 and model.scale[1] == 1
    with pytest.raises(ValueError, match="x \\[n, F\\] and y \\[n\\]"):
        SU.fit_ridge(x, np.arange(5.0), 1.0)
    with pytest.raises(ValueError, match="lam > 0"):
        SU.fit_ridge(x, np.arange(6.0), 0.0)
    with pytest.raises(ValueError, match="at least 4 points"):
        SU.nested_loo_predictions(x[:3], np.arange(3.0))


def test_the_strength_is_small_for_a_clean_line_and_largest_for_noise():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(14, 4))
    assert SU.choose_lambda(x, x @ [1.0, -2.0, 0.5, 0.0]) == min(SU.LAMBDAS)
    assert SU.choose_lambda(x, rng.normal(size=14)) == max(SU.LAMBDAS)


def test_leave_one_out_does_not_see_the_point_it_predicts():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(10, 2))
    y = x @ [1.0, 1.0] + 0.1 * rng.normal(size=10)
    loo = SU.nested_loo_predictions(x, y)
    moved = y.copy()
    moved[4] += 100.0  # only point 4's own prediction must stay as it was
    loo_moved = SU.nested_loo_predictions(x, moved)
    assert loo_moved[4] == pytest.approx(loo[4], abs=1e-12)
    assert not np.allclose(np.delete(loo_moved, 4), np.delete(loo, 4))
    plain = SU.loo_predictions(x, y, 1.0)  # the plain loop: refit on the others, as written by hand
    by_hand = [SU.fit_ridge(np.delete(x, i, 0), np.delete(y, i), 1.0) for i in range(10)]
    np.testing.assert_allclose(plain, [m.intercept + ((x[i] - m.center) / m.scale) @ m.weights
                                       for i, m in enumerate(by_hand)], rtol=1e-12)


def test_the_box_costs_nothing_inside_and_its_standardised_distance_outside():
    box = SU.Box(np.array([0.0, 1.0]), np.array([10.0, 2.0]), np.array([2.0, 0.5]))
    assert float(SU.box_excess(jnp.asarray([5.0, 1.5]), box)) == 0.0
    assert float(SU.box_excess(jnp.asarray([14.0, 0.0]), box)) == pytest.approx(4 / 2 + 1 / 0.5)


def test_the_search_on_the_surrogate_finds_the_brute_force_optimum_within_budget(layout):
    names = SU.feature_names(layout)
    assert len(names) == 4, names  # the MLP's two encoded layers, genes and rules each
    uniform = A.uniform(layout, 2, 1)  # the start, and its count the budget
    budget = int(A.param_count(uniform, layout))
    # a model that wants more genes in both layers and the second layer's second rule; the
    # box caps the genes at 3 (first layer) and 6 (second): the budget and the box both
    # bind at the optimum (without either, brute force finds a higher value)
    model = SU.Ridge(np.zeros(4), np.ones(4), np.array([1.0, 0.0, 0.5, 2.0]), 50.0, 1.0)
    box = SU.Box(np.array([1.0, 1.0, 1.0, 1.0]), np.array([3.0, 2.0, 6.0, 2.0]), np.ones(4))
    best, history = SU.evolve_on_surrogate(layout, budget, model, box, uniform, jax.random.key(0),
                                           population=16, generations=40)
    value = lambda alloc: float(SU.predict(model, SU.features(alloc)))
    # brute force over every evenly split allocation (the search's space: per layer 1..2
    # rules and 1..4 genes in each, split as evenly as can be)
    per_layer = [tuple(t // r + (i < t % r) for i in range(r)) for r in (1, 2) for t in range(r, 4 * r + 1)]
    assert len(per_layer) == 4 + 7
    best_value = -np.inf
    for c in itertools.product(per_layer, repeat=2):
        alloc = A.from_counts(c, layout)
        f = np.asarray(SU.features(alloc))
        if int(A.param_count(alloc, layout)) <= budget and float(SU.box_excess(jnp.asarray(f), box)) == 0:
            best_value = max(best_value, value(alloc))
    assert int(A.param_count(best, layout)) <= budget
    assert tuple(map(tuple, (np.asarray(best.genes)[i, :r] for i, r in enumerate(np.asarray(best.rules))))) \
        in set(itertools.product(per_layer, repeat=2))  # evenly split
    assert float(SU.box_excess(SU.features(best), box)) == 0
    assert value(best) == pytest.approx(best_value) and best_value > value(uniform)
    assert history[-1]["best"] <= best_value + 1e-4 and len(history) == 40
