"""The allocation genome: where genes and rules go, as masks over a network built at the
maximum (DESIGN 1.3; this project's reading of "evolving efficient genetic encoding").

Per encoded layer ``l`` an :class:`Allocation` holds the active genes ``g_{l,r}`` of each
rule (``1..g``) and the active rules ``R_l`` (``1..R``), prefixes: rules ``0..R_l-1`` and,
in rule ``r``, genes ``0..g_{l,r}-1``. The network is built once at ``g`` genes and ``R``
rules, so every individual has the same shapes (the population vmaps, chunks and shards
as before); an individual is

* its **masks** (:func:`allocation_variables`, the ``allocation`` collection that
  :class:`gsnn.nn.layers.Synapse` reads): an inactive gene is a zero row and column of
  its layer's ``G_r`` block, an inactive rule a factor of one in the Hadamard product;
* its **scale** ``s_l`` from the layer's active genes and rules
  (:func:`gsnn.core.encodings.rule_scale`), with the init rms of the arrays it reads at
  their active sizes;
* its **initialisation** (:func:`rescale_init`): the shared arrays drawn at the maximum
  rescaled to the init std of their active size (``G_r``: ``gain/sqrt(m_r)``; a
  ``balanced`` ``neuron`` population: ``gain/sqrt(w_{k,r})``).

It equals the smaller network built directly (``GeneticConfig.layer_genes`` from
:func:`layer_genes`, parameters :func:`slice_params`: the active slices of the same
initialisation), in outputs and gradients; tests/test_allocation.py checks it.

**Parameter count** (:func:`param_count`) counts active entries: each layer's rows times
``g_{l,r}`` for its active rules; a globally shared ``G_r`` once at ``m_r = max_l g_{l,r}``
(``m_r^2``); a ``neuron``-mode population ``k`` (shared by the layers that read it) once
at ``w_{k,r} = max`` of their active ``g_{l,r}`` (``N_k w_{k,r}``); plus what is not
encoded (norms, biases, direct layers, PLIF). Inactive rules count nothing.

**From a genome** (:func:`from_genome`): a continuous ``z [L, R + 1]`` (columns: the genes
of each rule, then the number of rules) maps to ``n = min(n_max, 1 + floor(n_max *
sigmoid(z)))``: equal-width bins of ``sigmoid(z)``, so CMA-ES can search it;
:func:`to_genome` gives each count's bin centre.

**Budget** (:func:`project`): an individual over a parameter budget is projected onto it
(its genes scaled down by a common factor); the search's switch
(``evolve.allocation.over_budget``, :mod:`gsnn.evolution.budget`) may penalise it instead.
"""
from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gsnn.config import GeneticConfig
from gsnn.core import encodings
from gsnn.nn.specs import LayerSpec, NeuronSpec, NormSpec

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class AllocLayer:
    """One encoded synapse of the maximal network (Python values only).

    ``rows``: rows that multiply ``g_{l,r}`` in its private count (``position``: ``h*w*C_in
    + C_out``; ``neuron``: its spatial rows); ``pre``/``post``: indices into
    :attr:`Layout.populations` (``neuron`` mode, else -1)."""

    name: str
    encoding: str
    geometry: encodings.Geometry
    rows: int
    pre: int = -1
    post: int = -1


@dataclasses.dataclass(frozen=True)
class Layout:
    """What an allocation allocates over: the maximal network's encoded layers, its
    populations (``(name, size)``, ``neuron`` mode), the scalars no allocation changes
    (``fixed_params``) and the init settings the scales follow."""

    layers: tuple[AllocLayer, ...]
    populations: tuple[tuple[str, int], ...]
    fixed_params: int
    genetic: GeneticConfig

    @property
    def genes(self) -> int:
        return self.genetic.genes

    @property
    def rules(self) -> int:
        return self.genetic.rules


class Allocation(NamedTuple):
    """``genes``: int32 ``[L, R]`` active genes of each rule (``1..g``; ignored for an
    inactive rule); ``rules``: int32 ``[L]`` active rules (``1..R``). ``L``: encoded layers
    in call order (:attr:`Layout.layers`)."""

    genes: Array
    rules: Array


