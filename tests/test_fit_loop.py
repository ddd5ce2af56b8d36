"""fit as an open loop: callbacks, continuing from a state, accumulation, live progress."""

import csv
import io

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import losses, nn, optim, train
from fnnet.optim import schedules


def blobs(n=96, features=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(scale=3, size=(classes, features))[y] + rng.normal(size=(n, features))
    return x.astype(np.float32), y.astype(np.int32)


def fit(**overrides):
    x, y = blobs()
    arguments = dict(
        model=nn.MLP((16,), 3, drop_rate=0.2),
        loss_fn=losses.softmax_cross_entropy,
        optimizer=optim.adam(1e-2),
        train_data=(x[:72], y[:72]),
        validation_data=(x[72:], y[72:]),
        epochs=2,
        batch_size=16,
        key=jax.random.key(0),
        verbose=False,
    )
    return train.fit(**{**arguments, **overrides})


# ------------------------------------------------------------------ continuing from a state


@pytest.mark.parametrize("dispatch", ["scan", "step"])
def test_two_fits_of_two_epochs_equal_one_of_four_bit_for_bit(dispatch):
    whole = fit(epochs=4, dispatch=dispatch)
    first = fit(epochs=2, dispatch=dispatch)
    second = fit(epochs=2, initial_state=first.state, key=None, dispatch=dispatch)
    chex.assert_trees_all_equal(second.state, whole.state)
    assert first.history["loss"] + second.history["loss"] == whole.history["loss"]


def test_fine_tuning_with_another_learning_rate_continues_the_moments():
    first = fit(epochs=2)
    tuned = optim.with_hyperparams(first.state.opt_state, learning_rate=1e-3)
    second = fit(epochs=1, initial_state=first.state._replace(opt_state=tuned))
    assert int(second.state.step) == int(first.state.step) + 4  # the given state is not donated
    assert second.history["lr"] == [pytest.approx(1e-3)]


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (
            {"model": nn.MLP((16,), 5, drop_rate=0.2)},
            ValueError,
            r"fit: `initial_state` does not fit this model and optimizer: at \.opt_state\.params\[3\]\['b'\] \(the model's params\) it holds \(3,\) float32, expected \(5,\) float32",
        ),
        (
            {"optimizer": optim.sgd(0.1, momentum=0.9)},
            ValueError,
            r"`initial_state` does not fit this model and optimizer: it has no leaf at \.opt_state\.momentum\[0\]\['b'\] \(the optimizer's state\)",
        ),
        (
            {"train_data": (np.zeros((16, 4), np.float32), np.zeros(16, np.int32))},
            ValueError,
            r"at \.opt_state\.params\[0\]\['w'\] \(the model's params\) it holds \(5, 16\) float32, expected \(4, 16\)",
        ),
    ],
)
def test_an_initial_state_of_another_model_or_optimizer_is_refused(overrides, error, match):
    state = fit(epochs=1).state
    traces = []

    def loss(outputs, targets):
        traces.append(1)
        return losses.softmax_cross_entropy(outputs, targets)

    with pytest.raises(error, match=match):
        fit(initial_state=state, loss_fn=loss, validation_data=None, **overrides)
    assert traces == []  # refused before anything was traced or compiled


def test_initial_state_must_be_a_train_state_and_a_key_is_needed_without_it():
    with pytest.raises(TypeError, match="fit: `initial_state` must be a TrainState"):
        fit(initial_state={"params": 1})
    with pytest.raises(TypeError, match=r"fit: `key` must be a JAX PRNG key, got None"):
        fit(key=None)


# ------------------------------------------------------------------ callbacks


class Recorder(train.Callback):
    def __init__(self, stop_at=None):
        self.calls, self.stop_at = [], stop_at

    def on_train_begin(self, state):
        self.calls.append(("begin", int(state.step)))

    def on_epoch_end(self, epoch, state, logs):
        self.calls.append(("epoch", epoch, sorted(logs)))
        if epoch == self.stop_at:
            self.stop_training = True

    def on_train_end(self, state):
        self.calls.append(("end", int(state.step)))


