"""One generation as a pure function: ``step(state, data) -> (state, metrics)``.

    key, k_ask, k_eval, k_tell = split(key, 4)
    population = ask(k_ask)                       # the strategy proposes
    metrics = evaluate(population, k_eval, data)  # every individual, vmapped
    fitness -> WORST_FITNESS where non-finite
    tell(k_tell, population, -fitness)            # evosax minimises

The step runs under ``jax.jit`` and under ``jax.lax.scan`` over a stack of
:class:`GenerationData` (several generations in one program); the host loop
(:mod:`gsnn.evolution.loop`) calls it once per generation with ``jit_parts=True``
(ask and tell jitted apart, the evaluation as the problem built it, possibly
sharded), fetching batches, tracking the best, checkpointing and logging around it.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

WORST_FITNESS = -1e9  # what a diverged individual scores (finite, so strategies stay sane)


class EvolutionState(NamedTuple):
    """The carry of the generation loop (a pytree).

    Attributes:
      es_state: the strategy's state.
      key: a typed PRNG key, split once per generation.
      generation: ``[] int32``, the index of the next generation (0-based).
    """

    es_state: Any
    key: jax.Array
    generation: jax.Array


class GenerationData(NamedTuple):
    """One generation's inner-loop minibatches, the same for every individual:
    ``images [K, B, H, W, C]`` and ``labels [K, B]`` (stack them on a leading axis
    for ``lax.scan``)."""

    images: jax.Array
    labels: jax.Array


def initial_state(es_state, key: jax.Array, generation: int = 0) -> EvolutionState:
    """The loop's carry before ``generation`` (0: a fresh run; a resumed run's count)."""
    return EvolutionState(es_state, key, jnp.asarray(generation, jnp.int32))


def make_evolution_step(
    strategy,
    evaluate_population: Callable,
    *,
    inject_nan: tuple[int, ...] = (),
    worst: float = WORST_FITNESS,
    jit_parts: bool = False,
) -> Callable[[EvolutionState, GenerationData], tuple[EvolutionState, dict]]:
    """The generation step of ``strategy`` (a :class:`~gsnn.evolution.strategies.Strategy`).

    Args:
      strategy: ``es`` and ``params`` of an evosax strategy.
      evaluate_population: ``(population, key, images, labels, generation) -> dict`` of
        ``[P]`` arrays with at least ``fitness`` (maximised; non-finite = diverged).
      inject_nan: members whose genome is set to NaN before the evaluation (tests the
        divergence handling); the strategy is still told the proposed genomes.
      worst: the fitness a non-finite individual is told as.
      jit_parts: jit ``ask`` and ``tell`` separately (the host loop); with ``False`` the
        step is meant to be traced whole (``jax.jit(step)``, ``lax.scan``).

    Returns:
      ``step(state, data) -> (state, metrics)``: ``metrics`` are the evaluation's
      outputs plus ``population`` (the proposed genomes, ``[P, ...]``) and
      ``told_fitness`` (the fitness given to the strategy, before negation).
    """
    es, params = strategy.es, strategy.params
    ask, tell = (jax.jit(es.ask), jax.jit(es.tell)) if jit_parts else (es.ask, es.tell)
    nan_members = tuple(int(i) for i in inject_nan)

    def step(state: EvolutionState, data: GenerationData) -> tuple[EvolutionState, dict]:
        key, k_ask, k_eval, k_tell = jax.random.split(state.key, 4)
        population, es_state = ask(k_ask, state.es_state, params)
        evaluated = population
        if nan_members:
            idx = jnp.asarray(nan_members)
            evaluated = jax.tree_util.tree_map(lambda a: a.at[idx].set(jnp.nan), population)
        metrics = evaluate_population(evaluated, k_eval, jnp.asarray(data.images), jnp.asarray(data.labels),
                                      state.generation)
        fit = metrics["fitness"]
        told = jnp.where(jnp.isfinite(fit), fit, jnp.asarray(worst, fit.dtype))
        es_state, _ = tell(k_tell, population, -told, es_state, params)
        metrics = dict(metrics, population=population, told_fitness=told)
        return EvolutionState(es_state, key, state.generation + 1), metrics

    return step