def make_layout(gcfg: GeneticConfig, synapses: Sequence[LayerSpec], neurons: Sequence[NeuronSpec],
                norms: Sequence[NormSpec]) -> Layout:
    """The layout of the maximal network described by :func:`gsnn.nn.networks.describe`."""
    if not gcfg.encoded or gcfg.layer_genes:
        raise ValueError("an allocation masks an encoded network built at the maximum: set model.genetic.encoding "
                         "to 'position' or 'neuron' and leave model.genetic.layer_genes empty")
    pops: dict[str, int] = {}
    for s in synapses:
        if s.encoding == "neuron":
            pops.setdefault(s.pre_population, s.pre_rows)
            pops.setdefault(s.post_population, s.c_out)
    index = {name: i for i, name in enumerate(pops)}
    layers = []
    fixed = sum(2 * n.channels for n in norms) + sum(1 for n in neurons if n.learnable_tau)
    for s in synapses:
        fixed += s.direct_params if s.encoding == "direct" else (s.c_out if s.bias else 0)
        if s.encoding == "position":
            layers.append(AllocLayer(s.name, s.encoding, s.geometry, s.geometry.fan_in + s.c_out))
        elif s.encoding == "neuron":
            layers.append(AllocLayer(s.name, s.encoding, s.geometry, s.spatial_rows,
                                     index[s.pre_population], index[s.post_population]))
    return Layout(tuple(layers), tuple(pops.items()), fixed, gcfg)


# --------------------------------------------------------------------------------------
# Genome <-> allocation
# --------------------------------------------------------------------------------------


def _count(z: Array, n_max: int) -> Array:
    return jnp.minimum(n_max, 1 + jnp.floor(n_max * jax.nn.sigmoid(z))).astype(jnp.int32)


def from_genome(z: Array, layout: Layout) -> Allocation:
    """``z [L, R + 1]`` (genes of each rule, then rules) -> :class:`Allocation` (pure)."""
    return Allocation(_count(z[:, :-1], layout.genes), _count(z[:, -1], layout.rules))


def to_genome(alloc: Allocation, layout: Layout) -> Array:
    """The bin centre ``logit((n - 1/2) / n_max)`` of every count (``from_genome`` inverts it)."""
    logit = lambda n, n_max: jnp.log((n - 0.5) / (n_max - n + 0.5))
    return jnp.concatenate([logit(jnp.asarray(alloc.genes, jnp.float32), layout.genes),
                            logit(jnp.asarray(alloc.rules, jnp.float32), layout.rules)[:, None]], axis=1)


def from_counts(per_layer: Sequence[Sequence[int]], layout: Layout) -> Allocation:
    """An allocation written by hand: per encoded layer (call order) the genes of each of
    its active rules, e.g. ``((14, 14), (20,), ...)``."""
    if len(per_layer) != len(layout.layers):
        raise ValueError(f"the allocation lists {len(per_layer)} layers; the network has {len(layout.layers)} "
                         f"encoded ones: {[layer.name for layer in layout.layers]}")
    for layer, genes in zip(layout.layers, per_layer):
        if not 1 <= len(genes) <= layout.rules or not all(1 <= int(g) <= layout.genes for g in genes):
            raise ValueError(f"layer {layer.name}: {tuple(genes)} needs 1..{layout.rules} rules of "
                             f"1..{layout.genes} genes each")
    genes = [list(g) + [1] * (layout.rules - len(g)) for g in per_layer]
    return Allocation(jnp.asarray(genes, jnp.int32), jnp.asarray([len(g) for g in per_layer], jnp.int32))


def uniform(layout: Layout, genes: int, rules: int) -> Allocation:
    """Every layer with ``genes`` genes in each of ``rules`` rules."""
    n = len(layout.layers)
    return Allocation(jnp.full((n, layout.rules), genes, jnp.int32), jnp.full((n,), rules, jnp.int32))


# --------------------------------------------------------------------------------------
# Active sizes, masks and scales (pure, traceable: a population is vmapped over them)
# --------------------------------------------------------------------------------------


def active_genes(alloc: Allocation) -> Array:
    """``[L, R]``: ``g_{l,r}`` where rule ``r`` is active in layer ``l``, else 0."""
    return jnp.where(jnp.arange(alloc.genes.shape[1]) < alloc.rules[:, None], alloc.genes, 0)


