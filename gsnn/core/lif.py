"""Spiking neuron dynamics and surrogate spike functions (pure functions).

Layout: time first everywhere, ``[T, B, ...]``.

The leaky integrate-and-fire (LIF) neuron has two update forms:

* ``"tau"`` (SpikingJelly's decay-input form):  ``v <- v + (I - v) / tau``
* ``"beta"`` (snnTorch's form):                 ``v <- beta * v + I``

A spike is ``H(v - v_th)`` with a surrogate derivative in the backward pass; after a
spike the membrane is reset to 0 (``"hard"``) or lowered by ``v_th`` (``"soft"``,
subtractive). The reset is detached from the graph by default, as in SpikingJelly and
the tdBN/PLIF literature. PLIF (Fang et al., ICCV 2021) learns ``tau`` per layer via
``tau = 1 + exp(-w)`` so that ``1/tau = sigmoid(w)``.

References: Neftci et al. 2019 (surrogate gradients); Fang et al. 2021 (PLIF);
Zheng et al. 2021 (tdBN); Eshraghian et al. 2023 (snnTorch).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from gsnn.config import LIFConfig
from gsnn.core.tree import lookup

SpikeFn = Callable[[jax.Array], jax.Array]

# --------------------------------------------------------------------------------------
# Surrogate spike functions: forward = Heaviside, backward = the named derivative.
# --------------------------------------------------------------------------------------


def _heaviside(u: jax.Array) -> jax.Array:
    return (u >= 0).astype(u.dtype)


def _make_surrogate(derivative: Callable[[jax.Array], jax.Array]) -> SpikeFn:
    """Wraps ``derivative(u)`` into a spike function with a Heaviside forward pass."""

    @jax.custom_jvp
    def spike(u):
        return _heaviside(u)

    @spike.defjvp
    def _jvp(primals, tangents):
        (u,), (du,) = primals, tangents
        return _heaviside(u), derivative(u).astype(u.dtype) * du

    return spike


def atan(alpha: float = 2.0) -> SpikeFn:
    """Arctangent surrogate: ``d/du = (alpha/2) / (1 + (pi/2 * alpha * u)^2)``."""
    return _make_surrogate(lambda u: (alpha / 2) / (1 + (math.pi / 2 * alpha * u) ** 2))


def sigmoid(alpha: float = 4.0) -> SpikeFn:
    """Sigmoid surrogate: ``d/du = alpha * sig(alpha u) * (1 - sig(alpha u))``."""

    def derivative(u):
        s = jax.nn.sigmoid(alpha * u)
        return alpha * s * (1 - s)

    return _make_surrogate(derivative)


def triangle(alpha: float = 1.0) -> SpikeFn:
    """Triangle surrogate: ``d/du = max(0, 1 - |u| / alpha) / alpha`` (unit area)."""
    return _make_surrogate(lambda u: jnp.maximum(0.0, 1.0 - jnp.abs(u) / alpha) / alpha)


SURROGATES: dict[str, Callable[..., SpikeFn]] = {
    "atan": atan,
    "sigmoid": sigmoid,
    "triangle": triangle,
}


def get_surrogate(name: str, alpha: float | None = None) -> SpikeFn:
    """Looks a surrogate up by name; ``alpha=None`` keeps the factory's default."""
    factory = lookup(SURROGATES, name, "surrogate", ordered=False)
    return factory() if alpha is None else factory(alpha)


# --------------------------------------------------------------------------------------
# LIF dynamics
# --------------------------------------------------------------------------------------

class LIFState(NamedTuple):
    """Membrane state. ``v``: potential, same shape as one time step of the input."""

    v: jax.Array


def initial_state(shape, dtype=jnp.float32) -> LIFState:
    """A resting membrane (``v = 0``) of the given per-step shape, e.g. ``[B, ...]``."""
    return LIFState(v=jnp.zeros(shape, dtype))


def decay_from_tau(tau: float) -> float:
    """The ``beta`` of the ``"beta"`` form equivalent in leak to a ``"tau"`` neuron."""
    return 1.0 - 1.0 / tau


LIFStep = Callable[[jax.Array | float, LIFState, jax.Array], tuple[LIFState, jax.Array]]


