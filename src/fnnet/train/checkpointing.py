"""`Checkpoint`: the callback that saves a run every few epochs and resumes it after a crash.

Each save is one `fnnet.checkpoint` file, ``epoch-000007.ckpt`` after an epoch or
``epoch-000008-update-000000120.ckpt`` after 120 updates of epoch 8 (with `every_steps`): the
TrainState (and any TrainState a callback keeps, such as EarlyStopping's best) as arrays, and
as metadata the epoch, the history, whether the run stopped, every other callback's
`state_dict` and, inside an epoch, the updates done, their losses and the position of a
user's stream. The order of a run is a pure function of the state's key and step, so
continuing from the newest file ends with the same params, bit for bit, as a run that never
stopped.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import warnings
from typing import Any, NamedTuple

from fnnet import _checks, checkpoint
from fnnet.train.callbacks import Callback
from fnnet.train.state import TrainState

__all__ = ["Checkpoint"]

_FILE = re.compile(r"^epoch-(\d{6,})(?:-update-(\d{9,}))?\.ckpt$")
_STATE = {"__train_state__": True}  # marks a TrainState kept in the arrays, not the JSON


class Checkpoint(Callback):
    """Saves the run every `every` epochs into `directory`, keeps the newest `keep` files, and,
    with `resume`, continues from the newest valid one when `fit` starts.

    `fit` runs it after every other callback of the epoch, so a save holds their decisions
    (early stopping's best epoch, a reduced learning rate). A corrupt newest file is skipped
    with a warning; a file of another model or optimizer is a `CheckpointError` listing the
    differing paths. Re-running a finished or early-stopped run trains nothing more and returns
    the same result. A callback of one's own takes part through `state_dict` /
    `load_state_dict` (JSON values, or TrainStates).

    Args:
      directory: where the files go; created if missing.
      every: save every this many epochs (and at the last epoch), a positive int.
      every_steps: also save inside an epoch after every this many of its updates (a
        positive int, or None): at chunk boundaries, the epoch's data then runs in chunks
        that end there. A resumed run continues at that update, in the same order.
      keep: how many of the newest files to keep (in-epoch and epoch-end ones together), a
        positive int.
      resume: continue from the newest valid file found in `directory`.
    """

    def __init__(self, directory: str | os.PathLike, *, every: int = 1,
                 every_steps: int | None = None, keep: int = 3,
                 resume: bool = True) -> None:  # fmt: skip
        if not isinstance(directory, str | os.PathLike):
            raise TypeError(f"Checkpoint: `directory` must be a str or path, got {directory!r}.")
        self.directory = os.fspath(directory)
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise ValueError(
                f"Checkpoint: `directory` {self.directory} is a file, not a directory."
            )
        self.every = _checks.positive_int("Checkpoint", "every", every)
        self.every_steps = (
            None
            if every_steps is None
            else _checks.positive_int("Checkpoint", "every_steps", every_steps)
        )
        self.keep = _checks.positive_int("Checkpoint", "keep", keep)
        self.resume = bool(resume)

    def files(self) -> list[str]:
        """The checkpoint files in `directory`, newest (highest epoch) first."""
        if not os.path.isdir(self.directory):
            return []
        found = [((int(m.group(1)), int(m.group(2)) if m.group(2) else math.inf), name)
                 for name in os.listdir(self.directory) if (m := _FILE.match(name))]  # fmt: skip
        return [os.path.join(self.directory, name) for _, name in sorted(found, reverse=True)]

    def save(self, epoch: int, state: TrainState, history: dict, others: list[Callback],
             stopped: bool, partial: Partial | None = None) -> None:  # fmt: skip
        """Writes the checkpoint of `epoch` (completed, or in progress with `partial`) and
        prunes to the newest `keep`."""
        os.makedirs(self.directory, exist_ok=True)
        arrays, plain = {"state": state}, []
        for index, callback in enumerate(others):
            values = {}
            for name, value in callback.state_dict().items():
                if isinstance(value, TrainState):
                    arrays[f"{index}:{name}"], value = value, _STATE
                values[name] = value
            plain.append(values)
        metadata = {"epoch": epoch, "history": history, "callbacks": plain, "stopped": stopped,
                    "kinds": [type(callback).__name__ for callback in others]}  # fmt: skip
        name = f"epoch-{epoch:06d}.ckpt"
        if partial is not None:
            metadata["partial"] = {"updates": partial.updates, "losses": partial.losses,
                                   "loader": _encoded(partial.loader_state)}  # fmt: skip
            name = f"epoch-{epoch + 1:06d}-update-{partial.updates:09d}.ckpt"
        path = os.path.join(self.directory, name)
        checkpoint.save(path, arrays, metadata=metadata)
        for old in self.files()[self.keep :]:
            os.remove(old)

    def restore(self, state: TrainState, others: list[Callback]):
        """``(state, history, epoch, stopped, partial)`` of the newest valid checkpoint
        (`epoch` the last completed one, `partial` a Partial of the next or None), loaded into
        the other callbacks too, or None when there is none (or `resume` is off)."""
        if not self.resume:
            return None
        for path in self.files():
            try:
                meta = checkpoint.metadata(path)
                like = {"state": state}
                for index, values in enumerate(meta["callbacks"]):
                    like.update({f"{index}:{k}": state for k, v in values.items() if v == _STATE})
                arrays = checkpoint.load(path, like)
            except checkpoint.CheckpointError as error:
                if error.mismatch:
                    raise
                warnings.warn(f"Checkpoint: skipping {path}: {error}", UserWarning, stacklevel=3)
                continue
            saved = list(zip(meta["kinds"], meta["callbacks"], strict=True))
            for index, (callback, (kind, values)) in enumerate(zip(others, saved, strict=False)):
                if kind == type(callback).__name__:  # a changed callbacks list: match by place
                    callback.load_state_dict(
                        {k: arrays[f"{index}:{k}"] if v == _STATE else v for k, v in values.items()}
                    )
            partial = meta.get("partial")
            if partial is not None:
                partial = Partial(
                    partial["updates"], partial["losses"], _decoded(partial["loader"])
                )
            return arrays["state"], meta["history"], meta["epoch"], meta["stopped"], partial
        return None


class Partial(NamedTuple):
    """An epoch in progress: the updates done, their losses, the user's stream's position."""

    updates: int
    losses: list[float]
    loader_state: Any = None


def _encoded(value: Any) -> Any:
    """A stream's state as JSON (bytes as base64); raises TypeError if it cannot be one."""
    if isinstance(value, bytes):
        return {"__bytes__": base64.b64encode(value).decode()}
    json.dumps(value)
    return value


def _decoded(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"__bytes__"}:
        return base64.b64decode(value["__bytes__"])
    return value


def encodable(value: Any) -> bool:
    """Whether a stream's state can go into a checkpoint's metadata."""
    try:
        _encoded(value)
    except (TypeError, ValueError):
        return False
    return True


def resume(savers: list[Checkpoint], state: TrainState, history: dict, others: list[Callback]):
    """``(state, history, first epoch to run, stopped, partial)``: from the newest valid
    checkpoint of the savers, or the given start (epoch 1, no Partial) when none resumes."""
    for saver in savers:
        found = saver.restore(state, others)
        if found is not None:
            state, saved_history, epoch, stopped, partial = found
            if set(saved_history) != set(history):
                raise checkpoint.CheckpointError(
                    f"checkpoint: the run in {saver.directory} recorded {sorted(saved_history)}, "
                    f"this one records {sorted(history)}; resume with the same metrics and "
                    "validation data, or use another directory."
                )
            return state, saved_history, epoch + 1, stopped, partial
    return state, history, 1, False, None


def next_epoch(savers: list[Checkpoint]) -> int:
    """The epoch a resume would start at, read from the newest file's metadata only (1 when
    there is none); `fit` asks a stream for that epoch's first batch to learn its shapes."""
    for saver in savers:
        for path in saver.files() if saver.resume else []:
            try:
                return checkpoint.metadata(path)["epoch"] + 1
            except (checkpoint.CheckpointError, KeyError, TypeError):
                continue
    return 1


def every_steps(savers: list[Checkpoint]) -> int | None:
    """The smallest `every_steps` of the savers (None when none saves inside epochs)."""
    steps = [saver.every_steps for saver in savers if saver.every_steps is not None]
    return min(steps) if steps else None


def save_in_epoch(savers: list[Checkpoint], epoch: int, partial: Partial, state: TrainState,
                  history: dict, others: list[Callback]) -> None:  # fmt: skip
    """Saves inside `epoch` (1-based, in progress) with each saver whose `every_steps` falls
    on the updates done."""
    for saver in savers:
        if saver.every_steps is not None and partial.updates % saver.every_steps == 0:
            saver.save(epoch - 1, state, history, others, False, partial)


def save_due(savers: list[Checkpoint], epoch: int, last: bool, state: TrainState,
             history: dict, others: list[Callback]) -> None:  # fmt: skip
    """Saves with each saver whose `every` falls on `epoch`, and with all at the last epoch."""
    stopped = any(callback.stop_training for callback in others)
    for saver in savers:
        if last or stopped or epoch % saver.every == 0:
            saver.save(epoch, state, history, others, stopped)


def split_checkpoints(callbacks: list[Callback]) -> tuple[list[Callback], list[Any]]:
    """The callbacks without the Checkpoints, and the Checkpoints (which run last)."""
    savers = [c for c in callbacks if isinstance(c, Checkpoint)]
    return [c for c in callbacks if not isinstance(c, Checkpoint)], savers
