"""RMSprop with PyTorch's or TensorFlow's placement of eps, centering and momentum."""

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

__all__ = ["RMSpropState", "rmsprop"]


class RMSpropState(NamedTuple):
    step: Array  # () int32: updates applied so far
    params: Params
    square_avg: Params  # v: running mean of g², shaped like params
    grad_avg: Params | None  # running mean of g (centered); None unless centered
    momentum: Params | None  # momentum buffers b; None if momentum == 0
    hyperparams: dict[str, Array]  # () floats: learning_rate (or _scale), decay, eps, and
    # weight_decay and momentum unless they are 0


def rmsprop(
    learning_rate: float | Schedule = 1e-2,
    *,
    decay: float = 0.99,
    eps: float = 1e-8,
    momentum: float = 0.0,
    centered: bool = False,
    weight_decay: float = 0.0,
    eps_in_sqrt: bool = False,
    maximize: bool = False,
) -> Optimizer:
    """RMSprop, step for step as ``torch.optim.RMSprop`` (``decay`` is PyTorch's ``alpha``).

    With gradient ``g_t``::

        g_t = g_t + weight_decay * p_{t-1}
        v_t = decay v_{t-1} + (1 - decay) g_t²
        a_t = decay a_{t-1} + (1 - decay) g_t          (centered only)
        s_t = v_t - a_t²  if centered else v_t
        r_t = sqrt(s_t) + eps       (sqrt(s_t + eps) with eps_in_sqrt=True)
        b_t = momentum b_{t-1} + g_t / r_t;  p_t = p_{t-1} - lr_t b_t     (momentum > 0)
        p_t = p_{t-1} - lr_t g_t / r_t                                     (momentum == 0)

    The learning rate multiplies the momentum buffer from outside, as PyTorch. TensorFlow and
    optax put eps inside the square root and decay at 0.9: ``eps_in_sqrt=True, decay=0.9``.

    Args:
      learning_rate: a float or a schedule ``step -> lr`` (step 0 for the first update).
      decay: in [0, 1); the smoothing constant of the running averages.
      eps: > 0 (0 makes 0/0 of a parameter whose gradient has always been 0).
      momentum: >= 0. weight_decay: coupled L2 coefficient >= 0.
      centered: normalise by the estimated variance instead of the raw second moment.
      eps_in_sqrt: add eps inside the square root.
      maximize: ascend the objective (the gradient's sign flipped first), as PyTorch.

    Float hyperparameters may be numbers or JAX arrays, concrete or traced, and live in the
    state (`fnnet.optim.hyperparams`); a concrete ``momentum == 0`` keeps no buffer and a
    concrete ``weight_decay == 0`` no decay term (neither is then in the state).

    Raises:
      TypeError: for a hyperparameter that is not a number.
      ValueError: for a concrete hyperparameter out of range or not finite.
    """
    where = "rmsprop"
    schedule, values = split_learning_rate(where, learning_rate)
    for name, value in (("decay", decay), ("eps", eps)):
        values[name] = _hyperparams.check(where, name, value)
    values.update(_hyperparams.unless_zero(where, "weight_decay", weight_decay))
    momentum = _hyperparams.check(where, "momentum", momentum)
    has_buffer = _checks.is_traced(momentum) or momentum != 0
    if has_buffer:
        values["momentum"] = momentum

    def init(params: Params) -> RMSpropState:
        params = init_params(where, params)
        return RMSpropState(
            initial_step(),
            params,
            zeros_like(params),
            zeros_like(params) if centered else None,
            zeros_like(params) if has_buffer else None,
            _hyperparams.as_state(values),
        )

    def update(state: RMSpropState, grads: Params) -> RMSpropState:
        check_opt_state(f"{where}.update", state, RMSpropState, values, grad_avg=centered,
                        momentum=has_buffer)  # fmt: skip
        check_grads(f"{where}.update", state.params, grads)
        h = state.hyperparams
        lr = learning_rate_at(schedule, h, state.step)
        decay, eps = h["decay"], h["eps"]

        def rule(p, g, v, a, buf):
            if "weight_decay" in h:  # static: the state's structure decides
                g = g + h["weight_decay"] * p
            v = decay * v + (1 - decay) * g * g
            if centered:
                a = a + (1 - decay) * (g - a)
                v_hat = v - a * a
            else:
                v_hat = v
            r = jnp.sqrt(v_hat + eps) if eps_in_sqrt else jnp.sqrt(v_hat) + eps
            if has_buffer:
                buf = h["momentum"] * buf + g / r
                return p - lr * buf, v, a, buf
            return p - lr * g / r, v, a, buf

        params, square_avg, grad_avg, buffers = map_leaves(
            rule,
            state.params,
            signed(grads, maximize),
            state.square_avg,
            state.grad_avg,
            state.momentum,
        )
        return RMSpropState(state.step + 1, params, square_avg, grad_avg, buffers, h)

    return make_optimizer(init, update, schedule)
