"""The effective learning rate of generated weights: how far one SGD step moves a layer's
weight ``W``, against the step a direct weight of the same layer takes (DESIGN 1.5).

A direct weight moves by ``-lr * Gamma`` for its gradient ``Gamma = dL/dW``. A generated
weight ``W(theta)`` moves, to first order, by ``-lr * J J^T Gamma`` (``J = dW/dtheta``):
every array it is generated from moves, and a shared array (``G``, a ``neuron``-mode
population) moves with the gradient of every layer that reads it. Per layer ``l``, with a
probe ``Gamma_l`` on that layer alone (:func:`effective_learning_rates`):

* ``self``: ``<Gamma_l, (J J^T Gamma)_l> / <Gamma_l, Gamma_l>``, the multiplier on the
  learning rate along the layer's own gradient (1 for a direct layer);
* ``cross``: ``||(J J^T Gamma)_{m != l}|| / ||Gamma_l||``, how much the other layers'
  weights move through the arrays they share with ``l`` (0 for direct layers).

For a ``position`` layer with one rule, balanced factors (entries of second moment
``sigma^2 = 2 / fan_in``) and an orthogonal ``G`` (``G^T G = I``), the expected ``self``
for an isotropic probe is ``2 + g sigma^2 = 2 + 2 g / fan_in``: ``x_pre`` and ``x_post``
each move ``W`` as far as a direct step, and ``G`` adds ``g sigma^2``, which grows with
the genes and is largest where the fan-in is small (the first conv layer).
"""
from __future__ import annotations

from typing import Callable, Mapping

import jax
import jax.numpy as jnp
from flax import traverse_util

from gsnn.nn.groups import scale_labels

#: The collection :class:`gsnn.nn.layers.Synapse` sows its weight matrix into.
COLLECTION = "generated"


def weight_fn(model, variables: Mapping, images: jax.Array, key: jax.Array) -> Callable[[dict], dict]:
    """``params -> {layer path: W [kh*kw*C_in, C_out]}`` of ``model`` (a
    :class:`gsnn.nn.networks.SpikingNetwork`), its other collections taken from
    ``variables``, run in evaluation mode on ``images [B, H, W, C]`` (float) with
    ``key`` for any input coding."""

    def weights(params):
        _, cols = model.apply({**variables, "params": params}, images, train=False, mutable=[COLLECTION],
                              rngs={"coding": key})
        return {"/".join(k[:-1]): v for k, v in traverse_util.flatten_dict(cols[COLLECTION]).items()}

    return weights


def isotropic_probes(weights: Mapping[str, jax.Array], key: jax.Array) -> dict[str, jax.Array]:
    """A standard normal probe ``Gamma`` of each weight's shape (one key per layer)."""
    return {name: jax.random.normal(jax.random.fold_in(key, i), w.shape, w.dtype)
            for i, (name, w) in enumerate(sorted(weights.items()))}


def effective_learning_rates(weights_of: Callable[[dict], dict], params: dict, probes: Mapping[str, jax.Array],
                             lr_scale: Mapping[str, float] | None = None) -> dict[str, dict[str, float]]:
    """Per layer ``{"self": ..., "cross": ...}`` (module docstring) at ``params``, with
    the probe ``probes[layer]`` on that layer alone: one VJP of ``weights_of`` per layer
    and its transpose. ``lr_scale``: per parameter group learning-rate multipliers
    (``train.lr_scale``'s groups or populations, :mod:`gsnn.nn.groups`; 1 for one not named), so
    the step of each array is ``-lr * scale * dL/dtheta``."""
    weights, vjp = jax.vjp(weights_of, params)
    transpose = lambda cot: vjp(cot)[0]  # J^T, linear in the cotangent
    scales = dict(lr_scale or {})
    factor = jax.tree_util.tree_map(lambda g: float(scales.get(g, 1.0)), scale_labels(params, scales))
    out = {}
    for name in weights:
        gamma = {k: jnp.zeros_like(v) if k != name else probes[name] for k, v in weights.items()}
        step = jax.tree_util.tree_map(lambda d, f: f * d, transpose(gamma), factor)
        # J step as the transpose of J^T (reverse over reverse): the network's custom VJPs
        # (surrogate spikes, matmul convolutions) have no forward-mode rule
        (moved,) = jax.linear_transpose(transpose, gamma)(step)
        norm2 = jnp.vdot(probes[name], probes[name])
        cross2 = sum(jnp.vdot(v, v) for k, v in moved.items() if k != name)
        out[name] = dict(self=float(jnp.vdot(probes[name], moved[name]) / norm2),
                         cross=float(jnp.sqrt(cross2 / norm2)))
    return out
