"""`fit`: the training loop, glue over reusable parts (checks, state, epochs, scores, callbacks).

Every piece it calls is usable in a loop of one's own: `inputs.prepare_data`,
`state.init_state` / `state.check_state`, `epoch.epoch_runner` / `epoch.run_epoch`,
`evaluation.history_row` and the `callbacks` hooks (the README shows such a loop).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh

from fnnet import _checks
from fnnet.nn import Layer
from fnnet.nn.summary import totals_line
from fnnet.optim import Optimizer
from fnnet.optim._base import current_learning_rate
from fnnet.train import _dispatch, sharding
from fnnet.train.callbacks import Callback, EarlyStopping, check_callbacks, check_monitors
from fnnet.train.checkpointing import Checkpoint, resume, save_due, split_checkpoints
from fnnet.train.epoch import epoch_runner, run_epoch, update_indices
from fnnet.train.evaluation import Metric, history_keys, history_row, resolve_metrics
from fnnet.train.inputs import check_batching, check_model_fits_data, prepare_data
from fnnet.train.precision import check_master_weights, check_precision, compute_in
from fnnet.train.progress import Progress
from fnnet.train.state import TrainState, check_model_and_optimizer, check_state, init_state
from fnnet.train.step import first_nonfinite, train_step_fn
from fnnet.typing import Array, PRNGKey


class FitResult(NamedTuple):
    """What `fit` returns: the final (or best) TrainState and the per-epoch history."""

    state: TrainState
    history: dict[str, list[float]]


class NonFiniteLossError(FloatingPointError):
    """Raised by `fit` when a training step stops being finite.

    Attributes:
      epoch: the epoch (1-based) in which it happened.
      step: the update within that epoch (1-based).
      path: the tree path of the first non-finite gradient (``"[2]['w']"``), else of the first
        non-finite new parameter; ``"opt_state..."`` / ``"model_state..."`` for a leaf of
        those; None when only the loss was not finite.
      result: a FitResult whose state is the last one whose loss, gradients, params and
        optimizer state were all finite, and whose history covers the completed epochs.
    """

    def __init__(
        self, message: str, *, epoch: int, step: int, result: FitResult, path: str | None = None
    ):
        super().__init__(message)
        self.epoch, self.step, self.path, self.result = epoch, step, path, result


def _raise_if_not_finite(
    losses: np.ndarray,
    epoch: int,
    result: FitResult,
    locate: Callable[[int], tuple[str, str] | None],
) -> None:
    """Raises NonFiniteLossError at the first NaN loss; ``locate(update)`` recomputes that
    update from the last good state and names where it stops being finite."""
    finite = np.isfinite(losses)
    if finite.all():
        return
    bad = int(np.argmin(finite))
    found = locate(bad)
    path = found[1] if found else None
    where = f" (first in the {found[0]} at {path})" if found else " (its loss)"
    raise NonFiniteLossError(
        f"fit: the training step stopped being finite at epoch {epoch}, step {bad + 1} of "
        f"{losses.size}{where}; training stopped and the last finite state (step "
        f"{int(result.state.step)}) is kept in this error's `.result`. Lower the learning rate, "
        "clip gradients with `optim.clip_by_global_norm`, or check the data.",
        epoch=epoch,
        step=bad + 1,
        path=path,
        result=result,
    )


def _locator(model, loss_fn, optimizer, state, inputs, targets, batch_size, accumulate_steps):
    """``locate(update)`` for `_raise_if_not_finite`: `state` is the last committed one, so
    the epoch began `update` steps before it, which gives the failing update's samples."""

    def locate(update: int) -> tuple[str, str] | None:
        start = SimpleNamespace(key=state.key, step=state.step - update)  # all shuffle_key reads
        rows = update_indices(start, inputs.shape[0], batch_size=batch_size,
                              accumulate_steps=accumulate_steps)[update]  # fmt: skip

        def batch_at(i):
            return inputs[rows[i]], targets[rows[i]]

        return first_nonfinite(model, loss_fn, optimizer, state, batch_at, accumulate_steps)

    return locate


