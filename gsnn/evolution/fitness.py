"""Fitness of an evolved wiring rule: an accuracy term and the two dynamic regularisation
operators of the spatio-temporal evolution (DESIGN 1.3)::

    F = A + lambda_S(t) * H_S + lambda_T(t) * D_T

* ``A``: the validation accuracy (``val_accuracy``) or minus the mean validation
  cross-entropy (``val_loss``), :data:`ACCURACY_TERMS`.
* ``H_S`` (spatial operator), :data:`SPATIAL_OPERATORS`:

  - ``spatial_entropy``: normalised Shannon entropy of ``G``'s singular values, in
    [0, 1]. It is about 1 for any near-orthogonal ``G`` (equal singular values), and the
    genome's ``G0`` starts orthogonal, so it hardly separates genomes;
  - ``effective_rank``: ``exp(entropy of sigma^2) / g``;
  - ``activity_entropy``: per spiking layer, the mean over neurons of the binary entropy
    (bits) of each neuron's firing probability on the validation images after the inner
    training, averaged over layers; in [0, 1]. Neurons that never or always fire carry
    no information and score 0; ``p = 0.5`` scores 1.

* ``D_T`` (temporal operator), :data:`TEMPORAL_OPERATORS`:

  - ``temporal_difference``: relative drop of the training loss over the inner loop,
    ``(L_start - L_end) / L_start``; how fast the wiring adapts;
  - ``learning_curve_area``: ``1 - mean(losses) / L_start``;
  - ``activity_difference``: the mean absolute change of each neuron's spikes between
    consecutive time steps on the validation images, averaged over neurons and layers;
    in [0, 1] (an alternating ``0101`` train scores 1, a constant one 0).

* ``lambda_S(t)``, ``lambda_T(t)``: optax schedules over generations ``t``, strong early
  and decaying to zero by default, so that accuracy decides at the end.

The abstract of Pan et al. (2024) names the operators; the formulas are this project's
definitions. A new definition is a function of an :class:`InnerLoopTrace` returning a
scalar, added to the registry; the activity operators read the trace's
:class:`SpikeActivity`, which the evaluation collects only when one of
:data:`ACTIVITY_OPERATORS` is chosen (:func:`needs_activity`).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp
import optax

from gsnn.core import activity, genetic
from gsnn.core.tree import lookup


class SpikeActivity(NamedTuple):
    """Spiking activity of one network on a probe set, one entry per LIF layer (in the
    order of :func:`spike_activity`).

    Attributes:
      firing_prob: per layer ``[neurons...]``, each neuron's firing probability per time
        step over the probe images and the time steps (:func:`gsnn.core.activity.firing_probability`).
      spike_change: per layer ``[]``, ``mean |s_{t+1} - s_t|`` over the probe
        (:func:`gsnn.core.activity.spike_change`); empty when the network has ``T < 2``.
    """

    firing_prob: tuple
    spike_change: tuple


def spike_activity(collection) -> SpikeActivity:
    """The :class:`SpikeActivity` of a sown ``activity`` collection (the nested dict
    ``{layer: {'firing_prob': [...], 'spike_change': []}}`` that
    :class:`gsnn.nn.layers.SpikingNeuron` sows), layers in sorted path order."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(collection))
    if not flat:
        raise ValueError("the activity collection is empty: the network has no spiking layer")
    probs = tuple(flat[k] for k in sorted(flat) if k[-1] == "firing_prob")
    changes = tuple(flat[k] for k in sorted(flat) if k[-1] == "spike_change")
    return SpikeActivity(probs, changes)


