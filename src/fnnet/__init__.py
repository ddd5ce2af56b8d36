"""fnnet: neural networks in JAX as pure functions over parameter pytrees.

Modules: `nn` (layers), `activations`, `initializers`, `losses`, `optim` (optimizers and
schedules), `metrics`, `data`, `datasets`, `train`.
"""

from fnnet import activations, data, datasets, initializers, losses, metrics, nn, optim, train

__version__ = "0.1.0"

__all__ = [
    "activations",
    "data",
    "datasets",
    "initializers",
    "losses",
    "metrics",
    "nn",
    "optim",
    "train",
]
