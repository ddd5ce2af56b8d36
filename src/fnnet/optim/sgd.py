"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from fnnet import _checks
from fnnet.optim._base import (
    Optimizer,
    Schedule,
    check_grads,
    init_params,
    initial_step,
    learning_rate_schedule,
    map_leaves,
    zeros_like,
)
from fnnet.typing import Array, Params

__all__ = ["SGDState", "sgd"]


class SGDState(NamedTuple):
    step: Array  # () int32: updates applied so far
    params: Params
    momentum: Params | None  # momentum buffers b, shaped like params; None if momentum == 0


def sgd(
    learning_rate: float | Schedule,
    *,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
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
    Raises:
      ValueError: for a negative or non-finite hyperparameter or Nesterov without momentum or
        with dampening.
    """
    where = "sgd"
    lr_at = learning_rate_schedule(where, learning_rate)
    mu = _checks.non_negative(where, "momentum", momentum)
    damp = _checks.non_negative(where, "dampening", dampening)
    if damp > 1:
        raise ValueError(f"{where}: `dampening` must be a number in [0, 1], got {dampening!r}.")
    wd = _checks.non_negative(where, "weight_decay", weight_decay)
    if nesterov and (mu <= 0 or damp != 0):
        raise ValueError(
            f"{where}: nesterov=True needs momentum > 0 and dampening == 0, got momentum={mu} "
            f"and dampening={damp}."
        )

    def init(params: Params) -> SGDState:
        params = init_params(where, params)
        return SGDState(initial_step(), params, zeros_like(params) if mu else None)

    def update(state: SGDState, grads: Params) -> SGDState:
        check_grads(f"{where}.update", state.params, grads)
        lr = lr_at(state.step)
        first = state.step == 0

        def rule(p, g, buf):
            if wd:
                g = g + wd * p
            if mu:
                buf = jnp.where(first, g, mu * buf + (1 - damp) * g)
                g = g + mu * buf if nesterov else buf
            return p - lr * g, buf

        params, buffers = map_leaves(rule, state.params, grads, state.momentum)
        return SGDState(state.step + 1, params, buffers)

    return Optimizer(init, update)
