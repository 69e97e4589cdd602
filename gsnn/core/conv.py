"""2-D convolution for spiking layers: a weight gradient that runs as matmuls, and Winograd.

XLA's CPU backend computes a convolution's forward pass and its input gradient at close
to matmul speed, but its weight-gradient convolution runs 4-6x slower (measured in
``benchmarks/conv_paths.py``; numbers in ``benchmarks/README.md``). :func:`conv2d` keeps
XLA's forward and input gradient and replaces the weight gradient by matmuls:

- ``"taps"``: one matmul per kernel position, ``dK[i, j] = X_ij^T dY`` where ``X_ij`` is
  the (strided) input window shifted by ``(i, j)``: ``[N*Ho*Wo, C_in]^T @ [N*Ho*Wo, C_out]``.
- ``"patches"``: the input unfolded to patches ``[N*Ho*Wo, kh*kw*C_in]`` and one matmul;
  better when ``C_in`` is small (the first layer's 3 colour channels).

``"winograd"`` replaces the whole convolution, forward and both gradients, for 3x3,
stride-1, ungrouped kernels: Winograd F(2x2, 3x3) computes each 2x2 output tile from a
4x4 input tile with 16 multiplies per channel pair instead of 36 (2.25x fewer). The
input transform ``B^T d B``, the kernel transform ``G g G^T`` and the output transform
``A^T M A`` are additions and halvings of slices; the products are one batched matmul
``[16, tiles, C_in] @ [16, C_in, C_out]``. Autodiff of that is batched matmuls and
additions again. Images run in blocks of a few MB so the 4x-larger transformed
tensors stay in cache. On CPU ``auto`` picks it from 32 input channels on; with 3 to 16
channels the transforms cost more than the multiplies saved.

A fourth implementation, ``"matmul"``, writes the whole convolution as per-tap matmuls
and leaves the gradients to autodiff; under ``vmap`` over kernels (a population) it
becomes batched matmuls instead of grouped convolutions (faster than ``taps`` there,
still slower than a loop on a 2-core CPU). ``auto`` never picks it.

The matmul weight gradients compute exactly the sum XLA's weight-gradient convolution does (same terms, other
summation order), so results agree to float32 rounding. Winograd computes the same sums through transforms
with exact coefficients (0, ±1, ±1/2) and differs from them by float32 rounding only.
``tests/test_conv.py`` checks forward and both gradients against
``lax.conv_general_dilated``'s own autodiff.

Layouts: inputs ``[N, H, W, C_in]`` (NHWC), kernels ``[kh, kw, C_in/groups, C_out]``
(HWIO), outputs ``[N, Ho, Wo, C_out]``.
"""
from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

CONV_IMPLS = ("auto", "xla", "taps", "patches", "matmul", "winograd")
_DIMS = ("NHWC", "HWIO", "NHWC")
# Below this many patch columns (kh*kw*C_in) one patches matmul beats per-tap matmuls.
_PATCHES_MAX_COLUMNS = 64
# From this many input channels on, Winograd beats taps for a 3x3 stride-1 kernel on CPU.
_WINOGRAD_MIN_C_IN = 32
# Bytes of Winograd transformed tiles and products per block of images (_winograd_conv).
_WINOGRAD_BLOCK_BYTES = 8 * 2**20

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


# Winograd F(2x2, 3x3) (Lavin & Gray 2016): a 2x2 output tile from a 4x4 input tile as
# Y = A^T [(G g G^T) * (B^T d B)] A, applied separably (rows, then columns). Each helper
# is one of the 1-D transforms on a list of slices along one axis.
def _winograd_bt(d):
    """``B^T d``: four input rows -> four transformed rows."""
    d0, d1, d2, d3 = d
    return [d0 - d2, d1 + d2, d2 - d1, d1 - d3]


