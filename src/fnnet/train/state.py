"""The training state: optimizer state (with the params), model state and a PRNG key."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from fnnet import _checks
from fnnet.nn import Layer
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


def check_model_and_optimizer(where: str, model: Any, optimizer: Any) -> None:
    if not isinstance(model, Layer):
        raise TypeError(
            f"{where}: `model` must be a Layer such as `fnnet.nn.MLP((64,), 10)`, got "
            f"{type(model).__name__}."
        )
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
