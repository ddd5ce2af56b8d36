import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import nn

import references as ref
from gradcheck import check_reverse_grads

CONV_CASES = [
    # (kwargs, input spatial shape)
    ({"kernel_size": 3}, (5, 6)),  # SAME
    ({"kernel_size": (3, 2), "padding": "VALID"}, (5, 6)),
    ({"kernel_size": 3, "strides": 2}, (7, 6)),  # SAME with stride: asymmetric padding
    ({"kernel_size": 3, "padding": 1, "strides": (2, 1)}, (5, 5)),
    ({"kernel_size": 2, "padding": (0, 2), "dilation": 2}, (6, 5)),
    ({"kernel_size": 3, "dilation": (2, 1), "padding": "SAME"}, (7, 7)),
]


def conv_padding(kwargs, spatial):
    """The explicit (low, high) padding pairs the reference uses for each case."""
    kernel = kwargs["kernel_size"]
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    strides = kwargs.get("strides", 1)
    strides = (strides, strides) if isinstance(strides, int) else strides
    dilation = kwargs.get("dilation", 1)
    dilation = (dilation, dilation) if isinstance(dilation, int) else dilation
    padding = kwargs.get("padding", "SAME")
    if padding == "VALID":
        return ((0, 0), (0, 0)), strides, dilation
    if padding == "SAME":
        extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
        return (
            tuple(
                ref.same_padding(s, e, st)
                for s, e, st in zip(spatial, extent, strides, strict=True)
            ),
            strides,
            dilation,
        )
    pair = (padding, padding) if isinstance(padding, int) else padding
    return ((pair[0], pair[0]), (pair[1], pair[1])), strides, dilation


