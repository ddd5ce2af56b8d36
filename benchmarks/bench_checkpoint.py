"""Checkpoint save and load throughput against writing and reading the same bytes raw.

A ~100M-parameter Adam state (params, first and second moments: 1.2 GB of float32) is saved
with `checkpoint.save` (atomic: temporary file, fsync, rename, directory fsync) and loaded with
`checkpoint.load(path, like)` (every checksum verified), against `ndarray.tofile` of the same
arrays followed by one fsync, and `np.fromfile`. Medians of `--repeats`, in GB/s.

    python benchmarks/bench_checkpoint.py [--repeats 3] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import checkpoint, optim


def adam_state(parameters: int):
    layers = {f"layer{i}": jnp.full((parameters // 8,), 0.5, jnp.float32) for i in range(8)}
    state = optim.adam().init(layers)
    return state._replace(mu=jax.tree.map(lambda p: p * 0.1, state.params),
                          nu=jax.tree.map(lambda p: p * 0.01, state.params))  # fmt: skip


def raw_save(path: str, arrays: list[np.ndarray]) -> None:
    with open(path, "wb") as file:
        for array in arrays:
            array.tofile(file)
        file.flush()
        os.fsync(file.fileno())


def raw_load(path: str, arrays: list[np.ndarray]) -> list[np.ndarray]:
    with open(path, "rb") as file:
        return [np.fromfile(file, array.dtype, array.size) for array in arrays]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--parameters", type=int, default=100_000_000)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    state = adam_state(args.parameters)
    arrays = [np.asarray(leaf) for leaf in jax.tree.leaves(state)]
    gigabytes = sum(a.nbytes for a in arrays) / 1e9
    ours, raw = os.path.join(args.dir, "bench.ckpt"), os.path.join(args.dir, "bench.raw")
    times = {name: [] for name in ("save", "tofile", "load", "fromfile")}
    for _ in range(args.repeats):
        start = time.perf_counter()
        checkpoint.save(ours, state)
        times["save"].append(time.perf_counter() - start)
        start = time.perf_counter()
        raw_save(raw, arrays)
        times["tofile"].append(time.perf_counter() - start)
        start = time.perf_counter()
        jax.block_until_ready(checkpoint.load(ours, state))
        times["load"].append(time.perf_counter() - start)
        start = time.perf_counter()
        raw_load(raw, arrays)
        times["fromfile"].append(time.perf_counter() - start)
    os.remove(ours)
    os.remove(raw)
    rate = {name: gigabytes / statistics.median(values) for name, values in times.items()}
    print(f"Adam state of {args.parameters:,} parameters: {gigabytes:.2f} GB, median of "
          f"{args.repeats}, in {args.dir}")  # fmt: skip
    print(f"  save  {rate['save']:.2f} GB/s   tofile + fsync {rate['tofile']:.2f} GB/s   "
          f"ratio {rate['save'] / rate['tofile']:.2f}")  # fmt: skip
    print(f"  load  {rate['load']:.2f} GB/s   fromfile       {rate['fromfile']:.2f} GB/s   "
          f"ratio {rate['load'] / rate['fromfile']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