def _call(callbacks: list[Callback], hook: str, result: FitResult, *args, on_replace=None):
    """Calls `hook` of each callback in order, each seeing the state the previous returned;
    `args` are the hook's (epoch, logs) around the state. Returns the last state.

    A callback's exception is re-raised as it is, carrying ``.result``: the state and history
    of the last completed epoch.
    """
    state = result.state
    for callback in callbacks:
        try:
            replaced = getattr(callback, hook)(*args[:1], state, *args[1:])
            if replaced is not None and not isinstance(replaced, TrainState):
                raise TypeError(
                    f"fit: {type(callback).__name__}.{hook} must return a TrainState or None, "
                    f"got {type(replaced).__name__}."
                )
        except Exception as error:
            error.result = result
            raise
        if replaced is not None:
            state = replaced
            if on_replace is not None:
                on_replace(state)
    return state


def _start_state(model, optimizer, key, initial_state, input_shape) -> TrainState:
    if initial_state is not None:
        check_state("fit", initial_state, model, optimizer, input_shape)
        return jax.tree.map(lambda a: a.copy(), initial_state)  # the epochs donate their state
    _checks.prng_key("fit", key)
    return init_state(model, optimizer, key, input_shape)


def fit(
    model: Layer,
    loss_fn: Callable[[Any, Array], Array],
    optimizer: Optimizer,
    train_data: tuple[Any, Any],
    *,
    epochs: int,
    batch_size: int,
    key: PRNGKey | None = None,
    validation_data: tuple[Any, Any] | None = None,
    metrics: Sequence[Metric] = (),
    early_stopping: EarlyStopping | None = None,
    callbacks: Sequence[Callback] = (),
    initial_state: TrainState | None = None,
    checkpoint: Checkpoint | None = None,
    accumulate_steps: int = 1,
    mesh: Mesh | None = None,
    precision: str = "float32",
    verbose: bool = True,
    dispatch: str = "auto",
) -> FitResult:
    """Trains `model` with mini-batch gradient descent, one compiled program per epoch.

    Each epoch shuffles the training data (a new order every epoch, derived from the state's
    key and step) and runs every full mini-batch, by default as one compiled program; then the
    metrics are computed in evaluation mode on the training data (if any are asked for) and on
    `validation_data`, and the callbacks run. Layer state (BatchNorm statistics) is updated by
    the training steps and used in evaluation.

    Args:
      model: the network, e.g. ``nn.MLP((128,), 10)``.
      loss_fn: ``loss_fn(outputs, targets) -> scalar``, e.g. ``losses.softmax_cross_entropy``.
      optimizer: e.g. ``optim.adam(1e-3)``.
      train_data: ``(inputs, targets)`` with a shared first axis.
      epochs: the most epochs to run.
      batch_size: samples per mini-batch; the last partial batch of an epoch is skipped.
      key: seeds the initial params, the shuffles and dropout: the same key gives the same
        run. May be None with `initial_state`, whose own key goes on.
      validation_data: optional ``(inputs, targets)`` scored after every epoch.
      metrics: names ("accuracy", "precision", "recall", "f1": macro averages over the model's
        classes from the argmax of its outputs) or callables ``(outputs, targets) -> scalar``.
      early_stopping: an EarlyStopping, e.g. ``EarlyStopping(patience=5)`` on "val_loss"; it
        runs first among the callbacks.
      callbacks: `train.Callback` instances (`EarlyStopping`, `ReduceLROnPlateau`,
        `CSVLogger` or one's own), called in order after every epoch.
      checkpoint: a `Checkpoint(directory)`: saves the run every few epochs and, when the
        directory holds a checkpoint of this run, resumes from it (the same as passing it in
        `callbacks`; either way it runs after the other callbacks).
      initial_state: a TrainState to continue from (e.g. an earlier ``result.state``, left
        intact: fit trains a copy); `key` is then not used, the state's own key goes on, so
        two fits of 2 epochs end with the params of one of 4, bit for bit.
      accumulate_steps: mini-batches per update: their mean gradient is applied in one update
        (effective batch ``accumulate_steps * batch_size``, memory of one mini-batch).
      mesh: a `jax.sharding.Mesh` with an axis "data" (e.g. ``jax.make_mesh((8,), ("data",))``):
        data parallel, each mini-batch split over its devices, params and optimizer state
        replicated; the same params as on one device, to float rounding. `batch_size` must be
        a multiple of the devices on "data". Over several hosts (after
        `jax.distributed.initialize`), every process passes the same full arrays.
      precision: "float32" (default: JAX's default matmul precision, which is TF32 on recent
        NVIDIA GPUs), "highest" (full float32 matmuls and convolutions on every backend) or
        "bfloat16" (mixed precision: float32 params and optimizer state, the forward and
        backward pass in bfloat16, normalization statistics, softmax, the loss and the metrics
        in float32; no loss scaling needed). Evaluation during the run uses it too.
      verbose: print a start line, then one line per epoch with the loss, metrics and time;
        on a terminal, long epochs also show their progress in place.
      dispatch: "scan" runs each epoch as one compiled `lax.scan`; "step" dispatches one
        jitted step per update from Python (same results); "auto" (default) picks "step"
        on CPU when the step holds XLA's own convolution (a layer of one's own calling
        `lax.conv_general_dilated`; fnnet's Conv2D is patches and a matmul there), which
        XLA:CPU runs up to 18x slower inside a loop, and "scan" otherwise.
    Returns:
      FitResult ``(state, history)``; history maps "loss" (the mean training loss of the
      epoch's updates), each metric name, "val_loss", "val_<metric>", "lr" (the learning rate
      in force at the end of the epoch) and "seconds" to per-epoch values.
    Raises:
      ValueError: for inputs and targets of different lengths, a `batch_size` of 0 or larger
        than the training data, labels out of range for the model's outputs, NaN or inf in the
        data, a model whose outputs do not fit `loss_fn`, a callback monitoring a key the run
        does not record, or an `initial_state` of another model or optimizer; all before
        anything is compiled.
      TypeError: for a wrong kind of argument (a callback class instead of an instance, ...).
      NonFiniteLossError: when a training step stops being finite (its loss, a gradient, the
        new params or optimizer state); it names the epoch, the step and the first
        non-finite leaf (``.path``), and its ``.result`` holds the last finite state and the
        history so far.

    Example:
      >>> # result = fit(nn.MLP((64,), 10), losses.softmax_cross_entropy, optim.adam(1e-3),
      >>> #              (x_train, y_train), epochs=50, batch_size=32, key=jax.random.key(0),
      >>> #              validation_data=(x_val, y_val), metrics=("accuracy",),
      >>> #              callbacks=[train.EarlyStopping(patience=5)])
    """
    check_model_and_optimizer("fit", model, optimizer)
    precision = check_precision("fit", precision)
    model = compute_in("fit", model, precision)
    epochs = _checks.positive_int("fit", "epochs", epochs)
    checked = check_callbacks("fit", callbacks, early_stopping)
    if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
        raise TypeError(f"fit: `checkpoint` must be a train.Checkpoint, got {checkpoint!r}.")
    others, savers = split_checkpoints(checked + ([checkpoint] if checkpoint else []))
    callback_list = others + savers  # the Checkpoints save what the others decided
    metric_items = resolve_metrics("fit", metrics)
    mesh = sharding.check_mesh("fit", mesh)
    inputs, targets = prepare_data("fit", "train_data", train_data, model)
    check_batching("fit", inputs.shape[0], batch_size, accumulate_steps)
    sharding.check_divides("fit", "batch_size", batch_size, mesh)
    named = {"train_data": (inputs, targets)}
    if validation_data is not None:
        named["validation_data"] = prepare_data("fit", "validation_data", validation_data, model)
    state = _start_state(model, optimizer, key, initial_state, inputs.shape[1:])
    check_master_weights("fit", precision, state.params)
    check_model_fits_data("fit", model, state, loss_fn, named)
    state, named = sharding.replicate(mesh, (state, named))
    inputs, targets = named["train_data"]
    keys = history_keys(metric_items, validation_data is not None)
    check_monitors("fit", callback_list, keys)

    runner, mode = _runner(model, loss_fn, optimizer, state, inputs, targets, batch_size,
                           accumulate_steps, dispatch, mesh)  # fmt: skip
    progress = Progress(verbose, epochs)
    progress.say(_start_line(inputs.shape[0], batch_size, accumulate_steps, mode,
                             sharding.data_devices(mesh), precision))  # fmt: skip
    progress.say(totals_line(state.params, state.model_state))
    for callback in callback_list:  # a callback object may be reused from an earlier run
        callback.verbose, callback.stop_training = progress.verbose, False
    history: dict[str, list[float]] = {name: [] for name in [*keys, "lr", "seconds"]}
    state = _call(callback_list, "on_train_begin", FitResult(state, history))
    state, history, start, stopped = resume(savers, state, history, others)
    updates = inputs.shape[0] // batch_size // accumulate_steps
    for epoch in range(start, epochs + 1 if not stopped else start):
        progress.epoch_started()
        state, losses = run_epoch(
            runner, state, inputs, targets, chunk_size=progress.chunk_size(updates),
            on_chunk=lambda *done, epoch=epoch: progress.chunk_done(epoch, *done),
        )  # fmt: skip
        locate = _locator(model, loss_fn, optimizer, state, inputs, targets, batch_size,
                          accumulate_steps)  # fmt: skip
        _raise_if_not_finite(np.asarray(losses), epoch, FitResult(state, history), locate)
        row = history_row(model, state, loss_fn, metric_items, losses, named["train_data"],
                          named.get("validation_data"), mesh)  # fmt: skip
        row.update(lr=current_learning_rate(optimizer, state.opt_state),
                   seconds=time.perf_counter() - progress.started)  # fmt: skip
        for name, value in row.items():
            history[name].append(value)

        def refresh_lr(state: TrainState, row=row) -> None:  # a callback may change the rate
            row["lr"] = history["lr"][-1] = current_learning_rate(optimizer, state.opt_state)

        state = _call(callback_list, "on_epoch_end", FitResult(state, history), epoch, row,
                      on_replace=refresh_lr)  # fmt: skip
        save_due(savers, epoch, epoch == epochs, state, history, others)
        progress.epoch_done(epoch, row)
        if any(callback.stop_training for callback in callback_list):
            break
    state = _call(callback_list, "on_train_end", FitResult(state, history))
    return FitResult(state, history)


