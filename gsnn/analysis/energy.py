"""Size and energy accounting: parameters, compression, firing rates, synaptic
operations, energy and weight-memory traffic.

Energy uses the 45 nm figures of Horowitz (ISSCC 2014) as is customary in the SNN
literature: 0.9 pJ per 32-bit float accumulate (AC, an input spike adds a weight) and
4.6 pJ per multiply-accumulate (MAC, a real-valued input). Counts are per example
(one inference over all ``T`` steps):

* a layer reading spikes does ``density x MACs`` accumulates per step, where
  ``density`` is the measured fraction of non-zero inputs (average pooling makes some
  inputs fractional; each non-zero input still triggers one accumulate per synapse);
* a layer reading the real-valued image does MACs; with direct coding it runs once,
  since its input is the same at every step;
* the factorised genetic path's first stage reads the input (ACs on spikes), its later
  stages read real gene activations (MACs);
* synthesising a materialised genetic weight from its genes costs MACs once per forward
  pass, amortised over the batch (``batch``), reported separately as ``synthesis_macs``
  and included in the energy ("generation" in gsnn always means an evolution generation);
* the read-out runs once, on the time-averaged input (MACs).

Parameter counts are computed from the layer specs by formula (DESIGN 1.1):
``R * (g^2 + sum(encoding rows) * g + spatial codes) + unencoded`` with ``R``
interaction rules; tests check them against the number of scalars in the parameter
pytree. With per-layer genes (DESIGN 1.3: ``g_{l,r}`` genes of rule ``r`` in layer ``l``)
each rule counts its own: ``G_r`` once at ``m_r = max_l g_{l,r}``, a ``neuron``-mode
population ``k`` at ``N_k * w_{k,r}`` with ``w_{k,r}`` the largest ``g_{l,r}`` of the
layers that read it, and each layer's rows times its own ``g_{l,r}``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from gsnn.core import encodings, genetic
from gsnn.nn.specs import LayerSpec, NeuronSpec, NormSpec

PJ_PER_AC = 0.9
PJ_PER_MAC = 4.6
BYTES_PER_PARAM = 4  # float32


@dataclasses.dataclass(frozen=True)
class ParamReport:
    """Parameter counts of one network and of its direct-weight twin."""

    direct_params: int
    stored_params: int  # scalars the network stores and trains (equals direct_params when direct)
    interaction_params: int
    population_params: int
    layer_params: int  # scalars stored by the synaptic layers themselves
    unencoded_params: int  # norm affine, PLIF, biases of encoded layers are in layer_params
    per_layer: list[dict]
    rules: int = 1  # interaction rules R of the encoded layers

    @property
    def genetic_params(self) -> int:
        """Former name of :attr:`stored_params` (read-only, kept for existing code)."""
        return self.stored_params

    @property
    def compression(self) -> float:
        """``1 - stored / direct``."""
        return 1.0 - self.stored_params / self.direct_params

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["compression"] = self.compression
        return d


def _rule_genes(s: LayerSpec) -> tuple[int, ...]:
    return s.rule_genes or (s.genes,) * s.rules


def ragged_shared_params(synapses: list[LayerSpec]) -> tuple[int, int]:
    """``(interaction, population)`` scalars of a network with per-layer genes: ``sum_r
    m_r^2`` and ``sum_{k,r} N_k w_{k,r}`` (the module docstring's rule)."""
    enc = [s for s in synapses if s.encoding != "direct"]
    m: dict[int, int] = {}
    widths: dict[tuple[str, int], int] = {}
    sizes: dict[str, int] = {}
    for s in enc:
        for r, g in enumerate(_rule_genes(s)):
            m[r] = max(m.get(r, 0), g)
            if s.encoding == "neuron":
                for pop, n in ((s.pre_population, s.pre_rows), (s.post_population, s.c_out)):
                    widths[pop, r] = max(widths.get((pop, r), 0), g)
                    sizes[pop] = n
    return sum(v * v for v in m.values()), sum(sizes[pop] * w for (pop, _), w in widths.items())


def populations(synapses: list[LayerSpec]) -> dict[str, int]:
    """Population name -> size for every population a ``neuron``-mode layer uses."""
    pops: dict[str, int] = {}
    for s in synapses:
        if s.encoding == "neuron":
            pops[s.pre_population] = s.pre_rows
            pops[s.post_population] = s.c_out
    return pops


def parameter_report(
    synapses: list[LayerSpec], neurons: list[NeuronSpec], norms: list[NormSpec]
) -> ParamReport:
    """Counts parameters by formula from the specs of :func:`gsnn.nn.networks.describe`."""
    genes = max((s.genes for s in synapses), default=0)
    rules = max((s.rules for s in synapses), default=1)
    encoded = any(s.encoding != "direct" for s in synapses)
    interaction = rules * genes * genes if encoded else 0
    pops = populations(synapses)
    population_params = sum(pops.values()) * genes * rules
    unencoded = sum(2 * n.channels for n in norms) + sum(1 for n in neurons if n.learnable_tau)
    if any(s.rule_genes for s in synapses):
        interaction, population_params = ragged_shared_params(synapses)
    layer_params = sum(s.private_params for s in synapses)
    direct = sum(s.direct_params for s in synapses) + unencoded
    per_layer = [
        dict(name=s.name, kind=s.kind, encoding=s.encoding, c_in=s.c_in, c_out=s.c_out,
             kernel_positions=s.kernel_positions, direct_params=s.direct_params,
             stored_params=s.private_params, execution=s.execution, rules=s.rules, max_rank=s.max_rank)
        for s in synapses
    ]
    return ParamReport(
        direct_params=direct,
        stored_params=interaction + population_params + layer_params + unencoded,
        interaction_params=interaction,
        population_params=population_params,
        layer_params=layer_params,
        unencoded_params=unencoded,
        per_layer=per_layer,
        rules=rules,
    )


def _flatten_stats(stats: Mapping[str, Any], key: str, prefix: str = "") -> dict[str, float]:
    out = {}
    for k, v in stats.items():
        name = f"{prefix}/{k}" if prefix else k
        if isinstance(v, Mapping):
            if key in v and not isinstance(v[key], Mapping):
                out[name] = float(v[key])
            out.update(_flatten_stats({kk: vv for kk, vv in v.items() if kk != key}, key, name))
    return out


def firing_rates(stats: Mapping[str, Any]) -> dict[str, float]:
    """LIF layer name -> firing rate (spikes per neuron per step) from sown ``stats``."""
    return _flatten_stats(stats, "firing_rate")


def input_densities(stats: Mapping[str, Any]) -> dict[str, float]:
    """Synapse name -> fraction of non-zero inputs from sown ``stats``."""
    return _flatten_stats(stats, "input_density")


def synaptic_operations(
    synapses: list[LayerSpec], densities: Mapping[str, float], T: int, batch: int = 1
) -> list[dict]:
    """Per-layer ACs, MACs and synthesis MACs for one example over ``T`` steps.

    Args:
      synapses: specs from :func:`gsnn.nn.networks.describe`.
      densities: synapse name -> measured fraction of non-zero inputs, for every
        synapse whose input is not the real-valued image (:func:`input_densities` of
        one forward pass of the same model holds all of them).
      T: time steps.
      batch: examples per forward pass, over which weight synthesis is amortised.

    Raises:
      ValueError: a synapse with spiking input has no measured density (a stats
        collection of another model, or of a pass that did not sow them); counting it
        as dense would overstate its operations silently.
    """
    missing = [s.name for s in synapses if not s.real_input and s.name not in densities]
    if missing:
        raise ValueError(f"no measured input density for the synapse(s) {missing} (their input is spikes); measured: "
                         f"{sorted(densities)}. Pass the 'stats' collection of a forward pass of the same model "
                         f"(every synapse with spiking input sows 'input_density'), or a density for each")
    rows = []
    for s in synapses:
        runs = T if s.runs_per_step else 1
        d = 1.0 if s.real_input else float(densities[s.name])
        spiking = not s.real_input and s.runs_per_step
        acs = macs = gen = 0.0
        if s.encoding == "direct" or s.execution == "materialise":
            work = s.macs * runs
            if spiking:
                acs = d * work
            else:
                macs = work
            if s.encoding != "direct":
                gen = genetic.synthesis_macs(s.kernel_positions, s.c_in, s.c_out, s.genes, s.rules) / batch
        else:
            enc = encodings.get(s.encoding).cost_kind(s.kind == "dense")
            first, later = genetic.factorised_macs(enc, s.kernel_positions, s.c_in, s.c_out, s.genes,
                                                   s.in_positions, s.out_positions)
            if spiking:
                acs = d * first * runs
            else:
                macs = first * runs
            macs += later * runs
        rows.append(dict(name=s.name, encoding=s.encoding, execution=s.execution, input_density=d,
                         acs=acs, macs=macs, synthesis_macs=gen))
    return rows


def energy_report(
    params: ParamReport,
    synapses: list[LayerSpec],
    stats: Mapping[str, Any],
    T: int,
    batch: int = 1,
) -> dict:
    """Firing rates, synaptic operations, energy (pJ -> uJ) and weight bytes per example.

    Energy in two conventions: ``energy_uj`` charges generating the encoded ``W`` to
    every forward pass of ``batch`` examples; ``energy_uj_generated_once`` generates
    ``W`` once at load (the deployed case). Weight-memory traffic per inference:
    ``weight_read_bytes_generated_once`` (every materialised ``W`` read whole) and
    ``weight_read_bytes_per_inference`` (only the stored parameters, generated each
    time).

    Args:
      params: from :func:`parameter_report`.
      synapses: specs from :func:`gsnn.nn.networks.describe`.
      stats: the ``stats`` collection sown by one evaluation forward pass.
      T: time steps.
      batch: batch size over which weight synthesis is amortised.
    """
    ops = synaptic_operations(synapses, input_densities(stats), T, batch)
    acs = sum(r["acs"] for r in ops)
    synthesis = sum(r["synthesis_macs"] for r in ops)
    macs = sum(r["macs"] for r in ops) + synthesis
    energy_pj = acs * PJ_PER_AC + macs * PJ_PER_MAC
    rates = firing_rates(stats)
    # Weights a deployed net reads per inference: with W generated once at load, every
    # materialised layer reads its whole W (factorised ones their factors); generating
    # per inference reads only the stored parameters.
    stored = {row["name"]: row["stored_params"] for row in params.per_layer}
    layer_reads = sum(s.direct_params if s.execution == "materialise" else stored[s.name] for s in synapses)
    factorised = any(s.encoding != "direct" and s.execution != "materialise" for s in synapses)
    shared = params.unencoded_params + (params.interaction_params + params.population_params if factorised else 0)
    return dict(
        firing_rates=rates,
        mean_firing_rate=sum(rates.values()) / max(1, len(rates)),
        synaptic_ops=ops,
        acs=acs,
        macs=macs,
        synthesis_macs=synthesis,
        energy_uj=energy_pj * 1e-6,
        energy_uj_generated_once=(energy_pj - synthesis * PJ_PER_MAC) * 1e-6,
        weight_bytes=params.stored_params * BYTES_PER_PARAM,
        direct_weight_bytes=params.direct_params * BYTES_PER_PARAM,
        weight_read_bytes_generated_once=(layer_reads + shared) * BYTES_PER_PARAM,
        weight_read_bytes_per_inference=params.stored_params * BYTES_PER_PARAM,
    )
