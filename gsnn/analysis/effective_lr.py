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
import numpy as np
import optax
from flax import traverse_util
from scipy.optimize import least_squares

from gsnn.nn.groups import leaf_names, scale_labels

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


def populations(params: dict) -> tuple[str, ...]:
    """The ``neuron``-mode populations of ``params`` (``pop_<name>`` leaves), sorted."""
    return tuple(sorted(n for n in leaf_names(params) if n.startswith("pop_")))


def self_contributions(weights_of: Callable[[dict], dict], params: dict, probes: Mapping[str, jax.Array]
                       ) -> dict[str, dict[str, float]]:
    """Per layer ``l`` and learning-rate label ``a`` (a parameter group, or a population of
    its own: :func:`gsnn.nn.groups.scale_labels` with every population named), the part of
    ``l``'s ``self`` multiplier that the arrays labelled ``a`` carry:
    ``c[l][a] = ||(J^T Gamma_l)_a||^2 / ||Gamma_l||^2``, so that with per-label scales
    ``s`` the multiplier is ``self_l = sum_a s_a c[l][a]`` (labels that do not move ``l``
    are left out)."""
    weights, vjp = jax.vjp(weights_of, params)
    labels = scale_labels(params, populations(params))
    out = {}
    for name in weights:
        gamma = {k: jnp.zeros_like(v) if k != name else probes[name] for k, v in weights.items()}
        (grads,) = vjp(gamma)
        norm2 = float(jnp.vdot(probes[name], probes[name]))
        parts: dict[str, float] = {}
        for label, g in zip(jax.tree_util.tree_leaves(labels), jax.tree_util.tree_leaves(grads)):
            parts[label] = parts.get(label, 0.0) + float(jnp.vdot(g, g)) / norm2
        out[name] = {a: c for a, c in parts.items() if c > 0}
    return out


def matching_scales(contributions: Mapping[str, Mapping[str, float]], target: float = 1.0,
                    ridge: float = 1e-3) -> dict[str, float]:
    """Per-label learning-rate scales that bring every layer's ``self`` multiplier to
    ``target`` (1: each layer steps as a direct weight at the same rate): the least
    squares fit of ``log(sum_a s_a c[l][a] / target)`` over the layers, in ``log s``,
    with a ``ridge`` pull of each ``log s_a`` toward their mean (the most uniform rates)
    that decides what the layers leave free (more labels than layers). ``contributions``:
    :func:`self_contributions`. Returns ``{label: s}`` for every label that moves a layer.

    Raises:
      ValueError: a non-positive ``target``, or no contributions.
    """
    if target <= 0:
        raise ValueError(f"target must be a positive multiplier, got {target}")
    labels = sorted({a for c in contributions.values() for a in c})
    if not labels:
        raise ValueError("no layer has a contribution: nothing to match")
    layers = sorted(contributions)
    c = np.array([[contributions[l].get(a, 0.0) for a in labels] for l in layers])

    def residuals(u):
        return np.concatenate([np.log(c @ np.exp(u) / target), np.sqrt(ridge) * (u - u.mean())])

    u = least_squares(residuals, np.zeros(len(labels)), method="lm").x
    return {a: float(np.exp(v)) for a, v in zip(labels, u)}


def gradient_probes(direct_model, direct_params: dict, variables: Mapping, weights: Mapping[str, jax.Array],
                    images: jax.Array, labels: jax.Array, key: jax.Array) -> dict[str, jax.Array]:
    """``Gamma_l = dL/dW_l`` at the generated weights: the gradient of the mean softmax
    cross-entropy of ``direct_model`` (the same network with direct weights, parameters
    ``direct_params`` as a template) carrying ``weights`` (:func:`weight_fn`'s, per layer
    ``[kh*kw*C_in, C_out]``) and every other parameter and collection of the encoded
    net's ``variables``, on ``images [B, H, W, C]`` (normalised float) with int
    ``labels [B]``, in training mode (batch statistics), ``key`` for the input coding.
    The probe a training step's gradient gives, where :func:`isotropic_probes` gives
    every direction the same weight.

    Raises:
      ValueError: a layer of ``weights`` the template has no kernel for, or a non-kernel
        parameter of the template the encoded net lacks.
    """
    flat = traverse_util.flatten_dict(direct_params, sep="/")
    own = traverse_util.flatten_dict(variables["params"], sep="/")
    kernels = {k.removesuffix("/kernel"): k for k in flat if k.endswith("/kernel")}
    if set(weights) - set(kernels):
        raise ValueError(f"layers {sorted(set(weights) - set(kernels))} have no kernel in the direct template")
    missing = [k for k in flat if not k.endswith("/kernel") and k not in own]
    if missing:
        raise ValueError(f"the encoded net has no {missing}: it is not the direct template's architecture")
    twin = {k: weights[name].reshape(v.shape) if (name := k.removesuffix("/kernel")) in weights and k in kernels.values()
            else own[k] for k, v in flat.items()}
    others = {c: v for c, v in variables.items() if c != "params"}

    def loss(kernel_values):
        p = traverse_util.unflatten_dict({**twin, **{kernels[n]: w for n, w in kernel_values.items()}}, sep="/")
        logits, _ = direct_model.apply({**others, "params": p}, images, train=True, mutable=["batch_stats", "stats"],
                                       rngs={"coding": key})
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    grads = jax.grad(loss)({n: twin[kernels[n]] for n in weights})
    return {n: g.reshape(weights[n].shape) for n, g in grads.items()}
