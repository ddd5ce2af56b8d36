import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import activations, losses, nn

from gradcheck import check_reverse_grads

# (layer, input shape without batch, expected output shape without batch)
SHAPE_CASES = [
    ("Dense", lambda: nn.Dense(7), (5,), (7,)),
    ("Dense-no-bias", lambda: nn.Dense(3, use_bias=False), (2, 5), (2, 3)),
    ("Flatten", nn.Flatten, (2, 3, 4), (24,)),
    ("Dropout", lambda: nn.Dropout(0.5), (6,), (6,)),
    *[
        (name, getattr(nn, name), (3, 4), (3, 4))
        for name in (
            "Sigmoid",
            "Relu",
            "Tanh",
            "LeakyRelu",
            "Elu",
            "Gelu",
            "Silu",
            "Softplus",
            "Softmax",
            "LogSoftmax",
            "Identity",
        )
    ],
    ("serial", lambda: nn.serial(nn.Flatten(), nn.Dense(4), nn.Relu()), (2, 3), (4,)),
    ("MLP", lambda: nn.MLP((8, 6), 3, drop_rate=0.2), (5,), (3,)),
    ("residual", lambda: nn.residual(nn.serial(nn.Dense(5), nn.Tanh())), (5,), (5,)),
    (
        "parallel+Concatenate",
        lambda: nn.serial(nn.parallel(nn.Dense(2), nn.Dense(3)), nn.Concatenate()),
        (4,),
        (5,),
    ),
    (
        "parallel+Add",
        lambda: nn.serial(nn.parallel(nn.Dense(2), nn.Identity()), nn.Add()),
        (2,),
        (2,),
    ),
]


@pytest.mark.parametrize(
    ("name", "make", "in_shape", "out_shape"), SHAPE_CASES, ids=[c[0] for c in SHAPE_CASES]
)
class TestShapeAgreement:
    def test_apply_returns_the_inferred_shape_for_any_batch(
        self, name, make, in_shape, out_shape, key
    ):
        layer = make()
        params, state = layer.init(key, in_shape)
        for batch in (1, 3):
            for train in (False, True):
                x = jax.random.normal(key, (batch, *in_shape))
                y, new_state = layer.apply(params, state, x, key=key, train=train)
                chex.assert_shape(y, (batch, *out_shape))
                chex.assert_trees_all_equal_structs(new_state, state)

    def test_jit_grad_and_vmap(self, name, make, in_shape, out_shape, key):
        layer = make()
        params, state = layer.init(key, in_shape)
        x = jax.random.normal(key, (4, *in_shape))

        def loss(p, x):
            return jnp.sum(layer.apply(p, state, x, key=key, train=True)[0] ** 2)

        grads = jax.jit(jax.grad(loss))(params, x)
        chex.assert_trees_all_equal_shapes(grads, params)
        # vmap over a batch of batches equals applying to each batch.
        xs = jnp.stack([x, 2 * x])
        batched = jax.vmap(lambda xi: layer.apply(params, state, xi)[0])(xs)
        np.testing.assert_allclose(
            batched[1], layer.apply(params, state, xs[1])[0], rtol=1e-5, atol=1e-6
        )


def test_dense_computes_affine_map_and_documents_param_shapes(key):
    layer = nn.Dense(3)
    params, state = layer.init(key, (4,))
    chex.assert_shape([params["w"], params["b"]], [(4, 3), (3,)])
    np.testing.assert_array_equal(params["b"], np.zeros(3))  # default b_init is zeros
    x = np.arange(8.0, dtype=np.float32).reshape(2, 4)
    np.testing.assert_allclose(
        layer.apply(params, state, x)[0], x @ params["w"] + params["b"], rtol=1e-6
    )
    assert set(nn.Dense(3, use_bias=False).init(key, (4,))[0]) == {"w"}