def even_split(alloc: Allocation, layout: Layout) -> Allocation:
    """Each layer's active genes (summed over its active rules) split over those rules as
    evenly as can be (sizes differ by at most one, the larger first); an inactive rule
    keeps 1. Pure, traceable. ``[[3, 5], [4, 7]]`` with rules ``[2, 1]`` -> ``[[4, 4], [4, 1]]``."""
    total = jnp.sum(active_genes(alloc), axis=1)
    r = jnp.arange(layout.rules)[None]
    rules = alloc.rules[:, None]
    genes = jnp.where(r < rules, (total[:, None] // rules) + (r < total[:, None] % rules), 1)
    return alloc._replace(genes=jnp.clip(genes, 1, layout.genes).astype(jnp.int32))


def interaction_sizes(alloc: Allocation) -> Array:
    """``m_r [R]``: the largest active block of ``G_r`` over the layers (0: unused)."""
    return jnp.max(active_genes(alloc), axis=0)


def population_widths(alloc: Allocation, layout: Layout) -> Array:
    """``w_{k,r} [K, R]``: the widest active ``g_{l,r}`` of the layers reading population ``k``."""
    act = active_genes(alloc)
    w = jnp.zeros((len(layout.populations), layout.rules), jnp.int32)
    for i, layer in enumerate(layout.layers):
        if layer.pre >= 0:
            w = w.at[layer.pre].max(act[i]).at[layer.post].max(act[i])
    return w


def _pop_std(layout: Layout, width: Array) -> Array:
    cfg = layout.genetic
    return cfg.encoding_gain * (jax.lax.rsqrt(jnp.maximum(width, 1).astype(jnp.float32))
                                if cfg.init_scheme == "balanced" else 1.0)


def scales(alloc: Allocation, layout: Layout) -> Array:
    """``s_l [L]``: each layer's fixed scale from its active genes and rules and the init
    rms of what it reads at their active sizes (:func:`gsnn.core.encodings.rule_scale`)."""
    cfg = layout.genetic
    g_rms = cfg.interaction_gain * jax.lax.rsqrt(jnp.maximum(interaction_sizes(alloc), 1).astype(jnp.float32))
    widths = population_widths(alloc, layout)
    rule_mask = jnp.arange(layout.rules) < alloc.rules[:, None]
    out = []
    for i, layer in enumerate(layout.layers):
        geom = layer.geometry
        if layer.pre < 0:
            pre = post = jnp.full((layout.rules,), encodings.position_std(cfg.init_scheme, cfg.encoding_gain,
                                                                          geom.fan_in))
        else:
            pre = _pop_std(layout, widths[layer.pre]) * (cfg.spatial_std if geom.spatial_rows else 1.0)
            post = _pop_std(layout, widths[layer.post])
        out.append(encodings.rule_scale(encodings.target_std(geom, cfg.init_fan), alloc.genes[i], pre, g_rms,
                                        post, rule_mask[i]))
    return jnp.stack(out)


def allocation_variables(alloc: Allocation, layout: Layout) -> dict:
    """The ``allocation`` collection of one individual, ``{layer: {gene_mask [(R,) g],
    rule_mask [R] (R > 1), scale []}}``: pass it with the variables to ``model.apply``."""
    gene_mask = (jnp.arange(layout.genes) < alloc.genes[..., None]).astype(jnp.float32)  # [L, R, g]
    rule_mask = (jnp.arange(layout.rules) < alloc.rules[:, None]).astype(jnp.float32)  # [L, R]
    s = scales(alloc, layout)
    out = {}
    for i, layer in enumerate(layout.layers):
        v = {"gene_mask": gene_mask[i] if layout.rules > 1 else gene_mask[i, 0], "scale": s[i]}
        if layout.rules > 1:
            v["rule_mask"] = rule_mask[i]
        _nest(out, layer.name, v)
    return out


def _nest(tree: dict, name: str, value) -> None:
    *path, leaf = name.split("/")
    for p in path:
        tree = tree.setdefault(p, {})
    tree[leaf] = value


def rescale_init(params: dict, alloc: Allocation, layout: Layout) -> dict:
    """An individual's initial parameters from the maximal network's ``params``: each
    ``G_r`` times ``sqrt(g / m_r)`` (``normal``/``orthogonal``; an ``identity`` block is
    already at rms ``gain/sqrt(m_r)``) and, ``balanced``, each population's rule ``r``
    times ``sqrt(g / w_{k,r})``: the init stds of the directly built network."""
    cfg, g = layout.genetic, layout.genes
    ratio = lambda n: jnp.sqrt(g / jnp.maximum(n, 1).astype(jnp.float32))
    out = dict(params)
    if cfg.interaction_init != "identity":
        f = ratio(interaction_sizes(alloc))
        out["G"] = params["G"] * (f[:, None, None] if layout.rules > 1 else f[0])
    if cfg.init_scheme == "balanced":
        widths = population_widths(alloc, layout)
        for k, (name, _) in enumerate(layout.populations):
            f = ratio(widths[k])
            out[f"pop_{name}"] = params[f"pop_{name}"] * (f[:, None, None] if layout.rules > 1 else f[0])
    return out


def param_count(alloc: Allocation, layout: Layout) -> Array:
    """Scalars of the individual (the module docstring's rule), an int32 ``[]`` (traceable)."""
    act = active_genes(alloc)
    rows = jnp.asarray([layer.rows for layer in layout.layers], jnp.int32)
    m = interaction_sizes(alloc)
    count = layout.fixed_params + jnp.sum(rows[:, None] * act) + jnp.sum(m * m)
    if layout.populations:
        sizes = jnp.asarray([n for _, n in layout.populations], jnp.int32)
        count = count + jnp.sum(sizes[:, None] * population_widths(alloc, layout))
    return count


def project(alloc: Allocation, layout: Layout, budget: int | Array, steps: int = 24) -> Allocation:
    """The allocation scaled down onto a parameter budget (pure, traceable).

    Genes become ``max(1, floor(a * g_{l,r}))`` with the largest ``a`` in ``[0, 1]`` whose
    count is within ``budget`` (bisection, ``steps`` halvings; the count is monotone in
    ``a``, since ``m_r`` and ``w_{k,r}`` are maxima); rules are kept. Within budget it is
    the identity (``a = 1``); it keeps the layers' proportions and order. An allocation
    whose every gene at 1 is still over ``budget`` comes back at that floor (over
    budget: callers check :func:`param_count`).

    Why projection, not a penalty: every evaluation trains a network, so an infeasible
    individual's evaluation would be spent, and a search on a soft penalty can return an
    allocation over the budget, which the comparison at equal parameters forbids.
    """
    scaled = lambda a: alloc._replace(genes=jnp.maximum(1, jnp.floor(a * alloc.genes)).astype(jnp.int32))

    def halve(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        fits = param_count(scaled(mid), layout) <= budget
        return jnp.where(fits, mid, lo), jnp.where(fits, hi, mid)

    lo, _ = jax.lax.fori_loop(0, steps, halve, (jnp.float32(0.0), jnp.float32(1.0)))
    return jax.tree_util.tree_map(lambda a, b: jnp.where(param_count(alloc, layout) <= budget, a, b),
                                  alloc, scaled(lo))


# --------------------------------------------------------------------------------------
# The directly built smaller network (concrete allocations)
# --------------------------------------------------------------------------------------


def layer_genes(alloc: Allocation, layout: Layout) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """``GeneticConfig.layer_genes`` of the network an allocation masks: each layer's
    active genes, and each population's widths (``neuron`` mode)."""
    genes, rules = np.asarray(alloc.genes), np.asarray(alloc.rules)
    out = [(layer.name, tuple(int(x) for x in genes[i, :rules[i]])) for i, layer in enumerate(layout.layers)]
    widths = np.asarray(population_widths(alloc, layout))
    for k, (name, _) in enumerate(layout.populations):
        w = [int(x) for x in widths[k] if x > 0]
        if w:
            out.append((f"pop_{name}", tuple(w)))
    return tuple(out)


def slice_params(params: dict, alloc: Allocation, layout: Layout) -> dict:
    """The directly built network's parameters: the active slices of ``params`` (the
    maximal network's, after :func:`rescale_init`), as its per-rule tuples."""
    genes, rules = np.asarray(alloc.genes), np.asarray(alloc.rules)
    rule = (lambda a, r: a[r]) if layout.rules > 1 else (lambda a, r: a)
    out = dict(params)
    m = np.asarray(interaction_sizes(alloc))
    out["G"] = tuple(rule(params["G"], r)[:n, :n] for r, n in enumerate(m) if n > 0)
    widths = np.asarray(population_widths(alloc, layout))
    for k, (name, _) in enumerate(layout.populations):
        out[f"pop_{name}"] = tuple(rule(params[f"pop_{name}"], r)[:, :n] for r, n in enumerate(widths[k]) if n > 0)
    for i, layer in enumerate(layout.layers):
        *path, leaf = layer.name.split("/")
        node = out
        for p in path:
            node[p] = dict(node[p])
            node = node[p]
        if leaf not in node:  # a neuron-mode dense layer over a vector owns no arrays
            continue
        node[leaf] = {key: (tuple(rule(v, r)[:, :genes[i, r]] for r in range(rules[i]))
                            if key in ("x_pre", "x_post", "spatial") else v) for key, v in node[leaf].items()}
    return out
