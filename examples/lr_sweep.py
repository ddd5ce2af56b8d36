"""A learning-rate sweep in one call: 16 digits MLPs, 16 learning rates, one compiled program.

`train.fit_ensemble` trains every member at once (each with its own seed and learning rate),
stops each on its own when its validation loss stops improving, and returns them stacked; the
plot shows the final validation accuracy against the learning rate.

    python examples/lr_sweep.py [--members 16] [--epochs 30] [--plot lr_sweep.png]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import losses, nn, optim, train

from digits import splits


def save_sweep_plot(rates: np.ndarray, accuracy: np.ndarray, path: str) -> None:
    """Validation accuracy against learning rate (log scale); optional: needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed, so no plot; `pip install -e '.[examples]'` adds it.")
        return
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.semilogx(rates, accuracy, "o-")
    axis.set_xlabel("learning rate (Adam)")
    axis.set_ylabel("validation accuracy (best epoch)")
    axis.set_title(f"{len(rates)} digits MLPs trained at once")
    axis.grid(alpha=0.3, which="both")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    print(f"saved the sweep to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="lr_sweep.png")
    args = parser.parse_args()

    train_data, val_data, _ = splits(jax.random.key(args.seed))
    rates = np.geomspace(1e-4, 3e-1, args.members).astype(np.float32)
    start = time.perf_counter()
    result = train.fit_ensemble(
        nn.MLP((64,), 10),
        losses.softmax_cross_entropy,
        optim.adam(),
        train_data,
        keys=jax.random.split(jax.random.key(args.seed + 1), args.members),
        epochs=args.epochs,
        batch_size=32,
        hyperparams={"learning_rate": jnp.asarray(rates)},
        validation_data=val_data,
        metrics=("accuracy",),
        early_stopping=train.EarlyStopping(5, monitor="val_loss"),
    )
    seconds = time.perf_counter() - start
    # each member's kept state is its best epoch: score it again
    accuracy = np.array([
        train.evaluate(nn.MLP((64,), 10), train.ensemble_member(result.state, i), val_data,
                       metrics=("accuracy",))["accuracy"]
        for i in range(args.members)
    ])  # fmt: skip
    print(f"{args.members} members trained in {seconds:.1f} s (compilation included)")
    print("learning rate   validation accuracy")
    for rate, value in zip(rates, accuracy, strict=True):
        print(f"  {rate:9.2e}       {value:.4f}")
    best = int(np.argmax(accuracy))
    print(f"best: learning rate {rates[best]:.2e}, validation accuracy {accuracy[best]:.4f}")
    save_sweep_plot(rates, accuracy, args.plot)


if __name__ == "__main__":
    main()
