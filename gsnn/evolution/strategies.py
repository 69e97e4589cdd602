"""The evolution strategies (evosax): building one from the config, its initial state.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gsnn import configs as C


WORST_FITNESS = -1e9  # what a diverged individual scores (finite, so strategies stay sane)


def _strategies():
    from evosax.algorithms import CMA_ES, Open_ES, SNES, Sep_CMA_ES, SimpleGA

    return {"cma_es": CMA_ES, "sep_cma_es": Sep_CMA_ES, "snes": SNES, "open_es": Open_ES,
            "simple_ga": SimpleGA}


def make_strategy(ecfg: C.EvolveConfig, template):
    """The evosax strategy and its params for a genome ``template`` (one genome).

    ``std_init`` sets the initial search std of every strategy (``Params.std_init`` of
    the CMA/NES family, a constant ``std_schedule`` for Open-ES and SimpleGA);
    ``elite_ratio`` sets SimpleGA's elite fraction.
    """
    import inspect

    import optax

    cls = _strategies()[ecfg.strategy]
    kwargs = {}
    if "std_schedule" in inspect.signature(cls.__init__).parameters:
        kwargs["std_schedule"] = optax.constant_schedule(ecfg.std_init)
    es = cls(population_size=ecfg.population, solution=template, **kwargs)
    if hasattr(es, "elite_ratio"):
        es.elite_ratio = ecfg.elite_ratio
    params = es.default_params
    if "std_init" in getattr(params, "__dataclass_fields__", {}):
        params = params.replace(std_init=ecfg.std_init)
    return es, params


def strategy_init(es, ecfg: C.EvolveConfig, key, mean_genome, params):
    """``es.init`` for distribution-based and population-based (GA) strategies alike."""
    if ecfg.strategy == "simple_ga":
        k1, k2 = jax.random.split(key)
        noise = jax.tree_util.tree_map(
            lambda x, k: x[None] + ecfg.std_init * jax.random.normal(k, (ecfg.population,) + x.shape),
            mean_genome,
            jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(mean_genome),
                                         list(jax.random.split(k1, len(jax.tree_util.tree_leaves(mean_genome))))),
        )
        # the first member is the mean itself
        population = jax.tree_util.tree_map(lambda p, m: p.at[0].set(m), noise, mean_genome)
        return es.init(k2, population, jnp.full((ecfg.population,), jnp.inf), params)
    return es.init(key, mean_genome, params)
