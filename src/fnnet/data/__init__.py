"""Data utilities: train / validation / test splits, mini-batches, standardization, one-hot.

Arrays passed together share their first (sample) axis and stay paired row by row. The
functions accept NumPy or JAX arrays and return the same kind they were given.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import _checks
from fnnet.typing import Array, ArrayLike, DTypeLike, PRNGKey

__all__ = ["batches", "one_hot", "split", "standardize"]


def num_samples(where: str, arrays: Sequence[Any], names: Sequence[str] | None = None) -> int:
    """The shared length of the arrays' first axis; raises naming each length if they differ."""
    if not arrays:
        raise ValueError(f"{where}: needs at least one array, got none.")
    names = names or [f"array {i}" for i in range(1, len(arrays) + 1)]
    lengths = []
    for name, array in zip(names, arrays, strict=True):
        if np.ndim(array) == 0:
            raise ValueError(f"{where}: {name} must have a sample axis, got a scalar.")
        lengths.append(np.shape(array)[0])
    if len(set(lengths)) > 1:
        listed = ", ".join(f"{name} has {n}" for name, n in zip(names, lengths, strict=True))
        raise ValueError(f"{where}: arrays must have the same number of samples; {listed}.")
    return lengths[0]


def _boundaries(n: int, fractions: Sequence[float]) -> list[int]:
    """Cut points splitting n items in the given fractions (rounded half up, last one n)."""
    cumulative = np.cumsum(fractions)
    return [math.floor(c * n + 0.5) for c in cumulative[:-1]] + [n]


def _check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    if not isinstance(fractions, tuple | list):
        raise TypeError(
            f"split: `fractions` must be a tuple of numbers summing to 1, e.g. (0.8, 0.2), got "
            f"{_checks.value_str(fractions)}."
        )
    fractions = tuple(fractions)
    if not fractions or any(
        isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f <= 1 for f in fractions
    ):
        raise ValueError(f"split: `fractions` must be numbers in (0, 1], got {fractions}.")
    if abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            f"split: `fractions` must sum to 1, got {fractions} (sum {sum(fractions):.6g})."
        )
    return fractions


def split(
    key: PRNGKey,
    *arrays: ArrayLike,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    stratify: ArrayLike | None = None,
) -> tuple[tuple[Any, ...], ...]:
    """Shuffles the samples and splits them into parts of the given fractions.

    Args:
      key: the shuffle's randomness; the same key gives the same split.
      *arrays: arrays sharing their first axis (e.g. inputs and labels).
      fractions: the parts' shares of the samples, summing to 1; the last part takes the
        rounding remainder.
      stratify: optional ``(n,)`` labels: each part then keeps every class's share.
    Returns:
      One tuple of arrays per fraction, e.g. ``(x_tr, y_tr), (x_va, y_va), (x_te, y_te)``
      (a 1-tuple per part for a single array).
    Raises:
      ValueError: if the arrays differ in length, the fractions are not positive or do not
        sum to 1, or a part would be empty.

    Example:
      >>> import jax, numpy as np
      >>> x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
      >>> (x_tr, y_tr), (x_te, y_te) = split(jax.random.key(0), x, y, fractions=(0.8, 0.2))
      >>> x_tr.shape, y_te.shape
      ((8, 2), (2,))
    """
    _checks.prng_key("split", key)
    n = num_samples("split", arrays)
    fractions = _check_fractions(fractions)
    part_key = None
    if stratify is None:
        order = np.asarray(jax.random.permutation(key, n))
    else:
        order_key, offset_key, part_key = jax.random.split(key, 3)
        order = np.asarray(jax.random.permutation(order_key, n))
        order = _stratified(order, stratify, n, offset_key)
    result = []
    start = 0
    for index, stop in enumerate(_boundaries(n, fractions)):
        if stop == start:
            raise ValueError(
                f"split: part {index} (fraction {fractions[index]}) would be empty with {n} "
                "samples; use fewer parts or larger fractions."
            )
        indices = order[start:stop]
        if part_key is not None:  # mix the classes, which _stratified lines up
            indices = indices[
                np.asarray(
                    jax.random.permutation(jax.random.fold_in(part_key, index), indices.size)
                )
            ]
        result.append(tuple(array[indices] for array in arrays))
        start = stop
    return tuple(result)


