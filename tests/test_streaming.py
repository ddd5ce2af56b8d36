"""Data beyond memory: host arrays and memmaps streamed in chunks, a user's stream of batches,
prefetch, transform, per-chunk device checks, and batched evaluation."""

import threading
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import losses, metrics, nn, optim, train
from fnnet.data.prefetch import prefetch
from fnnet.train import placement

CE = losses.softmax_cross_entropy


def blobs(n=200, features=6, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(scale=3, size=(classes, features))[y] + rng.normal(size=(n, features))
    return x.astype(np.float32), y.astype(np.int32)


def run(data, model=None, **overrides):
    arguments = dict(epochs=3, batch_size=16, key=jax.random.key(0), verbose=False)
    return train.fit(model or nn.MLP((16,), 4, drop_rate=0.1), CE, optim.adam(1e-2), data,
                     **{**arguments, **overrides})  # fmt: skip


def batches_of(x, y, size):
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


# --- the same params as in memory -------------------------------------------------------


def test_a_memmap_streams_from_the_host_with_the_device_paths_order_bit_for_bit(tmp_path, capsys):
    x, y = blobs()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    mapped = (
        np.load(tmp_path / "x.npy", mmap_mode="r"),
        np.load(tmp_path / "y.npy", mmap_mode="r"),
    )
    in_memory = run((x, y), steps_per_execution=4, verbose=True)
    streamed = run(mapped, steps_per_execution=4, verbose=True)  # "auto": a memmap streams
    out = capsys.readouterr().out
    assert "each epoch" not in out.split("\n")[3] and "streamed from the host" in out
    chex.assert_trees_all_equal(streamed.state, in_memory.state)  # the same program per chunk
    assert streamed.history["loss"] == in_memory.history["loss"]
    whole_epoch = run((x, y))  # one program per epoch: the same steps, to float rounding
    chex.assert_trees_all_close(streamed.state.params, whole_epoch.state.params, rtol=1e-5,
                                atol=1e-6)  # fmt: skip
    model = nn.MLP((16,), 4, drop_rate=0.1)
    on_host = train.evaluate(model, streamed.state, mapped, loss_fn=CE, metrics=("f1",),
                             batch_size=64)  # fmt: skip
    in_memory = train.evaluate(model, streamed.state, (x, y), loss_fn=CE, metrics=("f1",))
    assert on_host == pytest.approx(in_memory, rel=1e-6)


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_prefetch_depth_does_not_change_the_result(depth):
    x, y = blobs()
    reference = run((x, y), data_placement="host", steps_per_execution=4, prefetch=2)
    other = run((x, y), data_placement="host", steps_per_execution=4, prefetch=depth)
    chex.assert_trees_all_equal(other.state, reference.state)  # the same programs, bit for bit


@pytest.mark.parametrize("steps_per_execution", [1, 7, 64])
def test_chunk_size_changes_the_result_by_float_rounding_only(steps_per_execution):
    """Scans of other lengths are other programs: XLA may round them differently (it does
    with fast math), so the same steps agree to float rounding, not bit for bit."""
    x, y = blobs()
    reference = run((x, y), data_placement="host", steps_per_execution=4)
    other = run((x, y), data_placement="host", steps_per_execution=steps_per_execution)
    chex.assert_trees_all_close(other.state.params, reference.state.params, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(other.history["loss"], reference.history["loss"], rtol=1e-5)


def test_accumulated_updates_stream_as_they_run_in_memory():
    x, y = blobs()
    kw = dict(accumulate_steps=3, steps_per_execution=2)
    chex.assert_trees_all_equal(run((x, y), data_placement="host", **kw).state,
                                run((x, y), **kw).state)  # fmt: skip


def test_auto_placement_keeps_small_arrays_on_the_device_and_large_ones_on_the_host(monkeypatch):
    x, y = blobs()
    assert placement.resolve("fit", "d", (x, y), "auto") == "device"
    monkeypatch.setattr(placement, "free_device_bytes", lambda: 2 * x.nbytes)
    assert placement.resolve("fit", "d", (x, y), "auto") == "host"  # over half the free memory
    with pytest.raises(ValueError, match=r"takes 0.00 GiB, more than the 0.00 GiB free"):
        monkeypatch.setattr(placement, "free_device_bytes", lambda: x.nbytes // 2)
        run((x, y), data_placement="device")


# --- a user's stream ------------------------------------------------------------------


def test_a_list_of_batches_is_a_stream_iterated_once_per_epoch():
    x, y = blobs(192)
    result = run(batches_of(x, y, 16), batch_size=None, metrics=("accuracy",),
                 validation_data=batches_of(x[:64], y[:64], 10))  # fmt: skip
    assert len(result.history["loss"]) == 3
    assert int(result.state.step) == 3 * 12
    expected = train.evaluate(nn.MLP((16,), 4, drop_rate=0.1), result.state, (x[:64], y[:64]),
                              loss_fn=CE, metrics=("accuracy",))  # fmt: skip
    assert result.history["val_loss"][-1] == pytest.approx(expected["loss"], rel=1e-6)
    assert result.history["val_accuracy"][-1] == expected["accuracy"]


def test_a_pytorch_dataloader_with_spawn_workers_trains_as_its_batches_do():
    torch = pytest.importorskip("torch")
    x, y = blobs(96)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, num_workers=2,
                                         multiprocessing_context="spawn",
                                         persistent_workers=True)  # fmt: skip
    chex.assert_trees_all_equal(run(loader, epochs=2).state,
                                run(batches_of(x, y, 16), epochs=2).state)  # fmt: skip


def test_a_callable_is_called_once_per_epoch_with_the_epoch_number():
    x, y = blobs(160)
    calls = []

    def epoch_batches(epoch):
        calls.append(epoch)
        order = np.random.default_rng(epoch).permutation(len(x))
        return batches_of(x[order], y[order], 16)

    run(epoch_batches, metrics=("accuracy",))  # the metrics pass reads the same iterable
    assert calls == [1, 2, 3]
    validated = []

    def validation_batches(epoch):
        validated.append(epoch)
        return batches_of(x[:48], y[:48], 16)

    result = run((x, y), validation_data=validation_batches)
    assert validated == [1, 2, 3] and len(result.history["val_loss"]) == 3


def test_a_generator_as_validation_data_is_refused_before_training_for_several_epochs():
    x, y = blobs()
    with pytest.raises(ValueError, match=r"`validation_data` is a one-shot iterator"):
        run((x, y), validation_data=iter(batches_of(x, y, 16)))
    result = run((x, y), validation_data=iter(batches_of(x, y, 16)), epochs=1)
    assert len(result.history["val_loss"]) == 1


def test_a_smaller_last_batch_trains_as_an_update_of_its_own():
    x, y = blobs(100)
    result = run(batches_of(x, y, 16))  # 6 of 16 and one of 4
    assert int(result.state.step) == 3 * 7
    assert np.isfinite(result.history["loss"]).all()


def test_a_generator_is_one_epoch_only_and_the_error_shows_the_callable_form():
    x, y = blobs()
    with pytest.raises(ValueError, match=r"one-shot iterator.*lambda epoch"):
        run(iter(batches_of(x, y, 16)))
    assert int(run(iter(batches_of(x, y, 16)), epochs=1).state.step) == 13


def test_int64_and_float64_batches_are_narrowed_after_checking_they_fit():
    x, y = blobs(64)
    wide = [(a.astype(np.float64), b.astype(np.int64)) for a, b in batches_of(x, y, 16)]
    narrow = batches_of(x, y, 16)
    chex.assert_trees_all_equal(run(wide).state, run(narrow).state)
    with pytest.raises(ValueError, match=r"outside int32"):
        run([(x[:16], y[:16].astype(np.int64) + 2**40)])


def loader_batches(x, y):
    bad_shape = batches_of(x, y, 16)
    bad_shape[2] = (x[:16, :5], y[:16])
    bad_dtype = batches_of(x, y, 16)
    bad_dtype[1] = (x[:16].astype(np.float16), y[:16])
    after_small = batches_of(x, y, 16)
    after_small.insert(1, (x[:3], y[:3]))
    return {
        "shape": (
            bad_shape,
            ValueError,
            r"batch 2 has inputs float32\[16, 5\].*same dtypes and shapes",
        ),
        "dtype": (bad_dtype, ValueError, r"batch 1 has inputs float16"),
        "lengths": (
            [(x[:16], y[:15])],
            ValueError,
            r"batch 0 must hold inputs and targets of one length",
        ),
        "not a pair": ([x[:16]], TypeError, r"batch 0 must be a pair"),
        "small then full": (
            after_small,
            ValueError,
            r"batch 2 follows a smaller batch \(3 samples\)",
        ),
        "empty": ([], ValueError, r"yielded no batches"),
        "batch_size": (
            batches_of(x, y, 16),
            ValueError,
            r"`batch_size` is 8, but the stream's batches hold 16",
        ),
    }


@pytest.mark.parametrize("case", list(loader_batches(*blobs(64))))
def test_bad_streams_are_clear_errors(case):
    data, error, match = loader_batches(*blobs(64))[case]
    with pytest.raises(error, match=match):
        run(data, batch_size=8 if case == "batch_size" else None)


def test_an_error_of_the_stream_mid_epoch_keeps_the_last_good_state():
    x, y = blobs(96)
    data = batches_of(x, y, 16)
    data[4] = (x[:16, :5], y[:16])
    with pytest.raises(ValueError, match="batch 4") as caught:
        run(data, steps_per_execution=2, prefetch=0, epochs=1)
    assert int(caught.value.result.state.step) == 4  # the two chunks before the bad batch


# --- transform and the device checks of streamed data -----------------------------------


def test_uint8_inputs_with_a_transform_train_as_float32_prepared_on_the_host():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(128, 4, 4), dtype=np.uint8)
    y = (images.mean(axis=(1, 2)) > 127).astype(np.int32)
    scale = lambda x: x.reshape(len(x), -1) / 255.0  # noqa: E731
    model = nn.MLP((8,), 2)
    on_device = run((images, y), model=model, transform=scale)
    streamed = run((images, y), model=model, transform=scale, data_placement="host",
                   metrics=("accuracy",))  # fmt: skip
    prepared = run((np.asarray(scale(images), np.float32), y), model=model)
    chex.assert_trees_all_close(on_device.state.params, prepared.state.params, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(streamed.state.params, prepared.state.params, rtol=1e-5, atol=1e-6)
    scores = train.evaluate(
        model, streamed.state, (images, y), metrics=("accuracy",), transform=scale
    )
    assert scores["accuracy"] == pytest.approx(streamed.history["accuracy"][-1])
    outputs = train.predict(model, streamed.state, images, transform=scale)
    np.testing.assert_allclose(outputs, train.predict(model, streamed.state, scale(images)),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


@pytest.mark.parametrize(
    "transform, error, match",
    [
        ("x / 255", TypeError, "`transform` must be a function"),
        (
            lambda x: x.reshape(-1),
            ValueError,
            r"`transform` must keep the batch axis first.*\(2, 2\) into shape \(4,\)",
        ),
    ],
)
def test_bad_transforms(transform, error, match):
    x, y = blobs(64)
    with pytest.raises(error, match=match):
        run((x[:, :2], y), transform=transform)


@pytest.mark.parametrize("kind", ["host", "stream"])
def test_nan_and_bad_labels_in_streamed_data_name_the_sample_and_keep_the_state(kind):
    x, y = blobs(96)
    x[70, 2] = np.nan
    data = (x, y) if kind == "host" else batches_of(x, y, 16)
    with pytest.raises(ValueError, match="NaN or inf in the inputs") as caught:
        run(data, steps_per_execution=2, data_placement="host", epochs=1, key=jax.random.key(1))
    where = caught.value.args[0]
    assert ("sample 70" in where) if kind == "host" else ("batch 4, row 6" in where)
    assert isinstance(caught.value.result.state, train.TrainState)
    x, y = blobs(96)
    y[50] = 7
    data = (x, y) if kind == "host" else batches_of(x, y, 16)
    with pytest.raises(ValueError, match=r"a label outside the model's classes \[0, 4\)"):
        run(data, data_placement="host", epochs=1)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(data_placement="gpu"), "`data_placement` must be one of"),
        (dict(steps_per_execution=0), "`steps_per_execution` must be a positive int"),
        (dict(prefetch=-1), "`prefetch` must be a non-negative int"),
        (dict(prefetch=1.5), "`prefetch` must be a non-negative int"),
    ],
)
def test_bad_streaming_arguments(overrides, match):
    with pytest.raises(ValueError, match=match):
        run(blobs(), **overrides)


