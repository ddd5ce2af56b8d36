"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from fnnet import _checks
from fnnet.optim import _hyperparams
from fnnet.optim._base import (
    Optimizer,
    Schedule,
    check_grads,
    check_opt_state,
    init_params,
    initial_step,
    learning_rate_at,
    make_optimizer,
    map_leaves,
    signed,
    split_learning_rate,
    zeros_like,
)
from fnnet.typing import Array, Params

__all__ = ["SGDState", "sgd"]


class SGDState(NamedTuple):
    step: Array  # () int32: updates applied so far
    params: Params
    momentum: Params | None  # momentum buffers b, shaped like params; None if momentum == 0
    hyperparams: dict[str, Array]  # () floats: learning_rate (or _scale), weight_decay unless
    # it is 0, and momentum, dampening unless momentum is 0


def sgd(
    learning_rate: float | Schedule,
    *,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> Optimizer:
    """SGD, step for step as ``torch.optim.SGD``.

    With gradient ``g_t``, learning rate ``lr_t`` and the step count ``t`` (1 for the first
    update)::

        g_t = g_t + weight_decay * p_{t-1}
        b_t = g_t                                      if t == 1
        b_t = momentum * b_{t-1} + (1 - dampening) g_t  otherwise
        d_t = g_t + momentum * b_t if nesterov else b_t     (d_t = g_t when momentum == 0)
        p_t = p_{t-1} - lr_t * d_t

    Args:
      learning_rate: a float or a schedule ``step -> lr`` (step 0 for the first update).
      momentum: ``momentum`` >= 0; 0 keeps no buffer.
      dampening: in [0, 1]; PyTorch's convention, not applied on the first step.
      nesterov: Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
      weight_decay: coupled L2 penalty coefficient >= 0.
      maximize: ascend the objective (the gradient's sign flipped first), as PyTorch.

    Float hyperparameters may be numbers or JAX arrays, concrete or traced, and live in the
    state (`fnnet.optim.hyperparams`). A concrete ``momentum == 0`` keeps no buffer (and no
    ``momentum`` / ``dampening`` hyperparameters) and a concrete ``weight_decay == 0`` no
    decay term; traced values always keep them.

    Raises:
      TypeError: for a hyperparameter that is not a number.
      ValueError: for a concrete hyperparameter that is negative or not finite, a dampening
        above 1, or Nesterov without momentum or with dampening.
    """
    where = "sgd"
    schedule, values = split_learning_rate(where, learning_rate)
    values.update(_hyperparams.unless_zero(where, "weight_decay", weight_decay))
    momentum = _hyperparams.check(where, "momentum", momentum)
    dampening = _hyperparams.check(where, "dampening", dampening)
    has_buffer = _checks.is_traced(momentum) or momentum != 0
    if has_buffer:
        values.update(momentum=momentum, dampening=dampening)
    concrete = not (_checks.is_traced(momentum) or _checks.is_traced(dampening))
    if nesterov and concrete and (momentum <= 0 or dampening != 0):
        raise ValueError(
            f"{where}: nesterov=True needs momentum > 0 and dampening == 0, got "
            f"momentum={momentum} and dampening={dampening}."
        )

    def init(params: Params) -> SGDState:
        params = init_params(where, params)
        buffers = zeros_like(params) if has_buffer else None
        return SGDState(initial_step(), params, buffers, _hyperparams.as_state(values))

    def update(state: SGDState, grads: Params) -> SGDState:
        check_opt_state(f"{where}.update", state, SGDState, values, momentum=has_buffer)
        check_grads(f"{where}.update", state.params, grads)
        h = state.hyperparams
        lr = learning_rate_at(schedule, h, state.step)
        first = state.step == 0

        def rule(p, g, buf):
            if "weight_decay" in h:  # static: the state's structure decides
                g = g + h["weight_decay"] * p
            if has_buffer:
                mu, damp = h["momentum"], h["dampening"]
                buf = jnp.where(first, g, mu * buf + (1 - damp) * g)
                g = g + mu * buf if nesterov else buf
            return p - lr * g, buf

        params, buffers = map_leaves(rule, state.params, signed(grads, maximize), state.momentum)
        return SGDState(state.step + 1, params, buffers, h)

    return make_optimizer(init, update, schedule)
