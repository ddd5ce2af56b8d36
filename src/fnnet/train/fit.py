"""`fit`: mini-batch training with validation, metrics, early stopping and a progress line."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import _checks
from fnnet.nn import Layer
from fnnet.nn._layer import id_bound
from fnnet.optim import Optimizer
from fnnet.train import _dispatch
from fnnet.train.evaluation import Metric, data_pair, predict, resolve_metrics, scores
from fnnet.train.state import TrainState, check_model_and_optimizer, init_state
from fnnet.train.step import make_stepwise_epoch, make_train_epoch, train_step_fn
from fnnet.typing import Array, PRNGKey


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
    """Stops `fit` once `monitor` has not improved for `patience` epochs.

    An epoch improves when its value beats the best so far by more than `min_delta` (lower for
    ``mode="min"``, higher for ``mode="max"``). With `restore_best`, `fit` returns the state of
    the best epoch rather than the last one.

    Args:
      patience: epochs without improvement tolerated before stopping; a positive int.
      monitor: a history key: "val_loss" (default), "loss", "val_accuracy", ...
      mode: "min" or "max".
      min_delta: the smallest change that counts as an improvement, >= 0.
      restore_best: return the best epoch's state.
    """

    patience: int
    _: dataclasses.KW_ONLY
    monitor: str = "val_loss"
    mode: str = "min"
    min_delta: float = 0.0
    restore_best: bool = True

    def __post_init__(self) -> None:
        _checks.positive_int("EarlyStopping", "patience", self.patience)
        _checks.one_of("EarlyStopping", "mode", self.mode, ("min", "max"))
        _checks.non_negative("EarlyStopping", "min_delta", self.min_delta)

    def improves(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta


class FitResult(NamedTuple):
    """What `fit` returns: the final (or best) TrainState and the per-epoch history."""

    state: TrainState
    history: dict[str, list[float]]


class NonFiniteLossError(FloatingPointError):
    """Raised by `fit` when the training loss stops being finite.

    Attributes:
      epoch: the epoch (1-based) in which it happened.
      step: the step within that epoch (1-based).
      result: a FitResult whose state is the last one with a finite loss and finite gradients,
        and whose history covers the completed epochs.
    """

    def __init__(self, message: str, *, epoch: int, step: int, result: FitResult):
        super().__init__(message)
        self.epoch, self.step, self.result = epoch, step, result


def _check_finite(where: str, name: str, array: Any) -> None:
    values = np.asarray(array)
    if not np.issubdtype(values.dtype, np.floating):
        return
    bad = ~np.isfinite(values)
    count = int(bad.sum())
    if count:
        row = int(np.argwhere(bad)[0][0])
        raise ValueError(
            f"{where}: {name} contains {count} NaN or inf entries (the first in sample {row}); "
            "remove or impute them before training."
        )


def _check_data(where: str, name: str, data: Any, model: Layer) -> tuple[Array, Array]:
    inputs, targets = data_pair(where, name, data)
    _check_finite(where, f"`{name}` inputs", inputs)
    _check_finite(where, f"`{name}` targets", targets)
    num_ids = id_bound(model)
    if num_ids is not None and np.issubdtype(np.asarray(inputs).dtype, np.integer):
        _checks.ids_in_range(
            where,
            f"`{name}` inputs (token ids)",
            inputs,
            num_ids,
            f" for the model's Embedding of {num_ids} ids",
        )
    return jnp.asarray(inputs), jnp.asarray(targets)


def _check_fits_loss(model: Layer, state: TrainState, loss_fn, inputs: Array, targets: Array):
    """Traces the model and loss on the data's shapes; raises a clear error if they disagree."""
    input_spec = jax.ShapeDtypeStruct((2, *inputs.shape[1:]), inputs.dtype)
    target_spec = jax.ShapeDtypeStruct((2, *targets.shape[1:]), targets.dtype)
    outputs = jax.eval_shape(
        lambda p, s, x: model.apply(p, s, x, train=False)[0],
        state.params,
        state.model_state,
        input_spec,
    )
    try:
        loss = jax.eval_shape(loss_fn, outputs, target_spec)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"fit: the model's outputs {_checks.shape_str(outputs)} do not fit `loss_fn` with "
            f"targets {_checks.shape_str(target_spec)} (batch of 2 shown): {error}"
        ) from error
    if loss.shape != ():
        raise ValueError(
            f"fit: `loss_fn` must return a scalar, got shape {loss.shape}; use reduction='mean'."
        )
    return outputs


