"""`fit_ensemble`: K models trained at once in one compiled program, and `ensemble_member`.

The K TrainStates are stacked on a leading axis and every epoch runs `jax.vmap` over the epoch
of `fit` (the same shuffle, step and guard): each member shuffles with its own key, so member
``i`` follows ``fit(..., key=keys[i])`` to float rounding. A member stops on its own (early
stopping, or a step that is not finite) by no longer committing its updates; training ends when
every member has stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from fnnet import _checks
from fnnet.data.prefetch import check_prefetch
from fnnet.nn import Layer
from fnnet.optim import Optimizer, with_hyperparams
from fnnet.train import sharding
from fnnet.train.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    ReduceLROnPlateau,
    check_callbacks,
    check_monitors,
)
from fnnet.train.checkpointing import Checkpoint
from fnnet.train.epoch import EpochRunner, epoch_runner
from fnnet.train.evaluation import Metric, history_keys, history_row, resolve_metrics
from fnnet.train.feed import DEFAULT_STEPS_PER_EXECUTION, TrainingData
from fnnet.train.fit import (
    FitResult,
    _call,
    carrying_result,
    replicate_arrays,
    start_line,
    validation_sources,
)
from fnnet.train.inputs import check_transform, with_transform
from fnnet.train.precision import check_master_weights, check_precision, compute_in
from fnnet.train.progress import Progress
from fnnet.train.state import TrainState, check_model_and_optimizer, init_state
from fnnet.typing import Array

_SCALAR_CALLBACKS = (EarlyStopping, ReduceLROnPlateau, CSVLogger, Checkpoint)


def ensemble_member(state: TrainState, i: int) -> TrainState:
    """Member `i` of an ensemble's state (every leaf's row `i`), a TrainState of one model.

    Raises:
      TypeError: for an `i` that is not an int, or a `state` that is not a TrainState.
      ValueError: for an `i` outside ``[-K, K)``.
    """
    if not isinstance(state, TrainState):
        raise TypeError(
            f"ensemble_member: `state` must be a TrainState, got {type(state).__name__}."
        )
    if isinstance(i, bool) or not isinstance(i, int | np.integer):
        raise TypeError(f"ensemble_member: `i` must be an int, got {_checks.value_str(i)}.")
    members = jnp.shape(state.step)[0] if jnp.ndim(state.step) else 0
    if not -members <= i < members:
        raise ValueError(
            f"ensemble_member: `i` must lie in [{-members}, {members}) for an ensemble of "
            f"{members} members, got {i}."
        )
    return jax.tree.map(lambda leaf: leaf[i], state)


def _check_keys(keys: Any) -> int:
    shape, dtype = getattr(keys, "shape", None), getattr(keys, "dtype", None)
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    if not typed or len(shape) != 1 or shape[0] == 0:
        raise TypeError(
            "fit_ensemble: `keys` must be a 1-D array of K PRNG keys, one per member, e.g. "
            f"`jax.random.split(jax.random.key(0), 16)`, got "
            f"{_checks.shape_str(keys) if dtype is not None else _checks.value_str(keys)}."
        )
    return int(shape[0])


def _check_callbacks(callbacks: Sequence[Callback], early_stopping: Any) -> list[Callback]:
    """`fit`'s callback checks, then the built-in callbacks refused: they read one model's
    scores (early stopping runs per member through `early_stopping=` instead)."""
    checked = check_callbacks("fit_ensemble", callbacks, early_stopping)
    own = checked[1:] if early_stopping is not None else checked
    for index, callback in enumerate(own, 1):
        if isinstance(callback, _SCALAR_CALLBACKS):
            raise TypeError(
                f"fit_ensemble: callback {index} ({type(callback).__name__}) reads one model's "
                "scores; pass early stopping as `early_stopping=` (it runs per member), and "
                "callbacks of your own, which see arrays of one value per member."
            )
    return own


class _MemberStopping:
    """EarlyStopping's rule applied to each member: best value, patience and best state."""

    def __init__(self, rule: EarlyStopping | None, members: int) -> None:
        self.rule = rule
        self.best = np.full(members, np.nan)
        self.wait = np.zeros(members, int)
        self.best_epoch = np.zeros(members, int)
        self.best_state: TrainState | None = None

    def update(self, epoch: int, state: TrainState, values: np.ndarray, active: np.ndarray):
        """Records one epoch; returns which members keep training."""
        if self.rule is None:
            return active
        finite = np.isfinite(values)
        better = np.isnan(self.best) | self.rule.improves(values, np.nan_to_num(self.best))
        improved = active & finite & better
        self.best = np.where(improved, values, self.best)
        self.best_epoch = np.where(improved, epoch, self.best_epoch)
        self.wait = np.where(improved, 0, self.wait + active)
        if self.rule.restore_best:  # a copy: the next epoch donates `state`
            best = self.best_state
            self.best_state = _select(improved, state, state if best is None else best)
        return active & (self.wait < self.rule.patience)

    def final(self, state: TrainState) -> TrainState:
        if self.rule is None or not self.rule.restore_best or self.best_state is None:
            return state
        return _select(self.best_epoch > 0, self.best_state, state)


