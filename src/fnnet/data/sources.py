"""Training data that does not live on the device, as chunks of stacked batches.

Two kinds are streamed: arrays kept on the host (NumPy arrays, `np.memmap`, `np.load(path,
mmap_mode="r")`), gathered in the order given by the caller's sample ids; and a user's own
stream of ``(inputs, targets)`` batches (a re-iterable such as a PyTorch or grain
`DataLoader` or a list of batches, or a callable ``epoch -> iterable``). Either becomes a
sequence of `Chunk`s: ``(updates, accumulate_steps, batch_size, ...)`` arrays that one compiled
program trains on. The chunking is a pure function of the epoch's length so far
(`chunk_end`), so a resumed epoch is cut at the same places.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import numpy as np

from fnnet import _checks

STREAM_EXAMPLE = "train_data=lambda epoch: make_batches(epoch)"


class Chunk(NamedTuple):
    """A chunk of consecutive updates of an epoch.

    inputs, targets: ``(updates, accumulate_steps, batch_size, ...)`` (NumPy, or on the device
      once prefetched).
    start: updates of the epoch before this chunk.
    origin: ``origin(p)`` names the sample at flat position `p` of the chunk's batches
      ("sample 1234" of an array, "batch 7, row 3" of a stream).
    loader_state: the stream's own position after this chunk (its `get_state` /
      `state_dict`), or None.
    """

    inputs: Any
    targets: Any
    start: int
    origin: Callable[[int], str]
    loader_state: Any = None

    @property
    def updates(self) -> int:
        return len(self.inputs)


def chunk_end(start: int, steps_per_execution: int, every_steps: int | None,
              total: int | None = None) -> int:  # fmt: skip
    """Where the chunk starting at update `start` of an epoch ends: after
    `steps_per_execution` updates, at the next multiple of `every_steps` (a checkpoint), or at
    the epoch's `total` updates, whichever comes first."""
    end = start + steps_per_execution
    if every_steps is not None:
        end = min(end, (start // every_steps + 1) * every_steps)
    return end if total is None else min(end, total)


_ALIGNMENT = 64  # bytes; XLA:CPU adopts a buffer aligned so instead of copying it


def aligned_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised array whose data starts at a multiple of 64 bytes, so that on CPU
    `jax.device_put` uses it as the device buffer (no copy: one chunk in memory, not two)."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(size + _ALIGNMENT, np.uint8)
    offset = -raw.ctypes.data % _ALIGNMENT
    return raw[offset : offset + size].view(dtype).reshape(shape)


def gathered(values: Any, ids: np.ndarray) -> np.ndarray:
    """``values[ids]`` (rows of an array or memmap) into an aligned array."""
    out = aligned_empty((*ids.shape, *values.shape[1:]), values.dtype)
    np.take(values, ids, axis=0, out=out)
    return out


def stacked(arrays: list[np.ndarray]) -> np.ndarray:
    """`np.stack` of equally shaped arrays into an aligned array."""
    out = aligned_empty((len(arrays), *arrays[0].shape), arrays[0].dtype)
    return np.stack(arrays, out=out)


def host_chunks(inputs: Any, targets: Any, rows: np.ndarray, *, start: int,
                steps_per_execution: int, every_steps: int | None) -> Iterator[Chunk]:  # fmt: skip
    """The updates ``rows[start:]`` (sample ids, ``(updates, accumulate_steps, batch_size)``)
    of host arrays, gathered chunk by chunk (only the chunk's rows are read from a memmap)."""
    position = start
    while position < len(rows):
        end = chunk_end(position, steps_per_execution, every_steps, len(rows))
        ids = rows[position:end]
        yield Chunk(gathered(inputs, ids), gathered(targets, ids), position,
                    lambda p, ids=ids: f"sample {int(ids.flat[p])}")  # fmt: skip
        position = end


def is_one_shot(data: Any) -> bool:
    """True for an iterator (a generator): iterating it a second time yields nothing."""
    try:
        return iter(data) is data
    except TypeError:
        return False


def narrowed(where: str, what: str, values: np.ndarray) -> np.ndarray:
    """int64 / float64 values as int32 / float32 when JAX's x64 mode is off, after checking
    that they fit; anything else as it is."""
    if jax.config.jax_enable_x64 or values.dtype.itemsize != 8:
        return values
    if np.issubdtype(values.dtype, np.integer):
        info = np.iinfo(np.int32)
        if values.size and (values.min() < info.min or values.max() > info.max):
            raise ValueError(
                f"{where}: {what} are {values.dtype} with values in [{values.min()}, "
                f"{values.max()}], outside int32 (JAX without x64 computes in int32)."
            )
        return values.astype(np.int32)
    if np.issubdtype(values.dtype, np.floating):
        finite = values[np.isfinite(values)]
        if finite.size and np.abs(finite).max() > np.finfo(np.float32).max:
            raise ValueError(
                f"{where}: {what} are float64 with values up to {np.abs(finite).max():.3g}, "
                "beyond float32's range (JAX without x64 computes in float32); rescale them."
            )
        return values.astype(np.float32)
    return values


class Stream:
    """A user's stream of ``(inputs, targets)`` batches, read once per epoch.

    `data` is a re-iterable (iterated once per epoch) or a callable ``epoch -> iterable``
    (called exactly once per epoch). Every batch is converted with `np.asarray` and checked
    against the first: the same dtypes and shapes, inputs and targets of one length; only the
    last batch of an epoch may be smaller. The stream's own position, when it keeps one
    (`get_state` / `set_state` on its iterator, as grain's; `state_dict` / `load_state_dict`
    on the loader, as torchdata's), is read after each chunk and can be restored.
    """

    def __init__(self, where: str, name: str, data: Any, *, epochs: int = 1) -> None:
        self.where, self.name, self.data = where, name, data
        if hasattr(data, "shape") and hasattr(data, "dtype"):
            raise TypeError(
                f"{where}: `{name}` must be a pair (inputs, targets) of arrays (a tuple), or a "
                f"stream of such batches, got one array of shape {tuple(data.shape)}."
            )
        if not callable(data):
            try:
                iter(data)
            except TypeError:
                raise TypeError(
                    f"{where}: `{name}` must be a tuple (inputs, targets) of arrays, an iterable "
                    f"of (inputs, targets) batches or a callable epoch -> iterable, got "
                    f"{type(data).__name__}."
                ) from None
            if is_one_shot(data) and epochs > 1:
                raise ValueError(
                    f"{where}: `{name}` is a one-shot iterator (a generator), which would be "
                    f"empty after the first of the {epochs} epochs; pass a callable that makes "
                    f"the epoch's batches, e.g. `{STREAM_EXAMPLE}`, or a re-iterable such as "
                    "a list of batches or a DataLoader."
                )
        self.spec: tuple[tuple, np.dtype, tuple, np.dtype] | None = None
        self._called: tuple[int, Any] | None = None  # (epoch, iterable) of the callable
        self._kept: tuple[int, Any, Iterator, Iterator] | None = None  # a peeked epoch
        self._holder_now: Any = None

    def _iterable(self, epoch: int) -> Any:
        """The epoch's iterable: the data itself, or the callable's (called once per epoch;
        a second pass, for training metrics, iterates the same iterable again)."""
        if not callable(self.data):
            return self.data
        if self._called is not None and self._called[0] == epoch:
            if is_one_shot(self._called[1]):
                raise ValueError(
                    f"{self.where}: `{self.name}` returned a one-shot iterator for epoch "
                    f"{epoch}, which the evaluation pass of the training metrics cannot read "
                    "again; return a re-iterable (a list of batches, a DataLoader), or drop the "
                    "training metrics."
                )
            return self._called[1]
        self._called = (epoch, self.data(epoch))
        return self._called[1]

    @staticmethod
    def _holder(iterable: Any, iterator: Any) -> Any:
        """What keeps the stream's position: the iterator (grain) or the loader (torchdata)."""
        if hasattr(iterator, "get_state") and hasattr(iterator, "set_state"):
            return iterator
        if hasattr(iterable, "state_dict") and hasattr(iterable, "load_state_dict"):
            return iterable
        return None

    def _open(self, epoch: int) -> tuple[Any, Iterator, Iterator]:
        """``(iterable, iterator, batches)``: `batches` yields a peeked first batch again."""
        if self._kept is not None and self._kept[0] == epoch:
            return self._kept[1:]
        iterable = self._iterable(epoch)
        try:
            iterator = iter(iterable)
        except TypeError:
            raise TypeError(
                f"{self.where}: `{self.name}` called with epoch {epoch} must return an iterable "
                f"of (inputs, targets) batches, got {type(iterable).__name__}."
            ) from None
        return iterable, iterator, iterator

    def stateful(self, epoch: int) -> bool:
        """Whether the stream keeps a position that a checkpoint can hold."""
        iterable, iterator, batches = self._open(epoch)
        self._kept = (epoch, iterable, iterator, batches)
        return self._holder(iterable, iterator) is not None

    def first_batch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """The first batch of `epoch` (kept: that epoch's iteration yields it again)."""
        iterable, iterator, batches = self._open(epoch)
        try:
            first = next(batches)
        except StopIteration:
            raise ValueError(
                f"{self.where}: `{self.name}` yielded no batches (epoch {epoch}); an epoch "
                "needs at least one."
            ) from None
        self._kept = (epoch, iterable, iterator, _pushed_back(first, batches))
        return self._checked(0, first)

    def _checked(self, number: int, batch: Any) -> tuple[np.ndarray, np.ndarray]:
        where, what = self.where, f"`{self.name}` batch {number}"
        if not isinstance(batch, tuple | list) or len(batch) != 2:
            raise TypeError(f"{where}: {what} must be a pair (inputs, targets), got "
                            f"{type(batch).__name__}.")  # fmt: skip
        inputs, targets = (
            narrowed(where, f"{what} {part}", _checks.real_array(where, f"{what} {part}",
                                                                np.asarray(x)))
            for part, x in zip(("inputs", "targets"), batch, strict=True)
        )  # fmt: skip
        if inputs.ndim == 0 or targets.ndim == 0 or len(inputs) != len(targets):
            raise ValueError(
                f"{where}: {what} must hold inputs and targets of one length (a sample axis "
                f"first), got shapes {inputs.shape} and {targets.shape}."
            )
        spec = (inputs.shape, inputs.dtype, targets.shape, targets.dtype)
        if self.spec is None:
            self.spec = spec
        elif spec != self.spec and not (
            spec[1::2] == self.spec[1::2] and spec[0][1:] == self.spec[0][1:]
            and spec[2][1:] == self.spec[2][1:] and len(inputs) < self.spec[0][0]
        ):  # fmt: skip
            raise ValueError(
                f"{where}: {what} has inputs {inputs.dtype}{list(inputs.shape)} and targets "
                f"{targets.dtype}{list(targets.shape)}, unlike the first batch's "
                f"{self.spec[1]}{list(self.spec[0])} and {self.spec[3]}{list(self.spec[2])}; "
                "every batch must have the same dtypes and shapes (only the last may hold "
                "fewer samples)."
            )
        return inputs, targets

    def batches(self, epoch: int, loader_state: Any = None) -> Iterator[tuple[np.ndarray, ...]]:
        """The checked batches of `epoch`, from the position `loader_state` when given."""
        iterable, iterator, batches = self._open(epoch)
        self._kept = None
        if loader_state is not None:
            holder = self._holder(iterable, iterator)
            if holder is iterator:
                iterator.set_state(loader_state)
            else:
                iterable.load_state_dict(loader_state)
                iterator = iter(iterable)
            batches = iterator
        self._holder_now = self._holder(iterable, iterator)
        full = None
        for number, batch in enumerate(batches):
            inputs, targets = self._checked(number, batch)
            if full is not None:
                raise ValueError(
                    f"{self.where}: `{self.name}` batch {number} follows a smaller batch "
                    f"({full} samples); only the last batch of an epoch may be smaller."
                )
            if len(inputs) < self.spec[0][0]:
                full = len(inputs)
            yield inputs, targets

    def position(self) -> Any:
        """The stream's own state now (None when it keeps none)."""
        holder = self._holder_now
        if holder is None:
            return None
        return holder.get_state() if hasattr(holder, "get_state") else holder.state_dict()


def _pushed_back(first: Any, iterator: Iterator) -> Iterator:
    yield first
    yield from iterator


def stream_chunks(stream: Stream, epoch: int, *, accumulate_steps: int, steps_per_execution: int,
                  every_steps: int | None, start: int = 0,
                  loader_state: Any = None) -> Iterator[Chunk]:  # fmt: skip
    """The epoch's batches grouped into updates of `accumulate_steps` and chunks (cut as
    `chunk_end` says). A smaller last batch is an update of its own (one more compiled
    program for its shape) when ``accumulate_steps == 1``; with accumulation the batches after
    the last full group are skipped, as for arrays. `start` counts the updates already done
    (a resumed epoch: `loader_state` then holds the stream's position)."""
    updates, group, done, first_batch = [], [], start, start * accumulate_steps
    full_size = None

    def flush(keep_position: bool) -> Chunk:
        batch = len(updates[0][0][0])
        inputs = stacked([np.stack([x for x, _ in update]) for update in updates])
        targets = stacked([np.stack([y for _, y in update]) for update in updates])
        return Chunk(inputs, targets, done - len(updates),
                     lambda p, b=first_batch: f"batch {b + p // batch}, row {p % batch}",
                     stream.position() if keep_position else None)  # fmt: skip

    end = chunk_end(done, steps_per_execution, every_steps)
    for inputs, targets in stream.batches(epoch, loader_state):
        full_size = full_size or len(inputs)
        if len(inputs) < full_size:  # the smaller last batch
            if updates:
                yield flush(False)
                first_batch += len(updates) * accumulate_steps
                updates = []
            if accumulate_steps == 1:
                updates, done = [[(inputs, targets)]], done + 1
                yield flush(True)
            updates = []
            continue  # a batch after it is an error of `stream.batches`
        group.append((inputs, targets))
        if len(group) < accumulate_steps:
            continue
        updates.append(group)
        group, done = [], done + 1
        if done == end:
            yield flush(True)
            first_batch += len(updates) * accumulate_steps
            updates, end = [], chunk_end(done, steps_per_execution, every_steps)
    if updates:
        yield flush(True)
