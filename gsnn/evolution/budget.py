"""The search over allocations under a parameter budget (DESIGN 1.3, ``evolve.allocation``).

With ``evolve.allocation.genome`` = ``allocation`` an individual's genome is
``{"allocation": z}``, ``z [L, R_max + 1]`` (:func:`gsnn.evolution.allocation.from_genome`:
the active genes of each rule, then the active rules, per encoded layer); with ``both`` it
is the wiring genome (:mod:`gsnn.evolution.genome`) with ``z`` as one more entry, so the
strategy's flat vector is their concatenation. The network is built once, at
``max_genes`` x ``max_rules`` (:func:`search_model_config`); an individual is

    alloc  = from_genome(z)                       # counts, [L, R_max] and [L]
    alloc  = project(alloc, budget)               # over_budget = project
    params = rescale_init(build_params(genome, base) or base, alloc)   # the shared base draw
    model  = Masked(model, {"allocation": allocation_variables(alloc)})
    F      = fitness(train K steps, validate) - penalty * max(0, params(alloc) / budget - 1)
                                                  # the penalty term only with over_budget = penalty

Every individual has the same shapes, so the population vmaps, chunks and shards as the
wiring genome's does. ``budget`` 0 is the parameter count of the **uniform** allocation
(``model.genetic.genes`` in each of ``model.genetic.rules`` rules: the model as
configured, the baseline), which is also the search's starting mean (:func:`start_genome`).

After the search (:mod:`gsnn.evolution.pipeline`) the final networks are built directly,
at their own sizes (:func:`model_config`: ``GeneticConfig.layer_genes``, or the plain
``genes``/``rules`` for a uniform allocation) and initialised as a directly built network
is (tests/test_allocation.py: equal to the masked one's active slices): ``evolved`` (the
best genome's allocation), ``random`` (:func:`random_allocation` at the budget, seeded),
``uniform`` (the model as configured).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gsnn import config as cfgs
import gsnn.evolution.allocation as A

#: The genome entry that holds ``z`` (``genome = "both"``: next to the wiring genome's).
KEY = "allocation"


@dataclasses.dataclass(frozen=True)
class Masked:
    """``model`` whose ``apply`` also reads ``collections`` (an individual's
    ``{"allocation": ...}`` masks and scales): the train and eval steps take it for the
    model, and their ``{"params", "batch_stats"}`` variables stay the network's."""

    model: Any
    collections: dict

    def apply(self, variables, *args, **kwargs):
        return self.model.apply({**variables, **self.collections}, *args, **kwargs)


@dataclasses.dataclass(frozen=True, eq=False)
class Search:
    """An allocation search's static settings (Python values and small host arrays).

    ``budget``: the resolved budget in parameters (``evolve.allocation.budget``, 0 made
    the uniform count); ``uniform``: the model's configured allocation in ``layout``."""

    layout: A.Layout
    budget: int
    genome: str  # "allocation" | "both"
    over_budget: str  # "project" | "penalty"
    penalty: float
    uniform: A.Allocation


def search_model_config(cfg: cfgs.Config) -> cfgs.ModelConfig:
    """The model the search builds: ``cfg.model`` at ``max_genes`` x ``max_rules`` (0:
    its own) for an allocation genome; ``cfg.model`` for the wiring genome."""
    a, g = cfg.evolve.allocation, cfg.model.genetic
    if a.genome == "wiring":
        return cfg.model
    return dataclasses.replace(cfg.model, genetic=dataclasses.replace(
        g, genes=a.max_genes or g.genes, rules=a.max_rules or g.rules))


