"""Element-wise activation functions, stable for large |x| in value and gradient.

Each takes an array of any shape and returns an array of the same shape and dtype. `softmax` and
`log_softmax` normalise over `axis` (the last by default). Relu's gradient at 0 is 0, as in
PyTorch; `gelu` is the exact erf form by default (PyTorch's `nn.GELU()`), the tanh approximation
with `approximate=True`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fnnet import _checks
from fnnet._dtypes import widened
from fnnet.typing import Array, ArrayLike

__all__ = [
    "elu",
    "gelu",
    "leaky_relu",
    "log_softmax",
    "relu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "tanh",
]


def sigmoid(x: ArrayLike) -> Array:
    """``1 / (1 + exp(-x))``, computed without overflow."""
    return jax.nn.sigmoid(x)


def relu(x: ArrayLike) -> Array:
    """``max(x, 0)``; the gradient at 0 is 0."""
    return jax.nn.relu(x)


def tanh(x: ArrayLike) -> Array:
    """Hyperbolic tangent."""
    return jnp.tanh(x)


def leaky_relu(x: ArrayLike, negative_slope: float = 0.01) -> Array:
    """``x`` for ``x >= 0``, ``negative_slope * x`` below."""
    return jax.nn.leaky_relu(
        x, _checks.number_or_array("leaky_relu", "negative_slope", negative_slope)
    )


def elu(x: ArrayLike, alpha: float = 1.0) -> Array:
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` below (no overflow for large x)."""
    return jax.nn.elu(x, _checks.number_or_array("elu", "alpha", alpha))


def gelu(x: ArrayLike, approximate: bool = False) -> Array:
    """``x * Phi(x)`` with Phi the standard normal CDF; tanh approximation if `approximate`."""
    return jax.nn.gelu(x, approximate=approximate)


def silu(x: ArrayLike) -> Array:
    """``x * sigmoid(x)`` (also called swish)."""
    return jax.nn.silu(x)


def softplus(x: ArrayLike) -> Array:
    """``log(1 + exp(x))``, computed as ``logaddexp(x, 0)``."""
    return jax.nn.softplus(x)


def _axis(where: str, x: Array, axis: Any) -> int:
    """`axis` checked against the rank of `x` (static: free under jit)."""
    rank = jnp.ndim(x)
    if isinstance(axis, bool) or not isinstance(axis, int) or not -rank <= axis < max(rank, 1):
        raise ValueError(
            f"{where}: `axis` must be an int in [{-rank}, {rank}) for inputs of rank {rank}, "
            f"got {axis!r}."
        )
    return axis


def softmax(x: ArrayLike, axis: int = -1) -> Array:
    """``exp(x) / sum(exp(x))`` over `axis`, shifted by the maximum for stability (summed in
    float32 for bfloat16 inputs, returned in their dtype)."""
    axis = _axis("softmax", x, axis)
    return jax.nn.softmax(widened(jnp.asarray(x)), axis=axis).astype(jnp.result_type(x))


def log_softmax(x: ArrayLike, axis: int = -1) -> Array:
    """``x - logsumexp(x)`` over `axis` (summed in float32 for bfloat16 inputs, returned in
    their dtype)."""
    axis = _axis("log_softmax", x, axis)
    return jax.nn.log_softmax(widened(jnp.asarray(x)), axis=axis).astype(jnp.result_type(x))
