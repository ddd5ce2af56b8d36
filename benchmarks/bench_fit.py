"""What `fit` costs per step, end to end, and what live in-epoch progress adds.

1. **fit per step**: ``fit(epochs=1 + E)`` minus ``fit(epochs=1)`` (so compilation and the
   first epoch cancel out), divided by the E epochs' steps, for the MLPs of
   bench_dispatch.py; the median of `--repeats` round-robin pairs. With ``--baseline
   DIR`` (a ``src`` folder of another checkout, e.g. from ``git worktree add /tmp/old REV``)
   that version's `fit` is imported beside this one, as the package ``fnnet_baseline``, and
   the two run round-robin in the same process: the ratio is the change's cost. The same is
   done for the compiled epoch alone (`make_train_epoch`, what fit runs for these MLPs):
   without the compilation in the difference, it is the steadier of the two figures.
2. **chunked epochs** (`--chunks`): what live in-epoch progress on a terminal costs. First
   the fixed cost of one chunk (a dispatch, its indices sent, its losses read back), from an
   epoch of the small MLP in 64 one-step chunks against the same epoch as one program; times
   the most chunks fit runs in a live epoch (10) over the shortest epoch it runs live (2 s),
   that bounds the overhead. Then the direct measurement: one 2.5 s epoch of the
   784-512-512-10 MLP run whole, in 10 chunks (fit's first epoch) and in one chunk per 0.5 s
   (later epochs), round-robin; on a shared machine its noise (a few %) exceeds the effect.

    python benchmarks/bench_fit.py [--repeats 9] [--chunks] [--no-fit] [--baseline /tmp/old/src]
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import re
import shutil
import statistics
import sys
import tempfile
import time

import jax
import numpy as np

from fnnet import losses, nn, optim, train
from fnnet.train.progress import CHUNKS, LIVE_AFTER_SECONDS, SECONDS_PER_CHUNK

# name: (hidden sizes, inputs, samples, batch size, extra epochs: about 2 s of training, so
# that the jitter of compiling (about 0.1 s) stays small beside it)
MLPS = {
    "MLP 64-128-128-10": ((128, 128), 64, 8192, 128, 80),
    "MLP 784-512-512-10": ((512, 512), 784, 8192, 256, 10),
}


def data(features: int, samples: int):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(samples, features)).astype(np.float32)
    return x, rng.integers(0, 10, size=samples).astype(np.int32)


def load_baseline(src: str):
    """The `fnnet.train` of another checkout's ``src`` folder, imported as ``fnnet_baseline``."""
    folder = pathlib.Path(tempfile.mkdtemp()) / "fnnet_baseline"
    shutil.copytree(pathlib.Path(src) / "fnnet", folder)
    for path in folder.rglob("*.py"):
        text = re.sub(
            r"^(\s*)(from|import) fnnet\b", r"\1\2 fnnet_baseline", path.read_text(), flags=re.M
        )
        path.write_text(text)
    sys.path.insert(0, str(folder.parent))
    return importlib.import_module("fnnet_baseline")


def fit_seconds(library, hidden, x, y, batch_size, epochs) -> float:
    start = time.perf_counter()
    result = library.train.fit(
        library.nn.MLP(hidden, 10), library.losses.softmax_cross_entropy, library.optim.adam(),
        (x, y), epochs=epochs, batch_size=batch_size, key=jax.random.key(0), verbose=False,
    )  # fmt: skip
    jax.block_until_ready(result.state.params)
    return time.perf_counter() - start