def _runner(model, loss_fn, optimizer, state, inputs, targets, batch_size, accumulate, dispatch,
            mesh):  # fmt: skip
    """The epoch runner and the dispatch ("scan" or "step") that `dispatch` resolves to."""
    batch = [jax.ShapeDtypeStruct((batch_size, *x.shape[1:]), x.dtype) for x in (inputs, targets)]
    step = train_step_fn(model, loss_fn, optimizer, guard=True)
    mode = _dispatch.choose(
        dispatch, lambda s, x, y: step(s, lambda i: (x, y), True), state, *batch
    )
    runner = epoch_runner(model, loss_fn, optimizer, batch_size=batch_size,
                          accumulate_steps=accumulate, dispatch=mode, mesh=mesh,
                          where="fit")  # fmt: skip
    return runner, mode


def _start_line(samples: int, batch_size: int, accumulate_steps: int, mode: str, devices: int,
                precision: str = "float32"):  # fmt: skip
    how = {"scan": "each epoch one compiled program", "step": "one jitted step per mini-batch"}
    steps = samples // batch_size
    per_update = f", {accumulate_steps} per update" if accumulate_steps > 1 else ""
    split = f", each split over {devices} devices" if devices > 1 else ""
    arithmetic = {"float32": "", "highest": ", float32 matmuls at full precision",
                  "bfloat16": ", computing in bfloat16"}  # fmt: skip
    return (
        f"fit: {samples} samples, {steps} steps of {batch_size} per epoch{per_update}{split}, "
        f"{how[mode]}{arithmetic[precision]}"
    )
