"""`fit`: the training loop, glue over reusable parts (checks, state, epochs, scores, callbacks).

Every piece it calls is usable in a loop of one's own: `inputs.prepare_data`,
`state.init_state` / `state.check_state`, `epoch.epoch_runner` / `epoch.run_epoch`,
`evaluation.history_row` and the `callbacks` hooks (the README shows such a loop).
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from fnnet import _checks
from fnnet.data.prefetch import check_prefetch
from fnnet.data.sources import Chunk, Stream
from fnnet.nn import Layer
from fnnet.nn.summary import totals_line
from fnnet.optim import Optimizer
from fnnet.optim._base import current_learning_rate
from fnnet.train import _dispatch, sharding
from fnnet.train.callbacks import Callback, EarlyStopping, check_callbacks, check_monitors
from fnnet.train.checkpointing import (
    Checkpoint,
    Partial,
    encodable,
    every_steps,
    next_epoch,
    resume,
    save_due,
    save_in_epoch,
    split_checkpoints,
)
from fnnet.train.epoch import EpochRunner, epoch_runner, update_indices
from fnnet.train.evaluation import (
    EVAL_BATCH_SIZE,
    Metric,
    evaluation_source,
    history_keys,
    history_row,
    resolve_metrics,
)
from fnnet.train.feed import DEFAULT_STEPS_PER_EXECUTION, TrainingData
from fnnet.train.inputs import check_transform, prepare_data, with_transform
from fnnet.train.placement import is_arrays
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
    total: int | None = None,
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
        f"fit: the training step stopped being finite at epoch {epoch}, step {bad + 1}"
        f"{'' if total is None else f' of {total}'}{where}; training stopped and the last "
        f"finite state (step {int(result.state.step)}) is kept in this error's `.result`. Lower "
        "the learning rate, clip gradients with `optim.clip_by_global_norm`, or check the data.",
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


@contextlib.contextmanager
def carrying_result(last_good: Callable[[], FitResult]) -> Iterator[None]:
    """Gives a ValueError or TypeError raised inside (bad data found mid-epoch, an error of
    the stream) ``.result = last_good()``: the state and history it stopped at."""
    try:
        yield
    except (ValueError, TypeError) as error:
        if not hasattr(error, "result"):
            error.result = last_good()
        raise


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
    train_data: Any,
    *,
    epochs: int,
    batch_size: int | None = None,
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
    data_placement: str = "auto",
    steps_per_execution: int | None = None,
    prefetch: int = 2,
    transform: Callable[[Array], Array] | None = None,
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
      train_data: one of three kinds. A tuple ``(inputs, targets)`` of arrays with a shared
        first axis (JAX or NumPy arrays, `np.memmap`, `np.load(path, mmap_mode="r")`), kept
        on the device or streamed from the host (`data_placement`). Or a user's stream of
        ``(inputs, targets)`` batches: a re-iterable (a PyTorch or grain `DataLoader`, a list
        of pairs) iterated once per epoch, or a callable ``epoch -> iterable`` called once per
        epoch (epoch from 1, as the history counts it). Batches are read with `np.asarray`;
        all share their shapes and dtypes, only the last may be smaller (it then trains as an
        update of its own, one more compiled program; with `accumulate_steps` > 1 the batches
        after the last full group are skipped). Training metrics iterate a stream once more
        after each epoch (a callable's iterable again: it must be re-iterable then).
      epochs: the most epochs to run.
      batch_size: samples per mini-batch of arrays; the last partial batch of an epoch is
        skipped. For a stream it is the stream's own (None, or the same number).
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
      data_placement: for arrays, "device" (moved onto the device once: the fastest), "host"
        (left where they are and streamed: each chunk's batches gathered on the host in the
        order the device path uses, so the same key gives the same params) or "auto"
        (default: "host" for a memmap and for arrays over half the device's free memory,
        see `placement.DEVICE_SHARE`; else "device"). A stream is always streamed.
      steps_per_execution: updates per compiled chunk of streamed data (default 16); for
        device arrays, None runs each epoch as one program. The chunk size changes the
        results by float rounding at most (a scan of another length is another program).
      prefetch: streamed chunks put on the device ahead by a background thread (default 2;
        0 reads, transfers and computes in turn). Device memory holds the state and at most
        ``prefetch + 2`` chunks.
      transform: a pure function of an inputs batch traced into the step and the evaluation
        (e.g. ``lambda x: x / 255.0``): uint8 images cross to the device at a quarter of
        float32's bytes and are normalised there. It must keep the batch axis.
    Returns:
      FitResult ``(state, history)``; history maps "loss" (the mean training loss of the
      epoch's updates), each metric name, "val_loss", "val_<metric>", "lr" (the learning rate
      in force at the end of the epoch) and "seconds" to per-epoch values.
    Raises:
      ValueError: for inputs and targets of different lengths, a `batch_size` of 0 or larger
        than the training data, labels out of range for the model's outputs, NaN or inf in the
        data, a model whose outputs do not fit `loss_fn`, a callback monitoring a key the run
        does not record, or an `initial_state` of another model or optimizer; all before
        anything is compiled. For streamed data, NaN, inf and labels are checked per chunk
        on the device: the error names the sample ("sample 1234" of an array, "batch 7, row
        3" of a stream) and carries the last good state in ``.result``, as does an error of
        the stream itself (a batch of another shape or dtype).
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
    epochs = _checks.positive_int("fit", "epochs", epochs)
    prefetch = check_prefetch("fit", prefetch)
    if steps_per_execution is not None:
        steps_per_execution = _checks.positive_int("fit", "steps_per_execution",
                                                   steps_per_execution)  # fmt: skip
    checked = check_callbacks("fit", callbacks, early_stopping)
    if checkpoint is not None and not isinstance(checkpoint, Checkpoint):
        raise TypeError(f"fit: `checkpoint` must be a train.Checkpoint, got {checkpoint!r}.")
    others, savers = split_checkpoints(checked + ([checkpoint] if checkpoint else []))
    callback_list = others + savers  # the Checkpoints save what the others decided
    metric_items = resolve_metrics("fit", metrics)
    mesh = sharding.check_mesh("fit", mesh)
    data = TrainingData("fit", train_data, placement=data_placement, epochs=epochs,
                        first_epoch=next_epoch(savers))  # fmt: skip
    transform = check_transform("fit", transform, data.inputs)
    model = with_transform(compute_in("fit", model, precision), transform)
    batch_size = data.batch_size(batch_size, _checks.positive_int("fit", "accumulate_steps",
                                                                  accumulate_steps))  # fmt: skip
    sharding.check_divides("fit", "batch_size", batch_size, mesh)
    state = _start_state(model, optimizer, key, initial_state, data.inputs.shape[1:])
    check_master_weights("fit", precision, state.params)
    validation = validation_sources("fit", validation_data, model, epochs)
    data.prepare(model, state, loss_fn, validation)
    state = sharding.replicate(mesh, state)
    replicate_arrays(mesh, data, validation)
    keys = history_keys(metric_items, validation_data is not None)
    check_monitors("fit", callback_list, keys)
    every = every_steps(savers)
    if every is not None and data.kind == "stream" and not data.stream.stateful(next_epoch(savers)):
        warnings.warn(
            "fit: `train_data` keeps no position of its own (no get_state / set_state on its "
            "iterator, as grain's, nor state_dict / load_state_dict on the loader, as "
            "torchdata's), so Checkpoint(every_steps=...) saves only at epoch ends and a "
            "resume starts at the epoch boundary.", UserWarning, stacklevel=2,
        )  # fmt: skip
        every = None

    runner, mode = _runner(model, loss_fn, optimizer, state, data.inputs, data.targets,
                           batch_size, accumulate_steps, dispatch, mesh)  # fmt: skip
    progress = Progress(verbose, epochs)
    progress.say(
        start_line(
            "fit",
            data,
            batch_size,
            accumulate_steps,
            mode,
            sharding.data_devices(mesh),
            precision,
            steps_per_execution,
        )
    )
    progress.say(totals_line(state.params, state.model_state))
    for callback in callback_list:  # a callback object may be reused from an earlier run
        callback.verbose, callback.stop_training = progress.verbose, False
    history: dict[str, list[float]] = {name: [] for name in [*keys, "lr", "seconds"]}
    state = _call(callback_list, "on_train_begin", FitResult(state, history))
    state, history, start, stopped, partial = resume(savers, state, history, others)
    total = data.updates_per_epoch(batch_size, accumulate_steps)
    train = _EpochTrainer(model, loss_fn, optimizer, runner, data, batch_size, accumulate_steps,
                          mesh, prefetch, progress, savers, others)  # fmt: skip
    for epoch in range(start, epochs + 1 if not stopped else start):
        progress.epoch_started()
        whole = (data.kind == "device" and every is None and steps_per_execution is None
                 and partial is None)  # fmt: skip
        chunk_size = progress.chunk_size(total) if whole else None
        if whole and chunk_size is None:
            state, losses = runner.epoch(state, data.inputs, data.targets)
            locate = _locator(model, loss_fn, optimizer, state, data.inputs, data.targets,
                              batch_size, accumulate_steps)  # fmt: skip
            losses = np.asarray(losses)
            _raise_if_not_finite(losses, epoch, FitResult(state, history), locate, total)
        else:
            size = (
                chunk_size
                or steps_per_execution
                or (total if data.kind == "device" else DEFAULT_STEPS_PER_EXECUTION)
            )
            state, losses = train.epoch(state, history, epoch, partial, size, every, total)
        partial = None
        row = history_row(model, state, loss_fn, metric_items, losses,
                          data.metrics_source(prefetch), validation.get("validation_data"),
                          mesh, epoch=epoch)  # fmt: skip
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


def validation_sources(where: str, validation_data: Any, model: Layer,
                       epochs: int) -> dict[str, Any]:  # fmt: skip
    """``{"validation_data": ...}`` as `history_row` takes it (empty without): device arrays
    checked now, or a function ``(state, epoch)`` making each epoch's evaluation pass over
    host arrays or a stream (checked batch by batch; a callable is called with the epoch, a
    one-shot generator refused for more than one epoch)."""
    if validation_data is None:
        return {}
    if is_arrays(validation_data):
        pair = _checks.data_pair(where, "validation_data", validation_data)
        if not any(isinstance(x, np.memmap) for x in pair):
            return {"validation_data": prepare_data(where, "validation_data", pair, model)}
    else:
        validation_data = Stream(where, "validation_data", validation_data, epochs=epochs)

    def source(state: TrainState, epoch: int) -> Any:
        return evaluation_source(where, "validation_data", validation_data, model, state,
                                 batch_size=EVAL_BATCH_SIZE, epoch=epoch)  # fmt: skip

    return {"validation_data": source}


def replicate_arrays(mesh: Mesh | None, data: TrainingData, validation: dict[str, Any]) -> None:
    """The run's device arrays (training, and validation as `validation_sources` gives it)
    replaced by copies on every device of `mesh` (nothing without one)."""
    arrays = {name: v for name, v in validation.items() if isinstance(v, tuple)}
    if data.kind == "device":
        arrays["train_data"] = (data.inputs, data.targets)
    arrays = sharding.replicate(mesh, arrays)
    validation.update((name, v) for name, v in arrays.items() if name != "train_data")
    if data.kind == "device":
        data.inputs, data.targets = arrays["train_data"]


class _EpochTrainer:
    """Runs an epoch chunk by chunk: the device check of streamed chunks, the guard's
    report after each chunk, the in-epoch progress and checkpoints."""

    def __init__(self, model, loss_fn, optimizer, runner: EpochRunner, data: TrainingData,
                 batch_size, accumulate_steps, mesh, prefetch, progress, savers,
                 others) -> None:  # fmt: skip
        self.batch_size = batch_size
        self.model, self.loss_fn, self.optimizer, self.runner = model, loss_fn, optimizer, runner
        self.data, self.accumulate_steps, self.prefetch = data, accumulate_steps, prefetch
        self.placed = sharding.split_on(mesh, 2)  # (updates, accumulate, batch, ...)
        self.progress, self.savers, self.others = progress, savers, others
        self._warned = False

    def run(self, state: TrainState, chunk: Chunk, commit):
        if self.data.kind == "device":
            return self.runner.updates(state, self.data.inputs, self.data.targets, chunk.inputs,
                                       commit)  # fmt: skip
        return self.runner.updates(state, chunk.inputs, chunk.targets, None, commit)

    def batch_at(self, chunk: Chunk, update: int):
        """``batch_at(i)`` of the chunk's update `update` (counted in the epoch)."""
        local = update - chunk.start
        if self.data.kind == "device":
            ids = chunk.inputs[local]
            return lambda i: (self.data.inputs[ids[i]], self.data.targets[ids[i]])
        return lambda i: (chunk.inputs[local][i], chunk.targets[local][i])

    def epoch(self, state: TrainState, history: dict, epoch: int, partial: Partial | None,
              chunk_size: int, every: int | None, total: int | None):  # fmt: skip
        """``(state, losses)`` of `epoch`, continuing `partial` (a resumed epoch) if given."""
        done, losses = (partial.updates, [np.asarray(partial.losses, np.float32)]) if partial \
            else (0, [])  # fmt: skip
        commit = jnp.bool_(True)
        chunks = self.data.chunks(self._rows(state, done), epoch, done=done,
                                  loader_state=partial.loader_state if partial else None,
                                  steps_per_execution=chunk_size, every_steps=every,
                                  prefetch=self.prefetch, placed=self.placed)  # fmt: skip
        with carrying_result(lambda: FitResult(state, history)):
            for chunk in chunks:
                state, chunk_losses, commit = self.run(state, chunk, commit)
                losses.append(np.asarray(chunk_losses))
                so_far = np.concatenate(losses)

                def locate(update, state=state, chunk=chunk):
                    return first_nonfinite(
                        self.model,
                        self.loss_fn,
                        self.optimizer,
                        state,
                        self.batch_at(chunk, update),
                        self.accumulate_steps,
                    )

                _raise_if_not_finite(so_far, epoch, FitResult(state, history), locate, total)
                done = chunk.start + chunk.updates
                self.progress.chunk_done(epoch, done, total, so_far)
                if every is not None and done % every == 0 and done != total:
                    self._save(epoch, Partial(done, so_far.tolist(), chunk.loader_state),
                               state, history)  # fmt: skip
        return state, np.concatenate(losses)

    def _rows(self, state: TrainState, done: int) -> np.ndarray | None:
        """The sample ids of the epoch that is `done` updates in at `state` (None: a stream)."""
        if self.data.samples is None:
            return None
        if done == 0:
            return np.asarray(self.runner.indices(state, self.data.samples))
        start = SimpleNamespace(key=state.key, step=state.step - done)  # all shuffle_key reads
        return np.asarray(update_indices(start, self.data.samples, batch_size=self.batch_size,
                                         accumulate_steps=self.accumulate_steps))  # fmt: skip

    def _save(self, epoch: int, partial: Partial, state: TrainState, history: dict) -> None:
        if self.data.kind == "stream" and not encodable(partial.loader_state):
            if not self._warned:
                warnings.warn(
                    "fit: the stream's state is not JSON (nor bytes), so no checkpoint is saved "
                    "inside epochs; a resume starts at the epoch boundary.", UserWarning,
                    stacklevel=4,
                )  # fmt: skip
                self._warned = True
            return
        save_in_epoch(self.savers, epoch, partial, state, history, self.others)


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


