"""Fitness of an evolved wiring rule: accuracy and the two dynamic regularisation
operators of the spatio-temporal evolution (DESIGN 1.3)::

    F = acc_val + lambda_S(t) * H_S(G) + lambda_T(t) * D_T

* ``H_S`` (spatial entropy): normalised Shannon entropy of ``G``'s singular values, in
  [0, 1]; high for information-rich, full-rank interactions.
* ``D_T`` (temporal difference): relative drop of the training loss over the inner
  loop, ``(L_start - L_end) / L_start``; how fast the wiring adapts.
* ``lambda_S(t)``, ``lambda_T(t)``: optax schedules over generations ``t``, strong early
  and decaying to zero by default, so that accuracy decides at the end.

The abstract of Pan et al. (2024) names the operators; the formulas are this project's
definitions. Both are registered by name with alternatives (:data:`SPATIAL_OPERATORS`,
:data:`TEMPORAL_OPERATORS`); a new definition is a function of an
:class:`InnerLoopTrace` returning a scalar, added to the registry.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gsnn.core import genetic
from gsnn.core.tree import lookup


class InnerLoopTrace(NamedTuple):
    """What one individual's evaluation produced (all arrays; vmappable).

    Attributes:
      interaction_init: ``[g, g]`` the genome's ``G`` before inner training.
      interaction_end: ``[g, g]`` ``G`` after inner training.
      losses: ``[K]`` training loss of each inner step (before its update).
      val_accuracy: ``[]`` validation accuracy after inner training.
    """

    interaction_init: jax.Array
    interaction_end: jax.Array
    losses: jax.Array
    val_accuracy: jax.Array


def _window(k: int) -> int:
    return max(1, k // 8)


def loss_start_end(losses: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean loss over the first and the last ``max(1, K // 8)`` inner steps."""
    w = _window(losses.shape[0])
    return jnp.mean(losses[:w]), jnp.mean(losses[-w:])


def spatial_entropy(trace: InnerLoopTrace) -> jax.Array:
    """``H_S``: normalised singular-value entropy of the genome's ``G`` (DESIGN 1.3)."""
    return genetic.spectral_entropy(trace.interaction_init)


def effective_rank(trace: InnerLoopTrace) -> jax.Array:
    """Alternative ``H_S``: ``exp(entropy of sigma^2 / sum sigma^2) / g`` (Roy & Vetterli
    2007, on the energy spectrum), in (0, 1]; penalises a few dominant directions harder.
    With interaction rules, the mean over rules."""
    if trace.interaction_init.ndim == 3:
        return jnp.mean(jax.vmap(lambda G: effective_rank(trace._replace(interaction_init=G)))(trace.interaction_init))
    sv = jnp.linalg.svd(trace.interaction_init, compute_uv=False)
    p = sv**2 / (jnp.sum(sv**2) + 1e-12)
    h = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.maximum(p, 1e-12)), 0.0))
    return jnp.exp(h) / sv.shape[0]


def temporal_difference(trace: InnerLoopTrace) -> jax.Array:
    """``D_T``: relative drop of the training loss, ``(L_start - L_end) / L_start``."""
    start, end = loss_start_end(trace.losses)
    return (start - end) / start


def learning_curve_area(trace: InnerLoopTrace) -> jax.Array:
    """Alternative ``D_T``: ``1 - mean(losses) / L_start``; rewards dropping early, not
    only by the end (area above the normalised learning curve)."""
    start, _ = loss_start_end(trace.losses)
    return 1.0 - jnp.mean(trace.losses) / start


def _zero(trace: InnerLoopTrace) -> jax.Array:
    return jnp.zeros((), trace.losses.dtype)


SPATIAL_OPERATORS: dict[str, Callable[[InnerLoopTrace], jax.Array]] = {
    "spatial_entropy": spatial_entropy,
    "effective_rank": effective_rank,
    "none": _zero,
}
TEMPORAL_OPERATORS: dict[str, Callable[[InnerLoopTrace], jax.Array]] = {
    "temporal_difference": temporal_difference,
    "learning_curve_area": learning_curve_area,
    "none": _zero,
}

SCHEDULES = ("constant", "linear", "cosine", "exponential")

#: The fewest genes ``g`` a spatial operator is defined for (absent: any ``g >= 1``).
#: ``spatial_entropy`` divides by ``log g``, which is 0 at ``g = 1``.
MIN_GENES = {"spatial_entropy": 2}