def _select(rows: np.ndarray, new: TrainState, old: TrainState) -> TrainState:
    """`new` for the members where `rows` holds, `old` for the others."""
    keep = jnp.asarray(rows)

    def pick(a, b):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):  # the keys never change
            return jax.random.wrap_key_data(
                jnp.copy(jax.random.key_data(a)), impl=jax.random.key_impl(a)
            )
        return jnp.where(keep.reshape(-1, *([1] * (a.ndim - 1))), a, b)

    return jax.tree.map(pick, new, old)


def fit_ensemble(
    model: Layer,
    loss_fn: Callable[[Any, Array], Array],
    optimizer: Optimizer,
    train_data: Any,
    *,
    keys: Array,
    epochs: int,
    batch_size: int | None = None,
    hyperparams: dict[str, Any] | None = None,
    validation_data: Any = None,
    metrics: Sequence[Metric] = (),
    early_stopping: EarlyStopping | None = None,
    callbacks: Sequence[Callback] = (),
    mesh: Mesh | None = None,
    precision: str = "float32",
    verbose: bool = True,
    data_placement: str = "auto",
    steps_per_execution: int | None = None,
    prefetch: int = 2,
    transform: Callable[[Array], Array] | None = None,
) -> FitResult:
    """Trains ``len(keys)`` models at once: seeds for error bars, a hyperparameter sweep.

    Every member is `model` trained by `optimizer` on the same data, with its own key (its
    initial params, shuffles and dropout) and its own `hyperparams`; all of them run in one
    compiled program per epoch (`jax.vmap` over `fit`'s epoch), so K small models cost one
    compilation and one dispatch instead of K. Member ``i`` equals ``fit(..., key=keys[i])``
    with its hyperparameters, to float rounding.

    Args:
      model, loss_fn, optimizer, train_data, epochs, batch_size, validation_data, metrics,
        precision, data_placement, steps_per_execution, prefetch, transform: as `fit`. Host
        arrays are gathered in each member's own order, so a streamed chunk holds K members'
        batches; a stream's batches are shared by all members (its order is the stream's).
      keys: ``(K,)`` PRNG keys, one per member (``jax.random.split(key, K)``).
      hyperparams: ``{name: (K,) values}`` per member, names as `optim.hyperparams` gives
        them, e.g. ``{"learning_rate": jnp.logspace(-4, -1, K)}``.
      early_stopping: an EarlyStopping applied to each member on its own: a member that stops
        keeps its best epoch's state (with ``restore_best``) and records NaN from then on.
      callbacks: callbacks of your own; their hooks get the stacked state and logs of ``(K,)``
        arrays (the built-in ones read one model's scores and are refused: use
        `early_stopping`).
      mesh: a Mesh with an axis "data": the members are spread over its devices (K a
        multiple of their number).
      verbose: one line per epoch with the median and range of each score over the members.
    Returns:
      FitResult: every leaf of ``.state`` has a leading axis of K (`ensemble_member` takes one
      out); ``.history[name]`` is a list of ``(K,)`` arrays, one per epoch, NaN for a member
      after it stopped. A member whose step stops being finite stops there with its last
      finite state, its history NaN from that epoch on; the others go on.
    Raises:
      ValueError, TypeError: as `fit` (bad data found in a streamed chunk carries the state
        before that chunk in ``.result``), and for `keys` that are not K keys, `hyperparams`
        of another length or an unknown name, K not a multiple of the mesh's devices.
    """
    where = "fit_ensemble"
    check_model_and_optimizer(where, model, optimizer)
    precision = check_precision(where, precision)
    epochs = _checks.positive_int(where, "epochs", epochs)
    prefetch = check_prefetch(where, prefetch)
    if steps_per_execution is not None:
        steps_per_execution = _checks.positive_int(where, "steps_per_execution",
                                                   steps_per_execution)  # fmt: skip
    members = _check_keys(keys)
    callback_list = _check_callbacks(callbacks, early_stopping)
    metric_items = resolve_metrics(where, metrics)
    mesh = sharding.check_mesh(where, mesh)
    if mesh is not None and members % sharding.data_devices(mesh):
        raise ValueError(
            f"{where}: the {members} members must be a multiple of the "
            f"{sharding.data_devices(mesh)} devices on the mesh's 'data' axis."
        )
    data = TrainingData(where, train_data, placement=data_placement, epochs=epochs,
                        first_epoch=1)  # fmt: skip
    transform = check_transform(where, transform, data.inputs)
    model = with_transform(compute_in(where, model, precision), transform)
    batch_size = data.batch_size(batch_size, 1)
    state = jax.vmap(lambda key: init_state(model, optimizer, key, data.inputs.shape[1:]))(keys)
    if hyperparams:
        if not isinstance(hyperparams, dict):
            raise TypeError(f"{where}: `hyperparams` must be a dict name -> (K,) values.")
        # copies: the epochs donate the state, and the caller's arrays must survive
        values = {name: jnp.array(value, copy=True) for name, value in hyperparams.items()}
        state = state._replace(opt_state=with_hyperparams(state.opt_state, **values))
    check_master_weights(where, precision, state.params)
    validation = validation_sources(where, validation_data, model, epochs)
    data.prepare(model, ensemble_member(state, 0), loss_fn, validation)
    if mesh is not None:
        state = jax.device_put(state, sharding.split_on(mesh, 0))
        replicate_arrays(mesh, data, validation)

    runner = epoch_runner(model, loss_fn, optimizer, batch_size=batch_size, where=where)
    updates = _member_updates(runner, data.kind)
    rows_of = _member_rows(runner, data.samples)
    placed = sharding.split_on(mesh, 1 if data.kind == "host" else None)
    chunk_size = steps_per_execution or (
        data.updates_per_epoch(batch_size, 1) if data.kind == "device"
        else DEFAULT_STEPS_PER_EXECUTION
    )  # fmt: skip
    keys_recorded = history_keys(metric_items, validation_data is not None)
    history: dict[str, list] = {name: [] for name in [*keys_recorded, "seconds"]}
    stopping = _MemberStopping(early_stopping, members)
    check_monitors(where, [early_stopping] if early_stopping else [], keys_recorded)
    monitor = early_stopping.monitor if early_stopping else None
    progress = Progress(verbose, epochs)
    progress.say(start_line(where, data, batch_size, 1, "scan", 1, precision, steps_per_execution,
                            members))  # fmt: skip
    active = np.ones(members, bool)
    state = _call(callback_list, "on_train_begin", FitResult(state, history))
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        rows = None if data.kind == "stream" else rows_of(state)
        chunks = data.chunks(np.asarray(rows) if data.kind == "host" else rows, epoch,
                             done=0, loader_state=None, steps_per_execution=chunk_size,
                             every_steps=None, prefetch=prefetch, placed=placed)  # fmt: skip
        commit, pending = jnp.asarray(active), []
        with carrying_result(lambda: FitResult(state, history)):  # noqa: B023 (read at once)
            for chunk in chunks:
                batches = ((data.inputs, data.targets, chunk.inputs) if data.kind == "device"
                           else (chunk.inputs, chunk.targets, None))  # fmt: skip
                state, losses, commit = updates(state, *batches, commit)
                pending.append(losses)
        losses = np.concatenate(jax.device_get(pending), axis=1)  # (K, updates)
        diverged = active & ~np.isfinite(losses).all(axis=1)
        row = history_row(model, state, loss_fn, metric_items, losses,
                          data.metrics_source(prefetch), validation.get("validation_data"),
                          members=True, epoch=epoch)  # fmt: skip
        row = {name: np.where(active & ~diverged, value, np.nan) for name, value in row.items()}
        row["seconds"] = np.full(members, time.perf_counter() - started)
        for name, value in row.items():
            history[name].append(value)
        still = active & ~diverged
        if monitor is not None:
            still = stopping.update(epoch, state, row[monitor], still)
        _report(progress, epoch, epochs, row, still, diverged)
        state = _call(callback_list, "on_epoch_end", FitResult(state, history), epoch, row)
        active = still
        if not active.any() or any(callback.stop_training for callback in callback_list):
            break
    state = _call(callback_list, "on_train_end", FitResult(stopping.final(state), history))
    return FitResult(state, history)


