"""Helpers shared by the examples: test-set reports and optional training-curve plots."""

from __future__ import annotations

from fnnet import losses, train


def print_test_scores(model, state, test_data, heading: str) -> dict[str, float]:
    """Evaluates a classifier on the test set and prints its loss, accuracy, P, R and F1."""
    scores = train.evaluate(
        model,
        state,
        test_data,
        loss_fn=losses.softmax_cross_entropy,
        metrics=("accuracy", "precision", "recall", "f1"),
    )
    print(heading)
    print("  " + "  ".join(f"{name} {value:.4f}" for name, value in scores.items()))
    return scores


def save_curves(history: dict[str, list[float]], path: str, title: str) -> None:
    """Saves the loss (and, if recorded, accuracy) curves of a `fit` history as a PNG.

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
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for axis, name in zip(axes[0], panels, strict=True):
        epochs = range(1, len(history[name]) + 1)
        axis.plot(epochs, history[name], label=f"train {name}")
        if f"val_{name}" in history:
            axis.plot(epochs, history[f"val_{name}"], label=f"validation {name}")
        axis.set_xlabel("epoch")
        axis.set_title(name)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    print(f"saved the training curves to {path}")
