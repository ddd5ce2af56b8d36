"""Checkpoint(every_steps=n): saves inside epochs and resumes there, bit for bit."""

import os
import signal
import subprocess
import sys
import textwrap

import chex
import jax
import numpy as np
import pytest

from fnnet import checkpoint, losses, nn, optim, train
from test_checkpointing import blobs


def fit(data, directory=None, **overrides):
    x, y = blobs(160)
    arguments = dict(epochs=4, batch_size=None if not isinstance(data, tuple) else 16,
                     key=jax.random.key(0), verbose=False, validation_data=(x[:40], y[:40]),
                     metrics=("accuracy",))  # fmt: skip
    if directory is not None:
        arguments["checkpoint"] = train.Checkpoint(directory, every_steps=3, keep=50)
    return train.fit(nn.MLP((16,), 3, drop_rate=0.2), losses.softmax_cross_entropy,
                     optim.adam(1e-2), data, **{**arguments, **overrides})  # fmt: skip


class PowerCutError(Exception):
    pass


def crash_after_saves(monkeypatch, count):
    """Makes the `count`-th checkpoint write end the run (the file is complete)."""
    real, done = checkpoint.save, []

    def save(*args, **kwargs):
        real(*args, **kwargs)
        done.append(args[0])
        if len(done) == count:
            raise PowerCutError(args[0])

    monkeypatch.setattr(checkpoint, "save", save)


class Loader:
    """A loader whose iterator keeps its position (as grain's: get_state / set_state)."""

    def __init__(self, x, y, size=16):
        self.x, self.y, self.size = x, y, size

    def __iter__(self):
        return LoaderIterator(self)


class LoaderIterator:
    def __init__(self, loader):
        self.loader, self.next = loader, 0

    def __iter__(self):
        return self

    def __next__(self):
        start = self.next * self.loader.size
        if start >= len(self.loader.x):
            raise StopIteration
        self.next += 1
        return self.loader.x[start : start + self.loader.size], self.loader.y[
            start : start + self.loader.size
        ]

    def get_state(self):
        return {"next": self.next}

    def set_state(self, state):
        self.next = state["next"]


class TorchdataLike:
    """A loader that keeps its own position (as torchdata's: state_dict / load_state_dict)."""

    def __init__(self, x, y, size=16):
        self.x, self.y, self.size, self.position = x, y, size, 0

    def __iter__(self):
        while self.position * self.size < len(self.x):
            start = self.position * self.size
            self.position += 1
            yield self.x[start : start + self.size], self.y[start : start + self.size]
        self.position = 0

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = state["position"]


def kinds(x, y):
    return {
        "device arrays": lambda: (x, y),
        "host arrays": lambda: (x, y),
        "grain-like stream": lambda: Loader(x, y),
        "torchdata-like stream": lambda: TorchdataLike(x, y),
    }


@pytest.mark.parametrize("kind", list(kinds(*blobs(160))))
def test_a_run_cut_inside_an_epoch_resumes_there_and_ends_bit_identical(
    tmp_path, monkeypatch, kind
):
    x, y = blobs(160)
    make = kinds(x[40:], y[40:])[kind]
    placement = {"data_placement": "host"} if kind == "host arrays" else {}
    whole = fit(make(), tmp_path / "whole", **placement)  # the same chunks, never cut
    cuts = {2: "epoch-000001-update-000000006", 3: "epoch-000002-update-000000006",
            1: "epoch-000002.ckpt"}  # each run dies at its cut-th save  # fmt: skip
    for cut, last_file in cuts.items():
        crash_after_saves(monkeypatch, cut)
        with pytest.raises(PowerCutError) as caught:
            fit(make(), tmp_path / "run", **placement)
        monkeypatch.undo()
        assert os.path.basename(str(caught.value)).startswith(last_file)
    resumed = fit(make(), tmp_path / "run", **placement)
    chex.assert_trees_all_equal(resumed.state, whole.state)
    assert resumed.history["loss"] == whole.history["loss"]
    assert resumed.history["val_loss"] == whole.history["val_loss"]
    names = sorted(os.listdir(tmp_path / "run"))
    assert "epoch-000002-update-000000003.ckpt" in names and "epoch-000004.ckpt" in names


def test_keep_counts_in_epoch_and_epoch_end_checkpoints_together(tmp_path):
    x, y = blobs(160)
    fit((x[40:], y[40:]), checkpoint=train.Checkpoint(tmp_path, every_steps=2, keep=3))
    assert sorted(os.listdir(tmp_path)) == [
        "epoch-000004-update-000000004.ckpt",
        "epoch-000004-update-000000006.ckpt",
        "epoch-000004.ckpt",
    ]


def test_every_steps_is_checked(tmp_path):
    with pytest.raises(ValueError, match="`every_steps` must be a positive int"):
        train.Checkpoint(tmp_path, every_steps=0)


TRAINER = textwrap.dedent(
    """
    import os, signal, sys, jax, numpy as np
    from fnnet import checkpoint, losses, nn, optim, train
    directory, out, kill_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    real, saves = checkpoint.save, []

    def save(*args, **kwargs):  # the process dies right after its kill_after-th save
        real(*args, **kwargs)
        saves.append(args[0])
        if len(saves) == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    checkpoint.save = save
    x = np.load(os.path.join(os.path.dirname(out), "x.npy"), mmap_mode="r")
    y = np.load(os.path.join(os.path.dirname(out), "y.npy"), mmap_mode="r")
    result = train.fit(
        nn.MLP((32,), 3, drop_rate=0.2), losses.softmax_cross_entropy, optim.adam(1e-2),
        (x, y), epochs=3, batch_size=16, key=jax.random.key(0), verbose=False,
        steps_per_execution=4, checkpoint=train.Checkpoint(directory, every_steps=5, keep=2),
    )
    real(out, result.state.params, metadata={"loss": result.history["loss"]})
    """
)


def test_a_killed_process_resumes_mid_epoch_on_a_memmap_and_ends_bit_identical(tmp_path):
    x, y = blobs(320)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}

    def run(directory, out, kill_after):
        command = [sys.executable, "-c", TRAINER, str(directory), str(out), str(kill_after)]
        return subprocess.run(command, env=env, capture_output=True, text=True).returncode

    assert run(tmp_path / "whole", tmp_path / "whole.ckpt", 0) == 0
    for kill_after in (2, 3):  # in epoch 1 after update 10, then in epoch 2 after update 5
        assert run(tmp_path / "run", tmp_path / "resumed.ckpt", kill_after) == -signal.SIGKILL
    assert any("-update-" in name for name in os.listdir(tmp_path / "run"))
    assert run(tmp_path / "run", tmp_path / "resumed.ckpt", 0) == 0
    assert checkpoint.metadata(tmp_path / "resumed.ckpt") == checkpoint.metadata(
        tmp_path / "whole.ckpt"
    )
    expected, resumed = (
        checkpoint.load(tmp_path / f"{name}.ckpt") for name in ("whole", "resumed")
    )
    for path, value in expected.items():
        np.testing.assert_array_equal(resumed[path], value, err_msg=path)