def _winograd_g(g):
    """``G g``: three kernel rows -> four transformed rows."""
    g0, g1, g2 = g
    return [g0, (g0 + g1 + g2) * 0.5, (g0 - g1 + g2) * 0.5, g2]


def _winograd_at(m):
    """``A^T m``: four product rows -> two output rows."""
    m0, m1, m2, m3 = m
    return [m0 + m1 + m2, m1 - m2 - m3]


def _strided_phases(x, axis: int, count: int):
    """The four stride-2 slices ``x[r::2][:count]``, ``r = 0..3``, along ``axis``: row ``r``
    of every 4-wide tile (tiles overlap by 2)."""
    return [lax.slice_in_dim(x, r, r + 2 * (count - 1) + 1, stride=2, axis=axis) for r in range(4)]


def _winograd_kernel(kernel):
    """``U = G g G^T`` per input/output channel pair: ``[3, 3, C_in, C_out] -> [16, C_in, C_out]``
    (index ``4*xi + nu``)."""
    return jnp.stack([c for r in _winograd_g(list(kernel)) for c in _winograd_g(list(r))])


def _winograd_tiles(x, u, padding: Padding):
    """Winograd F(2x2, 3x3) on one block of images: ``V = B^T d B`` of every 4x4 input tile
    (stride 2), ``M = V @ U`` as one batched matmul over the 16 tile positions, ``Y = A^T M A``.

    Args:
      x: ``[n, H, W, C_in]``.
      u: ``[16, C_in, C_out]`` (:func:`_winograd_kernel`).
      padding: explicit ``((top, bottom), (left, right))``.

    Returns:
      ``[n, Ho, Wo, C_out]``; an odd ``Ho`` or ``Wo`` is computed on an input padded by one
      more row or column and cropped.
    """
    (pt, pb), (pl, pr) = padding
    n, h, w, c_in = x.shape
    c_out = u.shape[-1]
    ho, wo = h + pt + pb - 2, w + pl + pr - 2
    th, tw = -(-ho // 2), -(-wo // 2)  # tiles along each axis
    xp = jnp.pad(x, ((0, 0), (pt, pb + 2 * th - ho), (pl, pr + 2 * tw - wo), (0, 0)))
    v_rows = _winograd_bt(_strided_phases(xp, 1, th))  # 4 x [n, th, Wp, C_in]
    v = jnp.stack([c for r in v_rows for c in _winograd_bt(_strided_phases(r, 2, tw))])  # [16, n, th, tw, C_in]
    m = lax.dot_general(v.reshape(16, n * th * tw, c_in), u, (((2,), (1,)), ((0,), (0,))))
    m = m.reshape(4, 4, n, th, tw, c_out)
    y = [_winograd_at(list(r)) for r in _winograd_at(list(m))]  # y[a][b]: [n, th, tw, C_out]
    y = jnp.stack([jnp.stack(row, axis=3) for row in y], axis=2)  # [n, th, 2, tw, 2, C_out]
    return y.reshape(n, 2 * th, 2 * tw, c_out)[:, :ho, :wo]


def _winograd_conv(x, kernel, padding: Padding):
    """A 3x3, stride-1 convolution by Winograd F(2x2, 3x3): 2.25x fewer multiplies than
    the direct convolution, all of them in batched matmuls; the transforms are additions
    of slices, so autodiff's gradients are batched matmuls and additions too.

    The images run in blocks (``lax.map``) of about ``_WINOGRAD_BLOCK_BYTES`` of
    transformed tiles and products, so that these stay in cache between the transforms
    and the matmuls; each block is rematerialised in the backward pass rather than its
    transformed input (4x the input) stored. ``N`` is zero-padded to a whole number of
    blocks.

    Args:
      x: ``[N, H, W, C_in]``.
      kernel: ``[3, 3, C_in, C_out]``.
      padding: explicit ``((top, bottom), (left, right))``.

    Returns:
      ``[N, Ho, Wo, C_out]``.
    """
    (pt, pb), (pl, pr) = padding
    n, h, w, c_in = x.shape
    c_out = kernel.shape[-1]
    tiles = -(-(h + pt + pb - 2) // 2) * -(-(w + pl + pr - 2) // 2)
    per_image = 16 * tiles * (c_in + c_out) * x.dtype.itemsize
    blocks = -(-n // max(1, _WINOGRAD_BLOCK_BYTES // per_image))
    size = -(-n // blocks)
    u = _winograd_kernel(kernel)
    if blocks == 1:
        return _winograd_tiles(x, u, padding)
    xb = jnp.pad(x, ((0, blocks * size - n), (0, 0), (0, 0), (0, 0))).reshape(blocks, size, h, w, c_in)
    y = lax.map(jax.checkpoint(lambda b: _winograd_tiles(b, u, padding)), xb)
    return y.reshape(blocks * size, *y.shape[2:])[:n]


def _check_winograd(kernel_shape, strides: int, groups: int, in_hw, padding: Padding) -> None:
    """Raises ``ValueError`` unless :func:`_winograd_conv` applies: a 3x3 kernel, stride 1,
    groups 1, no negative padding and a non-empty output."""
    if tuple(kernel_shape[:2]) != (3, 3) or strides != 1 or groups != 1:
        raise ValueError(f"impl 'winograd' needs a 3x3 kernel, stride 1 and groups 1; got kernel "
                         f"{tuple(kernel_shape[:2])}, stride {strides}, groups {groups}")
    (pt, pb), (pl, pr) = padding
    if min(pt, pb, pl, pr) < 0:
        raise ValueError(f"impl 'winograd' needs non-negative padding, got {padding}")
    if min(in_hw[0] + pt + pb, in_hw[1] + pl + pr) < 3:
        raise ValueError(f"impl 'winograd': input {tuple(in_hw)} padded by {padding} is smaller than the 3x3 kernel")


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
    (``benchmarks/README.md``). On CPU, 3x3 kernels with at least ``_WINOGRAD_MIN_C_IN``
    input channels take ``"winograd"``; other kernels ``"patches"`` or ``"taps"`` by
    their patch width.
    """
    backend = backend or jax.default_backend()
    if backend != "cpu" or groups != 1 or strides != 1:
        return "xla"
    kh, kw, c_in, _ = kernel_shape
    if (kh, kw) == (3, 3) and c_in >= _WINOGRAD_MIN_C_IN:
        return "winograd"
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
        ``"patches"`` (XLA forward and input gradient, weight gradient as matmuls),
        ``"matmul"`` (per-tap matmuls, autodiff), ``"winograd"`` (3x3, stride 1, groups 1
        only; Winograd F(2x2, 3x3), autodiff) or ``"auto"`` (:func:`choose_impl`).

    Raises:
      ValueError: unknown ``impl``, mismatched shapes, or ``"winograd"`` for another
        kernel size, stride or grouping.
    """
    validate_impl(impl)
    if x.ndim != 4 or kernel.ndim != 4:
        raise ValueError(f"conv2d expects x [N,H,W,C] and kernel [kh,kw,C_in,C_out]; got {x.shape} and {kernel.shape}")
    if x.shape[-1] != kernel.shape[2] * groups:
        raise ValueError(f"input has {x.shape[-1]} channels but the kernel expects {kernel.shape[2] * groups}")
    pad = _normalise_padding(padding, kernel.shape[:2], strides, x.shape[1:3])
    if impl == "auto":
        impl = choose_impl(kernel.shape, strides, groups)
    if impl == "winograd":
        _check_winograd(kernel.shape, strides, groups, x.shape[1:3], pad)
        return _winograd_conv(x, kernel, pad)
    if impl == "xla" or groups != 1:
        return _xla_conv(x, kernel, strides, pad, groups)
    if impl == "matmul":
        return _matmul_conv(x, kernel, strides, pad)
    return _conv_matmul_grad(x, kernel, strides, pad, impl)
