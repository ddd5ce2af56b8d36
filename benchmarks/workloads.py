"""The workloads of bench_gpu.py and bench_peers.py, built the same way in every system.

Each `Workload` names an architecture, its batch and its input; `fnnet_model`, `flax_model`
and `torch_model` build it in fnnet, Flax (linen) and PyTorch with the same layers, and every
system trains it with Adam (lr 1e-3, PyTorch's defaults) on softmax cross-entropy.
`Timed` and `interleaved` take the medians; `matmul_ceiling` measures what the chip's matmuls
reach in the same run. The peers are imported only when a workload asks for them
(`pip install -e ".[bench]"`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import losses, nn, optim, train

LR = 1e-3


@dataclass(frozen=True)
class Workload:
    """An architecture (`kind` and `sizes`) trained on batches of `batch` inputs."""

    name: str
    kind: str  # "mlp", "cnn", "vgg", "gpt", "lstm"
    batch: int
    sizes: dict = field(default_factory=dict)

    @property
    def tokens(self) -> bool:
        return self.kind in ("gpt", "lstm")

    @property
    def input_shape(self) -> tuple[int, ...]:
        if self.kind == "mlp":
            return (self.sizes["layers"][0],)
        if self.tokens:
            return (self.sizes["time"],)
        return self.sizes["image"]

    @property
    def classes(self) -> int:
        return self.sizes["vocab"] if self.tokens else self.sizes.get("classes", 10)


def mlp(layers: tuple[int, ...], batch: int) -> Workload:
    return Workload(f"MLP {'-'.join(map(str, layers))}, batch {batch}", "mlp", batch,
                    {"layers": layers, "classes": layers[-1]})  # fmt: skip


def cnn(batch: int, image=(28, 28, 1)) -> Workload:
    return Workload(f"CNN {image[0]}x{image[1]} conv32-conv64, batch {batch}", "cnn", batch,
                    {"image": image})  # fmt: skip


def vgg(batch: int, widths=(64, 128, 256)) -> Workload:
    return Workload(f"VGG-style 32x32x3 {'-'.join(map(str, widths))} + BatchNorm, batch {batch}",
                    "vgg", batch, {"image": (32, 32, 3), "widths": widths})  # fmt: skip


def gpt(depth: int, width: int, time: int, batch: int, vocab: int = 256) -> Workload:
    return Workload(f"GPT {depth} x {width}, T={time}, batch {batch}", "gpt", batch,
                    {"depth": depth, "width": width, "heads": max(1, width // 64), "time": time,
                     "vocab": vocab})  # fmt: skip


def lstm(features: int, time: int, batch: int, vocab: int = 64) -> Workload:
    return Workload(f"LSTM({features}) characters, T={time}, batch {batch}", "lstm", batch,
                    {"features": features, "time": time, "vocab": vocab, "embed": 64})  # fmt: skip


def batches(w: Workload, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` batches stacked: inputs ``(count * batch, ...)`` and their labels."""
    rng, n = np.random.default_rng(seed), count * w.batch
    if w.tokens:
        ids = rng.integers(0, w.classes, size=(n, w.sizes["time"] + 1)).astype(np.int32)
        return ids[:, :-1], ids[:, 1:]
    inputs = rng.normal(size=(n, *w.input_shape)).astype(np.float32)
    return inputs, rng.integers(0, w.classes, size=n).astype(np.int32)


# ---- fnnet ---------------------------------------------------------------------------------


def _conv_stack(widths, pool_every: int, norm: bool) -> list[nn.Layer]:
    layers = []
    for i, width in enumerate(widths):
        layers += [nn.Conv2D(width, 3, use_bias=not norm)] + ([nn.BatchNorm()] if norm else [])
        layers += [nn.Relu()] + ([nn.MaxPool2D(2)] if (i + 1) % pool_every == 0 else [])
    return layers


def _vgg_widths(w: Workload) -> list[int]:
    return [width for width in w.sizes["widths"] for _ in range(2)]


