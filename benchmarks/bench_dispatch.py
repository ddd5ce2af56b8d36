"""How to run a training epoch fastest: one compiled scan, unrolled, or step by step.

For each model, in one process on the same data, the median per-step time of:

* python loop: `train.make_train_step` called once per shuffled mini-batch from Python, the
  batch gathered before each step (a user's plain loop of jitted steps: the reference);
* scan:        `train.make_train_epoch`, the whole epoch in one `lax.scan` program;
* unrolled:    the same with ``unroll=True`` (straight-line code, no loop);
* stepwise:    `train.make_stepwise_epoch`, one jitted step per batch, gathering on the device;
* fit's pick:  what ``fit(dispatch="auto")`` chooses for the model on this backend.

The last column is the python loop's time over fit's pick: at least 1.00 means fit trains no
slower than a plain loop of jitted steps. Variants run round-robin; compilation is excluded.

    python benchmarks/bench_dispatch.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax

from fnnet import losses, nn, optim, train
from fnnet.train import _dispatch


def transformer(width=64, vocab=60):
    block = nn.serial(
        nn.residual(nn.serial(nn.LayerNorm(), nn.MultiHeadAttention(4, width, causal=True))),
        nn.residual(nn.serial(nn.LayerNorm(), nn.Dense(4 * width), nn.Gelu(), nn.Dense(width))),
    )
    return nn.serial(nn.Embedding(vocab, width), block, block, nn.LayerNorm(), nn.Dense(vocab))


# name: (model, input shape, samples, batch size, integer inputs, classes, unrolled variant?)
MODELS = {
    "MLP 64-128-128-10": (lambda: nn.MLP((128, 128), 10), (64,), 8192, 128, False, 10, False),
    "digits CNN 8x8 (example)": (
        lambda: nn.serial(
            nn.Conv2D(32, 3, use_bias=False),
            nn.BatchNorm(),
            nn.Relu(),
            nn.Conv2D(64, 3, use_bias=False),
            nn.BatchNorm(),
            nn.Relu(),
            nn.MaxPool2D(2),
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Dense(128),
            nn.Relu(),
            nn.Dense(10),
        ),
        (8, 8, 1),
        1440,
        32,
        False,
        10,
        True,
    ),
    "CNN 28x28 conv32-conv64": (
        lambda: nn.serial(
            nn.Conv2D(32, 3),
            nn.Relu(),
            nn.MaxPool2D(2),
            nn.Conv2D(64, 3),
            nn.Relu(),
            nn.MaxPool2D(2),
            nn.Flatten(),
            nn.Dense(10),
        ),
        (28, 28, 1),
        1280,
        128,
        False,
        10,
        True,
    ),
    "LSTM(128) char model": (
        lambda: nn.serial(nn.Embedding(60, 32), nn.LSTM(128), nn.Dense(60)),
        (64,),
        2048,
        64,
        True,
        60,
        False,
    ),
    "transformer, 2 blocks": (transformer, (64,), 2048, 64, True, 60, False),
}


def data(shape, samples, integer_inputs, classes):
    key_x, key_y = jax.random.split(jax.random.key(0))
    if integer_inputs:  # token ids in, next-token ids out
        return (
            jax.random.randint(key_x, (samples, *shape), 0, classes),
            jax.random.randint(key_y, (samples, *shape), 0, classes),
        )
    return jax.random.normal(key_x, (samples, *shape)), jax.random.randint(
        key_y, (samples,), 0, classes
    )


def measure(name: str, repeats: int) -> dict[str, float]:
    make_model, shape, samples, batch_size, integer_inputs, classes, unrolled = MODELS[name]
    model, optimizer, loss_fn = make_model(), optim.adam(), losses.softmax_cross_entropy
    x, y = data(shape, samples, integer_inputs, classes)
    state = train.init_state(model, optimizer, jax.random.key(1), shape)
    step = train.make_train_step(model, loss_fn, optimizer)
    epochs = {
        "scan": train.make_train_epoch(model, loss_fn, optimizer, batch_size=batch_size),
        "stepwise": train.make_stepwise_epoch(model, loss_fn, optimizer, batch_size=batch_size),
    }
    if unrolled:
        epochs["unrolled"] = train.make_train_epoch(
            model, loss_fn, optimizer, batch_size=batch_size, unroll=True
        )
    states = {label: jax.tree.map(lambda a: a.copy(), state) for label in ["loop", *epochs]}

    def run(label):
        if label == "loop":
            s = states["loop"]
            for idx in train.shuffle_indices(s, samples, batch_size=batch_size):
                s, loss = step(s, (x[idx], y[idx]))
            states["loop"] = s
            return loss
        states[label], step_losses = epochs[label](states[label], x, y)
        return step_losses

    for label in states:
        jax.block_until_ready(run(label))  # compile and warm up
    times = {label: [] for label in states}
    for _ in range(repeats):
        for label in states:
            start = time.perf_counter()
            jax.block_until_ready(run(label))
            times[label].append((time.perf_counter() - start) / (samples // batch_size))
    medians = {label: statistics.median(values) for label, values in times.items()}
    pick = _dispatch.resolve(
        "auto",
        model,
        loss_fn,
        optimizer,
        state,
        jax.ShapeDtypeStruct((batch_size, *x.shape[1:]), x.dtype),
        jax.ShapeDtypeStruct((batch_size, *y.shape[1:]), y.dtype),
    )
    medians["pick"] = medians["scan" if pick == "scan" else "stepwise"]
    medians["pick_name"] = "scan" if pick == "scan" else "stepwise"
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"jax {jax.__version__} on {jax.default_backend()}; median ms per step over "
        f"{args.repeats} round-robin epochs"
    )
    print(
        f"{'model':<26} {'python loop':>11} {'scan':>9} {'unrolled':>9} {'stepwise':>9} "
        f"{'fit picks':>10} {'loop/pick':>9}"
    )
    for name in MODELS:
        t = measure(name, args.repeats)
        ms = {k: f"{v * 1e3:.2f}" for k, v in t.items() if k != "pick_name"}
        print(
            f"{name:<26} {ms['loop']:>11} {ms['scan']:>9} {ms.get('unrolled', '-'):>9} "
            f"{ms['stepwise']:>9} {t['pick_name']:>10} {t['loop'] / t['pick']:>8.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
