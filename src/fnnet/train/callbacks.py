"""Callbacks: the policy of a run (stopping, learning rates, logging) outside `fit`'s loop.

`fit` calls, in the order given, ``on_train_begin(state)`` once, ``on_epoch_end(epoch, state,
logs)`` after every epoch (`epoch` from 1, `logs` that epoch's history row), and
``on_train_end(state)`` once. ``on_epoch_end`` and ``on_train_end`` may return a replacement
TrainState (e.g. with a new learning rate) or None; setting ``self.stop_training = True`` ends
training after this epoch. `fit` sets each callback's ``verbose`` to its own and its
``stop_training`` to False before starting.
A user's own loop can call the same methods (see the README).
"""

from __future__ import annotations

import csv
import math
import os
from typing import Any

import jax

from fnnet import _checks
from fnnet.optim import hyperparams, with_hyperparams
from fnnet.train.state import TrainState

__all__ = ["CSVLogger", "Callback", "EarlyStopping", "ReduceLROnPlateau"]


class Callback:
    """The base class: every hook a no-op; `monitors` lists the history keys it reads."""

    stop_training: bool = False
    verbose: bool = False

    def monitors(self) -> tuple[str, ...]:
        """History keys this callback reads; `fit` checks that the run records them."""
        return ()

    def on_train_begin(self, state: TrainState) -> None:
        """Called once before the first epoch."""

    def on_epoch_end(self, epoch: int, state: TrainState, logs: dict[str, float]):
        """Called after every epoch; may return a replacement TrainState."""
        return None

    def on_train_end(self, state: TrainState):
        """Called once after the last epoch; may return a replacement TrainState."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """What the callback needs to continue where it stopped (for checkpoints)."""
        return {}

    def load_state_dict(self, values: dict[str, Any]) -> None:
        """Restores what `state_dict` returned."""


class _Monitor(Callback):
    """Tracks the best value of one history key (shared by EarlyStopping, ReduceLROnPlateau)."""

    def __init__(self, where: str, monitor: str, mode: str, min_delta: float) -> None:
        if not isinstance(monitor, str):
            raise TypeError(f"{where}: `monitor` must be a history key (a str), got {monitor!r}.")
        self.monitor = monitor
        self.mode = _checks.one_of(where, "mode", mode, ("min", "max"))
        self.min_delta = _checks.non_negative(where, "min_delta", min_delta)
        self.best: float | None = None
        self.wait = 0

    def monitors(self) -> tuple[str, ...]:
        return (self.monitor,)

    def on_train_begin(self, state: TrainState) -> None:
        self.best, self.wait, self.stop_training = None, 0, False

    def improves(self, value: float, best: float | None) -> bool:
        raise NotImplementedError  # each subclass has its own rule of "better"

    def record(self, value: float) -> bool:
        """Counts `value`: True (and a new best) if it improves, else one more epoch waited."""
        if not math.isnan(value) and self.improves(value, self.best):
            self.best, self.wait = value, 0
            return True
        self.wait += 1
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, values: dict[str, Any]) -> None:
        self.best, self.wait = values["best"], values["wait"]


class EarlyStopping(_Monitor):
    """Stops `fit` once `monitor` has not improved for `patience` epochs.

    An epoch improves when its value beats the best so far by more than `min_delta` (lower for
    ``mode="min"``, higher for ``mode="max"``). With `restore_best`, `fit` returns the state of
    the best epoch rather than the last one.

    Args:
      patience: epochs without improvement tolerated before stopping; a positive int.
      monitor: a history key: "val_loss" (default), "loss", "val_accuracy", ...
      mode: "min" or "max".
      min_delta: the smallest change that counts as an improvement, >= 0.
      restore_best: return the best epoch's state.
    Attributes:
      best_epoch: the epoch (from 1) of the best value, 0 before the first.
    """

    def __init__(
        self,
        patience: int,
        *,
        monitor: str = "val_loss",
        mode: str = "min",
        min_delta: float = 0.0,
        restore_best: bool = True,
    ) -> None:
        super().__init__("EarlyStopping", monitor, mode, min_delta)
        self.patience = _checks.positive_int("EarlyStopping", "patience", patience)
        self.restore_best = bool(restore_best)
        self.best_epoch, self.last_epoch, self.best_state = 0, 0, None

    def __repr__(self) -> str:
        return (
            f"EarlyStopping({self.patience}, monitor={self.monitor!r}, mode={self.mode!r}, "
            f"min_delta={self.min_delta}, restore_best={self.restore_best})"
        )

    def improves(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta

    def on_train_begin(self, state: TrainState) -> None:
        super().on_train_begin(state)
        self.best_epoch, self.last_epoch, self.best_state = 0, 0, None

    def on_epoch_end(self, epoch: int, state: TrainState, logs: dict[str, float]) -> None:
        self.last_epoch = epoch
        if self.record(logs[self.monitor]):
            self.best_epoch = epoch
            if self.restore_best:
                self.best_state = jax.tree.map(lambda a: a.copy(), state)  # fit donates `state`
        elif self.wait >= self.patience:
            self.stop_training = True

    def on_train_end(self, state: TrainState) -> TrainState | None:
        if self.verbose and self.stop_training:
            print(
                f"early stopping: {self.monitor} has not improved for {self.wait} epochs; best "
                f"{self.best:.4g} at epoch {self.best_epoch}",
                flush=True,
            )
        if self.best_state is None or self.best_epoch == self.last_epoch:
            return None
        if self.verbose:
            print(f"restored the state of epoch {self.best_epoch}", flush=True)
        return self.best_state

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "best_epoch": self.best_epoch,
                "last_epoch": self.last_epoch, "stop_training": self.stop_training,
                "best_state": self.best_state}  # fmt: skip

    def load_state_dict(self, values: dict[str, Any]) -> None:
        super().load_state_dict(values)
        self.best_epoch, self.last_epoch = values["best_epoch"], values["last_epoch"]
        self.stop_training, self.best_state = values["stop_training"], values["best_state"]


class ReduceLROnPlateau(_Monitor):
    """Multiplies the learning rate by `factor` when `monitor` stalls, as PyTorch's scheduler.

    PyTorch's semantics with ``mode="min"``, ``threshold_mode="rel"`` and ``cooldown=0``: an
    epoch improves when ``value < best * (1 - min_delta)``; after more than `patience` epochs
    without improvement the rate becomes ``max(lr * factor, min_lr)`` (unchanged if that moves
    it by less than 1e-8) and the count restarts. A constant rate is replaced in the optimizer
    state (`optim.with_hyperparams`); a schedule is scaled through ``learning_rate_scale``. The
    new rate shows in ``history["lr"]``.

    Args:
      monitor: a history key, "val_loss" by default.
      factor: in (0, 1).
      patience: epochs without improvement tolerated, an int >= 0.
      min_delta: relative improvement that counts, >= 0.
      min_lr: the lowest rate, >= 0.
    """

    def __init__(
        self,
        *,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        min_delta: float = 1e-4,
        min_lr: float = 0.0,
    ) -> None:
        where = "ReduceLROnPlateau"
        super().__init__(where, monitor, "min", min_delta)
        self.factor = _checks.positive(where, "factor", factor)
        if self.factor >= 1:
            raise ValueError(f"{where}: `factor` must be a number in (0, 1), got {factor!r}.")
        if isinstance(patience, bool) or not isinstance(patience, int):
            raise TypeError(f"{where}: `patience` must be an int >= 0, got {patience!r}.")
        if patience < 0:
            raise ValueError(f"{where}: `patience` must be an int >= 0, got {patience!r}.")
        self.patience = patience
        self.min_lr = _checks.non_negative(where, "min_lr", min_lr)

    def improves(self, value: float, best: float | None) -> bool:
        return best is None or value < best * (1 - self.min_delta)

    def on_epoch_end(self, epoch: int, state: TrainState, logs: dict[str, float]):
        if self.record(logs[self.monitor]) or self.wait <= self.patience:
            return None
        self.wait = 0
        values = hyperparams(state.opt_state)
        name = "learning_rate" if "learning_rate" in values else "learning_rate_scale"
        old = float(values[name]) if name == "learning_rate" else float(logs["lr"])
        new = max(old * self.factor, self.min_lr)
        if old - new <= 1e-8:
            return None
        if self.verbose:
            print(f"ReduceLROnPlateau: learning rate {old:.3e} -> {new:.3e}", flush=True)
        value = new if name == "learning_rate" else values[name] * (new / old)
        return state._replace(opt_state=with_hyperparams(state.opt_state, **{name: value}))


class CSVLogger(Callback):
    """Writes the history to a CSV file: a header, then one row per epoch as it ends.

    Columns: ``epoch``, then every history key (``loss``, metrics, ``val_*``, ``lr``,
    ``seconds``). Each row is flushed and synced to disk when written, so a crash loses no
    finished epoch.

    Args:
      path: the file; created, or replaced unless `append`.
      append: add rows to an existing file (a resumed run) instead of starting it anew.
    """

    def __init__(self, path: str | os.PathLike, *, append: bool = False) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(f"CSVLogger: `path` must be a str or path, got {path!r}.")
        self.path, self.append = os.fspath(path), bool(append)
        self._columns: list[str] | None = None

    def on_train_begin(self, state: TrainState) -> None:
        self._columns = None
        if not self.append and os.path.exists(self.path):
            os.remove(self.path)

    def on_epoch_end(self, epoch: int, state: TrainState, logs: dict[str, float]) -> None:
        header = self._columns is None and not os.path.exists(self.path)
        if self._columns is None:
            self._columns = ["epoch", *logs]
        with open(self.path, "a", newline="") as file:
            writer = csv.writer(file)
            if header:
                writer.writerow(self._columns)
            writer.writerow([epoch, *(logs.get(name, "") for name in self._columns[1:])])
            file.flush()
            os.fsync(file.fileno())


def check_callbacks(where: str, callbacks: Any, early_stopping: Any) -> list[Callback]:
    """The run's callbacks in order: `early_stopping` (if given) first, then `callbacks`; the
    caller moves Checkpoints last."""
    if isinstance(callbacks, Callback):
        callbacks = (callbacks,)
    if not isinstance(callbacks, tuple | list):
        raise TypeError(
            f"{where}: `callbacks` must be a sequence of Callback instances, got "
            f"{type(callbacks).__name__}."
        )
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise TypeError(
            f"{where}: `early_stopping` must be an EarlyStopping such as "
            f"`train.EarlyStopping(patience=5)`, got {type(early_stopping).__name__}."
        )
    ordered = [early_stopping] if early_stopping is not None else []
    for position, callback in enumerate(callbacks, start=1):
        if isinstance(callback, type) and issubclass(callback, Callback):
            raise TypeError(
                f"{where}: callback {position} is the class `{callback.__name__}`, expected an "
                f"instance. Did you write `{callback.__name__}` instead of "
                f"`{callback.__name__}(...)`?"
            )
        if not isinstance(callback, Callback):
            raise TypeError(
                f"{where}: callback {position} must be a `train.Callback` instance (subclass it "
                f"and override on_epoch_end), got {type(callback).__name__} {callback!r}."
            )
        if any(callback is earlier for earlier in ordered):
            raise ValueError(
                f"{where}: callback {position} ({type(callback).__name__}) is given twice (in "
                "`callbacks`, or there and as `early_stopping`); pass each once."
            )
        ordered.append(callback)
    return ordered


def check_monitors(where: str, callbacks: list[Callback], keys: list[str]) -> None:
    """Raises if a callback reads a history key the run does not record."""
    for callback in callbacks:
        for key in callback.monitors():
            if key not in keys:
                raise ValueError(
                    f"{where}: {type(callback).__name__} monitors {key!r}, which this run does "
                    f"not record; choose one of {keys} (val_* needs validation_data)."
                )
