"""Weight initializers: factories returning ``init(key, shape, dtype=jnp.float32) -> array``.

Fans follow PyTorch and Keras: for a Dense kernel ``(in, out)`` ``fan_in = in, fan_out = out``;
for a convolution kernel ``(kh, kw, in, out)`` both are multiplied by ``kh * kw``; for a vector
both equal its length. The normal variants draw from an untruncated normal, as PyTorch's
``xavier_normal_`` / ``kaiming_normal_``.

| factory          | distribution                    | PyTorch equivalent                      |
| ---------------- | ------------------------------- | --------------------------------------- |
| glorot_uniform   | U(±sqrt(6 / (fan_in+fan_out)))  | xavier_uniform_                         |
| glorot_normal    | N(0, 2 / (fan_in+fan_out))      | xavier_normal_                          |
| he_uniform       | U(±sqrt(6 / fan_in))            | kaiming_uniform_(nonlinearity="relu")   |
| he_normal        | N(0, 2 / fan_in)                | kaiming_normal_(nonlinearity="relu")    |
| lecun_uniform    | U(±sqrt(3 / fan_in))            | kaiming_uniform_(nonlinearity="linear") |
| lecun_normal     | N(0, 1 / fan_in)                | kaiming_normal_(nonlinearity="linear")  |
| normal(stddev)   | N(0, stddev²)                   | normal_(0, stddev)                      |
| uniform(scale)   | U(±scale)                       | uniform_(-scale, scale)                 |

Example:
  >>> import jax, fnnet
  >>> w = fnnet.initializers.glorot_uniform()(jax.random.key(0), (64, 10))
  >>> w.shape, str(w.dtype)
  ((64, 10), 'float32')
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from fnnet import _checks
from fnnet.typing import Array, DTypeLike, Initializer, PRNGKey, Shape

__all__ = [
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "normal",
    "ones",
    "uniform",
    "zeros",
]


def _fans(shape: Shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a kernel; the leading axes of a >2-D kernel are its receptive field."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _check_shape(where: str, shape: Any) -> tuple[int, ...]:
    """`shape` as a tuple of ints >= 0 (a list is accepted)."""
    if not isinstance(shape, tuple | list) or any(
        isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape
    ):
        raise ValueError(f"{where}: `shape` must be a tuple of ints >= 0, got {shape!r}.")
    return tuple(shape)


def _uniform_with(where: str, limit_of_fans) -> Initializer:
    def init(key: PRNGKey, shape: Shape, dtype: DTypeLike = jnp.float32) -> Array:
        _checks.prng_key(where, key)
        shape = _check_shape(where, shape)
        limit = limit_of_fans(*_fans(shape))
        return jax.random.uniform(key, shape, dtype, minval=-limit, maxval=limit)

    return init


def _normal_with(where: str, std_of_fans) -> Initializer:
    def init(key: PRNGKey, shape: Shape, dtype: DTypeLike = jnp.float32) -> Array:
        _checks.prng_key(where, key)
        shape = _check_shape(where, shape)
        std = std_of_fans(*_fans(shape))
        return std * jax.random.normal(key, shape, dtype)

    return init


def glorot_uniform() -> Initializer:
    """Glorot / Xavier uniform: ``U(-a, a)``, ``a = sqrt(6 / (fan_in + fan_out))``."""
    return _uniform_with(
        "glorot_uniform", lambda fan_in, fan_out: math.sqrt(6.0 / (fan_in + fan_out))
    )


def glorot_normal() -> Initializer:
    """Glorot / Xavier normal: ``N(0, std²)``, ``std = sqrt(2 / (fan_in + fan_out))``."""
    return _normal_with(
        "glorot_normal", lambda fan_in, fan_out: math.sqrt(2.0 / (fan_in + fan_out))
    )


def he_uniform() -> Initializer:
    """He / Kaiming uniform for ReLU: ``U(-a, a)``, ``a = sqrt(6 / fan_in)``."""
    return _uniform_with("he_uniform", lambda fan_in, fan_out: math.sqrt(6.0 / fan_in))


def he_normal() -> Initializer:
    """He / Kaiming normal for ReLU: ``N(0, std²)``, ``std = sqrt(2 / fan_in)``."""
    return _normal_with("he_normal", lambda fan_in, fan_out: math.sqrt(2.0 / fan_in))


def lecun_uniform() -> Initializer:
    """LeCun uniform: ``U(-a, a)``, ``a = sqrt(3 / fan_in)``."""
    return _uniform_with("lecun_uniform", lambda fan_in, fan_out: math.sqrt(3.0 / fan_in))


def lecun_normal() -> Initializer:
    """LeCun normal: ``N(0, std²)``, ``std = sqrt(1 / fan_in)``."""
    return _normal_with("lecun_normal", lambda fan_in, fan_out: math.sqrt(1.0 / fan_in))


def normal(stddev: float = 1e-2) -> Initializer:
    """``N(0, stddev²)`` whatever the shape.

    Raises:
      ValueError: if `stddev` is negative or not finite.
    """
    std = _checks.non_negative("normal", "stddev", stddev)
    return _normal_with("normal", lambda fan_in, fan_out: std)


def uniform(scale: float = 5e-2) -> Initializer:
    """``U(-scale, scale)`` whatever the shape (symmetric around 0).

    Raises:
      ValueError: if `scale` is negative or not finite.
    """
    limit = _checks.non_negative("uniform", "scale", scale)
    return _uniform_with("uniform", lambda fan_in, fan_out: limit)


def _constant(where: str, fill: float) -> Initializer:
    def init(key: PRNGKey, shape: Shape, dtype: DTypeLike = jnp.float32) -> Array:
        return jnp.full(_check_shape(where, shape), fill, dtype)

    return init


def zeros() -> Initializer:
    """All zeros; the key is ignored."""
    return _constant("zeros", 0.0)


def ones() -> Initializer:
    """All ones; the key is ignored."""
    return _constant("ones", 1.0)


def check_initializer(where: str, name: str, init: object) -> None:
    """Raises unless `init` is an initializer ``init(key, shape, dtype)``; hints at a factory
    passed without its call, e.g. ``glorot_uniform`` for ``glorot_uniform()``."""
    factories = {globals()[factory] for factory in __all__}
    if init in factories:
        raise TypeError(
            f"{where}: `{name}` got the factory `{init.__name__}`; did you write "
            f"`{init.__name__}` instead of `{init.__name__}()`?"
        )
    if not callable(init):
        raise TypeError(
            f"{where}: `{name}` must be an initializer init(key, shape, dtype), such as "
            f"`fnnet.initializers.glorot_uniform()`, got {type(init).__name__} {init!r}."
        )
