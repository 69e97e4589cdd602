"""Moved to :mod:`gsnn.training`; this name stays for the public API (``from gsnn import train``)."""
from gsnn.training import (HISTORY_KEYS, NonFiniteError, Steps, TrainState, cross_entropy, default_init_fn, evaluate,
                           evaluate_batches, group_labels, learning_rate_schedule, load_data, load_trained,
                           make_optimizer, make_steps, param_group, result_record, run_keys, train_and_evaluate,
                           weight_penalty)

__all__ = ["HISTORY_KEYS", "NonFiniteError", "Steps", "TrainState", "cross_entropy", "default_init_fn", "evaluate",
           "evaluate_batches", "group_labels", "learning_rate_schedule", "load_data", "load_trained", "make_optimizer",
           "make_steps", "param_group", "result_record", "run_keys", "train_and_evaluate", "weight_penalty"]
