"""The epoch's shuffle (`permutation`) and its unguarded fast path.

An epoch runs without the per-step guard while every step is finite and falls back to the
guarded program from the rollback point otherwise; small data is gathered for the whole epoch
at once. Each of these must give what the guarded, gathered-per-step epoch gives.
"""

import collections
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import losses, nn, optim, train
from fnnet.train import epoch as epoch_module
from fnnet.train.epoch import permutation

X = np.random.default_rng(0).normal(size=(96, 5)).astype(np.float32)
Y = (X[:, 0] + X[:, 1] > 0).astype(np.int32)
MODEL = nn.MLP((16,), 2)
LOSS = losses.softmax_cross_entropy


def numpy_permutation(a: int, b: int, n: int) -> np.ndarray:
    """The order of ``F(i) = mix(mix(i ^ a) + b)`` over ``i < n``, written from the docstring
    with NumPy's wrapping uint32 arithmetic and argsort (lowbias32 as published)."""

    def mix(x):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x7FEB352D)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(0x846CA68B)
        return x ^ (x >> np.uint32(16))

    with np.errstate(over="ignore"):
        keys = mix(mix(np.arange(n, dtype=np.uint32) ^ np.uint32(a)) + np.uint32(b))
    return np.argsort(keys, kind="stable")


@pytest.mark.parametrize("n", [1, 2, 3, 10, 97, 1024, 60000])
def test_permutation_is_a_bijection_equal_to_the_numpy_formula(n):
    key = jax.random.key(n)
    order = np.asarray(jax.jit(permutation, static_argnums=1)(key, n))
    assert order.dtype == np.int32 and np.array_equal(np.sort(order), np.arange(n))
    a, b = np.asarray(jax.random.bits(key, (2,), jnp.uint32))
    np.testing.assert_array_equal(order, numpy_permutation(a, b, n))


def test_permutation_draws_every_order_equally_often():
    """Over 120000 keys each of the 24 orders of 4 items turns up 5000 times, to sampling
    noise (chi-square with 23 degrees of freedom: 99.9% of draws stay below 49.7)."""
    keys = jax.random.split(jax.random.key(0), 120_000)
    orders = np.asarray(jax.jit(jax.vmap(lambda k: permutation(k, 4)))(keys))
    counts = collections.Counter(map(tuple, orders.tolist()))
    assert set(counts) == set(itertools.permutations(range(4)))
    expected = len(keys) / 24
    chi_square = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi_square < 49.7, counts


def test_permutation_leaves_no_trace_of_the_original_order():
    """Item i lands before item i + 1 half of the time, and every item is equally likely at
    every position."""
    keys = jax.random.split(jax.random.key(1), 20_000)
    orders = np.asarray(jax.jit(jax.vmap(lambda k: permutation(k, 12)))(keys))
    places = np.argsort(orders, axis=1)
    np.testing.assert_allclose((places[:, :-1] < places[:, 1:]).mean(axis=0), 0.5, atol=0.02)
    share = np.stack([np.bincount(orders[:, j], minlength=12) for j in range(12)]) / len(keys)
    np.testing.assert_allclose(share, 1 / 12, atol=0.01)


def _epoch_pair(optimizer, key=jax.random.key(0)):
    """The runner's epoch (fast path) and its guarded chunk over the same shuffle."""
    runner = train.epoch_runner(MODEL, LOSS, optimizer, batch_size=8)
    start = train.init_state(MODEL, optimizer, key, (5,))

    def fast():
        return runner.epoch(jax.tree.map(jnp.copy, start), X, Y)

    def guarded():
        state = jax.tree.map(jnp.copy, start)
        rows = runner.indices(state, len(X))
        state, step_losses, _ = runner.chunk(state, X, Y, rows, jnp.bool_(True))
        return state, step_losses

    return fast, guarded


def _assert_same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if jnp.issubdtype(x.dtype, jnp.inexact):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
        else:
            assert jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) or np.array_equal(x, y)


def test_the_fast_epoch_equals_the_guarded_one_when_every_step_is_finite():
    fast, guarded = _epoch_pair(optim.adam(1e-2))
    _assert_same(fast(), guarded())


@pytest.mark.parametrize("bad_from", [0, 5, 11])
def test_a_non_finite_step_falls_back_to_the_guarded_epoch(bad_from):
    """A learning rate of inf from update `bad_from` on: the fast pass ends non-finite, and
    the epoch is the guarded one (the last finite state, NaN losses from there)."""
    optimizer = optim.sgd(lambda t: jnp.where(t >= bad_from, jnp.inf, 0.1))
    fast, guarded = _epoch_pair(optimizer)
    state, step_losses = fast()
    _assert_same((state, step_losses), guarded())
    assert int(state.step) == bad_from
    assert np.isfinite(step_losses[:bad_from]).all() and np.isnan(step_losses[bad_from:]).all()


def test_gathering_the_epoch_at_once_equals_gathering_per_step(monkeypatch):
    fast, _ = _epoch_pair(optim.adam(1e-2))
    at_once = fast()
    monkeypatch.setattr(epoch_module, "_GATHER_AT_ONCE", 0)
    per_step, _ = _epoch_pair(optim.adam(1e-2))
    _assert_same(per_step(), at_once)


def test_the_epoch_traced_by_ones_own_jit_is_the_guarded_program():
    epoch = train.make_train_epoch(MODEL, LOSS, optim.adam(1e-2), batch_size=8)
    state = train.init_state(MODEL, optim.adam(1e-2), jax.random.key(0), (5,))
    expected = epoch(jax.tree.map(jnp.copy, state), X, Y)
    _assert_same(jax.jit(epoch)(state, jnp.asarray(X), jnp.asarray(Y)), expected)
