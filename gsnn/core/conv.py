"""2-D convolution for spiking layers, with a weight gradient that runs as matmuls.

XLA's CPU backend computes a convolution's forward pass and its input gradient at close
to matmul speed, but its weight-gradient convolution runs 4-6x slower (measured in
``benchmarks/conv_paths.py``; numbers in ``benchmarks/README.md``). :func:`conv2d` keeps
XLA's forward and input gradient and replaces the weight gradient by matmuls:

- ``"taps"``: one matmul per kernel position, ``dK[i, j] = X_ij^T dY`` where ``X_ij`` is
  the (strided) input window shifted by ``(i, j)``: ``[N*Ho*Wo, C_in]^T @ [N*Ho*Wo, C_out]``.
- ``"patches"``: the input unfolded to patches ``[N*Ho*Wo, kh*kw*C_in]`` and one matmul;
  better when ``C_in`` is small (the first layer's 3 colour channels).

A third implementation, ``"matmul"``, writes the whole convolution as per-tap matmuls
and leaves the gradients to autodiff; under ``vmap`` over kernels (a population) it
becomes batched matmuls instead of grouped convolutions (faster than ``taps`` there,
still slower than a loop on a 2-core CPU). ``auto`` never picks it.

The matmul weight gradients compute exactly the sum XLA's weight-gradient convolution does (same terms, other
summation order), so results agree to float32 rounding; ``tests/test_conv.py`` checks
forward and both gradients against ``lax.conv_general_dilated``'s own autodiff.

Layouts: inputs ``[N, H, W, C_in]`` (NHWC), kernels ``[kh, kw, C_in/groups, C_out]``
(HWIO), outputs ``[N, Ho, Wo, C_out]``.
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

CONV_IMPLS = ("auto", "xla", "taps", "patches", "matmul")
_DIMS = ("NHWC", "HWIO", "NHWC")
# Below this many patch columns (kh*kw*C_in) one patches matmul beats per-tap matmuls.
_PATCHES_MAX_COLUMNS = 64

Padding = tuple[tuple[int, int], tuple[int, int]]


def validate_impl(impl: str) -> str:
    if impl not in CONV_IMPLS:
        raise ValueError(f"unknown convolution implementation {impl!r}; valid: {list(CONV_IMPLS)}")
    return impl


def _normalise_padding(padding, kernel_hw, strides, in_hw) -> Padding:
    if isinstance(padding, str):
        pads = lax.padtype_to_pads(in_hw, kernel_hw, (strides, strides), padding)
        return tuple(tuple(int(v) for v in p) for p in pads)
    return tuple(tuple(int(v) for v in p) for p in padding)


def _xla_conv(x, kernel, strides: int, padding: Padding, groups: int = 1):
    return lax.conv_general_dilated(
        x, kernel, window_strides=(strides, strides), padding=padding,
        dimension_numbers=_DIMS, feature_group_count=groups,
    )


def _windows(x, kh: int, kw: int, strides: int, padding: Padding, out_hw):
    """The ``kh*kw`` shifted, strided input windows, each ``[N, Ho, Wo, C_in]``."""
    (pt, pb), (pl, pr) = padding
    xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    ho, wo = out_hw
    return [
        lax.slice(xp, (0, i, j, 0), (xp.shape[0], i + strides * (ho - 1) + 1, j + strides * (wo - 1) + 1, xp.shape[3]),
                  (1, strides, strides, 1))
        for i in range(kh) for j in range(kw)
    ]


def weight_grad(x, dy, kernel_shape, strides: int, padding: Padding, method: str = "taps"):
    """``dL/dK`` of a (groups=1) convolution as matmuls.

    Args:
      x: layer input ``[N, H, W, C_in]``.
      dy: output cotangent ``[N, Ho, Wo, C_out]``.
      kernel_shape: ``(kh, kw, C_in, C_out)``.
      method: ``"taps"`` (one matmul per kernel position) or ``"patches"`` (one matmul).

    Returns:
      ``[kh, kw, C_in, C_out]``, dtype of ``x``.
    """
    kh, kw, c_in, c_out = kernel_shape
    wins = _windows(x, kh, kw, strides, padding, dy.shape[1:3])
    d = dy.reshape(-1, c_out)
    if method == "patches":
        cols = jnp.concatenate(wins, axis=-1).reshape(-1, kh * kw * c_in)
        return (cols.T @ d).reshape(kernel_shape).astype(x.dtype)
    return jnp.stack([w.reshape(-1, c_in).T @ d for w in wins]).reshape(kernel_shape).astype(x.dtype)


def _matmul_conv(x, kernel, strides: int, padding: Padding):
    """The convolution as a sum over kernel positions of window @ kernel-slice matmuls;
    autodiff of it is matmuls and slices too. Under ``vmap`` over kernels (a population
    of networks) these become batched matmuls rather than grouped convolutions."""
    kh, kw, c_in, c_out = kernel.shape
    (pt, pb), (pl, pr) = padding
    ho = (x.shape[1] + pt + pb - kh) // strides + 1
    wo = (x.shape[2] + pl + pr - kw) // strides + 1
    wins = _windows(x, kh, kw, strides, padding, (ho, wo))
    taps = kernel.reshape(kh * kw, c_in, c_out)
    y = wins[0] @ taps[0]
    for t in range(1, kh * kw):
        y = y + wins[t] @ taps[t]
    return y


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv_matmul_grad(x, kernel, strides, padding, method):
    return _xla_conv(x, kernel, strides, padding)


def _fwd(x, kernel, strides, padding, method):
    return _xla_conv(x, kernel, strides, padding), (x, kernel)


def _bwd(strides, padding, method, res, dy):
    x, kernel = res
    _, input_vjp = jax.vjp(lambda xx: _xla_conv(xx, kernel, strides, padding), x)
    (dx,) = input_vjp(dy)
    return dx, weight_grad(x, dy, kernel.shape, strides, padding, method)


_conv_matmul_grad.defvjp(_fwd, _bwd)


def choose_impl(kernel_shape: Sequence[int], strides: int = 1, groups: int = 1, backend: str | None = None) -> str:
    """The fastest implementation for a kernel shape on a backend (see module doc).

    Accelerators keep XLA's own convolution (cuDNN's weight gradient is fast); so do
    grouped and strided convolutions, where XLA's weight gradient was as fast or faster
    (``benchmarks/README.md``).
    """
    backend = backend or jax.default_backend()
    if backend != "cpu" or groups != 1 or strides != 1:
        return "xla"
    kh, kw, c_in, _ = kernel_shape
    return "patches" if kh * kw * c_in < _PATCHES_MAX_COLUMNS else "taps"


def conv2d(x, kernel, strides: int = 1, padding="SAME", groups: int = 1, impl: str = "auto"):
    """A 2-D convolution ``[N, H, W, C_in] -> [N, Ho, Wo, C_out]`` (NHWC/HWIO).

    Args:
      x: input.
      kernel: ``[kh, kw, C_in/groups, C_out]``.
      strides: the same stride along both spatial axes.
      padding: ``"SAME"``, ``"VALID"`` or ``((top, bottom), (left, right))``.
      groups: feature groups (``C_in`` for depthwise).
      impl: ``"xla"`` (``lax.conv_general_dilated`` and its autodiff), ``"taps"`` or
        ``"patches"`` (XLA forward and input gradient, weight gradient as matmuls) or
        ``"auto"`` (:func:`choose_impl`).
    """
    validate_impl(impl)
    if x.ndim != 4 or kernel.ndim != 4:
        raise ValueError(f"conv2d expects x [N,H,W,C] and kernel [kh,kw,C_in,C_out]; got {x.shape} and {kernel.shape}")
    if x.shape[-1] != kernel.shape[2] * groups:
        raise ValueError(f"input has {x.shape[-1]} channels but the kernel expects {kernel.shape[2] * groups}")
    pad = _normalise_padding(padding, kernel.shape[:2], strides, x.shape[1:3])
    if impl == "auto":
        impl = choose_impl(kernel.shape, strides, groups)
    if impl == "xla" or groups != 1:
        return _xla_conv(x, kernel, strides, pad, groups)
    if impl == "matmul":
        return _matmul_conv(x, kernel, strides, pad)
    return _conv_matmul_grad(x, kernel, strides, pad, impl)