def make_search(cfg: cfgs.Config, layout: A.Layout) -> Search | None:
    """The search of ``cfg`` over the maximal network's ``layout``
    (:func:`gsnn.evolution.allocation.make_layout` of :func:`search_model_config`);
    ``None`` for the wiring genome.

    Raises:
      ValueError: the maximum is below the model's genes or rules, or the budget cannot
        hold one gene in each of ``max_rules`` rules in every layer (then neither the
        projection nor a random allocation could reach it).
    """
    a, g = cfg.evolve.allocation, cfg.model.genetic
    if a.genome == "wiring":
        return None
    if g.layer_genes:
        raise ValueError("evolve.allocation.genome allocates genes per layer itself: leave model.genetic.layer_genes "
                         "empty (the model's genes and rules are the uniform allocation the search starts from)")
    if layout.genes < g.genes or layout.rules < g.rules:
        raise ValueError(f"evolve.allocation.max_genes={a.max_genes} and max_rules={a.max_rules} must be at least the "
                         f"model's genes ({g.genes}) and rules ({g.rules}), the uniform allocation the search starts "
                         f"from; 0 uses the model's own")
    uni = A.uniform(layout, g.genes, g.rules)
    budget = a.budget or int(A.param_count(uni, layout))
    floor = int(A.param_count(A.uniform(layout, 1, layout.rules), layout))
    if floor > budget:
        raise ValueError(f"evolve.allocation.budget={budget:,} parameters cannot hold one gene in each of "
                         f"{layout.rules} rules in every encoded layer ({floor:,} parameters, the smallest allocation "
                         f"a projection or a random draw can reach with max_rules={layout.rules}); raise the budget "
                         f"or lower evolve.allocation.max_rules")
    return Search(layout, budget, a.genome, a.over_budget, a.penalty, uni)


def start_genome(search: Search) -> jax.Array:
    """``z [L, R_max + 1]`` of the uniform allocation (the search's starting mean)."""
    return A.to_genome(search.uniform, search.layout)


def individual(z: jax.Array, search: Search) -> tuple[A.Allocation, dict]:
    """An individual's allocation from its ``z`` (pure, traceable; vmapped with the
    population), projected onto the budget with ``over_budget = project``, and
    ``{"params": int32 [], "budget_penalty": float32 []}``: its parameter count and the
    fitness it loses, ``penalty * max(0, params / budget - 1)`` (0 with ``project``)."""
    alloc = A.from_genome(z, search.layout)
    if search.over_budget == "project":
        alloc = A.project(alloc, search.layout, search.budget)
    count = A.param_count(alloc, search.layout)
    excess = jnp.maximum(0.0, count.astype(jnp.float32) / search.budget - 1.0)
    penalty = search.penalty * excess if search.over_budget == "penalty" else jnp.zeros((), jnp.float32)
    return alloc, dict(params=count, budget_penalty=penalty.astype(jnp.float32))


def masked_individual(search: Search, alloc: A.Allocation, params: dict, model) -> tuple[dict, Masked]:
    """An individual's initial parameters (the maximal network's ``params`` rescaled to
    its active sizes, :func:`gsnn.evolution.allocation.rescale_init`) and its masked model."""
    cols = {"allocation": A.allocation_variables(alloc, search.layout)}
    return A.rescale_init(params, alloc, search.layout), Masked(model, cols)


def wiring_part(genome: dict) -> dict:
    """The wiring genome of a ``both`` genome (every entry but ``"allocation"``)."""
    return {k: v for k, v in genome.items() if k != KEY}


