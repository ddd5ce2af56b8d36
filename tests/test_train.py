import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import datasets, losses, nn, optim, train


def blobs(n=96, features=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centers = rng.normal(scale=3, size=(classes, features))
    x = centers[y] + rng.normal(size=(n, features))
    return x.astype(np.float32), y.astype(np.int32)


def model_with_dropout():
    return nn.MLP((16,), 3, drop_rate=0.3)


def fit(train_data, **overrides):
    """`train.fit` of a small classifier, quiet; `overrides` replace any argument."""
    arguments = dict(
        model=nn.MLP((16,), 3),
        loss_fn=losses.softmax_cross_entropy,
        optimizer=optim.adam(1e-2),
        train_data=train_data,
        epochs=2,
        batch_size=16,
        key=jax.random.key(0),
        verbose=False,
    )
    return train.fit(**{**arguments, **overrides})


def test_train_state_reads_through_to_the_optimizer_state(key):
    state = train.init_state(nn.MLP((4,), 2), optim.sgd(0.1), key, (3,))
    assert state.params is state.opt_state.params
    assert int(state.step) == 0 and state.step.dtype == jnp.int32
    chex.assert_shape(state.params[0]["w"], (3, 4))


def test_compiled_epoch_equals_the_same_steps_one_by_one(key):
    x, y = blobs()
    model, optimizer = model_with_dropout(), optim.adam(1e-2)
    epoch = train.make_train_epoch(model, losses.softmax_cross_entropy, optimizer, batch_size=10)
    step = train.make_train_step(model, losses.softmax_cross_entropy, optimizer)
    by_epoch = train.init_state(model, optimizer, key, (5,))
    by_step = train.init_state(model, optimizer, key, (5,))
    for _ in range(3):
        rows = np.asarray(train.shuffle_indices(by_step, len(x), batch_size=10))
        assert rows.shape == (9, 10) and len(np.unique(rows)) == 90  # 9 full batches, no repeats
        step_losses = []
        for indices in rows:
            by_step, loss = step(by_step, (x[indices], y[indices]))
            step_losses.append(float(loss))
        by_epoch, epoch_losses = epoch(by_epoch, jnp.asarray(x), jnp.asarray(y))
        np.testing.assert_allclose(epoch_losses, step_losses, rtol=1e-5)
    assert int(by_epoch.step) == int(by_step.step) == 27
    chex.assert_trees_all_close(by_epoch.params, by_step.params, rtol=1e-5, atol=1e-6)


def test_each_epoch_shuffles_differently(key):
    state = train.init_state(nn.MLP((4,), 3), optim.sgd(0.1), key, (5,))
    first = np.asarray(train.shuffle_indices(state, 40, batch_size=8))
    epoch = train.make_train_epoch(
        nn.MLP((4,), 3), losses.softmax_cross_entropy, optim.sgd(0.1), batch_size=8
    )
    x, y = blobs(40)
    state, _ = epoch(state, x, y)
    second = np.asarray(train.shuffle_indices(state, 40, batch_size=8))
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(np.sort(first.ravel()), np.arange(40))


def test_epoch_compiles_once_and_donates_the_state(key):
    traces = []

    def loss_fn(outputs, targets):
        traces.append(1)  # runs only while tracing
        return losses.softmax_cross_entropy(outputs, targets)

    x, y = blobs()
    epoch = train.make_train_epoch(nn.MLP((8,), 3), loss_fn, optim.adam(), batch_size=16)
    state = train.init_state(nn.MLP((8,), 3), optim.adam(), key, (5,))
    for _ in range(3):
        old = state
        state, _ = epoch(state, x, y)
    assert len(traces) == 1
    assert old.params[0]["w"].is_deleted()  # donated: the buffers were reused


def test_same_seed_gives_identical_parameters():
    x, y = blobs()
    kwargs = dict(epochs=3, batch_size=8, key=jax.random.key(7))
    a = fit((x, y), model=model_with_dropout(), **kwargs)
    b = fit((x, y), model=model_with_dropout(), **kwargs)
    chex.assert_trees_all_equal(a.state.params, b.state.params)
    c = fit((x, y), model=model_with_dropout(), **{**kwargs, "key": jax.random.key(8)})
    assert not np.array_equal(a.state.params[0]["w"], c.state.params[0]["w"])


def test_fit_history_metrics_and_progress_lines(capsys):
    x, y = blobs(120)
    result = fit(
        (x[:90], y[:90]),
        epochs=4,
        validation_data=(x[90:], y[90:]),
        metrics=("accuracy", "f1", lambda out, tgt: jnp.mean(out)),
        verbose=True,
    )
    assert list(result.history) == [
        "loss",
        "accuracy",
        "f1",
        "<lambda>",
        "val_loss",
        "val_accuracy",
        "val_f1",
        "val_<lambda>",
        "lr",
        "seconds",
    ]
    assert all(len(v) == 4 for v in result.history.values())
    assert result.history["lr"] == [pytest.approx(1e-2)] * 4
    assert result.history["loss"][-1] < result.history["loss"][0]
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "fit: 90 samples, 5 steps of 16 per epoch, each epoch one compiled program"
    assert lines[1] == "model: 147 parameters (588 B)"  # 5*16 + 16 + 16*3 + 3
    assert len(lines) == 6
    assert (
        lines[2].startswith("epoch 1/4  loss ")
        and "val_accuracy" in lines[2]
        and "s with compilation)" in lines[2]
    )
    # Fixed decimals per column: every epoch's accuracy has as many digits as the first's.
    widths = {len(re.search(r" accuracy (\S+)", line).group(1)) for line in lines[2:]}
    assert widths == {6}, lines
    final = train.evaluate(
        nn.MLP((16,), 3),
        result.state,
        (x[90:], y[90:]),
        loss_fn=losses.softmax_cross_entropy,
        metrics=("accuracy", "f1"),
    )
    assert final["loss"] == pytest.approx(result.history["val_loss"][-1], rel=1e-5)
    assert final["accuracy"] == pytest.approx(result.history["val_accuracy"][-1])
    train.fit(
        nn.MLP((4,), 3),
        losses.softmax_cross_entropy,
        optim.sgd(0.1),
        (x, y),
        epochs=2,
        batch_size=32,
        key=jax.random.key(0),
        verbose=False,
    )
    assert capsys.readouterr().out == ""


def overfitting_run(restore_best, patience=3):
    """A wide MLP on 24 noisy samples: the validation loss falls, then rises."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(224, 2)).astype(np.float32)
    y = (np.sin(2 * x[:, :1]) + 0.5 * rng.normal(size=(224, 1))).astype(np.float32)
    return train.fit(
        nn.MLP((256, 256), 1),
        losses.mse,
        optim.adam(1e-2),
        (x[:24], y[:24]),
        epochs=200,
        batch_size=8,
        key=jax.random.key(0),
        validation_data=(x[24:], y[24:]),
        verbose=False,
        early_stopping=train.EarlyStopping(patience, restore_best=restore_best),
    ), (x[24:], y[24:])


def test_early_stopping_restores_the_best_epoch():
    result, val = overfitting_run(restore_best=True)
    val_losses = result.history["val_loss"]
    best = int(np.argmin(val_losses))
    assert len(val_losses) == best + 1 + 3 < 200  # stopped `patience` epochs after the best
    restored = train.evaluate(nn.MLP((256, 256), 1), result.state, val, loss_fn=losses.mse)["loss"]
    assert restored == pytest.approx(val_losses[best], rel=1e-5)
    assert restored < val_losses[-1]
    last, _ = overfitting_run(restore_best=False)
    final = train.evaluate(nn.MLP((256, 256), 1), last.state, val, loss_fn=losses.mse)["loss"]
    assert final == pytest.approx(last.history["val_loss"][-1], rel=1e-5)


def test_early_stopping_in_max_mode_on_a_metric():
    x, y = blobs(120)
    result = fit(
        (x[:90], y[:90]),
        epochs=100,
        validation_data=(x[90:], y[90:]),
        metrics=("accuracy",),
        early_stopping=train.EarlyStopping(2, monitor="val_accuracy", mode="max"),
    )
    accuracies = result.history["val_accuracy"]
    assert len(accuracies) < 100 and max(accuracies) == pytest.approx(1.0)


def test_nan_loss_stops_fit_and_keeps_the_last_finite_state():
    x, y = blobs()
    with pytest.raises(
        train.NonFiniteLossError,
        match=r"fit: the training step stopped being finite at epoch \d+, step \d+ of 12 \(first "
        r"in the gradient at \[\d\]\['[bw]'\]\)",
    ) as info:
        fit((x, y), optimizer=optim.sgd(1e4), epochs=20, batch_size=8)
    error = info.value
    assert error.path in {f"[{i}]['{name}']" for i in (0, 2) for name in "bw"}
    state = error.result.state
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(state.params))
    assert int(state.step) == (error.epoch - 1) * 12 + error.step - 1
    assert len(error.result.history["loss"]) == error.epoch - 1
    # The kept state is usable: one more forward pass works.
    assert train.predict(nn.MLP((16,), 3), state, x).shape == (96, 3)


def test_train_step_skips_a_non_finite_update_on_request(key):
    model, optimizer = nn.MLP((4,), 3), optim.sgd(0.1)
    x, y = blobs(8)
    x[0, 0] = np.nan
    guarded = train.make_train_step(
        model, losses.softmax_cross_entropy, optimizer, skip_nonfinite=True
    )
    state = train.init_state(model, optimizer, key, (5,))
    before = jax.tree.map(np.asarray, state.params)
    state, loss = guarded(state, (x, y))
    assert np.isnan(float(loss)) and int(state.step) == 0
    chex.assert_trees_all_equal(state.params, before)
    # By default the step is the plain hand-written one: the NaN reaches the params.
    plain = train.make_train_step(model, losses.softmax_cross_entropy, optimizer)
    state, loss = plain(state, (x, y))
    assert np.isnan(float(loss)) and int(state.step) == 1
    assert bool(jnp.isnan(state.params[0]["w"]).any())


def test_predict_in_batches_equals_all_at_once(key):
    model = nn.MLP((8,), 3)
    state = train.init_state(model, optim.sgd(0.1), key, (5,))
    x, y = blobs(50)
    np.testing.assert_allclose(
        train.predict(model, state, x, batch_size=16),
        train.predict(model, state, x),
        rtol=1e-6,
        atol=1e-6,  # a GPU may pick another matmul kernel (summation order) per batch size
    )
    a = train.evaluate(
        model, state, (x, y), loss_fn=losses.softmax_cross_entropy, metrics=("f1",), batch_size=7
    )
    b = train.evaluate(model, state, (x, y), loss_fn=losses.softmax_cross_entropy, metrics=("f1",))
    assert a == pytest.approx(b, rel=1e-6)


def test_metrics_for_a_single_logit_binary_model():
    features, labels = datasets.load_breast_cancer()
    from fnnet import data, metrics

    x = data.standardize(features)[0]
    result = train.fit(
        nn.MLP((8,), 1),
        losses.sigmoid_binary_cross_entropy,
        optim.adam(1e-2),
        (x, labels[:, None].astype(np.float32)),
        epochs=5,
        batch_size=32,
        key=jax.random.key(0),
        metrics=("accuracy", "recall"),
        verbose=False,
    )
    logits = train.predict(nn.MLP((8,), 1), result.state, x)
    expected = metrics.recall(
        labels, (logits[:, 0] > 0).astype(int), num_classes=2, average="macro"
    )
    assert result.history["recall"][-1] == pytest.approx(float(expected))
    assert result.history["accuracy"][-1] > 0.9


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"train_data": (np.zeros((10, 5), np.float32), np.zeros(9, np.int32))},
            ValueError,
            r"fit: `train_data` inputs and targets must have the same number of samples, got \(10,\) and \(9,\)",
        ),
        ({"batch_size": 0}, ValueError, "fit: `batch_size` must be a positive int, got 0"),
        ({"batch_size": 97}, ValueError, "fit: `batch_size` 97 exceeds the 96 training samples"),
        (
            {
                "train_data": (
                    np.zeros((6, 5), np.float32),
                    np.array([0, 1, 2, 3, 1, 0], np.int32),
                ),
                "batch_size": 2,
            },
            ValueError,
            r"fit: `train_data` labels must lie in \[0, 3\) for a model with 3 outputs \(one per class\), got 1 outside \(e.g. 3\)",
        ),
        (
            {"validation_data": (np.zeros((6, 5), np.float32), np.full(6, -1, np.int32))},
            ValueError,
            r"`validation_data` labels must lie in \[0, 3\)",
        ),
        (
            {
                "train_data": (
                    np.where(np.eye(96, 5) > 0, np.nan, 0).astype(np.float32),
                    np.zeros(96, np.int32),
                )
            },
            ValueError,
            r"fit: `train_data` inputs contains 5 NaN or inf entries \(the first in sample 0\)",
        ),
        (
            {"validation_data": (np.full((4, 5), np.inf, np.float32), np.zeros(4, np.int32))},
            ValueError,
            "fit: `validation_data` inputs contains 20 NaN or inf entries",
        ),
        (
            {"loss_fn": losses.mse},
            ValueError,
            r"fit: the model's outputs shape \(2, 3\) float32 do not fit `loss_fn` with targets shape \(2,\) int32 \(batch of 2 shown\): mse: `targets` must have the shape",
        ),
        (
            {"loss_fn": lambda o, t: losses.softmax_cross_entropy(o, t, reduction="none")},
            ValueError,
            r"fit: `loss_fn` must return a scalar, got shape \(2,\)",
        ),
        (
            {"early_stopping": train.EarlyStopping(3)},
            ValueError,
            r"EarlyStopping monitors 'val_loss', which this run does not record; choose one of \['loss'\]",
        ),
        (
            {"metrics": ("auc",)},
            ValueError,
            "fit: unknown metric 'auc'; valid names are 'accuracy', 'precision', 'recall', 'f1'",
        ),
        ({"optimizer": optim.adam}, TypeError, r"Did you forget to call it, e.g. `adam\(\)`\?"),
        ({"model": nn.Dense}, TypeError, "fit: `model` must be a Layer"),
        ({"key": 0}, TypeError, r"pass `jax.random.key\(0\)`"),
        ({"epochs": 0}, ValueError, "fit: `epochs` must be a positive int, got 0"),
    ],
)
def test_fit_bad_input(kwargs, error, match):
    overrides = {"epochs": 1, "batch_size": 8, **kwargs}
    with pytest.raises(error, match=match):
        fit(overrides.pop("train_data", blobs()), **overrides)


def test_early_stopping_options_are_keyword_only():
    with pytest.raises(TypeError):
        train.EarlyStopping(3, "loss")
    assert train.EarlyStopping(3, monitor="loss").monitor == "loss"


def test_evaluate_names_itself_and_the_data_in_errors(key):
    state = train.init_state(nn.Dense(2), optim.sgd(0.1), key, (3,))
    x, y = np.zeros((4, 3), np.float32), np.zeros(4, np.int32)
    with pytest.raises(ValueError, match="evaluate: `batch_size` must be a positive int, got 0"):
        train.evaluate(nn.Dense(2), state, (x, y), batch_size=0)
    with pytest.raises(
        TypeError, match=r"evaluate: `data` must be a pair \(inputs, targets\), got a tuple of 3"
    ):
        train.evaluate(nn.Dense(2), state, (x, y, y))


def test_early_stopping_arguments_are_checked():
    with pytest.raises(ValueError, match="EarlyStopping: `patience` must be a positive int, got 0"):
        train.EarlyStopping(0)
    with pytest.raises(
        ValueError, match="EarlyStopping: `mode` must be one of 'min', 'max'; got 'lowest'"
    ):
        train.EarlyStopping(2, mode="lowest")


def small_cnn():
    return nn.serial(
        nn.Conv2D(4, 3, use_bias=False),  # a bias before BatchNorm cancels (zero gradient)
        nn.BatchNorm(),
        nn.Relu(),
        nn.Dropout(0.2),
        nn.MaxPool2D(2),
        nn.Flatten(),
        nn.Dense(3),
    )


def images(n=48, seed=0):
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3).astype(np.int32)
    x = rng.normal(size=(n, 6, 6, 1)).astype(np.float32) + y[:, None, None, None]
    return x, y


def test_stepwise_epoch_equals_the_compiled_epoch(key):
    x, y = images()
    model, optimizer = small_cnn(), optim.adam(1e-2)
    scan = train.make_train_epoch(model, losses.softmax_cross_entropy, optimizer, batch_size=8)
    stepwise = train.make_stepwise_epoch(
        model, losses.softmax_cross_entropy, optimizer, batch_size=8
    )
    a = train.init_state(model, optimizer, key, (6, 6, 1))
    b = train.init_state(model, optimizer, key, (6, 6, 1))
    for _ in range(2):
        a, losses_a = scan(a, x, y)
        b, losses_b = stepwise(b, x, y)
        np.testing.assert_allclose(losses_a, losses_b, rtol=1e-5)
    chex.assert_trees_all_close(a.opt_state, b.opt_state, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(a.model_state, b.model_state, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="'auto' steps convolutions on CPU only")
def test_auto_dispatch_steps_convolutions_on_cpu_and_scans_the_rest(capsys):
    """XLA:CPU's own convolution is slow inside a loop: a layer of one's own calling it is
    stepped; fnnet's Conv2D (patches and a matmul on CPU) and everything else scan."""
    x, y = images()
    kwargs = dict(epochs=1, batch_size=8, key=jax.random.key(0))

    def init(key, input_shape):
        return {"w": 0.1 * jax.random.normal(key, (3, 3, input_shape[-1], 4))}, {}

    def apply(params, state, inputs, *, key=None, train=False):
        return jax.lax.conv_general_dilated(inputs, params["w"], (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC")), state  # fmt: skip

    own_conv = nn.serial(nn.Layer(init, apply), nn.Flatten(), nn.Dense(3))
    train.fit(own_conv, losses.softmax_cross_entropy, optim.adam(), (x, y), **kwargs)
    assert "one jitted step per mini-batch" in capsys.readouterr().out.splitlines()[0]
    train.fit(small_cnn(), losses.softmax_cross_entropy, optim.adam(), (x, y), **kwargs)
    assert "each epoch one compiled program" in capsys.readouterr().out.splitlines()[0]
    train.fit(
        nn.MLP((8,), 3),
        losses.softmax_cross_entropy,
        optim.adam(),
        (x.reshape(48, -1), y),
        **kwargs,
    )
    assert "each epoch one compiled program" in capsys.readouterr().out.splitlines()[0]
    train.fit(
        small_cnn(), losses.softmax_cross_entropy, optim.adam(), (x, y), dispatch="scan", **kwargs
    )
    assert "each epoch one compiled program" in capsys.readouterr().out.splitlines()[0]
    with pytest.raises(
        ValueError, match="fit: `dispatch` must be one of 'auto', 'scan', 'step'; got 'loop'"
    ):
        train.fit(
            small_cnn(),
            losses.softmax_cross_entropy,
            optim.adam(),
            (x, y),
            dispatch="loop",
            **kwargs,
        )


@pytest.mark.parametrize("dispatch", ["scan", "step"])
def test_fit_threads_batch_norm_statistics(dispatch):
    x, y = images(96)
    model = small_cnn()
    result = train.fit(
        model,
        losses.softmax_cross_entropy,
        optim.adam(1e-2),
        (x, y),
        epochs=3,
        batch_size=16,
        key=jax.random.key(0),
        verbose=False,
        dispatch=dispatch,
    )
    stats = result.state.model_state[1]
    assert not np.allclose(stats["mean"], 0.0) and not np.allclose(stats["var"], 1.0)  # updated
    # Evaluation uses the running statistics (train=False), not the batch's own.
    expected = model.apply(result.state.params, result.state.model_state, x[:5])[0]
    np.testing.assert_allclose(
        train.predict(model, result.state, x[:5]), expected, rtol=1e-5, atol=1e-6
    )
    batch_stats = model.apply(
        result.state.params, result.state.model_state, x[:5], train=True, key=jax.random.key(0)
    )[0]
    assert not np.allclose(expected, batch_stats)


def test_a_non_finite_gradient_with_a_finite_loss_also_stops_fit():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 3)).astype(np.float32)
    t = (x[:, :1] + 2).astype(np.float32)
    t[17] = 0.0  # the batch holding sample 17 gets a NaN gradient and a finite loss

    def loss(outputs, targets):  # sqrt(0 * s**2): value 0, gradient NaN when min |t| == 0
        return losses.mse(outputs, targets) + jnp.sqrt(
            jnp.min(jnp.abs(targets)) * jnp.sum(outputs) ** 2
        )

    for dispatch in ("scan", "step"):
        with pytest.raises(train.NonFiniteLossError) as info:
            train.fit(
                nn.MLP((16,), 1),
                loss,
                optim.adam(1e-2),
                (x, t),
                epochs=4,
                batch_size=32,
                key=jax.random.key(0),
                verbose=False,
                dispatch=dispatch,
            )
        assert info.value.epoch == 1
        assert int(info.value.result.state.step) == info.value.step - 1


def test_skipping_step_reports_nan_for_a_skipped_step(key):
    model, optimizer = nn.MLP((4,), 1), optim.sgd(0.1)
    step = train.make_train_step(
        model, lambda o, t: jnp.sqrt(jnp.sum(o * 0.0) ** 2), optimizer, skip_nonfinite=True
    )  # loss 0 with a NaN gradient
    state, loss = step(
        train.init_state(model, optimizer, key, (3,)), (jnp.ones((2, 3)), jnp.ones((2, 1)))
    )
    assert np.isnan(float(loss)) and int(state.step) == 0


def test_single_output_models_accept_integer_targets(key):
    x, y = blobs(64)
    y = (y > 0).astype(np.int32)
    result = train.fit(
        nn.MLP((8,), 1),
        lambda o, t: losses.sigmoid_binary_cross_entropy(o[:, 0], t.astype(jnp.float32)),
        optim.adam(1e-2),
        (x, y),
        epochs=2,
        batch_size=16,
        key=key,
        verbose=False,
        metrics=("accuracy",),
    )
    assert len(result.history["accuracy"]) == 2


def test_token_ids_are_checked_against_the_embedding_before_training(key):
    ids = np.zeros((8, 5), np.int32)
    ids[3, 2] = 12
    model = nn.serial(nn.Embedding(10, 4), nn.GRU(6), nn.Dense(10))
    with pytest.raises(
        ValueError,
        match=r"fit: `train_data` inputs \(token ids\) must lie in \[0, 10\) for the model's Embedding of 10 ids, got 1 outside \(e.g. 12\)",
    ):
        train.fit(
            model,
            losses.softmax_cross_entropy,
            optim.adam(),
            (ids, np.zeros((8, 5), np.int32)),
            epochs=1,
            batch_size=4,
            key=key,
            verbose=False,
        )
