"""16 digits MLPs: one `fit_ensemble` call against 16 sequential `fit` calls.

Both train the same 16 models (64 hidden units, Adam, 16 learning rates, batch 32, 10 epochs,
validation scored every epoch) on the digits. Reported per way, as the median over
`--repeats` alternating runs:

* wall: the whole call, compilation included;
* without compilation: wall minus XLA's compile time, read from JAX's own monitoring events
  (``/jax/core/compile/backend_compile_duration``), so tracing, checks and set-up stay in;
* epochs: the sum of the epochs' own seconds after the first (which compiles), scaled to 10
  epochs: the per-step cost, with neither compilation nor per-call set-up.

    python benchmarks/bench_ensemble.py [--repeats 3] [--members 16]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import data, datasets, losses, nn, optim, train

EPOCHS, BATCH = 10, 32
COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
compile_seconds = [0.0]


def _on_event(event: str, duration: float, **_) -> None:
    if event == COMPILE_EVENT:
        compile_seconds[0] += duration


def digits():
    images, labels = datasets.load_digits()
    inputs = images.reshape(len(images), -1)
    (x, y), (xv, yv) = data.split(jax.random.key(0), inputs, labels, fractions=(0.8, 0.2))
    x, xv = data.standardize(x, xv)
    return (x, y), (xv, yv)


def timed(run) -> tuple[float, float, float]:
    """(wall, wall without XLA compilation, steady epochs) seconds of ``run() -> histories``."""
    compile_seconds[0] = 0.0
    start = time.perf_counter()
    histories = run()
    wall = time.perf_counter() - start
    epochs = sum(sum(h["seconds"][1:]) * EPOCHS / (len(h["seconds"]) - 1) for h in histories)
    return wall, wall - compile_seconds[0], epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--members", type=int, default=16)
    args = parser.parse_args()
    jax.monitoring.register_event_duration_secs_listener(_on_event)
    train_data, val_data = digits()
    rates = np.geomspace(1e-4, 1e-1, args.members).astype(np.float32)
    keys = jax.random.split(jax.random.key(1), args.members)
    model = nn.MLP((64,), 10)
    common = dict(epochs=EPOCHS, batch_size=BATCH, validation_data=val_data, verbose=False)

    def sequential():
        return [
            train.fit(model, losses.softmax_cross_entropy, optim.adam(float(rate)), train_data,
                      key=key, **common).history
            for rate, key in zip(rates, keys, strict=True)
        ]  # fmt: skip

    def ensemble():
        result = train.fit_ensemble(
            model, losses.softmax_cross_entropy, optim.adam(), train_data, keys=keys,
            hyperparams={"learning_rate": jnp.asarray(rates)}, **common,
        )  # fmt: skip
        return [{"seconds": [float(s[0]) for s in result.history["seconds"]]}]

    runs = {"sequential fit": [], "fit_ensemble": []}
    for repeat in range(args.repeats):
        order = list(runs) if repeat % 2 == 0 else list(runs)[::-1]
        for name in order:
            runs[name].append(timed(sequential if name == "sequential fit" else ensemble))
    print(f"jax {jax.__version__}, {jax.default_backend()}, {platform.machine()}; "
          f"{args.members} digits MLPs (64 hidden, Adam, batch {BATCH}, {EPOCHS} epochs), "
          f"median of {args.repeats}")  # fmt: skip
    print(f"{'':16} {'wall':>9} {'w/o compile':>12} {'epochs':>9}")
    medians = {n: [statistics.median(r[i] for r in rs) for i in range(3)] for n, rs in runs.items()}
    for name, (wall, no_compile, epochs) in medians.items():
        print(f"{name:16} {wall:8.2f}s {no_compile:11.2f}s {epochs:8.3f}s")
    seq, ens = medians["sequential fit"], medians["fit_ensemble"]
    print(
        f"{'speed-up':16} {seq[0] / ens[0]:8.1f}x {seq[1] / ens[1]:11.1f}x {seq[2] / ens[2]:8.2f}x"
    )
    per_member = ens[2] / args.members / (seq[2] / args.members)
    print(f"per-member step cost in the ensemble / one model's: {per_member:.2f}")


if __name__ == "__main__":
    main()
