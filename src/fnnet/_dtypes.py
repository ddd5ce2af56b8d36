"""The dtype reductions accumulate in (private)."""

from __future__ import annotations

import jax.numpy as jnp

from fnnet.typing import Array


def widened(x: Array) -> Array:
    """`x` in at least float32, for sums and statistics of low-precision (bfloat16) inputs;
    float32 and float64 inputs come back as they are."""
    return x.astype(jnp.promote_types(jnp.result_type(x), jnp.float32))
