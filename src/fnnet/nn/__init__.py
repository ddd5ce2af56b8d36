"""Layers: each a ``Layer(init, apply)`` pair of pure functions.

    params, state = layer.init(key, input_shape)        # input_shape excludes the batch axis
    outputs, state = layer.apply(params, state, inputs, *, key=None, train=False)

`params` are the trainable arrays (plain dicts, gathered into tuples by combinators), `state`
the non-trainable ones (BatchNorm statistics; ``{}`` for stateless layers). ``train=True``
switches Dropout and BatchNorm to training behaviour; `key` is needed only by layers that draw
random numbers in training (Dropout). Images are NHWC (batch, height, width, channels),
sequences (batch, time, features).
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
from fnnet.nn.attention import MultiHeadAttention
from fnnet.nn.combinators import Add, Concatenate, parallel, residual, serial
from fnnet.nn.conv import Conv2D
from fnnet.nn.dense import Dense, Flatten
from fnnet.nn.dropout import Dropout
from fnnet.nn.embedding import Embedding
from fnnet.nn.mlp import MLP
from fnnet.nn.normalization import BatchNorm, LayerNorm
from fnnet.nn.pooling import AvgPool2D, GlobalAvgPool2D, MaxPool2D
from fnnet.nn.recurrent import GRU, LSTM
from fnnet.nn.repeat import repeat
from fnnet.nn.summary import summary

__all__ = [
    "GRU",
    "LSTM",
    "MLP",
    "Add",
    "AvgPool2D",
    "BatchNorm",
    "Concatenate",
    "Conv2D",
    "Dense",
    "Dropout",
    "Elu",
    "Embedding",
    "Flatten",
    "Gelu",
    "GlobalAvgPool2D",
    "Identity",
    "Layer",
    "LayerNorm",
    "LeakyRelu",
    "LogSoftmax",
    "MaxPool2D",
    "MultiHeadAttention",
    "Relu",
    "Sigmoid",
    "Silu",
    "Softmax",
    "Softplus",
    "Tanh",
    "parallel",
    "repeat",
    "residual",
    "serial",
    "summary",
]
