"""A surrogate fitness for the allocation genome, and evolution on it (DESIGN 1.3).

The inner-loop fitness (``K`` inner steps, then a validation loss) did not rank 13
allocations by their trained accuracy at any horizon measured (K = 10 to 320;
experiments/RESULTS.md, issue 26), while the allocations' own structure did (the genes
of conv1, rho -0.81). A surrogate is fitted to what the search is meant to find: the
validation accuracy of allocations trained at the full recipe.

* **Features** (:func:`features`): per encoded layer, the active genes summed over its
  active rules, and the active rules (``[2 L]``, layer order); traceable.
* **Model** (:class:`Ridge`): ridge regression of the trained accuracy on the
  standardised features, fitted on the host in float64 (:func:`fit_ridge`); its strength
  ``lam`` chosen by leave-one-out squared error over a fixed grid (:func:`choose_lambda`).
  How far it ranks an allocation it has not seen: :func:`nested_loo_predictions`, each
  left-out allocation predicted by a model whose ``lam`` was chosen without it.
* **Trust region** (:class:`Box`): a linear model extrapolates without limit, so the
  search is held inside the range of each feature that the trained allocations span;
  every unit of standardised distance outside it costs :data:`BOX_WEIGHT` fitness units.
* **Search** (:func:`evolve_on_surrogate`): CMA-ES over the allocation genome ``z``
  (:func:`gsnn.evolution.allocation.from_genome`), every individual's genes split evenly
  over its rules in each layer (:func:`gsnn.evolution.allocation.even_split`: the
  features see only a layer's sum, so the split would otherwise be wherever the search
  drifted, e.g. a rule of one gene; the even split is the study's uniform rows' own) and
  projected onto the budget (:func:`gsnn.evolution.allocation.project`; on a surrogate
  an evaluation costs nothing, so the projection's reason, no spent trainings, becomes:
  the result is always admissible), the fitness minimised
  ``-predict(features) + BOX_WEIGHT * box_excess``.
  The best individual over all generations is returned.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gsnn.evolution import allocation as A
from gsnn.evolution.strategies import make_strategy

#: Fitness units (the target's: accuracy points) per standardised unit outside the box:
#: larger than any prediction's range, so the box is a wall, not a trade.
BOX_WEIGHT = 100.0
#: The ridge strengths ``lam`` :func:`choose_lambda` tries (standardised features).
LAMBDAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def features(alloc: A.Allocation) -> jax.Array:
    """``[2 L]`` float32: per encoded layer, active genes (all active rules), then active
    rules: ``[genes_0, rules_0, genes_1, rules_1, ...]``. Traceable (vmapped over a population)."""
    genes = jnp.sum(A.active_genes(alloc), axis=1).astype(jnp.float32)
    return jnp.stack([genes, alloc.rules.astype(jnp.float32)], axis=1).reshape(-1)


def feature_names(layout: A.Layout) -> list[str]:
    """The names of :func:`features`' entries: ``"<layer> genes"``, ``"<layer> rules"``."""
    return [f"{layer.name} {kind}" for layer in layout.layers for kind in ("genes", "rules")]


class Ridge(NamedTuple):
    """A fitted ridge regression: ``y = intercept + ((x - center) / scale) @ weights``.

    ``center``, ``scale``, ``weights``: ``[F]``; ``intercept``: the training targets' mean;
    ``lam``: its strength."""

    center: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    intercept: float
    lam: float


def fit_ridge(x, y, lam: float) -> Ridge:
    """Ridge regression of ``y [n]`` on ``x [n, F]``: features standardised by their mean
    and std (ddof 0; a constant feature keeps scale 1 and gets weight 0), the intercept
    unpenalised (the mean of ``y``), ``weights = (Z^T Z + lam I)^-1 Z^T (y - mean y)``.

    Raises:
      ValueError: shapes that do not match, fewer than 2 points, or ``lam <= 0``.
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"fit_ridge takes x [n, F] and y [n]; got {x.shape} and {y.shape}")
    if x.shape[0] < 2 or lam <= 0:
        raise ValueError(f"fit_ridge needs at least 2 points and lam > 0; got n = {x.shape[0]}, lam = {lam}")
    center, scale = x.mean(0), x.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    z = (x - center) / scale
    w = np.linalg.solve(z.T @ z + lam * np.eye(x.shape[1]), z.T @ (y - y.mean()))
    return Ridge(center, scale, w, float(y.mean()), float(lam))


def predict(model: Ridge, x):
    """The model's prediction at ``x [..., F]`` (``jnp``: traceable)."""
    return model.intercept + ((x - jnp.asarray(model.center, jnp.float32)) / jnp.asarray(model.scale, jnp.float32)) \
        @ jnp.asarray(model.weights, jnp.float32)


