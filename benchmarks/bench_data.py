"""Data beyond memory: streamed fit against in-memory fit, ablations, memory, loaders.

Speed: fit on uint8 images kept as a host memmap (streamed in chunks, `transform` scaling them
on the device) against fit on the same uint8 images on the device with the same transform,
for the MLP 784-512-512-10 (batch 256) and the 28x28 CNN (batch 128), and against a
hand-written loop of jitted steps fed by a prefetch of 2 batches (the Flax examples' recipe).
Per-step times are medians of the epochs after the first (which compiles) over interleaved
rounds. Ablations: prefetch 0 / 1 / 2, steps_per_execution 1 / 4 / 16 / 64, uint8 +
transform against float32 prepared on the host.

Memory (a child process, so nothing else has touched its heap): one epoch on a memmap of
``--memory-gb`` GB of uint8 32x32x3 images; the growth of the process's anonymous memory
(RssAnon, sampled every 5 ms) from JAX's backend being up to the peak during fit (XLA's
compilation of the programs, about 116 MB, included) and the largest device array seen.

Loaders (when installed, ``pip install -e ".[bench]"``): a PyTorch DataLoader with 2 spawn
workers (grain's DataLoader too, if importable) through fit, next to fnnet's host streaming.

    python benchmarks/bench_data.py [--rounds 2] [--samples 16384] [--memory-gb 4] [--small]
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import losses, nn, optim, train

CE = losses.softmax_cross_entropy


def scale(x):
    return x / 255.0


def mlp():
    return nn.MLP((512, 512), 10)


def cnn():
    return nn.serial(
        nn.Conv2D(32, 3), nn.Relu(), nn.MaxPool2D(2), nn.Conv2D(64, 3), nn.Relu(),
        nn.MaxPool2D(2), nn.Flatten(), nn.Dense(128), nn.Relu(), nn.Dense(10),
    )  # fmt: skip


def images(directory: str, n: int, shape, seed=0):
    """uint8 images and int32 labels written as .npy files, opened as memmaps."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
    y = rng.integers(0, 10, size=n).astype(np.int32)
    np.save(os.path.join(directory, "x.npy"), x)
    np.save(os.path.join(directory, "y.npy"), y)
    return (np.load(os.path.join(directory, "x.npy"), mmap_mode="r"),
            np.load(os.path.join(directory, "y.npy"), mmap_mode="r"))  # fmt: skip


def fit_epochs(model, data, batch_size, epochs, **kw):
    """Per-step seconds of each epoch after the first (which compiles)."""
    result = train.fit(model, CE, optim.adam(1e-3), data, epochs=epochs, batch_size=batch_size,
                       key=jax.random.key(0), verbose=False, **kw)  # fmt: skip
    steps = int(result.state.step) // epochs
    return [s / steps for s in result.history["seconds"][1:]]


