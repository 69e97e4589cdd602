"""The evolution section: the spatio-temporal evolution (DESIGN 1.3) as nested sections,
each a frozen dataclass that validates itself (:mod:`gsnn.config.evolve_sections`):
search, inner loop, wiring genome, fitness, race and evaluation, with the few settings
that cut across them at the top.

Older flat keys (``evolve.race_top``, ``evolve.inner_steps``, ...) are read under their
nested names (:data:`gsnn.config.migration.RENAMED_KEYS`), in ``--set`` overrides and in
stored ``config.json`` files.
"""
from __future__ import annotations

import dataclasses

from gsnn.config.evolve_sections import (AllocationConfig, EvaluationConfig, FitnessConfig, InnerLoopConfig,
                                         RaceConfig, SearchConfig, WiringGenomeConfig)
from gsnn.config.names import FINAL_VARIANT_NAMES, check_choice


@dataclasses.dataclass(frozen=True)
class EvolveConfig:
    """Spatio-temporal evolution of the initial wiring rules (DESIGN 1.3).

    Attributes:
      search: the strategy, population, generations (:class:`SearchConfig`).
      inner: each individual's inner training and validation images
        (:class:`InnerLoopConfig`).
      wiring: the wiring genome's layout (:class:`WiringGenomeConfig`).
      fitness: operators, accuracy term, weights and their schedule, signal measurement
        (:class:`FitnessConfig`).
      race: the final race of the search's best genomes (:class:`RaceConfig`).
      evaluation: chunks, sharding and fault injection of the population's evaluation
        (:class:`EvaluationConfig`).
      fixed_base: build every individual of every generation on one base draw (the
        random initialisation the genome transforms, drawn from ``seed``), instead of a
        new draw per generation: common random numbers, so that genomes are compared on
        the same network and only the data varies; the signal measurement, the race and
        the final ``evolved`` and ``random`` networks are then built on that draw too (the
        random one with the zero genome), a paired comparison. Off: the genome is scored
        as a distribution over draws.
      final_variants: what to train to convergence afterwards, with ``train``'s recipe:
        ``evolved`` (best genome), ``random`` (same encoding, random wiring; with an
        allocation genome a random allocation at the budget), ``direct``, and
        ``uniform`` (allocation genomes only: the model as configured).
      allocation: what the genome holds, and the budget of an allocation genome
        (:class:`AllocationConfig`).

    Built valid: each section checks itself, and this class the settings that need two
    of them (the chunks and the injected faults against the population) and the final
    variants; ``validate`` checks all of it again and returns ``self``.
    """

    search: SearchConfig = SearchConfig()
    inner: InnerLoopConfig = InnerLoopConfig()
    wiring: WiringGenomeConfig = WiringGenomeConfig()
    fitness: FitnessConfig = FitnessConfig()
    race: RaceConfig = RaceConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    fixed_base: bool = False
    final_variants: tuple[str, ...] = ("evolved", "random", "direct")
    allocation: AllocationConfig = AllocationConfig()

    def __post_init__(self) -> None:
        _check_across_sections(self)

    def validate(self) -> "EvolveConfig":
        """Checks every section (each by its own ``validate``), then the settings across them."""
        for section in (self.search, self.inner, self.wiring, self.fitness, self.race, self.evaluation,
                        self.allocation):
            section.validate()
        _check_across_sections(self)
        return self


def _check_across_sections(e: EvolveConfig) -> None:
    """The population's chunks and injected faults (search x evaluation), and the final variants
    (``uniform`` needs an allocation genome)."""
    population, chunk = e.search.population, e.evaluation.chunk_size
    if chunk > 0 and population % chunk:
        raise ValueError(f"evolve.search.population ({population}) must be a multiple of "
                         f"evolve.evaluation.chunk_size ({chunk})")
    if any(not 0 <= i < population for i in e.evaluation.inject_nan):
        raise ValueError(f"evolve.evaluation.inject_nan {e.evaluation.inject_nan} must index the population "
                         f"(0..{population - 1})")
    for v in e.final_variants:
        check_choice(v, FINAL_VARIANT_NAMES, "final variant")
    if "uniform" in e.final_variants and e.allocation.genome == "wiring":
        raise ValueError("evolve.final_variants 'uniform' (the model as configured, against which an evolved "
                         "allocation is compared) needs an allocation genome: set evolve.allocation.genome to "
                         "'allocation' or 'both', or drop 'uniform'")
