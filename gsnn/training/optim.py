"""The optimiser: learning-rate schedule, per-group learning rates and weight decay
(groups: :mod:`gsnn.nn.groups`).
"""
from __future__ import annotations

import jax
import optax

from gsnn import configs as C
from gsnn.nn.groups import group_labels


def learning_rate_schedule(tc: C.TrainConfig, steps_per_epoch: int) -> optax.Schedule:
    """Linear warm-up then cosine decay to 0 over ``epochs`` (optax schedule)."""
    total = max(1, tc.epochs * steps_per_epoch)
    warmup = int(round(tc.warmup_epochs * steps_per_epoch))
    if warmup > 0:
        return optax.warmup_cosine_decay_schedule(0.0, tc.learning_rate, warmup, total, 0.0)
    return optax.cosine_decay_schedule(tc.learning_rate, total)


def make_optimizer(tc: C.TrainConfig, steps_per_epoch: int, params) -> optax.GradientTransformation:
    """SGD (momentum, L2 decay) or AdamW (decoupled decay), per-group learning rates.

    The learning rate is applied last, so ``lr_scale`` multiplies every group's update
    and weight decay alike.
    """
    labels = group_labels(params)
    # decay on what is stored (factors), or only on direct kernels, while the generated
    # W are decayed through the loss (weights; see :func:`weight_penalty`)
    decayed = ("weight",) if tc.weight_decay_on == "weights" else ("weight", "encoding", "interaction", "spatial")
    decay_mask = jax.tree_util.tree_map(lambda g: g in decayed, labels)
    scales = dict(tc.lr_scale)
    group_scale = optax.multi_transform(
        {g: optax.scale(float(scales.get(g, 1.0))) for g in C.PARAM_GROUPS}, labels
    )
    schedule = learning_rate_schedule(tc, steps_per_epoch)
    parts = [optax.clip_by_global_norm(tc.grad_clip)] if tc.grad_clip > 0 else []
    if tc.optimizer == "sgd":
        parts += [optax.add_decayed_weights(tc.weight_decay, decay_mask), optax.trace(tc.momentum)]
    else:
        parts += [optax.scale_by_adam(tc.beta1, tc.beta2), optax.add_decayed_weights(tc.weight_decay, decay_mask)]
    parts += [group_scale, optax.scale_by_learning_rate(schedule)]
    return optax.chain(*parts)
