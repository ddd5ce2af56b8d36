"""Normalization layers: BatchNorm (with running statistics in the layer state) and LayerNorm."""

from __future__ import annotations

import math

import jax.numpy as jnp

from fnnet import _checks
from fnnet._dtypes import widened
from fnnet.nn._layer import Layer, check_input_shape, check_params

__all__ = ["BatchNorm", "LayerNorm"]


def _check_features(where: str, input_shape) -> int:
    check_input_shape(where, input_shape)
    if len(input_shape) == 0:
        raise ValueError(f"{where}: `input_shape` must have a feature axis, got ().")
    return input_shape[-1]


_AFFINE = {"scale": ("C",), "bias": ("C",)}


def _affine_params(features: int) -> dict:
    return {"scale": jnp.ones((features,)), "bias": jnp.zeros((features,))}


def BatchNorm(*, momentum: float = 0.1, eps: float = 1e-5) -> Layer:
    """Batch normalization over every axis but the last (features / channels), as PyTorch.

    With ``train=True`` the batch's own mean ``m`` and biased variance ``v`` normalise the
    inputs, ``y = (x - m) / sqrt(v + eps) * scale + bias``, and the running statistics in the
    layer's state move with PyTorch's momentum convention::

        running_mean = (1 - momentum) * running_mean + momentum * m
        running_var  = (1 - momentum) * running_var  + momentum * v * n / (n - 1)   (unbiased)

    where ``n`` is the number of values per feature in the batch. With ``train=False`` the
    running statistics normalise instead. `fit` threads the state through training steps and
    uses it in evaluation. bfloat16 inputs are normalised in float32 (the statistics and the
    state stay float32) and come back as bfloat16.

    A bias added right before BatchNorm (``Dense`` / ``Conv2D`` with ``use_bias=True``)
    cancels: the batch mean removes it, its true gradient is zero, and an optimizer such as
    Adam turns the rounding noise of that gradient into full-size steps. Build the layer before
    BatchNorm with ``use_bias=False``; BatchNorm's own ``bias`` takes its place.

    Args:
      momentum: weight of the new batch in the running statistics, in [0, 1].
      eps: added to the variance, > 0.
    Returns:
      A Layer with params ``{"scale": (C,), "bias": (C,)}`` (ones and zeros) and state
      ``{"mean": (C,), "var": (C,)}`` (zeros and ones) for inputs ``(..., C)``.
    Raises:
      ValueError: for bad arguments, inputs whose last axis is not C, or a training batch with
        a single value per feature (its variance is undefined).
    """
    where = "BatchNorm"
    momentum = _checks.real_number(where, "momentum", momentum, "a number in [0, 1]")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"{where}: `momentum` must be a number in [0, 1], got {momentum}.")
    eps = _checks.positive(where, "eps", eps)

    def init(key, input_shape):
        features = _check_features(where, input_shape)
        state = {"mean": jnp.zeros((features,)), "var": jnp.ones((features,))}
        return _affine_params(features), state

    def apply(params, state, inputs, *, key=None, train=False):
        check_params(where, params, _AFFINE)
        check_params(where, state, {"mean": params["scale"].shape, "var": params["scale"].shape},
                     "state")  # fmt: skip
        _checks.last_axis(where, inputs, params["scale"].shape[0])
        dtype, inputs = jnp.result_type(inputs, params["scale"]), widened(inputs)
        if train:
            count = math.prod(inputs.shape[:-1])
            if count < 2:
                raise ValueError(
                    f"{where}: training needs more than one value per feature, got inputs of "
                    f"shape {tuple(inputs.shape)}; use a batch of 2 or more."
                )
            axes = tuple(range(inputs.ndim - 1))
            mean = jnp.mean(inputs, axis=axes)
            var = jnp.var(inputs, axis=axes)
            state = {
                "mean": (1 - momentum) * state["mean"] + momentum * mean,
                "var": (1 - momentum) * state["var"] + momentum * var * (count / (count - 1)),
            }
        else:
            mean, var = state["mean"], state["var"]
        normalized = (inputs - mean) / jnp.sqrt(var + eps)
        return (normalized * params["scale"] + params["bias"]).astype(dtype), state

    return Layer(init, apply)


def LayerNorm(*, eps: float = 1e-5) -> Layer:
    """Normalizes each example over its last axis: ``(x - mean) / sqrt(var + eps) * scale + bias``.

    Mean and biased variance over the last axis, as PyTorch's ``nn.LayerNorm(C)``; computed in
    float32 for bfloat16 inputs, returned as bfloat16.

    Returns:
      A Layer with params ``{"scale": (C,), "bias": (C,)}`` for inputs ``(..., C)``.
    """
    eps = _checks.positive("LayerNorm", "eps", eps)

    def init(key, input_shape):
        return _affine_params(_check_features("LayerNorm", input_shape)), {}

    def apply(params, state, inputs, *, key=None, train=False):
        check_params("LayerNorm", params, _AFFINE)
        _checks.last_axis("LayerNorm", inputs, params["scale"].shape[0])
        dtype, inputs = jnp.result_type(inputs, params["scale"]), widened(inputs)
        mean = jnp.mean(inputs, axis=-1, keepdims=True)
        var = jnp.var(inputs, axis=-1, keepdims=True)
        normalized = (inputs - mean) / jnp.sqrt(var + eps)
        return (normalized * params["scale"] + params["bias"]).astype(dtype), state

    return Layer(init, apply)
