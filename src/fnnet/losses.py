"""Loss functions ``loss(predictions, targets) -> scalar``, equal to PyTorch's loss modules.

Every loss takes ``reduction="mean"`` (the default), ``"sum"`` or ``"none"`` (the unreduced
per-element or per-example values). Shapes and dtypes are checked when the loss is traced, so the
checks cost nothing under `jit`; label values (ranges) are checked only on concrete arrays.
Complex values are refused with a TypeError (a real loss would drop their imaginary part).

| fnnet                         | PyTorch                             |
| ----------------------------- | ----------------------------------- |
| mse                           | ``nn.MSELoss``                      |
| mae                           | ``nn.L1Loss``                       |
| huber(delta)                  | ``nn.HuberLoss(delta=...)``         |
| softmax_cross_entropy         | ``nn.CrossEntropyLoss``             |
| sigmoid_binary_cross_entropy  | ``nn.BCEWithLogitsLoss``            |
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import _checks
from fnnet.typing import Array, ArrayLike

__all__ = ["huber", "mae", "mse", "sigmoid_binary_cross_entropy", "softmax_cross_entropy"]

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(where: str, values: Array, reduction: str) -> Array:
    _checks.one_of(where, "reduction", reduction, _REDUCTIONS)
    if reduction == "mean":
        return jnp.mean(values)
    if reduction == "sum":
        return jnp.sum(values)
    return values


def _real(where: str, name: str, array: Array) -> None:
    """Raises a TypeError for complex (or non-numeric) values: a real loss would drop the
    imaginary part silently."""
    if not (jnp.issubdtype(array.dtype, jnp.integer) or jnp.issubdtype(array.dtype, jnp.floating)
            or array.dtype == jnp.bool_):  # fmt: skip
        raise TypeError(
            f"{where}: `{name}` must hold real numbers, got {_checks.shape_str(array)}; a "
            "complex value's imaginary part would be dropped, so pass the real part (or "
            "`jnp.abs`) explicitly."
        )


def _same_shape(
    where: str, predictions: ArrayLike, targets: ArrayLike, first: str = "predictions"
) -> tuple[Array, Array]:
    """Both as arrays of one floating dtype, after checking their shapes agree."""
    predictions, targets = jnp.asarray(predictions), jnp.asarray(targets)
    for name, array in ((first, predictions), ("targets", targets)):
        _real(where, name, array)
    if predictions.shape != targets.shape:
        raise ValueError(
            f"{where}: `targets` must have the shape of `{first}` {predictions.shape}, got "
            f"{targets.shape}. Reshape one of them (broadcasting is refused because it silently "
            "changes the loss)."
        )
    dtype = jnp.result_type(predictions, targets)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.float32
    return predictions.astype(dtype), targets.astype(dtype)


def mse(predictions: ArrayLike, targets: ArrayLike, *, reduction: str = "mean") -> Array:
    """Mean squared error ``(predictions - targets)²``.

    Args:
      predictions: any shape.
      targets: the shape of `predictions`.
      reduction: "mean", "sum" or "none".
    Returns:
      A scalar, or the element-wise losses for ``reduction="none"``.
    Raises:
      ValueError: if the shapes differ or `reduction` is unknown.
      TypeError: for complex or non-numeric values (a real loss would drop the imaginary part).
    """
    predictions, targets = _same_shape("mse", predictions, targets)
    return _reduce("mse", jnp.square(predictions - targets), reduction)


def mae(predictions: ArrayLike, targets: ArrayLike, *, reduction: str = "mean") -> Array:
    """Mean absolute error ``|predictions - targets|`` (PyTorch's L1Loss); shapes as `mse`."""
    predictions, targets = _same_shape("mae", predictions, targets)
    diff = predictions - targets
    # sign(d) * d is |d| with PyTorch's gradient sign(d), which is 0 at d = 0 (jnp.abs has 1).
    return _reduce("mae", jnp.sign(diff) * diff, reduction)


def huber(
    predictions: ArrayLike, targets: ArrayLike, *, delta: float = 1.0, reduction: str = "mean"
) -> Array:
    """Huber loss: ``0.5 d²`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)``.

    ``d = predictions - targets``; shapes as `mse`.

    Raises:
      ValueError: if `delta` is not a positive number, or as `mse`.
    """
    delta = _checks.positive("huber", "delta", delta)
    predictions, targets = _same_shape("huber", predictions, targets)
    abs_diff = jnp.abs(predictions - targets)
    values = jnp.where(
        abs_diff < delta, 0.5 * jnp.square(abs_diff), delta * (abs_diff - 0.5 * delta)
    )
    return _reduce("huber", values, reduction)


def softmax_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Array:
    """Cross-entropy between ``softmax(logits)`` and the labels (PyTorch's CrossEntropyLoss).

    With ``C`` classes and smoothing ``e``, the target distribution is
    ``q = (1 - e) * labels + e / C`` and the loss is ``-sum(q * log_softmax(logits), axis=-1)``.

    Args:
      logits: ``(..., classes)`` floating scores.
      labels: integer class ids of shape ``logits.shape[:-1]``, or class probabilities of the
        same shape as `logits`: finite and >= 0 (checked outside `jit`). Rows that do not sum
        to 1 are accepted as PyTorch does (soft targets, e.g. a mixup of labels): the loss is
        ``-sum(labels * log_softmax(logits))`` whatever their sum.
      label_smoothing: ``e`` in [0, 1].
      reduction: "mean", "sum" or "none" (per-example losses of shape ``logits.shape[:-1]``).
    Returns:
      A scalar, or the per-example losses. Under `jit`, an integer label outside
      ``[0, classes)`` gives a NaN loss (it cannot raise there); outside `jit` it raises.
    Raises:
      ValueError: for labels of the wrong shape, out-of-range class ids, negative or
        non-finite probabilities, or a bad `label_smoothing` / `reduction`.
      TypeError: for logits that are not real floating point or labels that are neither
        integer nor real floating point (complex values included).
    """
    where = "softmax_cross_entropy"
    smoothing = _checks.real_number(where, "label_smoothing", label_smoothing, "a number in [0, 1]")
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"{where}: `label_smoothing` must be a number in [0, 1], got {smoothing}.")
    logits, labels = jnp.asarray(logits), jnp.asarray(labels)
    if not jnp.issubdtype(logits.dtype, jnp.floating) or logits.ndim == 0:
        raise TypeError(
            f"{where}: `logits` must be a floating array of shape (..., classes), got "
            f"{_checks.shape_str(logits)}."
        )
    num_classes = logits.shape[-1]
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    if jnp.issubdtype(labels.dtype, jnp.integer):
        if labels.shape != logits.shape[:-1]:
            raise ValueError(
                f"{where}: integer `labels` must have shape logits.shape[:-1] = "
                f"{logits.shape[:-1]}, got {labels.shape}. For one-hot or probability labels "
                "pass a float array of the logits' shape."
            )
        _checks.ids_in_range(
            where,
            "integer `labels`",
            labels,
            num_classes,
            f" for logits with {num_classes} classes",
        )
        valid = (labels >= 0) & (labels < num_classes)
        picked = jnp.take_along_axis(log_probs, jnp.where(valid, labels, 0)[..., None], axis=-1)
        nll = jnp.where(valid, -picked[..., 0], jnp.nan)
        values = nll
        if smoothing:  # a Python branch: no extra reduction when there is no smoothing
            values = (1.0 - smoothing) * nll - smoothing * jnp.mean(log_probs, axis=-1)
    elif jnp.issubdtype(labels.dtype, jnp.floating):
        if labels.shape != logits.shape:
            raise ValueError(
                f"{where}: probability `labels` must have the shape of `logits` {logits.shape}, "
                f"got {labels.shape}. For class ids pass an integer array of shape "
                f"{logits.shape[:-1]}."
            )
        _check_probabilities(where, labels)
        targets = (1.0 - smoothing) * labels + smoothing / num_classes
        values = -jnp.sum(targets * log_probs, axis=-1)
    else:
        raise TypeError(
            f"{where}: `labels` must be integer class ids or floating probabilities, got "
            f"{_checks.shape_str(labels)}."
        )
    return _reduce(where, values, reduction)


