"""Runs in a subprocess of test_many_devices.py, on forced CPU devices: fit with and without a
mesh, written to the .npz file named by argv[1] for the test to compare.

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/many_devices.py out.npz

With ``--process I --processes P --port N``, it first joins a ``jax.distributed`` cluster of P
local processes (I-th of them) and trains on the mesh of every process's devices.
"""

import argparse

import jax
import numpy as np

from fnnet import losses, nn, optim, train

MODELS = {
    "mlp": (lambda: nn.MLP((32, 32), 3), (6,)),
    "cnn_batchnorm": (
        lambda: nn.serial(
            nn.Conv2D(4, 3, use_bias=False),
            nn.BatchNorm(),
            nn.Relu(),
            nn.GlobalAvgPool2D(),
            nn.Dense(3),
        ),
        (6, 6, 1),
    ),
    "dropout": (lambda: nn.serial(nn.Dense(16), nn.Relu(), nn.Dropout(0.3), nn.Dense(3)), (6,)),
}


def data(input_shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, *input_shape)).astype(np.float32)
    return x, (np.arange(96) % 3).astype(np.int32)


def run(name, mesh, **overrides):
    make, input_shape = MODELS[name]
    x, y = data(input_shape)
    result = train.fit(
        make(), losses.softmax_cross_entropy, optim.adam(1e-2), (x, y), epochs=3,
        batch_size=16, key=jax.random.key(0), validation_data=(x[:50], y[:50]),
        metrics=("accuracy",), mesh=mesh, verbose=False, **overrides,
    )  # fmt: skip
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--process", type=int)
    parser.add_argument("--processes", type=int)
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.processes:
        jax.distributed.initialize(
            coordinator_address=f"127.0.0.1:{args.port}",
            num_processes=args.processes,
            process_id=args.process,
        )
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    out = {"devices": np.array(jax.device_count())}
    for name in MODELS if not args.processes else ["mlp", "dropout"]:
        for label, on in (("one", None), ("mesh", mesh)):
            if args.processes and on is None:
                continue  # the one-device run is the single-process test's
            result = run(name, on)
            leaves = jax.tree.leaves(jax.device_get(result.state.params))
            for i, leaf in enumerate(leaves):
                out[f"{name}/{label}/param{i}"] = np.asarray(leaf)
            out[f"{name}/{label}/val_loss"] = np.array(result.history["val_loss"])
    if not args.processes:
        x = data((6,))[0]
        state = run("mlp", None).state
        model = MODELS["mlp"][0]()
        streamed = run("mlp", mesh, data_placement="host", steps_per_execution=2)
        for i, leaf in enumerate(jax.tree.leaves(jax.device_get(streamed.state.params))):
            out[f"streamed/mesh/param{i}"] = np.asarray(leaf)
        out["predict/one"] = np.asarray(train.predict(model, state, x[:50], batch_size=20))
        out["predict/mesh"] = np.asarray(
            train.predict(model, state, x[:50], batch_size=20, mesh=mesh)
        )
        out["hlo"] = np.array(compiled_epoch_text(mesh))
        out["errors"] = np.array(indivisible_batch_errors(mesh))
        for label, on, streamed in (("one", None, {}), ("mesh", mesh, {}),
                                    ("streamed", mesh, dict(data_placement="host",
                                                            steps_per_execution=2))):  # fmt: skip
            members = ensemble(on, **streamed)
            out[f"ensemble/{label}/spec"] = np.array(str(members.state.params[0]["w"].sharding))
            for i, leaf in enumerate(jax.tree.leaves(jax.device_get(members.state.params))):
                out[f"ensemble/{label}/param{i}"] = np.asarray(leaf)
    if not args.processes or args.process == 0:
        np.savez(args.out, **out)


def compiled_epoch_text(mesh) -> str:
    """The optimized per-device program of a sharded epoch of the MLP, batch 16; its arrays
    are placed on a mesh of Auto axes, as fnnet's steps use them."""
    mesh = jax.make_mesh(mesh.devices.shape, ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    make, input_shape = MODELS["mlp"]
    model, optimizer = make(), optim.adam(1e-2)
    epoch = train.make_train_epoch(
        model, losses.softmax_cross_entropy, optimizer, batch_size=16, mesh=mesh
    )
    state = train.init_state(model, optimizer, jax.random.key(0), input_shape)
    x, y = data(input_shape)
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    state, x, y = jax.device_put((state, x, y), replicated)
    return epoch.lower(state, x, y).compile().as_text()


def ensemble(mesh, **streamed):
    """8 MLPs with 8 learning rates, spread over the mesh's devices (one each on 8); the
    host arrays of `streamed` in chunks split over the devices by member."""
    x, y = data((6,))
    return train.fit_ensemble(
        MODELS["mlp"][0](), losses.softmax_cross_entropy, optim.sgd(0.1, momentum=0.9), (x, y),
        keys=jax.random.split(jax.random.key(1), 8), epochs=2, batch_size=16,
        hyperparams={"learning_rate": np.geomspace(0.01, 0.3, 8).astype(np.float32)},
        validation_data=(x, y), mesh=mesh, verbose=False, **streamed,
    )  # fmt: skip


def indivisible_batch_errors(mesh) -> list[str]:
    """The messages of fit and a step given a batch that does not split over the devices."""
    x, y = data((6,))
    model, optimizer = MODELS["mlp"][0](), optim.sgd(0.1)
    messages = []
    for call in (
        lambda: train.fit(model, losses.softmax_cross_entropy, optimizer, (x, y), epochs=1,
                          batch_size=12, key=jax.random.key(0), mesh=mesh, verbose=False),
        lambda: train.make_train_step(model, losses.softmax_cross_entropy, optimizer, mesh=mesh)(
            train.init_state(model, optimizer, jax.random.key(0), (6,)), (x[:12], y[:12])),
    ):  # fmt: skip
        try:
            call()
            messages.append("no error")
        except ValueError as error:
            messages.append(str(error))
    return messages


if __name__ == "__main__":
    main()