def test_callbacks_are_called_in_order_with_the_history_row():
    first, second = Recorder(), Recorder(stop_at=2)
    result = fit(epochs=5, callbacks=[first, second], metrics=("accuracy",))
    keys = ["accuracy", "loss", "lr", "seconds", "val_accuracy", "val_loss"]
    expected = [("begin", 0), ("epoch", 1, keys), ("epoch", 2, keys), ("end", 8)]
    assert first.calls == second.calls == expected  # stopped after epoch 2
    assert len(result.history["loss"]) == 2
    second.stop_at = None  # reused in a new run: its stop flag from the last run is reset
    assert len(fit(epochs=3, callbacks=[second]).history["loss"]) == 3


def test_a_callback_can_replace_the_state():
    class HalveRate(train.Callback):
        def on_epoch_end(self, epoch, state, logs):
            rate = optim.hyperparams(state.opt_state)["learning_rate"]
            return state._replace(
                opt_state=optim.with_hyperparams(state.opt_state, learning_rate=rate / 2)
            )

    result = fit(epochs=3, callbacks=[HalveRate()])
    assert result.history["lr"] == pytest.approx([5e-3, 2.5e-3, 1.25e-3])


def test_a_raising_callback_reraises_with_the_last_completed_epoch():
    class Fails(train.Callback):
        def on_epoch_end(self, epoch, state, logs):
            if epoch == 2:
                raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full") as info:
        fit(epochs=4, callbacks=[Fails()])
    result = info.value.result
    assert len(result.history["loss"]) == 2 and int(result.state.step) == 8
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(result.state.params))


def test_early_stopping_works_as_a_callback_too():
    kwargs = dict(epochs=60, optimizer=optim.adam(5e-2))
    as_argument = fit(early_stopping=train.EarlyStopping(3), **kwargs)
    as_callback = fit(callbacks=[train.EarlyStopping(3)], **kwargs)
    assert as_argument.history["val_loss"] == as_callback.history["val_loss"]
    assert len(as_callback.history["val_loss"]) < 60
    chex.assert_trees_all_equal(as_argument.state.params, as_callback.state.params)


def test_reduce_lr_on_plateau_lowers_the_rate_and_history_shows_it():
    plateau = train.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0)
    result = fit(epochs=3, callbacks=[plateau])  # min_delta 10: no epoch improves after the 1st
    assert result.history["lr"] == pytest.approx([1e-2, 5e-3, 2.5e-3])


def test_reduce_lr_on_plateau_scales_a_schedule():
    plateau = train.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0)
    result = fit(epochs=2, optimizer=optim.sgd(schedules.constant(0.1)), callbacks=[plateau])
    assert result.history["lr"] == pytest.approx([0.1, 0.05])
    assert float(optim.hyperparams(result.state.opt_state)["learning_rate_scale"]) == 0.5


