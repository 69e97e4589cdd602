"""Moved to :mod:`gsnn.evolution`; this name stays for the public API (``from gsnn import evolve``)."""
from gsnn.evolution import (evolve, genome_init_fn, FINAL_VARIANTS, run_evolution, variant_config, Problem, generation_batches, make_problem, resolve_chunk_size, STRATEGIES, Strategy, make_strategy, strategy_init, WORST_FITNESS, EvolutionState, GenerationData, make_evolution_step)

__all__ = ["evolve", "genome_init_fn", "FINAL_VARIANTS", "run_evolution", "variant_config", "Problem", "generation_batches", "make_problem", "resolve_chunk_size", "STRATEGIES", "Strategy", "make_strategy", "strategy_init", "WORST_FITNESS", "EvolutionState", "GenerationData", "make_evolution_step"]
