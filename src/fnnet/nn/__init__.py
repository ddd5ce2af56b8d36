"""Layers: each a ``Layer(init, apply)`` pair of pure functions.

    params, state = layer.init(key, input_shape)        # input_shape excludes the batch axis
    outputs, state = layer.apply(params, state, inputs, *, key=None, train=False)

`params` are the trainable arrays (plain dicts, gathered into tuples by combinators), `state`
the non-trainable ones (BatchNorm statistics; ``{}`` for stateless layers). ``train=True``
switches Dropout and BatchNorm to training behaviour; `key` is needed only by layers that draw
random numbers in training (Dropout).
"""

from fnnet.nn._layer import Layer
from fnnet.nn.activation_layers import (
    Elu,
    Gelu,
    Identity,
    LeakyRelu,
    LogSoftmax,
    Relu,
    Sigmoid,
    Silu,
    Softmax,
    Softplus,
    Tanh,
)
from fnnet.nn.combinators import Add, Concatenate, parallel, residual, serial
from fnnet.nn.dense import Dense, Flatten
from fnnet.nn.dropout import Dropout
from fnnet.nn.mlp import MLP

__all__ = [
    "MLP",
    "Add",
    "Concatenate",
    "Dense",
    "Dropout",
    "Elu",
    "Flatten",
    "Gelu",
    "Identity",
    "Layer",
    "LeakyRelu",
    "LogSoftmax",
    "Relu",
    "Sigmoid",
    "Silu",
    "Softmax",
    "Softplus",
    "Tanh",
    "parallel",
    "residual",
    "serial",
]
