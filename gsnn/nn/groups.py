"""Parameter groups: the role of each parameter of a network, from its key path in the pytree.

``weight`` (direct kernels), ``encoding`` (``x_pre``, ``x_post``, ``pop_*``),
``interaction`` (``G``), ``spatial`` (spatial gene codes), ``neuron`` (PLIF time
constants, ``plif_w``), ``other`` (norm, biases).
Per-group learning rates, weight decay and parameter perturbations select by them.
"""
from __future__ import annotations

from typing import Any

import jax

from gsnn.config.names import PARAM_GROUPS


def leaf_name(keypath: tuple) -> str:
    """A leaf's own name (the last key of its path; a per-layer-genes array is a tuple of
    per-rule arrays, named by the tuple)."""
    names = [getattr(k, "key", getattr(k, "name", str(k))) for k in keypath
             if not isinstance(k, jax.tree_util.SequenceKey)]
    return str(names[-1])


def param_group(keypath: tuple) -> str:
    """The parameter group of a leaf, from its key path (``jax.tree_util`` keys)."""
    leaf = leaf_name(keypath)
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


def leaf_names(params) -> set[str]:
    """The own names of every leaf of ``params`` (:func:`leaf_name`)."""
    return {leaf_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]}


def group_labels(params) -> Any:
    """A pytree of group names matching ``params``."""
    return jax.tree_util.tree_map_with_path(lambda p, _: param_group(p), params)


def scale_labels(params, keys) -> Any:
    """A pytree of labels for per-array learning rates: a leaf named by one of ``keys``
    (a ``neuron``-mode population, ``pop_<name>``) keeps its own name, every other leaf
    its group.

    Raises:
      ValueError: a key that is neither a group nor a population of ``params``.
    """
    names = leaf_names(params)
    unknown = [k for k in keys if k not in PARAM_GROUPS and k not in names]
    if unknown:
        pops = sorted(n for n in names if n.startswith("pop_"))
        raise ValueError(f"train.lr_scale names {unknown}, neither a parameter group {list(PARAM_GROUPS)} nor a "
                         f"population of this network {pops}")
    own = {k for k in keys if k not in PARAM_GROUPS}
    return jax.tree_util.tree_map_with_path(lambda p, _: leaf_name(p) if leaf_name(p) in own else param_group(p),
                                            params)
