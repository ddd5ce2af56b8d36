"""Classification metrics equal to scikit-learn's: accuracy, precision, recall, F1, confusion.

Labels are integer class ids; `y_pred` may also be scores of shape ``y_true.shape + (classes,)``,
reduced with argmax (two classes at least: a single logit per sample is refused, as its argmax
is always 0; threshold it into labels). Empty arrays are refused: their score is undefined.
A class with no predicted (precision) or no true (recall) samples scores 0,
never NaN, as scikit-learn's ``zero_division`` default.

With `num_classes` given, the classes are ``0 .. num_classes - 1`` (absent ones included in
macro averages, as scikit-learn with ``labels=range(num_classes)``) and everything works under
`jit`; labels outside that range raise outside `jit` and are ignored inside it. With
``num_classes=None`` (outside `jit` only) the classes are those present in either array, as
scikit-learn's default.

| average    | precision = tp / (tp + fp), recall = tp / (tp + fn), f1 = 2tp / (2tp + fp + fn) |
| ---------- | ------------------------------------------------------------------------------ |
| "binary"   | the score of class `pos_label` (at most two classes)                             |
| "micro"    | computed from tp, fp, fn summed over the classes                                 |
| "macro"    | unweighted mean of the per-class scores                                          |
| "weighted" | mean of the per-class scores weighted by support (true count)                    |
| None       | the per-class scores, shape ``(classes,)``                                       |

Example:
  >>> import jax.numpy as jnp
  >>> from fnnet import metrics
  >>> y_true, y_pred = jnp.array([0, 1, 1, 2]), jnp.array([0, 1, 0, 2])
  >>> float(metrics.accuracy(y_true, y_pred))
  0.75
  >>> metrics.recall(y_true, y_pred, num_classes=3, average=None).tolist()
  [1.0, 0.5, 1.0]
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from fnnet import _checks
from fnnet.typing import Array, ArrayLike

__all__ = ["accuracy", "confusion_matrix", "f1_score", "precision", "recall"]

_AVERAGES = ("binary", "micro", "macro", "weighted", None)


def _as_labels(where: str, y_true: ArrayLike, y_pred: ArrayLike) -> tuple[Array, Array]:
    """Both as integer arrays of one shape; scores in `y_pred` are reduced with argmax."""
    y_true, y_pred = jnp.asarray(y_true), jnp.asarray(y_pred)
    if y_pred.ndim == y_true.ndim + 1 and y_pred.shape[:-1] == y_true.shape:
        if y_pred.shape[-1] == 1:
            raise ValueError(
                f"{where}: `y_pred` has a class axis of size 1, shape {y_pred.shape} (a binary "
                "model with one logit?): its argmax is class 0 everywhere. Pass labels instead: "
                "`(y_pred[..., 0] > 0).astype(int)` for a logit, `> 0.5` for a probability."
            )
        y_pred = jnp.argmax(y_pred, axis=-1)
    for name, array in (("y_true", y_true), ("y_pred", y_pred)):
        if not (jnp.issubdtype(array.dtype, jnp.integer) or array.dtype == jnp.bool_):
            raise TypeError(
                f"{where}: `{name}` must hold integer class ids, got {_checks.shape_str(array)}. "
                "Convert labels with `.astype(int)`; pass scores as y_pred with a trailing "
                "class axis."
            )
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{where}: `y_pred` must have the shape of `y_true` {y_true.shape} (or that shape "
            f"plus a class axis of scores), got {y_pred.shape}."
        )
    if y_true.size == 0:
        raise ValueError(
            f"{where}: `y_true` must hold at least one label, got shape {y_true.shape}; a score "
            "of no samples is undefined."
        )
    return y_true.astype(jnp.int32), y_pred.astype(jnp.int32)


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> Array:
    """Fraction of positions where the predicted class equals the true class.

    Args:
      y_true: ``(n,)`` (or any shape) integer labels.
      y_pred: labels of the same shape, or scores of shape ``y_true.shape + (classes,)``.
    Returns:
      A float32 scalar in [0, 1].
    """
    y_true, y_pred = _as_labels("accuracy", y_true, y_pred)
    return jnp.mean((y_true == y_pred).astype(jnp.float32))


def _check_range(where: str, labels: Array, num_classes: int) -> None:
    _checks.ids_in_range(where, "labels", labels, num_classes, f" for num_classes={num_classes}")


def confusion_counts(y_true: Array, y_pred: Array, num_classes: int) -> Array:
    """``(classes, classes)`` int32 counts, rows true, columns predicted; out-of-range dropped."""
    valid = (y_true >= 0) & (y_true < num_classes) & (y_pred >= 0) & (y_pred < num_classes)
    cells = jnp.where(valid, y_true * num_classes + y_pred, num_classes * num_classes)
    counts = jnp.bincount(jnp.ravel(cells), length=num_classes * num_classes + 1)
    return counts[:-1].reshape(num_classes, num_classes).astype(jnp.int32)


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, *, num_classes: int) -> Array:
    """Counts of (true class, predicted class) pairs, as ``sklearn.metrics.confusion_matrix``.

    Args:
      y_true, y_pred: as `accuracy`.
      num_classes: the classes are ``0 .. num_classes - 1``.
    Returns:
      ``(num_classes, num_classes)`` int32: entry ``[i, j]`` counts samples of class i
      predicted as j.
    Raises:
      ValueError: for labels outside ``[0, num_classes)`` (outside `jit`).
    """
    num_classes = _checks.positive_int("confusion_matrix", "num_classes", num_classes)
    y_true, y_pred = _as_labels("confusion_matrix", y_true, y_pred)
    _check_range("confusion_matrix", y_true, num_classes)
    _check_range("confusion_matrix", y_pred, num_classes)
    return confusion_counts(y_true, y_pred, num_classes)


def _divide(numerator: Array, denominator: Array) -> Array:
    """``numerator / denominator``, 0 where the denominator is 0."""
    safe = jnp.where(denominator > 0, denominator, 1)
    return jnp.where(denominator > 0, numerator / safe, 0.0).astype(jnp.float32)


def _present_classes(where: str, y_true: Array, y_pred: Array) -> np.ndarray:
    if _checks.is_traced(y_true) or _checks.is_traced(y_pred):
        raise ValueError(
            f"{where}: pass `num_classes` to use this metric under jit (without it the classes "
            "are read from the data, which needs concrete arrays)."
        )
    return np.union1d(np.asarray(y_true), np.asarray(y_pred))


def _binary_classes(where: str, classes: np.ndarray, pos_label: int) -> np.ndarray:
    if classes.size > 2:
        raise ValueError(
            f"{where}: average='binary' needs at most two classes, got {classes.size} "
            f"({classes.tolist()}); choose average='macro', 'micro', 'weighted' or None."
        )
    if classes.size == 2 and pos_label not in classes:
        raise ValueError(
            f"{where}: `pos_label` must be one of the classes {classes.tolist()}, got {pos_label}."
        )
    return np.union1d(classes, [pos_label])


def _per_class(
    where: str,
    y_true: ArrayLike,
    y_pred: ArrayLike,
    num_classes: int | None,
    average: Any,
    pos_label: int,
) -> tuple[Array, Array, Array, Array, int | None]:
    """(tp, fp, fn, support) per class and the index of `pos_label` among the classes."""
    _checks.one_of(where, "average", average, _AVERAGES)
    y_true, y_pred = _as_labels(where, y_true, y_pred)
    if num_classes is None:
        classes = _present_classes(where, y_true, y_pred)
        if average == "binary":
            classes = _binary_classes(where, classes, pos_label)
        # Map each label to its index among the sorted classes.
        y_true = jnp.asarray(np.searchsorted(classes, np.asarray(y_true)), jnp.int32)
        y_pred = jnp.asarray(np.searchsorted(classes, np.asarray(y_pred)), jnp.int32)
        num_classes = max(classes.size, 1)
        pos_index = int(np.searchsorted(classes, pos_label)) if average == "binary" else None
    else:
        num_classes = _checks.positive_int(where, "num_classes", num_classes)
        if average == "binary":
            if num_classes > 2:
                raise ValueError(
                    f"{where}: average='binary' needs num_classes <= 2, got {num_classes}; "
                    "choose average='macro', 'micro', 'weighted' or None."
                )
            if not 0 <= pos_label < num_classes:
                raise ValueError(
                    f"{where}: `pos_label` must lie in [0, {num_classes}), got {pos_label}."
                )
        _check_range(where, y_true, num_classes)
        _check_range(where, y_pred, num_classes)
        pos_index = pos_label if average == "binary" else None
    counts = confusion_counts(y_true, y_pred, num_classes)
    tp = jnp.diag(counts)
    fp = counts.sum(axis=0) - tp
    fn = counts.sum(axis=1) - tp
    return tp, fp, fn, tp + fn, pos_index


# (numerator, denominator) of each per-class ratio, from true / false positives and negatives
RATIOS = {
    "precision": (lambda tp, fp, fn: tp, lambda tp, fp, fn: tp + fp),
    "recall": (lambda tp, fp, fn: tp, lambda tp, fp, fn: tp + fn),
    "f1": (lambda tp, fp, fn: 2 * tp, lambda tp, fp, fn: 2 * tp + fp + fn),
}


def macro_from_counts(counts: Array, ratio: str) -> Array:
    """The macro average over every class of `ratio` ("precision", "recall", "f1") from a
    confusion matrix ``(classes, classes)`` (rows true, columns predicted), as `precision`
    etc. with ``num_classes`` and ``average="macro"``."""
    numerator, denominator = RATIOS[ratio]
    tp = jnp.diag(counts)
    fp, fn = counts.sum(axis=0) - tp, counts.sum(axis=1) - tp
    return jnp.mean(_divide(numerator(tp, fp, fn), denominator(tp, fp, fn)))


def _score(where: str, numerator, denominator, y_true, y_pred, num_classes, average, pos_label):
    """Applies `average` to the per-class ratio ``numerator(tp, fp, fn) / denominator(...)``."""
    tp, fp, fn, support, pos_index = _per_class(
        where, y_true, y_pred, num_classes, average, pos_label
    )
    if average == "micro":
        return _divide(
            numerator(tp.sum(), fp.sum(), fn.sum()), denominator(tp.sum(), fp.sum(), fn.sum())
        )
    scores = _divide(numerator(tp, fp, fn), denominator(tp, fp, fn))
    if average == "binary":
        return scores[pos_index]
    if average == "macro":
        return jnp.mean(scores)
    if average == "weighted":
        return _divide(jnp.sum(scores * support), jnp.sum(support))
    return scores


def precision(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    num_classes: int | None = None,
    average: str | None = "binary",
    pos_label: int = 1,
) -> Array:
    """``tp / (tp + fp)``: of the samples predicted as a class, the fraction that belong to it.

    Args:
      y_true: integer labels, any shape.
      y_pred: labels of the same shape, or scores with a trailing class axis.
      num_classes: classes ``0 .. num_classes - 1`` (jit-able); None reads them from the data.
      average: "binary", "micro", "macro", "weighted" or None (see the module docstring).
      pos_label: the positive class for ``average="binary"``.
    Returns:
      A float32 scalar, or ``(classes,)`` per-class scores for ``average=None``.
    Raises:
      ValueError: for an unknown `average`, more than two classes with "binary", a `pos_label`
        that is not a class, or labels outside ``[0, num_classes)``.
      TypeError: for labels that are not integers.
    """
    return _score(
        "precision",
        *RATIOS["precision"],
        y_true,
        y_pred,
        num_classes,
        average,
        pos_label,
    )


def recall(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    num_classes: int | None = None,
    average: str | None = "binary",
    pos_label: int = 1,
) -> Array:
    """``tp / (tp + fn)``: of the samples of a class, the fraction predicted as it.

    Arguments, returns and errors as `precision`.
    """
    return _score(
        "recall",
        *RATIOS["recall"],
        y_true,
        y_pred,
        num_classes,
        average,
        pos_label,
    )


def f1_score(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    num_classes: int | None = None,
    average: str | None = "binary",
    pos_label: int = 1,
) -> Array:
    """Harmonic mean of precision and recall, ``2tp / (2tp + fp + fn)`` per class.

    Macro and weighted averages average the per-class F1 (not the F1 of averaged precision
    and recall), as scikit-learn. Arguments, returns and errors as `precision`.
    """
    return _score(
        "f1_score",
        *RATIOS["f1"],
        y_true,
        y_pred,
        num_classes,
        average,
        pos_label,
    )
