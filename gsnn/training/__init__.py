"""Training and evaluation with optax: pure jitted steps, a resumable epoch loop.

Modules: :mod:`~gsnn.training.optim` (schedule, per-group rates and decay),
:mod:`~gsnn.training.steps` (the pure steps, the loss, the state),
:mod:`~gsnn.training.loop` (the epoch loop, reading a run back),
:mod:`~gsnn.training.metrics` (metrics summed on the device, batches prefetched to it),
:mod:`~gsnn.training.records` (a run's summary record).

``train_and_evaluate(config, workdir)`` is the library entry point (Flax examples
style): it trains, evaluates every epoch, writes an orbax checkpoint after every epoch
and resumes from the newest one in ``workdir`` by itself. The step functions are pure:
``train_step(state, images, labels) -> (state, metrics)`` with metrics (loss, accuracy,
firing rates, gradient and parameter norms) computed inside ``jit`` and summed on the
device; the loop fetches them every ``train.log_every`` steps (once per epoch where 0)
and stops on a non-finite loss with a message naming the epoch and step.

Parameter groups (for per-group learning rates and weight decay): ``weight`` (direct
kernels), ``encoding`` (``x_pre``, ``x_post``, ``pop_*``), ``interaction`` (``G``),
``spatial`` (spatial gene codes), ``other`` (norm, biases, PLIF).
"""
from gsnn.nn.groups import group_labels, param_group
from gsnn.training.loop import eval_key, load_data, load_trained, run_keys, train_and_evaluate
from gsnn.training.optim import decay_groups, learning_rate_schedule, make_optimizer, make_tx, warmup_cosine
from gsnn.training.records import HISTORY_KEYS, result_record
from gsnn.training.steps import (NonFiniteError, Steps, TrainState, cross_entropy, default_init_fn, evaluate,
                                 evaluate_batches, make_eval_step, make_steps, make_train_step,
                                 weight_penalty)

__all__ = ["group_labels", "param_group", "load_data", "load_trained", "run_keys", "eval_key", "train_and_evaluate",
           "learning_rate_schedule", "make_optimizer", "make_tx", "warmup_cosine", "decay_groups", "HISTORY_KEYS", "result_record", "NonFiniteError", "Steps",
           "TrainState", "cross_entropy", "default_init_fn", "evaluate", "evaluate_batches", "make_steps", "make_train_step", "make_eval_step",
           "weight_penalty"]