class InnerLoopTrace(NamedTuple):
    """What one individual's evaluation produced (all arrays; vmappable).

    Attributes:
      interaction_init: ``[g, g]`` the genome's ``G`` before inner training.
      interaction_end: ``[g, g]`` ``G`` after inner training.
      losses: ``[K]`` training loss of each inner step (before its update).
      val_accuracy: ``[]`` validation accuracy after inner training.
      val_loss: ``[]`` mean validation cross-entropy (nats) after inner training; ``None``
        where the caller did not measure it (the ``val_loss`` term then raises).
      activity: the :class:`SpikeActivity` on the validation images after inner
        training; ``None`` unless an activity operator asked for it.
    """

    interaction_init: jax.Array
    interaction_end: jax.Array
    losses: jax.Array
    val_accuracy: jax.Array
    val_loss: jax.Array | None = None
    activity: SpikeActivity | None = None


def _window(k: int) -> int:
    return max(1, k // 8)


def loss_start_end(losses: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean loss over the first and the last ``max(1, K // 8)`` inner steps."""
    w = _window(losses.shape[0])
    return jnp.mean(losses[:w]), jnp.mean(losses[-w:])


def spatial_entropy(trace: InnerLoopTrace) -> jax.Array:
    """``H_S``: normalised singular-value entropy of the genome's ``G`` (DESIGN 1.3), in
    [0, 1]. Any near-orthogonal ``G`` (all singular values about equal) scores about 1,
    whatever else it encodes, so among genomes near an orthogonal ``G0`` it carries
    almost no signal (measured 0.98-1.00 for every genome)."""
    return genetic.spectral_entropy(trace.interaction_init)


def effective_rank(trace: InnerLoopTrace) -> jax.Array:
    """Alternative ``H_S``: ``exp(entropy of sigma^2 / sum sigma^2) / g`` (Roy & Vetterli
    2007, on the energy spectrum), in (0, 1]; penalises a few dominant directions harder.
    With interaction rules, the mean over rules."""
    if trace.interaction_init.ndim == 3:
        return jnp.mean(jax.vmap(lambda G: effective_rank(trace._replace(interaction_init=G)))(trace.interaction_init))
    sv = jnp.linalg.svd(trace.interaction_init, compute_uv=False)
    p = sv**2 / (jnp.sum(sv**2) + 1e-12)
    h = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.maximum(p, 1e-12)), 0.0))
    return jnp.exp(h) / sv.shape[0]


def temporal_difference(trace: InnerLoopTrace) -> jax.Array:
    """``D_T``: relative drop of the training loss, ``(L_start - L_end) / L_start``."""
    start, end = loss_start_end(trace.losses)
    return (start - end) / start


def learning_curve_area(trace: InnerLoopTrace) -> jax.Array:
    """Alternative ``D_T``: ``1 - mean(losses) / L_start``; rewards dropping early, not
    only by the end (area above the normalised learning curve)."""
    start, _ = loss_start_end(trace.losses)
    return 1.0 - jnp.mean(trace.losses) / start


def _activity(trace: InnerLoopTrace, name: str) -> SpikeActivity:
    if trace.activity is None:
        raise ValueError(f"the {name} operator needs the spiking activity, but the trace holds none: the "
                         f"evaluation collects it only when an activity operator is configured "
                         f"(gsnn.evolution.fitness.needs_activity)")
    return trace.activity


def activity_entropy(trace: InnerLoopTrace) -> jax.Array:
    """Spiking alternative ``H_S``: per LIF layer, the mean over neurons of the binary
    entropy (bits) of each neuron's firing probability on the probe set; the mean over
    layers (each layer weighs the same). ``[]``, in [0, 1]."""
    probs = _activity(trace, "activity_entropy").firing_prob
    return jnp.mean(jnp.stack([jnp.mean(activity.binary_entropy_bits(p)) for p in probs]))


def activity_difference(trace: InnerLoopTrace) -> jax.Array:
    """Spiking alternative ``D_T``: per LIF layer, ``mean |s_{t+1} - s_t|`` over time
    steps, probe images and neurons; the mean over layers. ``[]``, in [0, 1]."""
    changes = _activity(trace, "activity_difference").spike_change
    if not changes:
        raise ValueError("the activity_difference operator needs T >= 2 time steps (no spike change was sown)")
    return jnp.mean(jnp.stack(changes))


