"""The fast convolution paths equal XLA's convolution and its autodiff (forward, input
gradient, weight gradient) at several shapes, strides and paddings."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsnn.core import conv
from gsnn import config as cfgs
from gsnn.nn import networks as M

# (N, H, W, C_in, C_out, k, stride, padding)
CASES = [
    (2, 8, 8, 4, 6, 3, 1, "SAME"),
    (3, 7, 5, 3, 5, 3, 1, "SAME"),        # odd, non-square
    (2, 9, 9, 8, 4, 3, 2, "SAME"),        # stride 2, odd size
    (2, 8, 8, 6, 3, 3, 2, ((1, 1), (1, 1))),
    (1, 6, 7, 5, 4, 1, 2, ((0, 0), (0, 0))),  # 1x1 projection, stride 2
    (2, 10, 10, 2, 3, 5, 1, "VALID"),
    (2, 6, 6, 3, 4, 2, 1, ((0, 1), (1, 0))),  # even kernel, asymmetric padding
]


def _inputs(n, h, w, c_in, c_out, k, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((n, h, w, c_in)), jnp.float32)
    kern = jnp.asarray(rng.standard_normal((k, k, c_in, c_out)), jnp.float32)
    return x, kern


@pytest.mark.parametrize("impl", ["taps", "patches", "matmul"])
@pytest.mark.parametrize("case", CASES)
def test_fast_conv_equals_xla_forward_and_gradients(impl, case):
    n, h, w, c_in, c_out, k, stride, padding = case
    x, kern = _inputs(n, h, w, c_in, c_out, k)
    ref = lambda a, b: conv.conv2d(a, b, stride, padding, impl="xla")
    fast = lambda a, b: conv.conv2d(a, b, stride, padding, impl=impl)
    y_ref, y = ref(x, kern), fast(x, kern)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    dy = jnp.asarray(np.random.default_rng(1).standard_normal(y.shape), jnp.float32)
    gx_ref, gk_ref = jax.vjp(ref, x, kern)[1](dy)
    gx, gk = jax.jit(lambda a, b, d: jax.vjp(fast, a, b)[1](d))(x, kern, dy)
    np.testing.assert_allclose(gx, gx_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gk, gk_ref, rtol=1e-4, atol=1e-4)


# (N, H, W, C_in, C_out, padding): even and odd output sizes, SAME, VALID, asymmetric
WINOGRAD_CASES = [
    (2, 8, 8, 3, 4, "SAME"),
    (2, 7, 9, 3, 5, "SAME"),
    (2, 8, 8, 16, 8, "VALID"),
    (2, 9, 6, 16, 6, "VALID"),
    (2, 5, 6, 16, 4, "SAME"),
    (2, 6, 5, 3, 2, ((2, 0), (1, 2))),
]


def _assert_close_to_scale(got, want, rtol=1e-4):
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * float(np.max(np.abs(want))))


def _check_winograd(case, seed=0):
    n, h, w, c_in, c_out, padding = case
    x, kern = _inputs(n, h, w, c_in, c_out, 3, seed)
    ref = lambda a, b: conv.conv2d(a, b, 1, padding, impl="xla")
    wino = lambda a, b: conv.conv2d(a, b, 1, padding, impl="winograd")
    y_ref = ref(x, kern)
    y = jax.jit(wino)(x, kern)
    assert y.shape == y_ref.shape
    _assert_close_to_scale(y, y_ref)
    dy = jnp.asarray(np.random.default_rng(seed + 1).standard_normal(y.shape), jnp.float32)
    gx_ref, gk_ref = jax.vjp(ref, x, kern)[1](dy)
    gx, gk = jax.jit(lambda a, b, d: jax.vjp(wino, a, b)[1](d))(x, kern, dy)
    _assert_close_to_scale(gx, gx_ref)
    _assert_close_to_scale(gk, gk_ref)


@pytest.mark.parametrize("case", WINOGRAD_CASES)
def test_winograd_equals_xla_forward_and_gradients(case):
    _check_winograd(case)


def test_winograd_in_blocks_equals_xla(monkeypatch):
    """Images in several blocks, the last one zero-padded (5 images, blocks of 2)."""
    per_image = 16 * 4 * 4 * (16 + 8) * 4  # 4x4 tiles of an 8x8 output, float32
    monkeypatch.setattr(conv, "_WINOGRAD_BLOCK_BYTES", 2 * per_image)
    _check_winograd((5, 8, 8, 16, 8, "SAME"))


@pytest.mark.parametrize("kernel_hw,stride,groups", [((5, 5), 1, 1), ((3, 3), 2, 1), ((3, 3), 1, 2), ((1, 1), 1, 1)])
def test_winograd_rejects_other_convolutions(kernel_hw, stride, groups):
    x, _ = _inputs(1, 8, 8, 4, 4, 3)
    kern = jnp.zeros(kernel_hw + (4 // groups, 4))
    with pytest.raises(ValueError, match="winograd.*3x3 kernel, stride 1 and groups 1"):
        conv.conv2d(x, kern, stride, "SAME", groups=groups, impl="winograd")


@pytest.mark.parametrize("hw,padding,needle", [((2, 2), "VALID", "smaller than the 3x3 kernel"),
                                               ((6, 6), ((-1, 1), (1, 1)), "non-negative padding")])
def test_winograd_rejects_an_input_it_cannot_tile(hw, padding, needle):
    x, kern = _inputs(1, *hw, 4, 4, 3)
    with pytest.raises(ValueError, match=needle):
        conv.conv2d(x, kern, 1, padding, impl="winograd")


def test_weight_grad_equals_a_plain_loop():
    x, kern = _inputs(2, 5, 6, 3, 2, 3)
    dy = np.random.default_rng(2).standard_normal((2, 3, 3, 2))  # stride 2, padding 1
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    expect = np.zeros((3, 3, 3, 2))
    for i in range(3):
        for j in range(3):
            for ho in range(3):
                for wo in range(3):
                    expect[i, j] += np.einsum("nc,no->co", xp[:, 2 * ho + i, 2 * wo + j], dy[:, ho, wo])
    for method in ("taps", "patches"):
        got = conv.weight_grad(x, jnp.asarray(dy, jnp.float32), (3, 3, 3, 2), 2, ((1, 1), (1, 1)), method)
        np.testing.assert_allclose(got, expect, rtol=1e-4, atol=1e-4)


def test_auto_picks_per_shape_and_backend():
    assert conv.choose_impl((3, 3, 3, 64), backend="cpu") == "patches"
    assert conv.choose_impl((3, 3, 64, 128), backend="cpu") == "winograd"
    assert conv.choose_impl((3, 3, 32, 64), backend="cpu") == "winograd"
    assert conv.choose_impl((3, 3, 16, 32), backend="cpu") == "taps"
    assert conv.choose_impl((5, 5, 64, 128), backend="cpu") == "taps"
    assert conv.choose_impl((3, 3, 64, 128), strides=2, backend="cpu") == "xla"
    assert conv.choose_impl((3, 3, 1, 64), groups=64, backend="cpu") == "xla"
    assert conv.choose_impl((3, 3, 64, 128), backend="gpu") == "xla"


def test_bad_inputs_name_the_problem():
    x, kern = _inputs(1, 4, 4, 3, 2, 3)
    with pytest.raises(ValueError, match="valid"):
        conv.conv2d(x, kern, impl="fft")
    with pytest.raises(ValueError, match="channels"):
        conv.conv2d(x[..., :2], kern)
    with pytest.raises(ValueError, match=r"\[N,H,W,C\]"):
        conv.conv2d(x[0], kern)


@pytest.mark.parametrize("encoding,genes", [("direct", 0), ("position", 6)])
def test_network_gradients_do_not_depend_on_the_conv_impl(encoding, genes):
    """convnet_s (BN, LIF, pooling; a strided-free stack) gives the same loss gradient
    with XLA's convolution, with the matmul weight gradient and with Winograd."""
    def grads(impl):
        cfg = M.ModelConfig(arch="convnet_s", width=0.25, T=2, conv_impl=impl,
                            genetic=cfgs.GeneticConfig(encoding=encoding, genes=genes)).validate()
        model = M.SpikingNetwork(cfg)
        x = jax.random.normal(jax.random.key(0), (4, 16, 16, 3))
        variables = model.init(jax.random.key(1), x, train=False)

        def loss(params):
            logits, _ = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
            return jnp.mean(jax.nn.log_softmax(logits)[:, 0])

        return jax.jit(jax.grad(loss))(variables["params"])

    g_ref = grads("xla")
    for impl in ("taps", "winograd"):
        for a, b in zip(jax.tree.leaves(g_ref), jax.tree.leaves(grads(impl))):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5, err_msg=impl)