@pytest.mark.parametrize(("kwargs", "spatial"), CONV_CASES)
def test_conv2d_matches_explicit_loops(kwargs, spatial, key):
    layer = nn.Conv2D(4, **kwargs)
    params, state = layer.init(key, (*spatial, 3))
    params["b"] = jnp.arange(4.0) / 10
    x = jax.random.normal(jax.random.key(1), (2, *spatial, 3))
    padding, strides, dilation = conv_padding(kwargs, spatial)
    expected = ref.conv2d(
        x, np.asarray(params["w"], np.float64), np.asarray(params["b"]), strides, padding, dilation
    )
    got, _ = jax.jit(lambda p, x: layer.apply(p, state, x))(params, x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_conv2d_params_and_gradients(key):
    layer = nn.Conv2D(3, 2, strides=2, padding=1)
    params, state = layer.init(key, (4, 4, 2))
    chex.assert_shape([params["w"], params["b"]], [(2, 2, 2, 3), (3,)])
    assert "b" not in nn.Conv2D(3, 2, use_bias=False).init(key, (4, 4, 2))[0]
    x = jax.random.normal(key, (2, 4, 4, 2))
    check_reverse_grads(lambda p: jnp.sum(jnp.sin(layer.apply(p, state, x)[0])), params)
    check_reverse_grads(lambda x: jnp.sum(jnp.sin(layer.apply(params, state, x)[0])), x)


POOL_CASES = [
    ({"window": 2}, (4, 6)),
    ({"window": (3, 2), "strides": 1}, (5, 4)),
    ({"window": 3, "strides": 2, "padding": 1}, (6, 5)),
    ({"window": 2, "padding": "SAME"}, (5, 5)),
]


def pool_setup(kwargs, spatial):
    window = kwargs["window"]
    window = (window, window) if isinstance(window, int) else window
    strides = kwargs.get("strides", window)
    strides = (strides, strides) if isinstance(strides, int) else strides
    padding = kwargs.get("padding", "VALID")
    if padding == "VALID":
        pads = ((0, 0), (0, 0))
    elif padding == "SAME":
        pads = tuple(
            ref.same_padding(s, w, st) for s, w, st in zip(spatial, window, strides, strict=True)
        )
    else:
        pads = ((padding, padding), (padding, padding))
    return window, strides, pads


@pytest.mark.parametrize(("kwargs", "spatial"), POOL_CASES)
def test_pooling_matches_explicit_loops(kwargs, spatial, key):
    x = jax.random.normal(key, (2, *spatial, 3))
    window, strides, pads = pool_setup(kwargs, spatial)
    max_layer = nn.MaxPool2D(**kwargs)
    max_layer.init(key, (*spatial, 3))
    np.testing.assert_allclose(
        max_layer.apply({}, {}, x)[0],
        ref.pool2d(x, window, strides, pads, lambda p: p.max(axis=(1, 2)), -np.inf),
        rtol=1e-6,
    )
    avg = nn.AvgPool2D(**kwargs)
    np.testing.assert_allclose(
        avg.apply({}, {}, x)[0],
        ref.pool2d(x, window, strides, pads, lambda p: p.mean(axis=(1, 2)), 0.0),
        rtol=1e-5,
        atol=1e-6,
    )
    # Without counting the padding: divide by the number of real inputs in each window.
    ones = np.ones((1, *spatial, 1))
    counts = ref.pool2d(ones, window, strides, pads, lambda p: p.sum(axis=(1, 2)), 0.0)
    sums = ref.pool2d(x, window, strides, pads, lambda p: p.sum(axis=(1, 2)), 0.0)
    np.testing.assert_allclose(
        nn.AvgPool2D(**kwargs, count_include_pad=False).apply({}, {}, x)[0],
        sums / counts,
        rtol=1e-5,
        atol=1e-6,
    )


def test_global_average_pool_and_pool_gradients(key):
    x = jax.random.normal(key, (2, 3, 4, 5))
    np.testing.assert_allclose(
        nn.GlobalAvgPool2D().apply({}, {}, x)[0], np.asarray(x).mean(axis=(1, 2)), rtol=1e-6
    )
    for layer in (nn.MaxPool2D(2), nn.AvgPool2D(2, strides=1, padding=1), nn.GlobalAvgPool2D()):
        check_reverse_grads(lambda x, layer=layer: jnp.sum(layer.apply({}, {}, x)[0] ** 2), x)


def test_small_cnn_shapes_and_grads(key):
    model = nn.serial(
        nn.Conv2D(8, 3),
        nn.BatchNorm(),
        nn.Relu(),
        nn.MaxPool2D(2),
        nn.Conv2D(16, 3, padding="VALID"),
        nn.Relu(),
        nn.GlobalAvgPool2D(),
        nn.Dense(10),
    )
    params, state = model.init(key, (8, 8, 1))
    outputs, new_state = model.apply(params, state, jnp.ones((5, 8, 8, 1)), train=True)
    chex.assert_shape(outputs, (5, 10))
    chex.assert_trees_all_equal_structs(new_state, state)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: nn.Conv2D(0, 3), "Conv2D: `features` must be a positive int, got 0"),
        (
            lambda: nn.Conv2D(4, (3, 0)),
            r"Conv2D: `kernel_size` must be a positive int or a pair of them, got \(3, 0\)",
        ),
        (
            lambda: nn.Conv2D(4, 3, padding="FULL"),
            "Conv2D: `padding` must be 'SAME', 'VALID', an int >= 0 or a pair of them, got 'FULL'",
        ),
        (
            lambda: nn.Conv2D(4, 3, padding=-1),
            "`padding` must be 'SAME', 'VALID', an int >= 0 or a pair",
        ),
        (
            lambda: nn.Conv2D(4, 3).init(jax.random.key(0), (8, 8)),
            r"`input_shape` must be \(height, width, channels\), got \(8, 8\)",
        ),
        (
            lambda: nn.Conv2D(4, 5, padding="VALID").init(jax.random.key(0), (4, 4, 1)),
            r"Conv2D: the kernel \(5, 5\) is larger than the padded input \(4, 4\)",
        ),
        (
            lambda: nn.Conv2D(4, 3, dilation=3, padding="VALID").init(jax.random.key(0), (6, 6, 1)),
            r"the kernel \(7, 7\) is larger",
        ),
        (
            lambda: nn.Conv2D(4, 3).apply(
                nn.Conv2D(4, 3).init(jax.random.key(0), (8, 8, 1))[0], {}, jnp.ones((8, 8, 1))
            ),
            r"Conv2D: inputs must have rank 4 \(batch, height, width, channels\), got shape \(8, 8, 1\) of rank 3",
        ),
        (
            lambda: nn.Conv2D(4, 3).apply(
                nn.Conv2D(4, 3).init(jax.random.key(0), (8, 8, 1))[0], {}, jnp.ones((2, 8, 8, 3))
            ),
            r"Conv2D: inputs must have last axis 1, got shape \(2, 8, 8, 3\)",
        ),
        (
            lambda: nn.MaxPool2D(3).apply({}, {}, jnp.ones((1, 2, 8, 1))),
            r"MaxPool2D: the window \(3, 3\) is larger than the padded input \(2, 8\)",
        ),
        (
            lambda: nn.AvgPool2D(2).apply({}, {}, jnp.ones((8, 8))),
            "AvgPool2D: inputs must have rank 4",
        ),
        (
            lambda: nn.GlobalAvgPool2D().apply({}, {}, jnp.ones((2, 8))),
            "GlobalAvgPool2D: inputs must have rank 4",
        ),
        (lambda: nn.MaxPool2D(2, strides=0), "MaxPool2D: `strides` must be a positive int"),
        (
            lambda: nn.MaxPool2D(2, strides=1, padding=2),
            r"MaxPool2D: `padding` must be at most half the window \(2, 2\) on each axis \(as PyTorch\), got \[2, 2\]",
        ),
        (
            lambda: nn.AvgPool2D(3, padding=(1, 2)),
            r"AvgPool2D: `padding` must be at most half the window",
        ),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "kernel, strides, padding, dilation, channels",
    [((3, 3), (1, 1), "SAME", (1, 1), 3), ((3, 3), (2, 2), "SAME", (1, 1), 2),
     ((2, 3), (1, 2), "VALID", (2, 1), 4), ((3, 3), (2, 1), ((1, 1), (2, 2)), (1, 2), 1),
     ((1, 1), (1, 1), "VALID", (1, 1), 5), ((5, 5), (3, 3), "SAME", (1, 1), 2)],
)  # fmt: skip
def test_conv_by_patches_equals_xla_convolution_with_gradients(
    kernel, strides, padding, dilation, channels
):
    """The CPU formulation of Conv2D (patches and one matmul) against XLA's convolution, in
    value and in both gradients."""
    from fnnet.nn.conv import _by_patches, _by_xla

    x = jax.random.normal(jax.random.key(0), (2, 9, 11, channels))
    w = jax.random.normal(jax.random.key(1), (*kernel, channels, 6))
    args = (strides, padding, dilation)
    expected, got = _by_xla(x, w, *args), _by_patches(x, w, *args)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    cotangent = jax.random.normal(jax.random.key(2), expected.shape)
    grads = [jax.grad(lambda x, w, f=f: jnp.sum(f(x, w, *args) * cotangent), (0, 1))(x, w)
             for f in (_by_xla, _by_patches)]  # fmt: skip
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("window, shape", [((2, 2), (2, 8, 8, 3)), ((2, 3), (2, 7, 9, 2)),
                                           ((3, 3), (1, 6, 7, 1))])  # fmt: skip
def test_tiled_max_pool_equals_reduce_window_with_ties_and_nan(window, shape):
    """The CPU formulation of MaxPool2D for non-overlapping windows: the same values and the
    same gradient (to the first maximum of a window, in row-major order), ties and NaN
    included."""
    from fnnet.nn.pooling import _max_of_tiles

    x = jnp.round(2 * jax.random.normal(jax.random.key(0), shape)) / 2  # many ties
    x = x.at[0, 0, 0, 0].set(jnp.nan)

    def reference(x):
        dims = (1, *window, 1)
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, dims, dims, "VALID")

    np.testing.assert_array_equal(_max_of_tiles(x, window), reference(x))
    cotangent = jax.random.normal(jax.random.key(1), reference(x).shape)
    finite = jnp.nan_to_num(x, nan=-3.0)  # gradients with ties (NaN's gradient aside)
    grads = [jax.grad(lambda x, f=f: jnp.sum(f(x) * cotangent))(finite)
             for f in (reference, lambda x: _max_of_tiles(x, window))]  # fmt: skip
    np.testing.assert_array_equal(grads[1], grads[0])
