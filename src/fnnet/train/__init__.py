"""Training: TrainState, compiled steps and epochs, callbacks, fit, evaluate and predict.

state = init_state(model, optimizer, key, input_shape)
step = make_train_step(model, loss_fn, optimizer)          # (state, batch) -> (state, loss)
epoch = make_train_epoch(model, loss_fn, optimizer, batch_size=32)
result = fit(model, loss_fn, optimizer, (x, y), epochs=20, batch_size=32, key=key,
             callbacks=[EarlyStopping(5), ReduceLROnPlateau(patience=2), CSVLogger("log.csv")])
"""

from fnnet.train.callbacks import Callback, CSVLogger, EarlyStopping, ReduceLROnPlateau
from fnnet.train.checkpointing import Checkpoint
from fnnet.train.ensemble import ensemble_member, fit_ensemble
from fnnet.train.epoch import (
    EpochRunner,
    epoch_runner,
    make_stepwise_epoch,
    make_train_epoch,
    run_epoch,
    shuffle_indices,
)
from fnnet.train.evaluation import evaluate, history_row, predict
from fnnet.train.fit import FitResult, NonFiniteLossError, fit
from fnnet.train.inputs import check_batching, check_model_fits_data, prepare_data
from fnnet.train.state import TrainState, check_state, init_state
from fnnet.train.step import make_train_step

__all__ = [
    "CSVLogger",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "EpochRunner",
    "FitResult",
    "NonFiniteLossError",
    "ReduceLROnPlateau",
    "TrainState",
    "check_batching",
    "check_model_fits_data",
    "check_state",
    "ensemble_member",
    "epoch_runner",
    "evaluate",
    "fit",
    "fit_ensemble",
    "history_row",
    "init_state",
    "make_stepwise_epoch",
    "make_train_epoch",
    "make_train_step",
    "predict",
    "prepare_data",
    "run_epoch",
    "shuffle_indices",
]
