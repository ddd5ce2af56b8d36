"""Shared fixtures, and the numerics every test runs under.

Float32 matmuls and convolutions run at full float32 precision on every backend: on NVIDIA GPUs
JAX's default is TF32 (about 1e-3 relative), which no comparison with a NumPy or PyTorch
reference survives; CPUs compute float32 fully either way, so this changes nothing there.
"""

import jax
import numpy as np
import pytest

jax.config.update("jax_default_matmul_precision", "highest")


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
