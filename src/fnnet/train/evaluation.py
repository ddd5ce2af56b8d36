"""Inference and evaluation in evaluation mode (``train=False``): predict, evaluate, metrics."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from fnnet import _checks, metrics
from fnnet.nn import Layer
from fnnet.train import sharding
from fnnet.train.inputs import check_inputs, check_model_fits_data, prepare_data
from fnnet.train.precision import check_master_weights, check_precision, compute_in
from fnnet.train.state import TrainState, check_model, check_not_donated
from fnnet.typing import Array, ArrayLike

Metric = str | Callable[[Array, Array], Array]


def class_labels(outputs: Array, targets: Array) -> tuple[Array, Array, int]:
    """``(y_true, y_pred, num_classes)`` read from a classifier's outputs and its targets.

    Outputs ``(..., classes)`` give ``argmax``; targets are class ids ``(...)`` or one-hot /
    probabilities ``(..., classes)``. A single output (``(..., 1)`` or the targets' shape) is
    read as a binary logit: class 1 where it is > 0, and float targets as class 1 where > 0.5.
    """
    if outputs.shape == targets.shape and (outputs.ndim == 1 or outputs.shape[-1] == 1):
        binary_targets = targets > 0.5 if jnp.issubdtype(targets.dtype, jnp.floating) else targets
        return (
            jnp.ravel(binary_targets).astype(jnp.int32),
            jnp.ravel(outputs > 0).astype(jnp.int32),
            2,
        )
    if outputs.ndim >= 1 and outputs.shape[-1] == 1 and targets.shape == outputs.shape[:-1]:
        return targets.astype(jnp.int32), (outputs[..., 0] > 0).astype(jnp.int32), 2
    num_classes = outputs.shape[-1]
    if targets.shape == outputs.shape:
        return jnp.argmax(targets, axis=-1), jnp.argmax(outputs, axis=-1), num_classes
    if targets.shape == outputs.shape[:-1] and jnp.issubdtype(targets.dtype, jnp.integer):
        return targets, jnp.argmax(outputs, axis=-1), num_classes
    raise ValueError(
        f"metrics: cannot read class labels from outputs of shape {outputs.shape} and targets "
        f"{_checks.shape_str(targets)}; named metrics need class scores (..., classes) with "
        "integer or one-hot targets. Pass a callable metric (outputs, targets) -> scalar instead."
    )


def _named(function: Callable[..., Array], **kwargs: Any) -> Callable[[Array, Array], Array]:
    def metric(outputs: Array, targets: Array) -> Array:
        y_true, y_pred, num_classes = class_labels(outputs, targets)
        return function(y_true, y_pred, num_classes=num_classes, **kwargs)

    return metric


def _accuracy(y_true, y_pred, num_classes):
    return metrics.accuracy(y_true, y_pred)


NAMED_METRICS: dict[str, Callable[[Array, Array], Array]] = {
    "accuracy": _named(_accuracy),
    "precision": _named(metrics.precision, average="macro"),
    "recall": _named(metrics.recall, average="macro"),
    "f1": _named(metrics.f1_score, average="macro"),
}


def resolve_metrics(where: str, items: Sequence[Metric]) -> tuple[tuple[str, Callable], ...]:
    """``(name, fn(outputs, targets))`` pairs for metric names and callables."""
    if isinstance(items, str) or callable(items):
        items = (items,)
    resolved = []
    for item in items:
        if isinstance(item, str):
            if item not in NAMED_METRICS:
                raise _checks.unknown_name(
                    where, "metric", item, NAMED_METRICS, "a callable (outputs, targets) -> scalar"
                )
            resolved.append((item, NAMED_METRICS[item]))
        elif callable(item):
            resolved.append((getattr(item, "__name__", type(item).__name__), item))
        else:
            raise TypeError(
                f"{where}: each metric must be a name or a callable (outputs, targets) -> "
                f"scalar, got {type(item).__name__} {item!r}."
            )
    names = [name for name, _ in resolved]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{where}: metric names must be unique, got {duplicates} twice.")
    return tuple(resolved)


@functools.partial(jax.jit, static_argnums=0)
def _forward(model: Layer, params, model_state, inputs: Array) -> Array:
    return model.apply(params, model_state, inputs, train=False)[0]


def predict(
    model: Layer,
    state: TrainState,
    inputs: ArrayLike,
    *,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    precision: str = "float32",
) -> Array:
    """The model's outputs (e.g. logits) in evaluation mode.

    Args:
      model: the network.
      state: a TrainState (its params and model state are used).
      inputs: ``(n, ...)``.
      batch_size: run in chunks of this many samples (the last one padded, so at most one
        compilation); None runs all samples at once.
      mesh: a `jax.sharding.Mesh` with an axis "data": the samples are split over its devices
        (padded to a multiple of their number), the state replicated on them.
      precision: "float32", "highest" or "bfloat16", as `fit`'s (bfloat16 outputs come back
        as float32).
    Returns:
      ``(n, ...)`` outputs.
    Raises:
      ValueError: for a `batch_size` that is not a positive int, inputs holding NaN or inf,
        or token ids outside the model's Embedding (the checks `fit` runs on its data).
      TypeError: for a `model` or `state` of the wrong kind, or inputs that are not real.
    """
    model = _check_model_and_state("predict", model, state, precision)
    mesh = sharding.check_mesh("predict", mesh)
    inputs = check_inputs("predict", "`inputs`", inputs, model)
    return _predict("predict", model, state, inputs, batch_size, mesh)


def _check_model_and_state(where: str, model: Any, state: Any, precision: Any) -> Layer:
    """Checks the arguments; returns `model` computing in `precision`."""
    check_model(where, model)
    precision = check_precision(where, precision)
    if not isinstance(state, TrainState):
        raise TypeError(
            f"{where}: `state` must be a TrainState (e.g. `result.state` of fit, or "
            f"`train.init_state(...)`), got {type(state).__name__}."
        )
    check_not_donated(where, "state", state)
    check_master_weights(where, precision, state.params)
    return compute_in(where, model, precision)


def _predict(where: str, model: Layer, state: TrainState, inputs, batch_size, mesh=None) -> Array:
    inputs = jnp.asarray(inputs)
    if batch_size is not None:
        batch_size = _checks.positive_int(where, "batch_size", batch_size)
    n, devices = inputs.shape[0], sharding.data_devices(mesh)
    chunk = n if batch_size is None or batch_size >= n else batch_size
    chunk += -chunk % devices  # every chunk splits evenly over the mesh
    padding = jnp.zeros((-n % chunk, *inputs.shape[1:]), inputs.dtype)
    padded = jnp.concatenate([inputs, padding]) if len(padding) else inputs
    if mesh is not None:
        state = sharding.replicate(mesh, state)
    outputs = []
    for start in range(0, padded.shape[0], chunk):
        rows = padded[start : start + chunk]
        rows = rows if mesh is None else sharding.shard_rows(mesh, rows)
        outputs.append(_forward(model, state.params, state.model_state, rows))
    return (outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs))[:n]


@functools.partial(jax.jit, static_argnums=(0, 1))
def _scores(loss_fn, metric_items, outputs, targets) -> dict[str, Array]:
    scores = {"loss": loss_fn(outputs, targets)} if loss_fn is not None else {}
    scores.update({name: fn(outputs, targets) for name, fn in metric_items})
    return scores


def scores(loss_fn, metric_items, outputs: Array, targets: Array) -> dict[str, float]:
    """The loss (if `loss_fn`) and metrics of the outputs, as Python floats."""
    values = _scores(loss_fn, metric_items, outputs, targets)  # a dict with sorted keys
    order = (["loss"] if loss_fn is not None else []) + [name for name, _ in metric_items]
    return {name: float(values[name]) for name in order}


def evaluate(
    model: Layer,
    state: TrainState,
    data: tuple[ArrayLike, ArrayLike],
    *,
    loss_fn: Callable[[Array, Array], Array] | None = None,
    metrics: Sequence[Metric] = (),
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    precision: str = "float32",
) -> dict[str, float]:
    """Loss and metrics of the model on `data` in evaluation mode.

    The loss and metrics are computed on all outputs at once, so their values do not depend on
    `batch_size` (which only bounds the memory of the forward pass).

    Args:
      model: the network.
      state: a TrainState.
      data: ``(inputs, targets)``.
      loss_fn: optional ``loss_fn(outputs, targets) -> scalar``.
      metrics: names ("accuracy", "precision", "recall", "f1": macro averages over the model's
        classes, from the argmax of its outputs) or callables ``(outputs, targets) -> scalar``.
      batch_size: as `predict`.
      mesh: as `predict`: the forward pass split over the mesh's "data" devices.
      precision: as `predict`; the loss and metrics are computed in float32.
    Returns:
      ``{"loss": ..., <metric name>: ...}`` of Python floats.
    Raises:
      ValueError: as `fit` for its data: inputs and targets of different lengths, NaN or inf,
        labels outside the model's classes, token ids outside its Embedding, outputs that do
        not fit `loss_fn`.
      TypeError: for arguments of the wrong kind.

    Example:
      >>> # evaluate(model, state, (x_test, y_test), metrics=("accuracy", "f1"))
    """
    model = _check_model_and_state("evaluate", model, state, precision)
    mesh = sharding.check_mesh("evaluate", mesh)
    metric_items = resolve_metrics("evaluate", metrics)
    inputs, targets = prepare_data("evaluate", "data", data, model)
    check_model_fits_data("evaluate", model, state, loss_fn, {"data": (inputs, targets)})
    outputs = _predict("evaluate", model, state, inputs, batch_size, mesh)
    return scores(loss_fn, metric_items, outputs, targets)


def history_keys(metric_items, validation: bool) -> list[str]:
    """The scored keys of a run's history: "loss", the metrics, and their "val_" twins."""
    names = ["loss"] + [name for name, _ in metric_items]
    return names + ([f"val_{name}" for name in names] if validation else [])


def history_row(
    model: Layer,
    state: TrainState,
    loss_fn,
    metric_items,
    step_losses: Array,
    train_data: tuple[Array, Array],
    validation_data: tuple[Array, Array] | None,
    mesh: Mesh | None = None,
) -> dict[str, float]:
    """One epoch's scores: the mean training loss of its steps, the metrics on the training
    data (in evaluation mode, if any are asked for) and loss and metrics on the validation
    data."""
    row = {"loss": float(np.mean(step_losses))}
    if metric_items:
        outputs = _predict("fit", model, state, train_data[0], None, mesh)
        row.update(scores(None, metric_items, outputs, train_data[1]))
    if validation_data is not None:
        outputs = _predict("fit", model, state, validation_data[0], None, mesh)
        validation = scores(loss_fn, metric_items, outputs, validation_data[1])
        row.update({f"val_{name}": value for name, value in validation.items()})
    return row
