"""`data_placement=`: whether training arrays live on the device or stay on the host.

"device" puts the whole arrays on the device once (the fastest path when they fit); "host"
keeps them where they are (a NumPy array, `np.memmap`, `np.load(path, mmap_mode="r")`) and
streams the epoch's batches in chunks; "auto" streams a memmap always, and other arrays when
they need more than `DEVICE_SHARE` of the device's free memory (`memory_stats()` where the
backend reports it, the machine's physical memory on CPU). Anything that is not a tuple of
two arrays is a user's stream of batches, streamed whatever the placement.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from fnnet import _checks

PLACEMENTS = ("auto", "device", "host")
DEVICE_SHARE = 0.5  # of the free device memory that "auto" lets arrays take


def is_arrays(data: Any) -> bool:
    """A tuple is ``(inputs, targets)`` arrays; a list, any other iterable or a callable is a
    stream of batches."""
    return isinstance(data, tuple)


def free_device_bytes() -> int | None:
    """Bytes free on the default device: its `memory_stats()` where reported, else (CPU) the
    machine's physical memory; None where neither is known."""
    stats = jax.local_devices()[0].memory_stats() or {}
    if "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(size: int) -> str:
    return f"{size / 2**30:.2f} GiB"


def resolve(where: str, name: str, arrays: tuple[Any, Any], placement: Any) -> str:
    """ "device" or "host" for checked `arrays` under `placement`; raises for "device" when
    they cannot fit in the free device memory."""
    _checks.one_of(where, "data_placement", placement, PLACEMENTS)
    if placement == "host":
        return "host"
    if any(isinstance(x, jax.Array) for x in arrays) and placement == "auto":
        return "device"  # already there
    size, free = sum(int(np.asarray(x).nbytes) if not hasattr(x, "nbytes") else int(x.nbytes)
                     for x in arrays), free_device_bytes()  # fmt: skip
    if placement == "device":
        if free is not None and size > free:
            raise ValueError(
                f"{where}: `{name}` takes {_gib(size)}, more than the {_gib(free)} free on "
                f"{jax.local_devices()[0].platform}; use data_placement='host' (or 'auto') to "
                "stream it in batches."
            )
        return "device"
    if any(isinstance(x, np.memmap) for x in arrays):
        return "host"
    return "host" if free is not None and size > DEVICE_SHARE * free else "device"