# --- evaluation in batches -----------------------------------------------------------


def macro_scores(y_true, y_pred, classes):
    """Accuracy and macro precision, recall and F1 from their definitions, in NumPy."""
    counts = np.zeros((classes, classes))
    np.add.at(counts, (y_true, y_pred), 1)
    tp = np.diag(counts)
    fp, fn = counts.sum(0) - tp, counts.sum(1) - tp

    def ratio(a, b):
        return np.divide(a, b, out=np.zeros_like(a), where=b > 0).mean()

    return {"accuracy": tp.sum() / len(y_true), "precision": ratio(tp, tp + fp),
            "recall": ratio(tp, tp + fn), "f1": ratio(2 * tp, 2 * tp + fp + fn)}  # fmt: skip


def f1_of_mean(outputs, targets):
    return jnp.mean(jnp.argmax(outputs, -1) == targets)


def test_batched_evaluation_equals_all_at_once_and_the_definitions():
    x, y = blobs(203)
    model = nn.MLP((16,), 4)
    state = run((x, y), model=model).state
    names = ("accuracy", "precision", "recall", "f1", f1_of_mean)
    whole = train.evaluate(model, state, (x, y), loss_fn=CE, metrics=names, batch_size=203)
    predicted = np.argmax(train.predict(model, state, x), -1)
    expected = macro_scores(y, predicted, 4)
    for batch_size in (1, 7, 64, None):
        scores = train.evaluate(model, state, (x, y), loss_fn=CE, metrics=names,
                                batch_size=batch_size)  # fmt: skip
        assert scores["loss"] == pytest.approx(whole["loss"], rel=1e-5)
        for name, value in expected.items():
            assert scores[name] == pytest.approx(value, rel=1e-6), name
        assert scores["f1_of_mean"] == pytest.approx(expected["accuracy"], rel=1e-6)
    streamed = train.evaluate(model, state, batches_of(x, y, 50), loss_fn=CE, metrics=names)
    assert streamed["accuracy"] == pytest.approx(expected["accuracy"], rel=1e-6)  # 203: none lost
    assert streamed["loss"] == pytest.approx(whole["loss"], rel=1e-5)


