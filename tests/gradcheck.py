"""Finite-difference gradient checks shared by the tests."""

from jax.test_util import check_grads


def check_reverse_grads(fn, *args, order=1, tol=1e-2):
    """Reverse-mode derivatives of ``fn(*args)`` against finite differences.

    Tolerances are loose because the layers compute in float32.
    """
    check_grads(fn, args, order=order, modes=("rev",), atol=tol, rtol=tol)