def fill(alloc: A.Allocation, layout: A.Layout, budget: int | jax.Array, steps: int = 32) -> A.Allocation:
    """``alloc``'s proportions scaled up or down to the largest allocation within
    ``budget``: genes ``clip(floor(a * g_{l,r}), 1, g_max)`` with the largest ``a`` in
    ``[0, g_max]`` whose count fits (bisection; the count is monotone in ``a``); rules
    are kept. Pure, traceable."""
    scaled = lambda a: alloc._replace(genes=jnp.clip(jnp.floor(a * alloc.genes), 1, layout.genes).astype(jnp.int32))

    def halve(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        fits = A.param_count(scaled(mid), layout) <= budget
        return jnp.where(fits, mid, lo), jnp.where(fits, hi, mid)

    lo, _ = jax.lax.fori_loop(0, steps, halve, (jnp.float32(0.0), jnp.float32(layout.genes)))
    return scaled(lo)


def random_allocation(key: jax.Array, search: Search) -> A.Allocation:
    """A random allocation at the budget (pure in ``key``): rules uniform in
    ``1..R_max`` per layer, genes uniform in ``1..g_max`` per (layer, rule), then scaled
    to the largest allocation within the budget (:func:`fill`), so its count is at most
    the budget and as close to it as its proportions allow."""
    layout = search.layout
    k_genes, k_rules = jax.random.split(key)
    n = len(layout.layers)
    genes = jax.random.randint(k_genes, (n, layout.rules), 1, layout.genes + 1, jnp.int32)
    rules = jax.random.randint(k_rules, (n,), 1, layout.rules + 1, jnp.int32)
    return fill(A.Allocation(genes, rules), layout, search.budget)


def counts(alloc: A.Allocation) -> tuple[tuple[int, ...], ...]:
    """Per encoded layer the genes of each active rule (``gsnn params --allocation``'s form)."""
    genes, rules = np.asarray(alloc.genes), np.asarray(alloc.rules)
    return tuple(tuple(int(g) for g in genes[i, :rules[i]]) for i in range(len(rules)))


def is_uniform(alloc: A.Allocation) -> bool:
    """Every layer has the same rules and every active rule the same genes."""
    c = counts(alloc)
    return len({len(g) for g in c}) == 1 and len({x for g in c for x in g}) == 1


def model_config(cfg: cfgs.Config, alloc: A.Allocation, search: Search) -> cfgs.ModelConfig:
    """The directly built network of ``alloc``: a uniform allocation as the plain
    ``genes`` and ``rules`` (the baseline row's own config), any other as
    ``GeneticConfig.layer_genes`` over the maximal network."""
    g = cfg.model.genetic
    c = counts(alloc)
    if is_uniform(alloc):
        genetic = dataclasses.replace(g, genes=c[0][0], rules=len(c[0]))
    else:
        genetic = dataclasses.replace(g, genes=search.layout.genes, rules=search.layout.rules,
                                      layer_genes=A.layer_genes(alloc, search.layout))
    return dataclasses.replace(cfg.model, genetic=genetic).validate()


def params_command(cfg: cfgs.Config, alloc: A.Allocation, search: Search, input_shape) -> str:
    """The ``gsnn params`` command that counts ``alloc``'s network."""
    m, g = cfg.model, cfg.model.genetic
    flags = (" --first-direct" if g.first_direct else "") + (" --last-direct" if g.last_direct else "")
    shape = ",".join(str(int(s)) for s in input_shape)
    hidden = f" --hidden {','.join(map(str, m.hidden))}" if m.arch == "mlp" else ""
    return (f"gsnn params --arch {m.arch} --num-classes {m.num_classes} --encoding {g.encoding} "
            f"--genes {search.layout.genes} --rules {search.layout.rules} --width {m.width} --input-shape {shape}"
            f"{hidden}{flags} --allocation '{counts(alloc)}'")


def describe(alloc: A.Allocation, search: Search) -> dict:
    """JSON record of an allocation: ``layers`` (per encoded layer ``genes`` of each
    active rule and ``rules``), ``counts`` (the same as nested lists), ``params`` and
    ``budget``, ``within_budget``."""
    c = counts(alloc)
    count = int(A.param_count(alloc, search.layout))
    return dict(layers={layer.name: dict(genes=list(g), rules=len(g)) for layer, g in zip(search.layout.layers, c)},
                counts=[list(g) for g in c], params=count, budget=search.budget, within_budget=count <= search.budget)


def summary(search: Search) -> str:
    """One line for the log: what is searched and under which budget."""
    layout = search.layout
    rule = (f"projected onto it" if search.over_budget == "project"
            else f"penalised by {search.penalty} per unit of relative excess")
    return (f"allocation genome ({search.genome}): {len(layout.layers)} encoded layers x (genes of {layout.rules} "
            f"rules, rules), at most {layout.genes} genes; budget {search.budget:,} parameters, over it "
            f"{rule}; start: the uniform allocation {counts(search.uniform)[0]} in every layer")


def start(search: Search | None, wiring_genome: dict) -> dict:
    """The search's starting mean genome: the wiring genome's zero genome (``wiring``),
    ``{"allocation": z}`` of the uniform allocation (``allocation``), or both together."""
    if search is None:
        return wiring_genome
    z = start_genome(search)
    return {KEY: z} if search.genome == "allocation" else {**wiring_genome, KEY: z}
