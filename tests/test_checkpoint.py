"""Checkpoint files: bit-exact round trips, atomic writes, and every bad file refused."""

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import checkpoint, nn, optim, train
from fnnet.checkpoint import CheckpointError


def trained_state(optimizer, model=None):
    model = model or nn.serial(nn.Dense(4), nn.BatchNorm(), nn.Relu(), nn.Dense(2))
    state = train.init_state(model, optimizer, jax.random.key(3), (3,))
    step = train.make_train_step(model, lambda o, t: jnp.mean((o - t) ** 2), optimizer)
    x = jax.random.normal(jax.random.key(1), (8, 3))
    for _ in range(2):
        state, _ = step(state, (x, jnp.ones((8, 2))))
    return state


OPTIMIZERS = {
    "sgd-momentum": lambda: optim.sgd(0.1, momentum=0.9),
    "adam-amsgrad": lambda: optim.adam(1e-2, amsgrad=True),
    "adamw": lambda: optim.adamw(1e-2),
    "rmsprop-centered": lambda: optim.rmsprop(1e-2, centered=True, momentum=0.5),
    "clipped": lambda: optim.clip_by_global_norm(optim.adam(), 1.0),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_train_state_round_trips_bit_for_bit(tmp_path, name):
    state = trained_state(OPTIMIZERS[name]())
    path = tmp_path / "state.ckpt"
    checkpoint.save(path, state, metadata={"epoch": 2, "name": name})
    like = train.init_state(
        nn.serial(nn.Dense(4), nn.BatchNorm(), nn.Relu(), nn.Dense(2)),
        OPTIMIZERS[name](),
        jax.random.key(0),
        (3,),
    )
    loaded = checkpoint.load(path, like)
    chex.assert_trees_all_equal_structs(loaded, state)
    chex.assert_trees_all_equal(loaded._replace(key=None), state._replace(key=None))
    assert jnp.issubdtype(loaded.key.dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(jax.random.key_data(loaded.key), jax.random.key_data(state.key))
    assert checkpoint.metadata(path) == {"epoch": 2, "name": name}


def test_python_scalars_numpy_none_and_containers(tmp_path):
    tree = {
        "ints": [1, True, 2.5, None],
        "np64": np.arange(3, dtype=np.int64),
        "f64": np.float64(0.1),
        "bf16": jnp.ones(2, jnp.bfloat16),
        "raw_key": jax.random.PRNGKey(0),
        "empty": (),
    }
    checkpoint.save(tmp_path / "t", tree)
    loaded = checkpoint.load(tmp_path / "t", tree)
    assert loaded["ints"] == [1, True, 2.5, None]
    assert type(loaded["ints"][0]) is int and type(loaded["ints"][1]) is bool
    assert loaded["np64"].dtype == np.int64 and isinstance(loaded["np64"], np.ndarray)
    assert loaded["bf16"].dtype == jnp.bfloat16 and isinstance(loaded["bf16"], jax.Array)
    chex.assert_trees_all_equal(loaded["raw_key"], tree["raw_key"])
    flat = checkpoint.load(tmp_path / "t")
    assert sorted(flat) == sorted(
        [
            "['bf16']",
            "['f64']",
            "['ints'][0]",
            "['ints'][1]",
            "['ints'][2]",
            "['np64']",
            "['raw_key']",
        ]
    )
    assert all(isinstance(v, np.ndarray) for v in flat.values())
    assert checkpoint.metadata(tmp_path / "t") == {}


def test_a_mismatched_like_lists_every_differing_path(tmp_path):
    checkpoint.save(tmp_path / "c", {"w": jnp.ones((2, 3)), "b": jnp.ones(3), "n": jnp.zeros(1)})
    like = {"w": jnp.ones((3, 2)), "b": jnp.ones(3, jnp.int32), "extra": jnp.ones(1)}
    with pytest.raises(CheckpointError, match="does not match `like` at 4 path") as info:
        checkpoint.load(tmp_path / "c", like)
    message = str(info.value)
    assert "['extra']: missing from the file" in message
    assert "['n']: in the file, not in `like`" in message
    assert "['w']: the file has (2, 3) float32, `like` (3, 2) float32" in message
    assert "['b']: the file has (3,) float32, `like` (3,) int32" in message


def corrupt_cases(good: bytes, tmp_path):
    header_length = int.from_bytes(good[10:18], "little")
    yield "empty", b"", "is empty"
    yield "random", os.urandom(200), "is not an fnnet checkpoint"
    yield "truncated data", good[:-5], "beyond its|truncated"
    yield "truncated header", good[:40], "truncated inside its header|beyond its"
    flipped = bytearray(good)
    flipped[-3] ^= 0x10
    yield "flipped data byte", bytes(flipped), r"corrupted at \['w'\] \(checksum mismatch\)"
    flipped = bytearray(good)
    flipped[60] ^= 0x01
    yield "flipped header byte", bytes(flipped), "corrupted header"
    huge = bytearray(good)
    huge[10:18] = (10**12).to_bytes(8, "little")
    yield "header beyond the file", bytes(huge), "claims a header of 1000000000000 bytes"
    header = good[50 : 50 + header_length].replace(b'"format":1', b'"format":9')
    import hashlib

    newer = good[:10] + len(header).to_bytes(8, "little") + hashlib.sha256(header).digest()
    yield "newer format", newer + header + good[50 + header_length :], "format version 9, newer"


def test_every_kind_of_bad_file_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "good"
    checkpoint.save(path, {"w": jnp.arange(12.0).reshape(3, 4)})
    good = path.read_bytes()
    for name, data, match in corrupt_cases(good, tmp_path):
        bad = tmp_path / name.replace(" ", "_")
        bad.write_bytes(data)
        for read in (
            lambda bad=bad: checkpoint.load(bad),
            lambda bad=bad: checkpoint.load(bad, {"w": jnp.ones((3, 4))}),
        ):
            with pytest.raises(CheckpointError, match=match):
                read()
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "missing")


class WritesAMarker:
    def __reduce__(self):
        return (open, (str(MARKER), "w"))


MARKER = None


def test_a_pickle_bearing_npz_and_a_zip_bomb_are_refused_without_running_code(tmp_path):
    global MARKER
    MARKER = tmp_path / "pwned"
    npz = tmp_path / "evil.npz"
    with zipfile.ZipFile(npz, "w") as archive:
        archive.writestr("x.npy", pickle.dumps(WritesAMarker()))
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("x.npy", b"\0" * (50 * 2**20))  # 50 MiB of zeros, a few KiB on disk
    for path in (npz, bomb):
        with pytest.raises(CheckpointError, match=r"is not an fnnet checkpoint \(it is a zip file"):
            checkpoint.load(path)
    assert not MARKER.exists()


def test_save_refuses_leaves_it_cannot_store_and_bad_metadata(tmp_path):
    with pytest.raises(TypeError, match=r"the leaf at \['f'\] is a function"):
        checkpoint.save(tmp_path / "x", {"f": lambda: None})
    with pytest.raises(TypeError, match=r"the leaf at \[1\] is a str"):
        checkpoint.save(tmp_path / "x", [jnp.ones(1), "text"])
    with pytest.raises(TypeError, match="`metadata` must be JSON-serialisable"):
        checkpoint.save(tmp_path / "x", [], metadata={"f": print})
    assert not (tmp_path / "x").exists()


def test_unwritable_places_give_clear_errors_and_keep_the_previous_file(tmp_path):
    path = tmp_path / "c"
    checkpoint.save(path, {"w": jnp.ones(2)})
    with pytest.raises(CheckpointError, match="is a directory"):
        checkpoint.save(tmp_path, {"w": jnp.ones(2)})
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.save(tmp_path / "no" / "c", {"w": jnp.ones(2)})
    if os.geteuid() != 0:  # root writes into read-only directories anyway
        tmp_path.chmod(0o500)
        try:
            with pytest.raises(CheckpointError, match=r"could not write .* the previous file"):
                checkpoint.save(path, {"w": jnp.zeros(2)})
        finally:
            tmp_path.chmod(0o700)
    np.testing.assert_array_equal(checkpoint.load(path)["['w']"], np.ones(2))


def test_left_over_temporaries_are_removed_by_the_next_save(tmp_path):
    stale = tmp_path / ".c.fnnet-tmp-12345"
    stale.write_bytes(b"half a file")
    checkpoint.save(tmp_path / "c", {"w": jnp.ones(2)})
    assert sorted(os.listdir(tmp_path)) == ["c"]


WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from fnnet import checkpoint
    path = sys.argv[1]
    for i in range(1, 10**6):
        checkpoint.save(path, {"i": np.full(2**20, i, np.int32)}, metadata={"i": i})
        print(i, flush=True)
    """
)


def test_a_save_killed_at_any_instant_leaves_the_old_or_the_new_file(tmp_path):
    """SIGKILL a process that saves 4 MiB checkpoints in a loop, at 12 moments; each time the
    file is a whole checkpoint of one of the last iterations, never torn."""
    path = tmp_path / "c"
    rng = np.random.default_rng(0)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    inside_save = 0
    for _ in range(12):
        with subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=env
        ) as process:
            assert process.stdout.readline()  # at least one save finished
            time.sleep(rng.uniform(0.0, 0.05))
            process.send_signal(signal.SIGKILL)
            process.wait()
        inside_save += any(name.startswith(".c.fnnet-tmp-") for name in os.listdir(tmp_path))
        stored = checkpoint.load(path)["['i']"]
        assert np.all(stored == stored[0]) and stored[0] == checkpoint.metadata(path)["i"]
    assert inside_save >= 1, inside_save  # saving is most of the loop: about half land in it
    checkpoint.save(path, {"i": np.zeros(1)})
    assert sorted(os.listdir(tmp_path)) == ["c"]  # the killed saves' temporaries are gone


def test_a_full_disk_is_a_checkpoint_error_and_keeps_the_previous_file(tmp_path, monkeypatch):
    import errno

    path = tmp_path / "c"
    checkpoint.save(path, {"w": jnp.ones(2)})

    def full(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", full)
    with pytest.raises(CheckpointError, match=r"could not write .*No space left on device.*intact"):
        checkpoint.save(path, {"w": jnp.zeros(2)})
    monkeypatch.undo()
    np.testing.assert_array_equal(checkpoint.load(path)["['w']"], np.ones(2))
    assert sorted(os.listdir(tmp_path)) == ["c"]  # the temporary was removed


def test_a_like_that_is_not_a_tree_of_arrays_is_a_type_error(tmp_path):
    checkpoint.save(tmp_path / "c", {"w": jnp.ones(2)})
    with pytest.raises(
        TypeError, match=r"checkpoint.load: `like`: the leaf at the root is a object"
    ):
        checkpoint.load(tmp_path / "c", object())
