"""The optimiser: learning-rate schedule, per-group learning rates and weight decay
(groups: :mod:`gsnn.nn.groups`).

:func:`warmup_cosine` and :func:`make_tx` take values, as optax's factories do;
:func:`learning_rate_schedule` and :func:`make_optimizer` read them from a
:class:`~gsnn.config.TrainConfig`.
"""
from __future__ import annotations

from collections.abc import Mapping

import jax
import optax

from gsnn import config as cfgs
from gsnn.nn.groups import group_labels, scale_labels


def warmup_cosine(peak: float, total_steps: int, warmup_steps: int = 0) -> optax.Schedule:
    """Linear warm-up from 0 to ``peak`` over ``warmup_steps``, then cosine decay to 0
    at ``total_steps`` (counted from the first step)."""
    total = max(1, total_steps)
    if warmup_steps > 0:
        return optax.warmup_cosine_decay_schedule(0.0, peak, warmup_steps, total, 0.0)
    return optax.cosine_decay_schedule(peak, total)


def make_tx(params, *, optimizer: str, schedule: optax.Schedule, momentum: float = 0.9, beta1: float = 0.9,
            beta2: float = 0.999, weight_decay: float = 0.0,
            decay_groups: tuple[str, ...] = ("weight", "encoding", "interaction", "spatial"),
            lr_scale: Mapping[str, float] | None = None, grad_clip: float = 0.0) -> optax.GradientTransformation:
    """SGD (momentum, L2 decay) or AdamW (decoupled decay), with per-group learning rates.

    Args:
      params: the parameter pytree (or its shapes); leaves are grouped by
        :func:`gsnn.nn.groups.group_labels`.
      optimizer: ``"sgd"`` or ``"adamw"``.
      schedule: learning rate per step, applied last, so ``lr_scale`` multiplies every
        group's update and weight decay alike.
      weight_decay: L2 coefficient on the groups in ``decay_groups``.
      lr_scale: learning-rate multiplier per group, or per ``neuron``-mode population
        (``pop_<name>``, overriding its group; default 1).
      grad_clip: clip the global gradient norm to this (0: no clipping).
    """
    if optimizer not in cfgs.OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; valid: {list(cfgs.OPTIMIZERS)}")
    decay_mask = jax.tree_util.tree_map(lambda g: g in decay_groups, group_labels(params))
    scales = dict(lr_scale or {})
    labels = scale_labels(params, scales)
    group_scale = optax.multi_transform(
        {g: optax.scale(float(scales.get(g, 1.0))) for g in set(cfgs.PARAM_GROUPS) | set(scales)}, labels
    )
    parts = [optax.clip_by_global_norm(grad_clip)] if grad_clip > 0 else []
    if optimizer == "sgd":
        parts += [optax.add_decayed_weights(weight_decay, decay_mask), optax.trace(momentum)]
    else:
        parts += [optax.scale_by_adam(beta1, beta2), optax.add_decayed_weights(weight_decay, decay_mask)]
    parts += [group_scale, optax.scale_by_learning_rate(schedule)]
    return optax.chain(*parts)


def learning_rate_schedule(tc: cfgs.TrainConfig, steps_per_epoch: int) -> optax.Schedule:
    """:func:`warmup_cosine` over ``tc.epochs`` epochs with ``tc.warmup_epochs`` of warm-up."""
    return warmup_cosine(tc.learning_rate, tc.epochs * steps_per_epoch,
                         int(round(tc.warmup_epochs * steps_per_epoch)))


def decay_groups(weight_decay_on: str) -> tuple[str, ...]:
    """Parameter groups under L2 decay: every stored group (``factors``), or only direct
    kernels (``weights``: the generated W are decayed through the loss instead, see
    :func:`gsnn.training.steps.weight_penalty`)."""
    return ("weight",) if weight_decay_on == "weights" else ("weight", "encoding", "interaction", "spatial")


def make_optimizer(tc: cfgs.TrainConfig, steps_per_epoch: int, params) -> optax.GradientTransformation:
    """:func:`make_tx` with the settings of ``tc``."""
    return make_tx(params, optimizer=tc.optimizer, schedule=learning_rate_schedule(tc, steps_per_epoch),
                   momentum=tc.momentum, beta1=tc.beta1, beta2=tc.beta2, weight_decay=tc.weight_decay,
                   decay_groups=decay_groups(tc.weight_decay_on), lr_scale=tc.lr_scale, grad_clip=tc.grad_clip)
