"""ferjax.models.conv computes exactly what XLA's convolutions and pooling compute (values and gradients)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from ferjax.errors import ConfigError
from ferjax.models import conv
from ferjax.models.baseline_cnn import BaselineCNN
from ferjax.models.emosynthnet import EmoSynthNet

DN = ("NHWC", "HWIO", "NHWC")


def _random(shape, seed):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape).astype(np.float32))


@pytest.mark.parametrize(
    "kernel, strides, padding, lhs_dilation",
    [
        ((3, 3), (1, 1), "SAME", (1, 1)),
        ((1, 1), (1, 1), "SAME", (1, 1)),
        ((5, 5), (1, 1), "VALID", (1, 1)),
        ((3, 3), (2, 2), "SAME", (1, 1)),
        ((3, 2), (2, 1), ((1, 2), (0, 1)), (1, 1)),
        ((4, 4), (1, 1), ((2, 2), (2, 2)), (2, 2)),
        ((3, 3), (1, 1), ((1, 1), (0, 2)), (2, 2)),
    ],
)
def test_im2col_matches_lax_values_and_gradients(kernel, strides, padding, lhs_dilation):
    x, w = _random((2, 7, 6, 3), 0), _random((*kernel, 3, 5), 1)

    def loss(conv_fn, x, w):
        y = conv_fn(x, w, strides, padding, lhs_dilation=lhs_dilation, dimension_numbers=DN)
        return jnp.sum(jnp.sin(y)), y

    (_, want), want_grads = jax.value_and_grad(loss, argnums=(1, 2), has_aux=True)(lax.conv_general_dilated, x, w)
    (_, got), got_grads = jax.value_and_grad(loss, argnums=(1, 2), has_aux=True)(conv.im2col_conv_general_dilated, x, w)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for g, e in zip(got_grads, want_grads):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)


def test_im2col_hands_grouped_convolutions_to_lax():
    x, w = _random((1, 5, 5, 4), 0), _random((3, 3, 2, 4), 1)
    want = lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DN, feature_group_count=2)
    got = conv.im2col_conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=DN, feature_group_count=2)
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize(
    "kernel, strides, padding",
    [((4, 4), (2, 2), "SAME"), ((3, 3), (1, 1), "SAME"), ((4, 4), (1, 1), "VALID"), ((3, 3), (2, 2), "VALID")],
)
def test_conv_transpose_im2col_matches_flax(kernel, strides, padding):
    x = _random((2, 3, 4, 6), 2)
    flax_layer = nn.ConvTranspose(5, kernel, strides, padding)
    ours = conv.ConvTranspose(5, kernel, strides, padding, impl="im2col")
    variables = flax_layer.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.key(0), x)) == jax.tree.map(jnp.shape, variables)
    np.testing.assert_allclose(ours.apply(variables, x), flax_layer.apply(variables, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [(5, 5), (6, 7)])
def test_max_pool_same_matches_reduce_window(size):
    x = _random((2, *size, 3), 3)
    want = nn.max_pool(x, (3, 3), (1, 1), padding="SAME")
    np.testing.assert_array_equal(conv.max_pool_same(x, 3, "im2col"), want)
    np.testing.assert_array_equal(conv.max_pool_same(x, 3, "xla"), want)


@pytest.mark.parametrize("size, window", [((6, 6), 2), ((7, 5), 2), ((6, 9), 3)])
def test_max_pool_matches_reduce_window_values_and_gradients(size, window):
    x = _random((2, *size, 3), 4)
    weights = _random((2, size[0] // window, size[1] // window, 3), 5)

    def weighted(impl):
        return lambda x: jnp.sum(conv.max_pool(x, window, impl) * weights)

    want = nn.max_pool(x, (window, window), (window, window))
    np.testing.assert_array_equal(conv.max_pool(x, window, "im2col"), want)
    np.testing.assert_array_equal(conv.max_pool(x, window, "xla"), want)
    np.testing.assert_array_equal(jax.grad(weighted("im2col"))(x), jax.grad(weighted("xla"))(x))


def test_max_pool_shares_a_tied_windows_gradient():
    x = jnp.zeros((1, 2, 2, 1))  # one window, four equal values
    shared, given = (jax.grad(lambda x: jnp.sum(conv.max_pool(x, 2, impl)))(x) for impl in ("im2col", "xla"))
    assert float(jnp.sum(shared)) == float(jnp.sum(given)) == 1.0
    assert int(jnp.sum(shared > 0)) == 4 and int(jnp.sum(given > 0)) == 1  # halved at each pairwise tie / all to one


def test_baseline_cnn_gradient_is_the_same_over_tied_padding():
    """A cropped image's zero border makes windows of equal activations (ties): the pooled
    gradient is split differently there, but the tied positions see the same input patch, so the
    parameters' gradient is the same as with XLA's pooling."""
    model = BaselineCNN(conv_features=(4, 8), dense_features=(8,), dropout_rates=(0.0,))
    x = jnp.pad(_random((2, 8, 8, 1), 7), ((0, 0), (4, 4), (4, 4), (0, 0)))  # 16×16, 4 px of zeros

    def grads(impl):
        with conv.forced(impl):
            variables = model.init(jax.random.key(0), x)
            loss = lambda p: jnp.sum(model.apply({**variables, "params": p}, x, train=True, mutable=["batch_stats"])[0] ** 2)
            return jax.grad(loss)(variables["params"])

    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), grads("im2col"), grads("xla"))


@pytest.mark.parametrize("impl, scatters", [("auto", False), ("xla", True)])
def test_baseline_cnn_gradient_has_no_select_and_scatter_on_cpu(impl, scatters):
    model = BaselineCNN(conv_features=(4, 8), dense_features=(8,), dropout_rates=(0.0,))
    x = _random((2, 12, 12, 1), 6)
    with conv.forced(impl):
        variables = model.init(jax.random.key(0), x)
        loss = lambda p: jnp.sum(model.apply({**variables, "params": p}, x, train=True, mutable=["batch_stats"])[0])
        hlo = jax.jit(jax.grad(loss)).lower(variables["params"]).as_text()
    assert ("select_and_scatter" in hlo) == scatters


def test_auto_routes_only_transposed_1x1_and_small_maps_to_im2col_on_cpu():
    def primitives(x_shape, w_shape, lhs_dilation=(1, 1)):
        fn = conv.conv_general_dilated("auto")
        jaxpr = jax.make_jaxpr(lambda x, w: fn(x, w, (1, 1), ((1, 1), (1, 1)), lhs_dilation=lhs_dilation, dimension_numbers=DN))
        return str(jaxpr(jnp.zeros(x_shape), jnp.zeros(w_shape)))

    assert "conv_general_dilated" in primitives((1, 48, 48, 4), (3, 3, 4, 8))
    assert "conv_general_dilated" not in primitives((1, 48, 48, 4), (1, 1, 4, 8))
    assert "conv_general_dilated" not in primitives((1, 12, 12, 4), (3, 3, 4, 8))
    assert "conv_general_dilated" not in primitives((1, 24, 24, 4), (4, 4, 4, 8), lhs_dilation=(2, 2))


def test_unknown_impl_is_a_config_error():
    with pytest.raises(ConfigError, match="conv_impl must be one of"):
        conv.Conv(4, (3, 3), impl="winograd")


@pytest.mark.parametrize("variant, size, impl", [("paper", 32, "auto"), ("author", 64, "im2col")])
def test_emosynthnet_same_function_and_parameters_for_every_impl(variant, size, impl):
    x = _random((2, size, size, 1), 4)
    reference = EmoSynthNet(variant=variant, width=0.0625, aux_classes=7, conv_impl="xla")
    model = EmoSynthNet(variant=variant, width=0.0625, aux_classes=7, conv_impl=impl)
    variables = reference.init(jax.random.key(0), x, train=False)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    assert jax.tree.map(jnp.shape, shapes) == jax.tree.map(jnp.shape, variables)  # same tree: same checkpoints
    np.testing.assert_allclose(model.apply(variables, x), reference.apply(variables, x), rtol=1e-4, atol=1e-5)


class _OneByOne(nn.Module):
    @nn.compact
    def __call__(self, x):
        return conv.Conv(8, (1, 1))(x)  # built while traced, as every ferjax model builds its layers


def test_forced_impl_overrides_every_layer_inside_the_block():
    x = jnp.zeros((1, 8, 8, 4))
    model = _OneByOne()
    variables = model.init(jax.random.key(0), x)
    assert "conv_general_dilated" not in str(jax.make_jaxpr(model.apply)(variables, x))  # auto: a matmul
    with conv.forced("xla"):
        assert "conv_general_dilated" in str(jax.make_jaxpr(model.apply)(variables, x))
    assert "conv_general_dilated" not in str(jax.make_jaxpr(model.apply)(variables, x))
