"""What keeps the epoch loop off the host: the training metrics summed on the device
(:class:`EpochSums`, fetched only when the loop asks), finiteness flagged on the device
(the first non-finite step of the epoch), and batches put on the device one step ahead
(:func:`prefetch_to_device`).
"""
from __future__ import annotations

import collections
import itertools
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

#: the scalar step metrics summed over an epoch's finite steps
SUMMED = ("loss", "accuracy", "grad_norm")


def prefetch_to_device(batches: Iterable, size: int = 2, device: Any = None) -> Iterator:
    """The items of ``batches`` (pytrees of NumPy arrays), each put on ``device``
    (default: JAX's default device) with :func:`jax.device_put` ``size - 1`` items
    before it is yielded, so the host reads and transfers batch ``i + 1`` while the
    device runs step ``i`` (dispatch is asynchronous). ``size >= 1``."""
    if size < 1:
        raise ValueError(f"prefetch size must be >= 1, got {size}")
    queue: collections.deque = collections.deque()
    it = iter(batches)

    def enqueue(n: int) -> None:
        for item in itertools.islice(it, n):
            queue.append(jax.device_put(item, device))

    enqueue(size)
    while queue:
        item = queue.popleft()
        enqueue(1)
        yield item


class Totals(NamedTuple):
    """An epoch's training metrics so far, on the host.

    Attributes:
      sums: ``{loss, accuracy, grad_norm}`` summed over the finite steps (float32 sums:
        cross-entropy in nats, accuracy as a fraction per step, global gradient norm).
      count: finite steps.
      skipped: non-finite steps.
      rate_sums: the layers' ``firing_rates`` (spikes per neuron per time step) summed
        over the finite steps, a tree of floats; ``None`` before the first step.
      first_bad: 0-based index in the epoch of its first non-finite step, ``-1`` if none.
      bad_loss: that step's loss (``nan`` if none).
    """

    sums: dict
    count: int
    skipped: int
    rate_sums: Any
    first_bad: int
    bad_loss: float

    def mean(self, name: str) -> float:
        """``name``'s mean over the finite steps; NaN when every step was skipped."""
        return self.sums[name] / self.count if self.count else float("nan")

    def mean_rates(self) -> dict:
        """The firing rates' epoch mean over the finite steps (``{}`` without one)."""
        if not self.count or self.rate_sums is None:
            return {}
        return jax.tree_util.tree_map(lambda s: s / self.count, self.rate_sums)

    def as_partial(self) -> dict:
        """The JSON-able form a mid-epoch checkpoint stores (:meth:`EpochSums.resume`)."""
        return dict(sums=dict(self.sums), count=self.count, skipped=self.skipped, rate_sums=self.rate_sums)


def _start(metrics: dict, partial: dict | None, first: int) -> dict:
    """The device sums at the epoch's step ``first``: zeros, or a mid-epoch checkpoint's."""
    f32 = lambda v: jnp.asarray(v, jnp.float32)
    zero_rates = jax.tree_util.tree_map(lambda v: jnp.zeros(jnp.shape(v), jnp.float32), metrics["firing_rates"])
    p = partial or {}
    rates = p.get("rate_sums")
    if rates is None and p.get("rates") is not None:
        # a checkpoint of the older loop kept the last step's rates: count times them
        rates = jax.tree_util.tree_map(lambda r: r * p["count"], p["rates"])
    return dict(
        **{k: f32(p.get("sums", {}).get(k, 0.0)) for k in SUMMED},
        rates=zero_rates if rates is None else jax.tree_util.tree_map(lambda _, r: f32(r), zero_rates, rates),
        count=jnp.asarray(p.get("count", 0), jnp.int32),
        skipped=jnp.asarray(p.get("skipped", 0), jnp.int32),
        next=jnp.asarray(first, jnp.int32),
        first_bad=jnp.asarray(-1, jnp.int32),
        bad_loss=jnp.asarray(jnp.nan, jnp.float32),
    )


@jax.jit
def _accumulate(acc: dict, metrics: dict) -> dict:
    """``acc`` plus one step's ``metrics``: the finite step's values summed, a
    non-finite one counted (and remembered if it is the first)."""
    finite = metrics["finite"]
    add = lambda total, v: total + jnp.where(finite, v.astype(jnp.float32), 0.0)
    first = (acc["first_bad"] < 0) & ~finite
    return dict(
        **{k: add(acc[k], metrics[k]) for k in SUMMED},
        rates=jax.tree_util.tree_map(add, acc["rates"], metrics["firing_rates"]),
        count=acc["count"] + finite.astype(jnp.int32),
        skipped=acc["skipped"] + (~finite).astype(jnp.int32),
        next=acc["next"] + 1,
        first_bad=jnp.where(first, acc["next"], acc["first_bad"]),
        bad_loss=jnp.where(first, metrics["loss"].astype(jnp.float32), acc["bad_loss"]),
    )


def fetch(tree):
    """The one way the epoch loop reads device values: :func:`jax.device_get` (a test
    counts these calls)."""
    return jax.device_get(tree)


class EpochSums:
    """An epoch's training metrics summed on the device, one jitted add per step and no
    host transfer until :meth:`fetch`.

    Args:
      first_step: the epoch's step (0-based) the loop starts at.
      partial: a mid-epoch checkpoint's :meth:`Totals.as_partial` to continue from
        (the float32 sums are restored exactly, so a resumed epoch sums like an
        uninterrupted one), or ``None``.
    """

    def __init__(self, first_step: int = 0, partial: dict | None = None):
        self._first = first_step
        self._partial = partial
        self._acc = None

    def add(self, metrics: dict) -> None:
        """Adds one step's metrics (``loss``, ``accuracy``, ``grad_norm``, ``finite``,
        ``firing_rates`` device arrays of :func:`gsnn.training.steps.make_train_step`)."""
        if self._acc is None:
            self._acc = _start(metrics, self._partial, self._first)
        self._acc = _accumulate(self._acc, metrics)

    def fetch(self) -> Totals:
        """The sums so far, on the host (one :func:`fetch`; none before the first step)."""
        if self._acc is None:
            p = self._partial or {}
            return Totals({k: float(p.get("sums", {}).get(k, 0.0)) for k in SUMMED}, int(p.get("count", 0)),
                          int(p.get("skipped", 0)), p.get("rate_sums"), -1, float("nan"))
        a = fetch(self._acc)
        return Totals({k: float(a[k]) for k in SUMMED}, int(a["count"]), int(a["skipped"]),
                      jax.tree_util.tree_map(float, a["rates"]), int(a["first_bad"]), float(a["bad_loss"]))
