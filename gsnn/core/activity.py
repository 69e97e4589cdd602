"""Statistics of spike trains (pure functions), for the activity operators of the
evolution's fitness (DESIGN 1.3).

Layout: time first, spikes ``[T, B, ...]`` with values in {0, 1} (a LIF layer's output
before time folding; ``...`` are the layer's neurons, e.g. ``[H, W, C]`` or ``[N]``).

* :func:`firing_probability`: each neuron's probability of a spike in one time step,
  over the batch and the time steps, ``[...]``.
* :func:`binary_entropy_bits`: the entropy ``H(p) = -p log2 p - (1 - p) log2 (1 - p)``
  of a Bernoulli(p) variable, in bits, in [0, 1]: 1 at ``p = 0.5``, 0 for a neuron that
  never or always fires (it carries no information).
* :func:`spike_change`: the mean absolute change of each neuron's spikes between
  consecutive time steps, ``mean |s_{t+1} - s_t|``, in [0, 1]: 1 for an alternating
  train ``0101...``, 0 for a constant one.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def firing_probability(spikes: jax.Array) -> jax.Array:
    """Per-neuron firing probability: ``spikes [T, B, ...]`` -> ``[...]``, the mean over
    time steps and examples (spikes per neuron per time step, in [0, 1])."""
    if spikes.ndim < 2:
        raise ValueError(f"spikes must be [T, B, ...] (time first), got shape {spikes.shape}")
    return jnp.mean(spikes.astype(jnp.float32), axis=(0, 1))


def binary_entropy_bits(p: jax.Array) -> jax.Array:
    """``H(p)`` in bits, element-wise, with ``0 log 0 = 0``: any shape -> same shape, in
    [0, 1]. ``p`` is clipped to [0, 1] (rounding in a mean can leave it a ulp outside)."""
    p = jnp.clip(p, 0.0, 1.0)

    def plogp(q):
        return jnp.where(q > 0, q * jnp.log2(jnp.where(q > 0, q, 1.0)), 0.0)

    return -(plogp(p) + plogp(1.0 - p))


def spike_change(spikes: jax.Array) -> jax.Array:
    """``mean |s_{t+1} - s_t|`` over the ``T - 1`` consecutive pairs of time steps, the
    examples and the neurons: ``spikes [T, B, ...]`` -> ``[]``, in [0, 1].

    Raises:
      ValueError: ``T < 2`` (no consecutive steps).
    """
    if spikes.ndim < 2:
        raise ValueError(f"spikes must be [T, B, ...] (time first), got shape {spikes.shape}")
    if spikes.shape[0] < 2:
        raise ValueError(f"the spike change needs T >= 2 time steps, got T={spikes.shape[0]}")
    s = spikes.astype(jnp.float32)
    return jnp.mean(jnp.abs(s[1:] - s[:-1]))
