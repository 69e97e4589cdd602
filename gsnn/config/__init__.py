"""Experiment configuration: the schema, reading configs, and migrating stored ones.

* The schema, one tree of frozen dataclasses, each section validating itself and
  importing nothing from gsnn's math (``tests/test_layout.py`` checks):
  :mod:`~gsnn.config.names` (the names each field accepts, and ``check_choice``),
  :mod:`~gsnn.config.model` (``LIFConfig``, ``GeneticConfig``, ``NeuronConfig``,
  ``ModelConfig``), :mod:`~gsnn.config.train` (``TrainConfig``),
  :mod:`~gsnn.config.data` (``DataConfig``), :mod:`~gsnn.config.evolve_sections`
  (``SearchConfig``, ``InnerLoopConfig``, ``WiringGenomeConfig``, ``FitnessConfig``,
  ``RaceConfig``, ``EvaluationConfig``), :mod:`~gsnn.config.evolve` (``EvolveConfig``,
  which nests them) and :mod:`~gsnn.config.experiment` (``Config``, the root).
* :mod:`~gsnn.config.loader`: Python config files, ``--set`` overrides, smoke
  shrinking, the strict reading of a stored ``config.json``.
* :mod:`~gsnn.config.migration`: the explicit migration of older stored configs.

Every public name of these modules is importable from here:
``from gsnn.config import Config, load_config`` (or ``from gsnn import config as cfgs``).
"""
from gsnn.config.data import DataConfig
from gsnn.config.evolve import EvolveConfig
from gsnn.config.evolve_sections import (AllocationConfig, EvaluationConfig, FitnessConfig, InnerLoopConfig,
                                         RaceConfig, SearchConfig, WiringGenomeConfig)
from gsnn.config.experiment import Config
from gsnn.config.loader import (PACKAGE_CONFIGS, all_keys, apply_overrides, available_configs, config_search_path,
                                from_dict, load_config, read_config_file, replace, shrink_for_smoke)
from gsnn.config.migration import ADDED_KEYS, RENAMED_KEYS, migrate_stored_config
from gsnn.config.model import GeneticConfig, LIFConfig, ModelConfig, NeuronConfig
from gsnn.config.names import (ALLOCATION_GENOMES, ARCHITECTURE_NAMES, CONV_IMPLS, DECAY_TARGETS, ENCODING_NAMES, EXECUTIONS,
                               FACTORISED_ENCODINGS, FANS, FINAL_VARIANT_NAMES, FITNESS_METRICS, GENOME_INTERACTIONS,
                               INIT_SCHEMES, INPUT_CODINGS, INTERACTION_INITS, LAMBDA_SCHEDULES, NAN_POLICIES,
                               OPTIMIZERS, OVER_BUDGET_RULES, PARAM_GROUPS, RACE_DATA, RESETS, RESIDUALS, SPATIAL_OPERATOR_NAMES,
                               STRATEGY_NAMES, SURROGATE_NAMES, TEMPORAL_OPERATOR_NAMES, UPDATE_FORMS, check_choice)
from gsnn.config.train import TrainConfig

__all__ = [
    "AllocationConfig", "Config", "DataConfig", "EvaluationConfig", "EvolveConfig", "FitnessConfig", "GeneticConfig", "InnerLoopConfig",
    "LIFConfig", "ModelConfig", "NeuronConfig", "RaceConfig", "SearchConfig", "TrainConfig", "WiringGenomeConfig", "PACKAGE_CONFIGS", "all_keys", "apply_overrides", "available_configs", "config_search_path",
    "from_dict", "load_config", "read_config_file", "replace", "shrink_for_smoke", "ADDED_KEYS", "RENAMED_KEYS",
    "migrate_stored_config", "ALLOCATION_GENOMES", "ARCHITECTURE_NAMES", "CONV_IMPLS", "DECAY_TARGETS", "ENCODING_NAMES", "EXECUTIONS",
    "FACTORISED_ENCODINGS", "FANS", "FINAL_VARIANT_NAMES", "FITNESS_METRICS", "GENOME_INTERACTIONS", "INIT_SCHEMES",
    "INPUT_CODINGS", "INTERACTION_INITS", "LAMBDA_SCHEDULES", "NAN_POLICIES", "OPTIMIZERS", "OVER_BUDGET_RULES", "PARAM_GROUPS",
    "RACE_DATA", "RESETS", "RESIDUALS", "SPATIAL_OPERATOR_NAMES", "STRATEGY_NAMES", "SURROGATE_NAMES",
    "TEMPORAL_OPERATOR_NAMES", "UPDATE_FORMS", "check_choice",
]
