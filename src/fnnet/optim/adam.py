"""Adam and AdamW (coupled and decoupled weight decay), with AMSGrad."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

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

__all__ = ["AdamState", "adam", "adamw"]


class AdamState(NamedTuple):
    step: Array  # () int32: updates applied so far
    params: Params
    mu: Params  # first moment m, shaped like params
    nu: Params  # second moment v, shaped like params
    nu_max: Params | None  # running maximum of v (AMSGrad); None unless amsgrad
    hyperparams: dict[str, Array]  # () floats: learning_rate (or _scale), b1, b2, eps,
    # and weight_decay unless it is 0


def _one_minus_power(b: Array, t: Array) -> Array:
    """``1 - b**t`` without cancellation: ``-expm1(t log b)`` (1 for ``b == 0``).

    Plain ``1 - 0.999**1`` in float32 is off by 1e-5 relative; this matches PyTorch's float64
    bias corrections to float32 rounding.
    """
    return -jnp.expm1(t * jnp.log(b))


def _adam(
    where: str,
    decoupled: bool,
    learning_rate: float | Schedule,
    b1: float,
    b2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    maximize: bool,
) -> Optimizer:
    schedule, values = split_learning_rate(where, learning_rate)
    for name, value in (("b1", b1), ("b2", b2), ("eps", eps)):
        values[name] = _hyperparams.check(where, name, value)
    values.update(_hyperparams.unless_zero(where, "weight_decay", weight_decay))

    def init(params: Params) -> AdamState:
        params = init_params(where, params)
        nu_max = zeros_like(params) if amsgrad else None
        return AdamState(
            initial_step(),
            params,
            zeros_like(params),
            zeros_like(params),
            nu_max,
            _hyperparams.as_state(values),
        )

    def update(state: AdamState, grads: Params) -> AdamState:
        check_opt_state(f"{where}.update", state, AdamState, values, nu_max=amsgrad)
        check_grads(f"{where}.update", state.params, grads)
        h = state.hyperparams
        lr = learning_rate_at(schedule, h, state.step)
        b1, b2, eps, wd = h["b1"], h["b2"], h["eps"], h.get("weight_decay")
        t = (state.step + 1).astype(b1.dtype)
        step_size = lr / _one_minus_power(b1, t)
        bias_correction2_sqrt = jnp.sqrt(_one_minus_power(b2, t))

        def rule(p, g, m, v, v_max):
            if wd is not None and decoupled:
                p = p * (1 - lr * wd)
            elif wd is not None:
                g = g + wd * p
            m = m + (1 - b1) * (g - m)
            v = b2 * v + (1 - b2) * g * g
            if amsgrad:
                v_max = jnp.maximum(v_max, v)
            denom = jnp.sqrt(v_max if amsgrad else v) / bias_correction2_sqrt + eps
            return p - step_size * m / denom, m, v, v_max

        params, mu, nu, nu_max = map_leaves(
            rule, state.params, signed(grads, maximize), state.mu, state.nu, state.nu_max
        )
        return AdamState(state.step + 1, params, mu, nu, nu_max, h)

    return make_optimizer(init, update, schedule)


def adam(
    learning_rate: float | Schedule = 1e-3,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    maximize: bool = False,
) -> Optimizer:
    """Adam, step for step as ``torch.optim.Adam`` (weight decay is a coupled L2 penalty).

    With gradient ``g_t`` and ``t`` the step count (1 for the first update)::

        g_t = g_t + weight_decay * p_{t-1}
        m_t = b1 m_{t-1} + (1 - b1) g_t
        v_t = b2 v_{t-1} + (1 - b2) g_t²
        v̂_t = max(v̂_{t-1}, v_t) if amsgrad else v_t        (maximum of the raw moment)
        p_t = p_{t-1} - lr_t / (1 - b1^t) * m_t / (sqrt(v̂_t / (1 - b2^t)) + eps)

    Args:
      learning_rate: a float or a schedule ``step -> lr`` (step 0 for the first update).
      b1, b2: moment decay rates in [0, 1) (PyTorch's ``betas``).
      eps: added to the denominator, > 0 (PyTorch allows 0, which makes 0/0 = NaN of a
        parameter whose gradient has always been 0).
      weight_decay: coupled L2 coefficient >= 0 (use `adamw` for decoupled decay).
      amsgrad: keep the running maximum of ``v`` (AMSGrad).
      maximize: ascend the objective (the gradient's sign flipped first), as PyTorch.

    The float hyperparameters may be Python numbers or JAX arrays, concrete or traced; they
    live in the state (`fnnet.optim.hyperparams`), so a jitted step can change them without
    retracing.

    Raises:
      TypeError: for a hyperparameter that is not a number.
      ValueError: for a concrete hyperparameter out of range or not finite.
    """
    return _adam("adam", False, learning_rate, b1, b2, eps, weight_decay, amsgrad, maximize)


def adamw(
    learning_rate: float | Schedule = 1e-3,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    maximize: bool = False,
) -> Optimizer:
    """AdamW, step for step as ``torch.optim.AdamW``: decoupled weight decay.

    The decay shrinks the previous parameters before the Adam step, which then uses the raw
    gradient::

        p'_{t-1} = p_{t-1} (1 - lr_t * weight_decay)
        p_t = p'_{t-1} - lr_t / (1 - b1^t) * m_t / (sqrt(v̂_t / (1 - b2^t)) + eps)

    with ``m_t``, ``v̂_t`` as in `adam` (without the L2 term). Arguments as `adam`; the
    default `weight_decay` is 1e-2, as PyTorch.
    """
    return _adam("adamw", True, learning_rate, b1, b2, eps, weight_decay, amsgrad, maximize)