def test_predict_takes_an_iterable_of_input_batches(tmp_path):
    x, y = blobs(100)
    model = nn.MLP((16,), 4)
    state = run((x, y), model=model).state
    whole = train.predict(model, state, x)
    np.testing.assert_allclose(train.predict(model, state, (b for b, _ in batches_of(x, y, 30))),
                               whole, rtol=1e-5, atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(
        train.predict(model, state, [x[:50], x[50:]]), whole, rtol=1e-5, atol=1e-6
    )
    assert train.predict(model, state, x, batch_size=9).shape == (100, 4)
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")  # streamed from the host
    np.testing.assert_allclose(train.predict(model, state, mapped, batch_size=30), whole,
                               rtol=1e-5, atol=1e-6)  # fmt: skip


def test_named_metrics_come_from_the_summed_confusion_matrix():
    y_true = jnp.array([0, 1, 2, 2, 1])
    outputs = jax.nn.one_hot(jnp.array([0, 2, 2, 1, 1]), 3)
    counts = metrics.confusion_counts(y_true, jnp.argmax(outputs, -1), 3)
    expected = macro_scores(np.asarray(y_true), np.array([0, 2, 2, 1, 1]), 3)
    assert float(metrics.macro_from_counts(counts, "f1")) == pytest.approx(expected["f1"])


# --- prefetch --------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_prefetch_keeps_the_order_and_raises_the_threads_error_in_place(depth):
    assert list(prefetch(range(10), lambda i: i * i, depth)) == [i * i for i in range(10)]

    def items():
        yield from range(3)
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for value in prefetch(items(), lambda i: i, depth):
            got.append(value)
    assert got == [0, 1, 2]


def test_prefetch_runs_at_most_depth_plus_one_ahead_and_stops_when_dropped():
    made, lock = [], threading.Lock()

    def prepare(i):
        with lock:
            made.append(i)
        return i

    stream = prefetch(range(100), prepare, 2)
    assert next(stream) == 0
    for _ in range(50):
        if len(made) >= 4:
            break
        threading.Event().wait(0.01)
    assert len(made) <= 4  # the one used, two queued, one in the making
    stream.close()
    count = len(made)
    threading.Event().wait(0.1)
    assert len(made) == count


def test_a_stream_without_a_position_warns_that_resume_is_at_epoch_boundaries(tmp_path):
    x, y = blobs(64)
    with pytest.warns(UserWarning, match="resume starts at the epoch boundary"):
        run(batches_of(x, y, 16), checkpoint=train.Checkpoint(tmp_path, every_steps=2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run((x, y), checkpoint=train.Checkpoint(tmp_path / "arrays", every_steps=2))