def test_csv_logger_writes_a_row_per_epoch(tmp_path):
    path = tmp_path / "log.csv"

    class ReadsTheFile(train.Callback):  # runs after the logger: the row is on disk already
        def on_epoch_end(self, epoch, state, logs):
            with open(path) as file:
                assert len(list(csv.reader(file))) == epoch + 1

    result = fit(epochs=3, metrics=("f1",), callbacks=[train.CSVLogger(path), ReadsTheFile()])
    with open(path) as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["epoch", "loss", "f1", "val_loss", "val_f1", "lr", "seconds"]
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    for name in ("loss", "val_f1", "lr", "seconds"):
        np.testing.assert_allclose([float(row[name]) for row in rows], result.history[name])
    fit(epochs=1, callbacks=[train.CSVLogger(path, append=True)])
    with open(path) as file:
        assert len(list(csv.reader(file))) == 5  # header, 3 rows, 1 appended
    fit(epochs=1, callbacks=[train.CSVLogger(path)])
    with open(path) as file:
        assert len(list(csv.reader(file))) == 2  # started anew


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (
            {"callbacks": [train.EarlyStopping]},
            TypeError,
            r"fit: callback 1 is the class `EarlyStopping`, expected an instance",
        ),
        ({"callbacks": [print]}, TypeError, r"fit: callback 1 must be a `train.Callback` instance"),
        (
            {"callbacks": "csv"},
            TypeError,
            "fit: `callbacks` must be a sequence of Callback instances, got str",
        ),
        ({"early_stopping": 3}, TypeError, "fit: `early_stopping` must be an EarlyStopping"),
        (
            {"checkpoint": "ckpts"},
            TypeError,
            "fit: `checkpoint` must be a train.Checkpoint, got 'ckpts'",
        ),
        (
            {"early_stopping": (stopper := train.EarlyStopping(2)), "callbacks": [stopper]},
            ValueError,
            r"fit: callback 1 \(EarlyStopping\) is given twice",
        ),
        (
            {"callbacks": [train.ReduceLROnPlateau(monitor="val_accuracy")]},
            ValueError,
            r"fit: ReduceLROnPlateau monitors 'val_accuracy', which this run does not record; choose one of \['loss', 'val_loss'\]",
        ),
        (
            {"accumulate_steps": 0},
            ValueError,
            "fit: `accumulate_steps` must be a positive int, got 0",
        ),
        (
            {"accumulate_steps": 1.5},
            TypeError,
            r"fit: `accumulate_steps` must be a positive int, got 1.5 \(float\)",
        ),
        (
            {"accumulate_steps": 5},
            ValueError,
            "fit: `accumulate_steps` must be at most the 4 mini-batches of an epoch, got 5",
        ),
    ],
)
def test_fit_loop_bad_input(overrides, error, match):
    with pytest.raises(error, match=match):
        fit(**overrides)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (
            lambda: train.ReduceLROnPlateau(factor=1.0),
            ValueError,
            r"`factor` must be a number in \(0, 1\), got 1.0",
        ),
        (
            lambda: train.ReduceLROnPlateau(patience=-1),
            ValueError,
            "`patience` must be an int >= 0, got -1",
        ),
        (
            lambda: train.ReduceLROnPlateau(min_lr="0"),
            TypeError,
            "`min_lr` must be a finite number >= 0",
        ),
        (lambda: train.CSVLogger(3), TypeError, "CSVLogger: `path` must be a str or path, got 3"),
        (
            lambda: train.EarlyStopping(2, monitor=3),
            TypeError,
            "EarlyStopping: `monitor` must be a history key",
        ),
    ],
)
def test_callback_arguments_are_checked(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ------------------------------------------------------------------ gradient accumulation


def test_accumulated_micro_batches_equal_one_step_on_their_concatenation(key):
    x, y = blobs(32)
    model, optimizer = nn.MLP((16,), 3), optim.sgd(0.5, momentum=0.9)
    big = train.make_train_step(model, losses.softmax_cross_entropy, optimizer)
    accumulated = train.make_train_step(
        model, losses.softmax_cross_entropy, optimizer, accumulate_steps=4
    )
    a = train.init_state(model, optimizer, key, (5,))
    b = train.init_state(model, optimizer, key, (5,))
    for _ in range(3):
        a, loss_a = big(a, (x, y))
        b, loss_b = accumulated(b, (x, y))
        np.testing.assert_allclose(loss_b, loss_a, rtol=1e-5)
    assert int(a.step) == int(b.step) == 3
    chex.assert_trees_all_close(b.params, a.params, rtol=1e-5, atol=1e-6)


def test_fit_with_accumulation_equals_fit_with_the_larger_batch():
    # SGD, not Adam: Adam would turn the rounding noise of a near-zero gradient into a full step.
    optimizer = optim.sgd(0.1, momentum=0.9)
    kwargs = dict(model=nn.MLP((16,), 3), optimizer=optimizer, validation_data=None, epochs=2)
    accumulated = fit(batch_size=8, accumulate_steps=3, **kwargs)
    large = fit(batch_size=24, **kwargs)
    assert int(accumulated.state.step) == int(large.state.step) == 6  # 72 samples: 3 updates
    # Different shuffles group different samples: compare against the same groups by hand.
    x, y = blobs()
    state = train.init_state(nn.MLP((16,), 3), optimizer, jax.random.key(0), (5,))
    step = train.make_train_step(nn.MLP((16,), 3), losses.softmax_cross_entropy, optimizer)
    for _ in range(2):
        groups = np.asarray(train.shuffle_indices(state, 72, batch_size=8))[:9].reshape(3, 24)
        for rows in groups:
            state, _ = step(state, (x[rows], y[rows]))
    chex.assert_trees_all_close(accumulated.state.params, state.params, rtol=1e-5, atol=1e-6)


def test_accumulating_train_step_needs_a_divisible_batch(key):
    model, optimizer = nn.Dense(2), optim.sgd(0.1)
    step = train.make_train_step(model, losses.mse, optimizer, accumulate_steps=3)
    state = train.init_state(model, optimizer, key, (3,))
    with pytest.raises(
        ValueError, match="the batch of 4 samples must split into `accumulate_steps` 3"
    ):
        step(state, (jnp.ones((4, 3)), jnp.ones((4, 2))))


# ------------------------------------------------------------------ progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_live_progress_on_a_terminal_gives_the_same_result(monkeypatch):
    optimizer = optim.sgd(0.1, momentum=0.9)  # linear in the gradients: rounding stays small
    quiet = fit(epochs=2, batch_size=4, optimizer=optimizer)
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    monkeypatch.setattr("fnnet.train.progress.LIVE_AFTER_SECONDS", -1.0)  # every epoch live
    live = fit(epochs=2, batch_size=4, optimizer=optimizer, verbose=True)
    assert int(live.state.step) == int(quiet.state.step) == 36
    chex.assert_trees_all_close(live.state.params, quiet.state.params, rtol=1e-5, atol=1e-6)
    printed = terminal.getvalue()
    assert "\repoch 1/2  1/18 updates  loss " in printed or "\repoch 1/2  2/18 updates" in printed
    assert "s left\x1b[K" in printed
    assert printed.count("\n") == 4  # start line, totals, one line per epoch


def test_progress_is_one_line_per_epoch_off_a_terminal(capsys):
    fit(epochs=3, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and "\r" not in "".join(lines)


def test_chunked_epoch_equals_the_whole_epoch(key):
    x, y = blobs()
    model, optimizer = nn.MLP((16,), 3, drop_rate=0.2), optim.sgd(0.1, momentum=0.9)
    for dispatch in ("scan", "step"):
        runner = train.epoch_runner(
            model, losses.softmax_cross_entropy, optimizer, batch_size=8, dispatch=dispatch
        )
        a = train.init_state(model, optimizer, key, (5,))
        b = train.init_state(model, optimizer, key, (5,))
        reports = []
        a, losses_a = train.run_epoch(runner, a, x, y)
        b, losses_b = train.run_epoch(
            runner, b, x, y, chunk_size=5, on_chunk=lambda *r, seen=reports: seen.append(r[:2])
        )
        assert int(a.step) == int(b.step) == 12
        chex.assert_trees_all_close(a.params, b.params, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(losses_a, losses_b, rtol=1e-5)
        assert reports == [(5, 12), (10, 12), (12, 12)]


# ------------------------------------------------------------------ summary


def test_summary_lists_params_state_totals_output_and_flops():
    model = nn.serial(
        nn.Conv2D(4, 3, use_bias=False), nn.BatchNorm(), nn.Relu(), nn.Flatten(), nn.Dense(3)
    )
    text = nn.summary(model, (6, 6, 1))
    assert "[0]['w']      (3, 3, 1, 4)  float32  36" in text
    assert "[1]['mean']  (4,)   float32  4" in text  # non-trainable state
    assert "[3]   Flatten    (batch, 144)      0" in text  # per-layer output shapes
    assert "model: 479 parameters (1.9 KiB), 8 non-trainable values (32 B)" in text
    assert "output: (batch, 3)" in text
    # FLOPs of the forward pass: conv 2*36*36 + dense 2*144*3, plus the elementwise work.
    flops = float(text.splitlines()[-1].split()[1].replace(",", ""))
    assert 2 * 36 * 36 + 2 * 144 * 3 <= flops < 2 * (2 * 36 * 36 + 2 * 144 * 3)


def test_summary_allocates_nothing_for_a_model_too_large_for_memory():
    text = nn.summary(nn.MLP((65536, 65536), 10), (65536,))  # 8.6e9 params, 32 GiB of float32
    assert "model: 8,590,721,034 parameters (32.0 GiB)" in text


def test_summary_bad_input():
    with pytest.raises(TypeError, match="summary: `input_shape` must be a tuple of ints"):
        nn.summary(nn.Dense(3), 5)
