"""Embedding: integer ids to learned vectors."""

from __future__ import annotations

import jax.numpy as jnp

from fnnet import _checks
from fnnet.initializers import check_initializer, normal
from fnnet.nn._layer import Layer, check_input_shape, check_params, integer_inputs
from fnnet.typing import Initializer

__all__ = ["Embedding"]


def Embedding(
    num_embeddings: int, features: int, *, w_init: Initializer = normal(stddev=1.0)
) -> Layer:
    """A table of `num_embeddings` learned vectors of size `features`, looked up by id.

    Args:
      num_embeddings: the number of ids (vocabulary size); ids are ``0 .. num_embeddings - 1``.
      features: the size of each vector.
      w_init: initializer of the table (default N(0, 1), as PyTorch's ``nn.Embedding``).
    Returns:
      A Layer with params ``{"embeddings": (num_embeddings, features)}`` mapping integer ids of
      any shape ``(batch, ...)`` to ``(batch, ..., features)``. Its `init` takes the ids' shape
      without the batch axis, e.g. ``(time,)``.
    Raises:
      ValueError: at construction for non-positive sizes; in `apply` for ids that are not
        integers, and outside `jit` for ids outside ``[0, num_embeddings)``. Inside `jit` an
        out-of-range id cannot raise: it gets a row of NaN, so the loss turns NaN and `fit`
        stops with an error instead of training on a wrong row.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> embed = Embedding(100, 16)
      >>> params, state = embed.init(jax.random.key(0), (12,))
      >>> embed.apply(params, state, jnp.zeros((4, 12), jnp.int32))[0].shape
      (4, 12, 16)
    """
    where = "Embedding"
    num_embeddings = _checks.positive_int(where, "num_embeddings", num_embeddings)
    features = _checks.positive_int(where, "features", features)
    check_initializer(where, "w_init", w_init)

    def init(key, input_shape):
        check_input_shape(where, input_shape)
        return {"embeddings": w_init(key, (num_embeddings, features))}, {}

    def apply(params, state, inputs, *, key=None, train=False):
        check_params(where, params, {"embeddings": (num_embeddings, features)})
        ids = jnp.asarray(inputs)
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise ValueError(
                f"{where}: inputs must be integer ids, got {_checks.shape_str(ids)}; convert "
                "them with `.astype(jnp.int32)`."
            )
        _checks.ids_in_range(where, "ids", ids, num_embeddings)
        valid = (ids >= 0) & (ids < num_embeddings)
        rows = jnp.take(params["embeddings"], jnp.where(valid, ids, 0), axis=0)
        return jnp.where(valid[..., None], rows, jnp.nan), state

    return Layer(init, integer_inputs(apply, num_embeddings))
