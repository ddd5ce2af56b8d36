"""Learning-rate schedules: functions ``step -> learning rate``.

`step` is the number of updates already applied (0 for the first update): an int or an int32
array, traced under `jit`. Any optimizer accepts a schedule in place of a float.

| schedule                        | PyTorch analogue (scheduler stepped once per update)     |
| ------------------------------- | -------------------------------------------------------- |
| constant(value)                 | none needed                                              |
| exponential_decay(v, r, n)      | ``ExponentialLR(gamma=r ** (1 / n))``                    |
| step_decay(v, step_size, gamma) | ``StepLR(step_size, gamma)``                             |
| cosine_decay(v, n, alpha)       | ``CosineAnnealingLR(T_max=n, eta_min=alpha * v)``        |
| warmup_cosine_decay(...)        | ``LinearLR`` warm-up, then ``CosineAnnealingLR``         |

`cosine_decay` holds its final value after `decay_steps` instead of rising again.

Example:
  >>> from fnnet.optim import adam, schedules
  >>> optimizer = adam(schedules.cosine_decay(1e-3, decay_steps=1000))
"""

from __future__ import annotations

import jax.numpy as jnp

from fnnet import _checks
from fnnet.optim._base import Schedule
from fnnet.typing import Array

__all__ = ["constant", "cosine_decay", "exponential_decay", "step_decay", "warmup_cosine_decay"]


def _step(step) -> Array:
    return jnp.asarray(step, jnp.float32)


def constant(value: float) -> Schedule:
    """``value`` at every step."""
    value = _checks.non_negative("constant", "value", value)
    return lambda step: jnp.full((), value, jnp.float32)


def exponential_decay(init_value: float, decay_rate: float, transition_steps: int) -> Schedule:
    """``init_value * decay_rate ** (step / transition_steps)`` (smooth, not staircase).

    Raises:
      ValueError: for a negative `init_value`, a `decay_rate` <= 0 or non-positive
        `transition_steps`.
    """
    init_value = _checks.non_negative("exponential_decay", "init_value", init_value)
    decay_rate = _checks.positive("exponential_decay", "decay_rate", decay_rate)
    transition_steps = _checks.positive_int(
        "exponential_decay", "transition_steps", transition_steps
    )
    return lambda step: init_value * decay_rate ** (_step(step) / transition_steps)


def step_decay(init_value: float, step_size: int, gamma: float) -> Schedule:
    """``init_value * gamma ** (step // step_size)``: multiplied by `gamma` every `step_size`."""
    init_value = _checks.non_negative("step_decay", "init_value", init_value)
    step_size = _checks.positive_int("step_decay", "step_size", step_size)
    gamma = _checks.non_negative("step_decay", "gamma", gamma)
    return lambda step: init_value * gamma ** jnp.floor(_step(step) / step_size)


def _cosine(start: float, end: float, progress: Array) -> Array:
    """From `start` (progress 0) to `end` (progress >= 1) along half a cosine."""
    progress = jnp.clip(progress, 0.0, 1.0)
    return end + (start - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * progress))


def cosine_decay(init_value: float, decay_steps: int, *, alpha: float = 0.0) -> Schedule:
    """Half a cosine from `init_value` down to ``alpha * init_value`` over `decay_steps`, then
    constant: ``v * ((1 - alpha) * 0.5 * (1 + cos(pi * min(step, n) / n)) + alpha)``."""
    init_value = _checks.non_negative("cosine_decay", "init_value", init_value)
    decay_steps = _checks.positive_int("cosine_decay", "decay_steps", decay_steps)
    alpha = _checks.non_negative("cosine_decay", "alpha", alpha)
    if alpha > 1:
        raise ValueError(
            f"cosine_decay: `alpha` (the final fraction of init_value) must be in [0, 1], got "
            f"{alpha}."
        )
    return lambda step: _cosine(init_value, alpha * init_value, _step(step) / decay_steps)


def warmup_cosine_decay(
    peak_value: float,
    warmup_steps: int,
    decay_steps: int,
    *,
    init_value: float = 0.0,
    end_value: float = 0.0,
) -> Schedule:
    """Linear warm-up from `init_value` to `peak_value` over `warmup_steps`, then half a cosine
    down to `end_value`, reached at step `decay_steps` (which counts the warm-up, as optax).

    Raises:
      ValueError: for negative values, or `decay_steps` not greater than `warmup_steps`.
    """
    where = "warmup_cosine_decay"
    peak_value = _checks.non_negative(where, "peak_value", peak_value)
    init_value = _checks.non_negative(where, "init_value", init_value)
    end_value = _checks.non_negative(where, "end_value", end_value)
    warmup_steps = _checks.positive_int(where, "warmup_steps", warmup_steps)
    decay_steps = _checks.positive_int(where, "decay_steps", decay_steps)
    if decay_steps <= warmup_steps:
        raise ValueError(
            f"{where}: `decay_steps` counts the warm-up and must exceed `warmup_steps` "
            f"({warmup_steps}), got {decay_steps}."
        )

    def schedule(step) -> Array:
        step = _step(step)
        warm = init_value + (peak_value - init_value) * step / warmup_steps
        cool = _cosine(peak_value, end_value, (step - warmup_steps) / (decay_steps - warmup_steps))
        return jnp.where(step < warmup_steps, warm, cool)

    return schedule
