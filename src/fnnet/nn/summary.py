"""`summary`: a model's parameters, state, output shape and FLOPs, computed without running it."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnnet.nn._layer import (
    Layer,
    batch_of_one,
    check_input_shape,
    check_model,
    id_bound,
    layer_name,
    output_specs,
    sublayers,
)
from fnnet.typing import DTypeLike

__all__ = ["summary"]


def _rows(tree: Any) -> list[tuple[str, str, str, str]]:
    """``(path, shape, dtype, count)`` for every leaf of a tree of arrays or specs."""
    return [
        (jax.tree_util.keystr(path) or "(root)", str(tuple(leaf.shape)), str(leaf.dtype),
         f"{int(np.prod(leaf.shape)):,}")
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    ]  # fmt: skip


def _count_and_bytes(tree: Any) -> tuple[int, int]:
    leaves = jax.tree.leaves(tree)
    count = sum(int(np.prod(leaf.shape)) for leaf in leaves)
    return count, sum(int(np.prod(leaf.shape)) * jnp.dtype(leaf.dtype).itemsize for leaf in leaves)


def _size(nbytes: float) -> str:
    """``512 B``, ``34.8 KiB``, ``1.3 MiB``, ``32.0 GiB``."""
    if nbytes < 1024:
        return f"{nbytes:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        nbytes /= 1024
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.1f} {unit}"
    return ""  # not reached: the loop returns at GiB


def totals_line(params: Any, state: Any) -> str:
    """``model: 8,906 parameters (34.8 KiB), 128 non-trainable values (512 B)``."""
    count, nbytes = _count_and_bytes(params)
    line = f"model: {count:,} parameters ({_size(nbytes)})"
    state_count, state_bytes = _count_and_bytes(state)
    if state_count:
        line += f", {state_count:,} non-trainable values ({_size(state_bytes)})"
    return line


def _table(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    line = lambda row: "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True))  # noqa: E731
    return [title, "  " + line(header).rstrip(), *("  " + line(row).rstrip() for row in rows)]


def _layer_rows(layer: Layer, params, state, specs, prefix: str = "") -> list[tuple[str, ...]]:
    """``(path, layer, output shape, parameters)`` per layer of a serial, nested ones too."""
    children = sublayers(layer)
    if children is None:
        return []
    rows = []
    for index, child in enumerate(children):
        name, child_params, child_state = f"{prefix}[{index}]", params[index], state[index]
        outputs = output_specs(child, child_params, child_state, specs)
        shape = str(jax.tree.map(lambda s: ("batch", *s.shape[1:]), outputs)).replace("'", "")
        count, _ = _count_and_bytes(child_params)
        rows.append((name, layer_name(child), shape, f"{count:,}"))
        rows += _layer_rows(child, child_params, child_state, specs, name)
        specs = outputs
    return rows


def summary(model: Layer, input_shape: tuple[int, ...], *, dtype: DTypeLike = jnp.float32) -> str:
    """A table of the model: every parameter (tree path, shape, dtype, count), the
    non-trainable state the same way, totals, the output shape, per-layer output shapes of a
    `serial`, and the forward FLOPs per sample from XLA's cost analysis.

    Computed with `jax.eval_shape` and an uncompiled lowering: nothing is allocated, so it
    works for a model too large for memory.

    Args:
      model: the network.
      input_shape: one input's shape, without the batch axis.
      dtype: the inputs' dtype (integer ids for a model that starts with an Embedding).
    Returns:
      The table as a string (print it).

    Example:
      >>> from fnnet import nn
      >>> print(nn.summary(nn.MLP((32,), 10), (64,)).splitlines()[-3])
      model: 2,410 parameters (9.4 KiB)
    """
    check_model("summary", model)
    check_input_shape("summary", input_shape)
    input_shape = tuple(input_shape) if isinstance(input_shape, list) else input_shape
    if id_bound(model) is not None:
        dtype = jnp.int32
    params, state = jax.eval_shape(lambda key: model.init(key, input_shape), jax.random.key(0))
    specs = batch_of_one(input_shape, dtype)
    outputs = output_specs(model, params, state, specs)
    forward = functools.partial(model.apply, train=False)
    cost = jax.jit(lambda p, s, x: forward(p, s, x)[0]).lower(params, state, specs).cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    flops = float((cost or {}).get("flops", float("nan")))

    lines = [f"{layer_name(model)} on inputs {('batch', *input_shape)} {jnp.dtype(dtype)}"]
    header = ("path", "shape", "dtype", "count")
    layer_rows = _layer_rows(model, params, state, specs)
    if layer_rows:
        lines += _table("layers:", layer_rows, ("path", "layer", "output shape", "parameters"))
    lines += _table("parameters:", _rows(params) or [("-",) * 4], header)
    if jax.tree.leaves(state):
        lines += _table("non-trainable state:", _rows(state), header)
    out = jax.tree.map(lambda s: ("batch", *s.shape[1:]), outputs)
    lines.append(totals_line(params, state))
    lines.append(f"output: {str(out).replace(chr(39), '')}")
    lines.append(f"forward: {flops:,.0f} FLOPs per sample (XLA's estimate)")
    return "\n".join(lines)
