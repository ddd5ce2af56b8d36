"""Type aliases shared by fnnet's public signatures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import jax
from jax.typing import ArrayLike, DTypeLike

__all__ = ["Array", "ArrayLike", "DTypeLike", "Initializer", "PRNGKey", "Params", "Shape", "State"]

Array: TypeAlias = jax.Array
PRNGKey: TypeAlias = jax.Array  # a `jax.random.key(...)` or a raw `jax.random.PRNGKey(...)`
Shape: TypeAlias = tuple[int, ...]
Params: TypeAlias = Any  # a pytree of trainable arrays: dicts and tuples of arrays
State: TypeAlias = Any  # a pytree of non-trainable arrays (BatchNorm statistics), often `{}`
Initializer: TypeAlias = Callable[..., Array]  # init(key, shape, dtype=jnp.float32) -> array
