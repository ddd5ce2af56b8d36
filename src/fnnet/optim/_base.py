"""What every optimizer shares: the Optimizer type, argument checks, the leaf-wise update map."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnnet.optim._hyperparams import check
from fnnet.typing import Array, Params

Schedule = Callable[[Array], Array | float]


class Optimizer(NamedTuple):
    """``init(params) -> state`` and ``update(state, grads) -> state``; ``state.params`` are the
    parameters and ``state.step`` counts the updates applied (an int32 scalar)."""

    init: Callable[[Params], Any]
    update: Callable[[Any, Params], Any]


def split_learning_rate(where: str, learning_rate: Any) -> tuple[Schedule | None, dict[str, Any]]:
    """``(schedule, hyperparams)`` for a learning rate given as a number or a schedule.

    A number becomes the hyperparameter ``learning_rate`` (schedule None); a schedule
    ``step -> lr`` is kept, with the hyperparameter ``learning_rate_scale`` (1.0) that
    multiplies it.

    Raises:
      TypeError: for anything neither a number nor callable.
      ValueError: for a negative or non-finite number.
    """
    if callable(learning_rate):
        return learning_rate, {"learning_rate_scale": 1.0}
    return None, {"learning_rate": check(where, "learning_rate", learning_rate)}


def learning_rate_at(schedule: Schedule | None, hyperparams: dict[str, Array], step: Array):
    """The learning rate of the update about to be applied at `step` (updates so far)."""
    if schedule is None:
        return hyperparams["learning_rate"]
    return schedule(step) * hyperparams["learning_rate_scale"]


def make_optimizer(init: Callable, update: Callable, schedule: Schedule | None) -> Optimizer:
    """An Optimizer whose update knows its learning-rate schedule (for `current_learning_rate`)."""
    update.learning_rate_schedule = schedule
    return Optimizer(init, update)


def current_learning_rate(optimizer: Optimizer, opt_state: Any) -> float:
    """The learning rate the next update of `optimizer` would apply to `opt_state`, or NaN for
    an optimizer that does not say (one built by hand)."""
    hyperparams = getattr(opt_state, "hyperparams", None)
    if not isinstance(hyperparams, dict) or not hasattr(optimizer.update, "learning_rate_schedule"):
        return math.nan
    schedule = optimizer.update.learning_rate_schedule
    return float(learning_rate_at(schedule, hyperparams, opt_state.step))


def signed(grads: Params, maximize: bool) -> Params:
    """The gradients to descend: negated with `maximize` (PyTorch's option, ascending)."""
    return jax.tree.map(jnp.negative, grads) if maximize else grads


def init_params(where: str, params: Params) -> Params:
    """Params as JAX arrays of a fixed (non-weak) floating dtype, so steps never retrace."""
    leaves_with_paths, treedef = jax.tree_util.tree_flatten_with_path(params)
    leaves = []
    for path, leaf in leaves_with_paths:
        dtype = jnp.result_type(leaf)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{where}: every param must be a floating array, got {dtype} at "
                f"{jax.tree_util.keystr(path) or 'the root'}. Gradients exist only for floats."
            )
        leaves.append(jnp.asarray(leaf, dtype=dtype))
    return treedef.unflatten(leaves)


def zeros_like(params: Params) -> Params:
    return jax.tree.map(jnp.zeros_like, params)


def initial_step() -> Array:
    return jnp.zeros((), jnp.int32)


def check_opt_state(
    where: str, state: Any, state_type: type, hyperparams: Any, **slots: bool
) -> None:
    """Raises unless `state` is a `state_type` made by an optimizer with these options: it holds
    each of the `hyperparams` the update reads, and each optional slot (``nu_max=True``: an
    AMSGrad maximum) is present exactly when switched on. Static checks, free under `jit`."""
    if not isinstance(state, state_type):
        raise TypeError(
            f"{where}: `state` must be the {state_type.__name__} this optimizer's `init` returns, "
            f"got {type(state).__name__}; an optimizer state works only with the optimizer that "
            "made it."
        )
    missing = [name for name in hyperparams if name not in state.hyperparams]
    wrong = [name for name, on in slots.items() if (getattr(state, name) is None) == on]
    if missing or wrong:
        differs = ", ".join([f"hyperparameter {n!r} missing" for n in missing]
                            + [f"slot {n!r} {'missing' if slots[n] else 'unexpected'}"
                               for n in wrong])  # fmt: skip
        raise ValueError(
            f"{where}: `state` was made by this optimizer with other options ({differs}); "
            "build it with this optimizer's own `init`."
        )


def check_grads(where: str, params: Params, grads: Params) -> None:
    """Raises unless `grads` has the tree structure and leaf shapes of `params` (static checks)."""
    params_def, grads_def = jax.tree.structure(params), jax.tree.structure(grads)
    if params_def != grads_def:
        raise ValueError(
            f"{where}: `grads` must have the same tree structure as the params given to init; "
            f"params: {params_def}, grads: {grads_def}."
        )
    for (path, param), grad in zip(
        jax.tree_util.tree_flatten_with_path(params)[0], jax.tree.leaves(grads), strict=True
    ):
        if jnp.shape(param) != jnp.shape(grad):
            raise ValueError(
                f"{where}: `grads` must match the params leaf by leaf; at "
                f"{jax.tree_util.keystr(path) or 'the root'} the param has shape "
                f"{jnp.shape(param)} and the grad {jnp.shape(grad)}."
            )


def map_leaves(rule: Callable[..., tuple], params: Params, grads: Params, *slots: Any) -> tuple:
    """Applies ``rule(param, grad, *slot_leaves) -> (param, *slot_leaves)`` leaf by leaf.

    `slots` are trees shaped like `params` (optimizer moments), or None for a slot an option
    switched off: the rule then receives None and must return None for it. Every new leaf is
    cast to its parameter's dtype, so bfloat16 params stay bfloat16.

    Returns:
      ``(new_params, *new_slots)``.
    """
    param_leaves, treedef = jax.tree.flatten(params)
    grad_leaves = treedef.flatten_up_to(grads)
    slot_leaves = [
        [None] * len(param_leaves) if slot is None else treedef.flatten_up_to(slot)
        for slot in slots
    ]
    results = [
        rule(param, grad, *leaf_slots)
        for param, grad, *leaf_slots in zip(param_leaves, grad_leaves, *slot_leaves, strict=True)
    ]

    def gather(index: int) -> Params | None:
        if index > 0 and slots[index - 1] is None:
            return None
        leaves = [
            result[index].astype(param.dtype)
            for result, param in zip(results, param_leaves, strict=True)
        ]
        return treedef.unflatten(leaves)

    return tuple(gather(index) for index in range(1 + len(slots)))
