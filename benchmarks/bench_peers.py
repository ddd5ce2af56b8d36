"""fnnet against hand-written JAX, Flax+Optax and PyTorch eager, per training step on this
machine (the table of "Zero-overhead compiled epochs").

Every system trains the same architecture (`workloads.py`) with Adam on the same random
batches. Hand-written JAX: a params list, hand-written Adam, a jitted step with the state
donated, called from Python per batch ("JAX step loop") or run as one `lax.scan` over the
pre-made batches ("JAX scan epoch"). fnnet: `make_train_epoch` (shuffle, guard and all) and
`make_train_step`; `fit` runs the epoch (or, for convolutions on a CPU, the step: see
`fit(dispatch=)`). Per system the first call (compilation) is timed apart; then `--rounds`
interleaved rounds give the median time per step.

    python benchmarks/bench_peers.py [--rounds 7] [--only 1 4]

The peers run where installed (`pip install -e ".[bench]"`) and are skipped with a note
otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import workloads as wl

# (workload, steps per round = per epoch): epochs of 8192 samples for the two small MLPs
WORKLOADS = [
    (wl.mlp((64, 128, 128, 10), 128), 64),
    (wl.mlp((784, 512, 512, 10), 256), 32),
    (wl.mlp((1024, 4096, 4096, 10), 512), 16),
    (wl.cnn(128), 8),
    (wl.lstm(256, 64, 64), 8),
]


def _peer(label: str, module: str, build):
    try:
        __import__(module)
    except ImportError:
        print(f"  {label}: skipped, {module} is not installed (pip install -e '.[bench]')")
        return []
    run = build()
    return [(label, run)] if run is not None else []


def systems(w: wl.Workload, inputs, targets) -> list[tuple[str, object]]:
    found = []
    if w.kind == "mlp":
        init, loss = wl.handwritten_mlp(w)
        steps, scan = wl.handwritten_runners(w, inputs, targets, init, loss)
        found += [("JAX step loop", steps), ("JAX scan epoch", scan)]
    steps, epoch, _ = wl.fnnet_runners(w, inputs, targets)
    found += [("fnnet epoch", epoch), ("fnnet step", steps)]
    found += _peer("Flax+Optax loop", "flax", lambda: wl.flax_runner(w, inputs, targets))
    found += _peer("torch eager", "torch", lambda: wl.torch_runner(w, inputs, targets))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", nargs="*", default=None, help="workload numbers (from 1)")
    args = parser.parse_args()
    started = time.perf_counter()
    try:
        import torch

        torch_note = f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        torch_note = ""
    machine = f"{jax.default_backend()}, {platform.machine()}, {os.cpu_count()} cores"
    print(f"jax {jax.__version__}, {machine}{torch_note}; medians of {args.rounds} rounds")
    print()
    rows, labels = [], []
    for i, (w, steps) in enumerate(WORKLOADS, 1):
        if args.only is not None and str(i) not in args.only:
            continue
        inputs, targets = wl.batches(w, steps)
        timed = [wl.Timed(label, run, steps) for label, run in systems(w, inputs, targets)]
        wl.interleaved(timed, args.rounds)
        rows.append((w, {t.label: t for t in timed}))
        labels += [t.label for t in timed if t.label not in labels]
        jax.clear_caches()

    def shown(seconds):
        return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} us"

    print("| workload | " + " | ".join(labels) + " | fnnet epoch / JAX scan |")
    print("| --- " * (len(labels) + 2) + "|")
    for w, timed in rows:
        cells = [shown(timed[label].per_step) if label in timed else "-" for label in labels]
        ratio = "-"
        if "JAX scan epoch" in timed:
            ratio = f"**{timed['fnnet epoch'].per_step / timed['JAX scan epoch'].per_step:.3f}**"
        print(f"| {w.name} | " + " | ".join(cells) + f" | {ratio} |")
    print("\nfirst call (compilation and warm-up), seconds:")
    for w, timed in rows:
        print(f"  {w.name}: " + ", ".join(f"{k} {t.first:.1f}" for k, t in timed.items()))
    print(f"\ndone in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
