"""fnnet: neural networks in JAX as pure functions over parameter pytrees.

Modules: `nn` (layers), `activations`, `initializers`, `losses`.
"""

from fnnet import activations, initializers, losses, nn, optim

__version__ = "0.1.0"

__all__ = ["activations", "initializers", "losses", "nn", "optim"]