def _check_label_range(name: str, outputs, targets: Array) -> None:
    """Integer targets index the model's output classes: check they exist.

    A model with a single output has no class axis (a binary logit or a regression), so its
    integer targets are values, not indices.
    """
    num_classes = outputs.shape[-1] if outputs.shape else 1
    if (
        num_classes == 1
        or not jnp.issubdtype(targets.dtype, jnp.integer)
        or outputs.shape[:-1] != (2, *targets.shape[1:])
    ):
        return
    _checks.ids_in_range(
        "fit",
        f"`{name}` labels",
        targets,
        num_classes,
        f" for a model with {num_classes} outputs (one per class)",
    )


def _progress_line(
    epoch: int, epochs: int, row: dict[str, float], seconds: float, compiled: bool
) -> str:
    width = len(str(epochs))
    values = "  ".join(f"{name} {value:.4g}" for name, value in row.items())
    note = " with compilation" if compiled else ""
    return f"epoch {epoch:>{width}}/{epochs}  {values}  ({seconds:.2f}s{note})"


def fit(
    model: Layer,
    loss_fn: Callable[[Any, Array], Array],
    optimizer: Optimizer,
    train_data: tuple[Any, Any],
    *,
    epochs: int,
    batch_size: int,
    key: PRNGKey,
    validation_data: tuple[Any, Any] | None = None,
    metrics: Sequence[Metric] = (),
    early_stopping: EarlyStopping | None = None,
    verbose: bool = True,
    dispatch: str = "auto",
) -> FitResult:
    """Trains `model` with mini-batch gradient descent, one compiled program per epoch.

    Each epoch shuffles the training data (a new order every epoch, derived from `key`) and
    runs every full mini-batch, by default as one compiled program (`make_train_epoch`); then
    the metrics are computed in evaluation mode on the training data (if any are asked for)
    and on `validation_data`. Layer state (BatchNorm statistics) is updated by the training
    steps and used in evaluation.

    Args:
      model: the network, e.g. ``nn.MLP((128,), 10)``.
      loss_fn: ``loss_fn(outputs, targets) -> scalar``, e.g. ``losses.softmax_cross_entropy``.
      optimizer: e.g. ``optim.adam(1e-3)``.
      train_data: ``(inputs, targets)`` with a shared first axis.
      epochs: the most epochs to run.
      batch_size: samples per step; the last partial batch of an epoch is skipped.
      key: seeds the initial params, the shuffles and dropout: the same key gives the same run.
      validation_data: optional ``(inputs, targets)`` scored after every epoch.
      metrics: names ("accuracy", "precision", "recall", "f1": macro averages over the model's
        classes from the argmax of its outputs) or callables ``(outputs, targets) -> scalar``.
      early_stopping: an EarlyStopping, e.g. ``EarlyStopping(patience=5)`` on "val_loss".
      verbose: print one line per epoch with the loss, metrics and time.
      dispatch: "scan" runs each epoch as one compiled `lax.scan`; "step" dispatches one
        jitted step per mini-batch from Python (same results); "auto" (default) picks "step"
        on CPU when the step contains a convolution, which XLA:CPU runs up to 18x slower
        inside a loop, and "scan" otherwise (see benchmarks/bench_dispatch.py).
    Returns:
      FitResult ``(state, history)``; history maps "loss", each metric name, "val_loss" and
      "val_<metric>" to per-epoch values ("loss" is the mean training loss of the epoch's
      steps).
    Raises:
      ValueError: for inputs and targets of different lengths, a `batch_size` of 0 or larger
        than the training data, labels out of range for the model's outputs, NaN or inf in the
        data, a model whose outputs do not fit `loss_fn`, or an `early_stopping.monitor` that
        is not in the history.
      NonFiniteLossError: when the training loss becomes NaN or inf; it names the epoch and
        step, and its ``.result`` holds the last finite state and the history so far.

    Example:
      >>> # result = fit(nn.MLP((64,), 10), losses.softmax_cross_entropy, optim.adam(1e-3),
      >>> #              (x_train, y_train), epochs=50, batch_size=32, key=jax.random.key(0),
      >>> #              validation_data=(x_val, y_val), metrics=("accuracy",),
      >>> #              early_stopping=EarlyStopping(patience=5))
    """
    check_model_and_optimizer("fit", model, optimizer)
    _checks.prng_key("fit", key)
    if not callable(loss_fn):
        raise TypeError(f"fit: `loss_fn` must be callable, got {type(loss_fn).__name__}.")
    epochs = _checks.positive_int("fit", "epochs", epochs)
    batch_size = _checks.positive_int("fit", "batch_size", batch_size)
    metric_items = resolve_metrics("fit", metrics)
    inputs, targets = _check_data("fit", "train_data", train_data, model)
    if batch_size > inputs.shape[0]:
        raise ValueError(
            f"fit: `batch_size` {batch_size} exceeds the {inputs.shape[0]} training samples; "
            "each epoch runs full batches only, so lower batch_size."
        )
    validation = None
    if validation_data is not None:
        validation = _check_data("fit", "validation_data", validation_data, model)

    state = init_state(model, optimizer, key, inputs.shape[1:])
    outputs = _check_fits_loss(model, state, loss_fn, inputs, targets)
    _check_label_range("train_data", outputs, targets)
    if validation is not None:
        _check_fits_loss(model, state, loss_fn, *validation)
        _check_label_range("validation_data", outputs, validation[1])

    names = ["loss"] + [name for name, _ in metric_items]
    history_keys = names + ([f"val_{name}" for name in names] if validation is not None else [])
    if early_stopping is not None and early_stopping.monitor not in history_keys:
        raise ValueError(
            f"fit: EarlyStopping monitors {early_stopping.monitor!r}, which this run does not "
            f"record; choose one of {history_keys} (val_* needs validation_data)."
        )
    history: dict[str, list[float]] = {name: [] for name in history_keys}

    mode = _dispatch.choose(
        dispatch,
        train_step_fn(model, loss_fn, optimizer, guard=True),
        state,
        jax.ShapeDtypeStruct((batch_size, *inputs.shape[1:]), inputs.dtype),
        jax.ShapeDtypeStruct((batch_size, *targets.shape[1:]), targets.dtype),
        True,
    )
    make_epoch = make_train_epoch if mode == "scan" else make_stepwise_epoch
    run_epoch = make_epoch(model, loss_fn, optimizer, batch_size=batch_size)
    if verbose:
        how = {
            "scan": "each epoch one compiled program",
            "step": "one jitted step per mini-batch",
        }[mode]
        print(
            f"fit: {inputs.shape[0]} samples, {inputs.shape[0] // batch_size} steps of "
            f"{batch_size} per epoch, {how}",
            flush=True,
        )
    best_value, best_state, best_epoch, waited = None, None, 0, 0
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        state, step_losses = run_epoch(state, inputs, targets)
        step_losses = np.asarray(step_losses)
        finite = np.isfinite(step_losses)
        if not finite.all():
            bad = int(np.argmin(finite))
            raise NonFiniteLossError(
                f"fit: the training loss or its gradients stopped being finite at epoch {epoch}, "
                f"step {bad + 1} of {step_losses.size}; training stopped and the last finite "
                f"state (step {int(state.step)}) is kept in this error's `.result`. Lower the "
                "learning rate, clip gradients with `optim.clip_by_global_norm`, or check the "
                "data.",
                epoch=epoch,
                step=bad + 1,
                result=FitResult(state, history),
            )
        row = {"loss": float(step_losses.mean())}
        if metric_items:
            train_outputs = predict(model, state, inputs)
            row.update(scores(None, metric_items, train_outputs, targets))
        if validation is not None:
            val_outputs = predict(model, state, validation[0])
            val_scores = scores(loss_fn, metric_items, val_outputs, validation[1])
            row.update({f"val_{name}": value for name, value in val_scores.items()})
        for name, value in row.items():
            history[name].append(value)
        if verbose:
            seconds = time.perf_counter() - started
            print(_progress_line(epoch, epochs, row, seconds, compiled=epoch == 1), flush=True)

        if early_stopping is None:
            continue
        value = row[early_stopping.monitor]
        if early_stopping.improves(value, best_value):
            best_value, best_epoch, waited = value, epoch, 0
            if early_stopping.restore_best:
                best_state = jax.tree.map(lambda a: a.copy(), state)  # `state` gets donated
        else:
            waited += 1
            if waited >= early_stopping.patience:
                if verbose:
                    print(
                        f"early stopping: {early_stopping.monitor} has not improved for "
                        f"{waited} epochs; best {best_value:.4f} at epoch {best_epoch}",
                        flush=True,
                    )
                break
    if best_state is not None and not math.isnan(best_value):
        if verbose and best_epoch != len(history["loss"]):
            print(f"restored the state of epoch {best_epoch}", flush=True)
        state = best_state
    return FitResult(state, history)
