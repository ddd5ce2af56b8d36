"""`repeat`: n copies of a shape-preserving layer, stacked and applied with `lax.scan`."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fnnet import _checks
from fnnet.nn._layer import (
    Layer,
    apply_keys,
    batch_of_one,
    check_input_shape,
    check_layer,
    is_shape,
    output_specs,
)

__all__ = ["repeat"]


def repeat(layer: Layer, n: int) -> Layer:
    """`n` copies of `layer`, each with its own params, applied one after another.

    The copies' params (and layer state) are stacked on a leading axis of `n` and applied with
    `jax.lax.scan`, so the program holds one copy of the layer whatever `n` is: a stack of 32
    transformer blocks compiles about as fast as one of 2. Initialised with the same key, the
    params are those of ``serial(*[layer] * n)`` stacked (copy i from the i-th split of the
    key), and the outputs equal that serial's, dropout included (copy i draws from the i-th
    split of the apply key).

    Args:
      layer: a layer whose outputs have the shape and dtype of its inputs (a residual block,
        ``residual(serial(LayerNorm(), MultiHeadAttention(4, 64)))``, ...).
      n: the number of copies, a positive int.
    Returns:
      A Layer whose params and state are the layer's with a leading axis of `n`.
    Raises:
      TypeError: if `layer` is not a Layer or `n` not an int.
      ValueError: for ``n <= 0``, and at init for a layer that changes its input's shape or
        dtype (the message names both).

    Example:
      >>> import jax
      >>> from fnnet import nn
      >>> block = nn.residual(nn.serial(nn.Dense(16), nn.Tanh()))
      >>> params, state = nn.repeat(block, 8).init(jax.random.key(0), (16,))
      >>> params[0]["w"].shape
      (8, 16, 16)
    """
    check_layer("repeat", 1, layer)
    n = _checks.positive_int("repeat", "n", n)

    def init(key, input_shape):
        _checks.prng_key("repeat", key)
        check_input_shape("repeat", input_shape)
        if not is_shape(input_shape):
            raise TypeError(f"repeat: `input_shape` must be one shape, got {input_shape!r}.")
        params, state = jax.vmap(lambda k: layer.init(k, input_shape))(jax.random.split(key, n))
        first = jax.tree.map(lambda leaf: leaf[0], (params, state))
        spec = batch_of_one(input_shape, jnp.float32)
        out = output_specs(layer, *first, spec)
        if getattr(out, "shape", None) != spec.shape or out.dtype != spec.dtype:
            raise ValueError(
                f"repeat: `layer` must keep its input's shape and dtype, but maps {spec.shape} "
                f"{spec.dtype} to {_checks.shape_str(out)} (batch of 1 shown); repeat the "
                "shape-preserving part and put the rest around it with `serial`."
            )
        return params, state

    def apply(params, state, inputs, *, key=None, train=False):
        keys = apply_keys(key, n)

        def body(x, copy):
            copy_params, copy_state, copy_key = copy
            return layer.apply(copy_params, copy_state, x, key=copy_key, train=train)

        stacked_keys = None if key is None else jnp.stack(keys)
        return jax.lax.scan(body, inputs, (params, state, stacked_keys))

    return Layer(init, apply)
