"""fit_ensemble: K models in one program, each equal to its own fit."""

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


def ensemble(**kwargs):
    options = {**COMMON, "hyperparams": {"learning_rate": RATES}, **kwargs}
    return train.fit_ensemble(MODEL, CE, optim.sgd(0.1, momentum=0.9), (X, Y), keys=KEYS, **options)


def single(i, **kwargs):
    optimizer = optim.sgd(float(RATES[i]), momentum=0.9)
    return train.fit(MODEL, CE, optimizer, (X, Y), key=KEYS[i], **{**COMMON, **kwargs})


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
