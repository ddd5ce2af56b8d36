"""What `fit` costs per step, end to end, and what live in-epoch progress adds.

1. **fit per step**: ``fit(epochs=1 + E)`` minus ``fit(epochs=1)`` (so compilation and the
   first epoch cancel out), divided by the E epochs' steps, for the MLPs of
   bench_dispatch.py; the median of `--repeats` alternating pairs. It uses only the
   wave-1 signature of `fit`, so the same script measures an older checkout
   (``PYTHONPATH=/path/to/old/src``) for a before/after comparison.
2. **chunked epochs** (`--chunks`): one epoch of the 784-512-512-10 MLP (about 2 s on 2
   CPU cores) run whole, and in the 20 compiled chunks that fit uses for live progress on a
   terminal (each chunk's losses read back for the progress line), round-robin; the ratio of
   medians is the overhead of in-epoch progress.

    python benchmarks/bench_fit.py [--repeats 5] [--chunks]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

from fnnet import losses, nn, optim, train

# name: (hidden sizes, inputs, samples, batch size)
MLPS = {
    "MLP 64-128-128-10": ((128, 128), 64, 8192, 128),
    "MLP 784-512-512-10": ((512, 512), 784, 8192, 256),
}


def data(features: int, samples: int):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, features)).astype(np.float32)
    return x, rng.integers(0, 10, size=samples).astype(np.int32)


def fit_seconds(hidden, x, y, batch_size, epochs) -> float:
    start = time.perf_counter()
    result = train.fit(nn.MLP(hidden, 10), losses.softmax_cross_entropy, optim.adam(),
                       (x, y), epochs=epochs, batch_size=batch_size, key=jax.random.key(0),
                       verbose=False)  # fmt: skip
    jax.block_until_ready(result.state.params)
    return time.perf_counter() - start


def fit_per_step(repeats: int, extra_epochs: int = 10) -> None:
    print(f"fit per step (fit of {1 + extra_epochs} epochs minus fit of 1), median of {repeats}")
    for name, (hidden, features, samples, batch_size) in MLPS.items():
        x, y = data(features, samples)
        fit_seconds(hidden, x, y, batch_size, 1)  # warm caches and imports
        per_step = []
        for _ in range(repeats):
            one = fit_seconds(hidden, x, y, batch_size, 1)
            many = fit_seconds(hidden, x, y, batch_size, 1 + extra_epochs)
            per_step.append((many - one) / (extra_epochs * (samples // batch_size)))
        print(f"  {name:<20} {statistics.median(per_step) * 1e6:9.1f} us per step", flush=True)


def chunk_overhead(repeats: int, chunks: int = 20) -> None:
    hidden, features, batch_size, samples = (512, 512), 784, 256, 102400
    x, y = (jax.numpy.asarray(a) for a in data(features, samples))
    model, optimizer = nn.MLP(hidden, 10), optim.adam()
    runner = train.epoch_runner(
        model, losses.softmax_cross_entropy, optimizer, batch_size=batch_size
    )
    updates = samples // batch_size
    size = -(-updates // chunks)
    states = {label: train.init_state(model, optimizer, jax.random.key(0), (features,))
              for label in ("whole", "chunks")}  # fmt: skip
    seen = []

    def run(label):
        chunk_size, report = (None, None) if label == "whole" else (size, lambda *r: seen.append(r))
        states[label], step_losses = train.run_epoch(
            runner, states[label], x, y, chunk_size=chunk_size, on_chunk=report
        )
        return step_losses

    times = {label: [] for label in states}
    for label in states:
        jax.block_until_ready(run(label))  # compile
    for _ in range(repeats):
        for label in states:
            start = time.perf_counter()
            jax.block_until_ready(run(label))
            times[label].append(time.perf_counter() - start)
    whole, chunked = (statistics.median(times[label]) for label in ("whole", "chunks"))
    print(f"epoch of {updates} steps, 784-512-512-10 MLP, batch {batch_size}, median of {repeats}:")
    print(f"  one program {whole:.3f} s; {chunks} chunks with progress reads {chunked:.3f} s; "
          f"overhead {100 * (chunked / whole - 1):+.2f}%")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunks", action="store_true", help="also measure chunked epochs")
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.default_backend()}")
    fit_per_step(args.repeats)
    if args.chunks:
        chunk_overhead(args.repeats)


if __name__ == "__main__":
    main()
