"""Genetic encoding of synaptic weights (pure functions).

A layer's weight is generated, never stored (Barabási & Czégel 2021; Barabási et al.,
Nat. Commun. 2023, "Complex computation from developmental priors"; Pan et al. 2024,
arXiv 2411.06792)::

    W = s * X_pre @ G @ X_post.T          (DESIGN 1.1)

with ``g`` genes, one interaction matrix ``G [g, g]`` shared by every encoded layer,
one gene-expression row per presynaptic element (``X_pre [N_pre, g]``) and per
postsynaptic element (``X_post [N_post, g]``), and a fixed, computed scale ``s``.

Two encoding modes (this project's definitions, see DESIGN.md 1.1):

* ``"position"``: each layer has private ``X_pre``/``X_post``. For a convolution with a
  ``h x w`` kernel, ``X_pre`` has one row per (kernel offset, input channel) pair,
  ``[h*w*C_in, g]``, ordered offset-major so ``W`` reshapes to the ``[h, w, C_in, C_out]``
  kernel.
* ``"neuron"``: every neuron population ``k`` has one encoding ``X_k [N_k, g]`` used by its
  incoming and outgoing layers. A convolution modulates the presynaptic genes with a
  per-layer spatial gene code ``S [h*w, g]``: ``W[p] = s * (X_k * S[p]) @ G @ X_{k+1}.T``.

All shapes are Python ints; every function is jittable and differentiable.
"""
from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp

EXECUTIONS = ("auto", "materialise", "factorised")


def validate_execution(execution: str) -> str:
    if execution not in EXECUTIONS:
        raise ValueError(f"unknown execution {execution!r}; valid: {list(EXECUTIONS)}")
    return execution


def kaiming_std(fan_in: int, gain: float = math.sqrt(2.0)) -> float:
    """Standard deviation of Kaiming-normal initialisation: ``gain / sqrt(fan_in)``."""
    return gain / math.sqrt(fan_in)


def variance_matching_scale(
    fan_in: int,
    genes: int,
    pre_rms: float,
    interaction_rms: float,
    post_rms: float,
    gain: float = math.sqrt(2.0),
) -> float:
    """The fixed scale ``s`` that gives ``W`` the Kaiming variance at initialisation.

    With independent zero-mean factors, ``Var(W_ij) = s^2 g^2 E[X_pre^2] E[G^2] E[X_post^2]``
    (a sum of ``g^2`` independent products), so ``s = std_target / (g * rms_pre * rms_G *
    rms_post)`` where ``rms`` is the root of the second moment of each factor's entries
    at initialisation (for ``neuron`` convolutions, ``rms_pre`` is that of
    ``X_k * S[p]``, the product of the two).

    Args:
      fan_in: ``h*w*C_in`` for a convolution, ``N_pre`` for a dense layer.
      genes: ``g``.
      pre_rms, interaction_rms, post_rms: second-moment roots of the factors' entries.
      gain: Kaiming gain (``sqrt(2)``).

    Returns:
      ``s`` as a Python float (computed, never trained).
    """
    return kaiming_std(fan_in, gain) / (genes * pre_rms * interaction_rms * post_rms)


def generate_weight(
    x_pre: jax.Array, interaction: jax.Array, x_post: jax.Array, scale: float | jax.Array
) -> jax.Array:
    """``W = scale * x_pre @ G @ x_post.T``.

    Args:
      x_pre: ``[N_pre, g]`` presynaptic gene expression.
      interaction: ``[g, g]`` gene-interaction matrix ``G``.
      x_post: ``[N_post, g]`` postsynaptic gene expression.
      scale: the layer's fixed scale ``s``.

    Returns:
      ``[N_pre, N_post]`` weight matrix (rows index inputs, as ``y = x @ W``).
    """
    return scale * (x_pre @ (interaction @ x_post.T))


def spatial_pre_rows(x_in: jax.Array, spatial: jax.Array) -> jax.Array:
    """Presynaptic rows of a ``neuron``-mode convolution, one per (offset, channel).

    Args:
      x_in: ``[C_in, g]`` encoding of the input population.
      spatial: ``[P, g]`` spatial gene code, ``P = h*w`` kernel offsets (row-major).

    Returns:
      ``[P*C_in, g]`` rows ``X_in * S[p]``, offset-major (row ``p*C_in + c``), matching a
      ``[h, w, C_in, C_out]`` kernel reshaped to ``[h*w*C_in, C_out]`` and an NHWC map
      flattened to ``[H*W*C]``.
    """
    return (spatial[:, None, :] * x_in[None, :, :]).reshape(-1, x_in.shape[-1])


def generate_kernel(
    pre_rows: jax.Array,
    interaction: jax.Array,
    x_post: jax.Array,
    scale: float | jax.Array,
    kernel_size: Sequence[int],
) -> jax.Array:
    """A convolution kernel from gene expression.

    Args:
      pre_rows: ``[h*w*C_in, g]`` presynaptic rows, offset-major (``position`` mode's
        ``X_pre`` or :func:`spatial_pre_rows` in ``neuron`` mode).
      interaction: ``[g, g]``.
      x_post: ``[C_out, g]``.
      scale: the layer's fixed scale.
      kernel_size: ``(h, w)``.

    Returns:
      ``[h, w, C_in, C_out]`` kernel (HWIO).
    """
    h, w = kernel_size
    c_in = pre_rows.shape[0] // (h * w)
    return generate_weight(pre_rows, interaction, x_post, scale).reshape(h, w, c_in, -1)


