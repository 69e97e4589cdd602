"""The sections of the evolution's config (:class:`gsnn.config.evolve.EvolveConfig`): the
search, each individual's inner loop, the wiring genome's layout, the fitness, the final
race, how the population is evaluated, and what the genome holds (wiring or an allocation
under a parameter budget). Each is a frozen dataclass that checks itself
when it is built (``__post_init__`` calls ``validate``), so an invalid section cannot
exist; checks that need two sections are :class:`~gsnn.config.evolve.EvolveConfig`'s.
"""
from __future__ import annotations

import dataclasses

from gsnn.config.names import (ALLOCATION_GENOMES, FITNESS_METRICS, OVER_BUDGET_RULES, GENOME_INTERACTIONS, LAMBDA_SCHEDULES, RACE_DATA,
                               SPATIAL_OPERATOR_NAMES, STRATEGY_NAMES, TEMPORAL_OPERATOR_NAMES, check_choice)


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """The outer loop: the evosax strategy and its population (``evolve.search``).

    Attributes:
      strategy: evosax strategy name (``cma_es``, ``sep_cma_es``, ``snes``, ``open_es``,
        ``simple_ga``).
      population: individuals per generation.
      generations: generations.
      std_init: the strategy's initial search std (in genome units).
      elite_ratio: fraction of the population taken as elite: SimpleGA's parents, the
        CMA-ES and Sep-CMA-ES recombination size ``mu / lambda``; SNES and Open-ES ignore it.
      target_val_accuracy: report the first generation whose best reaches this validation
        accuracy (a fraction; 0 = off).
    """

    strategy: str = "cma_es"
    population: int = 16
    generations: int = 10
    std_init: float = 0.3
    elite_ratio: float = 0.5
    target_val_accuracy: float = 0.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "SearchConfig":
        """The strategy, its population, generations, initial std and elite."""
        check_choice(self.strategy, STRATEGY_NAMES, "strategy")
        if self.population < 2:
            raise ValueError(f"evolve.search.population must be >= 2, got {self.population}")
        if self.strategy == "open_es" and self.population % 2:
            raise ValueError(f"evolve.search.population must be even for open_es (antithetic pairs), got "
                             f"{self.population}")
        if self.generations < 1:
            raise ValueError(f"evolve.search.generations must be >= 1, got {self.generations}")
        if not self.std_init > 0:
            raise ValueError(f"evolve.search.std_init (the search's initial std, in genome units) must be > 0, got "
                             f"{self.std_init}; a std <= 0 turns the strategy's state NaN within a few generations "
                             f"(0.3 is the default)")
        if not 0 < self.elite_ratio <= 1:
            raise ValueError(f"evolve.search.elite_ratio (the fraction of the population kept as elite) must be in "
                             f"(0, 1], got {self.elite_ratio}")
        return self


