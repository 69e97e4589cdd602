"""Parameter groups: the role of each parameter of a network, from its key path in the pytree.

``weight`` (direct kernels), ``encoding`` (``x_pre``, ``x_post``, ``pop_*``),
``interaction`` (``G``), ``spatial`` (spatial gene codes), ``neuron`` (PLIF time
constants, ``plif_w``), ``other`` (norm, biases).
Per-group learning rates, weight decay and parameter perturbations select by them.
"""
from __future__ import annotations

from typing import Any

import jax


def param_group(keypath: tuple) -> str:
    """The parameter group of a leaf, from its key path (``jax.tree_util`` keys)."""
    # a per-layer-genes array is a tuple of per-rule arrays: its group is the tuple's name
    names = [getattr(k, "key", getattr(k, "name", str(k))) for k in keypath
             if not isinstance(k, jax.tree_util.SequenceKey)]
    leaf = str(names[-1])
    if leaf == "kernel":
        return "weight"
    if leaf in ("x_pre", "x_post") or leaf.startswith("pop_"):
        return "encoding"
    if leaf == "G":
        return "interaction"
    if leaf == "spatial":
        return "spatial"
    if leaf == "plif_w":
        return "neuron"
    return "other"


def group_labels(params) -> Any:
    """A pytree of group names matching ``params``."""
    return jax.tree_util.tree_map_with_path(lambda p, _: param_group(p), params)
