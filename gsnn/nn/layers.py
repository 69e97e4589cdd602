"""Thin Flax modules around the pure core: synapses (direct or genetic), LIF, norm.

Layout: activations between layers are *time-folded*, ``[T*B, ...]`` (time-major: the
first ``B`` rows are step 0), because synaptic operations have no recurrence and run for
all ``T`` steps at once; only :class:`SpikingNeuron` unfolds to ``[T, B, ...]`` and scans
the membrane update. A *static* input (direct coding: the same image at every step) is
passed as ``[B, ...]`` and broadcast over time only at the first neuron layer, so the
first synaptic layer runs once instead of ``T`` times.

Shared genetic parameters (the interaction matrix ``G`` and, in ``neuron`` mode, the
population encodings) belong to the top-level model; :class:`GeneBank` creates them
there, and layers receive the arrays as call arguments (DESIGN 1.1).
"""
from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gsnn.config import GeneticConfig, NeuronConfig
from gsnn.core import conv, encodings, genetic
from gsnn.core import activity, lif
from gsnn.nn.specs import LayerSpec, NeuronSpec, NormSpec, _module_name, _record

Array = jax.Array

# --------------------------------------------------------------------------------------
# Initial scales of the genetic factors (DESIGN 1.5)
# --------------------------------------------------------------------------------------


def init_stds(cfg: GeneticConfig, fan_in: int) -> encodings.InitStds:
    """The factors' init stds for a layer with this ``fan_in``."""
    return encodings.InitStds(encodings.position_std(cfg.init_scheme, cfg.encoding_gain, fan_in),
                              encodings.population_std(cfg.init_scheme, cfg.encoding_gain, cfg.genes),
                              cfg.spatial_std, encodings.interaction_rms(cfg.interaction_gain, cfg.genes))


def _one_interaction_init(cfg: GeneticConfig, genes: int):
    """Initializer of one ``G_r [genes, genes]`` (entries of rms ``gain / sqrt(genes)``)."""
    if cfg.interaction_init == "normal":
        return nn.initializers.normal(encodings.interaction_rms(cfg.interaction_gain, genes))
    if cfg.interaction_init == "orthogonal":
        return nn.initializers.orthogonal(scale=cfg.interaction_gain)
    return lambda key, shape, dtype=jnp.float32: jnp.eye(shape[0], dtype=dtype) * cfg.interaction_gain


def interaction_initializer(cfg: GeneticConfig):
    """Flax initializer for ``G [g, g]`` whose entries have rms ``gain / sqrt(g)``; with
    ``R > 1`` rules, for ``[R, g, g]``, each rule's ``G_r`` drawn independently."""
    one = _one_interaction_init(cfg, cfg.genes)
    if cfg.rules == 1 or cfg.interaction_init == "normal":
        return one
    return lambda key, shape, dtype=jnp.float32: jax.vmap(lambda k: one(k, shape[1:], dtype))(
        jax.random.split(key, shape[0]))


def _ragged_init(specs: list[encodings.ParamSpec]):
    """Initializer of a ragged parameter: a tuple of per-rule normal draws."""
    def init(key):
        keys = jax.random.split(key, len(specs))
        return tuple(nn.initializers.normal(sp.std)(k, sp.shape) for k, sp in zip(keys, specs))
    return init


# --------------------------------------------------------------------------------------
# Per-layer genes (GeneticConfig.layer_genes; DESIGN 1.3, allocation genome)
# --------------------------------------------------------------------------------------


def rule_genes(cfg: GeneticConfig, name: str) -> tuple[int, ...]:
    """Genes of each rule of the synapse or population (``"pop_<k>"``) ``name``."""
    table = dict(cfg.layer_genes)
    if name not in table:
        raise ValueError(f"model.genetic.layer_genes has no entry for {name!r} (it lists {sorted(table)}); "
                         f"gsnn.evolution.allocation.layer_genes writes a complete one")
    return tuple(table[name])


def interaction_sizes(cfg: GeneticConfig) -> tuple[int, ...]:
    """``m_r``: the size of each shared ``G_r`` with per-layer genes, the largest ``g_r``
    of any listed synapse (``G_r`` counts once, at the largest block a layer uses)."""
    table = [g for n, g in cfg.layer_genes if not n.startswith("pop_")]
    return tuple(max(g[r] for g in table if len(g) > r) for r in range(max(len(g) for g in table)))