def start_line(where: str, data: TrainingData, batch_size: int, accumulate_steps: int,
               mode: str, devices: int, precision: str = "float32",
               steps_per_execution: int | None = None,
               members: int | None = None) -> str:  # fmt: skip
    """The run's first line: its data, batches, dispatch and arithmetic (and an ensemble's
    members)."""
    how = {"scan": "each epoch one compiled program", "step": "one jitted step per mini-batch"}
    per_update = f", {accumulate_steps} per update" if accumulate_steps > 1 else ""
    split = f", each split over {devices} devices" if devices > 1 else ""
    arithmetic = {"float32": "", "highest": ", float32 matmuls at full precision",
                  "bfloat16": ", computing in bfloat16"}  # fmt: skip
    chunk = steps_per_execution or DEFAULT_STEPS_PER_EXECUTION
    head = f"{where}: {members} members, " if members else f"{where}: "
    if data.kind == "stream":
        what = f"{head}a stream of batches of {batch_size}{per_update}{split}"
        how[mode] = f"chunks of {chunk} updates" if mode == "scan" else how[mode]
    else:
        what = (f"{head}{data.samples} samples, {data.samples // batch_size} steps of "
                f"{batch_size} per epoch{per_update}{split}")  # fmt: skip
        if data.kind == "host":
            how[mode] = f"streamed from the host in chunks of {chunk} updates"
        elif steps_per_execution is not None and mode == "scan":
            how[mode] = f"chunks of {chunk} updates"
    return f"{what}, {how[mode]}{arithmetic[precision]}"
