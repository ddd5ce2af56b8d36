"""Dense (fully connected) and Flatten layers."""

from __future__ import annotations

import math

import jax

from fnnet import _checks
from fnnet.initializers import check_initializer, glorot_uniform, zeros
from fnnet.nn._layer import Layer, check_input_shape, check_params
from fnnet.typing import Initializer

__all__ = ["Dense", "Flatten"]


def Dense(
    features: int,
    *,
    w_init: Initializer = glorot_uniform(),
    b_init: Initializer = zeros(),
    use_bias: bool = True,
) -> Layer:
    """Fully connected layer: ``inputs @ w + b`` over the last axis.

    Args:
      features: size of the output's last axis; a positive int.
      w_init: initializer of ``w`` (default Glorot uniform, as Keras).
      b_init: initializer of ``b`` (default zeros).
      use_bias: whether to add ``b``.
    Returns:
      A Layer whose params are ``{"w": (in_features, features), "b": (features,)}`` and whose
      `apply` maps ``(..., in_features)`` to ``(..., features)``.
    Raises:
      ValueError: at construction for a non-positive `features`; in `apply` for inputs whose
        last axis is not ``in_features``.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> layer = Dense(10)
      >>> params, state = layer.init(jax.random.key(0), (64,))
      >>> params["w"].shape, params["b"].shape
      ((64, 10), (10,))
      >>> layer.apply(params, state, jnp.ones((32, 64)))[0].shape
      (32, 10)
    """
    _checks.positive_int("Dense", "features", features)
    check_initializer("Dense", "w_init", w_init)
    check_initializer("Dense", "b_init", b_init)

    def init(key, input_shape):
        check_input_shape("Dense", input_shape)
        if len(input_shape) == 0:
            raise ValueError("Dense: `input_shape` must have a feature axis, got ().")
        w_key, b_key = jax.random.split(key)
        w = w_init(w_key, (input_shape[-1], features))
        params = {"w": w, "b": b_init(b_key, (features,), w.dtype)} if use_bias else {"w": w}
        return params, {}

    expected = {"w": ("in", features), "b": (features,)} if use_bias else {"w": ("in", features)}

    def apply(params, state, inputs, *, key=None, train=False):
        check_params("Dense", params, expected)  # static checks: free under jit
        _checks.last_axis("Dense", inputs, params["w"].shape[0])
        outputs = inputs @ params["w"]
        return (outputs + params["b"] if use_bias else outputs), state

    return Layer(init, apply)


def Flatten() -> Layer:
    """Flattens every axis but the batch axis: ``(batch, d1, d2, ...) -> (batch, d1*d2*...)``."""

    def init(key, input_shape):
        check_input_shape("Flatten", input_shape)
        return {}, {}

    def apply(params, state, inputs, *, key=None, train=False):
        if inputs.ndim == 0:
            raise ValueError("Flatten: inputs must have a batch axis, got a scalar.")
        return inputs.reshape(inputs.shape[0], math.prod(inputs.shape[1:])), state

    return Layer(init, apply)
