"""The evolution section: search, inner loop, fitness, genome layout, race, signal, sharding
and fault injection of the spatio-temporal evolution (DESIGN 1.3)."""
from __future__ import annotations

import dataclasses

from gsnn.config.names import (ALLOCATION_GENOMES, FINAL_VARIANT_NAMES, OVER_BUDGET_RULES, FITNESS_METRICS, GENOME_INTERACTIONS, LAMBDA_SCHEDULES, RACE_DATA,
                               SPATIAL_OPERATOR_NAMES, STRATEGY_NAMES, TEMPORAL_OPERATOR_NAMES, check_choice)


@dataclasses.dataclass(frozen=True)
class AllocationConfig:
    """What the genome holds, and the parameter budget of an allocation genome
    (``evolve.allocation``; DESIGN 1.3, :mod:`gsnn.evolution.budget`).

    Attributes:
      genome: ``wiring`` (the initial wiring rules; the default, as before this
        section), ``allocation`` (per encoded layer the active genes of each rule and
        the active rules, a continuous ``z [L, R_max + 1]``; the network is built once at
        ``max_genes`` x ``max_rules`` and every individual is a mask over it) or
        ``both`` (the wiring genome with ``z`` as one more entry, ``"allocation"``).
      budget: the most parameters an individual may have (stored scalars, counted as
        :func:`gsnn.evolution.allocation.param_count` counts them); 0: the parameter
        count of the uniform allocation of ``model.genetic.genes`` genes in each of
        ``model.genetic.rules`` rules (the model as configured: the baseline row).
      over_budget: ``project`` (an individual over the budget is scaled down onto it,
        :func:`gsnn.evolution.allocation.project`: every evaluated and every returned
        allocation is within budget) or ``penalty`` (it is evaluated as it is and its
        fitness lowered by ``penalty * (params / budget - 1)``).
      penalty: fitness units per unit of relative excess (``over_budget=penalty``).
      max_genes: genes per rule of the network built at the maximum (0:
        ``model.genetic.genes``; at least that).
      max_rules: rules of the network built at the maximum (0: ``model.genetic.rules``;
        at least that).
    """

    genome: str = "wiring"
    budget: int = 0
    over_budget: str = "project"
    penalty: float = 1.0
    max_genes: int = 0
    max_rules: int = 0

    def validate(self) -> "AllocationConfig":
        check_choice(self.genome, ALLOCATION_GENOMES, "evolve.allocation.genome")
        check_choice(self.over_budget, OVER_BUDGET_RULES, "evolve.allocation.over_budget")
        if not isinstance(self.budget, int) or self.budget < 0:
            raise ValueError(f"evolve.allocation.budget (the most parameters an individual may have) must be an int "
                             f">= 0, got {self.budget!r}; 0 means the parameter count of the model as configured "
                             f"(its genes and rules in every layer)")
        if not self.penalty >= 0:
            raise ValueError(f"evolve.allocation.penalty (fitness units per unit of relative excess over the budget) "
                             f"must be >= 0, got {self.penalty}; use evolve.allocation.over_budget=project to keep "
                             f"every individual within the budget instead")
        for name in ("max_genes", "max_rules"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"evolve.allocation.{name} must be an int >= 0 (0: the model's own), got "
                                 f"{getattr(self, name)!r}")
        return self