def _check_probabilities(where: str, labels: Array) -> None:
    """Concrete probability labels must be >= 0 and finite; rows need not sum to 1."""
    if _checks.is_traced(labels) or labels.size == 0:
        return
    values = np.asarray(labels)
    bad = int(np.count_nonzero(~(np.isfinite(values) & (values >= 0))))
    if bad:
        raise ValueError(
            f"{where}: probability `labels` must be finite and >= 0, got {bad} values that are "
            f"not (e.g. {values[~(np.isfinite(values) & (values >= 0))].flat[0]})."
        )


def sigmoid_binary_cross_entropy(
    logits: ArrayLike, targets: ArrayLike, *, reduction: str = "mean"
) -> Array:
    """Binary cross-entropy on logits (PyTorch's BCEWithLogitsLoss).

    ``t * softplus(-x) + (1 - t) * softplus(x)`` for logit ``x`` and target ``t``: both terms
    are non-negative, so the value is accurate and finite for any |x|, and the gradient is
    exactly ``sigmoid(x) - t``.

    Args:
      logits: any shape.
      targets: the shape of `logits`, values in [0, 1] (checked outside `jit`).
      reduction: "mean", "sum" or "none".
    Raises:
      ValueError: if the shapes differ, a target lies outside [0, 1], or `reduction` is unknown.
    """
    where = "sigmoid_binary_cross_entropy"
    logits, targets = _same_shape(where, logits, targets, "logits")
    if not _checks.is_traced(targets) and targets.size:
        values = np.asarray(targets)
        outside = int(np.count_nonzero(~((values >= 0) & (values <= 1))))
        if outside:
            raise ValueError(
                f"{where}: `targets` must lie in [0, 1], got {outside} values outside."
            )
    values = targets * jax.nn.softplus(-logits) + (1.0 - targets) * jax.nn.softplus(logits)
    return _reduce(where, values, reduction)