def _zero(trace: InnerLoopTrace) -> jax.Array:
    return jnp.zeros((), trace.losses.dtype)


SPATIAL_OPERATORS: dict[str, Callable[[InnerLoopTrace], jax.Array]] = {
    "spatial_entropy": spatial_entropy,
    "effective_rank": effective_rank,
    "activity_entropy": activity_entropy,
    "none": _zero,
}
TEMPORAL_OPERATORS: dict[str, Callable[[InnerLoopTrace], jax.Array]] = {
    "temporal_difference": temporal_difference,
    "learning_curve_area": learning_curve_area,
    "activity_difference": activity_difference,
    "none": _zero,
}

#: The operators that read the network's spiking activity (:class:`SpikeActivity`).
ACTIVITY_OPERATORS = ("activity_entropy", "activity_difference")


def needs_activity(spatial: str, temporal: str) -> bool:
    """Whether the operators named ``spatial`` and ``temporal`` read the spiking activity."""
    return spatial in ACTIVITY_OPERATORS or temporal in ACTIVITY_OPERATORS


def accuracy_term(trace: InnerLoopTrace) -> jax.Array:
    """``A = val_accuracy``, in [0, 1]."""
    return trace.val_accuracy


def negative_loss_term(trace: InnerLoopTrace) -> jax.Array:
    """``A = -val_loss``: minus the mean validation cross-entropy (nats), <= 0."""
    if trace.val_loss is None:
        raise ValueError("the val_loss fitness term needs the validation loss, but the trace holds none")
    return -trace.val_loss


#: ``evolve.fitness.metric`` -> the accuracy term ``A`` of the fitness.
ACCURACY_TERMS: dict[str, Callable[[InnerLoopTrace], jax.Array]] = {
    "val_accuracy": accuracy_term,
    "val_loss": negative_loss_term,
}

SCHEDULES = ("constant", "linear", "cosine", "exponential")

#: The fewest genes ``g`` a spatial operator is defined for (absent: any ``g >= 1``).
#: ``spatial_entropy`` divides by ``log g``, which is 0 at ``g = 1``.
MIN_GENES = {"spatial_entropy": 2}


#: The fewest time steps ``T`` a temporal operator is defined for (absent: any ``T >= 1``).
MIN_TIME_STEPS = {"activity_difference": 2}


def check_temporal_operator(name: str, time_steps: int) -> None:
    """Raises ``ValueError`` when the temporal operator ``name`` is undefined for a network
    of ``time_steps`` steps (the spike change needs two consecutive steps)."""
    need = MIN_TIME_STEPS.get(name, 1)
    if time_steps < need:
        raise ValueError(f"evolve.fitness.temporal_operator={name!r} needs model.T >= {need} (the change of the spikes "
                         f"between consecutive time steps), got T={time_steps}; set model.T >= {need} or "
                         f"another evolve.fitness.temporal_operator")


def check_spatial_operator(name: str, genes: int) -> None:
    """Raises ``ValueError`` when the spatial operator ``name`` is undefined for
    ``genes`` genes, so that a run fails at build time instead of scoring every
    individual as diverged (a non-finite ``H_S``)."""
    need = MIN_GENES.get(name, 1)
    if genes < need:
        raise ValueError(f"evolve.fitness.spatial_operator={name!r} needs model.genetic.genes >= {need} (the spectral "
                         f"entropy of G divides by log g), got genes={genes}; set model.genetic.genes >= {need} "
                         f"or evolve.fitness.spatial_operator to 'effective_rank' or 'none'")


