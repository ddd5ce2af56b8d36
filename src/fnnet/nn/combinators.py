"""Combinators that build networks out of layers: serial, parallel, residual."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fnnet import _checks
from fnnet.nn._layer import (
    Layer,
    apply_keys,
    batch_of_one,
    check_input_shape,
    check_layer,
    id_bound,
    integer_inputs,
    output_specs,
    shapes_without_batch,
    with_sublayers,
)

__all__ = ["Add", "Concatenate", "parallel", "residual", "serial"]


def _checked_layers(where: str, layers: tuple) -> tuple[Layer, ...]:
    if not layers:
        raise ValueError(f"{where}: needs at least one layer, got none.")
    for position, layer in enumerate(layers, start=1):  # counted from 1, as people count
        check_layer(where, position, layer)
    return layers


def _check_params_length(where: str, params, count: int) -> None:
    if not isinstance(params, tuple) or len(params) != count:
        got = f"a tuple of {len(params)}" if isinstance(params, tuple) else type(params).__name__
        raise ValueError(
            f"{where}: `params` must be a tuple with one entry per layer ({count}), got {got}. "
            "Pass the params returned by this layer's own init."
        )


def _input_specs(input_shape, num_ids: int | None):
    return batch_of_one(input_shape, "float32" if num_ids is None else "int32")


def _tagged(init, apply, num_ids: int | None) -> Layer:
    """The Layer (init, apply), marked as taking integer ids when its inputs feed an Embedding."""
    return Layer(init, apply if num_ids is None else integer_inputs(apply, num_ids))


def serial(*layers: Layer) -> Layer:
    """Composes layers left to right: ``serial(f, g)`` applies ``f`` then ``g``.

    `init` infers each layer's input shape from the previous layer's output.

    Args:
      *layers: at least one Layer.
    Returns:
      A Layer whose params and state are tuples with one entry per layer, so their tree paths
      read ``[i]['w']``.
    Raises:
      TypeError: if an argument is not a Layer (with a hint for ``Relu`` written for ``Relu()``).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from fnnet.nn import Dense, Relu, serial
      >>> model = serial(Dense(32), Relu(), Dense(10))
      >>> params, state = model.init(jax.random.key(0), (64,))
      >>> [p["w"].shape for p in params if p]
      [(64, 32), (32, 10)]
      >>> model.apply(params, state, jnp.ones((8, 64)))[0].shape
      (8, 10)
    """
    layers = _checked_layers("serial", layers)
    num_ids = id_bound(layers[0])

    def init(key, input_shape):
        _checks.prng_key("serial", key)
        check_input_shape("serial", input_shape)
        specs = _input_specs(input_shape, num_ids)
        params, states = [], []
        for layer, layer_key in zip(layers, jax.random.split(key, len(layers)), strict=True):
            layer_params, layer_state = layer.init(layer_key, shapes_without_batch(specs))
            specs = output_specs(layer, layer_params, layer_state, specs)
            params.append(layer_params)
            states.append(layer_state)
        return tuple(params), tuple(states)

    def apply(params, state, inputs, *, key=None, train=False):
        _check_params_length("serial", params, len(layers))
        new_states = []
        keys = apply_keys(key, len(layers))
        for layer, layer_params, layer_state, layer_key in zip(
            layers, params, state, keys, strict=True
        ):
            inputs, layer_state = layer.apply(
                layer_params, layer_state, inputs, key=layer_key, train=train
            )
            new_states.append(layer_state)
        return inputs, tuple(new_states)

    return _tagged(init, with_sublayers(apply, layers), num_ids)


def parallel(*layers: Layer) -> Layer:
    """Fan-out: feeds the same inputs to every layer and returns their outputs as a tuple.

    Follow it with a fan-in layer such as `Concatenate()` or `Add()` in a `serial`.

    Returns:
      A Layer with params and state tuples of one entry per layer.
    """
    layers = _checked_layers("parallel", layers)
    bounds = [bound for bound in map(id_bound, layers) if bound is not None]
    num_ids = min(bounds) if bounds else None  # every branch sees the same inputs

    def init(key, input_shape):
        _checks.prng_key("parallel", key)
        check_input_shape("parallel", input_shape)
        pairs = [
            layer.init(layer_key, input_shape)
            for layer, layer_key in zip(layers, jax.random.split(key, len(layers)), strict=True)
        ]
        return tuple(p for p, _ in pairs), tuple(s for _, s in pairs)

    def apply(params, state, inputs, *, key=None, train=False):
        _check_params_length("parallel", params, len(layers))
        pairs = [
            layer.apply(layer_params, layer_state, inputs, key=layer_key, train=train)
            for layer, layer_params, layer_state, layer_key in zip(
                layers, params, state, apply_keys(key, len(layers)), strict=True
            )
        ]
        return tuple(o for o, _ in pairs), tuple(s for _, s in pairs)

    return _tagged(init, apply, num_ids)


def residual(layer: Layer) -> Layer:
    """Skip connection: ``inputs + layer(inputs)``; `layer` must preserve the input shape.

    Raises:
      TypeError: if `layer` is not a Layer.
      ValueError: at init, if `layer` changes the shape of its inputs.
    """
    (layer,) = _checked_layers("residual", (layer,))

    def init(key, input_shape):
        check_input_shape("residual", input_shape)
        params, state = layer.init(key, input_shape)
        specs = batch_of_one(input_shape, "float32")
        out_shape = shapes_without_batch(output_specs(layer, params, state, specs))
        if out_shape != tuple(input_shape):
            raise ValueError(
                f"residual: the wrapped layer must keep the input shape {tuple(input_shape)}, "
                f"but it outputs {out_shape}; add a Dense layer to project back."
            )
        return params, state

    def apply(params, state, inputs, *, key=None, train=False):
        outputs, state = layer.apply(params, state, inputs, key=key, train=train)
        return inputs + outputs, state

    return Layer(init, apply)


def _fan_in(name: str, combine) -> Layer:
    """A parameter-free layer combining the tuple of arrays that `parallel` outputs."""

    def init(key, input_shape):
        check_input_shape(name, input_shape)
        return {}, {}

    def apply(params, state, inputs, *, key=None, train=False):
        if not isinstance(inputs, tuple | list) or len(inputs) < 2:
            raise ValueError(
                f"{name}: inputs must be a tuple of at least two arrays (the outputs of "
                f"`parallel`), got {type(inputs).__name__}."
            )
        return combine(inputs), state

    return Layer(init, apply)


def Concatenate(axis: int = -1) -> Layer:
    """Fan-in: concatenates a tuple of arrays along `axis` (the feature axis by default)."""
    return _fan_in("Concatenate", lambda arrays: jnp.concatenate(arrays, axis=axis))


def Add() -> Layer:
    """Fan-in: sums a tuple of arrays of one shape."""

    def add(arrays):
        shapes = {array.shape for array in arrays}
        if len(shapes) != 1:
            raise ValueError(f"Add: inputs must share one shape, got shapes {sorted(shapes)}.")
        return sum(arrays[1:], arrays[0])

    return _fan_in("Add", add)
