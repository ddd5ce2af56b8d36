import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import nn

import references as ref
from gradcheck import check_reverse_grads


@pytest.mark.parametrize(
    ("layer", "reference", "gates"), [(nn.LSTM, ref.lstm, 4), (nn.GRU, ref.gru, 3)]
)
def test_recurrent_layers_match_the_documented_equations(layer, reference, gates, key):
    rnn = layer(6)
    params, state = rnn.init(key, (7, 4))
    chex.assert_shape(
        [params["w_ih"], params["w_hh"], params["b_ih"], params["b_hh"]],
        [(4, gates * 6), (6, gates * 6), (gates * 6,), (gates * 6,)],
    )
    assert float(jnp.max(jnp.abs(params["w_hh"]))) <= 1 / np.sqrt(
        6
    )  # PyTorch's U(-1/sqrt(H), 1/sqrt(H))
    x = jax.random.normal(jax.random.key(1), (3, 7, 4))
    got, _ = jax.jit(lambda p, x: rnn.apply(p, state, x))(params, x)
    chex.assert_shape(got, (3, 7, 6))
    expected = reference(
        x, *(np.asarray(params[n], np.float64) for n in ("w_ih", "w_hh", "b_ih", "b_hh"))
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer", [nn.LSTM, nn.GRU])
def test_recurrent_gradients_by_finite_differences(layer, key):
    rnn = layer(3)
    params, state = rnn.init(key, (4, 2))
    x = jax.random.normal(key, (2, 4, 2))
    check_reverse_grads(lambda p, x: jnp.sum(rnn.apply(p, state, x)[0] ** 2), params, x)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_reference(causal, key):
    layer = nn.MultiHeadAttention(2, 8, causal=causal)
    params, state = layer.init(key, (5, 6))
    chex.assert_shape([params["query"]["w"], params["out"]["w"]], [(6, 8), (8, 8)])
    x = jax.random.normal(jax.random.key(1), (3, 5, 6))
    got, _ = jax.jit(lambda p, x: layer.apply(p, state, x))(params, x)
    expected = ref.self_attention(
        x, jax.tree.map(lambda a: np.asarray(a, np.float64), params), 2, causal
    )
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_causal_attention_ignores_the_future(key):
    layer = nn.MultiHeadAttention(2, 8, causal=True)
    params, state = layer.init(key, (6, 8))
    x = jax.random.normal(key, (1, 6, 8))
    changed = x.at[:, 4:].set(100.0)
    a, b = layer.apply(params, state, x)[0], layer.apply(params, state, changed)[0]
    np.testing.assert_allclose(a[:, :4], b[:, :4], rtol=1e-5)
    assert not np.allclose(a[:, 4:], b[:, 4:])


@pytest.mark.parametrize("causal", [False, True])
def test_attention_gradients_by_finite_differences(causal, key):
    layer = nn.MultiHeadAttention(2, 4, causal=causal)
    params, state = layer.init(key, (3, 4))
    x = jax.random.normal(key, (2, 3, 4))
    grads = jax.grad(lambda p: jnp.sum(layer.apply(p, state, x)[0]))(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    check_reverse_grads(
        lambda p, x: jnp.sum(jnp.sin(layer.apply(p, state, x)[0])), params, x, tol=2e-2
    )


def test_embedding_lookup_and_gradient(key):
    layer = nn.Embedding(10, 3)
    params, state = layer.init(key, (4,))
    ids = jnp.array([[1, 2, 2, 9], [0, 0, 0, 0]])
    got, _ = layer.apply(params, state, ids)
    np.testing.assert_array_equal(got, np.asarray(params["embeddings"])[np.asarray(ids)])
    grads = jax.grad(lambda p: jnp.sum(layer.apply(p, state, ids)[0]))(params)["embeddings"]
    np.testing.assert_array_equal(grads[:, 0], [4, 1, 2, 0, 0, 0, 0, 0, 0, 1])  # counts per id


def test_embedding_out_of_range_ids_raise_eagerly_and_give_nan_under_jit(key):
    layer = nn.Embedding(5, 2)
    params, state = layer.init(key, (3,))
    with pytest.raises(
        ValueError, match=r"Embedding: ids must lie in \[0, 5\), got 2 outside \(e.g. 5\)"
    ):
        layer.apply(params, state, jnp.array([[0, 5, -1]]))
    got = jax.jit(lambda ids: layer.apply(params, state, ids)[0])(jnp.array([[0, 5, -1]]))
    assert bool(jnp.all(jnp.isfinite(got[0, 0]))) and bool(jnp.all(jnp.isnan(got[0, 1:])))


def test_small_transformer_block_is_a_few_lines(key):
    width = 16
    block = nn.serial(
        nn.residual(nn.serial(nn.LayerNorm(), nn.MultiHeadAttention(4, width, causal=True))),
        nn.residual(nn.serial(nn.LayerNorm(), nn.Dense(4 * width), nn.Gelu(), nn.Dense(width))),
    )
    model = nn.serial(nn.Embedding(30, width), block, block, nn.LayerNorm(), nn.Dense(30))
    params, state = model.init(key, (12,))
    logits, _ = model.apply(params, state, jnp.zeros((2, 12), jnp.int32))
    chex.assert_shape(logits, (2, 12, 30))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: nn.MultiHeadAttention(3, 16),
            r"`features` must be divisible by `num_heads` \(3\), got 16",
        ),
        (
            lambda: nn.MultiHeadAttention(2, 8).apply(
                nn.MultiHeadAttention(2, 8).init(jax.random.key(0), (4, 8))[0], {}, jnp.ones((4, 8))
            ),
            r"MultiHeadAttention: inputs must have rank 3 \(batch, time, features\), got shape \(4, 8\) of rank 2",
        ),
        (
            lambda: nn.LSTM(4).apply(
                nn.LSTM(4).init(jax.random.key(0), (5, 3))[0], {}, jnp.ones((5, 3))
            ),
            r"LSTM: inputs must have rank 3 \(batch, time, features\), got shape \(5, 3\) of rank 2",
        ),
        (
            lambda: nn.GRU(4).apply(
                nn.GRU(4).init(jax.random.key(0), (5, 3))[0], {}, jnp.ones((2, 5, 2))
            ),
            r"GRU: inputs must have last axis 3, got shape \(2, 5, 2\)",
        ),
        (
            lambda: nn.GRU(4).init(jax.random.key(0), (3,)),
            r"GRU: `input_shape` must be \(time, features\), got \(3,\)",
        ),
        (
            lambda: nn.Embedding(5, 2).apply(
                nn.Embedding(5, 2).init(jax.random.key(0), (3,))[0], {}, jnp.ones((1, 3))
            ),
            r"Embedding: inputs must be integer ids, got shape \(1, 3\) float32",
        ),
        (lambda: nn.Embedding(0, 2), "Embedding: `num_embeddings` must be a positive int, got 0"),
        (lambda: nn.LSTM(-2), "LSTM: `features` must be a positive int, got -2"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_parallel_branches_with_an_embedding_get_integer_inputs(key):
    layer = nn.parallel(nn.Identity(), nn.Embedding(5, 2))
    params, state = layer.init(key, (3,))
    (ids, vectors), _ = layer.apply(params, state, jnp.array([[0, 4, 2]]))
    chex.assert_shape([ids, vectors], [(1, 3), (1, 3, 2)])
    two_tables = nn.serial(nn.parallel(nn.Embedding(5, 2), nn.Embedding(7, 3)), nn.Concatenate())
    params, state = two_tables.init(key, (3,))
    chex.assert_shape(two_tables.apply(params, state, jnp.array([[0, 4, 2]]))[0], (1, 3, 5))