@dataclasses.dataclass(frozen=True)
class EvolveConfig:
    """Spatio-temporal evolution of the initial wiring rules (DESIGN 1.3).

    Attributes:
      strategy: evosax strategy name (``cma_es``, ``sep_cma_es``, ``snes``, ``open_es``,
        ``simple_ga``).
      population: individuals per generation.
      generations: generations.
      std_init: the strategy's initial search std (in genome units).
      elite_ratio: fraction of the population taken as elite: SimpleGA's parents, the
        CMA-ES and Sep-CMA-ES recombination size ``mu / lambda``; SNES and Open-ES ignore it.
      inner_steps: ``K`` optimiser steps per individual (the config's optimiser, cosine
        over ``K``, peak ``inner_learning_rate``).
      inner_batch: minibatch size of the inner loop (the same batches for everyone).
      inner_learning_rate: peak inner learning rate (> 0); ``None``: ``train.learning_rate``.
      val_size: validation images held out (class-stratified) from the training data.
      genome_interaction: ``"full"`` (``G0`` is ``g x g`` genes) or ``"compact"`` (a
        log-scale, an identity weight and rank-``compact_rank`` factors on top of the
        run's random orthogonal ``G``).
      compact_rank: rank of the compact ``G0`` update.
      per_gene_stats: mean/log-std per gene (``[g]``) rather than one scalar per matrix.
      evolve_encodings: evolve the full initial encodings too (large genomes).
      genome_gains: a log-gain per ``position``-encoded layer in the genome (the scale of
        its initial ``W`` relative to the balanced initialisation; one value a layer).
        Batch norm follows every hidden synapse, so such a gain cancels in the training
        forward pass (batch statistics) and changes mainly the layer's effective
        learning rate.
      genome_drive: a log-drive per batch-norm layer in the genome (each feeds a spiking
        layer): its initial scale and shift are multiplied by ``exp(log_drive)``, which
        at initialisation is exactly that layer's threshold ``v_th`` times
        ``exp(-log_drive)``: it sets the layer's firing rate. Any encoding.
      fixed_base: build every individual of every generation on one base draw (the
        random initialisation the genome transforms, drawn from ``seed``), instead of a
        new draw per generation: common random numbers, so that genomes are compared on
        the same network and only the data varies; the final ``evolved`` and ``random``
        networks are then built on that draw too (the random one with the zero genome),
        a paired comparison. Off: the genome is scored as a distribution over draws.
      genome_tau: a log time-constant offset per spiking layer in the genome
        (``tau = 1 + (tau0 - 1) * exp(d)``); needs ``model.spiking.learnable_tau`` (PLIF),
        whose parameter it sets. With ``train.lr_scale=(('neuron', 0.0),)`` the evolved
        time constants stay fixed in training (an innate trait, not an initial value).
      preserve_scale: rescale every built encoding matrix to the rms of the random draws
        it replaces and ``G`` to the norm of the reference ``G`` (see gsnn.evolution.genome), so
        evolution shapes the wiring but keeps the balanced, trainable scale.
      spatial_operator, temporal_operator: names in ``gsnn.evolution.fitness`` registries
        (:data:`SPATIAL_OPERATOR_NAMES`, :data:`TEMPORAL_OPERATOR_NAMES`; ``none`` switches
        an operator off). ``activity_entropy`` and ``activity_difference`` are measured
        on the network's spikes over the validation images after the inner training.
      fitness_metric: the accuracy term ``A`` of the fitness: ``val_loss`` (``A`` =
        minus the mean validation cross-entropy; the default: at K = 10 inner steps its
        ranking is more reproducible than the accuracy's, and the fitness-horizon study
        measured its ranking against the trained accuracy) or ``val_accuracy``.
      signal_every: measure the fitness's signal every this many generations, starting
        with the first (0 = never): the population is evaluated a second time with
        independent inner batches, keys and validation images, and the rank correlation
        and between/within-genome variance ratio of the two evaluations are reported
        per term (``gsnn.evolution.signal``). Costs one more population evaluation per
        measurement; the evolution itself is unchanged.
      race_top: after the last generation, race the search's ``race_top`` best genomes
        (over all generations, by the last generation's lambdas) and, with
        ``race_baseline``, the zero genome (random wiring) at ``race_steps`` inner steps on
        held-out data (:mod:`gsnn.evolution.race`); the winner is the evolved genome.
        0: no race, the search's best is.
      race_steps: the race's inner steps (a longer horizon than ``inner_steps``).
      race_batch: the race's minibatch size (0: ``inner_batch``); with ``race_steps``
        set to the final training's steps and this to ``train.batch_size``, the race
        trains every finalist as long as the final recipe does.
      race_data: ``held_out``: the race judges on images held out of the training split
        (as many as ``val_size``) and trains on the rest of it, so no image that ranked
        the search judges the race (but the race trains on fewer images);
        ``validation``: it trains on the whole training split (its own draws) and judges
        on the run's validation images, which also scored the search.
      race_repeats: independent evaluations per finalist (data and keys), averaged.
      race_baseline: race the zero genome too, so that a search whose finalists do not
        beat random wiring at the race's horizon returns random wiring.
      lambda_s, lambda_t: operator weights at generation 0.
      lambda_schedule: ``constant``, ``linear``, ``cosine`` or ``exponential`` decay over
        ``generations``.
      chunk_size: evaluate the population in vmapped chunks of this size, one chunk
        after another (0 = all at once; -1 = auto: one individual at a time on a single
        CPU device, where vmap measured slower than a loop, else all at once;
        ``benchmarks/README.md``).
      shard: shard the population axis over ``jax.devices()`` (a population they do not
        divide is padded with copies of its last individual, whose results are dropped).
      target_val_accuracy: report the first generation whose best reaches it (0 = off).
      inject_nan: fault injection: indices of individuals whose genome is replaced by NaN
        before every evaluation (the strategy still sees the real genome). Checks that a
        diverging individual gets the worst fitness and the generation goes on.
      final_variants: what to train to convergence afterwards, with ``train``'s recipe:
        ``evolved`` (best genome), ``random`` (same encoding, random wiring; with an
        allocation genome a random allocation at the budget), ``direct``, and
        ``uniform`` (allocation genomes only: the model as configured).
      allocation: what the genome holds, and the budget of an allocation genome
        (:class:`AllocationConfig`).
    """

    strategy: str = "cma_es"
    population: int = 16
    generations: int = 10
    std_init: float = 0.3
    elite_ratio: float = 0.5
    inner_steps: int = 20
    inner_batch: int = 64
    inner_learning_rate: float | None = None
    val_size: int = 1000
    genome_interaction: str = "full"
    compact_rank: int = 2
    per_gene_stats: bool = False
    evolve_encodings: bool = False
    genome_gains: bool = False
    genome_drive: bool = False
    fixed_base: bool = False
    genome_tau: bool = False
    preserve_scale: bool = True
    spatial_operator: str = "spatial_entropy"
    temporal_operator: str = "temporal_difference"
    fitness_metric: str = "val_loss"
    signal_every: int = 5
    race_top: int = 0
    race_steps: int = 200
    race_batch: int = 0
    race_data: str = "held_out"
    race_repeats: int = 1
    race_baseline: bool = True
    lambda_s: float = 0.1
    lambda_t: float = 0.1
    lambda_schedule: str = "cosine"
    chunk_size: int = -1
    shard: bool = True
    target_val_accuracy: float = 0.0
    inject_nan: tuple[int, ...] = ()
    final_variants: tuple[str, ...] = ("evolved", "random", "direct")
    allocation: AllocationConfig = AllocationConfig()

    def validate(self) -> "EvolveConfig":
        """Checks every concern of the section, each by its own function below."""
        _check_search(self)
        _check_inner_loop(self)
        _check_genome(self)
        _check_fitness(self)
        _check_evaluation(self)
        _check_race(self)
        for v in self.final_variants:
            check_choice(v, FINAL_VARIANT_NAMES, "final variant")
        self.allocation.validate()
        if "uniform" in self.final_variants and self.allocation.genome == "wiring":
            raise ValueError("evolve.final_variants 'uniform' (the model as configured, against which an evolved "
                             "allocation is compared) needs an allocation genome: set evolve.allocation.genome to "
                             "'allocation' or 'both', or drop 'uniform'")
        return self