def lambda_schedule(kind: str, value: float, generations: int) -> optax.Schedule:
    """``lambda(t)`` over generations: ``value`` at ``t = 0``, decaying to 0 at
    ``generations`` (``exponential``: halves every ``generations / 4``)."""
    n = max(1, generations)
    if kind == "constant":
        return optax.constant_schedule(value)
    if kind == "linear":
        return optax.linear_schedule(value, 0.0, n)
    if kind == "cosine":
        return optax.cosine_decay_schedule(value, n)
    if kind == "exponential":
        return optax.exponential_decay(value, max(1, n // 4), 0.5)
    raise ValueError(f"unknown lambda schedule {kind!r}; valid: {list(SCHEDULES)}")


def get_operator(registry: dict, name: str, what: str):
    return lookup(registry, name, f"{what} operator", ordered=False)


def combine(accuracy, spatial, temporal, lambda_s, lambda_t):
    """``F = accuracy + lambda_s * spatial + lambda_t * temporal``: the one place of the
    formula. Only ``+`` and ``*``, in this order, so it takes NumPy or JAX arrays alike:
    the traced :func:`fitness` calls it with float32 per generation, the loop's
    comparable score with float64 and the final generation's lambdas."""
    return accuracy + lambda_s * spatial + lambda_t * temporal


def make_fitness(spatial_fn: Callable[[InnerLoopTrace], jax.Array],
                 temporal_fn: Callable[[InnerLoopTrace], jax.Array],
                 lambda_s: optax.Schedule, lambda_t: optax.Schedule,
                 accuracy_fn: Callable[[InnerLoopTrace], jax.Array] = accuracy_term,
                 ) -> Callable[..., dict[str, jax.Array]]:
    """The fitness ``(trace, generation) -> dict``, ``F = A + lambda_S(t) H_S +
    lambda_T(t) D_T`` (maximised), from the operators, weight schedules and accuracy term
    themselves (look names up in :data:`SPATIAL_OPERATORS` / :data:`TEMPORAL_OPERATORS` /
    :data:`ACCURACY_TERMS` once, outside traced code).

    The dict holds ``fitness``, its parts (``accuracy_term`` = ``A``, ``spatial``,
    ``temporal``, ``lambda_s``, ``lambda_t``), ``val_accuracy``, ``val_loss`` (when the
    trace holds it), ``loss_start``, ``loss_end`` and ``diverged``. A non-finite loss or
    fitness gives ``F = -inf`` (``diverged = True``); callers pass a large finite worst
    value to the strategy.
    """

    def fitness_fn(trace: InnerLoopTrace, generation: jax.Array) -> dict[str, jax.Array]:
        a = accuracy_fn(trace)
        h_s = spatial_fn(trace)
        d_t = temporal_fn(trace)
        ls, lt = lambda_s(generation), lambda_t(generation)
        f = combine(a, h_s, d_t, ls, lt)
        diverged = ~(jnp.all(jnp.isfinite(trace.losses)) & jnp.isfinite(f))
        start, end = loss_start_end(trace.losses)
        loss = {} if trace.val_loss is None else {"val_loss": trace.val_loss}
        return dict(
            fitness=jnp.where(diverged, -jnp.inf, f),
            accuracy_term=a,
            val_accuracy=trace.val_accuracy,
            **loss,
            spatial=h_s,
            temporal=d_t,
            lambda_s=jnp.asarray(ls, jnp.float32),
            lambda_t=jnp.asarray(lt, jnp.float32),
            loss_start=start,
            loss_end=end,
            diverged=diverged,
        )

    return fitness_fn


def fitness(
    trace: InnerLoopTrace,
    generation: jax.Array,
    *,
    spatial: str = "spatial_entropy",
    temporal: str = "temporal_difference",
    metric: str = "val_accuracy",
    lambda_s: optax.Schedule = optax.constant_schedule(0.0),
    lambda_t: optax.Schedule = optax.constant_schedule(0.0),
) -> dict[str, jax.Array]:
    """:func:`make_fitness` with the operators and the accuracy term (``metric``) given by
    name, applied to one trace."""
    return make_fitness(get_operator(SPATIAL_OPERATORS, spatial, "spatial"),
                        get_operator(TEMPORAL_OPERATORS, temporal, "temporal"), lambda_s, lambda_t,
                        get_operator(ACCURACY_TERMS, metric, "fitness metric"))(trace, generation)
