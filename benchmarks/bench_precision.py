"""Test accuracy of the digits examples in float32 and in bfloat16, over seeds 0-4.

Runs `examples/digits.py` (MLP) and `examples/digits_cnn.py` (CNN with BatchNorm) as they
are, early stopping included, once per seed and precision, and prints each run's test
accuracy, the means and the bfloat16 - float32 difference of the means (in points).

    python benchmarks/bench_precision.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "examples"))

import digits_cnn

import digits
from common import test_scores

PRECISIONS = ("float32", "bfloat16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    print("| example | precision | " + " | ".join(f"seed {s}" for s in range(args.seeds))
          + " | mean | epochs kept (mean) |")  # fmt: skip
    print("| --- " * (args.seeds + 4) + "|")
    for name, example in (("digits MLP", digits), ("digits CNN", digits_cnn)):
        means = {}
        for precision in PRECISIONS:
            accuracies, kept, started = [], [], time.perf_counter()
            for seed in range(args.seeds):
                model, result, stopper, test_data = example.run(
                    seed, precision=precision, verbose=False
                )
                scores = test_scores(model, result.state, test_data, precision)
                accuracies.append(100 * scores["accuracy"])
                kept.append(stopper.best_epoch)
            means[precision] = statistics.mean(accuracies)
            cells = " | ".join(f"{a:.2f}" for a in accuracies)
            print(f"| {name} | {precision} | {cells} | **{means[precision]:.2f}** | "
                  f"{statistics.mean(kept):.1f} |  ({time.perf_counter() - started:.0f} s)",
                  flush=True)  # fmt: skip
        difference = means["bfloat16"] - means["float32"]
        print(f"| {name} | bfloat16 - float32 | | | | | | **{difference:+.2f} points** | |")


if __name__ == "__main__":
    main()