@dataclasses.dataclass(frozen=True)
class InnerLoopConfig:
    """Each individual's inner training and the validation images that score it
    (``evolve.inner``).

    Attributes:
      steps: ``K`` optimiser steps per individual (the config's optimiser, cosine over
        ``K``, peak ``learning_rate``).
      batch: minibatch size (images) of the inner loop (the same batches for everyone).
      learning_rate: peak inner learning rate (> 0); ``None``: ``train.learning_rate``.
      val_size: validation images held out (class-stratified) from the training data.
    """

    steps: int = 20
    batch: int = 64
    learning_rate: float | None = None
    val_size: int = 1000

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "InnerLoopConfig":
        for name in ("steps", "batch", "val_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"evolve.inner.{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"evolve.inner.learning_rate must be > 0, or None for train.learning_rate; got "
                             f"{self.learning_rate}")
        return self


@dataclasses.dataclass(frozen=True)
class WiringGenomeConfig:
    """The layout of the wiring genome (DESIGN 1.3: ``G0`` and the statistics of the
    initial encodings, and the options below; ``evolve.wiring``).

    Attributes:
      interaction: ``"full"`` (``G0`` is ``g x g`` genes) or ``"compact"`` (a log-scale,
        an identity weight and rank-``compact_rank`` factors on top of the run's random
        orthogonal ``G``).
      compact_rank: rank of the compact ``G0`` update.
      per_gene_stats: mean/log-std per gene (``[g]``) rather than one scalar per matrix.
      full_encodings: evolve the full initial encodings too (large genomes).
      gains: a log-gain per ``position``-encoded layer in the genome (the scale of its
        initial ``W`` relative to the balanced initialisation; one value a layer). Batch
        norm follows every hidden synapse, so such a gain cancels in the training forward
        pass (batch statistics) and changes mainly the layer's effective learning rate.
      drive: a log-drive per batch-norm layer in the genome (each feeds a spiking
        layer): its initial scale and shift are multiplied by ``exp(log_drive)``, which
        at initialisation is exactly that layer's threshold ``v_th`` times
        ``exp(-log_drive)``: it sets the layer's firing rate. Any encoding.
      tau: a log time-constant offset per spiking layer in the genome
        (``tau = 1 + (tau0 - 1) * exp(d)``, in time steps); needs
        ``model.spiking.learnable_tau`` (PLIF), whose parameter it sets. With
        ``train.lr_scale=(('neuron', 0.0),)`` the evolved time constants stay fixed in
        training (an innate trait, not an initial value).
      preserve_scale: rescale every built encoding matrix to the rms of the random draws
        it replaces and ``G`` to the norm of the reference ``G`` (see
        gsnn.evolution.genome), so evolution shapes the wiring but keeps the balanced,
        trainable scale.
    """

    interaction: str = "full"
    compact_rank: int = 2
    per_gene_stats: bool = False
    full_encodings: bool = False
    gains: bool = False
    drive: bool = False
    tau: bool = False
    preserve_scale: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "WiringGenomeConfig":
        check_choice(self.interaction, GENOME_INTERACTIONS, "evolve.wiring.interaction")
        return self


@dataclasses.dataclass(frozen=True)
class FitnessConfig:
    """The fitness ``F = A + lambda_s * H_S + lambda_t * D_T`` and the measurement of its
    signal (``evolve.fitness``).

    Attributes:
      spatial_operator, temporal_operator: names in ``gsnn.evolution.fitness`` registries
        (:data:`SPATIAL_OPERATOR_NAMES`, :data:`TEMPORAL_OPERATOR_NAMES`; ``none``
        switches an operator off). ``activity_entropy`` and ``activity_difference`` are
        measured on the network's spikes over the validation images after the inner
        training.
      metric: the accuracy term ``A``: ``val_loss`` (``A`` = minus the mean validation
        cross-entropy, in nats; the default: at K = 10 inner steps its ranking is more
        reproducible than the accuracy's, and the fitness-horizon study measured its
        ranking against the trained accuracy) or ``val_accuracy`` (a fraction).
      lambda_s, lambda_t: operator weights at generation 0 (dimensionless).
      lambda_schedule: ``constant``, ``linear``, ``cosine`` or ``exponential`` decay over
        ``evolve.search.generations``.
      signal_every: measure the fitness's signal every this many generations, starting
        with the first (0 = never): the population is evaluated a second time with
        independent inner batches, keys and validation images, and the rank correlation
        and between/within-genome variance ratio of the two evaluations are reported
        per term (``gsnn.evolution.signal``). Costs one more population evaluation per
        measurement; the evolution itself is unchanged.
    """

    spatial_operator: str = "spatial_entropy"
    temporal_operator: str = "temporal_difference"
    metric: str = "val_loss"
    lambda_s: float = 0.1
    lambda_t: float = 0.1
    lambda_schedule: str = "cosine"
    signal_every: int = 5

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "FitnessConfig":
        check_choice(self.spatial_operator, SPATIAL_OPERATOR_NAMES, "spatial operator", ordered=False)
        check_choice(self.temporal_operator, TEMPORAL_OPERATOR_NAMES, "temporal operator", ordered=False)
        check_choice(self.metric, FITNESS_METRICS, "evolve.fitness.metric")
        for name in ("lambda_s", "lambda_t"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"evolve.fitness.{name} (an operator's weight at generation 0) must be >= 0, got "
                                 f"{getattr(self, name)}; 0 switches the operator off (or set its operator to 'none')")
        check_choice(self.lambda_schedule, LAMBDA_SCHEDULES, "evolve.fitness.lambda_schedule")
        if self.signal_every < 0:
            raise ValueError(f"evolve.fitness.signal_every must be >= 0 (0 = no signal measurement), got "
                             f"{self.signal_every}")
        return self


@dataclasses.dataclass(frozen=True)
class RaceConfig:
    """The final race of the search's best genomes (``evolve.race``,
    :mod:`gsnn.evolution.race`).

    Attributes:
      top: after the last generation, race the search's ``top`` best genomes (over all
        generations, by the last generation's lambdas) and, with ``baseline``, the zero
        genome (random wiring) at ``steps`` inner steps on held-out data; the winner is
        the evolved genome. 0: no race, the search's best is.
      steps: the race's inner steps (a longer horizon than ``evolve.inner.steps``).
      batch: the race's minibatch size in images (0: ``evolve.inner.batch``); with
        ``steps`` set to the final training's steps and this to ``train.batch_size``, the
        race trains every finalist as long as the final recipe does.
      data: ``held_out``: the race judges on images held out of the training split (as
        many as ``evolve.inner.val_size``) and trains on the rest of it, so no image that
        ranked the search judges the race (but the race trains on fewer images);
        ``validation``: it trains on the whole training split (its own draws) and judges
        on the run's validation images, which also scored the search.
      repeats: independent evaluations per finalist (data and keys), averaged.
      baseline: race the zero genome too, so that a search whose finalists do not beat
        random wiring at the race's horizon returns random wiring.
    """

    top: int = 0
    steps: int = 200
    batch: int = 0
    data: str = "held_out"
    repeats: int = 1
    baseline: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "RaceConfig":
        """Checked only when a race runs (``top`` > 0)."""
        if self.top < 0:
            raise ValueError(f"evolve.race.top must be >= 0 (0 = no race), got {self.top}")
        if not self.top:
            return self
        if self.steps < 1 or self.repeats < 1:
            raise ValueError(f"evolve.race.steps and evolve.race.repeats must be >= 1, got {self.steps} "
                             f"and {self.repeats}")
        if self.batch < 0:
            raise ValueError(f"evolve.race.batch must be >= 1, or 0 for evolve.inner.batch; got {self.batch}")
        check_choice(self.data, RACE_DATA, "evolve.race.data")
        if self.top + self.baseline < 2:
            raise ValueError("a race needs at least 2 finalists: evolve.race.top >= 2, or evolve.race.top=1 "
                             "with evolve.race.baseline=true")
        return self


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """How the population is evaluated on the devices, and fault injection
    (``evolve.evaluation``). None of it changes a result but ``inject_nan``.

    Attributes:
      chunk_size: evaluate the population in vmapped chunks of this many individuals, one
        chunk after another (0 = all at once; -1 = auto: one individual at a time on a
        single CPU device, where vmap measured slower than a loop, else all at once;
        ``benchmarks/README.md``).
      shard: shard the population axis over ``jax.devices()`` (a population they do not
        divide is padded with copies of its last individual, whose results are dropped).
      inject_nan: fault injection: indices of individuals whose genome is replaced by NaN
        before every evaluation (the strategy still sees the real genome). Checks that a
        diverging individual gets the worst fitness and the generation goes on.
    """

    chunk_size: int = -1
    shard: bool = True
    inject_nan: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "EvaluationConfig":
        """The chunks (sharding needs no check; ``inject_nan`` is checked against the
        population by :class:`~gsnn.config.evolve.EvolveConfig`)."""
        if self.chunk_size < -1:
            raise ValueError(f"evolve.evaluation.chunk_size must be >= 0 (or -1 for auto), got {self.chunk_size}")
        return self


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

    def __post_init__(self) -> None:
        self.validate()

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
