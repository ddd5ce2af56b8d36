"""Small synthetic datasets drawn from a key: classification, regression, robot kinematics."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from fnnet import _checks
from fnnet.typing import Array, PRNGKey

__all__ = ["make_moons", "make_robot_arm", "make_sine", "make_spirals"]


def make_moons(n_samples: int, *, key: PRNGKey, noise: float = 0.1) -> tuple[Array, Array]:
    """Two interleaving half circles (scikit-learn's ``make_moons``), a binary task.

    Returns:
      ``(x, y)``: x ``(n_samples, 2)`` float32, y ``(n_samples,)`` int32 in {0, 1}, classes
      alternating so both have ``n_samples // 2`` or one more.
    """
    n = _checks.positive_int("make_moons", "n_samples", n_samples)
    noise = _checks.non_negative("make_moons", "noise", noise)
    _checks.prng_key("make_moons", key)
    angle_key, noise_key = jax.random.split(key)
    y = jnp.arange(n) % 2
    t = jax.random.uniform(angle_key, (n,), maxval=jnp.pi)
    upper = jnp.stack([jnp.cos(t), jnp.sin(t)], axis=1)
    lower = jnp.stack([1 - jnp.cos(t), 0.5 - jnp.sin(t)], axis=1)
    x = jnp.where(y[:, None] == 0, upper, lower)
    return x + noise * jax.random.normal(noise_key, x.shape), y.astype(jnp.int32)


def make_spirals(
    n_samples: int, *, key: PRNGKey, num_classes: int = 3, noise: float = 0.2
) -> tuple[Array, Array]:
    """Interleaved spiral arms in the plane, one per class (cs231n's spiral data).

    Returns:
      ``(x, y)``: x ``(n_samples, 2)`` float32 within about [-1, 1], y ``(n_samples,)`` int32.
    """
    n = _checks.positive_int("make_spirals", "n_samples", n_samples)
    k = _checks.positive_int("make_spirals", "num_classes", num_classes)
    noise = _checks.non_negative("make_spirals", "noise", noise)
    _checks.prng_key("make_spirals", key)
    radius_key, noise_key = jax.random.split(key)
    y = jnp.arange(n) % k
    r = jax.random.uniform(radius_key, (n,))
    theta = 4.0 * r + 2 * jnp.pi * y / k + noise * jax.random.normal(noise_key, (n,))
    x = jnp.stack([r * jnp.sin(theta), r * jnp.cos(theta)], axis=1)
    return x, y.astype(jnp.int32)


def make_sine(n_samples: int, *, key: PRNGKey, noise: float = 0.1) -> tuple[Array, Array]:
    """Noisy 1-D regression: ``y = sin(x) + 0.1 x² + noise``, ``x`` uniform in [-3, 3].

    Returns:
      ``(x, y)``: both ``(n_samples, 1)`` float32.
    """
    n = _checks.positive_int("make_sine", "n_samples", n_samples)
    noise = _checks.non_negative("make_sine", "noise", noise)
    _checks.prng_key("make_sine", key)
    x_key, noise_key = jax.random.split(key)
    x = jax.random.uniform(x_key, (n, 1), minval=-3.0, maxval=3.0)
    return x, jnp.sin(x) + 0.1 * x**2 + noise * jax.random.normal(noise_key, (n, 1))


def make_robot_arm(
    n_samples: int,
    *,
    key: PRNGKey,
    link_lengths: Sequence[float] = (1.0, 0.8, 0.6),
    noise: float = 0.0,
) -> tuple[Array, Array]:
    """Forward kinematics of a planar arm: joint angles -> end-effector position.

    With joint angles ``q_1 .. q_k`` drawn uniformly in [-pi/2, pi/2] and link lengths
    ``l_i``, the hand is at ``x = sum_i l_i cos(q_1 + ... + q_i)``,
    ``y = sum_i l_i sin(q_1 + ... + q_i)``; `noise` adds Gaussian sensor noise to it.

    Returns:
      ``(angles, positions)``: ``(n_samples, k)`` radians and ``(n_samples, 2)`` float32.
    """
    n = _checks.positive_int("make_robot_arm", "n_samples", n_samples)
    noise = _checks.non_negative("make_robot_arm", "noise", noise)
    lengths = jnp.asarray(link_lengths, jnp.float32)
    if lengths.ndim != 1 or lengths.size == 0 or not bool(jnp.all(lengths > 0)):
        raise ValueError(
            f"make_robot_arm: `link_lengths` must be a non-empty sequence of positive numbers, "
            f"got {link_lengths!r}."
        )
    _checks.prng_key("make_robot_arm", key)
    angle_key, noise_key = jax.random.split(key)
    angles = jax.random.uniform(angle_key, (n, lengths.size), minval=-jnp.pi / 2, maxval=jnp.pi / 2)
    absolute = jnp.cumsum(angles, axis=1)  # each link's angle to the x axis
    positions = jnp.stack([jnp.cos(absolute) @ lengths, jnp.sin(absolute) @ lengths], axis=1)
    return angles, positions + noise * jax.random.normal(noise_key, positions.shape)
