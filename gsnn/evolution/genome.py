"""Genomes: the evolvable initial wiring rules of a genetically encoded network.

A genome is a pytree (DESIGN 1.3)::

    {"interaction": {...},           # G0: "full" -> {"G": [g, g]}
                                     #     "compact" -> {"log_scale": [], "identity": [],
                                     #                   "u": [g, r], "v": [g, r]}
     "mean":    {matrix: [m]},       # per encoding matrix, m = g (wiring.per_gene_stats) or 1
     "log_std": {matrix: [m]},
     "encodings": {matrix: [rows, g]},   # only with wiring.full_encodings
     "log_gain": {layer: []},            # only with wiring.gains (position mode)
     "log_drive": {norm: []},            # only with wiring.drive (any encoding)
     "log_tau": {neuron_layer: []}}      # only with wiring.tau (PLIF networks)

(the options are the keys of ``evolve.wiring``, :class:`gsnn.config.WiringGenomeConfig`).

An encoding matrix is a population encoding (``neuron`` mode) or a layer's ``x_pre`` /
``x_post`` (``position`` mode). A network is built from ``(genome, base)`` by a pure
function, where ``base`` is an ordinary random initialisation drawn with a key shared
by the whole generation, so individuals differ only by their genome::

    rows = std0 * mean + exp(log_std) * base_rows          # base_rows ~ N(0, std0^2)

(``std0``: the matrix's nominal init std). The compact ``G0`` is
``exp(log_scale) * (Q + identity * I + u v^T / sqrt(g))`` around the run's random
orthogonal ``Q`` (the ``1/sqrt(g)`` keeps the low-rank term on the scale of ``Q``'s entries).
The all-zero genome (full mode: ``G = Q``) reproduces the random initialisation exactly;
it is the strategy's starting mean and the "random wiring" baseline.

With ``wiring.gains`` each position-encoded layer also has a log-gain: its ``x_pre``
rows are multiplied by ``exp(log_gain)`` after everything above (``wiring.preserve_scale``
included), so the layer's ``W`` starts ``exp(log_gain)`` times the balanced
initialisation (``exp(R * log_gain)`` with ``R`` interaction rules, whose
products each scale). These scales set the firing rates and the gradient flow of an SNN,
which ``wiring.preserve_scale`` otherwise holds fixed. Batch norm follows every hidden
synapse, though, so in the training forward pass a gain cancels; what remains is the
layer's effective learning rate (measured: ``benchmarks/results/fitness_signal_gains.json``).

With ``wiring.drive`` each batch-norm layer (each feeds a spiking layer) has a
log-drive: its scale and shift are multiplied by ``exp(log_drive)``. At initialisation
that is exactly a threshold of ``v_th * exp(-log_drive)`` for the spiking layer it
feeds (the LIF update is linear in the input until the threshold, and the reset is to
0 or by the threshold): the genome sets each layer's firing rate, which no
normalisation undoes. The final training then trains the scale and shift as usual.

With ``wiring.tau`` each spiking layer has a log time-constant offset ``d``: its
membrane time constant is ``tau = 1 + (tau0 - 1) * exp(d)`` (always > 1; ``tau0`` the
model's ``spiking.tau``). It needs PLIF layers (``model.spiking.learnable_tau``), whose
parameter ``w`` (``1/tau = sigmoid(w)``) the genome sets to ``w0 - d``. Unlike the
parts above it can persist through training: with ``train.lr_scale`` of the ``neuron``
group at 0 the time constants stay what the genome chose (an innate trait); otherwise
they are the PLIF layers' initial values.

With ``wiring.preserve_scale`` (the default) every built matrix is rescaled to the rms of the
random draws it replaces, and ``G`` to the Frobenius norm of ``Q``. The genome then
shapes the wiring (offsets, relative gene variances, the spectrum of ``G``) but not the
overall scale of the factors. The balanced initialisation's trainability relies on
that scale: genomes that shrank or inflated it adapted fast in ``K`` inner steps, then
failed to train with the full recipe (measured in the demo: 10% test accuracy).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from gsnn.analysis import energy
from gsnn.config import EvolveConfig, GeneticConfig
from gsnn.core import encodings
from gsnn.core.tree import count_scalars
import gsnn.evolution.fitness as fitness
from gsnn.nn.specs import LayerSpec, NeuronSpec, NormSpec


@dataclasses.dataclass(frozen=True)
class EncodingMatrix:
    """One evolvable encoding matrix: its key path in ``params``, rows and nominal std."""

    keypath: tuple[str, ...]
    rows: int
    std: float

    @property
    def key(self) -> str:
        return "/".join(self.keypath)


@dataclasses.dataclass(frozen=True)
class GenomeSpec:
    """Static description of a genome (Python values only)."""

    genes: int
    matrices: tuple[EncodingMatrix, ...]
    interaction: str  # "full" | "compact"
    rank: int
    per_gene_stats: bool
    full_encodings: bool
    preserve_scale: bool = True
    gains: tuple[str, ...] = ()  # keys of the matrices a per-layer log-gain scales (x_pre)
    drives: tuple[str, ...] = ()  # names of the batch-norm layers a log-drive scales
    taus: tuple[str, ...] = ()  # names of the PLIF layers whose time constant the genome sets


def genome_spec(gcfg: GeneticConfig, synapses: list[LayerSpec], ecfg: EvolveConfig,
                norms: Sequence[NormSpec] = (), neurons: Sequence[NeuronSpec] = ()) -> GenomeSpec:
    """The genome layout of a network described by ``synapses``, ``neurons`` and
    ``norms`` (the lists of ``models.describe``; ``norms`` is read only with
    ``evolve.wiring.drive``, ``neurons`` only with ``evolve.wiring.tau``).

    Raises:
      ValueError: the model is not genetically encoded; ``ecfg.fitness.spatial_operator`` is
        undefined for ``gcfg.genes`` (:func:`gsnn.evolution.fitness.check_spatial_operator`);
        ``ecfg.wiring.gains`` with ``neuron`` encodings (whose populations are shared
        by several layers, so no matrix belongs to one layer); or ``ecfg.wiring.tau``
        without PLIF layers.
    """
    if gcfg.encoding == "direct":
        raise ValueError("evolution needs a genetically encoded model: set model.genetic.encoding "
                         "to 'position' or 'neuron' (and model.genetic.genes > 0)")
    fitness.check_spatial_operator(ecfg.fitness.spatial_operator, gcfg.genes)
    if ecfg.wiring.gains and gcfg.encoding != "position":
        raise ValueError(f"evolve.wiring.gains needs model.genetic.encoding='position' (got {gcfg.encoding!r}: "
                         "its population encodings are shared by several layers, so there is no per-layer "
                         "matrix to scale); set evolve.wiring.gains=false")
    if ecfg.wiring.drive and not norms:
        raise ValueError("evolve.wiring.drive needs the network's batch-norm layers: pass norms="
                         "models.describe(model)[2] (a network without batch norm has no drive to evolve)")
    if ecfg.wiring.tau and not any(n.learnable_tau for n in neurons):
        raise ValueError("evolve.wiring.tau sets each spiking layer's time constant through its PLIF parameter: "
                         "set model.spiking.learnable_tau=true (and train.lr_scale=\"(('neuron',0.0),)\" to "
                         "keep the evolved time constants fixed during training)")
    mats: list[EncodingMatrix] = []
    if gcfg.encoding == "position":
        for s in synapses:
            if s.encoding == "position":
                std = encodings.position_std(gcfg.init_scheme, gcfg.encoding_gain, s.kernel_positions * s.c_in)
                mats.append(EncodingMatrix(tuple(s.name.split("/")) + ("x_pre",), s.pre_rows, std))
                mats.append(EncodingMatrix(tuple(s.name.split("/")) + ("x_post",), s.c_out, std))
    else:
        for name, size in energy.populations(synapses).items():
            mats.append(EncodingMatrix((f"pop_{name}",), size, encodings.population_std(gcfg.init_scheme, gcfg.encoding_gain,
                                                                                 gcfg.genes)))
    gains = tuple(m.key for m in mats if m.keypath[-1] == "x_pre") if ecfg.wiring.gains else ()
    drives = tuple(n.name for n in norms) if ecfg.wiring.drive else ()
    taus = tuple(n.name for n in neurons if n.learnable_tau) if ecfg.wiring.tau else ()
    w = ecfg.wiring
    return GenomeSpec(gcfg.genes, tuple(mats), w.interaction, w.compact_rank, w.per_gene_stats, w.full_encodings,
                      w.preserve_scale, gains, drives, taus)


def _get(tree, keypath):
    for p in keypath:
        tree = tree[p]
    return tree


def _set(tree, keypath, value):
    if len(keypath) == 1:
        return {**tree, keypath[0]: value}
    return {**tree, keypath[0]: _set(tree[keypath[0]], keypath[1:], value)}


def default_genome(spec: GenomeSpec, reference_params) -> dict:
    """The genome that rebuilds ``reference_params``' random initialisation exactly.

    ``reference_params``: the run's reference initialisation (its ``G`` is ``Q``).
    """
    g = spec.genes
    m = g if spec.per_gene_stats else 1
    if spec.interaction == "full":
        interaction = {"G": jnp.asarray(reference_params["G"])}
    else:
        interaction = {"log_scale": jnp.zeros(()), "identity": jnp.zeros(()),
                       "u": jnp.zeros((g, spec.rank)), "v": jnp.zeros((g, spec.rank))}
    genome = {
        "interaction": interaction,
        "mean": {mat.key: jnp.zeros((m,)) for mat in spec.matrices},
        "log_std": {mat.key: jnp.zeros((m,)) for mat in spec.matrices},
    }
    if spec.full_encodings:
        genome["encodings"] = {mat.key: _get(reference_params, mat.keypath) / mat.std for mat in spec.matrices}
    if spec.gains:
        genome["log_gain"] = {key: jnp.zeros(()) for key in spec.gains}
    if spec.drives:
        genome["log_drive"] = {name: jnp.zeros(()) for name in spec.drives}
    if spec.taus:
        genome["log_tau"] = {name: jnp.zeros(()) for name in spec.taus}
    return genome


def interaction_matrix(spec: GenomeSpec, genome: dict, reference_G: jax.Array) -> jax.Array:
    """``G0 [g, g]`` of a genome."""
    gi = genome["interaction"]
    if spec.interaction == "full":
        return gi["G"]
    eye = jnp.eye(spec.genes, dtype=reference_G.dtype)
    # u v^T / sqrt(g) keeps the low-rank term on the scale of Q's entries
    return jnp.exp(gi["log_scale"]) * (reference_G + gi["identity"] * eye + gi["u"] @ gi["v"].T / math.sqrt(spec.genes))


def build_params(spec: GenomeSpec, genome: dict, base_params, reference_G: jax.Array):
    """Network parameters from a genome (pure, differentiable in the genome).

    Args:
      spec: the genome layout.
      genome: one genome (no population axis; ``vmap`` for a population).
      base_params: a random initialisation drawn with the generation's key; supplies
        everything the genome does not encode (spatial codes, norm, direct layers) and
        the standard-normal draws of the encodings.
      reference_G: the run's reference ``G`` (``Q`` of the compact form).

    Returns:
      ``params`` with the same structure as ``base_params``.
    """
    G = interaction_matrix(spec, genome, reference_G)
    if spec.preserve_scale:
        G = G * (jnp.linalg.norm(reference_G) / jnp.linalg.norm(G))
    params = _set(base_params, ("G",), G)
    for mat in spec.matrices:
        draws = _get(base_params, mat.keypath)
        base = genome["encodings"][mat.key] * mat.std if spec.full_encodings else draws
        rows = mat.std * genome["mean"][mat.key][None, :] + jnp.exp(genome["log_std"][mat.key])[None, :] * base
        if spec.preserve_scale:
            rows = rows * (_rms(draws) / _rms(rows))
        if mat.key in spec.gains:
            rows = rows * jnp.exp(genome["log_gain"][mat.key])
        params = _set(params, mat.keypath, rows)
    for name in spec.drives:
        keypath = tuple(name.split("/")) + ("bn",)
        drive = jnp.exp(genome["log_drive"][name])
        params = _set(params, keypath, {k: v * drive for k, v in _get(params, keypath).items()})
    for name in spec.taus:
        # 1/tau = sigmoid(w), tau - 1 = exp(-w): a log offset d of tau - 1 is w - d
        keypath = tuple(name.split("/")) + ("plif_w",)
        params = _set(params, keypath, _get(params, keypath) - genome["log_tau"][name])
    return params


def _rms(x):
    return jnp.sqrt(jnp.mean(x * x))


def genome_size(genome) -> int:
    """Number of scalars in a genome."""
    return count_scalars(genome)


def genome_summary(spec: GenomeSpec, genome) -> str:
    """One line: size and composition (printed at the start of an evolution)."""
    parts = [f"G0 {spec.interaction}"
             + (f" (rank {spec.rank})" if spec.interaction == "compact" else f" ({spec.genes}x{spec.genes})"),
             f"{len(spec.matrices)} encoding matrices x (mean, log-std)"
             + (" per gene" if spec.per_gene_stats else "")]
    if spec.full_encodings:
        parts.append("full encodings")
    if spec.gains:
        parts.append(f"{len(spec.gains)} layer log-gains")
    if spec.drives:
        parts.append(f"{len(spec.drives)} layer log-drives (batch-norm scale: minus the log threshold)")
    if spec.taus:
        parts.append(f"{len(spec.taus)} layer log time constants (log of tau - 1)")
    return f"genome: {genome_size(genome):,} genes-values; " + ", ".join(parts)


Genome = Any
