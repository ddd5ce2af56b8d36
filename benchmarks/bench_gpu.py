"""fnnet on an accelerator: float32 and bfloat16, against Flax+Optax, PyTorch and a
hand-written JAX GPT with cuDNN attention, with the chip's matmul ceiling measured alike.

For each workload (the table of "Fast on accelerators"), every system trains the same
architecture with Adam on the same random batches; per system the first call (compilation
and warm-up) is timed apart, then `--rounds` interleaved rounds of `--steps` steps give the
median time per step. TFLOP/s use XLA's FLOP count of fnnet's float32 step, the same count
for every system of a workload. Also: the time to the first finished step of the GPT with
`nn.repeat` against `nn.serial` (compilation), and the matmul ceilings.

    python benchmarks/bench_gpu.py            # the full sizes: meant for a GPU, < 8 minutes
    python benchmarks/bench_gpu.py --small    # small sizes: checks the script on a CPU

The peers run where installed (`pip install -e ".[bench]"`); `--no-torch-compile` skips
torch.compile (tried by default on a GPU only).
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import workloads as wl

FULL = [wl.mlp((64, 128, 128, 10), 128), wl.cnn(128), wl.vgg(256),
        wl.mlp((4096, 8192, 8192, 8192, 10), 4096), wl.gpt(6, 768, 512, 16),
        wl.gpt(4, 256, 128, 64)]  # fmt: skip
SMALL = [wl.mlp((64, 128, 128, 10), 128), wl.cnn(16), wl.vgg(8, (8, 16, 32)),
         wl.mlp((256, 512, 512, 512, 10), 256), wl.gpt(2, 128, 64, 4),
         wl.gpt(2, 64, 32, 8)]  # fmt: skip


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def systems(w: wl.Workload, inputs, targets, args) -> tuple[list[tuple[str, object]], tuple]:
    """``(label, run)`` of every system measured on `w` (a peer that fails says why), and
    the arguments of `step_flops` for fnnet's float32 step."""
    found, flop_args = [], None
    for precision in ("float32", "bfloat16"):
        steps, epoch, step_args = wl.fnnet_runners(w, inputs, targets, precision)
        found += [(f"fnnet epoch {precision}", epoch), (f"fnnet step {precision}", steps)]
        flop_args = flop_args or step_args
    if w.kind == "gpt":
        init, loss = wl.handwritten_gpt(w)
        found.append(("JAX by hand bf16 + cuDNN attention (scan)",
                      wl.handwritten_runners(w, inputs, targets, init, loss)[1]))  # fmt: skip
    if _installed("flax") and _installed("optax"):
        run = wl.flax_runner(w, inputs, targets)
        found += [("Flax+Optax float32", run)] if run else []
    if _installed("torch"):
        import torch

        compile_too = args.torch_compile and torch.cuda.is_available()
        for bfloat16 in (False, True):
            for compiled in (False, True) if compile_too else (False,):
                label = f"torch {'compile' if compiled else 'eager'} "
                label += "autocast bf16" if bfloat16 else "float32"
                try:
                    found.append((label, wl.torch_runner(w, inputs, targets, compiled=compiled,
                                                         bfloat16=bfloat16)))  # fmt: skip
                except Exception as error:  # torch.compile may not work here: say so, go on
                    print(f"  {label}: skipped ({type(error).__name__}: {error})"[:200])
    return found, flop_args


def measure(w: wl.Workload, args) -> None:
    inputs, targets = wl.batches(w, args.steps)
    found, flop_args = systems(w, inputs, targets, args)
    timed = []
    for label, run in found:
        try:
            timed.append(wl.Timed(label, run, args.steps))
        except Exception as error:  # e.g. torch.compile failing on its first call
            print(f"  {label}: failed ({type(error).__name__}: {error})"[:200])
    wl.interleaved(timed, args.rounds)
    flops = wl.step_flops(*flop_args)  # after the timings: it compiles the step once more
    print(f"\n### {w.name}  ({flops / 1e9:.2f} GFLOP per step, XLA's count)\n")
    print("| system | per step | TFLOP/s | first call (compile) |")
    print("| --- | --- | --- | --- |")
    for t in timed:
        per = t.per_step
        shown = f"{per * 1e3:.2f} ms" if per >= 1e-3 else f"{per * 1e6:.0f} us"
        print(f"| {t.label} | {shown} | {flops / per / 1e12:.3g} | {t.first:.1f} s |")
    if w.kind == "gpt":
        for stacked in (True, False):
            steps, _, _ = wl.fnnet_runners(w, inputs[: w.batch], targets[: w.batch],
                                           stacked=stacked)  # fmt: skip
            start = time.perf_counter()
            steps()
            print(f"| fnnet step float32, time to the first step, blocks by "
                  f"{'nn.repeat' if stacked else 'nn.serial'} | | | "
                  f"{time.perf_counter() - start:.1f} s |")  # fmt: skip
    jax.clear_caches()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small sizes, for a CPU")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per round")
    parser.add_argument("--only", nargs="*", default=None, help="workload numbers (from 1)")
    parser.add_argument("--no-torch-compile", dest="torch_compile", action="store_false")
    args = parser.parse_args()
    started = time.perf_counter()
    device = jax.devices()[0]
    print(f"jax {jax.__version__}, {device.platform}: {device.device_kind}, "
          f"{platform.machine()}; {args.rounds} rounds of {args.steps} steps")  # fmt: skip
    ceiling = wl.matmul_ceiling(1024 if args.small else 8192)
    n = 1024 if args.small else 8192
    print(f"\nmatmul {n}^3: " + ", ".join(f"{k} {v:.1f} TFLOP/s" for k, v in ceiling.items()))
    chosen = SMALL if args.small else FULL
    for i, w in enumerate(chosen, 1):
        if args.only is None or str(i) in args.only:
            measure(w, args)
    print(f"\ndone in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