def _stratified(order: np.ndarray, stratify: ArrayLike, n: int, key: PRNGKey) -> np.ndarray:
    """Reorders the shuffled `order` so that any cut into consecutive parts is stratified.

    Each class's samples, in their shuffled order, are spread evenly over [0, 1) from a random
    offset: the k-th of ``n_c`` sits at ``(k + u_c) / n_c``. Sorting every sample by that
    position and cutting the sequence where an unstratified split would cut gives each part
    its share of every class (to within a sample), and the parts the same sizes as without
    stratification.
    """
    labels = np.asarray(stratify)
    if labels.shape != (n,):
        raise ValueError(f"split: `stratify` must have shape ({n},), got {labels.shape}.")
    classes, shuffled_labels = np.unique(labels[order], return_inverse=True)
    offsets = np.asarray(jax.random.uniform(key, (classes.size,)))
    position = np.empty(n)
    for c in range(classes.size):
        members = np.flatnonzero(shuffled_labels == c)
        position[members] = (np.arange(members.size) + offsets[c]) / members.size
    return order[np.argsort(position, kind="stable")]


def batches(
    key: PRNGKey | None,
    *arrays: ArrayLike,
    batch_size: int,
    shuffle: bool = True,
    drop_last: bool = False,
) -> Iterator[tuple[Any, ...]]:
    """Mini-batches covering every sample once: an iterator of tuples of arrays.

    Args:
      key: the shuffle's randomness (may be None with ``shuffle=False``).
      *arrays: arrays sharing their first axis.
      batch_size: samples per batch, a positive int.
      shuffle: visit the samples in a random order.
      drop_last: skip the last batch if it has fewer than `batch_size` samples.
    Returns:
      An iterator of ``len(arrays)``-tuples; arguments are checked when it is made.
    Raises:
      ValueError: for arrays of different lengths, a non-positive `batch_size`, a
        `batch_size` larger than the data with ``drop_last=True``, or a missing key.
    """
    n = num_samples("batches", arrays)
    batch_size = _checks.positive_int("batches", "batch_size", batch_size)
    if drop_last and batch_size > n:
        raise ValueError(
            f"batches: `batch_size` {batch_size} exceeds the {n} samples, so drop_last=True "
            "would yield nothing; lower batch_size or pass drop_last=False."
        )
    if shuffle and key is None:
        raise ValueError(
            "batches: `key` is required when shuffle=True, got None; pass e.g. "
            "`jax.random.key(0)`, or shuffle=False."
        )
    if shuffle:
        _checks.prng_key("batches", key)
    order = np.asarray(jax.random.permutation(key, n)) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n

    def generate() -> Iterator[tuple[Any, ...]]:
        for start in range(0, stop, batch_size):
            indices = order[start : start + batch_size]
            yield tuple(array[indices] for array in arrays)

    return generate()


def standardize(train: ArrayLike, *others: ArrayLike) -> tuple[Any, ...]:
    """Scales features to zero mean and unit variance using the training part's statistics only.

    ``(x - mean) / std`` with mean and std per feature (over the first axis) of `train`; a
    constant feature is divided by 1 instead of 0, as scikit-learn's ``StandardScaler``.

    Args:
      train: ``(n, ...)`` training inputs.
      *others: validation / test inputs of the same feature shape.
    Returns:
      ``(train, *others)`` standardized.
    """
    train_np = np.asarray(_checks.real_array("standardize", "`train`", train), np.float64)
    mean = train_np.mean(axis=0)
    std = train_np.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    result = []
    for array in (train, *others):
        array = _checks.real_array("standardize", "every array", array)
        if np.shape(array)[1:] != mean.shape:
            raise ValueError(
                f"standardize: every array must have the feature shape of `train` {mean.shape}, "
                f"got {np.shape(array)[1:]}."
            )
        dtype = array.dtype if jnp.issubdtype(array.dtype, jnp.floating) else np.float32
        scaled = ((array - mean) / std).astype(dtype)
        result.append(jnp.asarray(scaled) if isinstance(array, jax.Array) else scaled)
    return tuple(result)


def one_hot(labels: ArrayLike, num_classes: int, *, dtype: DTypeLike = jnp.float32) -> Array:
    """``(...,)`` integer labels to ``(..., num_classes)`` one-hot vectors.

    Raises:
      ValueError: for labels outside ``[0, num_classes)`` (checked outside `jit`).
    """
    num_classes = _checks.positive_int("one_hot", "num_classes", num_classes)
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(f"one_hot: `labels` must be integers, got {_checks.shape_str(labels)}.")
    _checks.ids_in_range("one_hot", "`labels`", labels, num_classes)
    return jax.nn.one_hot(labels, num_classes, dtype=dtype)
