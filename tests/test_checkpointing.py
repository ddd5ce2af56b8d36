"""train.Checkpoint: saves a run, resumes it after a crash with bit-identical results."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import chex
import jax
import numpy as np
import pytest

from fnnet import checkpoint, losses, nn, optim, train


def blobs(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(scale=3, size=(3, 5))[y] + rng.normal(size=(n, 5))
    return x.astype(np.float32), y.astype(np.int32)


def fit(callbacks, model=None, **overrides):
    x, y = blobs()
    arguments = dict(epochs=12, batch_size=16, key=jax.random.key(0), verbose=False,
                     validation_data=(x[72:], y[72:]), callbacks=callbacks)  # fmt: skip
    return train.fit(model or nn.MLP((16,), 3, drop_rate=0.2), losses.softmax_cross_entropy,
                     optim.adam(3e-2), (x[:72], y[:72]), **{**arguments, **overrides})  # fmt: skip


def policy():
    return [train.EarlyStopping(4), train.ReduceLROnPlateau(patience=1, factor=0.5)]


class CrashAt(train.Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, epoch, state, logs):
        if epoch == self.epoch:
            raise RuntimeError("power cut")


def test_a_crashed_run_rerun_ends_bit_identical_to_an_uninterrupted_one(tmp_path):
    whole = fit([*policy(), train.Checkpoint(tmp_path / "whole")])
    for crash in (3, 7):
        with pytest.raises(RuntimeError, match="power cut"):
            fit([*policy(), CrashAt(crash), train.Checkpoint(tmp_path / "run")])
    resumed = fit([*policy(), train.Checkpoint(tmp_path / "run")])
    chex.assert_trees_all_equal(resumed.state, whole.state)
    assert resumed.history["val_loss"] == whole.history["val_loss"]
    assert resumed.history["lr"] == whole.history["lr"]


def test_rerunning_a_finished_run_trains_nothing_and_returns_the_same(tmp_path):
    first = fit([*policy(), train.Checkpoint(tmp_path)])

    class Counts(train.Callback):
        epochs = 0

        def on_epoch_end(self, epoch, state, logs):
            Counts.epochs += 1

    again = fit([*policy(), Counts(), train.Checkpoint(tmp_path)])
    assert Counts.epochs == 0
    chex.assert_trees_all_equal(again.state, first.state)
    assert again.history["loss"] == first.history["loss"]


def test_every_and_keep(tmp_path):
    fit([], checkpoint=train.Checkpoint(tmp_path, every=5, keep=2), epochs=12)
    assert sorted(os.listdir(tmp_path)) == ["epoch-000010.ckpt", "epoch-000012.ckpt"]
    meta = checkpoint.metadata(tmp_path / "epoch-000012.ckpt")
    assert meta["epoch"] == 12 and len(meta["history"]["loss"]) == 12


def test_a_corrupt_newest_checkpoint_is_skipped_with_a_warning(tmp_path):
    fit([train.Checkpoint(tmp_path)], epochs=4)
    newest = tmp_path / "epoch-000004.ckpt"
    data = bytearray(newest.read_bytes())
    data[-2] ^= 0xFF
    newest.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match="skipping .*epoch-000004.ckpt.*checksum mismatch"):
        resumed = fit([train.Checkpoint(tmp_path)], epochs=4)
    assert len(resumed.history["loss"]) == 4  # epoch 4 trained again from epoch 3's file


def test_a_checkpoint_of_another_model_is_an_error_not_a_fresh_start(tmp_path):
    fit([train.Checkpoint(tmp_path)], epochs=2)
    with pytest.raises(
        checkpoint.CheckpointError,
        match=r"(?s)does not match `like` at 18 path.*params\[0\]\['w'\]: the file has \(5, 16\)",
    ):
        fit([train.Checkpoint(tmp_path)], model=nn.MLP((8,), 3), epochs=2)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (
            lambda p: train.Checkpoint(p, every=0),
            ValueError,
            "`every` must be a positive int, got 0",
        ),
        (lambda p: train.Checkpoint(p, keep=0), ValueError, "`keep` must be a positive int, got 0"),
        (lambda p: train.Checkpoint(p / "file"), ValueError, "is a file, not a directory"),
        (lambda p: train.Checkpoint(3), TypeError, "`directory` must be a str or path"),
    ],
)
def test_checkpoint_arguments_are_checked(tmp_path, make, error, match):
    (tmp_path / "file").write_text("x")
    with pytest.raises(error, match=match):
        make(tmp_path)


TRAINER = textwrap.dedent(
    """
    import sys, jax, numpy as np
    from fnnet import checkpoint, losses, nn, optim, train
    directory, out = sys.argv[1], sys.argv[2]

    class Says(train.Callback):
        def on_epoch_end(self, epoch, state, logs):
            print(epoch, flush=True)

    rng = np.random.default_rng(0)
    y = np.arange(2048) % 3
    x = (rng.normal(scale=3, size=(3, 32))[y] + rng.normal(size=(2048, 32))).astype(np.float32)
    result = train.fit(
        nn.MLP((256, 256), 3, drop_rate=0.2), losses.softmax_cross_entropy, optim.adam(1e-3),
        (x[:1792], y[:1792].astype(np.int32)), epochs=40, batch_size=32, key=jax.random.key(0),
        validation_data=(x[1792:], y[1792:].astype(np.int32)), verbose=False,
        callbacks=[train.EarlyStopping(40), train.ReduceLROnPlateau(patience=2), Says()],
        checkpoint=train.Checkpoint(directory, keep=2),
    )
    checkpoint.save(out, result.state.params, metadata={"epochs": len(result.history["loss"])})
    """
)


def test_sigkill_at_random_moments_then_rerunning_gives_the_uninterrupted_params(tmp_path):
    """10 SIGKILLs, each a random time into a random epoch (some inside a save), each followed
    by the same command again; the final params equal an uninterrupted run's, bit for bit."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    rng = np.random.default_rng(0)

    def run(directory, out, kill=False):
        command = [sys.executable, "-c", TRAINER, str(directory), str(out)]
        with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as process:
            if kill:
                for _ in range(rng.integers(1, 3)):
                    assert process.stdout.readline(), "the run ended before it could be killed"
                time.sleep(rng.uniform(0.0, 0.02))
                process.send_signal(signal.SIGKILL)
            process.communicate()
            assert process.returncode == (-signal.SIGKILL if kill else 0)

    run(tmp_path / "whole", tmp_path / "whole.ckpt")
    for _ in range(10):
        run(tmp_path / "run", tmp_path / "resumed.ckpt", kill=True)
    assert not (tmp_path / "resumed.ckpt").exists()
    run(tmp_path / "run", tmp_path / "resumed.ckpt")  # the same command, to the end
    meta = checkpoint.metadata(tmp_path / "resumed.ckpt")
    assert meta == checkpoint.metadata(tmp_path / "whole.ckpt") == {"epochs": 40}
    expected = checkpoint.load(tmp_path / "whole.ckpt")
    resumed = checkpoint.load(tmp_path / "resumed.ckpt")
    for path, value in expected.items():
        np.testing.assert_array_equal(resumed[path], value, err_msg=path)
