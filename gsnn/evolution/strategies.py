"""The evolution strategies (evosax 0.3.2): one table of explicit factories, and the
strategy's initial state.

Every factory is ``(population, template, *, std_init, elite_ratio) -> Strategy`` and
says which constructor argument or param each setting goes to:

* ``std_init``, the initial search std in genome units: ``Params.std_init`` of the
  CMA/NES family; a constant ``std_schedule`` constructor argument for Open-ES and
  SimpleGA (their std is a schedule, not a param).
* ``elite_ratio``: evosax 0.3.2 has no constructor argument for it; it is the instance
  attribute ``elite_ratio`` that the constructors set (CMA-ES, Sep-CMA-ES and SimpleGA
  to 0.5) and ``num_elites`` reads. The factories of the strategies that read it set it
  right after construction and before ``default_params``, because CMA-ES computes its
  recombination weights from ``num_elites`` there: SimpleGA's elite fraction, and the
  CMA family's ``mu / lambda``. SNES and Open-ES never read it.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from gsnn.core.tree import lookup


class Strategy(NamedTuple):
    """An evosax strategy with its params and its initialisation.

    Attributes:
      es: the evosax algorithm (``ask``/``tell``).
      params: its params (``es.default_params`` with the settings applied).
      init: ``(key, mean_genome) -> es_state``; the distribution-based strategies start
        at ``mean_genome``, SimpleGA from a population seeded around it.
    """

    es: Any
    params: Any
    init: Callable


def _distribution_init(es, params) -> Callable:
    return lambda key, mean_genome: es.init(key, mean_genome, params)


def _seeded_population_init(es, params, population: int, std_init: float) -> Callable:
    """SimpleGA's ``init`` takes an evaluated population: the mean genome (member 0)
    and ``population - 1`` members ``N(mean, std_init^2)``, all with fitness ``inf``."""

    def init(key, mean_genome):
        k1, k2 = jax.random.split(key)
        noise = jax.tree_util.tree_map(
            lambda x, k: x[None] + std_init * jax.random.normal(k, (population,) + x.shape),
            mean_genome,
            jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(mean_genome),
                                         list(jax.random.split(k1, len(jax.tree_util.tree_leaves(mean_genome))))),
        )
        # the first member is the mean itself
        members = jax.tree_util.tree_map(lambda p, m: p.at[0].set(m), noise, mean_genome)
        return es.init(k2, members, jnp.full((population,), jnp.inf), params)

    return init


def cma_es(population: int, template, *, std_init: float, elite_ratio: float) -> Strategy:
    """CMA-ES: ``params.std_init``; ``elite_ratio`` is ``mu / lambda`` (recombination weights)."""
    from evosax.algorithms import CMA_ES

    es = CMA_ES(population_size=population, solution=template)
    es.elite_ratio = elite_ratio  # evosax 0.3.2: an attribute only; read by default_params
    params = es.default_params.replace(std_init=std_init)
    return Strategy(es, params, _distribution_init(es, params))


def sep_cma_es(population: int, template, *, std_init: float, elite_ratio: float) -> Strategy:
    """Sep-CMA-ES: ``params.std_init``; ``elite_ratio`` is ``mu / lambda`` as in CMA-ES."""
    from evosax.algorithms import Sep_CMA_ES

    es = Sep_CMA_ES(population_size=population, solution=template)
    es.elite_ratio = elite_ratio  # evosax 0.3.2: an attribute only; read by default_params
    params = es.default_params.replace(std_init=std_init)
    return Strategy(es, params, _distribution_init(es, params))


def snes(population: int, template, *, std_init: float, elite_ratio: float) -> Strategy:
    """SNES: ``params.std_init``; ``elite_ratio`` unused (SNES weights every member)."""
    from evosax.algorithms import SNES

    es = SNES(population_size=population, solution=template)
    params = es.default_params.replace(std_init=std_init)
    return Strategy(es, params, _distribution_init(es, params))


def open_es(population: int, template, *, std_init: float, elite_ratio: float) -> Strategy:
    """Open-ES: ``std_schedule=constant(std_init)``; ``elite_ratio`` unused."""
    from evosax.algorithms import Open_ES

    es = Open_ES(population_size=population, solution=template, std_schedule=optax.constant_schedule(std_init))
    params = es.default_params
    return Strategy(es, params, _distribution_init(es, params))


def simple_ga(population: int, template, *, std_init: float, elite_ratio: float) -> Strategy:
    """SimpleGA: ``std_schedule=constant(std_init)`` (mutation std); ``elite_ratio`` the
    fraction of the population parents are drawn from."""
    from evosax.algorithms import SimpleGA

    es = SimpleGA(population_size=population, solution=template, std_schedule=optax.constant_schedule(std_init))
    es.elite_ratio = elite_ratio  # evosax 0.3.2: an attribute only; read by num_elites in ask
    params = es.default_params
    return Strategy(es, params, _seeded_population_init(es, params, population, std_init))


STRATEGIES: dict[str, Callable[..., Strategy]] = {
    "cma_es": cma_es,
    "sep_cma_es": sep_cma_es,
    "snes": snes,
    "open_es": open_es,
    "simple_ga": simple_ga,
}


def make_strategy(name: str, population: int, template, *, std_init: float, elite_ratio: float) -> Strategy:
    """The strategy ``name`` of :data:`STRATEGIES` for a genome ``template`` (one genome)."""
    return lookup(STRATEGIES, name, "strategy")(population, template, std_init=std_init, elite_ratio=elite_ratio)


def strategy_init(strategy: Strategy, key, mean_genome):
    """The strategy's initial state around ``mean_genome`` (``strategy.init``)."""
    return strategy.init(key, mean_genome)
