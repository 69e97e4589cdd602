"""Encodings: one registry of pure weight generators (DESIGN 1.1).

An encoding says how a synaptic layer's weight matrix ``W [P*C_in, C_out]`` is made
(``P = h*w`` kernel offsets; rows offset-major, so ``W`` reshapes to an HWIO kernel; a
dense layer has ``P = 1``). It declares

* the parameters a layer owns (:meth:`Encoding.param_specs`: names, shapes, init std),
* the factors of ``W`` built from them and the network-wide shared arrays
  (:meth:`Encoding.factors`), from which :func:`generate` makes ``W``,
* a factorised execution path where it has one (:meth:`Encoding.factorised`),

and the generic functions below give its parameter count, maximal rank and fixed scale.
Registered: ``direct`` (``W`` is the parameter ``kernel``), ``position`` and ``neuron``.
Adding an encoding is one :class:`Encoding` entry in :data:`ENCODINGS`.

**Interaction rules** (``rules = R``, this project's extension, DESIGN 1.1). With
``R`` gene families, each with its own shared interaction matrix ``G_r``::

    W = s * prod_r (X^r_pre @ G_r @ X^r_post.T)        (element-wise product over r)

the rank of ``W`` reaches ``g^R`` instead of ``g``. With ``R = 1`` every array keeps its
plain shape (``x_pre [N, g]``, ``G [g, g]``); with ``R > 1`` every encoding array and
``G`` carry a leading rule axis (``x_pre [R, N, g]``, ``G [R, g, g]``). Only the
materialised path applies when ``R > 1``.

**Per-layer genes** (DESIGN 1.3, allocation genome). A layer may have its own genes
``g_r`` per rule and its own number of rules; its arrays are then *ragged*: tuples of
per-rule arrays (``x_pre = (X^1 [N, g_1], X^2 [N, g_2], ...)``, ``G = (G_1 [g_1, g_1],
...)``), and :func:`rule_scale` gives ``s`` from each rule's genes and init rms. A
network built at the maximum reaches the same weights by **masks**: an inactive gene is
a zero row and column of its ``G_r`` block (:func:`mask_interaction`), an inactive rule
a factor of one in the product (``rule_mask`` of :func:`rule_product`).

All functions are pure and jittable; sizes are Python ints.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from gsnn.core import genetic
from gsnn.core.tree import lookup

Array = jax.Array
FANS = ("fan_in", "fan_out")


@dataclasses.dataclass(frozen=True)
class Geometry:
    """What the weight of one synaptic layer connects (per example, per time step).

    Attributes:
      kernel_size: ``(h, w)``; ``(1, 1)`` for a dense layer.
      dense: a dense layer (kernel ``[C_in, C_out]``), not a convolution (HWIO kernel).
      c_in: inputs per kernel offset (a dense layer over a flattened map: ``H*W*C``).
      c_out: output units or channels.
      spatial_rows: rows of a ``neuron``-mode spatial code (``h*w`` for a convolution,
        ``H*W`` for a dense layer over a flattened map, else 0).
      population_in: size of the presynaptic population (the map's channels).
    """

    kernel_size: tuple[int, int]
    c_in: int
    c_out: int
    dense: bool = False
    spatial_rows: int = 0
    population_in: int = 0

    @property
    def kernel_positions(self) -> int:
        return self.kernel_size[0] * self.kernel_size[1]

    @property
    def fan_in(self) -> int:
        return self.kernel_positions * self.c_in

    @property
    def fan_out(self) -> int:
        return self.kernel_positions * self.c_out


class ParamSpec(NamedTuple):
    """A parameter an encoded layer owns: its shape and the std of its normal init."""

    shape: tuple[int, ...]
    std: float


class InitStds(NamedTuple):
    """Init stds of the factors' entries (from :class:`gsnn.config.GeneticConfig` via :func:`gsnn.nn.layers.init_stds`).

    Attributes:
      position: ``position`` encodings (a layer's ``x_pre``/``x_post``).
      population: ``neuron``-mode population encodings.
      spatial: ``neuron``-mode spatial codes.
      interaction_rms: root of the second moment of ``G``'s entries.
    """

    position: float
    population: float
    spatial: float
    interaction_rms: float


#: Unit stds: for code that needs the factors or parameter shapes, not their init scales.
UNIT_STDS = InitStds(1.0, 1.0, 1.0, 1.0)


def interaction_rms(gain: float, genes: int) -> float:
    """Rms of ``G``'s entries: ``gain / sqrt(g)`` (orthogonal ``G``: singular values ``gain``)."""
    return gain / math.sqrt(genes)


def position_std(init_scheme: str, gain: float, fan_in: int) -> float:
    """Init std of a ``position`` layer's ``x_pre``/``x_post`` entries: ``gain * sqrt(2/fan_in)``
    for the ``"balanced"`` scheme, ``gain`` for ``"unit"`` (DESIGN 1.5)."""
    base = genetic.kaiming_std(fan_in) if init_scheme == "balanced" else 1.0
    return gain * base


def population_std(init_scheme: str, gain: float, genes: int) -> float:
    """Init std of ``neuron``-mode population encodings: ``gain / sqrt(g)`` (``"balanced"``)
    or ``gain`` (``"unit"``)."""
    base = 1.0 / math.sqrt(genes) if init_scheme == "balanced" else 1.0
    return gain * base


class SharedGenes(NamedTuple):
    """Network-wide arrays an encoded layer reads. ``pre``/``post``: population
    encodings (``neuron`` mode), else ``None``. Shapes carry the rule axis when ``R > 1``."""

    interaction: Array
    pre: Array | None
    post: Array | None


class Factors(NamedTuple):
    """``W = scale * prod_r pre[r] @ G[r] @ post[r].T``: ``pre [(R,) N_pre, g]``,
    ``interaction [(R,) g, g]``, ``post [(R,) N_post, g]`` (or, ragged, tuples of
    per-rule ``[N_pre, g_r]``, ``[g_r, g_r]``, ``[N_post, g_r]``), and the rms of the
    entries of ``pre`` and ``post`` at initialisation (for the fixed scale)."""

    pre: Array
    interaction: Array
    post: Array
    pre_rms: float
    post_rms: float


def _rule_shape(rules: int, *shape: int) -> tuple[int, ...]:
    return shape if rules == 1 else (rules,) + shape


@dataclasses.dataclass(frozen=True)
class Encoding:
    """One weight generator (pure functions; see the module docstring).

    Attributes:
      name: registry key.
      param_specs: ``(geometry, genes, rules, stds) -> {name: ParamSpec}``: the
        parameters the layer owns.
      factors: ``(params, shared, geometry, stds) -> Factors`` (``None`` for ``direct``).
      factorised: ``(x, params, shared, geometry, scale, conv) -> y`` for ``R = 1``
        (``None``: no factorised path). ``x`` is ``[N, C_in]`` (dense) or NHWC;
        ``conv(x, kernel, groups)`` convolves with the layer's stride and padding.
      populations: reads network-wide population encodings (``neuron`` mode).
    """

    name: str
    param_specs: Callable[..., dict[str, ParamSpec]]
    factors: Callable[..., Factors] | None = None
    factorised: Callable[..., Array] | None = None
    populations: bool = False

    @property
    def encoded(self) -> bool:
        return self.factors is not None

    def cost_kind(self, dense: bool) -> str:
        """The factorised path's shape for :mod:`gsnn.core.genetic`'s cost model:
        ``"neuron"`` (pointwise, depthwise, pointwise) for a population-encoded
        convolution, else ``"position"``."""
        return "neuron" if self.populations and not dense else "position"


# --------------------------------------------------------------------------------------
# direct
# --------------------------------------------------------------------------------------


def _direct_specs(geom: Geometry, genes: int, rules: int, stds: InitStds) -> dict[str, ParamSpec]:
    kh, kw = geom.kernel_size
    shape = (geom.c_in, geom.c_out) if geom.dense else (kh, kw, geom.c_in, geom.c_out)
    return {"kernel": ParamSpec(shape, genetic.kaiming_std(geom.fan_in))}


# --------------------------------------------------------------------------------------
# position: private X_pre [h*w*C_in, g] and X_post [C_out, g] per layer
# --------------------------------------------------------------------------------------


def _position_specs(geom: Geometry, genes: int, rules: int, stds: InitStds) -> dict[str, ParamSpec]:
    return {"x_pre": ParamSpec(_rule_shape(rules, geom.fan_in, genes), stds.position),
            "x_post": ParamSpec(_rule_shape(rules, geom.c_out, genes), stds.position)}


def _position_factors(params, shared: SharedGenes, geom: Geometry, stds: InitStds) -> Factors:
    return Factors(params["x_pre"], shared.interaction, params["x_post"], stds.position, stds.position)


def _project_factorised(x, pre, G, post, geom: Geometry, scale, conv) -> Array:
    """``x -> x X_pre -> (s G X_post^T)``: a dense or h x w conv to ``g`` gene channels,
    then ``g -> C_out`` (R = 1)."""
    out_map = scale * (G @ post.T)  # [g, C_out], folded once per call
    if x.ndim == 2:
        return (x @ pre) @ out_map
    kh, kw = geom.kernel_size
    return conv(x, pre.reshape(kh, kw, geom.c_in, -1), 1) @ out_map


def _position_factorised(x, params, shared: SharedGenes, geom: Geometry, scale, conv) -> Array:
    return _project_factorised(x, params["x_pre"], shared.interaction, params["x_post"], geom, scale, conv)


# --------------------------------------------------------------------------------------
# neuron: shared population encodings X_k [N_k, g]; a spatial code S [P', g] per layer
# --------------------------------------------------------------------------------------


def _neuron_specs(geom: Geometry, genes: int, rules: int, stds: InitStds) -> dict[str, ParamSpec]:
    if not geom.spatial_rows:
        return {}
    return {"spatial": ParamSpec(_rule_shape(rules, geom.spatial_rows, genes), stds.spatial)}


def _neuron_factors(params, shared: SharedGenes, geom: Geometry, stds: InitStds) -> Factors:
    if shared.pre is None or shared.post is None:
        raise ValueError("neuron mode needs the population encodings of both populations")
    if not geom.spatial_rows:
        return Factors(shared.pre, shared.interaction, shared.post, stds.population, stds.population)
    S = params["spatial"]
    if isinstance(S, tuple):  # ragged: one (population, spatial code) pair per rule
        pre = tuple(genetic.spatial_pre_rows(x, s) for x, s in zip(shared.pre, S))
    else:
        pre = (genetic.spatial_pre_rows(shared.pre, S) if S.ndim == 2
               else jax.vmap(genetic.spatial_pre_rows)(shared.pre, S))
    return Factors(pre, shared.interaction, shared.post, stds.population * stds.spatial, stds.population)


def _neuron_factorised(x, params, shared: SharedGenes, geom: Geometry, scale, conv) -> Array:
    if x.ndim == 4 and geom.kernel_positions > 1:
        # pointwise C_in -> g, depthwise h x w on g channels (the spatial code), pointwise g -> C_out
        kh, kw = geom.kernel_size
        g = shared.interaction.shape[-1]
        u = conv(x @ shared.pre, params["spatial"].reshape(kh, kw, 1, g), g)
        return u @ (scale * (shared.interaction @ shared.post.T))
    f = _neuron_factors(params, shared, geom, UNIT_STDS)
    return _project_factorised(x, f.pre, f.interaction, f.post, geom, scale, conv)


ENCODINGS: dict[str, Encoding] = {
    "direct": Encoding("direct", _direct_specs),
    "position": Encoding("position", _position_specs, _position_factors, _position_factorised),
    "neuron": Encoding("neuron", _neuron_specs, _neuron_factors, _neuron_factorised, populations=True),
}


def get(name: str) -> Encoding:
    """The registered encoding ``name``; an unknown name lists the valid ones."""
    return lookup(ENCODINGS, name, "encoding")


# --------------------------------------------------------------------------------------
# Generic functions of an encoding
# --------------------------------------------------------------------------------------


def rule_product(f: Factors, scale: float | Array, rule_mask: Array | None = None) -> Array:
    """``W [N_pre, N_post] = scale * prod_r pre[r] @ G[r] @ post[r].T``.

    ``R = 1`` (unstacked factors) is :func:`gsnn.core.genetic.generate_weight` itself;
    ragged factors (tuples) multiply their rules' products in rule order.

    Args:
      f: the factors (stacked, unstacked or ragged).
      scale: ``s`` (a float, or a traced ``[]`` array for an allocation).
      rule_mask: ``[R]`` 0/1 (stacked factors only): a rule with 0 contributes a factor
        of one to the product (and no gradient to its arrays). ``None``: all active.
    """
    if isinstance(f.interaction, tuple):
        w = f.pre[0] @ (f.interaction[0] @ f.post[0].T)
        for pre, G, post in zip(f.pre[1:], f.interaction[1:], f.post[1:]):
            w = w * (pre @ (G @ post.T))
        return scale * w
    if f.interaction.ndim == 2:
        return genetic.generate_weight(f.pre, f.interaction, f.post, scale)
    per_rule = jnp.matmul(f.pre, jnp.matmul(f.interaction, jnp.swapaxes(f.post, -1, -2)))
    if rule_mask is not None:
        per_rule = jnp.where(rule_mask[:, None, None] > 0, per_rule, 1.0)
    return scale * jnp.prod(per_rule, axis=0)


def mask_interaction(interaction: Array, gene_mask: Array) -> Array:
    """``G_r * (m_r m_r^T)``: inactive genes as zero rows and columns of each ``G_r``.

    Args:
      interaction: ``[g, g]`` or ``[R, g, g]``.
      gene_mask: ``[g]`` or ``[R, g]``, 0/1 (1: active gene of that rule).

    Returns:
      The masked ``G``, same shape. With prefix masks (genes ``0..g_r-1`` active), ``X_pre
      G_m X_post^T = X_pre[:, :g_r] G[:g_r, :g_r] X_post[:, :g_r]^T``, and the gradients
      of the inactive columns of ``X_pre``, ``X_post`` and entries of ``G`` are zero.
    """
    return interaction * gene_mask[..., :, None] * gene_mask[..., None, :]


def rule_scale(target: float | Array, genes, pre_rms, interaction_rms, post_rms, rule_mask=None):
    """The fixed scale ``s`` of a layer whose rules have their own genes and init rms.

    Rule ``r``'s product has entries of variance ``v_r = (g_r rms_pre,r rms_G,r
    rms_post,r)^2`` (:func:`fixed_scale`); the Hadamard product of the active rules has
    variance ``prod_r v_r``, so ``s = target / prod_{r active} sqrt(v_r)``. Uniform
    ``g_r`` and rms give :func:`fixed_scale`.

    Args:
      target: the target std of ``W`` (:func:`target_std`).
      genes, pre_rms, interaction_rms, post_rms: per rule, sequences of Python floats
        (then ``s`` is a Python float) or ``[R]`` arrays (traced allocations).
      rule_mask: ``[R]`` 0/1, rules with 0 left out; ``None``: all rules.
    """
    if rule_mask is None and not any(isinstance(v, jax.Array) for v in (genes, pre_rms, interaction_rms, post_rms)):
        out = float(target)
        for g, a, b, c in zip(genes, pre_rms, interaction_rms, post_rms):
            out /= g * a * b * c
        return out
    per_rule = (jnp.asarray(genes, jnp.float32) * jnp.asarray(pre_rms) * jnp.asarray(interaction_rms)
                * jnp.asarray(post_rms))
    if rule_mask is not None:
        per_rule = jnp.where(rule_mask > 0, per_rule, 1.0)
    return target / jnp.prod(per_rule)


def generate(enc: Encoding, params, shared: SharedGenes | None, geom: Geometry, scale: float | Array,
             stds: InitStds) -> Array:
    """The layer's weight ``W [P*C_in, C_out]`` (rows offset-major)."""
    if not enc.encoded:
        return params["kernel"].reshape(geom.fan_in, geom.c_out)
    return rule_product(enc.factors(params, shared, geom, stds), scale)


def target_std(geom: Geometry, fan: str = "fan_in", gain: float = math.sqrt(2.0)) -> float:
    """Kaiming std of ``W``: ``gain / sqrt(fan)`` with ``fan`` = ``h*w*C_in`` (fan_in) or
    ``h*w*C_out`` (fan_out)."""
    if fan not in FANS:
        raise ValueError(f"unknown fan {fan!r}; valid: {list(FANS)}")
    return genetic.kaiming_std(geom.fan_in if fan == "fan_in" else geom.fan_out, gain)


def fixed_scale(geom: Geometry, genes: int, rules: int, pre_rms: float, interaction_rms: float,
                post_rms: float, fan: str = "fan_in") -> float:
    """The fixed scale ``s`` that gives ``W`` the target variance at initialisation.

    Each rule's product ``X_pre G X_post^T`` has entries of variance ``v = (g * rms_pre *
    rms_G * rms_post)^2`` (a sum of ``g^2`` independent zero-mean products), and the
    element-wise product of ``R`` independent ones has variance ``v^R``. So
    ``s = std_target / v^(R/2)``: each rule's product scaled by ``s^(1/R)`` sits at the
    ``R``-th root of the target variance. ``R = 1`` is
    :func:`gsnn.core.genetic.variance_matching_scale`.
    """
    if rules == 1:
        # the same expression as before interaction rules existed (bitwise equal scales)
        return target_std(geom, fan) / (genes * pre_rms * interaction_rms * post_rms)
    return target_std(geom, fan) / (genes * pre_rms * interaction_rms * post_rms) ** rules


def param_count(enc: Encoding, geom: Geometry, genes: int, rules: int, rule_genes: tuple[int, ...] = ()) -> int:
    """Scalars a layer owns in encoding ``enc`` (without bias; shared arrays excluded);
    with ``rule_genes`` (ragged, per-layer genes), the sum of its rules' counts."""
    if rule_genes:
        return sum(param_count(enc, geom, g, 1) for g in rule_genes)
    specs = enc.param_specs(geom, genes, rules, UNIT_STDS)
    return sum(math.prod(s.shape) for s in specs.values())


def max_rank(enc: Encoding, geom: Geometry, genes: int, rules: int) -> int:
    """Upper bound of the rank of ``W [P*C_in, C_out]``: ``min(P*C_in, C_out)`` and, for
    an encoded layer, ``g^R`` (a Hadamard product of ``R`` rank-``g`` matrices)."""
    full = min(geom.fan_in, geom.c_out)
    return full if not enc.encoded else min(full, genes ** rules)


def frobenius_sq(f: Factors, scale: float | Array) -> Array:
    """``||W||_F^2`` of a generated weight (for weight decay on ``W``, DESIGN 1.1).

    ``R = 1``: ``s^2 * sum((X_pre^T X_pre) * (G X_post^T X_post G^T))`` from ``[g, g]``
    Gram matrices, without materialising ``W``. ``R > 1``: from ``W`` itself.
    """
    if not isinstance(f.interaction, tuple) and f.interaction.ndim == 2:
        right = f.interaction @ (f.post.T @ f.post) @ f.interaction.T
        return scale * scale * jnp.sum((f.pre.T @ f.pre) * right)
    w = rule_product(f, scale)
    return jnp.sum(w * w)