def ragged_rms(cfg: GeneticConfig, enc: encodings.Encoding, geom: encodings.Geometry, genes: tuple[int, ...],
               pre: str, post: str) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """Per rule, the init rms of ``(pre rows, G_r, post rows)`` of a layer with per-layer
    genes: ``G_r``'s at its size ``m_r``; ``neuron`` populations' at their own width."""
    m = interaction_sizes(cfg)
    g_rms = tuple(encodings.interaction_rms(cfg.interaction_gain, m[r]) for r in range(len(genes)))
    if not enc.populations:
        x = encodings.position_std(cfg.init_scheme, cfg.encoding_gain, geom.fan_in)
        return (x,) * len(genes), g_rms, (x,) * len(genes)
    pop = lambda name, r: encodings.population_std(cfg.init_scheme, cfg.encoding_gain, rule_genes(cfg, name)[r])
    spatial = cfg.spatial_std if geom.spatial_rows else 1.0
    return (tuple(pop("pop_" + pre, r) * spatial for r in range(len(genes))), g_rms,
            tuple(pop("pop_" + post, r) for r in range(len(genes))))


# --------------------------------------------------------------------------------------
# Shared genetic parameters
# --------------------------------------------------------------------------------------


class GeneBank:
    """Creates the network-wide genetic parameters on the owning (top-level) module.

    Parameters are named ``G`` (``[g, g]``; ``[R, g, g]`` with ``R > 1`` rules) and
    ``pop_<name>`` (``[N, g]``; ``[R, N, g]``); each is created on first use, so
    populations that no encoded layer touches cost nothing. With per-layer genes
    (``cfg.layer_genes``) they are tuples of per-rule arrays (``G_r [m_r, m_r]``,
    ``pop_<name>`` ``[N, w_r]`` with the widths listed for it), and a layer receives the
    slices it uses: its first ``R_l`` rules and first ``g_r`` genes of each.
    """

    def __init__(self, module: nn.Module, cfg: GeneticConfig):
        self.module, self.cfg = module, cfg
        self._cache: dict[str, Array] = {}

    def _get(self, name, init, shape):
        if name not in self._cache:
            self._cache[name] = self.module.param(name, init, shape)
        return self._cache[name]

    def _shape(self, *shape: int) -> tuple[int, ...]:
        return shape if self.cfg.rules == 1 else (self.cfg.rules,) + shape

    def interaction(self) -> Array | tuple[Array, ...]:
        g = self.cfg.genes
        if self.cfg.layer_genes:
            sizes = interaction_sizes(self.cfg)

            def init(key):
                return tuple(_one_interaction_init(self.cfg, m)(k, (m, m))
                             for k, m in zip(jax.random.split(key, len(sizes)), sizes))
            if "G" not in self._cache:
                self._cache["G"] = self.module.param("G", init)
            return self._cache["G"]
        return self._get("G", interaction_initializer(self.cfg), self._shape(g, g))

    def population(self, name: str, size: int) -> Array | tuple[Array, ...]:
        cfg = self.cfg
        std = lambda g: encodings.population_std(cfg.init_scheme, cfg.encoding_gain, g)
        if cfg.layer_genes:
            widths = rule_genes(cfg, f"pop_{name}")
            if f"pop_{name}" not in self._cache:
                self._cache[f"pop_{name}"] = self.module.param(
                    f"pop_{name}", _ragged_init([encodings.ParamSpec((size, w), std(w)) for w in widths]))
            return self._cache[f"pop_{name}"]
        return self._get(f"pop_{name}", nn.initializers.normal(std(cfg.genes)), self._shape(size, cfg.genes))

    def inputs(self, encoding: str, pre: str, n_pre: int, post: str, n_post: int,
               layer: str = "") -> encodings.SharedGenes | None:
        """What a layer with the given encoding needs (``None`` for a direct layer);
        with per-layer genes, the slices the synapse ``layer`` uses."""
        enc = encodings.get(encoding)
        if not enc.encoded:
            return None
        G = self.interaction()
        pops = (self.population(pre, n_pre), self.population(post, n_post)) if enc.populations else (None, None)
        if not self.cfg.layer_genes:
            return encodings.SharedGenes(G, *pops)
        genes = rule_genes(self.cfg, layer)
        if len(genes) > len(G):
            raise ValueError(f"layer {layer!r} has {len(genes)} rules, G has {len(G)}")
        G = tuple(G[r][:g, :g] for r, g in enumerate(genes))
        if not enc.populations:
            return encodings.SharedGenes(G, None, None)
        for name, pop in zip((pre, post), pops):
            if len(pop) < len(genes) or any(pop[r].shape[1] < g for r, g in enumerate(genes)):
                raise ValueError(f"population {name!r} (widths {[p.shape[1] for p in pop]}) is narrower than "
                                 f"layer {layer!r} (genes {genes}); list its widest reader's genes for it")
        pre_x, post_x = (tuple(p[r][:, :g] for r, g in enumerate(genes)) for p in pops)
        return encodings.SharedGenes(G, pre_x, post_x)


