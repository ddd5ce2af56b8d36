"""The checks `fit` runs on its data before compiling anything, reusable in a custom loop."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import _checks
from fnnet.nn import Layer
from fnnet.nn._layer import id_bound, is_shape
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


def label_classes(outputs: Any, targets: Any) -> int | None:
    """The number of classes integer `targets` index, or None when they are not class ids.

    `outputs` and `targets` are (abstract) arrays of a batch of 2. A model with a single output
    has no class axis (a binary logit or a regression), so its integer targets are values.
    """
    num_classes = outputs.shape[-1] if outputs.shape else 1
    if (
        num_classes == 1
        or not jnp.issubdtype(targets.dtype, jnp.integer)
        or outputs.shape[:-1] != (2, *targets.shape[1:])
    ):
        return None
    return num_classes


def _check_label_range(where: str, name: str, outputs, targets: Array) -> None:
    """Integer targets index the model's output classes: check they exist."""
    num_classes = label_classes(outputs, targets)
    if num_classes is None:
        return
    _checks.ids_in_range(
        where,
        f"`{name}` labels",
        targets,
        num_classes,
        f" for a model with {num_classes} outputs (one per class)",
    )


def check_model_fits_data(
    where: str,
    model: Layer,
    state: TrainState,
    loss_fn,
    named_data: dict[str, tuple],
    check_labels: bool = True,
) -> None:
    """Raises unless the model's outputs on each ``name: (inputs, targets)`` fit `loss_fn`
    (None: no loss) and (with `check_labels`) integer labels lie within the model's classes
    (the model is traced abstractly: nothing runs). The data may be abstract (any objects with
    `shape` and `dtype`) when `check_labels` is off."""
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"{where}: `loss_fn` must be callable, got {type(loss_fn).__name__}.")
    for name, (inputs, targets) in named_data.items():
        outputs = _check_fits_loss(where, model, state, loss_fn, inputs, targets)
        if check_labels:
            _check_label_range(where, name, outputs, targets)


class SampleLimits(NamedTuple):
    """What the per-chunk device check of streamed data tests: `num_classes` integer labels
    index (None: targets are values), `num_ids` an Embedding takes (None: no ids)."""

    num_classes: int | None
    num_ids: int | None


def sample_limits(model: Layer, state: TrainState, inputs: Any, targets: Any) -> SampleLimits:
    """The SampleLimits of a model and (abstract) data, read from its abstract outputs."""
    outputs = _check_fits_loss("fit", model, state, None, inputs, targets)
    spec = jax.ShapeDtypeStruct((2, *targets.shape[1:]), targets.dtype)
    num_ids = id_bound(model) if jnp.issubdtype(inputs.dtype, jnp.integer) else None
    return SampleLimits(label_classes(outputs, spec), num_ids)


_PROBLEMS = (
    "NaN or inf in the inputs",
    "NaN or inf in the targets",
    "a label outside the model's classes",
    "a token id outside the model's Embedding",
)


@functools.partial(jax.jit, static_argnums=(2, 3))
def first_bad_sample(inputs: Array, targets: Array, limits: SampleLimits, sample_axes: int):
    """``(position, problem)``: the flat position of the first bad sample among the
    `sample_axes` leading axes and an index into `_PROBLEMS`, or ``(-1, -1)``; runs where the
    data is, so only two scalars come back."""

    def per_sample(x, test):
        flags = test(x.reshape(-1, *x.shape[sample_axes:]))
        return flags.reshape(flags.shape[0], -1).any(axis=1)

    none = jnp.zeros(int(np.prod(inputs.shape[:sample_axes])), bool)
    problems = []
    for values in (inputs, targets):
        floating = jnp.issubdtype(values.dtype, jnp.floating)
        problems.append(per_sample(values, lambda v: ~jnp.isfinite(v)) if floating else none)
    classes, ids = limits
    for values, upper in ((targets, classes), (inputs, ids)):
        problems.append(none if upper is None else
                        per_sample(values, lambda v, u=upper: (v < 0) | (v >= u)))  # fmt: skip
    flags = jnp.stack(problems)  # (4, samples)
    bad = flags.any(axis=0)
    position = jnp.where(bad.any(), jnp.argmax(bad), -1)
    problem = jnp.where(bad.any(), jnp.argmax(flags[:, jnp.maximum(position, 0)]), -1)
    return position, problem


def problem_text(problem: int, limits: SampleLimits) -> str:
    text = _PROBLEMS[problem]
    if problem == 2:
        text += f" [0, {limits.num_classes})"
    if problem == 3:
        text += f" [0, {limits.num_ids})"
    return text


def check_transform(where: str, transform: Any, inputs: Any) -> Callable | None:
    """`transform` checked: None, or a callable of an inputs batch that keeps its batch axis
    (traced on batches of 2 and 3 shaped like `inputs`, which may be abstract)."""
    if transform is None:
        return None
    if not callable(transform):
        raise TypeError(
            f"{where}: `transform` must be a function of an inputs batch (e.g. `lambda x: x / "
            f"255.0`) or None, got {type(transform).__name__}."
        )
    for n in (2, 3):
        spec = jax.ShapeDtypeStruct((n, *inputs.shape[1:]), inputs.dtype)
        out = jax.eval_shape(transform, spec)
        if not hasattr(out, "shape") or out.shape[:1] != (n,):
            raise ValueError(
                f"{where}: `transform` must keep the batch axis first, but turned inputs of shape "
                f"{spec.shape} into {_checks.shape_str(out)}."
            )
    return transform


@functools.lru_cache(maxsize=256)  # one wrapper per (model, transform): jitted callers hit it
def with_transform(model: Layer, transform: Callable | None) -> Layer:
    """`model` applied to ``transform(inputs)``: the same params (its `init` sees the shape
    the transform gives float32 inputs), so a state trained with it serves `model` given the
    transformed inputs."""
    if transform is None:
        return model

    def init(key, input_shape):
        def shaped(shape):
            spec = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
            return tuple(jax.eval_shape(transform, spec).shape[1:])

        return model.init(key, jax.tree.map(shaped, input_shape, is_leaf=is_shape))

    def apply(params, state, inputs, *, key=None, train=False):
        return model.apply(params, state, transform(inputs), key=key, train=train)

    return Layer(init, apply)
