import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import nn

import references as ref
from gradcheck import check_reverse_grads


class TestBatchNorm(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_training_and_running_statistics_over_several_steps(self):
        layer = nn.BatchNorm(momentum=0.3, eps=1e-3)
        params, state = layer.init(jax.random.key(0), (4, 4, 3))
        params = {"scale": jnp.array([1.0, 2.0, 0.5]), "bias": jnp.array([0.0, -1.0, 3.0])}
        apply = self.variant(lambda p, s, x: layer.apply(p, s, x, train=True))
        mean, var = np.zeros(3), np.ones(3)
        rng = np.random.default_rng(0)
        for _ in range(4):
            x = (rng.normal(size=(5, 4, 4, 3)) * [1, 3, 0.2] + [0, 5, -2]).astype(np.float32)
            y, state = apply(params, state, x)
            expected, mean, var = ref.batch_norm_train(
                x, mean, var, np.asarray(params["scale"]), np.asarray(params["bias"]), 0.3, 1e-3
            )
            np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(state["mean"], mean, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(state["var"], var, rtol=1e-5)  # unbiased, n = 80

    @chex.variants(with_jit=True, without_jit=True)
    def test_evaluation_uses_running_statistics_and_keeps_state(self):
        layer = nn.BatchNorm()
        params, _ = layer.init(jax.random.key(0), (2,))
        state = {"mean": jnp.array([1.0, -1.0]), "var": jnp.array([4.0, 0.25])}
        x = jnp.array([[3.0, 0.0], [1.0, -1.0]])
        y, new_state = self.variant(lambda x: layer.apply(params, state, x))(x)
        np.testing.assert_allclose(
            y, [[2 / np.sqrt(4 + 1e-5), 1 / np.sqrt(0.25 + 1e-5)], [0.0, 0.0]], rtol=1e-6
        )
        chex.assert_trees_all_equal(new_state, state)


def test_batch_norm_gradients_by_finite_differences(key):
    layer = nn.BatchNorm()
    params, state = layer.init(key, (3,))
    x = jax.random.normal(key, (6, 3))

    def loss(params, x):
        return jnp.sum(jnp.sin(layer.apply(params, state, x, train=True)[0]))

    check_reverse_grads(loss, params, x, tol=2e-2)


def test_layer_norm_matches_reference_and_gradients(key):
    layer = nn.LayerNorm(eps=1e-4)
    params, state = layer.init(key, (5, 8))
    params = {"scale": jnp.linspace(0.5, 2, 8), "bias": jnp.linspace(-1, 1, 8)}
    x = np.asarray(jax.random.normal(key, (3, 5, 8))) * 4 + 2
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-4) * np.asarray(params["scale"]) + np.asarray(
        params["bias"]
    )
    np.testing.assert_allclose(layer.apply(params, state, x)[0], expected, rtol=1e-4, atol=1e-5)
    check_reverse_grads(
        lambda p, x: jnp.sum(jnp.sin(layer.apply(p, state, x)[0])),
        params,
        jnp.asarray(x[:1]),
        tol=2e-2,
    )


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: nn.BatchNorm(momentum=1.5),
            r"BatchNorm: `momentum` must be a number in \[0, 1\], got 1.5",
        ),
        (lambda: nn.BatchNorm(eps=0.0), "BatchNorm: `eps` must be a finite number > 0, got 0.0"),
        (
            lambda: nn.BatchNorm().apply(
                nn.BatchNorm().init(jax.random.key(0), (3,))[0],
                nn.BatchNorm().init(jax.random.key(0), (3,))[1],
                jnp.ones((1, 3)),
                train=True,
            ),
            r"BatchNorm: training needs more than one value per feature, got inputs of shape \(1, 3\)",
        ),
        (
            lambda: nn.LayerNorm().apply(
                nn.LayerNorm().init(jax.random.key(0), (3,))[0], {}, jnp.ones((2, 4))
            ),
            r"LayerNorm: inputs must have last axis 3, got shape \(2, 4\)",
        ),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