def _member_rows(runner: EpochRunner, samples: int | None) -> Callable:
    """``rows(states) -> (updates, K, 1, batch_size)`` (1: no accumulation): every member's
    sample ids of the epoch (each from its own key), updates first as `TrainingData.chunks`
    cuts them."""

    def rows(states):
        return jnp.swapaxes(jax.vmap(lambda state: runner.indices(state, samples))(states), 0, 1)

    return jax.jit(rows)


def _member_updates(runner: EpochRunner, kind: str) -> Callable:
    """``updates(states, inputs, targets, rows, commit) -> (states, losses (K, m), commit
    (K,))``: `runner.chunk` vmapped over the members. For device arrays the arrays are shared
    and `rows` ``(m, K, 1, batch)`` gives each member's sample ids; host batches are gathered
    per member, ``(m, K, 1, batch, ...)``; a stream's ``(m, 1, batch, ...)`` are shared. A
    member whose `commit` is False commits nothing."""
    batches = 1 if kind == "host" else None
    rows = 1 if kind == "device" else None
    return jax.jit(jax.vmap(runner.chunk, in_axes=(0, batches, batches, rows, 0)),
                   donate_argnums=0)  # fmt: skip


def _report(progress, epoch, epochs, row, active, diverged) -> None:
    """``epoch 3/10  loss 0.12 [0.10, 0.15]  ...  16 of 16 training (0.05s)``."""
    if not progress.verbose:
        return
    parts = []
    for name, values in row.items():
        finite = values[np.isfinite(values)]
        if name == "seconds" or not finite.size:
            continue
        parts.append(f"{name} {np.median(finite):.4f} [{finite.min():.4f}, {finite.max():.4f}]")
    note = f", {int(diverged.sum())} stopped not finite" if diverged.any() else ""
    width = len(str(epochs))
    progress.say(
        f"epoch {epoch:>{width}}/{epochs}  {'  '.join(parts)}  {int(active.sum())} of "
        f"{active.size} training{note} ({row['seconds'][0]:.2f}s)"
    )
