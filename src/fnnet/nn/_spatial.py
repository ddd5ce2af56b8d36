"""Padding and output-size arithmetic shared by convolution and pooling (private)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fnnet.nn._layer import check_input_shape

Padding = str | int | tuple[int, int]


def check_padding(where: str, padding: Any) -> str | tuple[tuple[int, int], tuple[int, int]]:
    """``"SAME"``, ``"VALID"``, or an int / (h, w) pair of symmetric zero-padding amounts."""
    if isinstance(padding, str) and padding.upper() in ("SAME", "VALID"):
        return padding.upper()
    pair = (padding, padding) if isinstance(padding, int | np.integer) else padding
    if (
        isinstance(padding, bool | str)
        or not isinstance(pair, tuple | list)
        or len(pair) != 2
        or any(not isinstance(p, int | np.integer) or p < 0 for p in pair)
    ):
        raise ValueError(
            f"{where}: `padding` must be 'SAME', 'VALID', an int >= 0 or a pair of them, got "
            f"{padding!r}."
        )
    return ((int(pair[0]),) * 2, (int(pair[1]),) * 2)


def check_image_shape(where: str, input_shape: Any) -> None:
    """Raises unless `input_shape` is ``(height, width, channels)``."""
    check_input_shape(where, input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"{where}: `input_shape` must be (height, width, channels), got {input_shape}."
        )


def check_fits(
    where: str, what: str, spatial: tuple[int, int], window: tuple[int, int], padding
) -> None:
    """Raises when the (dilated) window is larger than the (padded) input: no output."""
    if padding == "SAME":
        return
    for axis, (size, extent) in enumerate(zip(spatial, window, strict=True)):
        low, high = (0, 0) if padding == "VALID" else padding[axis]
        if extent > size + low + high:
            raise ValueError(
                f"{where}: the {what} {window} is larger than the padded input "
                f"{tuple(spatial)} with padding {padding!r}; use padding='SAME', a smaller "
                f"{what} or a larger input."
            )
