"""nn.repeat: n stacked copies applied with lax.scan equal serial of n copies."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import losses, nn, optim, train

BLOCK = nn.residual(nn.serial(nn.LayerNorm(), nn.Dense(8), nn.Dropout(0.2), nn.Tanh()))
X = np.random.default_rng(0).normal(size=(3, 5, 8)).astype(np.float32)


def unstacked(tree, n):
    return tuple(jax.tree.map(lambda leaf, i=i: leaf[i], tree) for i in range(n))


def test_params_are_those_of_serial_stacked(key):
    params, _ = nn.repeat(BLOCK, 4).init(key, (5, 8))
    serial_params, _ = nn.serial(*[BLOCK] * 4).init(key, (5, 8))
    assert params[0]["scale"].shape == (4, 8)
    jax.tree.map(np.testing.assert_array_equal, unstacked(params, 4), serial_params)


@pytest.mark.parametrize("train_mode", [False, True])
def test_outputs_and_gradients_equal_serial(key, train_mode):
    repeated, serial = nn.repeat(BLOCK, 4), nn.serial(*[BLOCK] * 4)
    params, state = repeated.init(key, (5, 8))
    serial_params, serial_state = serial.init(key, (5, 8))
    kwargs = dict(key=jax.random.key(1), train=train_mode)

    def total(layer, p, s):
        return jnp.sum(layer.apply(p, s, X, **kwargs)[0] ** 2)

    np.testing.assert_allclose(
        repeated.apply(params, state, X, **kwargs)[0],
        serial.apply(serial_params, serial_state, X, **kwargs)[0],
        rtol=1e-5,
        atol=1e-6,
    )
    grads = jax.grad(lambda p: total(repeated, p, state))(params)
    serial_grads = jax.grad(lambda p: total(serial, p, serial_state))(serial_params)
    for a, b in zip(
        jax.tree.leaves(unstacked(grads, 4)), jax.tree.leaves(serial_grads), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_each_copy_keeps_its_own_layer_state(key):
    block = nn.serial(nn.Dense(6), nn.BatchNorm())
    repeated, serial = nn.repeat(block, 3), nn.serial(*[block] * 3)
    params, state = repeated.init(key, (6,))
    serial_params, serial_state = serial.init(key, (6,))
    x = X[:, 0, :6]
    _, new_state = repeated.apply(params, state, x, train=True)
    _, serial_new = serial.apply(serial_params, serial_state, x, train=True)
    assert new_state[1]["mean"].shape == (3, 6)
    for a, b in zip(
        jax.tree.leaves(unstacked(new_state, 3)), jax.tree.leaves(serial_new), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_program_does_not_grow_with_the_number_of_copies(key):
    """The scanned body holds one copy: the jaxpr of 32 copies is as long as that of 2."""

    def length(n):
        layer = nn.repeat(BLOCK, n)
        params, state = layer.init(key, (5, 8))
        return len(jax.make_jaxpr(lambda p: layer.apply(p, state, X)[0])(params).jaxpr.eqns)

    assert length(32) == length(2)


def test_a_small_transformer_built_with_repeat_trains(key):
    width = 16
    block = nn.residual(nn.serial(nn.LayerNorm(), nn.MultiHeadAttention(2, width, causal=True)))
    model = nn.serial(nn.Embedding(11, width), nn.repeat(block, 3), nn.Dense(11))
    ids = np.random.default_rng(0).integers(0, 11, size=(64, 6)).astype(np.int32)
    result = train.fit(model, losses.softmax_cross_entropy, optim.adam(1e-2), (ids, ids),
                       epochs=8, batch_size=16, key=key, verbose=False)  # fmt: skip
    assert result.history["loss"][-1] < 0.5 * result.history["loss"][0]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: nn.repeat(nn.Dense(4), 3).init(jax.random.key(0), (8,)),
            ValueError,
            r"`layer` must keep its input's shape and dtype, but maps \(1, 8\) float32 to shape \(1, 4\)",
        ),
        (lambda: nn.repeat(BLOCK, 0), ValueError, r"repeat: `n` must be a positive int, got 0"),
        (
            lambda: nn.repeat(BLOCK, 2.0),
            TypeError,
            r"repeat: `n` must be a positive int, got 2.0 \(float\)",
        ),
        (lambda: nn.repeat(nn.Relu, 2), TypeError, r"`Relu` instead of `Relu\(\)`"),
        (
            lambda: nn.repeat(BLOCK, 2).init(jax.random.key(0), ((5, 8), (5, 8))),
            TypeError,
            r"`input_shape` must be one shape",
        ),
    ],
)
def test_bad_repeat_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