def _check_search(e: EvolveConfig) -> None:
    """The strategy, its population, generations, initial std and elite."""
    check_choice(e.strategy, STRATEGY_NAMES, "strategy")
    if e.population < 2:
        raise ValueError(f"evolve.population must be >= 2, got {e.population}")
    if e.strategy == "open_es" and e.population % 2:
        raise ValueError(f"evolve.population must be even for open_es (antithetic pairs), got {e.population}")
    if e.generations < 1:
        raise ValueError(f"evolve.generations must be >= 1, got {e.generations}")
    if not e.std_init > 0:
        raise ValueError(f"evolve.std_init (the search's initial std, in genome units) must be > 0, got "
                         f"{e.std_init}; a std <= 0 turns the strategy's state NaN within a few generations "
                         f"(0.3 is the default)")
    if not 0 < e.elite_ratio <= 1:
        raise ValueError(f"evolve.elite_ratio (the fraction of the population kept as elite) must be in (0, 1], "
                         f"got {e.elite_ratio}")


def _check_inner_loop(e: EvolveConfig) -> None:
    """Each individual's inner training and the validation images that score it."""
    for name in ("inner_steps", "inner_batch", "val_size"):
        if getattr(e, name) < 1:
            raise ValueError(f"evolve.{name} must be >= 1, got {getattr(e, name)}")
    if e.inner_learning_rate is not None and not e.inner_learning_rate > 0:
        raise ValueError(f"evolve.inner_learning_rate must be > 0, or None for train.learning_rate; got "
                         f"{e.inner_learning_rate}")


