"""Epochs: the shuffle, then every update of the epoch, as one compiled program or in chunks.

An epoch of ``n`` samples runs ``n // batch_size`` mini-batches in an order that is a pure
function of the state's key and step (`shuffle_indices`), grouped ``accumulate_steps`` at a
time into updates. It runs as one `lax.scan` program (`make_train_epoch`), as one jitted step
per update dispatched from Python (`make_stepwise_epoch`), or as a few compiled chunks
(`run_epoch` with ``chunk_size``: the same result, with a report after each chunk).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from fnnet import _checks
from fnnet.nn import Layer
from fnnet.optim import Optimizer
from fnnet.train import sharding
from fnnet.train.precision import check_precision, compute_in
from fnnet.train.state import (
    TrainState,
    check_model_and_optimizer,
    rejecting_donated,
    shuffle_key,
)
from fnnet.train.step import LossFn, accumulate_steps_arg, train_step_fn, tree_all_finite
from fnnet.typing import Array, PRNGKey

DISPATCHES = ("scan", "step")


# lowbias32 (C. Wellons' hash prospector): a bijection of uint32 that mixes every input bit
# into every output bit; odd multipliers, so each step can be undone
_MULTIPLIERS = (0x7FEB352D, 0x846CA68B)
_INVERSES = tuple(pow(m, -1, 1 << 32) for m in _MULTIPLIERS)


def _mix(x: Array) -> Array:
    x = x ^ (x >> 16)
    x = x * jnp.uint32(_MULTIPLIERS[0])
    x = x ^ (x >> 15)
    x = x * jnp.uint32(_MULTIPLIERS[1])
    return x ^ (x >> 16)


def _unmix(x: Array) -> Array:
    x = x ^ (x >> 16)
    x = x * jnp.uint32(_INVERSES[1])
    x = x ^ (x >> 15) ^ (x >> 30)
    x = x * jnp.uint32(_INVERSES[0])
    return x ^ (x >> 16)


def permutation(key: PRNGKey, n: int) -> Array:
    """A random permutation of ``[0, n)``, a pure function of `key`: the epoch's order.

    Two words drawn from `key` (`jax.random.bits`) pick a bijection ``F(i) = mix(mix(i ^ a) +
    b)`` of uint32 (``mix``: the lowbias32 hash); the order is that of ``F(0), ..., F(n-1)``.
    The values are distinct, so one sort of plain uint32 values gives it, with no ties, and
    `F`'s inverse turns the sorted values back into positions. On XLA:CPU this is one sort
    of n values: 12x faster than `jax.random.permutation` (two key-value sorts), and the same
    arithmetic in NumPy gives the same order.
    """
    if n > 1 << 31:
        raise ValueError(f"train epoch: at most 2^31 samples can be shuffled, got {n}.")
    a, b = jax.random.bits(key, (2,), jnp.uint32)
    keys = _mix(_mix(jnp.arange(n, dtype=jnp.uint32) ^ a) + b)
    return (_unmix(_unmix(jax.lax.sort(keys)) - b) ^ a).astype(jnp.int32)


def shuffle_indices(state: TrainState, num_samples: int, *, batch_size: int) -> Array:
    """The sample indices of the epoch starting at ``state.step``, shaped
    ``(num_samples // batch_size, batch_size)``: one row per full mini-batch, in the order
    of `permutation` with the state's `shuffle_key`."""
    num_batches = num_samples // batch_size
    order = permutation(shuffle_key(state), num_samples)
    return order[: num_batches * batch_size].reshape(num_batches, batch_size)


def update_indices(
    state: TrainState, num_samples: int, *, batch_size: int, accumulate_steps: int
) -> Array:
    """`shuffle_indices` grouped into updates: ``(updates, accumulate_steps, batch_size)``; the
    mini-batches left over after the last full group are skipped."""
    rows = shuffle_indices(state, num_samples, batch_size=batch_size)
    updates = rows.shape[0] // accumulate_steps
    return rows[: updates * accumulate_steps].reshape(updates, accumulate_steps, batch_size)


class EpochRunner(NamedTuple):
    """The pieces of an epoch, for `run_epoch` (all give the same result).

    epoch: ``(state, inputs, targets) -> (state, losses)``, the whole epoch.
    indices: ``(state, num_samples) -> (updates, accumulate_steps, batch_size)`` sample ids.
    chunk: ``(state, inputs, targets, indices, commit) -> (state, losses, commit)``: the updates
      of `indices` (None: `inputs` and `targets` are the updates' stacked batches, ``(updates,
      accumulate_steps, batch_size, ...)``, as streamed data comes), one jitted (and
      traceable: `fit_ensemble` vmaps it) program with the guard in every step; `commit`
      False means a non-finite step came earlier in the epoch.
    updates: the same as `chunk`, run from Python: without the per-step guard while every
      step is finite, the guarded `chunk` otherwise (see `_optimistic`).
    """

    epoch: Callable
    indices: Callable
    chunk: Callable
    updates: Callable


def epoch_runner(
    model: Layer,
    loss_fn: LossFn,
    optimizer: Optimizer,
    *,
    batch_size: int,
    accumulate_steps: int = 1,
    dispatch: str = "scan",
    unroll: int | bool = 1,
    mesh: Mesh | None = None,
    precision: str = "float32",
    where: str = "make_train_epoch",
) -> EpochRunner:
    """The EpochRunner of one model, loss and optimizer; `dispatch` is "scan" (compiled
    chunks and epochs) or "step" (one jitted step per update from Python); with `mesh`, each
    mini-batch's sample ids and samples are split over its "data" devices; `precision` as
    `fit`'s."""
    check_model_and_optimizer(where, model, optimizer)
    model = compute_in(where, model, check_precision(where, precision))
    batch_size = _checks.positive_int(where, "batch_size", batch_size)
    mesh = sharding.check_mesh(where, mesh)
    sharding.check_divides(where, "batch_size", batch_size, mesh)
    k = accumulate_steps_arg(where, accumulate_steps)
    _checks.one_of(where, "dispatch", dispatch, DISPATCHES)
    guarded = train_step_fn(model, loss_fn, optimizer, guard=True, accumulate_steps=k)
    plain = train_step_fn(model, loss_fn, optimizer, guard=False, accumulate_steps=k)

    def one_update(state, inputs, targets, rows, commit, step=guarded):  # rows: (k, batch)
        def batch_at(i):
            ids = sharding.split_batch(mesh, rows[i])
            return sharding.split_batch(mesh, (inputs[ids], targets[ids]))

        return step(state, batch_at, commit)

    def indices(state, num_samples):
        return update_indices(state, num_samples, batch_size=batch_size, accumulate_steps=k)

    if dispatch == "scan":

        def scan_updates(state, inputs, targets, rows, commit, step=guarded):
            # rows None: inputs and targets are stacked batches (updates, k, batch, ...).
            # Small data: the batches of every update gathered at once (one gather, not two
            # per step: 6% of a small MLP's step on XLA:CPU), then scanned over.
            stacked = rows is None
            at_once = stacked or (
                mesh is None and _gathered_bytes(inputs, targets, rows) <= _GATHER_AT_ONCE
            )
            items = (
                (inputs, targets) if stacked else (inputs[rows], targets[rows]) if at_once else rows
            )

            def body(carry, item):
                state, commit = carry
                if at_once:
                    batch_at = lambda i: sharding.split_batch(mesh, (item[0][i], item[1][i]))  # noqa: E731
                    state, loss, commit = step(state, batch_at, commit)
                else:
                    state, loss, commit = one_update(state, inputs, targets, item, commit, step)
                return (state, commit), loss

            (state, commit), losses = jax.lax.scan(body, (state, commit), items, unroll=unroll)
            return state, losses, commit

        def unguarded_updates(state, inputs, targets, rows):
            state, losses, _ = scan_updates(state, inputs, targets, rows, True, plain)
            return state, losses, jnp.isfinite(losses).all() & tree_all_finite(state)

        def unguarded_epoch(state, inputs, targets):
            _check_epoch_data(inputs, targets, batch_size * k)
            return unguarded_updates(state, inputs, targets, indices(state, inputs.shape[0]))

        def donating(function):
            return rejecting_donated("train epoch", jax.jit(function, donate_argnums=0))

        def keeping(function):  # the state is the rollback point: not donated
            return rejecting_donated("train epoch", jax.jit(function))

        chunk = donating(scan_updates)
        guarded_epoch = donating(_whole_epoch(scan_updates, indices, batch_size * k))
        return EpochRunner(
            _optimistic(keeping(unguarded_epoch), guarded_epoch),
            jax.jit(indices, static_argnums=1),
            chunk,
            _optimistic(keeping(unguarded_updates), chunk),
        )

    step = rejecting_donated("train epoch", jax.jit(one_update, donate_argnums=0))

    def one_stacked_update(state, inputs, targets, commit):  # (k, batch, ...) each
        return guarded(state, lambda i: sharding.split_batch(mesh, (inputs[i], targets[i])), commit)

    stacked_step = rejecting_donated("train epoch", jax.jit(one_stacked_update, donate_argnums=0))

    def stepwise(state, inputs, targets, rows, commit):
        losses = []
        if rows is None:  # stacked batches
            for x, y in zip(inputs, targets, strict=True):
                state, loss, commit = stacked_step(state, x, y, commit)
                losses.append(loss)
            return state, jnp.stack(losses), commit
        for update_rows in np.asarray(rows):
            state, loss, commit = step(state, inputs, targets, update_rows, commit)
            losses.append(loss)
        return state, jnp.stack(losses), commit

    jitted_indices = jax.jit(indices, static_argnums=1)
    return EpochRunner(
        _whole_epoch(stepwise, jitted_indices, batch_size * k), jitted_indices, stepwise, stepwise
    )


_GATHER_AT_ONCE = 16 << 20  # bytes of gathered batches up to which an epoch gathers at once


def _gathered_bytes(inputs: Array, targets: Array, rows: Array) -> int:
    per_sample = sum(x.dtype.itemsize * math.prod(x.shape[1:]) for x in (inputs, targets))
    return per_sample * math.prod(rows.shape)


def _optimistic(unguarded: Callable, guarded: Callable) -> Callable:
    """The guarded epoch (or chunk) run without the per-step guard while every step is
    finite, which costs what hand-written steps cost.

    ``unguarded(state, inputs, targets[, rows])`` runs the updates without the guard's
    per-step test and select, keeping the given state as its rollback point (it is not
    donated), and says whether every loss and the final state are finite. Non-finite values
    do not turn finite again in later steps (NaN and inf propagate through the params, moments
    and statistics of fnnet's layers and optimizers), so then every step was finite, none
    would have been skipped, and the result is the guarded one; the given state is released
    as donation would. Otherwise ``guarded(state, inputs, targets[, rows, commit])`` runs the
    updates again from the rollback point, skipping from the first non-finite step on. The
    price: the params and optimizer state are held twice during an epoch, and one flag is
    read back per epoch (or chunk). Inside a trace (a `jit` or `make_jaxpr` of one's own)
    there is nothing to read back, so it is the guarded program.
    """

    def run(state, inputs, targets, *rows_and_commit):
        commit = rows_and_commit[1] if rows_and_commit else True
        leaves = jax.tree.leaves((state, inputs, targets, rows_and_commit))
        if any(isinstance(leaf, jax.core.Tracer) for leaf in leaves):
            return guarded(state, inputs, targets, *rows_and_commit)
        if commit is True or bool(commit):
            new, losses, finite = unguarded(state, inputs, targets, *rows_and_commit[:1])
            if bool(finite):
                _release(state, new)
                return (new, losses, *rows_and_commit[1:])
        return guarded(state, inputs, targets, *rows_and_commit)

    run.lower = unguarded.lower  # program inspection (the epoch as it runs when finite)
    return run


def _release(old, new) -> None:
    """Deletes the buffers of `old` that `new` does not share, as donating `old` would."""
    kept = {id(leaf) for leaf in jax.tree.leaves(new)}
    for leaf in jax.tree.leaves(old):
        if id(leaf) not in kept and isinstance(leaf, jax.Array) and not leaf.is_deleted():
            leaf.delete()


def _whole_epoch(run_updates: Callable, indices: Callable, samples_per_update: int) -> Callable:
    """``epoch(state, inputs, targets) -> (state, losses)``: every update of the epoch."""

    def epoch(state: TrainState, inputs: Array, targets: Array):
        _check_epoch_data(inputs, targets, samples_per_update)
        rows = indices(state, inputs.shape[0])
        state, losses, _ = run_updates(state, inputs, targets, rows, jnp.bool_(True))
        return state, losses

    return epoch


def run_epoch(
    runner: EpochRunner,
    state: TrainState,
    inputs: Array,
    targets: Array,
    *,
    chunk_size: int | None = None,
    on_chunk: Callable[[int, int, np.ndarray], None] | None = None,
) -> tuple[TrainState, Array]:
    """One epoch: whole (``chunk_size=None``) or `chunk_size` updates per compiled chunk.

    After each chunk, ``on_chunk(updates_done, updates_total, losses_so_far)`` is called; the
    next chunk is dispatched before the previous one's losses are read, so the device does not
    wait for the report. The result equals the whole epoch's.
    """
    if chunk_size is None:
        return runner.epoch(state, inputs, targets)
    _checks.data_pair("train epoch", "data", (inputs, targets))
    rows = np.asarray(runner.indices(state, inputs.shape[0]))
    if len(rows) == 0:
        raise ValueError(
            f"train epoch: the {inputs.shape[0]} samples do not fill one update of "
            f"{rows.shape[1]} x {rows.shape[2]} (accumulate_steps x batch_size)."
        )
    total, commit, pending, done = len(rows), jnp.bool_(True), [], []
    for start in range(0, total, chunk_size):
        state, losses, commit = runner.updates(
            state, inputs, targets, rows[start : start + chunk_size], commit
        )
        pending.append(losses)
        if on_chunk is not None and len(pending) > 1:  # the previous chunk is likely done
            done.append(np.asarray(pending[-2]))
            on_chunk(sum(map(len, done)), total, np.concatenate(done))
    losses = jnp.concatenate(pending)
    if on_chunk is not None:
        on_chunk(total, total, np.asarray(losses))
    return state, losses


def make_train_epoch(
    model: Layer,
    loss_fn: LossFn,
    optimizer: Optimizer,
    *,
    batch_size: int,
    accumulate_steps: int = 1,
    unroll: int | bool = 1,
    mesh: Mesh | None = None,
    precision: str = "float32",
):
    """A whole epoch compiled into one program: shuffle, then every full mini-batch.

    The returned ``epoch(state, inputs, targets) -> (state, losses)`` shuffles with a key
    derived from the state (a new order every epoch, the same for the same seed), then runs
    the epoch's updates inside `jax.lax.scan`, so a small model pays one dispatch per epoch
    instead of one per step. The last partial batch is skipped (its samples fall in other
    batches in other epochs). `state` is donated. From the first step whose loss, gradients
    or new state are not finite on, no step is committed: the returned state is the last
    finite one, and `losses` holds NaN for every step not committed.

    The guard costs nothing while every step is finite: the epoch first runs without the
    per-step test (as fast as hand-written steps, see benchmarks/bench_peers.py), keeping the
    given state as the rollback point, and runs again with the test from that point only if
    a loss or the final state is not finite. So the params and optimizer state are held
    twice during an epoch, and each call reads one flag back (inside one's own `jit` it is
    the guarded program). Data of up to 16 MiB per epoch is gathered for the whole epoch at
    once, larger data one batch per step.

    Args:
      model, loss_fn, optimizer: as `make_train_step`.
      batch_size: samples per mini-batch, a positive int.
      accumulate_steps: mini-batches per update (their mean gradient is applied; the memory
        of one mini-batch); the mini-batches after the last full group are skipped.
      unroll: steps per loop iteration of the scan (`jax.lax.scan`'s `unroll`); True unrolls
        the whole epoch into straight-line code.
      mesh: a `jax.sharding.Mesh` with an axis "data": data parallel, each mini-batch split
        over its devices (`batch_size` a multiple of their number); pass the state and the
        data replicated on a mesh of Auto axes, as for `make_train_step`.
      precision: "float32", "highest" or "bfloat16", as `fit`'s.
    Returns:
      ``epoch(state, inputs, targets) -> (state, losses)`` with one loss per update:
      ``len(inputs) // batch_size // accumulate_steps`` of them.
    Raises:
      ValueError: (when called) if inputs and targets differ in length or hold fewer samples
        than one update.
    """
    return epoch_runner(
        model,
        loss_fn,
        optimizer,
        batch_size=batch_size,
        accumulate_steps=accumulate_steps,
        unroll=unroll,
        mesh=mesh,
        precision=precision,
    ).epoch


def make_stepwise_epoch(
    model: Layer,
    loss_fn: LossFn,
    optimizer: Optimizer,
    *,
    batch_size: int,
    accumulate_steps: int = 1,
):
    """The epoch of `make_train_epoch`, with one jitted step per update driven from Python.

    Same shuffle, same dropout keys, same guard against non-finite steps and the same result
    (to float rounding); only the dispatch differs. `fit` uses it for models that XLA runs
    slowly inside a loop (convolutions on CPU, see benchmarks/bench_dispatch.py). Each step
    gathers its batch from the full arrays on the device, so there is one dispatch per step.
    """
    return epoch_runner(
        model,
        loss_fn,
        optimizer,
        batch_size=batch_size,
        accumulate_steps=accumulate_steps,
        dispatch="step",
        where="make_stepwise_epoch",
    ).epoch


def _check_epoch_data(inputs: Array, targets: Array, samples_per_update: int) -> None:
    _checks.data_pair("train epoch", "data", (inputs, targets))
    if inputs.shape[0] < samples_per_update:
        raise ValueError(
            f"train epoch: one update needs {samples_per_update} samples (batch_size times "
            f"accumulate_steps), got {inputs.shape[0]}; an epoch runs full updates only."
        )
