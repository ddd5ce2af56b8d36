"""Recurrent layers over ``(batch, time, features)``: LSTM and GRU, with PyTorch's equations."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from fnnet import _checks
from fnnet.initializers import uniform
from fnnet.nn._layer import Layer, check_input_shape, check_params

__all__ = ["GRU", "LSTM"]

_BTF = "(batch, time, features)"


def _recurrent(where: str, features: int, num_gates: int, cell: Callable, initial_carry) -> Layer:
    """A layer scanning ``cell(carry, projected_x_t, h_projection) -> (carry, h_t)`` over time.

    The input projection ``x @ w_ih + b_ih`` of every time step is computed at once before the
    scan; the cell adds the recurrent part ``h @ w_hh + b_hh``.
    """
    features = _checks.positive_int(where, "features", features)
    bound = 1.0 / math.sqrt(features)  # PyTorch: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H))
    width = num_gates * features

    def init(key, input_shape):
        check_input_shape(where, input_shape)
        if len(input_shape) != 2:
            raise ValueError(f"{where}: `input_shape` must be (time, features), got {input_shape}.")
        keys = jax.random.split(key, 4)
        draw = uniform(scale=bound)
        shapes = {
            "w_ih": (input_shape[-1], width),
            "w_hh": (features, width),
            "b_ih": (width,),
            "b_hh": (width,),
        }
        params = {
            name: draw(k, shape) for (name, shape), k in zip(shapes.items(), keys, strict=True)
        }
        return params, {}

    expected = {"w_ih": ("in", width), "w_hh": (features, width), "b_ih": (width,),
                "b_hh": (width,)}  # fmt: skip

    def apply(params, state, inputs, *, key=None, train=False):
        check_params(where, params, expected)
        _checks.rank(where, inputs, 3, _BTF)
        _checks.last_axis(where, inputs, params["w_ih"].shape[0])
        projected = inputs @ params["w_ih"] + params["b_ih"]  # (batch, time, gates * H)

        def step(carry, x_t):
            return cell(carry, x_t, carry_h(carry) @ params["w_hh"] + params["b_hh"])

        carry = initial_carry(jnp.zeros((inputs.shape[0], features), projected.dtype))
        _, outputs = jax.lax.scan(step, carry, jnp.swapaxes(projected, 0, 1))
        return jnp.swapaxes(outputs, 0, 1), state

    apply.__qualname__ = f"{where}.<locals>.apply"  # LSTM or GRU, for nn.summary
    return Layer(init, apply)


def carry_h(carry):
    """The hidden state h inside a carry: the carry itself (GRU) or its first item (LSTM)."""
    return carry[0] if isinstance(carry, tuple) else carry


def LSTM(features: int) -> Layer:
    """Long short-term memory over ``(batch, time, in)``, step for step as ``torch.nn.LSTM``.

    Gates in PyTorch's order (i, f, g, o), with ``W = x_t @ w_ih + b_ih + h_{t-1} @ w_hh + b_hh``
    split into four blocks of `features`::

        i = sigmoid(W_i)   f = sigmoid(W_f)   g = tanh(W_g)   o = sigmoid(W_o)
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)

    from ``h_0 = c_0 = 0``. ``w_ih`` is PyTorch's ``weight_ih_l0`` transposed (likewise
    ``w_hh``), so PyTorch weights load with a transpose.

    Returns:
      A Layer with params ``{"w_ih": (in, 4H), "w_hh": (H, 4H), "b_ih": (4H,), "b_hh": (4H,)}``
      (``H = features``, initialised ``U(-1/sqrt(H), 1/sqrt(H))`` as PyTorch) mapping
      ``(batch, time, in)`` to the whole output sequence ``(batch, time, H)``.
    Raises:
      ValueError: for a non-positive `features`, inputs that are not rank 3, or the wrong
        number of input features.
    """

    def cell(carry, x_t, recurrent):
        h, c = carry
        i, f, g, o = jnp.split(x_t + recurrent, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    return _recurrent("LSTM", features, 4, cell, lambda zeros: (zeros, zeros))


def GRU(features: int) -> Layer:
    """Gated recurrent unit over ``(batch, time, in)``, step for step as ``torch.nn.GRU``.

    Gates in PyTorch's order (r, z, n), with ``X = x_t @ w_ih + b_ih`` and
    ``R = h_{t-1} @ w_hh + b_hh`` each split into three blocks of `features`::

        r = sigmoid(X_r + R_r)   z = sigmoid(X_z + R_z)
        n = tanh(X_n + r * R_n)
        h_t = (1 - z) * n + z * h_{t-1}

    from ``h_0 = 0``.

    Returns:
      A Layer with params ``{"w_ih": (in, 3H), "w_hh": (H, 3H), "b_ih": (3H,), "b_hh": (3H,)}``
      mapping ``(batch, time, in)`` to ``(batch, time, H)``. Raises as `LSTM`.
    """

    def cell(h, x_t, recurrent):
        x_r, x_z, x_n = jnp.split(x_t, 3, axis=-1)
        h_r, h_z, h_n = jnp.split(recurrent, 3, axis=-1)
        r = jax.nn.sigmoid(x_r + h_r)
        z = jax.nn.sigmoid(x_z + h_z)
        n = jnp.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h
        return h, h

    return _recurrent("GRU", features, 3, cell, lambda zeros: zeros)