def test_mlp_structure_and_activation_choices(key):
    x = jax.random.normal(key, (2, 5))
    for activation, fn in (
        ("tanh", jnp.tanh),
        ("sigmoid", activations.sigmoid),
        (jnp.sin, jnp.sin),
        (nn.Elu(), activations.elu),
    ):
        model = nn.MLP((4,), 3, activation=activation, output_activation="softmax")
        params, state = model.init(key, (5,))
        h = fn(x @ params[0]["w"] + params[0]["b"])
        expected = jax.nn.softmax(h @ params[2]["w"] + params[2]["b"])
        np.testing.assert_allclose(model.apply(params, state, x)[0], expected, rtol=1e-5)
    linear = nn.MLP((), 2)
    assert len(linear.init(key, (5,))[0]) == 1


def test_mlp_gradients_match_finite_differences(key):
    model = nn.MLP((6, 5), 3, activation="tanh")
    params, state = model.init(key, (4,))
    x = jax.random.normal(jax.random.key(1), (8, 4))
    labels = jnp.array([0, 1, 2, 0, 1, 2, 0, 1])

    def loss(p):
        return losses.softmax_cross_entropy(model.apply(p, state, x)[0], labels)

    check_reverse_grads(loss, params, tol=2e-2)


def test_dropout_training_and_evaluation(key):
    layer = nn.Dropout(0.25)
    params, state = layer.init(key, (10_000,))
    x = jnp.ones((2, 10_000))
    np.testing.assert_array_equal(layer.apply(params, state, x)[0], x)  # eval: identity
    y = np.asarray(layer.apply(params, state, x, key=key, train=True)[0])
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.01
    assert abs(y.mean() - 1.0) < 0.02  # inverted scaling keeps the expectation
    np.testing.assert_array_equal(y, layer.apply(params, state, x, key=key, train=True)[0])
    with pytest.raises(ValueError, match="Dropout: `key` is required when train=True"):
        layer.apply(params, state, x, train=True)


def test_serial_splits_keys_so_dropout_layers_differ(key):
    model = nn.serial(nn.Dropout(0.5), nn.Dropout(0.5))
    params, state = model.init(key, (1000,))
    x = jnp.ones((1, 1000))
    first = nn.Dropout(0.5).apply({}, {}, x, key=jax.random.split(key, 2)[0], train=True)[0]
    both = model.apply(params, state, x, key=key, train=True)[0]
    assert not np.array_equal(first * 2, both)


def test_residual_adds_inputs(key):
    inner = nn.Dense(3)
    block = nn.residual(inner)
    params, state = block.init(key, (3,))
    x = jax.random.normal(key, (2, 3))
    np.testing.assert_allclose(
        block.apply(params, state, x)[0], x + inner.apply(params, {}, x)[0], rtol=1e-6
    )


def test_parallel_outputs_a_tuple(key):
    layer = nn.parallel(nn.Dense(2), nn.Relu())
    params, state = layer.init(key, (3,))
    outputs, _ = layer.apply(params, state, jnp.ones((4, 3)))
    assert isinstance(outputs, tuple)
    chex.assert_shape(outputs, [(4, 2), (4, 3)])


