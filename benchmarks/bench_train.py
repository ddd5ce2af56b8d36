"""fnnet's jitted step and compiled epoch against a hand-written JAX training step.

Everything runs in one process on the same data, initial parameters and arithmetic:

* hand-written: a params dict, a hand-written Adam, `jax.jit` with the state donated;
* fnnet step:   `train.make_train_step` (MLP + `optim.adam` + softmax cross-entropy);
* guarded step: the same with ``skip_nonfinite=True`` (what `fit` does inside its epochs);
* Python loop:  fnnet's step called once per shuffled mini-batch from Python, as in a user's
  loop (each batch gathered on the device before its step);
* fnnet epoch:  `train.make_train_epoch`: shuffle and every step in one `lax.scan` program.

The step variants run on the same pre-gathered batches. Each timing is one epoch of
`--samples` samples divided by its number of steps; the variants run round-robin, `--repeats`
times, so drift in the machine's speed hits them alike, and the median is reported.
Compilation is excluded by a warm-up epoch.

    python benchmarks/bench_train.py [--repeats 21] [--samples 16384]
"""

from __future__ import annotations

import argparse
import functools
import platform
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp

from fnnet import losses, nn, optim, train

B1, B2, EPS, LR = 0.9, 0.999, 1e-8, 1e-3


def hand_written_step():
    """The baseline a JAX user would write: dict params, Adam by hand, jit with donation."""

    def forward(params, x):
        for layer in params[:-1]:
            x = jax.nn.relu(x @ layer["w"] + layer["b"])
        return x @ params[-1]["w"] + params[-1]["b"]

    def loss(params, x, y):
        log_probs = jax.nn.log_softmax(forward(params, x))
        return -jnp.mean(jnp.take_along_axis(log_probs, y[:, None], axis=1))

    @functools.partial(jax.jit, donate_argnums=0)
    def step(state, x, y):
        params, m, v, t = state
        value, grads = jax.value_and_grad(loss)(params, x, y)
        t = t + 1
        m = jax.tree.map(lambda m, g: B1 * m + (1 - B1) * g, m, grads)
        v = jax.tree.map(lambda v, g: B2 * v + (1 - B2) * g * g, v, grads)
        correction = jnp.sqrt(1 - B2**t) / (1 - B1**t)
        params = jax.tree.map(
            lambda p, m, v: p - LR * correction * m / (jnp.sqrt(v) + EPS), params, m, v
        )
        return (params, m, v, t), value

    return step


def copy(tree):
    return jax.tree.map(lambda a: a.copy(), tree)


def runners(sizes: tuple[int, ...], batch_size: int, samples: int) -> dict[str, Callable]:
    """One callable per variant; each runs one epoch and keeps its own (donated) state."""
    *hidden, classes = sizes[1:]
    key_x, key_y, key_init, key_order = jax.random.split(jax.random.key(0), 4)
    x = jax.random.normal(key_x, (samples, sizes[0]))
    y = jax.random.randint(key_y, (samples,), 0, classes)
    steps = samples // batch_size
    order = jax.random.permutation(key_order, samples)[: steps * batch_size]
    batches = [(x[idx], y[idx]) for idx in order.reshape(steps, batch_size)]

    model, optimizer = nn.MLP(tuple(hidden), classes), optim.adam(LR)
    state = train.init_state(model, optimizer, key_init, (sizes[0],))
    params = [dict(p) for p in state.params if p]
    zeros = jax.tree.map(jnp.zeros_like, params)
    states = {
        "hand": (copy(params), copy(zeros), copy(zeros), jnp.zeros((), jnp.int32)),
        **{name: copy(state) for name in ("step", "guarded", "loop", "epoch")},
    }
    hand = hand_written_step()
    steps_by_name = {
        "step": train.make_train_step(model, losses.softmax_cross_entropy, optimizer),
        "guarded": train.make_train_step(
            model, losses.softmax_cross_entropy, optimizer, skip_nonfinite=True
        ),
    }
    epoch = train.make_train_epoch(
        model, losses.softmax_cross_entropy, optimizer, batch_size=batch_size
    )

    def run_hand():
        s = states["hand"]
        for bx, by in batches:
            s, loss = hand(s, bx, by)
        states["hand"] = s
        return loss

    def run_step(name):
        s, step = states[name], steps_by_name[name]
        for batch in batches:
            s, loss = step(s, batch)
        states[name] = s
        return loss

    def run_loop():
        s, step = states["loop"], steps_by_name["step"]
        for idx in train.shuffle_indices(s, samples, batch_size=batch_size):
            s, loss = step(s, (x[idx], y[idx]))
        states["loop"] = s
        return loss

    def run_epoch():
        states["epoch"], step_losses = epoch(states["epoch"], x, y)
        return step_losses

    return {
        "hand": run_hand,
        "step": functools.partial(run_step, "step"),
        "guarded": functools.partial(run_step, "guarded"),
        "loop": run_loop,
        "epoch": run_epoch,
    }


def per_step_medians(runs: dict[str, Callable], steps: int, repeats: int) -> dict[str, float]:
    for run in runs.values():
        jax.block_until_ready(run())  # compile and warm up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            jax.block_until_ready(run())
            times[name].append((time.perf_counter() - start) / steps)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--samples", type=int, default=16384)
    args = parser.parse_args()
    device = jax.devices()[0]
    print(
        f"jax {jax.__version__}, {device.platform} ({device.device_kind}), "
        f"{platform.machine()}; median per-step time over {args.repeats} round-robin epochs of "
        f"{args.samples} samples"
    )
    header = (
        "MLP",
        "batch",
        "hand-written",
        "fnnet step",
        "ratio",
        "guarded",
        "ratio",
        "python loop",
        "fnnet epoch",
        "loop/epoch",
    )
    print("{:<15} {:>5} {:>12} {:>11} {:>6} {:>10} {:>6} {:>11} {:>11} {:>10}".format(*header))
    for sizes, batch_size in [((64, 128, 128, 10), 128), ((784, 512, 512, 10), 256)]:
        t = per_step_medians(
            runners(sizes, batch_size, args.samples), args.samples // batch_size, args.repeats
        )
        us = {name: f"{value * 1e6:.1f} us" for name, value in t.items()}
        print(
            f"{'-'.join(map(str, sizes)):<15} {batch_size:>5} {us['hand']:>12} {us['step']:>11} "
            f"{t['step'] / t['hand']:>6.3f} {us['guarded']:>10} {t['guarded'] / t['hand']:>6.3f} "
            f"{us['loop']:>11} {us['epoch']:>11} {t['loop'] / t['epoch']:>9.2f}x"
        )


if __name__ == "__main__":
    main()