def make_lif_step(config: LIFConfig = LIFConfig()) -> LIFStep:
    """The LIF time step for ``config``, validated and resolved once (as optax's
    factories do), so the returned step holds no checks and no lookups.

    Returns:
      ``step(leak, state, current) -> (new_state, spikes)``:

      * ``leak``: ``1/tau`` for the ``"tau"`` form, ``beta`` for the ``"beta"`` form; a
        scalar or anything broadcastable to ``current`` (PLIF passes ``sigmoid(w)``);
      * ``state``: membrane state, ``v`` shaped like ``current``;
      * ``current``: input current for this step, ``[B, ...]``;
      * spikes in {0, 1}, shaped like ``current``.

    Raises:
      ValueError: an unknown update form, reset or surrogate (naming the valid ones).
    """
    config.validate()
    spike_fn = get_surrogate(config.surrogate, config.alpha)
    tau_form, hard_reset, v_th, detach = config.update == "tau", config.reset == "hard", config.v_th, config.detach_reset

    def step(leak, state: LIFState, current: jax.Array) -> tuple[LIFState, jax.Array]:
        v = state.v
        if tau_form:
            v = v + (current - v) * leak
        else:
            v = leak * v + current
        s = spike_fn(v - v_th)
        s_reset = lax.stop_gradient(s) if detach else s
        if hard_reset:
            v = v * (1.0 - s_reset)
        else:
            v = v - s_reset * v_th
        return LIFState(v=v), s

    return step


def lif_step(
    leak: jax.Array | float,
    state: LIFState,
    current: jax.Array,
    config: LIFConfig = LIFConfig(),
) -> tuple[LIFState, jax.Array]:
    """One LIF time step: ``make_lif_step(config)(leak, state, current)`` (see there)."""
    return make_lif_step(config)(leak, state, current)


FULL_UNROLL_MAX_T = 32


def lif_run(
    leak: jax.Array | float,
    currents: jax.Array,
    config: LIFConfig = LIFConfig(),
    *,
    remat: bool = False,
    unroll: int | bool | None = None,
) -> jax.Array:
    """Runs a LIF population over time with ``lax.scan`` (only the recurrence is scanned).

    Args:
      leak: see :func:`lif_step`.
      currents: ``[T, B, ...]`` input currents, all steps precomputed (time folded).
      config: structural settings.
      remat: rematerialise each step in the backward pass (``jax.checkpoint``), trading
        compute for memory at long ``T``.
      unroll: steps unrolled per loop iteration of the scan. ``None``: all of them up to
        :data:`FULL_UNROLL_MAX_T` steps, else 8. Unrolling lets XLA fuse the element-wise
        updates of neighbouring steps; on CPU it made the W2 training step 1.4x and W1's
        2.7x faster (``benchmarks/README.md``).

    Returns:
      spikes ``[T, B, ...]``.
    """
    one_step = make_lif_step(config)
    step = lambda st, i: one_step(leak, st, i)
    if remat:
        step = jax.checkpoint(step)
    T = currents.shape[0]
    if unroll is None:
        unroll = T if T <= FULL_UNROLL_MAX_T else 8
    _, spikes = lax.scan(step, initial_state(currents.shape[1:], currents.dtype), currents, unroll=unroll)
    return spikes


def plif_leak(w: jax.Array) -> jax.Array:
    """PLIF: the learnable parameter ``w`` gives ``1/tau = sigmoid(w)`` (tau > 1)."""
    return jax.nn.sigmoid(w)


def plif_init(tau: float) -> float:
    """Initial PLIF parameter ``w`` for a given ``tau`` (``sigmoid(w) = 1/tau``)."""
    return -math.log(tau - 1.0)


def leak_for(config: LIFConfig, tau: float) -> float:
    """The fixed leak to pass to :func:`lif_step` for a time constant ``tau``."""
    return 1.0 / tau if config.update == "tau" else decay_from_tau(tau)


# --------------------------------------------------------------------------------------
# Input coding: [B, ...] -> [T, B, ...]
# --------------------------------------------------------------------------------------


def direct_encode(x: jax.Array, T: int) -> jax.Array:
    """Direct coding: the same real-valued input at every step. ``[B,...] -> [T,B,...]``."""
    return jnp.broadcast_to(x[None], (T,) + x.shape)


def poisson_encode(key: jax.Array, x: jax.Array, T: int) -> jax.Array:
    """Rate coding: Bernoulli spikes with probability ``clip(x, 0, 1)`` at every step."""
    p = jnp.clip(x, 0.0, 1.0)
    return jax.random.bernoulli(key, p, (T,) + x.shape).astype(x.dtype)


ENCODERS = ("direct", "poisson")