def handwritten(model, data, batch_size, epochs, transform):
    """A loop of jitted steps over batches gathered from the memmap, two put ahead."""
    x, y = data
    scaled = nn.Layer(model.init, lambda p, s, v, **kw: model.apply(p, s, transform(v), **kw))
    state = train.init_state(scaled, optim.adam(1e-3), jax.random.key(0), x.shape[1:])
    step = train.make_train_step(scaled, CE, optim.adam(1e-3))
    times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        order = np.random.default_rng(epoch).permutation(len(x))
        batches = ((x[ids], y[ids]) for ids in order[: len(x) // batch_size * batch_size]
                   .reshape(-1, batch_size))  # fmt: skip
        queue = collections.deque()
        for batch in batches:
            queue.append(jax.device_put(batch))
            if len(queue) == 2:
                state, loss = step(state, queue.popleft())
        while queue:
            state, loss = step(state, queue.popleft())
        loss.block_until_ready()
        times.append((time.perf_counter() - start) / (len(x) // batch_size))
    return times[1:]


def variants_of(model, batch, transform, mapped, epochs) -> dict:
    """Label -> ``measure() -> per-step seconds`` of every variant timed on one workload."""
    on_device = tuple(jnp.asarray(np.asarray(a)) for a in mapped)
    prepared = (np.asarray(scale(np.asarray(mapped[0])), np.float32), np.asarray(mapped[1]))

    def fnnet(data, **kw):
        return lambda: fit_epochs(model, data, batch, epochs, **kw)

    variants = {
        "in memory (device, uint8 + transform)": fnnet(on_device, transform=transform),
        "streamed (host memmap, uint8 + transform)": fnnet(mapped, transform=transform),
        "hand-written jitted steps, prefetch 2":
            lambda: handwritten(model, mapped, batch, epochs, transform),
    }  # fmt: skip
    for depth in (0, 1):
        variants[f"streamed, prefetch {depth}"] = fnnet(mapped, transform=transform, prefetch=depth)
    for k in (1, 4, 64):
        variants[f"streamed, steps_per_execution {k}"] = fnnet(
            mapped, transform=transform, steps_per_execution=k
        )
    variants["streamed, float32 prepared on the host"] = fnnet(prepared, data_placement="host")
    return variants


def speed(args) -> None:
    workloads = [("MLP 784-512-512-10, batch 256", mlp(), 256, args.samples, (784,), scale),
                 ("CNN 28x28 conv32-conv64, batch 128", cnn(), 128, args.samples // 4,
                  (28, 28, 1), scale)]  # fmt: skip
    if args.small:
        workloads = [(name, model, batch, n // 8, shape, t)
                     for name, model, batch, n, shape, t in workloads]  # fmt: skip
    epochs = 4
    with tempfile.TemporaryDirectory() as directory:
        for name, model, batch, n, shape, transform in workloads:
            mapped = images(directory, n, shape)
            variants = variants_of(model, batch, transform, mapped, epochs)
            times = {label: [] for label in variants}
            for _ in range(args.rounds):
                for label, measure in variants.items():
                    times[label] += measure()
            base = statistics.median(times["in memory (device, uint8 + transform)"])
            print(f"\n{name}: {n} samples, {n // batch} steps per epoch, median of "
                  f"{args.rounds * (epochs - 1)} epochs")  # fmt: skip
            for label, values in times.items():
                ms = statistics.median(values) * 1e3
                print(f"  {label:<44} {ms:8.2f} ms/step  {ms / 1e3 / base:5.2f}x in-memory")


MEMORY_CHILD = """
import os, sys, threading, time
def rss_anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon"):
            return int(line.split()[1]) * 1024
start = rss_anon()
import numpy as np
path, gb = sys.argv[1], float(sys.argv[2])
n = int(gb * 2**30) // 3072
x = np.load(path + "x.npy", mmap_mode="r")
y = np.load(path + "y.npy", mmap_mode="r")
import jax
import jax.numpy as jnp
from fnnet import losses, nn, optim, train
jnp.ones(3).block_until_ready()  # the backend up: the growth below is fit's own
before = rss_anon()
peak = {"rss": 0, "array": 0}
done = threading.Event()
def sample():
    while not done.is_set():
        peak["rss"] = max(peak["rss"], rss_anon())
        sizes = [a.nbytes for a in jax.live_arrays()]
        peak["array"] = max([peak["array"], *sizes])
        time.sleep(0.005)
threading.Thread(target=sample, daemon=True).start()
started = time.perf_counter()
result = train.fit(nn.MLP((32,), 10), losses.softmax_cross_entropy, optim.adam(1e-3), (x, y),
                   epochs=1, batch_size=256, key=jax.random.key(0), verbose=False,
                   transform=lambda v: v.reshape(v.shape[0], -1) / 255.0)  # chunks of 16 steps
seconds = time.perf_counter() - started
done.set()
chunk = 16 * 256 * 3072
stats = jax.devices()[0].memory_stats()
print(f"{x.nbytes / 2**30:.2f} GiB memmap, {len(x)} samples, {int(result.state.step)} steps in "
      f"{seconds:.1f} s")
print(f"RssAnon {start / 2**20:.0f} MiB at start, {before / 2**20:.0f} MiB with JAX's backend up, "
      f"peak {peak['rss'] / 2**20:.0f} MiB during fit: grew {(peak['rss'] - before) / 2**20:.0f} "
      f"MiB (compilation included; limit 256)")
print(f"largest device array {peak['array'] / 2**20:.1f} MiB = {peak['array'] / chunk:.2f} "
      f"chunks of 16 x 256 images; device bytes in use: "
      f"{stats.get('bytes_in_use') if stats else 'not reported on ' + jax.devices()[0].platform}")
"""


def memory(args) -> None:
    with tempfile.TemporaryDirectory(dir=args.tmp) as directory:
        prefix = os.path.join(directory, "")
        n = int(args.memory_gb * 2**30) // 3072
        x = np.lib.format.open_memmap(prefix + "x.npy", "w+", np.uint8, (n, 32, 32, 3))
        rng = np.random.default_rng(0)
        block = rng.integers(0, 256, size=(4096, 32, 32, 3), dtype=np.uint8)
        for start in range(0, n, 4096):
            x[start : start + 4096] = block[: n - start]
        x.flush()
        del x
        np.save(prefix + "y.npy", rng.integers(0, 10, size=n).astype(np.int32))
        print(f"\nmemory: one epoch over a {args.memory_gb:g} GB uint8 memmap (32x32x3 images), "
              "a child process")  # fmt: skip
        env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "")}
        out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, prefix, str(args.memory_gb)],
                             env=env, capture_output=True, text=True)  # fmt: skip
        print("  " + (out.stdout or out.stderr).strip().replace("\n", "\n  "))


