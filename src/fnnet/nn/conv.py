"""2-D convolution on NHWC inputs."""

from __future__ import annotations

import jax

from fnnet import _checks
from fnnet.initializers import check_initializer, glorot_uniform, zeros
from fnnet.nn._layer import Layer, check_params
from fnnet.nn._spatial import Padding, check_fits, check_image_shape, check_padding
from fnnet.typing import Initializer

__all__ = ["Conv2D"]

_NHWC = "(batch, height, width, channels)"


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
        outputs = jax.lax.conv_general_dilated(
            inputs,
            params["w"],
            window_strides=strides,
            padding=padding,
            rhs_dilation=dilation,
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return (outputs + params["b"] if use_bias else outputs), state

    return Layer(init, apply)
