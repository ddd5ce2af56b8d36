"""Optimizer hyperparameters as state: read them, replace them, check them.

Every fnnet optimizer keeps its float hyperparameters in its state (``opt_state.hyperparams``,
a dict of scalar arrays), and its update reads them from there. So a learning rate can change
between jitted steps without a retrace, be traced, or be swept with `jax.vmap`:

    >>> import jax.numpy as jnp
    >>> from fnnet import optim
    >>> state = optim.adam(1e-3).init(jnp.zeros(3))
    >>> sorted(optim.hyperparams(state))
    ['b1', 'b2', 'eps', 'learning_rate']
    >>> state = optim.with_hyperparams(state, learning_rate=1e-4)
    >>> print(f"{float(optim.hyperparams(state)['learning_rate']):.1e}")
    1.0e-04
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import _checks
from fnnet.typing import Array

__all__ = ["hyperparams", "with_hyperparams"]

_AT_LEAST_ZERO = ("a finite number >= 0", lambda v: v >= 0)
_UNIT = ("a number in [0, 1)", lambda v: (v >= 0) & (v < 1))
# name: (the rule in words, the rule on a float64 array)
RULES: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "learning_rate": (
        "a finite number >= 0 or a schedule (a callable step -> learning rate, see "
        "fnnet.optim.schedules)",
        lambda v: v >= 0,
    ),
    "learning_rate_scale": _AT_LEAST_ZERO,
    "eps": (  # 0 would divide 0 by 0 for a parameter whose gradient has always been 0
        "a finite number > 0 (0 turns an untouched parameter into 0/0 = NaN)",
        lambda v: v > 0,
    ),
    "weight_decay": _AT_LEAST_ZERO,
    "momentum": _AT_LEAST_ZERO,
    "dampening": ("a number in [0, 1]", lambda v: (v >= 0) & (v <= 1)),
    "b1": _UNIT,
    "b2": _UNIT,
    "decay": _UNIT,
    "max_norm": ("a finite number > 0", lambda v: v > 0),
}


def check(where: str, name: str, value: Any) -> Any:
    """`value` as a float after checking it against the rule of `name`.

    A traced value (an optimizer built inside `jit` or `vmap`) has no value to check: only its
    shape is (a scalar), and it is returned as it is.

    Raises:
      TypeError: for a value that is not a real number or a real scalar array.
      ValueError: for a value that breaks the rule (out of range, inf, NaN).
    """
    rule, holds = RULES[name]
    if _checks.is_traced(value):
        if value.shape != () or not jnp.issubdtype(value.dtype, jnp.number):
            raise ValueError(
                f"{where}: `{name}` must be a scalar, got a traced {_checks.shape_str(value)}."
            )
        return value
    number = _checks.real_number(where, name, value, rule)
    if not holds(np.float64(number)):
        shown = value if isinstance(value, int | float) else number  # an array: its value
        raise ValueError(f"{where}: `{name}` must be {rule}, got {shown!r}.")
    return number


def unless_zero(where: str, name: str, value: Any) -> dict[str, Any]:
    """``{name: value}`` checked, or ``{}`` for a concrete 0: a term that a zero switches off
    (weight decay) is compiled out and kept out of the state, so a step without it costs what
    a hand-written one does. A traced value always keeps the term."""
    value = check(where, name, value)
    return {} if not _checks.is_traced(value) and value == 0 else {name: value}


def as_state(values: dict[str, Any]) -> dict[str, Array]:
    """The hyperparameters as scalar arrays of the default float dtype (float64 with x64)."""
    dtype = jax.dtypes.canonicalize_dtype(jnp.float64)
    return {name: jnp.asarray(value, dtype) for name, value in values.items()}


def _hyperparams_of(where: str, opt_state: Any) -> dict[str, Array]:
    found = getattr(opt_state, "hyperparams", None)
    if not isinstance(found, dict):
        raise TypeError(
            f"{where}: `opt_state` must be the state of an fnnet optimizer (from "
            f"`optimizer.init(params)`), got {type(opt_state).__name__}."
        )
    return found


def hyperparams(opt_state: Any) -> dict[str, Array]:
    """The optimizer's float hyperparameters by argument name.

    Args:
      opt_state: an fnnet optimizer's state.
    Returns:
      ``{"learning_rate": ..., "b1": ..., ...}`` of scalar arrays (arrays of one value per model
      for an ensemble's state). With a schedule, ``learning_rate_scale`` (a multiplier of the
      schedule, 1.0 unless changed) stands in place of ``learning_rate``.
    """
    return dict(_hyperparams_of("hyperparams", opt_state))


def with_hyperparams(opt_state: Any, **values: Any) -> Any:
    """`opt_state` with the named hyperparameters replaced; nothing else changes.

    Each value keeps the stored dtype and must have the stored shape (a scalar, or one value
    per model for an ensemble), so a jitted step takes the new state without retracing.
    Concrete values are checked against the optimizer's rules (``b1`` in [0, 1), ...); traced
    ones cannot be.

    Example: ``state = state._replace(opt_state=optim.with_hyperparams(state.opt_state,
    learning_rate=1e-4))``.

    Raises:
      ValueError: for a name the optimizer does not have, a value of another shape, or one
        out of range.
      TypeError: for a value that is not a number or an array of numbers.
    """
    where = "with_hyperparams"
    current = dict(_hyperparams_of(where, opt_state))
    for name, value in values.items():
        if name not in current:
            hint = {
                "learning_rate": " This optimizer follows a schedule: scale it with "
                "`learning_rate_scale`.",
                "learning_rate_scale": " This optimizer has a constant `learning_rate`; "
                "set that instead.",
            }.get(
                name,
                " A `momentum` or `weight_decay` of 0 when the optimizer was built is compiled "
                "out and not in the state: build it with a non-zero value to change it later."
                if name in ("momentum", "dampening", "weight_decay")
                else "",
            )
            raise ValueError(
                f"{where}: unknown hyperparameter {name!r}; this optimizer state has "
                f"{', '.join(repr(n) for n in current)}.{hint}"
            )
        kind_ok = isinstance(value, int | float | np.number | np.ndarray | jax.Array)
        if (
            isinstance(value, bool)
            or not kind_ok
            or not jnp.issubdtype(jnp.result_type(value), jnp.number)
        ):
            raise TypeError(
                f"{where}: `{name}` must be a number or an array of numbers, got "
                f"{type(value).__name__} {value!r}."
            )
        if jnp.shape(value) != current[name].shape:
            raise ValueError(
                f"{where}: `{name}` must have the stored shape {current[name].shape}, got shape "
                f"{jnp.shape(value)}."
            )
        if not _checks.is_traced(value):
            rule, holds = RULES.get(name, _AT_LEAST_ZERO)
            array = np.asarray(value, np.float64)
            if not np.all(np.isfinite(array) & holds(array)):
                raise ValueError(f"{where}: `{name}` must be {rule}, got {value!r}.")
        current[name] = jnp.asarray(value, current[name].dtype)
    return opt_state._replace(hyperparams=current)
