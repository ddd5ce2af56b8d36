"""Gradient clipping by global norm, as a wrapper around any optimizer."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fnnet.optim import _hyperparams
from fnnet.optim._base import Optimizer, check_grads, make_optimizer
from fnnet.typing import Array, Params

__all__ = ["clip_by_global_norm", "global_norm"]


def global_norm(tree: Params) -> Array:
    """``sqrt(sum of squares of every leaf)``, accumulated in float32 (at least)."""
    norms = [
        jnp.linalg.norm(jnp.ravel(leaf).astype(jnp.promote_types(leaf.dtype, jnp.float32)))
        for leaf in jax.tree.leaves(tree)
    ]
    return jnp.linalg.norm(jnp.stack(norms)) if norms else jnp.zeros((), jnp.float32)


def clip_by_global_norm(optimizer: Optimizer, max_norm: float) -> Optimizer:
    """Scales the gradients by ``min(1, max_norm / (norm + 1e-6))`` before `optimizer` sees them.

    ``norm`` is the L2 norm of all gradients together, so this equals PyTorch's
    ``torch.nn.utils.clip_grad_norm_(params, max_norm)`` called before ``optimizer.step()``.
    The state is the wrapped optimizer's own, with ``max_norm`` added to its hyperparameters
    (so `with_hyperparams` can change it too).

    Args:
      optimizer: any fnnet Optimizer.
      max_norm: the largest global norm let through; > 0.
    Raises:
      TypeError: if `optimizer` is not an Optimizer.
      ValueError: if `max_norm` is not a positive finite number.
    """
    if not isinstance(optimizer, Optimizer):
        raise TypeError(
            "clip_by_global_norm: `optimizer` must be an fnnet Optimizer such as "
            f"`fnnet.optim.adam()`, got {type(optimizer).__name__}."
        )
    max_norm = _hyperparams.check("clip_by_global_norm", "max_norm", max_norm)

    def init(params: Params):
        state = optimizer.init(params)
        extra = _hyperparams.as_state({"max_norm": max_norm})
        return state._replace(hyperparams={**state.hyperparams, **extra})

    def update(state, grads: Params):
        check_grads("clip_by_global_norm.update", state.params, grads)
        norm = global_norm(grads)
        scale = jnp.minimum(1.0, state.hyperparams["max_norm"] / (norm + 1e-6))
        clipped = jax.tree.map(lambda g: (g * scale).astype(g.dtype), grads)
        return optimizer.update(state, clipped)

    schedule = getattr(optimizer.update, "learning_rate_schedule", None)
    return make_optimizer(init, update, schedule)
