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
    assert conv.choose_impl((3, 3, 64, 128), backend="cpu") == "taps"
    assert conv.choose_impl((3, 3, 64, 128), strides=2, backend="cpu") == "xla"
    assert conv.choose_impl((3, 3, 1, 64), groups=64, backend="cpu") == "xla"
    assert conv.choose_impl((3, 3, 64, 128), backend="gpu") == "xla"


def test_bad_inputs_name_the_problem():
    x, kern = _inputs(1, 4, 4, 3, 2, 3)
    with pytest.raises(ValueError, match="valid"):
        conv.conv2d(x, kern, impl="winograd")
    with pytest.raises(ValueError, match="channels"):
        conv.conv2d(x[..., :2], kern)
    with pytest.raises(ValueError, match=r"\[N,H,W,C\]"):
        conv.conv2d(x[0], kern)


@pytest.mark.parametrize("encoding,genes", [("direct", 0), ("position", 6)])
def test_network_gradients_do_not_depend_on_the_conv_impl(encoding, genes):
    """convnet_s (BN, LIF, pooling; a strided-free stack) gives the same loss gradient
    with XLA's convolution and with the matmul weight gradient."""
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

    g_ref, g_fast = grads("xla"), grads("taps")
    for a, b in zip(jax.tree.leaves(g_ref), jax.tree.leaves(g_fast)):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
