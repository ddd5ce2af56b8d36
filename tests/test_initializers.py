import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import initializers as init

# (factory, expected std for a (fan_in=400, fan_out=300) kernel, distribution)
FAN_IN, FAN_OUT = 400, 300
CASES = {
    "glorot_uniform": (init.glorot_uniform(), np.sqrt(2 / (FAN_IN + FAN_OUT)), "uniform"),
    "glorot_normal": (init.glorot_normal(), np.sqrt(2 / (FAN_IN + FAN_OUT)), "normal"),
    "he_uniform": (init.he_uniform(), np.sqrt(2 / FAN_IN), "uniform"),
    "he_normal": (init.he_normal(), np.sqrt(2 / FAN_IN), "normal"),
    "lecun_uniform": (init.lecun_uniform(), np.sqrt(1 / FAN_IN), "uniform"),
    "lecun_normal": (init.lecun_normal(), np.sqrt(1 / FAN_IN), "normal"),
    "normal": (init.normal(stddev=0.3), 0.3, "normal"),
    "uniform": (init.uniform(scale=0.3), 0.3 / np.sqrt(3), "uniform"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_statistics_and_bounds(name, key):
    factory, std, kind = CASES[name]
    w = np.asarray(factory(key, (FAN_IN, FAN_OUT)))
    assert w.shape == (FAN_IN, FAN_OUT) and w.dtype == np.float32
    assert abs(w.mean()) < 0.05 * std
    np.testing.assert_allclose(w.std(), std, rtol=0.02)
    if kind == "uniform":
        limit = std * np.sqrt(3)
        assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit


@pytest.mark.parametrize("name", sorted(CASES))
def test_reproducible_from_key_and_dtype(name, key):
    factory = CASES[name][0]
    a = factory(key, (5, 3))
    np.testing.assert_array_equal(a, factory(key, (5, 3)))
    assert not np.array_equal(a, factory(jax.random.key(1), (5, 3)))
    assert factory(key, (5, 3), jnp.bfloat16).dtype == jnp.bfloat16


def test_conv_kernel_fans_include_receptive_field(key):
    # (kh, kw, in, out) = (3, 3, 16, 32): fan_in = 144, fan_out = 288.
    w = np.asarray(init.he_normal()(key, (3, 3, 16, 32)))
    np.testing.assert_allclose(w.std(), np.sqrt(2 / 144), rtol=0.05)
    w = np.asarray(init.glorot_uniform()(key, (3, 3, 16, 32)))
    assert np.abs(w).max() <= np.sqrt(6 / (144 + 288))


def test_zeros_and_ones(key):
    np.testing.assert_array_equal(init.zeros()(key, (2, 3)), np.zeros((2, 3)))
    np.testing.assert_array_equal(init.ones()(key, (4,), jnp.bfloat16), np.ones(4))


@pytest.mark.parametrize(
    ("factory", "kwargs", "match"),
    [
        (init.normal, {"stddev": -1.0}, "`stddev` must be a finite number >= 0, got -1.0"),
        (init.uniform, {"scale": float("nan")}, "`scale` must be a finite number >= 0, got nan"),
    ],
)
def test_bad_arguments(factory, kwargs, match):
    with pytest.raises(ValueError, match=match):
        factory(**kwargs)
