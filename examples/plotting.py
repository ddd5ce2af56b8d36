"""Training-curve plots for the examples; optional: without matplotlib they say so and go on."""

from __future__ import annotations


def save_curves(history: dict[str, list[float]], path: str, title: str) -> None:
    """Saves the loss (and, if recorded, accuracy) curves of a `fit` history as a PNG."""
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
