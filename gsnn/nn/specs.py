"""What each layer of a traced network is: static specs for parameter, energy and memory
reports, recorded while a model is traced (:func:`record_layers`).
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from typing import Iterator

import flax.linen as nn

from gsnn.core import encodings, genetic

# --------------------------------------------------------------------------------------
# Introspection: what each synaptic layer is (for parameter, energy and memory reports)
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """Static description of one synaptic layer, recorded while a model is traced.

    Sizes are per example and per time step. ``in_positions``/``out_positions`` are the
    numbers of spatial positions (1 for dense layers); ``kernel_positions`` is ``h*w``.
    """

    name: str
    kind: str  # "dense" | "conv"
    encoding: str  # "direct" | "position" | "neuron"
    c_in: int
    c_out: int
    kernel_positions: int
    in_positions: int
    out_positions: int
    genes: int
    execution: str  # "materialise" | "factorised" (direct layers: "materialise")
    pre_population: str
    post_population: str
    pre_rows: int  # rows of X_pre (position) / population size (neuron) / 0 (direct)
    spatial_rows: int  # rows of the spatial code (neuron), else 0
    bias: bool
    real_input: bool  # the input is real-valued (the image), not spikes
    runs_per_step: int  # 1 when the layer runs once per time step; 0 when static (once in all)
    rules: int = 1  # interaction rules R of an encoded layer
    rule_genes: tuple[int, ...] = ()  # per-layer genes of each rule (GeneticConfig.layer_genes), else ()

    @property
    def geometry(self) -> encodings.Geometry:
        """The layer's :class:`gsnn.core.encodings.Geometry` (``h*w`` as ``(P, 1)``)."""
        return encodings.Geometry((self.kernel_positions, 1), self.c_in, self.c_out, dense=self.kind == "dense",
                                  spatial_rows=self.spatial_rows, population_in=self.pre_rows)

    @property
    def direct_params(self) -> int:
        """Scalars of this layer in the direct architecture (weights + bias)."""
        return self.kernel_positions * self.c_in * self.c_out + (self.c_out if self.bias else 0)

    @property
    def private_params(self) -> int:
        """Scalars this layer stores itself in its actual encoding."""
        b = self.c_out if self.bias else 0
        return encodings.param_count(encodings.get(self.encoding), self.geometry, self.genes, self.rules,
                                     self.rule_genes) + b

    @property
    def max_rank(self) -> int:
        """Upper bound of the rank of the layer's ``W [h*w*C_in, C_out]``."""
        bound = encodings.max_rank(encodings.get(self.encoding), self.geometry, self.genes, self.rules)
        return min(bound, math.prod(self.rule_genes)) if self.rule_genes else bound

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the materialised layer, per example per step."""
        return genetic.materialised_macs(
            self.kernel_positions, self.c_in, self.c_out, self.out_positions
        )


@dataclasses.dataclass(frozen=True)
class NeuronSpec:
    """A LIF population: ``size`` neurons per example (per time step)."""

    name: str
    size: int
    learnable_tau: bool


@dataclasses.dataclass(frozen=True)
class NormSpec:
    """A batch-norm layer over ``channels`` channels (2 trained scalars per channel)."""

    name: str
    channels: int


_RECORDER: contextvars.ContextVar[list | None] = contextvars.ContextVar("gsnn_layers", default=None)


@contextlib.contextmanager
def record_layers() -> Iterator[list[LayerSpec]]:
    """Collects a :class:`LayerSpec` for every synaptic layer traced inside the block.

    Used with ``jax.eval_shape(model.init, ...)``; tracing only, no computation.
    """
    specs: list[LayerSpec] = []
    token = _RECORDER.set(specs)
    try:
        yield specs
    finally:
        _RECORDER.reset(token)


def _record(spec) -> None:
    specs = _RECORDER.get()
    if specs is not None and all(s.name != spec.name for s in specs):
        specs.append(spec)


def _module_name(module: nn.Module) -> str:
    return "/".join(str(p) for p in module.scope.path) if module.scope is not None else module.name
