"""Multi-head self-attention over ``(batch, time, features)``."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fnnet import _checks
from fnnet.nn._layer import Layer, check_input_shape, check_params
from fnnet.nn.dense import Dense
from fnnet.typing import Array

__all__ = ["MultiHeadAttention"]

_PROJECTIONS = ("query", "key", "value", "out")


_FUSED_DTYPES = (jnp.bfloat16, jnp.float16)  # what cuDNN's flash attention takes


def _dot_product_attention(query: Array, key: Array, value: Array, causal: bool) -> Array:
    """``softmax(Q K^T / sqrt(d) + mask) V`` over ``(batch, time, heads, head_dim)``: cuDNN's
    fused flash attention on a GPU for bfloat16 / float16 inputs whose shapes it takes (no
    time x time score matrix in memory), else XLA's (its scores and softmax in float32).
    `jax.nn.dot_product_attention` picks XLA's unless asked for cuDNN, and checks what cuDNN
    supports while tracing, so an unsupported case falls back here before anything runs."""
    if jax.default_backend() == "gpu" and query.dtype in _FUSED_DTYPES:
        try:
            return jax.nn.dot_product_attention(
                query, key, value, is_causal=causal, implementation="cudnn"
            )
        except (NotImplementedError, RuntimeError, ValueError):  # shape, version, no cuDNN
            pass
    return jax.nn.dot_product_attention(query, key, value, is_causal=causal)


def MultiHeadAttention(num_heads: int, features: int, *, causal: bool = False) -> Layer:
    """Scaled dot-product self-attention with `num_heads` heads (Vaswani et al., 2017).

    With ``d = features // num_heads`` and, per head, ``Q = x W_q``, ``K = x W_k``,
    ``V = x W_v`` (each a Dense with bias, split into heads)::

        head = softmax(Q K^T / sqrt(d) + mask) V
        out = concat(heads) W_o + b_o

    where ``mask`` is 0, or ``-inf`` above the diagonal with ``causal=True`` (position t sees
    positions <= t only, for language models). It runs as `jax.nn.dot_product_attention`:
    cuDNN's fused flash attention on GPUs for bfloat16 inputs (``precision="bfloat16"``)
    where the shapes allow, XLA's elsewhere.

    Args:
      num_heads: number of heads, a positive int dividing `features`.
      features: model width: the size of the projections and of the output.
      causal: mask future positions.
    Returns:
      A Layer with params ``{"query" | "key" | "value": {"w": (in, features), "b": (features,)},
      "out": {"w": (features, features), "b": (features,)}}`` mapping ``(batch, time, in)`` to
      ``(batch, time, features)``.
    Raises:
      ValueError: at construction if `features` is not divisible by `num_heads`; in `apply`
        for inputs that are not rank 3.
    """
    where = "MultiHeadAttention"
    num_heads = _checks.positive_int(where, "num_heads", num_heads)
    features = _checks.positive_int(where, "features", features)
    if features % num_heads:
        raise ValueError(
            f"{where}: `features` must be divisible by `num_heads` ({num_heads}), got "
            f"{features}; e.g. features={num_heads * max(1, round(features / num_heads))}."
        )
    head_dim = features // num_heads
    dense = Dense(features)

    def init(key, input_shape):
        check_input_shape(where, input_shape)
        if len(input_shape) != 2:
            raise ValueError(f"{where}: `input_shape` must be (time, features), got {input_shape}.")
        keys = jax.random.split(key, len(_PROJECTIONS))
        params = {
            name: dense.init(k, (features,) if name == "out" else input_shape)[0]
            for name, k in zip(_PROJECTIONS, keys, strict=True)
        }
        return params, {}

    projection = {"w": ("in", features), "b": (features,)}
    expected = {name: projection for name in _PROJECTIONS[:-1]}
    expected["out"] = {"w": (features, features), "b": (features,)}

    def apply(params, state, inputs, *, key=None, train=False):
        check_params(where, params, expected)
        _checks.rank(where, inputs, 3, "(batch, time, features)")
        batch, time = inputs.shape[:2]

        def heads(name):  # (batch, time, features) -> (batch, time, heads, head_dim)
            projected = dense.apply(params[name], {}, inputs)[0]
            return projected.reshape(batch, time, num_heads, head_dim)

        attended = _dot_product_attention(heads("query"), heads("key"), heads("value"), causal)
        merged = attended.reshape(batch, time, features)
        return dense.apply(params["out"], {}, merged)[0], state

    return Layer(init, apply)
