"""The checks `fit` runs on its data before compiling anything, reusable in a custom loop."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import _checks
from fnnet.nn import Layer
from fnnet.nn._layer import id_bound
from fnnet.train.state import TrainState
from fnnet.typing import Array


def _check_finite(where: str, what: str, values: Any) -> None:
    """Raises naming the first sample holding NaN or inf; a JAX array is scanned where it lives
    (one scalar comes back), a NumPy array on the host."""
    if not np.issubdtype(values.dtype, np.floating):
        return
    xp = jnp if isinstance(values, jax.Array) else np
    count = int(xp.sum(~xp.isfinite(values)))
    if count:
        row = int(np.argwhere(~np.isfinite(np.asarray(values)))[0][0])
        raise ValueError(
            f"{where}: {what} contains {count} NaN or inf entries (the first in sample {row}); "
            "remove or impute them before training."
        )


def check_inputs(where: str, what: str, inputs: Any, model: Layer) -> Array:
    """`inputs` as a device array after checking them: real numbers, no NaN or inf, token ids
    within the model's Embedding. `what` names them in messages ("`train_data` inputs")."""
    inputs = _checks.real_array(where, what, inputs)
    _check_finite(where, what, inputs)
    num_ids = id_bound(model)
    if num_ids is not None and np.issubdtype(inputs.dtype, np.integer):
        _checks.ids_in_range(
            where,
            f"{what} (token ids)",
            inputs,
            num_ids,
            f" for the model's Embedding of {num_ids} ids",
        )
    return jnp.asarray(inputs)


def prepare_data(where: str, name: str, data: Any, model: Layer) -> tuple[Array, Array]:
    """``(inputs, targets)`` as device arrays after checking the pair: equal lengths, real
    numbers without NaN or inf, token ids within the model's Embedding."""
    inputs, targets = _checks.data_pair(where, name, data)
    targets = _checks.real_array(where, f"`{name}` targets", targets)
    _check_finite(where, f"`{name}` targets", targets)
    return check_inputs(where, f"`{name}` inputs", inputs, model), jnp.asarray(targets)


def check_batching(where: str, num_samples: int, batch_size: Any, accumulate_steps: Any) -> None:
    """Raises unless an epoch of `num_samples` holds at least one update."""
    batch_size = _checks.positive_int(where, "batch_size", batch_size)
    accumulate_steps = _checks.positive_int(where, "accumulate_steps", accumulate_steps)
    if batch_size > num_samples:
        raise ValueError(
            f"{where}: `batch_size` {batch_size} exceeds the {num_samples} training samples; "
            "each epoch runs full batches only, so lower batch_size."
        )
    if accumulate_steps > num_samples // batch_size:
        raise ValueError(
            f"{where}: `accumulate_steps` must be at most the {num_samples // batch_size} "
            f"mini-batches of an epoch, got {accumulate_steps}."
        )


def _check_fits_loss(where: str, model: Layer, state: TrainState, loss_fn, inputs, targets):
    """Traces the model (and the loss, if any) on the data's shapes; raises a clear error if
    they disagree. Returns the abstract outputs."""
    input_spec = jax.ShapeDtypeStruct((2, *inputs.shape[1:]), inputs.dtype)
    target_spec = jax.ShapeDtypeStruct((2, *targets.shape[1:]), targets.dtype)
    outputs = jax.eval_shape(
        lambda p, s, x: model.apply(p, s, x, train=False)[0],
        state.params,
        state.model_state,
        input_spec,
    )
    if loss_fn is None:
        return outputs
    try:
        loss = jax.eval_shape(loss_fn, outputs, target_spec)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"{where}: the model's outputs {_checks.shape_str(outputs)} do not fit `loss_fn` "
            f"with targets {_checks.shape_str(target_spec)} (batch of 2 shown): {error}"
        ) from error
    if loss.shape != ():
        raise ValueError(
            f"{where}: `loss_fn` must return a scalar, got shape {loss.shape}; use "
            "reduction='mean'."
        )
    return outputs


def _check_label_range(where: str, name: str, outputs, targets: Array) -> None:
    """Integer targets index the model's output classes: check they exist.

    A model with a single output has no class axis (a binary logit or a regression), so its
    integer targets are values, not indices.
    """
    num_classes = outputs.shape[-1] if outputs.shape else 1
    if (
        num_classes == 1
        or not jnp.issubdtype(targets.dtype, jnp.integer)
        or outputs.shape[:-1] != (2, *targets.shape[1:])
    ):
        return
    _checks.ids_in_range(
        where,
        f"`{name}` labels",
        targets,
        num_classes,
        f" for a model with {num_classes} outputs (one per class)",
    )


def check_model_fits_data(
    where: str, model: Layer, state: TrainState, loss_fn, named_data: dict[str, tuple]
) -> None:
    """Raises unless the model's outputs on each ``name: (inputs, targets)`` fit `loss_fn`
    (None: no loss) and integer labels lie within the model's classes (the model is traced
    abstractly: nothing runs)."""
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"{where}: `loss_fn` must be callable, got {type(loss_fn).__name__}.")
    for name, (inputs, targets) in named_data.items():
        outputs = _check_fits_loss(where, model, state, loss_fn, inputs, targets)
        _check_label_range(where, name, outputs, targets)