def fnnet_model(w: Workload, stacked: bool = True) -> nn.Layer:
    """The workload in fnnet; a GPT's blocks by `nn.repeat` (`stacked`) or `nn.serial`."""
    s = w.sizes
    if w.kind == "mlp":
        return nn.MLP(s["layers"][1:-1], s["layers"][-1])
    if w.kind == "cnn":
        convs = _conv_stack((32, 64), 2, norm=False)
        return nn.serial(*convs, nn.Flatten(), nn.Dense(128), nn.Relu(), nn.Dense(w.classes))
    if w.kind == "vgg":
        return nn.serial(*_conv_stack(_vgg_widths(w), 2, norm=True), nn.Flatten(),
                         nn.Dense(w.classes))  # fmt: skip
    if w.kind == "lstm":
        return nn.serial(nn.Embedding(s["vocab"], s["embed"]), nn.LSTM(s["features"]),
                         nn.Dense(s["vocab"]))  # fmt: skip
    width = s["width"]
    attention = nn.serial(nn.LayerNorm(), nn.MultiHeadAttention(s["heads"], width, causal=True))
    feed = nn.serial(nn.LayerNorm(), nn.Dense(4 * width), nn.Gelu(), nn.Dense(width))
    block = nn.serial(nn.residual(attention), nn.residual(feed))
    blocks = nn.repeat(block, s["depth"]) if stacked else nn.serial(*[block] * s["depth"])
    return nn.serial(nn.Embedding(s["vocab"], width), blocks, nn.LayerNorm(),
                     nn.Dense(s["vocab"]))  # fmt: skip


def fnnet_runners(w: Workload, inputs, targets, precision: str = "float32", stacked=True):
    """``(step_runner, epoch_runner, (step, state, batch))`` of fnnet: each ``run() -> None``
    trains on every batch of `inputs` once (one jitted step per batch, or the epoch as one
    compiled program); the last item is for `step_flops`."""
    model, optimizer = fnnet_model(w, stacked), optim.adam(LR)
    loss = losses.softmax_cross_entropy
    state = [train.init_state(model, optimizer, jax.random.key(0), w.input_shape)]
    x, y = jax.device_put(inputs), jax.device_put(targets)
    split = [(x[i : i + w.batch], y[i : i + w.batch]) for i in range(0, len(x), w.batch)]
    step = train.make_train_step(model, loss, optimizer, precision=precision)
    epoch = train.make_train_epoch(model, loss, optimizer, batch_size=w.batch,
                                   precision=precision)  # fmt: skip

    def run_steps():
        for batch in split:
            state[0], last = step(state[0], batch)
        jax.block_until_ready(last)

    def run_epoch():
        state[0], losses_ = epoch(state[0], x, y)
        jax.block_until_ready(losses_)

    return run_steps, run_epoch, (step, state, split[0])


def step_flops(step, state, batch) -> float:
    """XLA's count of the FLOPs of one compiled step."""
    analysis = step.lower(state[0], batch).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list | tuple) else analysis
    return float(analysis.get("flops", float("nan")))


# ---- hand-written JAX ----------------------------------------------------------------------


def adam_update(params, grads, m, v, t, lr=LR, b1=0.9, b2=0.999, eps=1e-8):
    """Adam (Kingma & Ba) on pytrees, hand-written: ``(params, m, v)`` after step ``t``."""
    m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
    v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
    scale = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
    params = jax.tree.map(lambda p, m, v: p - scale * m / (jnp.sqrt(v) + eps), params, m, v)
    return params, m, v


def handwritten_mlp(w: Workload):
    """``(init(key) -> params, loss(params, x, y) -> scalar)`` of the MLP in plain JAX."""
    layers = w.sizes["layers"]

    def init(key):
        keys = jax.random.split(key, len(layers) - 1)
        return [
            (jax.random.uniform(k, (a, b), minval=-1, maxval=1) * np.sqrt(6 / (a + b)),
             jnp.zeros(b))
            for k, a, b in zip(keys, layers[:-1], layers[1:], strict=True)
        ]  # fmt: skip

    def loss(params, x, y):
        for i, (weight, bias) in enumerate(params):
            x = x @ weight + bias
            x = jax.nn.relu(x) if i < len(params) - 1 else x
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(x), y[:, None], axis=1))

    return init, loss


