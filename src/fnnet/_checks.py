"""Validation helpers that build fnnet's error messages (private).

Every message follows one template: ``<where>: `<argument>` must <rule>, got <value>.``
"""

from __future__ import annotations

import functools
import math
from numbers import Real
from typing import Any

import jax
import numpy as np


def is_traced(x: Any) -> bool:
    """True when `x` is abstract (inside `jit`, `grad` or `vmap`), so its values are unknown."""
    return isinstance(x, jax.core.Tracer)


def positive_int(where: str, name: str, value: Any) -> int:
    """Returns `value` if it is an int > 0: TypeError for another kind (bools included),
    ValueError for an int <= 0."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{where}: `{name}` must be a positive int, got {value_str(value)}.")
    if value <= 0:
        raise ValueError(f"{where}: `{name}` must be a positive int, got {value!r}.")
    return int(value)


def value_str(value: Any) -> str:
    """`value` in a wrong-kind error: its repr when short, and its type."""
    shown = repr(value)
    return f"{shown} ({type(value).__name__})" if len(shown) <= 40 else type(value).__name__


def real_number(where: str, name: str, value: Any, rule: str) -> float:
    """Returns `value` as a float if it is a finite real number (a Python or NumPy number, or a
    concrete scalar array); TypeError for another kind, ValueError for inf or NaN."""
    is_scalar_array = hasattr(value, "shape") and value.shape == () and not is_traced(value)
    if is_scalar_array and np.issubdtype(value.dtype, np.number):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{where}: `{name}` must be {rule}, got {value_str(value)}.")
    if not math.isfinite(value):
        raise ValueError(f"{where}: `{name}` must be {rule}, got {value!r}.")
    return float(value)


def number_or_array(where: str, name: str, value: Any) -> Any:
    """`value` if it is an array (possibly traced: an activation's coefficient under jit) or a
    finite real number, else raises."""
    if hasattr(value, "dtype"):
        return value
    return real_number(where, name, value, "a finite number")


def non_negative(where: str, name: str, value: Any) -> float:
    """Returns `value` if it is a finite real number >= 0, else raises."""
    value_ = real_number(where, name, value, "a finite number >= 0")
    if value_ < 0:
        raise ValueError(f"{where}: `{name}` must be a finite number >= 0, got {value!r}.")
    return value_


def positive(where: str, name: str, value: Any) -> float:
    """Returns `value` if it is a finite real number > 0, else raises."""
    value_ = real_number(where, name, value, "a finite number > 0")
    if value_ <= 0:
        raise ValueError(f"{where}: `{name}` must be a finite number > 0, got {value!r}.")
    return value_


def unit_interval(where: str, name: str, value: Any) -> float:
    """Returns `value` if it lies in [0, 1), else raises."""
    value_ = real_number(where, name, value, "a number in [0, 1)")
    if not 0.0 <= value_ < 1.0:
        raise ValueError(f"{where}: `{name}` must be a number in [0, 1), got {value!r}.")
    return value_


def one_of(where: str, name: str, value: Any, allowed: tuple) -> Any:
    """Returns `value` if it is one of `allowed`, else raises listing them."""
    if value not in allowed:
        listed = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{where}: `{name}` must be one of {listed}; got {value!r}.")
    return value


def shape_str(x: Any) -> str:
    """`shape (2, 3) float32` for arrays, the type name otherwise; for error messages."""
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        return f"shape {tuple(x.shape)} {x.dtype}"
    return type(x).__name__


def int_pair(where: str, name: str, value: Any) -> tuple[int, int]:
    """`value` as a (height, width) pair of positive ints: an int is used for both."""
    pair = (value, value) if isinstance(value, int | np.integer) else value
    if (
        not isinstance(pair, tuple | list)
        or len(pair) != 2
        or any(isinstance(v, bool) or not isinstance(v, int | np.integer) or v <= 0 for v in pair)
    ):
        raise ValueError(
            f"{where}: `{name}` must be a positive int or a pair of them, got {value!r}."
        )
    return int(pair[0]), int(pair[1])


def rank(where: str, inputs: Any, expected: int, layout: str) -> None:
    """Raises unless `inputs` has rank `expected` (a static check, free under jit)."""
    if inputs.ndim != expected:
        raise ValueError(
            f"{where}: inputs must have rank {expected} {layout}, got shape {tuple(inputs.shape)} "
            f"of rank {inputs.ndim}."
        )


def last_axis(where: str, inputs: Any, expected: int) -> None:
    """Raises unless the inputs' last (feature / channel) axis has size `expected` (static)."""
    if inputs.ndim == 0 or inputs.shape[-1] != expected:
        raise ValueError(
            f"{where}: inputs must have last axis {expected}, got shape {tuple(inputs.shape)}."
        )


def ids_in_range(where: str, what: str, ids: Any, upper: int, context: str = "") -> None:
    """Raises if concrete integer `ids` fall outside [0, upper); traced ids cannot be checked.

    `what` names the values ("`labels`"), `context` may explain `upper` (" for 10 classes").
    """
    if is_traced(ids) or np.size(ids) == 0:
        return
    values = np.asarray(ids)
    bad = values[(values < 0) | (values >= upper)]
    if bad.size:
        raise ValueError(
            f"{where}: {what} must lie in [0, {upper}){context}, got {bad.size} outside "
            f"(e.g. {bad.flat[0]})."
        )


def unknown_name(where: str, kind: str, name: str, valid: Any, alternative: str) -> ValueError:
    """The error for a name not in `valid`, listing the valid ones and the alternative."""
    listed = ", ".join(repr(v) for v in valid)
    return ValueError(
        f"{where}: unknown {kind} {name!r}; valid names are {listed}, or pass {alternative}."
    )


@functools.cache
def _raw_key_shape() -> tuple[int, ...]:
    """The shape of the default implementation's raw key data (``(2,)`` for threefry)."""
    return jax.eval_shape(jax.random.PRNGKey, 0).shape


def prng_key(where: str, key: Any) -> None:
    """Raises a TypeError with the fix unless `key` is one PRNG key: a typed key of shape ()
    (``jax.random.key(0)``) or raw uint32 key data of the default shape
    (``jax.random.PRNGKey(0)``). Only shapes and dtypes are read, so it is free under `jit`."""
    if key is None or isinstance(key, int | np.integer):
        hint = f"`jax.random.key({key})`" if key is not None else "e.g. `jax.random.key(0)`"
        raise TypeError(f"{where}: `key` must be a JAX PRNG key, got {key!r}; pass {hint}.")
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape == ():
            return
        raise TypeError(
            f"{where}: `key` must be a single PRNG key, got an array of keys of shape {shape}; "
            "pass one of them, e.g. `keys[0]`."
        )
    if dtype == np.uint32 and tuple(shape) == _raw_key_shape():
        return
    raise TypeError(
        f"{where}: `key` must be a JAX PRNG key such as `jax.random.key(0)`, got "
        f"{shape_str(key) if dtype is not None else value_str(key)}."
    )


def real_array(where: str, what: str, values: Any) -> Any:
    """`values` as an array of real numbers (a NumPy or JAX array, or nested lists of numbers,
    which are accepted as NumPy would read them); a JAX array stays where it is."""
    if not isinstance(values, jax.Array | np.ndarray):
        try:
            values = np.asarray(values)
        except ValueError as error:  # ragged nested lists
            raise ValueError(
                f"{where}: {what} must be an array or nested lists of equal lengths, got "
                f"{type(values).__name__} that NumPy cannot read as one array ({error})."
            ) from None
    dtype = values.dtype
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)
            or dtype == np.bool_):  # fmt: skip
        raise TypeError(
            f"{where}: {what} must hold real numbers (bool, int or float), got "
            f"{shape_str(values)}"
            + ("; a model would lose their imaginary part." if np.iscomplexobj(values) else ".")
        )
    return values


def _length(where: str, what: str, values: Any) -> tuple[int, ...]:
    """The first axis of `values` as a shape prefix (``()`` for a scalar)."""
    if hasattr(values, "shape"):
        return tuple(values.shape[:1])
    return real_array(where, what, values).shape[:1]


def data_pair(where: str, name: str, data: Any) -> tuple[Any, Any]:
    """`data` as ``(inputs, targets)`` after checking it is a pair of equally long arrays."""
    if not isinstance(data, tuple | list) or len(data) != 2:
        got = (
            f"a {type(data).__name__} of {len(data)}"
            if isinstance(data, tuple | list)
            else (f"{type(data).__name__} {shape_str(data)}")
        )
        raise TypeError(f"{where}: `{name}` must be a pair (inputs, targets), got {got}.")
    inputs, targets = data
    parts = (("inputs", inputs), ("targets", targets))
    lengths = [_length(where, f"`{name}` {part}", x) for part, x in parts]
    if lengths[0] != lengths[1]:
        raise ValueError(
            f"{where}: `{name}` inputs and targets must have the same number of samples, got "
            f"{lengths[0]} and {lengths[1]}."
        )
    return inputs, targets
