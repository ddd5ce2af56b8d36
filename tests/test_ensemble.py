"""fit_ensemble: K models in one program, each equal to its own fit."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import losses, nn, optim, train

X = np.random.default_rng(0).normal(size=(96, 5)).astype(np.float32)
Y = (np.arange(96) % 3).astype(np.int32)
MODEL = nn.MLP((12,), 3)
CE = losses.softmax_cross_entropy
RATES = jnp.array([0.05, 0.1, 0.2])
KEYS = jax.random.split(jax.random.key(0), 3)
COMMON = dict(epochs=4, batch_size=16, validation_data=(X[:40], Y[:40]), verbose=False)


def ensemble(data=(X, Y), **kwargs):
    options = {**COMMON, "hyperparams": {"learning_rate": RATES}, **kwargs}
    return train.fit_ensemble(MODEL, CE, optim.sgd(0.1, momentum=0.9), data, keys=KEYS, **options)


def single(i, data=(X, Y), **kwargs):
    optimizer = optim.sgd(float(RATES[i]), momentum=0.9)
    return train.fit(MODEL, CE, optimizer, data, key=KEYS[i], **{**COMMON, **kwargs})


def assert_params_close(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_each_member_equals_its_own_fit():
    result = ensemble(metrics=("accuracy",))
    assert all(leaf.shape[0] == 3 for leaf in jax.tree.leaves(result.state.opt_state))
    assert set(result.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"}
    assert all(value.shape == (3,) for value in result.history["val_loss"])
    for i in range(3):
        alone = single(i, metrics=("accuracy",))
        member = train.ensemble_member(result.state, i)
        assert int(member.step) == int(alone.state.step) == 4 * 6
        assert_params_close(member.params, alone.state.params)
        np.testing.assert_allclose(
            [row[i] for row in result.history["val_loss"]], alone.history["val_loss"], rtol=1e-5
        )


def test_early_stopping_runs_per_member_and_keeps_each_best_state():
    stop = dict(early_stopping=train.EarlyStopping(1, monitor="val_loss"), epochs=30)
    result = ensemble(**stop, hyperparams={"learning_rate": jnp.array([0.5, 1.0, 2.0])})
    lengths = []
    for i, rate in enumerate([0.5, 1.0, 2.0]):
        alone = train.fit(MODEL, CE, optim.sgd(rate, momentum=0.9), (X, Y), key=KEYS[i],
                          **{**COMMON, **stop})  # fmt: skip
        recorded = np.array([row[i] for row in result.history["val_loss"]])
        lengths.append(len(alone.history["val_loss"]))
        np.testing.assert_allclose(recorded[: lengths[-1]], alone.history["val_loss"], rtol=1e-5)
        assert np.isnan(recorded[lengths[-1] :]).all()  # NaN after the member stopped
        assert_params_close(train.ensemble_member(result.state, i).params, alone.state.params)
    assert len(result.history["val_loss"]) == max(lengths) < 30
    assert len(set(lengths)) > 1  # the members did stop at different epochs


def test_a_diverging_member_stops_alone_with_its_last_finite_state():
    result = ensemble(hyperparams={"learning_rate": jnp.array([0.1, 1e30, 0.1])})
    losses_by_epoch = np.stack(result.history["loss"])
    assert np.isnan(losses_by_epoch[:, 1]).all() and np.isfinite(losses_by_epoch[:, [0, 2]]).all()
    diverged = train.ensemble_member(result.state, 1)
    assert all(bool(jnp.isfinite(leaf).all()) for leaf in jax.tree.leaves(diverged.params))
    assert len(result.history["loss"]) == 4


def test_callbacks_of_ones_own_see_one_value_per_member():
    class Record(train.Callback):
        def on_epoch_end(self, epoch, state, logs):
            self.seen = (epoch, logs["val_loss"].shape, state.step.shape)

    record = Record()
    ensemble(callbacks=[record])
    assert record.seen == (4, (3,), (3,))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"keys": jax.random.key(0)}, TypeError, r"`keys` must be a 1-D array of K PRNG keys"),
        ({"keys": [1, 2]}, TypeError, r"`keys` must be a 1-D array of K PRNG keys"),
        (
            {"hyperparams": {"learning_rate": jnp.ones(2)}},
            ValueError,
            r"`learning_rate` must have the stored shape \(3,\)",
        ),
        ({"hyperparams": {"lr": jnp.ones(3)}}, ValueError, r"unknown hyperparameter 'lr'"),
        ({"hyperparams": [0.1]}, TypeError, r"`hyperparams` must be a dict"),
        (
            {"callbacks": [train.EarlyStopping(2)]},
            TypeError,
            r"callback 1 \(EarlyStopping\) reads one model's scores",
        ),
        (
            {"early_stopping": train.EarlyStopping},
            TypeError,
            r"`early_stopping` must be an EarlyStopping such as `train.EarlyStopping\(patience=5\)`, got type",
        ),
        (
            {"early_stopping": train.EarlyStopping(2, monitor="val_f1")},
            ValueError,
            r"EarlyStopping monitors 'val_f1', which this run does not record",
        ),
        ({"batch_size": 0}, ValueError, r"`batch_size`"),
        ({"epochs": 0}, ValueError, r"`epochs`"),
        ({"mesh": "data"}, TypeError, r"`mesh` must be a jax.sharding.Mesh"),
        ({"data_placement": "disk"}, ValueError, r"`data_placement` must be one of"),
        ({"prefetch": -1}, ValueError, r"`prefetch` must be a non-negative int"),
        ({"steps_per_execution": 0}, ValueError, r"`steps_per_execution`"),
        ({"transform": "scale"}, TypeError, r"`transform` must be a function"),
        ({"transform": lambda x: x[0]}, ValueError, r"`transform` must keep the batch axis"),
    ],
)
def test_bad_ensemble_input_is_refused_before_training(kwargs, error, match):
    options = {"keys": KEYS, "epochs": 1, "batch_size": 16, "verbose": False, **kwargs}
    with pytest.raises(error, match=match):
        train.fit_ensemble(MODEL, CE, optim.sgd(0.1), (X, Y), **options)


def test_ensemble_member_checks_its_index():
    state = jax.vmap(lambda k: train.init_state(MODEL, optim.sgd(0.1), k, (5,)))(KEYS)
    assert train.ensemble_member(state, -1).params[0]["w"].shape == (5, 12)
    with pytest.raises(
        ValueError, match=r"`i` must lie in \[-3, 3\) for an ensemble of 3 members, got 3"
    ):
        train.ensemble_member(state, 3)
    with pytest.raises(TypeError, match=r"`i` must be an int, got 1.0 \(float\)"):
        train.ensemble_member(state, 1.0)


def test_the_callers_arrays_and_the_returned_state_stay_usable():
    rates = jnp.array([0.05, 0.1, 0.2])
    before = np.asarray(rates).copy()
    result = ensemble(hyperparams={"learning_rate": rates}, early_stopping=train.EarlyStopping(2))
    np.testing.assert_array_equal(rates, before)  # not donated with the state
    member = train.ensemble_member(result.state, 0)
    assert train.predict(MODEL, member, X).shape == (96, 3)
    assert jax.random.key_data(result.state.key).shape == (3, 2)


# --- streamed data ("Data beyond memory") ------------------------------------------------

PIXELS = np.random.default_rng(1).integers(0, 256, size=(96, 5), dtype=np.uint8)


def scaled(x):
    return x / 255.0


def on_disk(tmp_path, *arrays):
    mapped = []
    for i, array in enumerate(arrays):
        np.save(tmp_path / f"{i}.npy", array)
        mapped.append(np.load(tmp_path / f"{i}.npy", mmap_mode="r"))
    return tuple(mapped)


def test_a_memmap_streams_each_members_own_order_with_the_device_paths_params(tmp_path, capsys):
    chunked = dict(steps_per_execution=4, transform=scaled, metrics=("accuracy",))
    validation = on_disk(tmp_path, PIXELS[:40], Y[:40])
    streamed = ensemble(on_disk(tmp_path, PIXELS, Y), **chunked, verbose=True,
                        validation_data=validation)  # fmt: skip
    assert "3 members, 96 samples, 6 steps of 16 per epoch, streamed from the host in chunks " \
        "of 4 updates" in capsys.readouterr().out  # fmt: skip
    in_memory = ensemble((PIXELS, Y), **chunked, validation_data=(PIXELS[:40], Y[:40]))
    chex.assert_trees_all_equal(streamed.state, in_memory.state)  # the same program per chunk
    for name in ("loss", "accuracy", "val_accuracy"):
        np.testing.assert_array_equal(streamed.history[name], in_memory.history[name])
    np.testing.assert_allclose(streamed.history["val_loss"], in_memory.history["val_loss"],
                               rtol=1e-6)  # fmt: skip
    whole_epoch = ensemble((PIXELS, Y), transform=scaled)
    assert_params_close(streamed.state.params, whole_epoch.state.params)
    for i in range(3):  # and each member is its own fit, streamed the same way
        alone = single(i, (PIXELS, Y), transform=scaled, data_placement="host")
        assert_params_close(train.ensemble_member(streamed.state, i).params, alone.state.params)


def test_a_streams_batches_are_shared_by_every_member_each_as_its_own_fit():
    batches = [(X[i : i + 16], Y[i : i + 16]) for i in range(0, 90, 16)]  # a last batch of 10
    validation = [(X[:40], Y[:40])]
    result = ensemble(batches, validation_data=validation, metrics=("f1",),
                         steps_per_execution=2)  # fmt: skip
    assert int(result.state.step[0]) == 4 * 6
    for i in range(3):
        alone = single(i, batches, validation_data=validation, metrics=("f1",),
                          steps_per_execution=2, batch_size=None)  # fmt: skip
        assert_params_close(train.ensemble_member(result.state, i).params, alone.state.params)
        for name in ("loss", "f1", "val_loss", "val_f1"):
            np.testing.assert_allclose([row[i] for row in result.history[name]],
                                       alone.history[name], rtol=1e-5)  # fmt: skip


def test_a_callable_stream_is_called_once_per_epoch():
    calls = []

    def epoch_batches(epoch):
        calls.append(epoch)
        return [(X[i : i + 16], Y[i : i + 16]) for i in range(0, 96, 16)]

    result = ensemble(epoch_batches, validation_data=None, metrics=("accuracy",))
    assert calls == [1, 2, 3, 4] and len(result.history["accuracy"]) == 4


def test_bad_streamed_data_names_the_sample_and_keeps_the_state_before_its_chunk(tmp_path):
    bad = X.copy()
    bad[70, 2] = np.nan
    with pytest.raises(ValueError, match=r"`train_data` holds NaN or inf in the inputs at "
                       r"sample 70 \(epoch 1\)") as caught:  # fmt: skip
        ensemble(on_disk(tmp_path, bad, Y), steps_per_execution=1)
    state = caught.value.result.state
    assert state.step.shape == (3,) and int(state.step.min()) >= 0
    assert all(bool(jnp.isfinite(leaf).all()) for leaf in jax.tree.leaves(state.params))
    batches = [(X[:16], Y[:16]), (X[16:32], np.full(16, 7, np.int32))]
    with pytest.raises(ValueError, match=r"a label outside the model's classes \[0, 3\) at "
                       r"batch 1, row 0"):  # fmt: skip
        ensemble(batches, validation_data=None, epochs=1)


def test_an_epoch_without_updates_is_an_error_for_fit_and_fit_ensemble():
    def empty_after_the_first(epoch):
        return [(X[:16], Y[:16])] if epoch == 1 else []

    for call in (ensemble, lambda data, **kw: single(0, data, batch_size=None, **kw)):
        with pytest.raises(ValueError, match=r"`train_data` gave no update in epoch 2") as caught:
            call(empty_after_the_first, validation_data=None)
        assert int(np.max(caught.value.result.state.step)) == 1
