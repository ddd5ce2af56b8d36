"""`prefetch`: items of an iterator prepared by one background thread, a few ahead.

Reading from a disk, gathering rows of a memory-mapped array and `jax.device_put` all release
the GIL, so a thread overlaps them with the compute of the chunks already on the device.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from fnnet import _checks

Item = TypeVar("Item")
Prepared = TypeVar("Prepared")

_DONE = object()


def check_prefetch(where: str, prefetch: Any) -> int:
    """`prefetch` checked: a non-negative int (0: no background thread)."""
    if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
        raise ValueError(
            f"{where}: `prefetch` must be a non-negative int (chunks prepared ahead; 0 for "
            f"none), got {_checks.value_str(prefetch)}."
        )
    return prefetch


def prefetch(
    items: Iterable[Item], prepare: Callable[[Item], Prepared], depth: int
) -> Iterator[Prepared]:
    """``prepare(item)`` for each item of `items`, in order.

    With ``depth > 0`` one background thread iterates `items` and prepares up to `depth` items
    ahead of the consumer (one more is in the making while the queue is full), so at most
    ``depth + 1`` prepared items exist besides the one being used. An exception of the thread
    is raised in the consumer at the item where it happened. Closing the returned generator
    (or dropping it) stops the thread. ``depth == 0`` prepares each item when it is asked for.
    """
    if depth == 0:
        for item in items:
            yield prepare(item)
        return
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(value) -> bool:
        while not stop.is_set():
            try:
                ready.put(value, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((prepare(item), None)):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            offer((None, error))
            return
        offer((_DONE, None))

    thread = threading.Thread(target=produce, name="fnnet-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            value, error = ready.get()
            if error is not None:
                raise error
            if value is _DONE:
                return
            yield value
    finally:
        stop.set()
        thread.join()
