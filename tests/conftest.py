"""Shared fixtures: a PRNG key and float64 NumPy printing for readable failures."""

import jax
import numpy as np
import pytest


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Frees each module's compiled programs when it ends, so the suite's memory stays flat."""
    yield
    jax.clear_caches()
