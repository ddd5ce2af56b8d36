"""Inverted dropout."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fnnet import _checks
from fnnet.nn._layer import Layer, check_input_shape

__all__ = ["Dropout"]


def Dropout(drop_rate: float) -> Layer:
    """Zeroes each input with probability `drop_rate` in training and rescales the rest.

    With ``train=True`` the outputs are ``inputs * mask / (1 - drop_rate)``, ``mask`` drawn
    from Bernoulli(1 - drop_rate) with the `key` given to `apply`, so their expectation equals
    the inputs; with ``train=False`` (the default) the layer is the identity, as PyTorch's
    ``nn.Dropout`` in ``eval()`` mode.

    Args:
      drop_rate: probability of dropping an entry, in [0, 1).
    Raises:
      ValueError: at construction for `drop_rate` outside [0, 1); in `apply` for
        ``train=True`` without a `key`.
    """
    rate = _checks.unit_interval("Dropout", "drop_rate", drop_rate)

    def init(key, input_shape):
        check_input_shape("Dropout", input_shape)
        return {}, {}

    def apply(params, state, inputs, *, key=None, train=False):
        if not train or rate == 0.0:
            return inputs, state
        if key is None:
            raise ValueError(
                "Dropout: `key` is required when train=True; pass `key=jax.random.key(...)` to "
                "apply (fnnet.train derives one per step from the TrainState)."
            )
        _checks.prng_key("Dropout", key)
        keep = jax.random.bernoulli(key, 1.0 - rate, inputs.shape)
        return jnp.where(keep, inputs / (1.0 - rate), jnp.zeros_like(inputs)), state

    return Layer(init, apply)
