"""Pooling over the spatial axes of NHWC inputs: max, average and global average."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fnnet import _checks
from fnnet.nn._layer import Layer
from fnnet.nn._spatial import Padding, check_fits, check_image_shape, check_padding

__all__ = ["AvgPool2D", "GlobalAvgPool2D", "MaxPool2D"]

_NHWC = "(batch, height, width, channels)"


def _pool(where: str, window, strides, padding, reduce) -> Layer:
    """A pooling layer: ``reduce(inputs, window_dims, strides, padding)`` on rank-4 inputs."""
    window = _checks.int_pair(where, "window", window)
    strides = window if strides is None else _checks.int_pair(where, "strides", strides)
    padding = check_padding(where, padding)
    if not isinstance(padding, str) and any(
        pad > size // 2 for (pad, _), size in zip(padding, window, strict=True)
    ):
        raise ValueError(
            f"{where}: `padding` must be at most half the window {window} on each axis (as "
            f"PyTorch), got {[pad for pad, _ in padding]}; otherwise some windows hold only "
            "padding."
        )
    dims, steps = (1, *window, 1), (1, *strides, 1)
    pads = padding if isinstance(padding, str) else ((0, 0), *padding, (0, 0))

    def init(key, input_shape):
        check_image_shape(where, input_shape)
        check_fits(where, "window", input_shape[:2], window, padding)
        return {}, {}

    def apply(params, state, inputs, *, key=None, train=False):
        _checks.rank(where, inputs, 4, _NHWC)
        check_fits(where, "window", inputs.shape[1:3], window, padding)
        return reduce(inputs, dims, steps, pads), state

    return Layer(init, apply)


def MaxPool2D(
    window: int | tuple[int, int],
    *,
    strides: int | tuple[int, int] | None = None,
    padding: Padding = "VALID",
) -> Layer:
    """Maximum over each ``window`` of the spatial axes (padding never wins the maximum).

    Args:
      window: ``(h, w)`` or an int.
      strides: defaults to the window (non-overlapping), as PyTorch and Keras.
      padding: "VALID" (default), "SAME", or an int / pair of amounts per side.
    Returns:
      A parameter-free Layer ``(batch, H, W, C) -> (batch, H', W', C)``.
    Raises:
      ValueError: for rank != 4 inputs or a window larger than a VALID input.
    """

    def reduce(inputs, dims, steps, pads):
        tiled = pads == "VALID" and dims == steps  # non-overlapping windows, no padding
        if tiled and jax.default_backend() == "cpu":
            return _max_of_tiles(inputs, dims[1:3])
        return jax.lax.reduce_window(inputs, -jnp.inf, jax.lax.max, dims, steps, pads)

    return _pool("MaxPool2D", window, strides, padding, reduce)


def _max_of_tiles(inputs, window: tuple[int, int]):
    """`reduce_window` max over non-overlapping windows (rows and columns past the last full
    window dropped, as VALID), by a reshape: same values, and the same gradient, which goes
    to the first maximum of each window in row-major order (as XLA's and PyTorch's). Its
    backward pass avoids XLA:CPU's `select_and_scatter`, which is slow inside `lax.scan`."""
    (wh, ww), (batch, height, width, channels) = window, inputs.shape
    out_h, out_w = height // wh, width // ww
    tiles = inputs[:, : out_h * wh, : out_w * ww].reshape(batch, out_h, wh, out_w, ww, channels)
    tiles = jnp.swapaxes(tiles, 2, 3).reshape(batch, out_h, out_w, wh * ww, channels)
    maximum = jnp.max(tiles, axis=3)
    hit = jax.lax.stop_gradient(tiles == maximum[:, :, :, None])
    first = hit & (jnp.cumsum(hit, axis=3) == 1)
    picked = jnp.sum(jnp.where(first, tiles, 0), axis=3)  # carries the gradient
    # the value is the maximum (NaN-propagating); the gradient that of `picked`
    return jax.lax.stop_gradient(maximum) + (picked - jax.lax.stop_gradient(picked))


def AvgPool2D(
    window: int | tuple[int, int],
    *,
    strides: int | tuple[int, int] | None = None,
    padding: Padding = "VALID",
    count_include_pad: bool = True,
) -> Layer:
    """Mean over each ``window`` of the spatial axes.

    With padding, ``count_include_pad=True`` (PyTorch's default) divides by the full window
    size, counting padded zeros; False divides by the number of real inputs in the window
    (TensorFlow's "SAME" behaviour). Other arguments as `MaxPool2D`.
    """

    def reduce(inputs, dims, steps, pads):
        sums = jax.lax.reduce_window(inputs, 0.0, jax.lax.add, dims, steps, pads)
        if count_include_pad:
            return sums / (dims[1] * dims[2])
        ones = jnp.ones((1, *inputs.shape[1:3], 1), inputs.dtype)
        counts = jax.lax.reduce_window(ones, 0.0, jax.lax.add, dims, steps, pads)
        return sums / counts

    return _pool("AvgPool2D", window, strides, padding, reduce)


def GlobalAvgPool2D() -> Layer:
    """Mean over height and width: ``(batch, H, W, C) -> (batch, C)``."""

    def init(key, input_shape):
        check_image_shape("GlobalAvgPool2D", input_shape)
        return {}, {}

    def apply(params, state, inputs, *, key=None, train=False):
        _checks.rank("GlobalAvgPool2D", inputs, 4, _NHWC)
        return jnp.mean(inputs, axis=(1, 2)), state

    return Layer(init, apply)
