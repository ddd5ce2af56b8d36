"""What `fit` prints: a start line, one line per epoch, and live progress inside long epochs.

On a terminal, the first epoch (whose length is not known yet) runs as `CHUNKS` compiled
chunks, and every later epoch whose predecessor took longer than `LIVE_AFTER_SECONDS` as one
chunk per `SECONDS_PER_CHUNK` (at least 2, at most `CHUNKS`); a line updated in place shows
the updates done, the running loss and the time left. Anywhere else (CI logs, files) the
output is one line per epoch and every epoch is one program.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

import numpy as np

LIVE_AFTER_SECONDS = 2.0
CHUNKS = 10
SECONDS_PER_CHUNK = 0.5


def _decimals(value: float) -> int:
    """Decimals that show a column's first value to 4 significant digits, between 4 and 8."""
    if not math.isfinite(value) or value == 0:
        return 4
    return min(8, max(4, 3 - math.floor(math.log10(abs(value)))))


class Progress:
    """The printer of one `fit` run (silent unless `verbose`)."""

    def __init__(self, verbose: bool, epochs: int, stream: TextIO | None = None) -> None:
        self.verbose, self.epochs = bool(verbose), epochs
        self.stream = stream if stream is not None else sys.stdout
        isatty = getattr(self.stream, "isatty", None)
        self.live = self.verbose and callable(isatty) and bool(isatty())
        self._decimals: dict[str, int] = {}
        self._last_seconds: float | None = None
        self.started = 0.0

    def say(self, text: str) -> None:
        if self.verbose:
            print(text, file=self.stream, flush=True)

    def chunk_size(self, updates: int) -> int | None:
        """Updates per chunk for the next epoch, or None to run it as one program."""
        if not self.live:
            return None
        if self._last_seconds is None:
            chunks = CHUNKS
        elif self._last_seconds > LIVE_AFTER_SECONDS:
            chunks = min(CHUNKS, max(2, round(self._last_seconds / SECONDS_PER_CHUNK)))
        else:
            return None
        return max(1, math.ceil(updates / chunks))

    def epoch_started(self) -> None:
        self.started = time.perf_counter()

    def chunk_done(self, epoch: int, done: int, total: int | None, losses: np.ndarray) -> None:
        """The in-place line: ``epoch 3/10  120/400 updates  loss 0.2345  12s left`` (for a
        stream of unknown length: ``epoch 3/10  120 updates  loss 0.2345``)."""
        if not self.live or (total is not None and done >= total):
            return
        elapsed = time.perf_counter() - self.started
        finite = losses[np.isfinite(losses)]
        loss = f"loss {finite.mean():.4f}" if finite.size else ""
        width = len(str(self.epochs))
        if total is None:
            line = f"epoch {epoch:>{width}}/{self.epochs}  {done} updates  {loss}"
        else:
            left = elapsed / done * (total - done)
            line = (f"epoch {epoch:>{width}}/{self.epochs}  {done}/{total} updates  {loss}"
                    f"{'  ' if loss else ''}{left:.0f}s left")  # fmt: skip
        self.stream.write(f"\r{line}\x1b[K")
        self.stream.flush()

    def format_row(self, row: dict[str, float]) -> str:
        """``loss 0.0083  accuracy 1.0000  lr 1.00e-03``: decimals fixed per column."""
        parts = []
        for name, value in row.items():
            if name == "seconds":
                continue
            if name == "lr":
                parts.append(f"lr {value:.2e}")
                continue
            decimals = self._decimals.setdefault(name, _decimals(value))
            parts.append(f"{name} {value:.{decimals}f}")
        return "  ".join(parts)

    def epoch_done(self, epoch: int, row: dict[str, float]) -> None:
        seconds = row["seconds"]
        self._last_seconds = seconds
        if not self.verbose:
            return
        width = len(str(self.epochs))
        note = " with compilation" if epoch == 1 else ""
        line = (
            f"epoch {epoch:>{width}}/{self.epochs}  {self.format_row(row)}  ({seconds:.2f}s{note})"
        )
        if self.live:
            line = f"\r{line}\x1b[K"
        print(line, file=self.stream, flush=True)
