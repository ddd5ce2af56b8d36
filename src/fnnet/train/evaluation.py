"""Inference and evaluation in evaluation mode (``train=False``): predict, evaluate, metrics."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from fnnet import _checks, metrics
from fnnet.data.prefetch import check_prefetch
from fnnet.data.prefetch import prefetch as prefetch_items
from fnnet.data.sources import Stream
from fnnet.nn import Layer
from fnnet.train import sharding
from fnnet.train.inputs import (
    SampleLimits,
    check_inputs,
    check_model_fits_data,
    check_transform,
    first_bad_sample,
    prepare_data,
    problem_text,
    sample_limits,
    with_transform,
)
from fnnet.train.placement import is_arrays, resolve
from fnnet.train.precision import check_master_weights, check_precision, compute_in
from fnnet.train.state import TrainState, check_model, check_not_donated
from fnnet.typing import Array

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


def _class_counts(outputs: Array, targets: Array) -> Array:
    """The confusion matrix ``(classes, classes)`` of a classifier's outputs and targets."""
    y_true, y_pred, num_classes = class_labels(outputs, targets)
    return metrics.confusion_counts(y_true, y_pred, num_classes)


def _from_counts(name: str, counts: Array) -> Array:
    """A named metric from a confusion matrix: accuracy, or a macro average over the
    classes."""
    if name == "accuracy":
        return (jnp.trace(counts) / jnp.maximum(jnp.sum(counts), 1)).astype(jnp.float32)
    return metrics.macro_from_counts(counts, name)


def _named(name: str) -> Callable[[Array, Array], Array]:
    def metric(outputs: Array, targets: Array) -> Array:
        return _from_counts(name, _class_counts(outputs, targets))

    metric.__name__ = name
    return metric


