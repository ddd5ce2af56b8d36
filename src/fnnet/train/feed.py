"""How `fit` feeds an epoch: the three kinds of training data as chunks of updates.

Device arrays are indexed on the device by the epoch's sample ids; host arrays are gathered
on the host in the same order (the ids come from the same `EpochRunner.indices`, so the same
key gives the same params) and a user's stream is read batch by batch. Both streamed kinds
are stacked into chunks, put on the device by one background thread `prefetch` chunks
ahead, and checked there (NaN / inf, labels, token ids) before a step uses them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding

from fnnet import _checks
from fnnet.data.prefetch import prefetch as prefetch_items
from fnnet.data.sources import Chunk, Stream, chunk_end, host_chunks, stream_chunks
from fnnet.nn import Layer
from fnnet.train.evaluation import EVAL_BATCH_SIZE, _array_batches, _Batches, _stream_batches
from fnnet.train.inputs import (
    SampleLimits,
    check_batching,
    check_model_fits_data,
    first_bad_sample,
    prepare_data,
    problem_text,
    sample_limits,
)
from fnnet.train.placement import is_arrays, resolve
from fnnet.train.state import TrainState

DEFAULT_STEPS_PER_EXECUTION = 16  # updates per compiled chunk of streamed data


class TrainingData:
    """`fit`'s `train_data`, checked: ``kind`` is "device", "host" or "stream".

    `inputs` / `targets` are the arrays (on the device for "device"), or a stream's first
    batch (its shapes and dtypes) for "stream"; `samples` is None for a stream.
    """

    def __init__(self, where: str, data: Any, *, placement: Any, epochs: int,
                 first_epoch: int) -> None:  # fmt: skip
        self.where = where
        if is_arrays(data):
            inputs, targets = _checks.data_pair(where, "train_data", data)
            inputs, targets = (
                _checks.real_array(where, f"`train_data` {part}", x)
                for part, x in (("inputs", inputs), ("targets", targets))
            )
            self.kind = resolve(where, "train_data", (inputs, targets), placement)
            if self.kind == "host":
                inputs, targets = (x if isinstance(x, np.ndarray) else np.asarray(x)
                                   for x in (inputs, targets))  # fmt: skip
            self.stream, self.samples = None, inputs.shape[0]
        else:
            _checks.one_of(where, "data_placement", placement, ("auto", "device", "host"))
            self.kind, self.samples = "stream", None
            self.stream = Stream(where, "train_data", data, epochs=epochs)
            inputs, targets = self.stream.first_batch(first_epoch)
        self.inputs, self.targets = inputs, targets
        self.limits: SampleLimits | None = None

    def batch_size(self, batch_size: Any, accumulate_steps: int) -> int:
        """The mini-batch size: `batch_size` for arrays (checked against their length), the
        stream's first batch's for a stream (where `batch_size`, if given, must agree)."""
        self.accumulate_steps = accumulate_steps
        if self.kind != "stream":
            if batch_size is None:
                raise ValueError(f"{self.where}: `batch_size` is required for arrays.")
            check_batching(self.where, self.samples, batch_size, accumulate_steps)
            return batch_size
        size = self.inputs.shape[0]
        if batch_size is not None and batch_size != size:
            raise ValueError(
                f"{self.where}: `batch_size` is {batch_size}, but the stream's batches hold "
                f"{size} samples; leave batch_size=None for a stream (its batches set it)."
            )
        return size

    def prepare(self, model: Layer, state: TrainState, loss_fn, validation: dict) -> None:
        """The checks that can run before any step: device arrays whole on the device (NaN,
        labels, token ids), the other kinds' shapes against the model (their values are
        checked per chunk on the device). `validation` maps names to checked device arrays
        (functions, for data checked per batch, are left out)."""
        validation = {name: v for name, v in validation.items() if isinstance(v, tuple)}
        if self.kind == "device":
            self.inputs, self.targets = prepare_data(
                self.where, "train_data", (self.inputs, self.targets), model
            )
            check_model_fits_data(
                self.where,
                model,
                state,
                loss_fn,
                {"train_data": (self.inputs, self.targets), **validation},
            )
            return
        check_model_fits_data(self.where, model, state, loss_fn,
                              {"train_data": (self.inputs, self.targets)}, False)  # fmt: skip
        check_model_fits_data(self.where, model, state, loss_fn, validation)
        self.limits = sample_limits(model, state, self.inputs, self.targets)

    def updates_per_epoch(self, batch_size: int, accumulate_steps: int) -> int | None:
        return None if self.samples is None else self.samples // batch_size // accumulate_steps

    def chunks(self, rows: np.ndarray | None, epoch: int, *, done: int,
               loader_state: Any, steps_per_execution: int, every_steps: int | None,
               prefetch: int, placed: NamedSharding | None = None) -> Iterator[Chunk]:  # fmt: skip
        """The chunks of `epoch`'s updates from update `done` on: for device arrays, Chunks of
        sample ids; else stacked batches, put on the device (with the sharding `placed`) and
        checked there before they are yielded (a bad sample raises a ValueError naming it).
        `rows` are the epoch's sample ids of arrays, ``(updates, accumulate_steps,
        batch_size)``, or ``(updates, members, accumulate_steps, batch_size)`` for an
        ensemble; None for a stream."""
        if self.kind == "device":
            position = done
            while position < len(rows):
                end = chunk_end(position, steps_per_execution, every_steps, len(rows))
                yield Chunk(rows[position:end], None, position, str)
                position = end
            return
        if self.kind == "host":
            chunks = host_chunks(
                self.inputs,
                self.targets,
                rows,
                start=done,
                steps_per_execution=steps_per_execution,
                every_steps=every_steps,
            )
        else:
            chunks = stream_chunks(self.stream, epoch, accumulate_steps=self.accumulate_steps,
                                   steps_per_execution=steps_per_execution, every_steps=every_steps,
                                   start=done, loader_state=loader_state)  # fmt: skip
        sample_axes = 3 if rows is None else rows.ndim  # (updates, [members,] accumulate, batch)

        def put(chunk: Chunk):
            inputs, targets = jax.device_put((chunk.inputs, chunk.targets), placed)
            check = first_bad_sample(inputs, targets, self.limits, sample_axes)
            return chunk._replace(inputs=inputs, targets=targets), check

        empty = done == 0
        for chunk, check in prefetch_items(chunks, put, prefetch):
            self._raise_for_bad(check, chunk, epoch)
            empty = False
            yield chunk
        if empty:
            raise ValueError(
                f"{self.where}: `train_data` gave no update in epoch {epoch} (an empty stream, "
                f"or fewer batches than accumulate_steps={self.accumulate_steps})."
            )

    def _raise_for_bad(self, check: Any, chunk: Chunk, epoch: int) -> None:
        """Raises for a chunk whose device check found a bad sample."""
        position, problem = (int(v) for v in jax.device_get(check))
        if position < 0:
            return
        raise ValueError(
            f"{self.where}: `train_data` holds {problem_text(problem, self.limits)} at "
            f"{chunk.origin(position)} (epoch {epoch}); training stopped before the chunk "
            "holding it, and the last good state is in this error's `.result`. Remove or fix "
            "that sample."
        )

    def metrics_source(self, prefetch: int):
        """What `history_row` scores the training metrics on after an epoch: the device
        arrays, or a function ``(state, epoch)`` making one evaluation pass over the host
        arrays or the stream."""
        if self.kind == "device":
            return self.inputs, self.targets
        if self.kind == "host":
            return lambda state, epoch: _Batches(
                _array_batches(
                    self.inputs, self.targets, EVAL_BATCH_SIZE, True, self.limits, prefetch
                ),
                self.limits,
            )
        return lambda state, epoch: _Batches(
            _stream_batches(self.stream, epoch, self.limits, prefetch, True), self.limits
        )
