"""Compile time and step time of a transformer stack: `nn.repeat` against `nn.serial`.

A character-level GPT-style model (Embedding, `depth` pre-norm blocks of causal attention and
a ReLU MLP, Dense) of width 64 on sequences of 32, batch 16, trained with `make_train_step`
and Adam. "First step" is the time from building the step to its first finished result
(tracing and XLA compilation included); "step" the median of `--steps` later steps.

    python benchmarks/bench_repeat.py [--steps 20] [--depths 2 32]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import numpy as np

from fnnet import losses, nn, optim, train

WIDTH, TIME, BATCH, VOCAB = 64, 32, 16, 64


def block() -> nn.Layer:
    attention = nn.residual(nn.serial(nn.LayerNorm(), nn.MultiHeadAttention(4, WIDTH, causal=True)))
    mlp = nn.residual(nn.serial(nn.LayerNorm(), nn.Dense(4 * WIDTH), nn.Relu(), nn.Dense(WIDTH)))
    return nn.serial(attention, mlp)


def model(depth: int, stacked: bool) -> nn.Layer:
    body = nn.repeat(block(), depth) if stacked else nn.serial(*[block()] * depth)
    return nn.serial(nn.Embedding(VOCAB, WIDTH), body, nn.Dense(VOCAB))


def measure(depth: int, stacked: bool, steps: int) -> tuple[float, float]:
    net, optimizer = model(depth, stacked), optim.adam(1e-3)
    ids = np.random.default_rng(0).integers(0, VOCAB, size=(BATCH, TIME + 1)).astype(np.int32)
    batch = (ids[:, :-1], ids[:, 1:])
    state = train.init_state(net, optimizer, jax.random.key(0), (TIME,))
    start = time.perf_counter()
    step = train.make_train_step(net, losses.softmax_cross_entropy, optimizer)
    state, loss = step(state, batch)
    jax.block_until_ready(loss)
    first = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        state, loss = step(state, batch)
        jax.block_until_ready(loss)
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 32])
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {jax.default_backend()}, {platform.machine()}; width {WIDTH}, "
          f"T={TIME}, batch {BATCH}")  # fmt: skip
    print(f"{'depth':>5} {'layers':>7} {'first step':>11} {'step':>10}")
    for depth in args.depths:
        for stacked in (True, False):
            first, step = measure(depth, stacked, args.steps)
            name = "repeat" if stacked else "serial"
            print(f"{depth:>5} {name:>7} {first:>10.2f}s {step * 1e3:>8.2f}ms")


if __name__ == "__main__":
    main()