def handwritten_gpt(w: Workload, compute=jnp.bfloat16):
    """The GPT in plain JAX computing in `compute` from float32 params, attention by
    `jax.nn.dot_product_attention` (cuDNN's fused kernel on a GPU): the ceiling fnnet's
    bfloat16 GPT is measured against."""
    s = w.sizes
    width, heads, vocab = s["width"], s["heads"], s["vocab"]
    gpu = jax.default_backend() == "gpu"

    def init(key):
        k = iter(jax.random.split(key, 8))

        def dense(key, a, b, stack=()):
            return {"w": jax.random.normal(key, (*stack, a, b)) / np.sqrt(a),
                    "b": jnp.zeros((*stack, b))}  # fmt: skip

        def norm(stack=()):
            return {"scale": jnp.ones((*stack, width)), "bias": jnp.zeros((*stack, width))}

        depth = (s["depth"],)
        return {
            "embed": jax.random.normal(next(k), (vocab, width)),
            "blocks": {"norm1": norm(depth), "qkv": dense(next(k), width, 3 * width, depth),
                       "out": dense(next(k), width, width, depth), "norm2": norm(depth),
                       "up": dense(next(k), width, 4 * width, depth),
                       "down": dense(next(k), 4 * width, width, depth)},
            "norm": norm(), "head": dense(next(k), width, vocab),
        }  # fmt: skip

    def layer_norm(p, x):
        x32 = x.astype(jnp.float32)
        mean, var = x32.mean(-1, keepdims=True), x32.var(-1, keepdims=True)
        return ((x32 - mean) * jax.lax.rsqrt(var + 1e-5) * p["scale"] + p["bias"]).astype(x.dtype)

    def linear(p, x):
        return x @ p["w"] + p["b"]

    def block(x, p):
        b, t, _ = x.shape
        q, k, v = jnp.split(linear(p["qkv"], layer_norm(p["norm1"], x)), 3, axis=-1)
        q, k, v = (a.reshape(b, t, heads, width // heads) for a in (q, k, v))
        attended = jax.nn.dot_product_attention(
            q, k, v, is_causal=True, implementation="cudnn" if gpu else None
        )
        x = x + linear(p["out"], attended.reshape(b, t, width))
        up = jax.nn.gelu(linear(p["up"], layer_norm(p["norm2"], x)), approximate=False)
        return x + linear(p["down"], up), None

    def loss(params, ids, labels):
        params = jax.tree.map(lambda a: a.astype(compute), params)
        x, _ = jax.lax.scan(block, params["embed"][ids], params["blocks"])
        logits = linear(params["head"], layer_norm(params["norm"], x)).astype(jnp.float32)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[..., None], -1))

    return init, loss


def handwritten_runners(w: Workload, inputs, targets, init, loss):
    """``(step_runner, scan_runner)``: one jitted Adam step per batch from Python, and one
    `lax.scan` over the pre-made batches; the state donated in both."""
    params = init(jax.random.key(0))
    m, v = (jax.tree.map(jnp.zeros_like, params) for _ in range(2))  # own buffers: donated
    state = [(params, m, v, jnp.zeros((), jnp.int32))]
    count = len(inputs) // w.batch
    xs = jax.device_put(inputs.reshape(count, w.batch, *inputs.shape[1:]))
    ys = jax.device_put(targets.reshape(count, w.batch, *targets.shape[1:]))
    split = [(xs[i], ys[i]) for i in range(count)]

    def one(state, batch):
        params, m, v, t = state
        value, grads = jax.value_and_grad(loss)(params, *batch)
        return (*adam_update(params, grads, m, v, t + 1), t + 1), value

    step = jax.jit(one, donate_argnums=0)
    scan = jax.jit(lambda state, xs, ys: jax.lax.scan(one, state, (xs, ys)), donate_argnums=0)

    def run_steps():
        for batch in split:
            state[0], value = step(state[0], batch)
        jax.block_until_ready(value)

    def run_scan():
        state[0], values = scan(state[0], xs, ys)
        jax.block_until_ready(values)

    return run_steps, run_scan


