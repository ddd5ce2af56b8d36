"""`precision=`: the arithmetic a model is trained and evaluated in ("float32", "highest",
"bfloat16"), applied by wrapping the model's `apply` (its params stay as they are).

With "bfloat16" the wrapped apply casts the floating params and inputs to bfloat16, runs the
model, and returns float32 outputs: the forward pass (and so, through the casts, the backward
pass) computes in bfloat16, the gradients reaching the optimizer are float32 (the cast's
transpose), the optimizer updates float32 master weights, and the loss and metrics see
float32 outputs. The layers accumulate their own reductions in float32 (BatchNorm and
LayerNorm statistics, softmax, attention's scores); the layer state (BatchNorm's running
statistics) stays float32. bfloat16 keeps float32's exponent range, so no loss scaling is
needed (float16's would).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from fnnet import _checks
from fnnet.nn import Layer

PRECISIONS = ("float32", "highest", "bfloat16")


def check_precision(where: str, precision: Any) -> str:
    """`precision` checked: one of `PRECISIONS`."""
    return _checks.one_of(where, "precision", precision, PRECISIONS)


def check_master_weights(where: str, precision: str, params: Any) -> None:
    """Raises for "bfloat16" with params that are not float32 (the master weights it keeps)."""
    if precision != "bfloat16":
        return
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        dtype = jnp.result_type(leaf)
        if jnp.issubdtype(dtype, jnp.floating) and dtype != jnp.float32:
            raise ValueError(
                f"{where}: precision='bfloat16' computes in bfloat16 from float32 params (the "
                f"master weights the optimizer updates), got {dtype} params at "
                f"{jax.tree_util.keystr(path) or 'params'}; initialise them in float32 (with "
                "jax_enable_x64 off, or cast them), or use precision='float32'."
            )


def _cast(tree: Any, dtype) -> Any:
    """Every floating leaf of `tree` as `dtype`; integer leaves (token ids) as they are."""
    return jax.tree.map(
        lambda x: x.astype(dtype) if jnp.issubdtype(jnp.result_type(x), jnp.floating) else x, tree
    )


@functools.lru_cache(maxsize=256)  # one wrapper per model, so jitted callers hit their cache
def compute_in(where: str, model: Layer, precision: str) -> Layer:
    """`model` computing in `precision` (checked by `check_precision`): itself for "float32",
    else a Layer with the same init whose apply runs at full float32 matmul precision
    ("highest") or in bfloat16 with float32 params, state and outputs ("bfloat16")."""
    if precision == "float32":
        return model

    @functools.wraps(model.apply)  # keeps the marks the checks and `summary` read
    def apply(params, state, inputs, *, key=None, train=False):
        if precision == "highest":
            with jax.default_matmul_precision("highest"):
                return model.apply(params, state, inputs, key=key, train=train)
        check_master_weights(where, precision, params)
        outputs, new_state = model.apply(
            _cast(params, jnp.bfloat16), state, _cast(inputs, jnp.bfloat16), key=key, train=train
        )
        new_state = jax.tree.map(lambda new, old: new.astype(jnp.result_type(old)), new_state,
                                 state)  # fmt: skip
        return _cast(outputs, jnp.float32), new_state

    return Layer(model.init, apply)
