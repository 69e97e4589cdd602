"""Spatio-temporal evolution (STE) of the initial wiring rules on evosax (DESIGN 1.3).

Modules: :mod:`~gsnn.evolution.genome`, :mod:`~gsnn.evolution.fitness`,
:mod:`~gsnn.evolution.strategies` (one table of strategy factories),
:mod:`~gsnn.evolution.problem` (evaluating a population), :mod:`~gsnn.evolution.step`
(one generation, pure: jit/scan), :mod:`~gsnn.evolution.loop` (the host generation loop),
:mod:`~gsnn.evolution.pipeline` (evolution, then the final trainings),
:mod:`~gsnn.evolution.signal` (the fitness's signal: two evaluations of a population),
:mod:`~gsnn.evolution.allocation` (the allocation genome: masks over a network built at
the maximum, its parameter count and budget), :mod:`~gsnn.evolution.surrogate` (a fitness
for it fitted to trained allocations, and CMA-ES on it).

One generation is ``ask -> vmap(evaluate) -> tell`` with keys split explicitly:

1. the strategy proposes a population of genomes (:mod:`gsnn.evolution.genome`);
2. every individual is built from its genome and the generation's shared random draws,
   trained ``K`` inner steps on the generation's minibatches (the same for everyone),
   and evaluated on a validation split held out from the training data; this whole
   evaluation is one pure function, ``jax.vmap``-ped over the population, optionally in
   chunks (``lax.map`` over vmapped chunks) and sharded over ``jax.devices()`` along
   the population axis (``NamedSharding``);
3. the fitness ``F = A + lambda_S H_S + lambda_T D_T`` (:mod:`gsnn.evolution.fitness`) is told
   to the strategy negated (evosax minimises). A diverging individual (non-finite loss)
   gets the worst fitness, is counted, and the generation goes on.

Every ``evolve.fitness.signal_every`` generations (from the first) the population is evaluated a
second time with independent data and keys, and the rank correlation and variance ratio
of the two evaluations are recorded per fitness term (:mod:`gsnn.evolution.signal`); the
evolution's trajectory does not change.

The run checkpoints (orbax) the strategy state, key and history after every
generation; ``evolve(cfg, workdir)`` resumes from the newest checkpoint by itself and
reaches the same result as an uninterrupted run.

Multi-host: :func:`gsnn.runtime.distributed.join` (``gsnn evolve`` calls it) on every
process before ``evolve``; the population axis is then sharded over all processes'
devices (``jax.devices()`` is global), every process runs the same program on the same
seed and data, and the evaluation's outputs are gathered to every process
(docs/MULTIHOST.md).
"""
from gsnn.evolution import allocation
from gsnn.evolution.loop import evolve, genome_init_fn
from gsnn.evolution.pipeline import FINAL_VARIANTS, run_evolution, variant_config
from gsnn.evolution.problem import Problem, generation_batches, make_problem, resolve_chunk_size, signal_batches
from gsnn.evolution.signal import average_ranks, measure, spearman, variance_ratio
from gsnn.evolution.step import WORST_FITNESS, EvolutionState, GenerationData, initial_state, make_evolution_step
from gsnn.evolution.strategies import STRATEGIES, Strategy, make_strategy, strategy_init

__all__ = ["allocation", "evolve", "genome_init_fn", "FINAL_VARIANTS", "run_evolution", "variant_config", "Problem", "generation_batches", "make_problem", "resolve_chunk_size", "signal_batches", "average_ranks", "measure", "spearman", "variance_ratio", "STRATEGIES", "Strategy", "make_strategy", "strategy_init", "WORST_FITNESS", "EvolutionState", "GenerationData", "initial_state",
           "make_evolution_step"]
