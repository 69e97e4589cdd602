"""The names each config field accepts, and the one check of a name against them.

The schema (this package's ``model``, ``train``, ``data``, ``evolve`` and
``experiment`` modules) is the vocabulary every other part of gsnn shares, so it imports
nothing from gsnn: ``validate()`` checks values and names structurally, against the name
tuples below. Each tuple mirrors one registry of the code that implements the names (the
architectures of :mod:`gsnn.nn.networks`, the encodings of :mod:`gsnn.core.encodings`,
...); ``tests/test_config.py`` checks that every tuple equals its registry's keys, so
adding an architecture, encoding or operator is one registry entry plus its name here.
"""
from __future__ import annotations

from typing import Iterable

#: :data:`gsnn.core.lif.SURROGATES`.
SURROGATE_NAMES = ("atan", "sigmoid", "triangle")
#: LIF update forms and resets (:mod:`gsnn.core.lif`).
UPDATE_FORMS = ("tau", "beta")
RESETS = ("hard", "soft")
#: :data:`gsnn.core.encodings.ENCODINGS`, and those of them with a factorised path.
ENCODING_NAMES = ("direct", "position", "neuron")
FACTORISED_ENCODINGS = ("position", "neuron")
#: How an encoded layer executes (:data:`gsnn.core.genetic.EXECUTIONS`).
EXECUTIONS = ("auto", "materialise", "factorised")
#: Variance targets of encoded weights at init (:data:`gsnn.core.encodings.FANS`).
FANS = ("fan_in", "fan_out")
INTERACTION_INITS = ("normal", "orthogonal", "identity")
INIT_SCHEMES = ("balanced", "unit")
#: :data:`gsnn.nn.networks.ARCHITECTURES`.
ARCHITECTURE_NAMES = ("mlp", "convnet_s", "vgg11", "vgg16", "resnet19", "resnet18", "resnet34")
INPUT_CODINGS = ("direct", "poisson")
RESIDUALS = ("standard", "sew")
#: :data:`gsnn.core.conv.CONV_IMPLS`.
CONV_IMPLS = ("auto", "xla", "taps", "patches", "matmul", "winograd")
OPTIMIZERS = ("sgd", "adamw")
DECAY_TARGETS = ("factors", "weights")
PARAM_GROUPS = ("weight", "encoding", "interaction", "spatial", "neuron", "other")
#: :data:`gsnn.evolution.strategies.STRATEGIES`.
STRATEGY_NAMES = ("cma_es", "sep_cma_es", "snes", "open_es", "simple_ga")
#: :data:`gsnn.evolution.fitness.SPATIAL_OPERATORS`, :data:`gsnn.evolution.fitness.TEMPORAL_OPERATORS`.
SPATIAL_OPERATOR_NAMES = ("spatial_entropy", "effective_rank", "activity_entropy", "none")
TEMPORAL_OPERATOR_NAMES = ("temporal_difference", "learning_curve_area", "activity_difference", "none")
#: Where the final race's minibatches and judging images come from (RaceConfig.data, ``evolve.race.data``).
RACE_DATA = ("held_out", "validation")
#: :data:`gsnn.evolution.fitness.ACCURACY_TERMS`.
FITNESS_METRICS = ("val_accuracy", "val_loss")
#: :data:`gsnn.evolution.fitness.SCHEDULES`.
LAMBDA_SCHEDULES = ("constant", "linear", "cosine", "exponential")
#: Genome layouts of the interaction matrix (WiringGenomeConfig.interaction, ``evolve.wiring.interaction``).
GENOME_INTERACTIONS = ("full", "compact")
#: What an evolution trains to convergence afterwards (EvolveConfig.final_variants).
FINAL_VARIANT_NAMES = ("evolved", "random", "direct", "uniform")
#: What the genome of an evolution holds (EvolveConfig.allocation.genome, DESIGN 1.3).
ALLOCATION_GENOMES = ("wiring", "allocation", "both")
#: What happens to an allocation over the parameter budget (EvolveConfig.allocation.over_budget).
OVER_BUDGET_RULES = ("project", "penalty")
#: What a training run does on a non-finite loss (TrainConfig.nan_policy).
NAN_POLICIES = ("stop", "skip")


def check_choice(value, names: Iterable[str], what: str, *, ordered: bool = True, where: str = "") -> None:
    """Raises ``ValueError("unknown <what> <value>[ <where>]; valid: [...]")`` unless
    ``value`` is one of ``names`` (listed in their order, or sorted when ``ordered`` is
    False): the one form of this error in the schema (:func:`gsnn.core.tree.lookup` is
    its twin for the registries)."""
    names = list(names)
    if value not in names:
        where = f" {where}" if where else ""
        raise ValueError(f"unknown {what} {value!r}{where}; valid: {names if ordered else sorted(names)}")
