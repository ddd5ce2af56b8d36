"""The training state: optimizer state (with the params), model state and a PRNG key."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from fnnet import _checks
from fnnet.nn import Layer
from fnnet.nn._layer import check_model
from fnnet.optim import Optimizer
from fnnet.typing import Params, PRNGKey, State


class TrainState(NamedTuple):
    """Everything a training step reads and replaces, as one pytree.

    The params live once, inside `opt_state`; `params` and `step` read through to it, so a
    jitted step can donate the whole state. `key` never changes: the dropout key of step t and
    the shuffle key of the epoch starting at step t are derived from it and t.
    """

    opt_state: Any  # the optimizer's state: .params, .step (int32), moments
    model_state: State  # non-trainable layer state (BatchNorm statistics), often ()
    key: PRNGKey

    @property
    def params(self) -> Params:
        return self.opt_state.params

    @property
    def step(self) -> jax.Array:
        return self.opt_state.step


def check_not_donated(where: str, name: str, state: Any) -> None:
    """Raises if an array of `state` was donated to (consumed by) an earlier jitted step."""
    if any(isinstance(leaf, jax.Array) and leaf.is_deleted() for leaf in jax.tree.leaves(state)):
        raise ValueError(
            f"{where}: `{name}` was donated to an earlier training step, which reused its "
            "buffers for the state it returned; keep using the returned state, e.g. "
            "`state, loss = step(state, batch)` (or copy it first: "
            "`jax.tree.map(jnp.copy, state)`)."
        )


def rejecting_donated(where: str, jitted: Callable) -> Callable:
    """`jitted` (whose first argument, a TrainState, is donated) with a clear error when that
    state was already donated; nothing is checked unless the call fails, so it costs nothing."""

    @functools.wraps(jitted)
    def call(state, *args):
        try:
            return jitted(state, *args)
        except (RuntimeError, ValueError):
            check_not_donated(where, "state", state)
            raise

    call.lower = jitted.lower  # ahead-of-time compilation and program inspection still work
    return call


def check_model_and_optimizer(where: str, model: Any, optimizer: Any) -> None:
    check_model(where, model)
    if not isinstance(optimizer, Optimizer):
        hint = " Did you forget to call it, e.g. `adam()`?" if callable(optimizer) else ""
        raise TypeError(
            f"{where}: `optimizer` must be an fnnet Optimizer such as `fnnet.optim.adam()`, "
            f"got {type(optimizer).__name__}.{hint}"
        )


def init_state(
    model: Layer, optimizer: Optimizer, key: PRNGKey, input_shape: tuple[int, ...]
) -> TrainState:
    """Initialises the model's params and state and the optimizer for inputs of `input_shape`.

    Args:
      model: the network.
      optimizer: e.g. ``fnnet.optim.adam()``.
      key: split into the initialisation key and the state's training key.
      input_shape: one input's shape, without the batch axis.
    Returns:
      A TrainState at step 0.

    Example:
      >>> import jax
      >>> from fnnet import nn, optim, train
      >>> state = train.init_state(nn.MLP((32,), 10), optim.adam(), jax.random.key(0), (64,))
      >>> int(state.step), state.params[0]["w"].shape
      (0, (64, 32))
    """
    check_model_and_optimizer("init_state", model, optimizer)
    _checks.prng_key("init_state", key)
    init_key, train_key = jax.random.split(key)
    if isinstance(input_shape, list):
        input_shape = tuple(input_shape)
    params, model_state = model.init(init_key, input_shape)
    return TrainState(optimizer.init(params), model_state, train_key)


def dropout_key(state: TrainState) -> PRNGKey:
    """The key of the step about to run: a function of the state's key and step only."""
    return jax.random.fold_in(jax.random.fold_in(state.key, 0), state.step)


def shuffle_key(state: TrainState) -> PRNGKey:
    """The key of the epoch starting at the state's step (a new order every epoch)."""
    return jax.random.fold_in(jax.random.fold_in(state.key, 1), state.step)


def _leaf_str(leaf: Any) -> str:
    return f"{tuple(leaf.shape)} {leaf.dtype}" if hasattr(leaf, "shape") else type(leaf).__name__


def _owner(path: str) -> str:
    if path.startswith(".opt_state.params"):
        return "the model's params"
    if path.startswith(".opt_state"):
        return "the optimizer's state"
    return "the model's state" if path.startswith(".model_state") else "the TrainState"


def check_state(
    where: str, state: Any, model: Layer, optimizer: Optimizer, input_shape: tuple[int, ...]
) -> TrainState:
    """Raises unless `state` has the tree structure, shapes and dtypes that
    ``init_state(model, optimizer, key, input_shape)`` gives; names the first differing path.

    Only shapes are compared (`jax.eval_shape`: nothing is computed), so params, moments and
    hyperparameter values may be anything trained or set.
    """
    if not isinstance(state, TrainState):
        raise TypeError(
            f"{where}: `initial_state` must be a TrainState (e.g. `result.state` of an earlier "
            f"fit, or `train.init_state(...)`), got {type(state).__name__}."
        )
    check_not_donated(where, "initial_state", state)
    expected = jax.eval_shape(lambda key: init_state(model, optimizer, key, input_shape), state.key)
    got = dict(jax.tree_util.tree_flatten_with_path(state)[0])
    want = dict(jax.tree_util.tree_flatten_with_path(expected)[0])
    got_paths = {jax.tree_util.keystr(p): leaf for p, leaf in got.items()}
    want_paths = {jax.tree_util.keystr(p): leaf for p, leaf in want.items()}
    for path in [*want_paths, *got_paths]:
        mine, theirs = got_paths.get(path), want_paths.get(path)
        if mine is None or theirs is None:
            has = "has no" if mine is None else "has an extra"
            raise ValueError(
                f"{where}: `initial_state` does not fit this model and optimizer: it {has} leaf "
                f"at {path} ({_owner(path)}). Pass a state made with the same model, optimizer "
                "and input shape."
            )
        if _leaf_str(mine) != _leaf_str(theirs):
            raise ValueError(
                f"{where}: `initial_state` does not fit this model and optimizer: at {path} "
                f"({_owner(path)}) it holds {_leaf_str(mine)}, expected {_leaf_str(theirs)}."
            )
    return state
