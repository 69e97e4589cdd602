"""Moved to :mod:`gsnn.evolution`; this name stays for the public API (``from gsnn import evolve``)."""
from gsnn.evolution import (EvolutionCheckpointer, evolve, genome_init_fn, FINAL_VARIANTS, run_evolution, variant_config, Problem, generation_batches, make_problem, resolve_chunk_size, WORST_FITNESS, make_strategy, strategy_init)

__all__ = ["EvolutionCheckpointer", "evolve", "genome_init_fn", "FINAL_VARIANTS", "run_evolution", "variant_config", "Problem", "generation_batches", "make_problem", "resolve_chunk_size", "WORST_FITNESS", "make_strategy", "strategy_init"]
