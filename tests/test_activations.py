import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import activations

import references as ref
from gradcheck import check_reverse_grads

NAMES = sorted(ref.ACTIVATIONS)


@pytest.mark.parametrize("name", NAMES)
def test_matches_numpy_reference(name, rng):
    x = rng.normal(scale=3.0, size=(4, 7)).astype(np.float32)
    got = getattr(activations, name)(x)
    chex.assert_shape(got, x.shape)
    np.testing.assert_allclose(
        got, ref.ACTIVATIONS[name](x.astype(np.float64)), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("name", NAMES)
def test_finite_value_and_gradient_at_extremes(name):
    x = jnp.array([-1e4, -50.0, 0.0, 50.0, 1e4], jnp.float32)
    fn = getattr(activations, name)
    values = fn(x)
    grads = jax.grad(lambda v: jnp.sum(fn(v)))(x)
    assert bool(jnp.all(jnp.isfinite(values))), values
    assert bool(jnp.all(jnp.isfinite(grads))), grads


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_finite_differences(name, rng):
    x = jnp.asarray(rng.normal(size=(3, 5)) + 0.05)  # away from relu's kink at 0
    check_reverse_grads(getattr(activations, name), x)


def test_relu_gradient_at_zero_is_zero_as_pytorch():
    assert float(jax.grad(activations.relu)(0.0)) == 0.0


@pytest.mark.parametrize("name", NAMES)
def test_keeps_dtype(name):
    x = jnp.linspace(-3, 3, 8, dtype=jnp.bfloat16)
    assert getattr(activations, name)(x).dtype == jnp.bfloat16


def test_softmax_axis(rng):
    x = rng.normal(size=(3, 4))
    np.testing.assert_allclose(
        jnp.sum(activations.softmax(x, axis=0), axis=0), np.ones(4), rtol=1e-6
    )
    np.testing.assert_allclose(
        activations.log_softmax(x, axis=0), ref.ACTIVATIONS["log_softmax"](x.T).T, rtol=1e-5
    )


def test_gelu_tanh_approximation(rng):
    x = rng.normal(size=50)
    expected = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(
        activations.gelu(x, approximate=True), expected, rtol=1e-5, atol=1e-6
    )
