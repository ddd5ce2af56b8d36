"""Data parallelism through `jax.sharding`: the batch axis split over a mesh axis "data".

fnnet writes no collectives of its own. The state and the data are replicated on every device
of the mesh; inside the step, the sample ids of each mini-batch and the gathered batch are
constrained to be split over "data" (`with_sharding_constraint`), so each device gathers and
computes ``batch_size / n`` samples, and XLA inserts the all-reduces that the mean loss, the
gradients and BatchNorm's batch statistics need. With several hosts (`jax.distributed`), the
same holds for a mesh over every process's devices.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def check_mesh(where: str, mesh: Any) -> Mesh | None:
    """`mesh` with every axis in Auto mode (XLA propagates the shardings: the "data" split is
    all fnnet states), if it is None or a `jax.sharding.Mesh` with an axis named "data";
    else raises. (`jax.make_mesh` makes Explicit axes by default: the same devices and axes
    are used.)"""
    if mesh is None:
        return None
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"{where}: `mesh` must be a jax.sharding.Mesh with an axis named 'data', e.g. "
            f"`jax.make_mesh((jax.device_count(),), ('data',))`, got {type(mesh).__name__}."
        )
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(
            f"{where}: `mesh` must have an axis named 'data' (the batch is split over it), got "
            f"axes {tuple(mesh.axis_names)}."
        )
    auto = (AxisType.Auto,) * len(mesh.axis_names)
    return mesh if mesh.axis_types == auto else Mesh(mesh.devices, mesh.axis_names, auto)


def data_devices(mesh: Mesh | None) -> int:
    """The number of devices the batch is split over (1 without a mesh)."""
    return 1 if mesh is None else mesh.shape[DATA_AXIS]


def check_divides(where: str, name: str, size: int, mesh: Mesh | None) -> None:
    """Raises unless `size` samples split evenly over the mesh's "data" devices."""
    n = data_devices(mesh)
    if size % n:
        raise ValueError(
            f"{where}: `{name}` {size} must be a multiple of the {n} devices on the mesh's "
            f"'data' axis (each device computes {name} / {n} samples); e.g. {name}="
            f"{max(n, size - size % n)}."
        )


def split_batch(mesh: Mesh | None, tree: Any) -> Any:
    """`tree`'s arrays constrained to be split over "data" along their first axis (inside a
    traced step); unchanged without a mesh."""
    if mesh is None:
        return tree
    sharding = NamedSharding(mesh, PartitionSpec(DATA_AXIS))
    return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding), tree)


def split_on(mesh: Mesh | None, axis: int | None) -> NamedSharding | None:
    """The sharding of arrays split over "data" along `axis` (replicated for None) on
    `mesh`; None without a mesh."""
    if mesh is None:
        return None
    return NamedSharding(mesh, PartitionSpec() if axis is None else
                         PartitionSpec(*[None] * axis, DATA_AXIS))  # fmt: skip


def replicate(mesh: Mesh | None, tree: Any) -> Any:
    """`tree` copied onto every device of `mesh` (unchanged without one). A typed PRNG key
    travels as its key data, which `device_put` can place on other processes' devices."""
    if mesh is None:
        return tree
    sharding = NamedSharding(mesh, PartitionSpec())
    host = _is_multiprocess(mesh)  # then every process passes the same values from its host

    def put(leaf):
        is_key = jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)
        value = jax.random.key_data(leaf) if is_key else leaf
        value = jax.device_put(np.asarray(value) if host else value, sharding)
        return jax.random.wrap_key_data(value, impl=jax.random.key_impl(leaf)) if is_key else value

    return jax.tree.map(put, tree)


def shard_rows(mesh: Mesh, array: Any) -> jax.Array:
    """`array` (rows a multiple of the "data" devices) split over them along its first axis."""
    value = np.asarray(array) if _is_multiprocess(mesh) else array
    return jax.device_put(value, NamedSharding(mesh, PartitionSpec(DATA_AXIS)))


def _is_multiprocess(mesh: Mesh) -> bool:
    return len({device.process_index for device in mesh.devices.flat}) > 1