def _check_genome(e: EvolveConfig) -> None:
    """The genome's layout."""
    check_choice(e.genome_interaction, GENOME_INTERACTIONS, "evolve.genome_interaction")


def _check_fitness(e: EvolveConfig) -> None:
    """The fitness's operators, accuracy term, weights and their schedule."""
    check_choice(e.spatial_operator, SPATIAL_OPERATOR_NAMES, "spatial operator", ordered=False)
    check_choice(e.temporal_operator, TEMPORAL_OPERATOR_NAMES, "temporal operator", ordered=False)
    check_choice(e.fitness_metric, FITNESS_METRICS, "evolve.fitness_metric")
    for name in ("lambda_s", "lambda_t"):
        if not getattr(e, name) >= 0:
            raise ValueError(f"evolve.{name} (an operator's weight at generation 0) must be >= 0, got "
                             f"{getattr(e, name)}; 0 switches the operator off (or set its operator to 'none')")
    check_choice(e.lambda_schedule, LAMBDA_SCHEDULES, "evolve.lambda_schedule")


def _check_evaluation(e: EvolveConfig) -> None:
    """How the population is evaluated: chunks (sharding needs no check), the signal
    measurement and fault injection."""
    if e.chunk_size < -1:
        raise ValueError(f"evolve.chunk_size must be >= 0 (or -1 for auto), got {e.chunk_size}")
    if e.chunk_size > 0 and e.population % e.chunk_size:
        raise ValueError(f"evolve.population ({e.population}) must be a multiple of evolve.chunk_size ({e.chunk_size})")
    if e.signal_every < 0:
        raise ValueError(f"evolve.signal_every must be >= 0 (0 = no signal measurement), got {e.signal_every}")
    if any(not 0 <= i < e.population for i in e.inject_nan):
        raise ValueError(f"evolve.inject_nan {e.inject_nan} must index the population (0..{e.population - 1})")


def _check_race(e: EvolveConfig) -> None:
    """The final race of the search's best genomes (checked only when one runs)."""
    if e.race_top < 0:
        raise ValueError(f"evolve.race_top must be >= 0 (0 = no race), got {e.race_top}")
    if not e.race_top:
        return
    if e.race_steps < 1 or e.race_repeats < 1:
        raise ValueError(f"evolve.race_steps and evolve.race_repeats must be >= 1, got {e.race_steps} "
                         f"and {e.race_repeats}")
    if e.race_batch < 0:
        raise ValueError(f"evolve.race_batch must be >= 1, or 0 for evolve.inner_batch; got {e.race_batch}")
    check_choice(e.race_data, RACE_DATA, "evolve.race_data")
    if e.race_top + e.race_baseline < 2:
        raise ValueError("a race needs at least 2 finalists: evolve.race_top >= 2, or evolve.race_top=1 "
                         "with evolve.race_baseline=true")