# --------------------------------------------------------------------------------------
# Synaptic layer: direct or genetic, dense or convolution, two execution paths
# --------------------------------------------------------------------------------------


class Synapse(nn.Module):
    """A synaptic layer ``[N, ...] -> [N, ..., features]`` with direct or generated weights.

    A thin holder around :mod:`gsnn.core.encodings`: it creates the parameters its
    encoding declares and calls the encoding's pure generator (or its factorised path).
    Dense when ``kernel_size`` is ``None`` (inputs with more than 2 dims are flattened,
    NHWC order), else a 2-D convolution (NHWC, symmetric zero padding ``k // 2`` unless
    ``padding`` is given). For ``neuron`` mode, a dense layer over a flattened map is
    the convolution whose kernel covers the whole map: its spatial code has one row per
    map position (DESIGN 1.1).

    With the ``weight_sq`` collection mutable, an encoded layer sows ``||W||_F^2`` of its
    generated weight (``frobenius_sq``; for weight decay on ``W``); with ``generated``
    mutable, every layer sows its weight as the matrix ``[kh*kw*C_in, C_out]``
    (``weight``; :mod:`gsnn.analysis.effective_lr`).

    Per-layer genes (``genetic_cfg.layer_genes``): the layer's parameters are tuples of
    per-rule arrays and ``s`` comes from its own genes (:func:`ragged_rms`). An
    **allocation** (DESIGN 1.3): when the apply's variables hold a collection
    ``allocation`` with this layer's ``gene_mask`` (``[g]``, or ``[R, g]``), ``rule_mask``
    (``[R]``, ``R > 1``) and ``scale`` (``[]``), written by
    :func:`gsnn.evolution.allocation.allocation_variables`, ``G`` is masked
    (:func:`gsnn.core.encodings.mask_interaction`), inactive rules contribute a factor of
    one, and ``scale`` replaces the fixed scale.

    Attributes:
      features: output units/channels.
      kernel_size: ``(h, w)`` or ``None`` for dense.
      strides: convolution stride.
      encoding: a key of :data:`gsnn.core.encodings.ENCODINGS`.
      genetic_cfg: genes, rules, path and init settings.
      use_bias: add a bias (layers followed by batch norm do not).
      pre_population, post_population: population names (for ``neuron`` encodings and
        for spike statistics).
      real_input: the input is the real-valued image (for energy accounting).
      static_input: the input is the same at every time step (runs once, not ``T`` times).
      conv_impl: convolution implementation (:data:`gsnn.core.conv.CONV_IMPLS`).
    """

    features: int
    kernel_size: tuple[int, int] | None = None
    strides: int = 1
    padding: Any = None
    encoding: str = "direct"
    genetic_cfg: GeneticConfig = GeneticConfig()
    use_bias: bool = False
    pre_population: str = ""
    post_population: str = ""
    real_input: bool = False
    static_input: bool = False
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: Array, shared: encodings.SharedGenes | None = None) -> Array:
        cfg = self.genetic_cfg
        enc = encodings.get(self.encoding)
        dense = self.kernel_size is None
        pad = None
        if dense:
            in_positions = x.shape[1] * x.shape[2] if x.ndim == 4 else 1
            map_channels = x.shape[-1]
            x = x.reshape(x.shape[0], -1)
            kh, kw = 1, 1
            out_positions = 1
        else:
            if x.ndim != 4:
                raise ValueError(f"{_module_name(self)}: convolution expects [N,H,W,C], got {x.shape}")
            kh, kw = self.kernel_size
            map_channels = x.shape[-1]
            in_positions = x.shape[1] * x.shape[2]
            pad = self.padding if self.padding is not None else ((kh // 2, kh // 2), (kw // 2, kw // 2))
            h_out = (x.shape[1] + pad[0][0] + pad[0][1] - kh) // self.strides + 1
            w_out = (x.shape[2] + pad[1][0] + pad[1][1] - kw) // self.strides + 1
            out_positions = h_out * w_out
        c_in, c_out = x.shape[-1], self.features
        # In neuron mode a dense layer over a map has a spatial code over map positions
        # and reads the population encoding of the map's channels.
        neuron_flat = dense and enc.populations and in_positions > 1
        spatial_rows = 0
        if enc.populations:
            spatial_rows = in_positions if neuron_flat else (0 if dense else kh * kw)
        geom = encodings.Geometry((kh, kw), c_in, c_out, dense=dense, spatial_rows=spatial_rows,
                                  population_in=map_channels)
        ragged = enc.encoded and bool(cfg.layer_genes)
        rg = rule_genes(cfg, _module_name(self)) if ragged else ()
        g, rules = (max(rg), len(rg)) if ragged else (cfg.genes, cfg.rules) if enc.encoded else (0, 1)
        execution = self._execution(enc, geom, in_positions, out_positions, x.shape[0])
        _record(
            LayerSpec(
                name=_module_name(self), kind="dense" if dense else "conv", encoding=self.encoding,
                c_in=c_in, c_out=c_out, kernel_positions=kh * kw, in_positions=in_positions,
                out_positions=out_positions, genes=g, execution=execution, pre_population=self.pre_population,
                post_population=self.post_population,
                pre_rows=(geom.fan_in if self.encoding == "position" else map_channels if enc.populations else 0),
                spatial_rows=spatial_rows, bias=self.use_bias, real_input=self.real_input,
                runs_per_step=0 if self.static_input else 1, rules=rules, rule_genes=rg,
            )
        )
        if not self.real_input:
            self.sow("stats", "input_density", jnp.mean(x != 0), reduce_fn=lambda _, b: b, init_fn=lambda: 0.0)

        def conv_fn(inputs, kernel, groups=1):
            # the depthwise stage of the factorised neuron path keeps the automatic impl
            return conv.conv2d(inputs, kernel, self.strides, pad, groups=groups,
                               impl=self.conv_impl if groups == 1 else "auto")

        stds = init_stds(cfg, geom.fan_in) if enc.encoded else encodings.UNIT_STDS
        if ragged:
            rms = ragged_rms(cfg, enc, geom, rg, self.pre_population, self.post_population)
            per_rule = [enc.param_specs(geom, g_r, 1, stds) for g_r in rg]
            params = {name: self.param(name, _ragged_init([sp[name] for sp in per_rule])) for name in per_rule[0]}
        else:
            params = {name: self.param(name, nn.initializers.normal(spec.std), spec.shape)
                      for name, spec in enc.param_specs(geom, g, rules, stds).items()}
        if not enc.encoded:
            w = params["kernel"]
            y = x @ w if dense else conv_fn(x, w)
            if self.is_mutable_collection("generated"):
                self.sow("generated", "weight", w.reshape(-1, c_out), reduce_fn=lambda _, b: b, init_fn=lambda: 0.0)
        else:
            if shared is None:
                raise ValueError(f"{_module_name(self)}: a genetic layer needs the shared genetic inputs")
            rule_mask = None
            if self.has_variable("allocation", "scale"):  # a network built at the maximum, masked
                shared = shared._replace(interaction=encodings.mask_interaction(
                    shared.interaction, self.get_variable("allocation", "gene_mask")))
                rule_mask = self.get_variable("allocation", "rule_mask") if rules > 1 else None
            factors = enc.factors(params, shared, geom, stds)
            if self.has_variable("allocation", "scale"):
                scale = self.get_variable("allocation", "scale")
            elif ragged:
                scale = encodings.rule_scale(encodings.target_std(geom, cfg.init_fan), rg, *rms)
            else:
                scale = encodings.fixed_scale(geom, g, rules, factors.pre_rms, stds.interaction_rms,
                                              factors.post_rms, cfg.init_fan)
            w = None
            if execution == "materialise":
                w = encodings.rule_product(factors, scale, rule_mask)
                y = x @ w if dense else conv_fn(x, w.reshape(kh, kw, c_in, c_out))
            else:
                y = enc.factorised(x, params, shared, geom, scale, conv_fn)
            if self.is_mutable_collection("generated"):
                full = w if w is not None else encodings.rule_product(factors, scale, rule_mask)
                self.sow("generated", "weight", full, reduce_fn=lambda _, b: b, init_fn=lambda: 0.0)
            if self.is_mutable_collection("weight_sq"):
                sq = jnp.sum(w * w) if w is not None else encodings.frobenius_sq(factors, scale)
                self.sow("weight_sq", "frobenius_sq", sq, reduce_fn=lambda _, b: b, init_fn=lambda: 0.0)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (c_out,))
        return y

    def _execution(self, enc: encodings.Encoding, geom: encodings.Geometry, in_positions: int,
              out_positions: int, examples: int) -> str:
        """How this call executes: forced by config, else the cheaper by MAC count
        (encoded ``R = 1`` layers only; direct layers and ``R > 1`` materialise)."""
        cfg = self.genetic_cfg
        if not enc.encoded:
            return "materialise"
        if cfg.execution != "auto":
            return "materialise" if cfg.layer_genes else cfg.execution
        if cfg.rules > 1 or enc.factorised is None or cfg.layer_genes:
            return "materialise"
        return genetic.choose_execution(enc.cost_kind(geom.dense), geom.kernel_positions, geom.c_in, geom.c_out,
                                   cfg.genes, in_positions, out_positions, examples)


# --------------------------------------------------------------------------------------
# Spiking neurons and normalisation
# --------------------------------------------------------------------------------------


class SpikingNeuron(nn.Module):
    """A LIF population: folded currents ``[T*B, ...]`` (or static ``[B, ...]``) in,
    folded spikes ``[T*B, ...]`` out. Sows its firing rate (spikes per neuron per step)
    into the ``stats`` collection and, when the ``activity`` collection is mutable (the
    evolution's activity operators ask for it), ``firing_prob`` (each neuron's firing
    probability over the batch and the time steps, ``[...]``) and, when ``T >= 2``,
    ``spike_change`` (``mean |s_{t+1} - s_t|``, ``[]``) of :mod:`gsnn.core.activity`."""

    T: int
    cfg: NeuronConfig = NeuronConfig()

    @nn.compact
    def __call__(self, currents: Array, static: bool = False) -> Array:
        T = self.T
        if static:
            seq = jnp.broadcast_to(currents[None], (T,) + currents.shape)
        else:
            seq = currents.reshape((T, currents.shape[0] // T) + currents.shape[1:])
        lif_cfg = self.cfg.lif
        if self.cfg.learnable_tau:
            w = self.param("plif_w", nn.initializers.constant(lif.plif_init(self.cfg.tau)), ())
            inv_tau = lif.plif_leak(w)
            leak = inv_tau if lif_cfg.update == "tau" else 1.0 - inv_tau
        else:
            leak = lif.leak_for(lif_cfg, self.cfg.tau)
        _record(NeuronSpec(_module_name(self), math.prod(seq.shape[2:]), self.cfg.learnable_tau))
        spikes = lif.lif_run(leak, seq, lif_cfg, remat=self.cfg.remat)
        self.sow("stats", "firing_rate", jnp.mean(spikes), reduce_fn=lambda _, b: b, init_fn=lambda: 0.0)
        if self.is_mutable_collection("activity"):
            self.sow("activity", "firing_prob", activity.firing_probability(spikes), reduce_fn=lambda _, b: b,
                     init_fn=lambda: 0.0)
            if T >= 2:
                self.sow("activity", "spike_change", activity.spike_change(spikes), reduce_fn=lambda _, b: b,
                         init_fn=lambda: 0.0)
        return spikes.reshape((-1,) + spikes.shape[2:])


class BatchNorm(nn.Module):
    """Batch norm over batch x time (tdBN-style) on folded currents ``[T*B, ..., C]``;
    running statistics live in the ``batch_stats`` collection."""

    momentum: float = 0.9

    @nn.compact
    def __call__(self, x: Array, train: bool) -> Array:
        _record(NormSpec(_module_name(self), x.shape[-1]))
        return nn.BatchNorm(use_running_average=not train, momentum=self.momentum, epsilon=1e-5, name="bn")(x)


def avg_pool(x: Array, window: int = 2) -> Array:
    """Average pooling ``[N, H, W, C] -> [N, H/window, W/window, C]`` (no padding)."""
    return nn.avg_pool(x, (window, window), strides=(window, window))


def fold(x: Array) -> Array:
    """``[T, B, ...] -> [T*B, ...]``."""
    return x.reshape((-1,) + x.shape[2:])


def unfold(x: Array, T: int) -> Array:
    """``[T*B, ...] -> [T, B, ...]``."""
    return x.reshape((T, x.shape[0] // T) + x.shape[1:])
