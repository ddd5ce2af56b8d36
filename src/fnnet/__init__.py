"""fnnet: neural networks in JAX as pure functions over parameter pytrees.

Modules: `nn` (layers), `activations`, `initializers`, `losses`, `optim` (optimizers and
schedules), `metrics`, `data`, `datasets`, `train`, `checkpoint` (saving and loading trees).
"""

from fnnet import (
    activations,
    checkpoint,
    data,
    datasets,
    initializers,
    losses,
    metrics,
    nn,
    optim,
    train,
)

__version__ = "0.1.0"

__all__ = [
    "activations",
    "checkpoint",
    "data",
    "datasets",
    "initializers",
    "losses",
    "metrics",
    "nn",
    "optim",
    "train",
]