class TorchImages:
    """A PyTorch map-style dataset over the .npy memmaps (opened in each worker)."""

    def __init__(self, directory):
        self.directory, self.x = directory, None

    def __len__(self):
        return len(np.load(os.path.join(self.directory, "y.npy"), mmap_mode="r"))

    def __getitem__(self, i):
        if self.x is None:
            self.x = np.load(os.path.join(self.directory, "x.npy"), mmap_mode="r")
            self.y = np.load(os.path.join(self.directory, "y.npy"), mmap_mode="r")
        return np.array(self.x[i]), int(self.y[i])  # a writable copy, as torch wants


def loaders(args) -> None:
    try:
        import torch.utils.data as torch_data
    except ImportError:
        print("\nloaders: PyTorch is not installed (pip install -e '.[bench]'); skipped")
        return
    n = args.samples // (8 if args.small else 1)
    with tempfile.TemporaryDirectory() as directory:
        mapped = images(directory, n, (784,))
        loader = torch_data.DataLoader(TorchImages(directory), batch_size=256, shuffle=True,
                                       num_workers=2, multiprocessing_context="spawn",
                                       persistent_workers=True, drop_last=True)  # fmt: skip
        rows = {
            "fnnet host streaming (memmap)": fit_epochs(mlp(), mapped, 256, 3, transform=scale),
            "PyTorch DataLoader, 2 spawn workers": fit_epochs(
                mlp(), loader, None, 3, transform=scale
            ),
        }
        try:
            import grain.python as grain  # noqa: F401
        except ImportError:
            rows["grain DataLoader"] = None
        print(f"\nloaders: MLP 784-512-512-10, batch 256, {n} samples, median of 2 epochs")
        for label, values in rows.items():
            if values is None:
                print(f"  {label:<44} not installed")
                continue
            per_step = statistics.median(values)
            print(f"  {label:<44} {1 / per_step:8.1f} steps/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--samples", type=int, default=16384)
    parser.add_argument("--memory-gb", type=float, default=4.0)
    parser.add_argument("--tmp", default=None, help="where the memory test writes its memmap")
    parser.add_argument("--small", action="store_true", help="a quick check: small sizes")
    parser.add_argument("--only", choices=("speed", "memory", "loaders"))
    args = parser.parse_args()
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}, {os.cpu_count()} CPUs")
    for part in (speed, memory, loaders):
        if args.only in (None, part.__name__):
            part(args)


if __name__ == "__main__":
    main()