# ---- Flax + Optax --------------------------------------------------------------------------


def flax_runner(w: Workload, inputs, targets):
    """One jitted Flax (linen) + Optax Adam step per batch; None for the VGG (whose BatchNorm
    state the plain loop does not thread)."""
    if w.kind == "vgg":
        return None
    import flax.linen as fnn
    import optax

    s = w.sizes

    class Model(fnn.Module):
        @fnn.compact
        def __call__(self, x):
            if w.kind == "mlp":
                for features in s["layers"][1:-1]:
                    x = fnn.relu(fnn.Dense(features)(x))
                return fnn.Dense(s["layers"][-1])(x)
            if w.kind == "cnn":
                x = fnn.relu(fnn.Conv(32, (3, 3))(x))
                x = fnn.max_pool(fnn.relu(fnn.Conv(64, (3, 3))(x)), (2, 2), (2, 2))
                x = fnn.relu(fnn.Dense(128)(x.reshape(x.shape[0], -1)))
                return fnn.Dense(w.classes)(x)
            if w.kind == "lstm":
                x = fnn.Embed(s["vocab"], s["embed"])(x)
                x = fnn.RNN(fnn.OptimizedLSTMCell(s["features"]))(x)
                return fnn.Dense(s["vocab"])(x)
            width = s["width"]
            mask = fnn.make_causal_mask(x)
            x = fnn.Embed(s["vocab"], width)(x)
            for _ in range(s["depth"]):
                h = fnn.LayerNorm()(x)
                x = x + fnn.MultiHeadDotProductAttention(s["heads"], qkv_features=width)(
                    h, h, mask=mask
                )
                h = fnn.gelu(fnn.Dense(4 * width)(fnn.LayerNorm()(x)), approximate=False)
                x = x + fnn.Dense(width)(h)
            return fnn.Dense(s["vocab"])(fnn.LayerNorm()(x))

    model, optimizer = Model(), optax.adam(LR)
    params = model.init(jax.random.key(0), inputs[: w.batch])
    state = [(params, optimizer.init(params))]
    x, y = jax.device_put(inputs), jax.device_put(targets)
    split = [(x[i : i + w.batch], y[i : i + w.batch]) for i in range(0, len(x), w.batch)]

    def loss(params, x, y):
        logits = model.apply(params, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def one(state, x, y):
        params, opt_state = state
        value, grads = jax.value_and_grad(loss)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), value

    step = jax.jit(one, donate_argnums=0)

    def run():
        for batch in split:
            state[0], value = step(state[0], *batch)
        jax.block_until_ready(value)

    return run


# ---- PyTorch -------------------------------------------------------------------------------


def torch_model(w: Workload):
    from torch import nn as tnn

    s = w.sizes
    if w.kind == "mlp":
        layers = []
        for a, b in zip(s["layers"][:-1], s["layers"][1:], strict=True):
            layers += [tnn.Linear(a, b), tnn.ReLU()]
        return tnn.Sequential(*layers[:-1])
    if w.kind in ("cnn", "vgg"):
        norm = w.kind == "vgg"
        widths = (32, 64) if w.kind == "cnn" else _vgg_widths(w)
        layers, channels = [], w.input_shape[-1]
        for i, width in enumerate(widths):
            layers.append(tnn.Conv2d(channels, width, 3, padding=1, bias=not norm))
            layers += ([tnn.BatchNorm2d(width)] if norm else []) + [tnn.ReLU()]
            layers += [tnn.MaxPool2d(2)] if (i + 1) % 2 == 0 else []
            channels = width
        side = w.input_shape[0] // 2 ** (len(widths) // 2)
        flat = channels * side * side
        head = [tnn.Linear(flat, w.classes)] if norm else [
            tnn.Linear(flat, 128), tnn.ReLU(), tnn.Linear(128, w.classes)]  # fmt: skip
        return tnn.Sequential(*layers, tnn.Flatten(), *head)

    class Tokens(tnn.Module):
        def __init__(self):
            super().__init__()
            if w.kind == "lstm":
                self.embed = tnn.Embedding(s["vocab"], s["embed"])
                self.lstm = tnn.LSTM(s["embed"], s["features"], batch_first=True)
                self.head = tnn.Linear(s["features"], s["vocab"])
                return
            width, t = s["width"], s["time"]
            self.embed = tnn.Embedding(s["vocab"], width)
            block = tnn.TransformerEncoderLayer(width, s["heads"], 4 * width, dropout=0.0,
                                                activation="gelu", batch_first=True,
                                                norm_first=True)  # fmt: skip
            self.blocks = tnn.TransformerEncoder(block, s["depth"], enable_nested_tensor=False)
            self.norm, self.head = tnn.LayerNorm(width), tnn.Linear(width, s["vocab"])
            self.register_buffer("mask", tnn.Transformer.generate_square_subsequent_mask(t))

        def forward(self, ids):
            x = self.embed(ids)
            if w.kind == "lstm":
                return self.head(self.lstm(x)[0])
            x = self.blocks(x, mask=self.mask, is_causal=True)
            return self.head(self.norm(x))

    return Tokens()


