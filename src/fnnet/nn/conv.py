"""2-D convolution on NHWC inputs."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fnnet import _checks
from fnnet.initializers import check_initializer, glorot_uniform, zeros
from fnnet.nn._layer import Layer, check_params
from fnnet.nn._spatial import Padding, check_fits, check_image_shape, check_padding
from fnnet.typing import Array, Initializer

__all__ = ["Conv2D"]

_NHWC = "(batch, height, width, channels)"


def _by_xla(inputs: Array, w: Array, strides, padding, dilation) -> Array:
    return jax.lax.conv_general_dilated(
        inputs, w, window_strides=strides, padding=padding, rhs_dilation=dilation,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )  # fmt: skip


def _by_patches(inputs: Array, w: Array, strides, padding, dilation) -> Array:
    """The same convolution as one matmul of the input's patches (im2col) with the kernel.

    The ``kh * kw`` shifted (strided, dilated) views of the padded input are concatenated on
    the channel axis, ``(batch, h', w', kh * kw * in)`` in the kernel's ``(u, v, c)`` order,
    and multiplied by the kernel as a ``(kh * kw * in, out)`` matrix. Its gradients are
    matmuls too (the weight gradient ``patches^T dy``) plus slices and pads. XLA:CPU runs
    this 1.2x faster than its convolution for one step and 60x faster inside `lax.scan`
    (benchmarks/bench_peers.py), so Conv2D uses it on CPU.
    """
    (kh, kw, channels, features), (batch, height, width, _) = w.shape, inputs.shape
    extent = ((kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1)
    pads = (jax.lax.padtype_to_pads((height, width), extent, strides, padding)
            if isinstance(padding, str) else padding)  # fmt: skip
    padded = jnp.pad(inputs, ((0, 0), tuple(pads[0]), tuple(pads[1]), (0, 0)))
    out_h = (padded.shape[1] - extent[0]) // strides[0] + 1
    out_w = (padded.shape[2] - extent[1]) // strides[1] + 1
    views = [
        jax.lax.slice(
            padded,
            (0, u * dilation[0], v * dilation[1], 0),
            (batch, u * dilation[0] + (out_h - 1) * strides[0] + 1,
             v * dilation[1] + (out_w - 1) * strides[1] + 1, channels),
            (1, *strides, 1),
        )
        for u in range(kh)
        for v in range(kw)
    ]  # fmt: skip
    patches = jnp.concatenate(views, axis=-1) if len(views) > 1 else views[0]
    outputs = patches.reshape(-1, kh * kw * channels) @ w.reshape(kh * kw * channels, features)
    return outputs.reshape(batch, out_h, out_w, features)


def Conv2D(
    features: int,
    kernel_size: int | tuple[int, int],
    *,
    strides: int | tuple[int, int] = 1,
    padding: Padding = "SAME",
    dilation: int | tuple[int, int] = 1,
    use_bias: bool = True,
    w_init: Initializer = glorot_uniform(),
    b_init: Initializer = zeros(),
) -> Layer:
    """2-D convolution (cross-correlation, as every framework) over NHWC inputs.

    ``out[n, i, j, o] = b[o] + sum_{u, v, c} x[n, s_h i + d_h u, s_w j + d_w v, c] w[u, v, c, o]``
    on the padded input, with strides ``s`` and dilation ``d``.

    Args:
      features: output channels, a positive int.
      kernel_size: ``(kh, kw)`` or an int for both.
      strides: ``(s_h, s_w)`` or an int.
      padding: "SAME" (output size ``ceil(size / stride)``), "VALID" (no padding), or an int /
        pair of zero-padding amounts on each side, as PyTorch's ``padding=``.
      dilation: spacing between kernel taps, ``(d_h, d_w)`` or an int.
      use_bias: add ``b``. Pass False when BatchNorm follows: it subtracts the batch mean, so
        a bias right before it cancels out (its gradient is exactly zero) and only its
        rounding noise is left for the optimizer, as PyTorch's documentation advises.
      w_init, b_init: initializers (default Glorot uniform with fans ``kh * kw * in`` and
        ``kh * kw * out``, and zeros).
    Returns:
      A Layer with params ``{"w": (kh, kw, in, features), "b": (features,)}`` mapping
      ``(batch, height, width, in)`` to ``(batch, height', width', features)``.
    Raises:
      ValueError: for bad arguments at construction; at init or apply for inputs that are not
        rank 4, the wrong number of channels, or a kernel larger than a VALID input.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> conv = Conv2D(16, 3, strides=2)
      >>> params, state = conv.init(jax.random.key(0), (28, 28, 1))
      >>> params["w"].shape, conv.apply(params, state, jnp.ones((4, 28, 28, 1)))[0].shape
      ((3, 3, 1, 16), (4, 14, 14, 16))
    """
    where = "Conv2D"
    _checks.positive_int(where, "features", features)
    kernel = _checks.int_pair(where, "kernel_size", kernel_size)
    strides = _checks.int_pair(where, "strides", strides)
    dilation = _checks.int_pair(where, "dilation", dilation)
    padding = check_padding(where, padding)
    check_initializer(where, "w_init", w_init)
    check_initializer(where, "b_init", b_init)
    extent = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))

    def init(key, input_shape):
        check_image_shape(where, input_shape)
        check_fits(where, "kernel", input_shape[:2], extent, padding)
        w_key, b_key = jax.random.split(key)
        w = w_init(w_key, (*kernel, input_shape[-1], features))
        params = {"w": w, "b": b_init(b_key, (features,), w.dtype)} if use_bias else {"w": w}
        return params, {}

    expected = {"w": (*kernel, "in", features), "b": (features,)}
    if not use_bias:
        del expected["b"]

    def apply(params, state, inputs, *, key=None, train=False):
        check_params(where, params, expected)
        _checks.rank(where, inputs, 4, _NHWC)
        _checks.last_axis(where, inputs, params["w"].shape[2])  # input channels
        check_fits(where, "kernel", inputs.shape[1:3], extent, padding)
        convolve = _by_patches if jax.default_backend() == "cpu" else _by_xla
        outputs = convolve(inputs, params["w"], strides, padding, dilation)
        return (outputs + params["b"] if use_bias else outputs), state

    return Layer(init, apply)
