"""The one training step body, and `make_train_step`, its jitted form for a user's own loop."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

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
    dropout_key,
    rejecting_donated,
)
from fnnet.typing import Array

LossFn = Callable[[Any, Array], Array]
BatchAt = Callable[[Any], tuple[Array, Array]]  # micro-batch index -> (inputs, targets)


def _all_finite(loss: Array, grads: Any, opt_state: Any, model_state: Any) -> Array:
    """True when the loss, every gradient and every leaf of the new optimizer and model state
    is finite: one fused test per parameter of its gradient and of each params-shaped part of
    the optimizer state (the params, every moment), then one reduction per parameter. (A
    separate reduction per leaf of every tree made the compiled epoch 8% to 20% slower.)"""
    param_leaves, params_def = jax.tree.flatten(grads)
    parts, others = [grads], [model_state]
    for part in opt_state if isinstance(opt_state, tuple) else (opt_state,):
        leaves = jax.tree.leaves(part)
        params_shaped = jax.tree.structure(part) == params_def and all(
            jnp.shape(a) == jnp.shape(b) for a, b in zip(leaves, param_leaves, strict=True)
        )
        (parts if params_shaped else others).append(part)

    def finite(*leaves):
        tests = [jnp.isfinite(x) for x in leaves if jnp.issubdtype(x.dtype, jnp.inexact)]
        return jnp.all(functools.reduce(jnp.logical_and, tests)) if tests else jnp.bool_(True)

    flags = jax.tree.leaves(jax.tree.map(finite, *parts))
    flags += [finite(leaf) for leaf in jax.tree.leaves(others)]
    return functools.reduce(jnp.logical_and, flags, jnp.isfinite(loss))


def tree_all_finite(tree: Any) -> Array:
    """True when every floating leaf of `tree` is finite (keys and integer leaves ignored)."""
    flags = [jnp.isfinite(leaf).all() for leaf in jax.tree.leaves(tree)
             if jnp.issubdtype(leaf.dtype, jnp.inexact)]  # fmt: skip
    return functools.reduce(jnp.logical_and, flags, jnp.bool_(True))


def accumulate_steps_arg(where: str, accumulate_steps: Any) -> int:
    """`accumulate_steps` checked: a positive int."""
    return _checks.positive_int(where, "accumulate_steps", accumulate_steps)


def _gradients_fn(model: Layer, loss_fn: LossFn, accumulate_steps: int):
    """``gradients(state, batch_at) -> (loss, model_state, grads)`` of one update."""

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

    def gradients(state: TrainState, batch_at: BatchAt):
        key = dropout_key(state)
        if accumulate_steps == 1:
            (loss, model_state), grads = value_and_grad(
                state.params, state.model_state, *batch_at(0), key
            )
            return loss, model_state, grads

        def micro_step(carry, i):
            model_state, grad_sum, loss_sum = carry
            (loss, model_state), grads = value_and_grad(
                state.params, model_state, *batch_at(i), jax.random.fold_in(key, i)
            )
            grad_sum = jax.tree.map(jnp.add, grad_sum, grads)
            return (model_state, grad_sum, loss_sum + loss.astype(jnp.float32)), None

        zeros = jax.tree.map(jnp.zeros_like, state.params)
        carry = (state.model_state, zeros, jnp.zeros((), jnp.float32))
        (model_state, grad_sum, loss_sum), _ = jax.lax.scan(
            micro_step, carry, jnp.arange(accumulate_steps)
        )
        grads = jax.tree.map(lambda g: g / accumulate_steps, grad_sum)
        return loss_sum / accumulate_steps, model_state, grads

    return gradients


def train_step_fn(
    model: Layer, loss_fn: LossFn, optimizer: Optimizer, *, guard: bool, accumulate_steps: int = 1
):
    """``step(state, batch_at, commit) -> (state, loss, committed)``, not jitted.

    ``batch_at(i)`` returns micro-batch ``i`` (``0 <= i < accumulate_steps``) as ``(inputs,
    targets)``. With ``accumulate_steps=k > 1`` the k micro-batches run one after another in a
    `lax.scan` (the memory of one), their gradients are averaged and applied in one update; the
    model state (BatchNorm statistics) is threaded through them in order, and micro-batch i
    draws its dropout from ``fold_in(step key, i)``. With k == 1 the step is exactly one
    forward and backward pass.

    With `guard`, the update is committed only when `commit` holds and the loss, every
    gradient and every leaf of the new params, optimizer state and model state are finite (a
    finite gradient can still give NaN params: a learning-rate schedule returning inf, a 0/0);
    otherwise the input state comes back unchanged, so a diverging run never overwrites the
    last good parameters, and the loss reported is NaN, so that a skipped step (its loss
    finite) is not mistaken for a good one. Without it, the step is exactly what one would
    write by hand (and `committed` is `commit`).
    """
    gradients = _gradients_fn(model, loss_fn, accumulate_steps)

    def step(state: TrainState, batch_at: BatchAt, commit):
        loss, model_state, grads = gradients(state, batch_at)
        updated = (optimizer.update(state.opt_state, grads), model_state)
        if not guard:
            return TrainState(*updated, state.key), loss, commit
        # The test runs the update again on copies behind an optimization barrier, so that XLA
        # cannot merge it into the update: then the flag is ready before the update runs and
        # the selects fuse into it (one pass over the params and moments, as without the test;
        # testing the update's own outputs costs a second pass, 10% to 15% on a small MLP).
        probe = optimizer.update(*jax.lax.optimization_barrier((state.opt_state, grads)))
        committed = commit & _all_finite(loss, grads, probe, model_state)
        kept = jax.tree.map(
            lambda new, old: jnp.where(committed, new, old),
            updated,
            (state.opt_state, state.model_state),
        )
        return TrainState(*kept, state.key), jnp.where(committed, loss, jnp.nan), committed

    return step


def first_nonfinite(
    model: Layer,
    loss_fn: LossFn,
    optimizer: Optimizer,
    state: TrainState,
    batch_at: BatchAt,
    accumulate_steps: int = 1,
) -> tuple[str, str] | None:
    """Where the update from `state` on ``batch_at`` stops being finite, recomputed once.

    Returns ``(what, path)``: ``("gradient", "[2]['w']")`` for the first non-finite gradient
    (a path in the params), else ``("parameter", path)`` for the first non-finite new param,
    else ``("optimizer state", "opt_state.nu[2]['w']")`` or ``("model state",
    "model_state[1]['var']")``; None when only the loss is not finite.
    """
    gradients = _gradients_fn(model, loss_fn, accumulate_steps)

    def parts(state):
        _, model_state, grads = gradients(state, batch_at)
        opt_state = optimizer.update(state.opt_state, grads)
        return grads, opt_state.params, opt_state, model_state

    trees = jax.device_get(jax.jit(parts)(state))
    labels = (("gradient", ""), ("parameter", ""), ("optimizer state", "opt_state"),
              ("model state", "model_state"))  # fmt: skip
    for (what, prefix), tree in zip(labels, trees, strict=True):
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            leaf = np.asarray(leaf)
            if np.issubdtype(leaf.dtype, np.inexact) and not np.isfinite(leaf).all():
                return what, prefix + jax.tree_util.keystr(path)
    return None


def make_train_step(
    model: Layer,
    loss_fn: LossFn,
    optimizer: Optimizer,
    *,
    skip_nonfinite: bool = False,
    accumulate_steps: int = 1,
    mesh: Mesh | None = None,
    precision: str = "float32",
):
    """One jitted training step: forward, `jax.value_and_grad`, optimizer update.

    The returned ``step(state, batch) -> (state, loss)`` donates `state`: its buffers are
    reused for the new one, so keep using the returned state. By default the step does exactly
    what a hand-written one does (and costs the same, see benchmarks/): a non-finite loss gives
    non-finite params. With ``skip_nonfinite=True``, a step whose loss, gradients or new state
    (params, optimizer moments, layer statistics) are not finite leaves the state unchanged
    (its step count too) and returns a NaN loss, at the price of a finiteness test and a
    select per parameter; `fit` always does this.

    Args:
      model: the network.
      loss_fn: ``loss_fn(outputs, targets) -> scalar``, e.g. ``losses.softmax_cross_entropy``.
      optimizer: an fnnet Optimizer.
      skip_nonfinite: keep the previous state when the loss, a gradient or the new state is
        NaN or inf.
      accumulate_steps: split each batch into this many equal micro-batches, run them one
        after another and apply their mean gradient in one update (the activation memory of
        one micro-batch); the batch size must be a multiple of it.
      mesh: a `jax.sharding.Mesh` with an axis "data": each micro-batch is split over its
        devices (data parallel); each micro-batch must divide evenly over them. Pass a state
        replicated on a mesh of Auto axes, e.g. ``jax.device_put(state, NamedSharding(mesh,
        PartitionSpec()))`` with ``mesh = jax.make_mesh((n,), ("data",),
        axis_types=(AxisType.Auto,))``.
      precision: "float32", "highest" or "bfloat16", as `fit`'s.
    Returns:
      ``step(state, (inputs, targets)) -> (state, loss)``; compiled once per batch shape. The
      dropout key of each step is derived from ``state.key`` and ``state.step``; the loss is
      the mean over the micro-batches.

    Example:
      >>> # step = make_train_step(model, losses.softmax_cross_entropy, optim.adam())
      >>> # for inputs, targets in data.batches(key, x, y, batch_size=32):
      >>> #     state, loss = step(state, (inputs, targets))
    """
    check_model_and_optimizer("make_train_step", model, optimizer)
    model = compute_in("make_train_step", model, check_precision("make_train_step", precision))
    k = accumulate_steps_arg("make_train_step", accumulate_steps)
    mesh = sharding.check_mesh("make_train_step", mesh)
    train_step = train_step_fn(model, loss_fn, optimizer, guard=skip_nonfinite, accumulate_steps=k)

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state: TrainState, batch) -> tuple[TrainState, Array]:
        inputs, targets = _checks.data_pair("train step", "batch", batch)
        if inputs.shape[0] % k:
            raise ValueError(
                f"train step: the batch of {inputs.shape[0]} samples must split into "
                f"`accumulate_steps` {k} equal micro-batches; use a multiple of {k}."
            )
        sharding.check_divides("train step", "batch", inputs.shape[0] // k, mesh)
        micro = (x.reshape(k, -1, *x.shape[1:]) for x in (inputs, targets))
        inputs, targets = micro

        def batch_at(i):
            return sharding.split_batch(mesh, (inputs[i], targets[i]))

        state, loss, _ = train_step(state, batch_at, jnp.bool_(True))
        return state, loss

    return rejecting_donated("train step", step)