def torch_runner(w: Workload, inputs, targets, *, compiled=False, bfloat16=False):
    """One PyTorch step per batch (eager, or `torch.compile`d), Adam fused where PyTorch
    has it; with `bfloat16`, autocast. NCHW images (PyTorch's layout)."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = torch_model(w).to(device)
    try:
        optimizer = torch.optim.Adam(model.parameters(), lr=LR, fused=True)
    except (RuntimeError, TypeError):
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    if w.kind in ("cnn", "vgg"):
        inputs = inputs.transpose(0, 3, 1, 2).copy()
    x = torch.from_numpy(inputs).to(device)
    y = torch.from_numpy(targets.astype(np.int64)).to(device)
    split = [(x[i : i + w.batch], y[i : i + w.batch]) for i in range(0, len(x), w.batch)]
    forward = torch.compile(model) if compiled else model
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(xb, yb):
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bfloat16):
            logits = forward(xb)
        loss = loss_fn(logits.float().reshape(-1, w.classes), yb.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    def run():
        for xb, yb in split:
            loss = step(xb, yb)
        loss.item()  # waits for the device

    return run


# ---- timing --------------------------------------------------------------------------------


class Timed:
    """A runner of `steps` training steps, its first call (compilation, warm-up) timed apart."""

    def __init__(self, label: str, run: Callable[[], None], steps: int):
        self.label, self.run, self.steps, self.times = label, run, steps, []
        start = time.perf_counter()
        run()
        self.first = time.perf_counter() - start

    def once(self) -> None:
        start = time.perf_counter()
        self.run()
        self.times.append((time.perf_counter() - start) / self.steps)

    @property
    def per_step(self) -> float:
        return statistics.median(self.times)


def interleaved(timed: list[Timed], rounds: int) -> None:
    """`rounds` rounds, each running every system once in turn (a slow moment of the machine
    hits them all alike); each then reports the median over the rounds."""
    for _ in range(rounds):
        for t in timed:
            t.once()


def matmul_ceiling(n: int, rounds: int = 5) -> dict[str, float]:
    """TFLOP/s of an ``n x n x n`` matmul: float32 at full precision, at JAX's default
    precision (TF32 on recent NVIDIA GPUs), and in bfloat16."""
    results = {}
    for label, dtype, precision in (("float32", jnp.float32, "highest"),
                                    ("float32 default", jnp.float32, None),
                                    ("bfloat16", jnp.bfloat16, None)):  # fmt: skip
        a = jax.random.normal(jax.random.key(0), (n, n), dtype)
        matmul = jax.jit(lambda a, b, p=precision: jnp.matmul(a, b, precision=p))
        jax.block_until_ready(matmul(a, a))
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            jax.block_until_ready(matmul(a, a))
            times.append(time.perf_counter() - start)
        results[label] = 2 * n**3 / statistics.median(times) / 1e12
    return results
