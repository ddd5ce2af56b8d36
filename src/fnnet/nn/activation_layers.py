"""Activation layers (parameter-free wrappers of `fnnet.activations`) and lookup by name."""

from __future__ import annotations

import functools
from collections.abc import Callable

from fnnet import _checks, activations
from fnnet.nn._layer import Layer, check_input_shape
from fnnet.typing import Array

__all__ = [
    "Elu",
    "Gelu",
    "Identity",
    "LeakyRelu",
    "LogSoftmax",
    "Relu",
    "Sigmoid",
    "Silu",
    "Softmax",
    "Softplus",
    "Tanh",
    "activation_layer",
]


def elementwise(function: Callable[[Array], Array], name: str = "Activation") -> Layer:
    """A parameter-free layer applying ``function`` to its inputs (shape preserved)."""

    def init(key, input_shape):
        check_input_shape(name, input_shape)
        return {}, {}

    def apply(params, state, inputs, *, key=None, train=False):
        return function(inputs), state

    apply.__qualname__ = f"{name}.<locals>.apply"  # the constructor's name, for nn.summary
    return Layer(init, apply)


def Sigmoid() -> Layer:
    """``1 / (1 + exp(-x))`` element-wise."""
    return elementwise(activations.sigmoid, "Sigmoid")


def Relu() -> Layer:
    """``max(x, 0)`` element-wise."""
    return elementwise(activations.relu, "Relu")


def Tanh() -> Layer:
    """``tanh(x)`` element-wise."""
    return elementwise(activations.tanh, "Tanh")


def LeakyRelu(negative_slope: float = 0.01) -> Layer:
    """``x`` for ``x >= 0``, ``negative_slope * x`` below."""
    slope = _checks.number_or_array("LeakyRelu", "negative_slope", negative_slope)
    return elementwise(functools.partial(activations.leaky_relu, negative_slope=slope), "LeakyRelu")


def Elu(alpha: float = 1.0) -> Layer:
    """``x`` for ``x > 0``, ``alpha * (exp(x) - 1)`` below."""
    alpha = _checks.number_or_array("Elu", "alpha", alpha)
    return elementwise(functools.partial(activations.elu, alpha=alpha), "Elu")


def Gelu(approximate: bool = False) -> Layer:
    """Exact (erf) GELU as PyTorch's ``nn.GELU()``; the tanh form with ``approximate=True``."""
    return elementwise(functools.partial(activations.gelu, approximate=approximate), "Gelu")


def Silu() -> Layer:
    """``x * sigmoid(x)`` element-wise."""
    return elementwise(activations.silu, "Silu")


def Softplus() -> Layer:
    """``log(1 + exp(x))`` element-wise."""
    return elementwise(activations.softplus, "Softplus")


def Softmax(axis: int = -1) -> Layer:
    """Softmax over `axis` (the last by default)."""
    return elementwise(functools.partial(activations.softmax, axis=axis), "Softmax")


def LogSoftmax(axis: int = -1) -> Layer:
    """Log-softmax over `axis` (the last by default)."""
    return elementwise(functools.partial(activations.log_softmax, axis=axis), "LogSoftmax")


def Identity() -> Layer:
    """Returns its inputs unchanged."""
    return elementwise(lambda x: x, "Identity")


_BY_NAME: dict[str, Callable[[], Layer]] = {
    "sigmoid": Sigmoid,
    "relu": Relu,
    "tanh": Tanh,
    "leaky_relu": LeakyRelu,
    "elu": Elu,
    "gelu": Gelu,
    "silu": Silu,
    "softplus": Softplus,
    "softmax": Softmax,
    "log_softmax": LogSoftmax,
    "identity": Identity,
}


def activation_layer(activation: str | Callable[[Array], Array] | Layer, where: str) -> Layer:
    """The layer for an activation given by name, as an array function, or as a Layer.

    Raises:
      ValueError: for an unknown name (the valid ones are listed).
      TypeError: for a layer constructor such as `Relu` (not called) or a non-callable.
    """
    if isinstance(activation, Layer):
        return activation
    if isinstance(activation, str):
        if activation not in _BY_NAME:
            raise _checks.unknown_name(
                where, "activation", activation, _BY_NAME, "a function such as `jax.numpy.sin`"
            )
        return _BY_NAME[activation]()
    names = [name for name, constructor in _BY_NAME.items() if constructor is activation]
    if names:
        raise TypeError(
            f"{where}: `activation` got the layer constructor `{activation.__name__}`; pass its "
            f"name ({names[0]!r}), a Layer (`{activation.__name__}()`) or an array function."
        )
    if not callable(activation):
        raise TypeError(
            f"{where}: `activation` must be a name, an array function or a Layer, got "
            f"{type(activation).__name__} {activation!r}."
        )
    return elementwise(activation)