# --------------------------------------------------------------------------------------
# Spectral statistics of G
# --------------------------------------------------------------------------------------


def spectral_entropy(interaction: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Normalised Shannon entropy of ``G``'s singular-value spectrum, in [0, 1].

    ``p_i = sigma_i / sum_j sigma_j``, ``H = -sum_i p_i log p_i / log g``. It is 1 for an
    orthogonal (or any scaled-orthogonal) ``G`` and 0 for a rank-1 ``G`` (DESIGN 1.3).
    With interaction rules (``G [R, g, g]``), the mean of the rules' entropies.
    """
    if interaction.ndim == 3:  # interaction rules [R, g, g]: the mean over rules
        return jnp.mean(jax.vmap(lambda G: spectral_entropy(G, eps))(interaction))
    if interaction.shape[-1] < 2:
        raise ValueError(f"the spectral entropy of G needs g >= 2 genes (it divides by log g), got "
                         f"g={interaction.shape[-1]}; use more genes or another spatial operator")
    sv = jnp.linalg.svd(interaction, compute_uv=False)
    p = sv / (jnp.sum(sv) + eps)
    h = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.maximum(p, eps)), 0.0))
    return h / math.log(interaction.shape[0])


# --------------------------------------------------------------------------------------
# Execution-path cost model (multiply-accumulates per example, forward)
# --------------------------------------------------------------------------------------


def materialised_macs(
    kernel_positions: int, c_in: int, c_out: int, out_positions: int
) -> int:
    """MACs of an ordinary dense/conv layer: ``out_positions * h*w * C_in * C_out``."""
    return out_positions * kernel_positions * c_in * c_out


def synthesis_macs(kernel_positions: int, c_in: int, c_out: int, genes: int, rules: int = 1) -> int:
    """MACs of generating ``W`` once: per rule ``G @ X_post.T`` then ``X_pre @ (.)``, and
    the ``R - 1`` element-wise products of the rules' matrices."""
    one = genes * genes * c_out + kernel_positions * c_in * genes * c_out
    return rules * one + (rules - 1) * kernel_positions * c_in * c_out


def factorised_macs(
    encoding: str,
    kernel_positions: int,
    c_in: int,
    c_out: int,
    genes: int,
    in_positions: int,
    out_positions: int,
) -> tuple[int, int]:
    """MACs of the factorised path, split into (first stage, later stages).

    The first stage reads the layer's input (spikes: accumulates); the later stages read
    real-valued gene activations (multiply-accumulates). ``G @ X_post.T`` is folded once
    per step and not counted per example.

    * ``position``: conv ``h*w*C_in -> g`` at the output positions, then ``g -> C_out``.
    * ``neuron`` conv: pointwise ``C_in -> g`` at the input positions, depthwise ``h*w``
      on ``g`` channels, pointwise ``g -> C_out`` (DESIGN 1.1).
    """
    if encoding == "neuron" and kernel_positions > 1 and in_positions > 1:
        first = in_positions * c_in * genes
        later = out_positions * (kernel_positions * genes + genes * c_out)
    else:
        first = out_positions * kernel_positions * c_in * genes
        later = out_positions * genes * c_out
    return first, later


# Cost of one depthwise-convolution MAC (forward + backward) relative to a dense conv
# MAC, by backend. XLA CPU runs depthwise convolutions 49-115x slower per MAC
# than dense ones (benchmarks/depthwise_cost.py); other backends are not measured yet.
DEPTHWISE_MAC_COST = {"cpu": 100.0}


def choose_execution(
    encoding: str,
    kernel_positions: int,
    c_in: int,
    c_out: int,
    genes: int,
    in_positions: int,
    out_positions: int,
    examples: int,
    backend: str | None = None,
) -> str:
    """Picks the cheaper execution for one layer call (by MAC count).

    ``examples`` is the number of examples in one call (batch x time), over which the
    one-off cost of generating ``W`` is amortised. The depthwise stage of a ``neuron``
    convolution is charged :data:`DEPTHWISE_MAC_COST` per MAC on ``backend`` (default:
    JAX's default backend).
    """
    mat = examples * materialised_macs(kernel_positions, c_in, c_out, out_positions)
    mat += synthesis_macs(kernel_positions, c_in, c_out, genes)
    fac = examples * sum(
        factorised_macs(encoding, kernel_positions, c_in, c_out, genes, in_positions, out_positions)
    )
    if encoding == "neuron" and kernel_positions > 1 and in_positions > 1:
        weight = DEPTHWISE_MAC_COST.get(backend or jax.default_backend(), 1.0)
        fac += examples * (weight - 1.0) * out_positions * kernel_positions * genes
    return "factorised" if fac < mat else "materialise"
