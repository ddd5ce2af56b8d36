"""Optimizers as pure functions: ``state = optimizer.update(state, grads)``.

    opt_state = optimizer.init(params)
    opt_state = optimizer.update(opt_state, grads)     # (state, grads) -> state
    params = opt_state.params                          # opt_state.step counts updates applied

With the same hyperparameters each optimizer follows the trajectory of PyTorch's optimizer of
the same name (``learning_rate`` = ``lr``, ``b1, b2`` = ``betas``, ``decay`` = ``alpha``).
Float hyperparameters live in the state: `hyperparams(opt_state)` reads them and
`with_hyperparams(opt_state, learning_rate=...)` replaces them without a retrace.
"""

from fnnet.optim import schedules
from fnnet.optim._base import Optimizer
from fnnet.optim._hyperparams import hyperparams, with_hyperparams
from fnnet.optim.adam import AdamState, adam, adamw
from fnnet.optim.clip import clip_by_global_norm, global_norm
from fnnet.optim.rmsprop import RMSpropState, rmsprop
from fnnet.optim.sgd import SGDState, sgd

__all__ = [
    "AdamState",
    "Optimizer",
    "RMSpropState",
    "SGDState",
    "adam",
    "adamw",
    "clip_by_global_norm",
    "global_norm",
    "hyperparams",
    "rmsprop",
    "schedules",
    "sgd",
    "with_hyperparams",
]