def check_spatial_operator(name: str, genes: int) -> None:
    """Raises ``ValueError`` when the spatial operator ``name`` is undefined for
    ``genes`` genes, so that a run fails at build time instead of scoring every
    individual as diverged (a non-finite ``H_S``)."""
    need = MIN_GENES.get(name, 1)
    if genes < need:
        raise ValueError(f"evolve.spatial_operator={name!r} needs model.genetic.genes >= {need} (the spectral "
                         f"entropy of G divides by log g), got genes={genes}; set model.genetic.genes >= {need} "
                         f"or evolve.spatial_operator to 'effective_rank' or 'none'")


def lambda_schedule(kind: str, value: float, generations: int) -> optax.Schedule:
    """``lambda(t)`` over generations: ``value`` at ``t = 0``, decaying to 0 at
    ``generations`` (``exponential``: halves every ``generations / 4``)."""
    n = max(1, generations)
    if kind == "constant":
        return optax.constant_schedule(value)
    if kind == "linear":
        return optax.linear_schedule(value, 0.0, n)
    if kind == "cosine":
        return optax.cosine_decay_schedule(value, n)
    if kind == "exponential":
        return optax.exponential_decay(value, max(1, n // 4), 0.5)
    raise ValueError(f"unknown lambda schedule {kind!r}; valid: {list(SCHEDULES)}")


def get_operator(registry: dict, name: str, what: str):
    return lookup(registry, name, f"{what} operator", ordered=False)


def combine(accuracy, spatial, temporal, lambda_s, lambda_t):
    """``F = accuracy + lambda_s * spatial + lambda_t * temporal``: the one place of the
    formula. Only ``+`` and ``*``, in this order, so it takes NumPy or JAX arrays alike:
    the traced :func:`fitness` calls it with float32 per generation, the loop's
    comparable score with float64 and the final generation's lambdas."""
    return accuracy + lambda_s * spatial + lambda_t * temporal


def make_fitness(spatial_fn: Callable[[InnerLoopTrace], jax.Array],
                 temporal_fn: Callable[[InnerLoopTrace], jax.Array],
                 lambda_s: optax.Schedule, lambda_t: optax.Schedule) -> Callable[..., dict[str, jax.Array]]:
    """The fitness ``(trace, generation) -> dict``, ``F = acc_val + lambda_S(t) H_S +
    lambda_T(t) D_T`` (maximised), from the operators and weight schedules themselves
    (look names up in :data:`SPATIAL_OPERATORS` / :data:`TEMPORAL_OPERATORS` once,
    outside traced code).

    The dict holds ``fitness``, its parts (``val_accuracy``, ``spatial``, ``temporal``,
    ``lambda_s``, ``lambda_t``), ``loss_start``, ``loss_end`` and ``diverged``. A
    non-finite loss or fitness gives ``F = -inf`` (``diverged = True``); callers pass a
    large finite worst value to the strategy.
    """

    def fitness_fn(trace: InnerLoopTrace, generation: jax.Array) -> dict[str, jax.Array]:
        h_s = spatial_fn(trace)
        d_t = temporal_fn(trace)
        ls, lt = lambda_s(generation), lambda_t(generation)
        f = combine(trace.val_accuracy, h_s, d_t, ls, lt)
        diverged = ~(jnp.all(jnp.isfinite(trace.losses)) & jnp.isfinite(f))
        start, end = loss_start_end(trace.losses)
        return dict(
            fitness=jnp.where(diverged, -jnp.inf, f),
            val_accuracy=trace.val_accuracy,
            spatial=h_s,
            temporal=d_t,
            lambda_s=jnp.asarray(ls, jnp.float32),
            lambda_t=jnp.asarray(lt, jnp.float32),
            loss_start=start,
            loss_end=end,
            diverged=diverged,
        )

    return fitness_fn


def fitness(
    trace: InnerLoopTrace,
    generation: jax.Array,
    *,
    spatial: str = "spatial_entropy",
    temporal: str = "temporal_difference",
    lambda_s: optax.Schedule = optax.constant_schedule(0.0),
    lambda_t: optax.Schedule = optax.constant_schedule(0.0),
) -> dict[str, jax.Array]:
    """:func:`make_fitness` with the operators given by name, applied to one trace."""
    return make_fitness(get_operator(SPATIAL_OPERATORS, spatial, "spatial"),
                        get_operator(TEMPORAL_OPERATORS, temporal, "temporal"), lambda_s, lambda_t)(trace, generation)
