"""Training: TrainState, compiled steps and epochs, fit, evaluate and predict.

state = init_state(model, optimizer, key, input_shape)
step = make_train_step(model, loss_fn, optimizer)          # (state, batch) -> (state, loss)
epoch = make_train_epoch(model, loss_fn, optimizer, batch_size=32)
result = fit(model, loss_fn, optimizer, (x, y), epochs=20, batch_size=32, key=key)
"""

from fnnet.train.evaluation import evaluate, predict
from fnnet.train.fit import EarlyStopping, FitResult, NonFiniteLossError, fit
from fnnet.train.state import TrainState, init_state
from fnnet.train.step import (
    make_stepwise_epoch,
    make_train_epoch,
    make_train_step,
    shuffle_indices,
)

__all__ = [
    "EarlyStopping",
    "FitResult",
    "NonFiniteLossError",
    "TrainState",
    "evaluate",
    "fit",
    "init_state",
    "make_stepwise_epoch",
    "make_train_epoch",
    "make_train_step",
    "predict",
    "shuffle_indices",
]
