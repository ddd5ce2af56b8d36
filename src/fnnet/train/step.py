"""Compiled training: one step, or a whole epoch of steps in one program (`jax.lax.scan`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import _checks
from fnnet.nn import Layer
from fnnet.optim import Optimizer
from fnnet.train.evaluation import data_pair
from fnnet.train.state import TrainState, check_model_and_optimizer, dropout_key, shuffle_key
from fnnet.typing import Array

LossFn = Callable[[Any, Array], Array]


def _all_finite(tree: Any) -> Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def train_step_fn(model: Layer, loss_fn: LossFn, optimizer: Optimizer, *, guard: bool):
    """``step(state, inputs, targets, commit) -> (state, loss, committed)``, not jitted.

    With `guard`, the update is committed only when `commit` holds and the loss and every
    gradient are finite; otherwise the input state comes back unchanged, so a diverging run
    never overwrites the last good parameters, and the loss reported is NaN, so that a step
    skipped for a non-finite gradient (its loss finite) is not mistaken for a good one. Without
    it, the step is exactly what one would write by hand (and `committed` is `commit`).
    """

    def objective(params, model_state, inputs, targets, key):
        outputs, model_state = model.apply(params, model_state, inputs, key=key, train=True)
        loss = loss_fn(outputs, targets)
        if jnp.shape(loss) != ():
            raise ValueError(
                f"train: `loss_fn` must return a scalar, got shape {jnp.shape(loss)}; use "
                "reduction='mean' (the default)."
            )
        return loss, model_state

    value_and_grad = jax.value_and_grad(objective, has_aux=True)

    def step(state: TrainState, inputs, targets, commit):
        (loss, model_state), grads = value_and_grad(
            state.params, state.model_state, inputs, targets, dropout_key(state)
        )
        updated = (optimizer.update(state.opt_state, grads), model_state)
        if not guard:
            return TrainState(*updated, state.key), loss, commit
        committed = commit & jnp.isfinite(loss) & _all_finite(grads)
        kept = jax.tree.map(
            lambda new, old: jnp.where(committed, new, old),
            updated,
            (state.opt_state, state.model_state),
        )
        return TrainState(*kept, state.key), jnp.where(committed, loss, jnp.nan), committed

    return step


def make_train_step(
    model: Layer, loss_fn: LossFn, optimizer: Optimizer, *, skip_nonfinite: bool = False
):
    """One jitted training step: forward, `jax.value_and_grad`, optimizer update.

    The returned ``step(state, batch) -> (state, loss)`` donates `state`: its buffers are
    reused for the new one, so keep using the returned state. By default the step does exactly
    what a hand-written one does (and costs the same, see benchmarks/): a non-finite loss gives
    non-finite params. With ``skip_nonfinite=True``, a step whose loss or gradients are not
    finite leaves the state unchanged (its step count too) and returns a NaN loss, at the price
    of one select per parameter; `fit` always does this.

    Args:
      model: the network.
      loss_fn: ``loss_fn(outputs, targets) -> scalar``, e.g. ``losses.softmax_cross_entropy``.
      optimizer: an fnnet Optimizer.
      skip_nonfinite: keep the previous state when the loss or a gradient is NaN or inf.
    Returns:
      ``step(state, (inputs, targets)) -> (state, loss)``; compiled once per batch shape. The
      dropout key of each step is derived from ``state.key`` and ``state.step``.

    Example:
      >>> # step = make_train_step(model, losses.softmax_cross_entropy, optim.adam())
      >>> # for inputs, targets in data.batches(key, x, y, batch_size=32):
      >>> #     state, loss = step(state, (inputs, targets))
    """
    check_model_and_optimizer("make_train_step", model, optimizer)
    train_step = train_step_fn(model, loss_fn, optimizer, guard=skip_nonfinite)

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state: TrainState, batch) -> tuple[TrainState, Array]:
        inputs, targets = data_pair("train step", "batch", batch)
        state, loss, _ = train_step(state, inputs, targets, jnp.bool_(True))
        return state, loss

    return step


def shuffle_indices(state: TrainState, num_samples: int, *, batch_size: int) -> Array:
    """The sample indices of the epoch starting at ``state.step``, shaped
    ``(num_samples // batch_size, batch_size)``: one row per full mini-batch."""
    num_batches = num_samples // batch_size
    order = jax.random.permutation(shuffle_key(state), num_samples)
    return order[: num_batches * batch_size].reshape(num_batches, batch_size)


def make_train_epoch(
    model: Layer, loss_fn: LossFn, optimizer: Optimizer, *, batch_size: int, unroll: int = 1
):
    """A whole epoch compiled into one program: shuffle, then every full mini-batch.

    The returned ``epoch(state, inputs, targets) -> (state, losses)`` shuffles with a key
    derived from the state (a new order every epoch, the same for the same seed), then runs
    ``len(inputs) // batch_size`` steps inside `jax.lax.scan`, so a small model pays one
    dispatch per epoch instead of one per step. The last partial batch is skipped (its
    samples fall in other batches in other epochs). `state` is donated. From the first step
    whose loss or gradients are not finite on, no step is committed: the returned state is the
    last finite one, and `losses` holds NaN for every step not committed.

    Args:
      model, loss_fn, optimizer: as `make_train_step`.
      batch_size: samples per step, a positive int.
      unroll: steps per loop iteration of the scan (`jax.lax.scan`'s `unroll`); True unrolls
        the whole epoch into straight-line code.
    Returns:
      ``epoch(state, inputs, targets) -> (state, losses)`` with ``losses`` of shape
      ``(len(inputs) // batch_size,)``.
    Raises:
      ValueError: (when called) if inputs and targets differ in length or hold fewer samples
        than one batch.
    """
    check_model_and_optimizer("make_train_epoch", model, optimizer)
    batch_size = _checks.positive_int("make_train_epoch", "batch_size", batch_size)
    guarded = train_step_fn(model, loss_fn, optimizer, guard=True)

    @functools.partial(jax.jit, donate_argnums=0)
    def epoch(state: TrainState, inputs: Array, targets: Array) -> tuple[TrainState, Array]:
        _check_epoch_data(inputs, targets, batch_size)

        def body(carry, indices):
            state, commit = carry
            state, loss, commit = guarded(state, inputs[indices], targets[indices], commit)
            return (state, commit), loss

        indices = shuffle_indices(state, inputs.shape[0], batch_size=batch_size)
        (state, _), losses = jax.lax.scan(body, (state, jnp.bool_(True)), indices, unroll=unroll)
        return state, losses

    return epoch


def make_stepwise_epoch(model: Layer, loss_fn: LossFn, optimizer: Optimizer, *, batch_size: int):
    """The epoch of `make_train_epoch`, with one jitted step per mini-batch driven from Python.

    Same shuffle, same dropout keys, same guard against non-finite steps and the same result
    (to float rounding); only the dispatch differs. `fit` uses it for models that XLA runs
    slowly inside a loop (convolutions on CPU, see benchmarks/bench_dispatch.py). Each step
    gathers its batch from the full arrays on the device, so there is one dispatch per step.
    """
    check_model_and_optimizer("make_stepwise_epoch", model, optimizer)
    batch_size = _checks.positive_int("make_stepwise_epoch", "batch_size", batch_size)
    guarded = train_step_fn(model, loss_fn, optimizer, guard=True)

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state, inputs, targets, indices, commit):
        return guarded(state, inputs[indices], targets[indices], commit)

    def epoch(state: TrainState, inputs: Array, targets: Array) -> tuple[TrainState, Array]:
        _check_epoch_data(inputs, targets, batch_size)
        rows = np.asarray(shuffle_indices(state, inputs.shape[0], batch_size=batch_size))
        commit, losses = jnp.bool_(True), []
        for indices in rows:
            state, loss, commit = step(state, inputs, targets, indices, commit)
            losses.append(loss)
        return state, jnp.stack(losses)

    return epoch


def _check_epoch_data(inputs: Array, targets: Array, batch_size: int) -> None:
    data_pair("train epoch", "data", (inputs, targets))
    if inputs.shape[0] < batch_size:
        raise ValueError(
            f"train epoch: `batch_size` {batch_size} exceeds the {inputs.shape[0]} samples; "
            "an epoch runs full batches only."
        )