def test_mlp_forward_backward_compiles_once(key):
    traces = []
    model = nn.MLP((16,), 4)
    params, state = model.init(key, (8,))

    @jax.jit
    def step(params, x, y):
        traces.append(1)  # runs only while tracing

        def loss(p):
            return losses.softmax_cross_entropy(model.apply(p, state, x)[0], y)

        return jax.value_and_grad(loss)(params)

    x, y = jnp.ones((5, 8)), jnp.array([0, 1, 2, 3, 0])
    _, grads = step(params, x, y)
    params = jax.tree.map(lambda p, g: p - 0.1 * g, params, grads)
    step(params, 2 * x, y)
    assert len(traces) == 1


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: nn.Dense(0), ValueError, "Dense: `features` must be a positive int, got 0."),
        (
            lambda: nn.Dense(2.5),
            TypeError,
            r"Dense: `features` must be a positive int, got 2.5 \(float\).",
        ),
        (
            lambda: nn.Dense("3"),
            TypeError,
            r"Dense: `features` must be a positive int, got '3' \(str\).",
        ),
        (
            lambda: nn.MLP((64, -1), 10),
            ValueError,
            r"MLP: `hidden_sizes\[1\]` must be a positive int, got -1.",
        ),
        (lambda: nn.MLP(64, 10), TypeError, "`hidden_sizes` must be a sequence of positive ints"),
        (
            lambda: nn.MLP((64,), 0),
            ValueError,
            "MLP: `out_features` must be a positive int, got 0.",
        ),
        (
            lambda: nn.Dropout(1.0),
            ValueError,
            r"Dropout: `drop_rate` must be a number in \[0, 1\), got 1.0.",
        ),
        (lambda: nn.Dropout(-0.1), ValueError, r"`drop_rate` must be a number in \[0, 1\)"),
        (
            lambda: nn.MLP((4,), 2, activation="relu6"),
            ValueError,
            "MLP: unknown activation 'relu6'; valid names are 'sigmoid', 'relu', 'tanh'",
        ),
        (
            lambda: nn.MLP((4,), 2, activation=nn.LeakyRelu),
            TypeError,
            r"layer constructor `LeakyRelu`; pass its name \('leaky_relu'\)",
        ),
        (lambda: nn.MLP((4,), 2, activation=3), TypeError, "`activation` must be a name"),
        (
            lambda: nn.serial(nn.Dense(3), nn.Relu),
            TypeError,
            r"serial: argument 2 is the function `Relu`, expected a Layer. Did you write `Relu` instead of `Relu\(\)`\?",
        ),
        (lambda: nn.serial(nn.Dense(3), jnp.tanh), TypeError, "serial: argument 2 must be a Layer"),
        (lambda: nn.serial(), ValueError, "serial: needs at least one layer"),
        (
            lambda: nn.parallel(nn.Dense(2), "dense"),
            TypeError,
            "parallel: argument 2 must be a Layer",
        ),
        (
            lambda: nn.Dense(3).init(jax.random.key(0), 5),
            TypeError,
            r"Dense: `input_shape` must be a tuple of ints without the batch axis, e.g. \(64,\)",
        ),
        (
            lambda: nn.residual(nn.Dense(4)).init(jax.random.key(0), (3,)),
            ValueError,
            r"residual: the wrapped layer must keep the input shape \(3,\), but it outputs \(4,\)",
        ),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_feature_axis_mismatch_raises_eagerly_and_under_jit(key):
    model = nn.MLP((4,), 2)
    params, state = model.init(key, (64,))
    message = r"Dense: inputs must have last axis 64, got shape \(32, 10\)."
    with pytest.raises(ValueError, match=message):
        model.apply(params, state, jnp.ones((32, 10)))
    with pytest.raises(ValueError, match=message):
        jax.jit(lambda x: model.apply(params, state, x))(jnp.ones((32, 10)))


def test_serial_rejects_params_of_another_model(key):
    model = nn.MLP((4,), 2)
    other_params, state = nn.MLP((4, 4), 2).init(key, (3,))
    with pytest.raises(
        ValueError,
        match=r"serial: `params` must be a tuple with one entry per layer \(3\), got a tuple of 5",
    ):
        model.apply(other_params, state, jnp.ones((1, 3)))


def test_initializer_arguments_are_checked_at_construction():
    from fnnet import initializers

    with pytest.raises(
        TypeError,
        match=r"Dense: `w_init` got the factory `he_normal`; did you write `he_normal` instead of `he_normal\(\)`\?",
    ):
        nn.Dense(3, w_init=initializers.he_normal)
    with pytest.raises(
        TypeError, match="Conv2D: `b_init` must be an initializer init\\(key, shape, dtype\\)"
    ):
        nn.Conv2D(3, 3, b_init=0.0)
    with pytest.raises(TypeError, match="Embedding: `w_init` got the factory `normal`"):
        nn.Embedding(5, 2, w_init=initializers.normal)


def test_int_seeds_get_a_hint_to_make_a_key():
    with pytest.raises(
        TypeError, match=r"serial: `key` must be a JAX PRNG key, got 0; pass `jax.random.key\(0\)`"
    ):
        nn.MLP((3,), 2).init(0, (4,))
    with pytest.raises(TypeError, match=r"Dropout: `key` must be a JAX PRNG key, got 7"):
        nn.Dropout(0.5).apply({}, {}, jnp.ones((2, 3)), key=7, train=True)
