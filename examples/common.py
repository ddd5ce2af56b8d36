"""Helpers shared by the examples: test-set reports and optional training-curve plots."""

from __future__ import annotations

from fnnet import losses, train

PRECISIONS = ("float32", "highest", "bfloat16")


def test_scores(model, state, test_data, precision: str = "float32",
                transform=None) -> dict[str, float]:  # fmt: skip
    """A classifier's loss, accuracy and macro precision, recall and F1 on the test set."""
    return train.evaluate(
        model,
        state,
        test_data,
        loss_fn=losses.softmax_cross_entropy,
        metrics=("accuracy", "precision", "recall", "f1"),
        precision=precision,
        transform=transform,
    )


def print_test_scores(
    model, state, test_data, heading: str, precision: str = "float32", transform=None
) -> dict[str, float]:
    """Evaluates a classifier on the test set and prints its loss, accuracy, P, R and F1."""
    scores = test_scores(model, state, test_data, precision, transform)
    print(heading)
    print("  " + "  ".join(f"{name} {value:.4f}" for name, value in scores.items()))
    return scores


def save_curves(
    history: dict[str, list[float]],
    path: str,
    title: str,
    *,
    best_epoch: int = 0,
) -> None:
    """Saves the loss (and, if recorded, accuracy and F1) curves of a `fit` history as a PNG.

    A loss that falls over more than a decade is drawn on a log scale; `best_epoch` (from
    ``EarlyStopping.best_epoch``, 0 for none) is marked as the epoch whose state was kept.
    Optional: without matplotlib it says so and returns.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed, so no plot; `pip install -e '.[examples]'` adds it.")
        return
    panels = [name for name in ("loss", "accuracy", "f1") if name in history]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for axis, name in zip(axes[0], panels, strict=True):
        epochs = range(1, len(history[name]) + 1)
        curves = [history[name]] + ([history[f"val_{name}"]] if f"val_{name}" in history else [])
        axis.plot(epochs, history[name], label=f"training {name}")
        if len(curves) > 1:
            axis.plot(epochs, curves[1], label=f"validation {name}")
        values = [v for curve in curves for v in curve if v > 0]
        if name == "loss" and values and max(values) > 10 * min(values):
            axis.set_yscale("log")
        if best_epoch:
            axis.axvline(
                best_epoch, color="gray", linestyle="--", label=f"kept: epoch {best_epoch}"
            )
        axis.set_xlabel("epoch")
        axis.set_ylabel(name + (" (log scale)" if axis.get_yscale() == "log" else ""))
        axis.set_title(name)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    print(f"saved the training curves to {path}")
