"""Multi-layer perceptron: the depth and width of a network as plain hyperparameters."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from fnnet import _checks
from fnnet.initializers import glorot_uniform, zeros
from fnnet.nn._layer import Layer
from fnnet.nn.activation_layers import activation_layer
from fnnet.nn.combinators import serial
from fnnet.nn.dense import Dense
from fnnet.nn.dropout import Dropout
from fnnet.typing import Array, Initializer

__all__ = ["MLP"]

Activation = str | Callable[[Array], Array] | Layer


def MLP(
    hidden_sizes: Sequence[int],
    out_features: int,
    *,
    activation: Activation = "relu",
    output_activation: Activation | None = None,
    drop_rate: float = 0.0,
    w_init: Initializer = glorot_uniform(),
    b_init: Initializer = zeros(),
) -> Layer:
    """``Dense -> activation [-> Dropout]`` per hidden size, then ``Dense(out_features)``.

    Args:
      hidden_sizes: neurons per hidden layer, e.g. ``(128, 64)`` for two hidden layers; ``()``
        gives a linear model.
      out_features: size of the output layer.
      activation: hidden activation: a name ("sigmoid", "relu", "tanh", "leaky_relu", "elu",
        "gelu", "silu", "softplus", "softmax", "log_softmax", "identity"), an array function or
        a Layer.
      output_activation: applied after the output layer; None (default) leaves logits, which
        is what `losses.softmax_cross_entropy` and `losses.sigmoid_binary_cross_entropy` take.
      drop_rate: dropout rate after each hidden activation (0 adds no Dropout layer).
      w_init, b_init: initializers of every Dense layer.
    Returns:
      A `serial` Layer; the params of the i-th Dense are ``{"w": (in, out), "b": (out,)}``.
    Raises:
      ValueError: for a non-positive size, an unknown activation name or a bad `drop_rate`.
      TypeError: if `hidden_sizes` is not a sequence of ints or `activation` is a constructor.

    Example:
      >>> import jax
      >>> model = MLP((128, 64), 10, activation="tanh")
      >>> params, state = model.init(jax.random.key(0), (784,))
      >>> [p["w"].shape for p in params if p]
      [(784, 128), (128, 64), (64, 10)]
    """
    if isinstance(hidden_sizes, int | str) or not isinstance(hidden_sizes, Sequence):
        raise TypeError(
            "MLP: `hidden_sizes` must be a sequence of positive ints, one per hidden layer, "
            f"e.g. (128, 64); got {hidden_sizes!r}."
        )
    for index, size in enumerate(hidden_sizes):
        _checks.positive_int("MLP", f"hidden_sizes[{index}]", size)
    _checks.positive_int("MLP", "out_features", out_features)
    _checks.unit_interval("MLP", "drop_rate", drop_rate)
    layers: list[Layer] = []
    for size in hidden_sizes:
        layers += [Dense(size, w_init=w_init, b_init=b_init), activation_layer(activation, "MLP")]
        if drop_rate > 0:
            layers.append(Dropout(drop_rate))
    layers.append(Dense(out_features, w_init=w_init, b_init=b_init))
    if output_activation is not None:
        layers.append(activation_layer(output_activation, "MLP"))
    return serial(*layers)