def _host_predict(model: Ridge, x: np.ndarray) -> np.ndarray:
    return model.intercept + ((x - model.center) / model.scale) @ model.weights


def loo_predictions(x, y, lam: float) -> np.ndarray:
    """``[n]``: each point predicted by the model fitted, at ``lam``, on the others."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    keep = lambda i: np.arange(len(y)) != i
    return np.array([_host_predict(fit_ridge(x[keep(i)], y[keep(i)], lam), x[i]) for i in range(len(y))])


def choose_lambda(x, y, grid: Sequence[float] = LAMBDAS) -> float:
    """The ``lam`` of ``grid`` with the smallest leave-one-out mean squared error (a tie:
    the larger, the smoother model)."""
    y = np.asarray(y, np.float64)
    errors = [float(np.mean((loo_predictions(x, y, lam) - y) ** 2)) for lam in grid]
    best = min(errors)
    return max(lam for lam, e in zip(grid, errors) if e <= best * (1 + 1e-12))


def nested_loo_predictions(x, y, grid: Sequence[float] = LAMBDAS) -> np.ndarray:
    """``[n]``: each point predicted by the model fitted on the others with the ``lam``
    :func:`choose_lambda` picks on the others alone, so no choice has seen the point.
    Needs at least 4 points (3 to choose ``lam`` by leaving one out)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(y) < 4:
        raise ValueError(f"nested_loo_predictions needs at least 4 points; got {len(y)}")
    out = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        lam = choose_lambda(x[keep], y[keep], grid)
        out.append(_host_predict(fit_ridge(x[keep], y[keep], lam), x[i]))
    return np.array(out)


class Box(NamedTuple):
    """The trust region: ``lo``, ``hi`` ``[F]``, each feature's range over the trained
    allocations; ``scale [F]`` the units of distance outside it (the model's ``scale``)."""

    lo: np.ndarray
    hi: np.ndarray
    scale: np.ndarray


def box_of(x, model: Ridge) -> Box:
    x = np.asarray(x, np.float64)
    return Box(x.min(0), x.max(0), model.scale)


def box_excess(x, box: Box):
    """Standardised distance of ``x [..., F]`` outside the box, summed over features
    (0 inside); ``jnp``, traceable."""
    lo, hi, s = (jnp.asarray(a, jnp.float32) for a in box)
    return jnp.sum((jnp.maximum(0.0, x - hi) + jnp.maximum(0.0, lo - x)) / s, axis=-1)


def surrogate_fitness(z: jax.Array, layout: A.Layout, budget: int, model: Ridge, box: Box):
    """To minimise: ``-predict + BOX_WEIGHT * box_excess`` of ``z``'s allocation, its genes
    split evenly over each layer's rules and projected onto ``budget``; and that
    allocation. Pure, traceable."""
    alloc = A.project(A.even_split(A.from_genome(z, layout), layout), layout, budget)
    f = features(alloc)
    return -predict(model, f) + BOX_WEIGHT * box_excess(f, box), alloc


def evolve_on_surrogate(layout: A.Layout, budget: int, model: Ridge, box: Box, start: A.Allocation,
                        key: jax.Array, *, population: int = 32, generations: int = 100,
                        std_init: float = 1.0) -> tuple[A.Allocation, list[dict]]:
    """CMA-ES over the allocation genome on the surrogate, starting at ``start``.

    Returns the best allocation seen (lowest fitness over every generation's members,
    within ``budget`` by the projection) and the history: per generation ``best`` and
    ``mean`` predicted accuracy and ``best_box_excess`` of its members.
    """
    template = A.to_genome(start, layout)
    strategy = make_strategy("cma_es", population, template, std_init=std_init, elite_ratio=0.5)
    evaluate = jax.jit(jax.vmap(lambda z: surrogate_fitness(z, layout, budget, model, box)))
    k_init, key = jax.random.split(key)
    state = strategy.init(k_init, template)
    best_f, best, history = np.inf, start, []
    for g in range(generations):
        k_ask, k_tell = jax.random.split(jax.random.fold_in(key, g))
        zs, state = strategy.es.ask(k_ask, state, strategy.params)
        fit, allocs = evaluate(zs)
        state, _ = strategy.es.tell(k_tell, zs, fit, state, strategy.params)
        fit = np.asarray(fit)
        i = int(np.argmin(fit))
        excess = np.asarray(box_excess(jax.vmap(features)(allocs), box))
        if fit[i] < best_f:
            best_f, best = float(fit[i]), jax.tree_util.tree_map(lambda a: a[i], allocs)
        pred = -fit + BOX_WEIGHT * excess
        history.append(dict(best=float(pred[i]), mean=float(pred.mean()), best_box_excess=float(excess[i])))
    return best, history
