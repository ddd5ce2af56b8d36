"""Data parallelism on forced CPU devices (in subprocesses, so the rest of the suite keeps one
device): the same params as one device, the batch really split, several hosts."""

import os
import pathlib
import re
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from fnnet import losses, nn, optim, train

SCRIPT = pathlib.Path(__file__).with_name("many_devices.py")
SRC = str(pathlib.Path(__file__).parents[1] / "src")


def run_script(out, devices, *args, wait=True):
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    command = [sys.executable, str(SCRIPT), str(out), *map(str, args)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if not wait:
        return process
    finish(process)
    return dict(np.load(out))


def finish(process):
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output.decode()[-3000:]


@pytest.fixture(scope="module")
def eight(tmp_path_factory):
    return run_script(tmp_path_factory.mktemp("devices") / "eight.npz", 8)


def params(results, name, label):
    keys = sorted(k for k in results if k.startswith(f"{name}/{label}/param"))
    return [results[k] for k in keys]


@pytest.mark.parametrize("name", ["mlp", "cnn_batchnorm", "dropout", "ensemble"])
def test_fit_on_8_devices_gives_the_params_of_one(eight, name):
    """Data parallel fits, and an ensemble of 8 spread over the 8 devices."""
    assert int(eight["devices"]) == 8
    one, mesh = params(eight, name, "one"), params(eight, name, "mesh")
    assert len(one) == len(mesh) > 0
    for a, b in zip(one, mesh, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    if name != "ensemble":  # members spread over the devices: one each
        np.testing.assert_allclose(
            eight[f"{name}/mesh/val_loss"], eight[f"{name}/one/val_loss"], rtol=1e-5
        )


def test_each_device_computes_its_share_of_the_batch(eight):
    """The optimized program of an epoch with batch 16 on 8 devices works on 2 samples per
    device (f32[2,6] inputs to the first layer, f32[2,32] hidden), never the whole batch, and
    its gradients, loss and statistics travel in XLA's all-reduces."""
    hlo = str(eight["hlo"])
    assert re.search(r"f32\[2,6\]", hlo) and re.search(r"f32\[2,32\]", hlo)
    assert not re.search(r"f32\[16,(6|32)\]", hlo)
    assert hlo.count("all-reduce(") >= 1


def test_an_ensemble_on_a_mesh_keeps_its_members_spread_over_the_devices(eight):
    spec = str(eight["ensemble/mesh/spec"])
    assert "spec=P('data',)" in spec, spec


def test_host_arrays_streamed_in_chunks_onto_a_mesh_give_the_params_of_one_device(eight):
    for a, b in zip(params(eight, "mlp", "one"), params(eight, "streamed", "mesh"), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    streamed = params(eight, "ensemble", "streamed")  # each member's batches on its device
    for a, b in zip(params(eight, "ensemble", "one"), streamed, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert "spec=P('data',)" in str(eight["ensemble/streamed/spec"])


def test_predict_with_a_mesh_pads_and_gives_the_same_outputs(eight):
    np.testing.assert_allclose(eight["predict/mesh"], eight["predict/one"], rtol=1e-6, atol=1e-6)
    assert eight["predict/mesh"].shape == (50, 3)


def test_a_batch_that_does_not_split_over_the_devices_is_refused(eight):
    fit_message, step_message = (str(m) for m in eight["errors"])
    assert fit_message.startswith(
        "fit: `batch_size` 12 must be a multiple of the 8 devices on the mesh's 'data' axis"
    )
    assert step_message.startswith("train step: `batch` 12 must be a multiple of the 8 devices")


def test_two_processes_of_two_devices_give_the_params_of_one_process_of_four(tmp_path):
    with socket.socket() as probe:  # a free port for the coordinator
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "two.npz"
    processes = [
        run_script(out, 2, "--process", i, "--processes", 2, "--port", port, wait=False)
        for i in range(2)
    ]
    for process in processes:
        finish(process)
    two = dict(np.load(out))
    four = run_script(tmp_path / "four.npz", 4)
    assert int(two["devices"]) == int(four["devices"]) == 4
    for name in ("mlp", "dropout"):
        for a, b in zip(params(four, name, "mesh"), params(two, name, "mesh"), strict=True):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_a_mesh_needs_a_data_axis(key):
    mesh = jax.make_mesh((1,), ("batch",))
    model, optimizer = nn.MLP((4,), 2), optim.sgd(0.1)
    x, y = np.ones((8, 3), np.float32), np.zeros(8, np.int32)
    with pytest.raises(
        ValueError, match=r"fit: `mesh` must have an axis named 'data'.*got axes \('batch',\)"
    ):
        train.fit(
            model,
            losses.softmax_cross_entropy,
            optimizer,
            (x, y),
            epochs=1,
            batch_size=4,
            key=key,
            mesh=mesh,
        )
    with pytest.raises(TypeError, match=r"make_train_step: `mesh` must be a jax\.sharding\.Mesh"):
        train.make_train_step(model, losses.softmax_cross_entropy, optimizer, mesh="data")
    with pytest.raises(TypeError, match=r"predict: `mesh` must be a jax\.sharding\.Mesh"):
        train.predict(model, train.init_state(model, optimizer, key, (3,)), x, mesh=jax.devices())


def test_a_mesh_of_one_device_gives_the_one_device_result_exactly(key):
    mesh = jax.make_mesh((1,), ("data",))
    model, optimizer = nn.MLP((8,), 3), optim.adam(1e-2)
    x = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    y = (np.arange(64) % 3).astype(np.int32)
    kwargs = dict(epochs=2, batch_size=16, key=key, verbose=False)
    a = train.fit(model, losses.softmax_cross_entropy, optimizer, (x, y), **kwargs)
    b = train.fit(model, losses.softmax_cross_entropy, optimizer, (x, y), mesh=mesh, **kwargs)
    jax.tree.map(np.testing.assert_array_equal, b.state.params, a.state.params)
