"""The Layer type and the shape inference that combinators share (private).

A layer is ``Layer(init, apply)``:

    params, state = layer.init(key, input_shape)       # input_shape excludes the batch axis
    outputs, state = layer.apply(params, state, inputs, *, key=None, train=False)

`init` only needs the input shape; combinators find each layer's output shape by tracing its
`apply` abstractly (`jax.eval_shape`, no FLOPs) on a batch of one.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from fnnet.typing import Params, PRNGKey, State

InitFn = Callable[[PRNGKey, Any], tuple[Params, State]]
ApplyFn = Callable[..., tuple[Any, State]]

_INTEGER_INPUTS = "_fnnet_integer_inputs"
_SUBLAYERS = "_fnnet_sublayers"


class Layer(NamedTuple):
    """A pair of pure functions ``init(key, input_shape)`` and ``apply(params, state, inputs)``."""

    init: InitFn
    apply: ApplyFn


def integer_inputs(apply: ApplyFn, num_ids: int) -> ApplyFn:
    """Marks `apply` as consuming integer ids in ``[0, num_ids)`` (token ids), so that shape
    inference feeds it integers and `fit` can check the ids before training."""
    setattr(apply, _INTEGER_INPUTS, num_ids)
    return apply


def id_bound(layer: Layer) -> int | None:
    """``num_ids`` if `layer` consumes integer ids in ``[0, num_ids)``, else None."""
    return getattr(layer.apply, _INTEGER_INPUTS, None)


def with_sublayers(apply: ApplyFn, layers: tuple[Layer, ...]) -> ApplyFn:
    """Marks `apply` as applying `layers` in sequence, their params at ``[i]`` (for summary)."""
    setattr(apply, _SUBLAYERS, layers)
    return apply


def sublayers(layer: Layer) -> tuple[Layer, ...] | None:
    """The layers a `serial` applies in sequence, or None for any other layer."""
    return getattr(layer.apply, _SUBLAYERS, None)


def layer_name(layer: Layer) -> str:
    """The constructor that built `layer` (``Dense``, ``serial``, ...), from its apply's name."""
    qualname = getattr(layer.apply, "__qualname__", "")
    return qualname.split(".<locals>")[0] if ".<locals>" in qualname else type(layer).__name__


def is_shape(x: Any) -> bool:
    """True for a shape: a tuple of ints (possibly empty)."""
    return isinstance(x, tuple) and all(isinstance(d, int) for d in x)


def check_input_shape(where: str, input_shape: Any) -> None:
    """Raises unless `input_shape` is a shape or a tuple/list of shapes (for multi-input layers)."""
    leaves = jax.tree.leaves(input_shape, is_leaf=is_shape)
    if not leaves or not all(is_shape(leaf) for leaf in leaves):
        raise TypeError(
            f"{where}: `input_shape` must be a tuple of ints without the batch axis, e.g. (64,) "
            f"or (8, 8, 1), got {input_shape!r}."
        )
    for shape in leaves:
        if any(isinstance(d, bool) or d < 1 for d in shape):
            raise ValueError(
                f"{where}: `input_shape` must have positive dimensions (one input's shape, "
                f"without the batch axis), got {shape!r}."
            )


Expected = dict[str, "tuple[int | str, ...] | Expected"]


def check_params(where: str, params: Any, expected: Expected, name: str = "params") -> None:
    """Raises unless `params` has exactly the keys of `expected` and each leaf its shape.

    `expected` maps each key to a shape or to a nested dict of them; a dimension is an int, or
    a name (``"in"``) that matches any size, the same size wherever the name recurs. Shapes are
    static, so the check is free under `jit`; it catches the params of another model (a Dense
    of 5 features given to one of 3) with a message instead of wrong outputs or a KeyError.
    """
    sizes: dict[str, int] = {}

    def fits(tree: Any, want: Any) -> bool:
        if isinstance(want, dict):
            return (
                isinstance(tree, dict)
                and tree.keys() == want.keys()
                and all(fits(tree[key], want[key]) for key in want)
            )
        shape = getattr(tree, "shape", None)
        if shape is None or len(shape) != len(want):
            return False
        for size, dim in zip(shape, want, strict=True):
            if isinstance(dim, str):
                dim = sizes.setdefault(dim, size)
            if size != dim:
                return False
        return True

    if not fits(params, expected):
        raise ValueError(
            f"{where}: `{name}` do not fit this layer: expected {_shapes_str(expected)}, got "
            f"{_shapes_str(params)}. Pass the {name} this model's own `init` returned (or "
            "those of a TrainState made for it)."
        )


def _shapes_str(tree: Any) -> str:
    """``{'w': (in, 3), 'b': (3,)}``: a tree of shapes (or of arrays, shown by shape)."""
    if isinstance(tree, dict):
        return "{" + ", ".join(f"{k!r}: {_shapes_str(v)}" for k, v in tree.items()) + "}"
    if hasattr(tree, "shape"):
        tree = tuple(tree.shape)
    if isinstance(tree, tuple):
        return "(" + ", ".join(map(str, tree)) + (",)" if len(tree) == 1 else ")")
    return type(tree).__name__


def batch_of_one(input_shape: Any, dtype: Any) -> Any:
    """Abstract inputs with a batch axis of 1, one `ShapeDtypeStruct` per shape in the tree."""
    return jax.tree.map(
        lambda shape: jax.ShapeDtypeStruct((1, *shape), dtype), input_shape, is_leaf=is_shape
    )


def shapes_without_batch(specs: Any) -> Any:
    return jax.tree.map(lambda spec: tuple(spec.shape[1:]), specs)


def output_specs(layer: Layer, params: Params, state: State, input_specs: Any) -> Any:
    """The abstract outputs of `layer` in evaluation mode, computed without running it."""
    apply = functools.partial(layer.apply, train=False)
    outputs, _ = jax.eval_shape(apply, params, state, input_specs)
    return outputs


def check_model(where: str, model: Any) -> None:
    """Raises a TypeError unless `model` is a Layer."""
    if not isinstance(model, Layer):
        raise TypeError(
            f"{where}: `model` must be a Layer such as `fnnet.nn.MLP((64,), 10)`, got "
            f"{type(model).__name__}."
        )


def check_layer(where: str, position: int, layer: Any) -> None:
    """Raises a TypeError with a hint when `layer` is not a Layer (e.g. `Relu` for `Relu()`)."""
    if isinstance(layer, Layer):
        return
    if inspect.isfunction(layer) and _returns_layer(layer):
        name = layer.__name__
        raise TypeError(
            f"{where}: argument {position} is the function `{name}`, expected a Layer. Did you "
            f"write `{name}` instead of `{name}()`?"
        )
    raise TypeError(
        f"{where}: argument {position} must be a Layer such as `Dense(10)` or `Relu()`, got "
        f"{type(layer).__name__} {layer!r}."
    )


def _returns_layer(function: Callable) -> bool:
    annotation = inspect.signature(function).return_annotation
    return annotation in (Layer, "Layer")


def apply_keys(key: PRNGKey | None, count: int) -> list[PRNGKey | None]:
    """One key per sub-layer (all None without a key)."""
    if key is None:
        return [None] * count
    return list(jax.random.split(key, count))
