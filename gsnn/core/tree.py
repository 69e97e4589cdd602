"""Small helpers over pytrees and name tables shared by every layer of gsnn."""
from __future__ import annotations

import math
from typing import Mapping, TypeVar

import jax

V = TypeVar("V")


def count_scalars(tree) -> int:
    """Number of scalars in a pytree of arrays (or ``jax.ShapeDtypeStruct``s)."""
    return int(sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree)))


def lookup(table: Mapping[str, V], name: str, what: str, *, ordered: bool = True) -> V:
    """``table[name]``; an unknown name raises ``ValueError("unknown <what> <name>;
    valid: [...]")`` listing the table's names (in table order, or sorted when
    ``ordered`` is False)."""
    if name not in table:
        names = list(table) if ordered else sorted(table)
        raise ValueError(f"unknown {what} {name!r}; valid: {names}")
    return table[name]