NAMED_METRICS: dict[str, Callable[[Array, Array], Array]] = {
    name: _named(name) for name in ("accuracy", "precision", "recall", "f1")
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


EVAL_BATCH_SIZE = 1024  # samples per forward pass of `evaluate` and `predict` by default


@functools.partial(jax.jit, static_argnums=0)
def _forward(model: Layer, params, model_state, inputs: Array) -> Array:
    return model.apply(params, model_state, inputs, train=False)[0]


class _Batches(NamedTuple):
    """Evaluation batches on the device: ``(inputs, targets, checks)`` per batch, where
    `targets` is None for `predict` and `checks` a ``(position, problem, origin)`` of the
    per-batch device check of streamed data (None for data checked up front)."""

    items: Iterator[tuple[Array, Array | None, Any]]
    limits: SampleLimits | None


def _padded(mesh: Mesh | None, inputs: Array) -> Array:
    """`inputs` padded with zeros to a multiple of the mesh's "data" devices and split over
    them (unchanged without a mesh)."""
    if mesh is None:
        return inputs
    pad = -inputs.shape[0] % sharding.data_devices(mesh)
    if pad:
        inputs = jnp.concatenate([inputs, jnp.zeros((pad, *inputs.shape[1:]), inputs.dtype)])
    return sharding.shard_rows(mesh, inputs)


def _batch_size(where: str, batch_size: Any) -> int:
    if batch_size is None:
        return EVAL_BATCH_SIZE
    return _checks.positive_int(where, "batch_size", batch_size)


def _array_batches(inputs, targets, batch_size: int, on_host: bool, limits, prefetch: int):
    """Slices of arrays; host arrays are put on the device a few batches ahead and checked
    there per batch (device arrays were checked up front)."""
    n = inputs.shape[0]

    def sliced(start: int):
        xs = inputs[start : start + batch_size]
        ys = None if targets is None else targets[start : start + batch_size]
        if not on_host:
            return xs, ys, None
        xs = jax.device_put(np.asarray(xs))
        ys = None if ys is None else jax.device_put(np.asarray(ys))
        labels = jnp.zeros((len(xs),), jnp.int8) if ys is None else ys  # none to check
        check = first_bad_sample(xs, labels, limits, 1)
        return xs, ys, (*check, lambda p, s=start: f"sample {s + p}")

    return prefetch_items(range(0, n, batch_size), sliced, prefetch if on_host else 0)


def _stream_batches(stream: Stream, epoch: int, limits, prefetch: int, with_targets: bool):
    def put(numbered):
        number, (inputs, targets) = numbered
        inputs, targets = jax.device_put((inputs, targets))
        check = first_bad_sample(inputs, targets, limits, 1)
        return (
            inputs,
            targets if with_targets else None,
            (*check, lambda p, b=number: f"batch {b}, row {p}"),
        )

    return prefetch_items(enumerate(stream.batches(epoch)), put, prefetch)


def _raise_for_bad(where: str, name: str, checks: list, limits: SampleLimits) -> None:
    """Raises for the first batch whose device check found a bad sample."""
    found = jax.device_get([(position, problem) for position, problem, _ in checks])
    for (position, problem), (_, _, origin) in zip(found, checks, strict=True):
        if position >= 0:
            raise ValueError(
                f"{where}: `{name}` holds {problem_text(int(problem), limits)} at "
                f"{origin(int(position))}; remove or fix that sample."
            )


def _totals(model, loss_fn, metric_items, params, model_state, inputs, targets):
    """Sums over one batch: the loss and each callable metric times the batch's size, and the
    confusion matrix of the named metrics."""
    outputs = model.apply(params, model_state, inputs, train=False)[0][: targets.shape[0]]
    n = targets.shape[0]
    totals = {}
    if loss_fn is not None:
        totals["loss"] = loss_fn(outputs, targets).astype(jnp.float32) * n
    for name, fn in metric_items:
        if NAMED_METRICS.get(name) is fn:
            totals.setdefault(" counts", _class_counts(outputs, targets))
        else:
            totals[name] = jnp.asarray(fn(outputs, targets), jnp.float32) * n
    return totals


_batch_totals = jax.jit(_totals, static_argnums=(0, 1, 2))


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _member_totals(model, loss_fn, metric_items, params, model_state, inputs, targets):
    """`_totals` of each member of an ensemble (params and model state stacked on axis 0)."""
    return jax.vmap(lambda p, s: _totals(model, loss_fn, metric_items, p, s, inputs, targets))(
        params, model_state
    )


def streamed_scores(
    where: str,
    name: str,
    model: Layer,
    state: TrainState,
    loss_fn,
    metric_items,
    source: _Batches,
    mesh: Mesh | None = None,
    members: bool = False,
) -> dict[str, Any]:
    """The loss (if `loss_fn`) and metrics over every batch of `source`: the loss and
    callable metrics as means weighted by batch size, the named ones from the summed
    confusion matrix, so they equal the all-at-once values. Python floats; with `members`
    (an ensemble's stacked state), ``(K,)`` float64 arrays of one value per member."""
    totals, count, checks = None, 0, []
    batch_totals = _member_totals if members else _batch_totals
    for inputs, targets, check in source.items:
        batch = batch_totals(model, loss_fn, metric_items, state.params, state.model_state,
                             _padded(mesh, inputs), targets)  # fmt: skip
        totals = batch if totals is None else jax.tree.map(jnp.add, totals, batch)
        count += targets.shape[0]
        if check is not None:
            checks.append(check)
    if checks:
        _raise_for_bad(where, name, checks, source.limits)
    if totals is None:
        raise ValueError(f"{where}: `{name}` holds no samples.")
    totals = jax.device_get(totals)
    value = functools.partial(np.asarray, dtype=np.float64) if members else float
    row = {"loss": value(totals["loss"]) / count} if loss_fn is not None else {}
    for metric, fn in metric_items:
        if NAMED_METRICS.get(metric) is fn:
            from_counts = functools.partial(_from_counts, metric)
            row[metric] = value((jax.vmap(from_counts) if members else from_counts)(
                totals[" counts"]))  # fmt: skip
        else:
            row[metric] = value(totals[metric]) / count
    return row


def evaluation_source(where: str, name: str, data: Any, model: Layer, state: TrainState, *,
                      loss_fn=None, batch_size: int, prefetch: int = 2,
                      epoch: int = 1) -> _Batches:  # fmt: skip
    """The batches of `data` (arrays, or a stream of ``(inputs, targets)`` batches) for
    `streamed_scores`, after the checks that can run before any batch: device arrays are
    checked whole where they live, host arrays and streams batch by batch on the device."""
    if not is_arrays(data):
        stream = data if isinstance(data, Stream) else Stream(where, name, data)
        inputs, targets = stream.first_batch(epoch)
        check_model_fits_data(where, model, state, loss_fn, {name: (inputs, targets)}, False)
        limits = sample_limits(model, state, inputs, targets)
        return _Batches(_stream_batches(stream, epoch, limits, prefetch, True), limits)
    inputs, targets = _checks.data_pair(where, name, data)
    if resolve(where, name, (inputs, targets), "auto") == "host":
        inputs, targets = (_checks.real_array(where, f"`{name}` {part}", x)
                           for part, x in (("inputs", inputs), ("targets", targets)))  # fmt: skip
        check_model_fits_data(where, model, state, loss_fn, {name: (inputs, targets)}, False)
        limits = sample_limits(model, state, inputs, targets)
        return _Batches(_array_batches(inputs, targets, batch_size, True, limits, prefetch), limits)
    inputs, targets = prepare_data(where, name, (inputs, targets), model)
    check_model_fits_data(where, model, state, loss_fn, {name: (inputs, targets)})
    return _Batches(_array_batches(inputs, targets, batch_size, False, None, 0), None)


def predict(
    model: Layer,
    state: TrainState,
    inputs: Any,
    *,
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    precision: str = "float32",
    transform: Callable[[Array], Array] | None = None,
    prefetch: int = 2,
) -> Array:
    """The model's outputs (e.g. logits) in evaluation mode, computed batch by batch.

    Args:
      model: the network.
      state: a TrainState (its params and model state are used).
      inputs: ``(n, ...)`` (a JAX or NumPy array, a memmap, nested lists of numbers), or an
        iterable of input batches (a generator, a list of arrays, a loader yielding arrays).
      batch_size: samples per forward pass of array inputs (default `EVAL_BATCH_SIZE`, 1024;
        the last batch may be smaller, one more compiled program); memory grows with it, the
        outputs do not depend on it.
      mesh: a `jax.sharding.Mesh` with an axis "data": each batch is split over its devices
        (padded to a multiple of their number), the state replicated on them.
      precision: "float32", "highest" or "bfloat16", as `fit`'s (bfloat16 outputs come back
        as float32).
      transform: a function applied to each inputs batch on the device, as `fit`'s.
      prefetch: host batches transferred ahead (0 for none), as `fit`'s.
    Returns:
      ``(n, ...)`` outputs on the device.
    Raises:
      ValueError: for a `batch_size` that is not a positive int, inputs holding NaN or inf,
        or token ids outside the model's Embedding (the checks `fit` runs on its data).
      TypeError: for a `model` or `state` of the wrong kind, or inputs that are not real.
    """
    model = _check_model_and_state("predict", model, state, precision)
    mesh = sharding.check_mesh("predict", mesh)
    batch_size, prefetch = _batch_size("predict", batch_size), check_prefetch("predict", prefetch)
    if mesh is not None:
        state = sharding.replicate(mesh, state)
    if _is_input_stream(inputs):
        stream = Stream("predict", "inputs", ((x, np.zeros(len(x), np.int8)) for x in inputs))
        first = stream.first_batch(1)[0]
        transform = check_transform("predict", transform, first)
        model = with_transform(model, transform)
        limits = sample_limits(model, state, first, np.zeros(2, np.int8))
        source = _Batches(_stream_batches(stream, 1, limits, prefetch, False), limits)
    else:
        inputs = _checks.real_array("predict", "`inputs`", inputs)
        transform = check_transform("predict", transform, inputs)
        model = with_transform(model, transform)
        on_host = (isinstance(inputs, np.ndarray)
                   and resolve("predict", "inputs", (inputs,), "auto") == "host")  # fmt: skip
        limits = sample_limits(model, state, inputs, np.zeros(2, np.int8)) if on_host else None
        if not on_host:
            inputs = check_inputs("predict", "`inputs`", inputs, model)
        source = _Batches(
            _array_batches(inputs, None, batch_size, on_host, limits, prefetch), limits
        )
    outputs, checks = [], []
    for batch, _, check in source.items:
        out = _forward(model, state.params, state.model_state, _padded(mesh, batch))
        outputs.append(out[: batch.shape[0]])
        if check is not None:
            checks.append(check)
    if checks:
        _raise_for_bad("predict", "inputs", checks, source.limits)
    return outputs[0] if len(outputs) == 1 else jnp.concatenate(outputs)


def _is_input_stream(inputs: Any) -> bool:
    """An iterable of input batches, not one array: not array-like, and (for a list) made of
    arrays rather than numbers."""
    if hasattr(inputs, "shape") or isinstance(inputs, str):
        return False
    if isinstance(inputs, list | tuple):
        return bool(inputs) and hasattr(inputs[0], "shape") and np.ndim(inputs[0]) >= 1
    try:
        iter(inputs)
    except TypeError:
        return False
    return True


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


def evaluate(
    model: Layer,
    state: TrainState,
    data: Any,
    *,
    loss_fn: Callable[[Array, Array], Array] | None = None,
    metrics: Sequence[Metric] = (),
    batch_size: int | None = None,
    mesh: Mesh | None = None,
    precision: str = "float32",
    transform: Callable[[Array], Array] | None = None,
    prefetch: int = 2,
) -> dict[str, float]:
    """Loss and metrics of the model on `data` in evaluation mode, batch by batch.

    The loss is the mean of the batches' losses weighted by their sizes, the named metrics
    come from the confusion matrix summed over the batches, so both equal their values on all
    samples at once (for a loss that is a mean over samples, to float rounding); a callable
    metric is the batch-size-weighted mean of its batch values (exact for means over samples,
    not for e.g. a median).

    Args:
      model: the network.
      state: a TrainState.
      data: ``(inputs, targets)`` arrays (JAX or NumPy, memmaps streamed from the host), or an
        iterable of ``(inputs, targets)`` batches (a DataLoader, a list of pairs), read once.
      loss_fn: optional ``loss_fn(outputs, targets) -> scalar``.
      metrics: names ("accuracy", "precision", "recall", "f1": macro averages over the model's
        classes, from the argmax of its outputs) or callables ``(outputs, targets) -> scalar``.
      batch_size: samples per forward pass of arrays (default `EVAL_BATCH_SIZE`, 1024).
      mesh: as `predict`: each batch split over the mesh's "data" devices.
      precision: as `predict`; the loss and metrics are computed in float32.
      transform: a function applied to each inputs batch on the device, as `fit`'s.
      prefetch: host batches transferred ahead (0 for none), as `fit`'s.
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
    batch_size, prefetch = _batch_size("evaluate", batch_size), check_prefetch("evaluate", prefetch)
    if transform is not None:
        if is_arrays(data):
            inputs = _checks.data_pair("evaluate", "data", data)[0]
        else:  # its first batch shows the inputs' shape, and is yielded again later
            data = Stream("evaluate", "data", data)
            inputs = data.first_batch(1)[0]
        inputs = _checks.real_array("evaluate", "`data` inputs", inputs)
        transform = check_transform("evaluate", transform, inputs)
        model = with_transform(model, transform)
    if mesh is not None:
        state = sharding.replicate(mesh, state)
    source = evaluation_source("evaluate", "data", data, model, state, loss_fn=loss_fn,
                               batch_size=batch_size, prefetch=prefetch)  # fmt: skip
    return streamed_scores("evaluate", "data", model, state, loss_fn, metric_items, source, mesh)


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
    train_source: tuple[Array, Array] | Callable[[TrainState, int], _Batches] | None,
    validation_source: tuple[Array, Array] | Callable[[TrainState, int], _Batches] | None,
    mesh: Mesh | None = None,
    members: bool = False,
    epoch: int = 1,
) -> dict[str, Any]:
    """One epoch's scores: the mean training loss of its steps, the metrics on the training
    data (one evaluation-mode pass, if any are asked for) and loss and metrics on the
    validation data. Each source is ``(inputs, targets)`` device arrays already checked (as
    `prepare_data` returns them) or a function ``(state, epoch)`` making the pass's batches
    (as `evaluation_source`). With `members`, `state` is an ensemble's, `step_losses`
    ``(K, updates)`` and every score a ``(K,)`` array (see `streamed_scores`)."""

    def batches(source):  # device arrays: checked once by fit, sliced without checks
        if isinstance(source, tuple):
            return _Batches(_array_batches(*source, EVAL_BATCH_SIZE, False, None, 0), None)
        if members:  # the checks of a source read shapes only: one member's, abstract
            one = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), state)
            return source(one, epoch)
        return source(state, epoch)

    where = "fit_ensemble" if members else "fit"
    row = {"loss": np.mean(step_losses, axis=1) if members else float(np.mean(step_losses))}
    if metric_items and train_source is not None:
        row.update(streamed_scores(where, "train_data", model, state, None, metric_items,
                                   batches(train_source), mesh, members))  # fmt: skip
    if validation_source is not None:
        validation = streamed_scores(where, "validation_data", model, state, loss_fn,
                                     metric_items, batches(validation_source), mesh,
                                     members)  # fmt: skip
        row.update({f"val_{name}": value for name, value in validation.items()})
    return row