def fit_per_step(repeats: int, baseline: str | None) -> None:
    import fnnet

    libraries = {"this": fnnet}
    if baseline:
        libraries["baseline"] = load_baseline(baseline)
    print(f"fit per step (fit of 1 + E epochs minus fit of 1), median of {repeats}")
    for name, (hidden, features, samples, batch_size, extra_epochs) in MLPS.items():
        x, y = data(features, samples)
        per_step = {label: [] for label in libraries}
        for library in libraries.values():
            fit_seconds(library, hidden, x, y, batch_size, 1)  # warm caches and imports
        for _ in range(repeats):
            for label, library in libraries.items():
                one = fit_seconds(library, hidden, x, y, batch_size, 1)
                many = fit_seconds(library, hidden, x, y, batch_size, 1 + extra_epochs)
                per_step[label].append((many - one) / (extra_epochs * (samples // batch_size)))
        medians = {label: statistics.median(values) for label, values in per_step.items()}
        line = "  ".join(f"{label} {value * 1e6:8.1f} us" for label, value in medians.items())
        ratio = f"  this / baseline {medians['this'] / medians['baseline']:.3f}" if baseline else ""
        print(f"  {name:<20} E={extra_epochs:<3} {line}{ratio}", flush=True)


def epoch_per_step(repeats: int, baseline: str) -> None:
    import fnnet

    libraries = {"this": fnnet, "baseline": load_baseline(baseline)}
    print(f"compiled epoch per step (make_train_epoch), median of {repeats} round-robin epochs")
    for name, (hidden, features, samples, batch_size, _) in MLPS.items():
        x, y = (jax.numpy.asarray(a) for a in data(features, samples))
        runs = {}
        for label, library in libraries.items():
            model, optimizer = library.nn.MLP(hidden, 10), library.optim.adam()
            epoch = library.train.make_train_epoch(
                model, library.losses.softmax_cross_entropy, optimizer, batch_size=batch_size
            )
            state = library.train.init_state(model, optimizer, jax.random.key(0), (features,))
            state, losses = epoch(state, x, y)  # compile
            jax.block_until_ready(losses)
            runs[label] = [epoch, state]
        times = {label: [] for label in runs}
        for repeat in range(repeats):
            for label in sorted(runs, reverse=repeat % 2 == 1):  # alternate who goes first
                epoch, state = runs[label]
                start = time.perf_counter()
                runs[label][1], losses = epoch(state, x, y)
                jax.block_until_ready(losses)
                times[label].append((time.perf_counter() - start) / (samples // batch_size))
        medians = {label: statistics.median(values) for label, values in times.items()}
        line = "  ".join(f"{label} {value * 1e6:8.1f} us" for label, value in medians.items())
        print(f"  {name:<20} {line}  this / baseline {medians['this'] / medians['baseline']:.3f}")


def chunk_overhead(repeats: int) -> None:
    hidden, features, batch_size, samples = (512, 512), 784, 256, 102400
    x, y = (jax.numpy.asarray(a) for a in data(features, samples))
    model, optimizer = nn.MLP(hidden, 10), optim.adam()
    runner = train.epoch_runner(
        model, losses.softmax_cross_entropy, optimizer, batch_size=batch_size
    )
    updates = samples // batch_size
    states = {}

    def run(label, chunks):
        chunk_size = None if chunks is None else -(-updates // chunks)
        states[label], step_losses = train.run_epoch(
            runner, states[label], x, y, chunk_size=chunk_size, on_chunk=lambda *report: None
        )
        return step_losses

    states["one program"] = train.init_state(model, optimizer, jax.random.key(0), (features,))
    jax.block_until_ready(run("one program", None))  # compile
    start = time.perf_counter()
    jax.block_until_ready(run("one program", None))
    steady = min(CHUNKS, max(2, round((time.perf_counter() - start) / SECONDS_PER_CHUNK)))
    variants = {
        "one program": None,
        f"{CHUNKS} chunks (first epoch)": CHUNKS,
        f"{steady} chunks (later epochs)": steady,
    }
    for label, chunks in variants.items():
        states.setdefault(label, jax.tree.map(lambda a: a.copy(), states["one program"]))
        jax.block_until_ready(run(label, chunks))  # compile
    times = {label: [] for label in variants}
    for repeat in range(repeats):
        order = list(variants)[:: -1 if repeat % 2 else 1]  # alternate who goes first
        for label in order:
            start = time.perf_counter()
            jax.block_until_ready(run(label, variants[label]))
            times[label].append(time.perf_counter() - start)
    whole = statistics.median(times["one program"])
    print(f"epoch of {updates} steps, 784-512-512-10 MLP, batch {batch_size}, median of {repeats}:")
    for name, values in times.items():
        seconds = statistics.median(values)
        print(f"  {name:<26} {seconds:.3f} s  overhead {100 * (seconds / whole - 1):+.2f}%")


def chunk_cost(repeats: int) -> None:
    """The fixed cost of one chunk (a dispatch, the indices sent, the losses read back): an
    epoch of 64 one-step chunks against the same epoch as one program, on the small MLP,
    where that cost is large beside the step and so measurable through the machine's noise."""
    features, samples, batch_size = 64, 8192, 128
    x, y = (jax.numpy.asarray(a) for a in data(features, samples))
    model, optimizer = nn.MLP((128, 128), 10), optim.adam()
    runner = train.epoch_runner(
        model, losses.softmax_cross_entropy, optimizer, batch_size=batch_size
    )
    updates = samples // batch_size
    states = {size: train.init_state(model, optimizer, jax.random.key(0), (features,))
              for size in (None, 1)}  # fmt: skip

    def run(size):
        states[size], step_losses = train.run_epoch(
            runner, states[size], x, y, chunk_size=size, on_chunk=lambda *report: None
        )
        jax.block_until_ready(step_losses)

    for size in states:
        run(size)  # compile
    times = {size: [] for size in states}
    for repeat in range(3 * repeats):
        for size in (None, 1) if repeat % 2 else (1, None):
            start = time.perf_counter()
            run(size)
            times[size].append(time.perf_counter() - start)
    whole, chunked = (statistics.median(times[size]) for size in (None, 1))
    per_chunk = (chunked - whole) / (updates - 1)
    bound = CHUNKS * per_chunk / LIVE_AFTER_SECONDS
    print(f"one chunk costs {per_chunk * 1e6:.0f} us (64 one-step chunks {chunked * 1e3:.1f} ms, "
          f"one program {whole * 1e3:.1f} ms); at most {CHUNKS} chunks in an epoch of more than "
          f"{LIVE_AFTER_SECONDS:.0f} s: at most {100 * bound:.2f}% for live progress")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--baseline", help="src folder of another checkout to compare with")
    parser.add_argument("--chunks", action="store_true", help="also measure chunked epochs")
    parser.add_argument("--no-fit", action="store_true", help="skip the fit-per-step part")
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.default_backend()}")
    if not args.no_fit:
        fit_per_step(args.repeats, args.baseline)
    if args.baseline:
        epoch_per_step(3 * args.repeats, args.baseline)
    if args.chunks:
        chunk_cost(args.repeats)
        chunk_overhead(args.repeats)


if __name__ == "__main__":
    main()
