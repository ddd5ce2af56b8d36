import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import data


def test_split_covers_every_sample_once_and_keeps_rows_paired(key):
    x = np.arange(100).reshape(50, 2)
    y = np.arange(50)
    parts = data.split(key, x, y, fractions=(0.6, 0.2, 0.2))
    assert [len(p[1]) for p in parts] == [30, 10, 10]
    ids = np.concatenate([p[1] for p in parts])
    np.testing.assert_array_equal(np.sort(ids), np.arange(50))  # each sample exactly once
    for px, py in parts:
        np.testing.assert_array_equal(px[:, 0], 2 * py)  # rows stay paired
    again = data.split(key, x, y, fractions=(0.6, 0.2, 0.2))
    np.testing.assert_array_equal(again[0][1], parts[0][1])  # reproducible from the key
    other = data.split(jax.random.key(1), x, y, fractions=(0.6, 0.2, 0.2))
    assert not np.array_equal(other[0][1], parts[0][1])
    assert not np.array_equal(np.sort(parts[0][1]), parts[0][1])  # shuffled


def test_split_single_array_gives_one_tuples_and_keeps_type(key):
    (train,), (test,) = data.split(key, jnp.arange(10), fractions=(0.7, 0.3))
    assert isinstance(train, jax.Array) and train.shape == (7,) and test.shape == (3,)
    (train,), (_,) = data.split(key, np.arange(10), fractions=(0.5, 0.5))
    assert isinstance(train, np.ndarray)


@pytest.mark.parametrize(("classes", "per_class"), [(10, 13), (10, 7), (4, 25), (3, 5)])
def test_stratified_parts_have_the_unstratified_sizes_and_every_class_share(
    key, classes, per_class
):
    y = np.repeat(np.arange(classes), per_class)
    x = np.arange(y.size)
    plain = data.split(key, x, y)
    parts = data.split(key, x, y, stratify=y)
    assert [len(p[0]) for p in parts] == [len(p[0]) for p in plain]
    np.testing.assert_array_equal(np.sort(np.concatenate([p[0] for p in parts])), x)
    for (part_x, part_y), fraction in zip(parts, (0.8, 0.1, 0.1), strict=True):
        np.testing.assert_array_equal(y[part_x], part_y)
        counts = np.bincount(part_y, minlength=classes)
        assert np.all(np.abs(counts - fraction * per_class) < 1 + 1e-9), counts


def test_stratified_split_keeps_class_shares(key):
    y = np.repeat([0, 1, 2], [100, 50, 10])
    parts = data.split(key, y, fractions=(0.8, 0.1, 0.1), stratify=y)
    counts = [np.bincount(p[0], minlength=3) for p in parts]
    np.testing.assert_array_equal(counts[0], [80, 40, 8])
    np.testing.assert_array_equal(counts[1] + counts[2], [20, 10, 2])
    np.testing.assert_array_equal(sum(counts), [100, 50, 10])


@pytest.mark.parametrize("drop_last", [False, True])
def test_batches_cover_every_sample_once_per_epoch(key, drop_last):
    x, y = np.arange(23) * 10, np.arange(23)
    out = list(data.batches(key, x, y, batch_size=5, drop_last=drop_last))
    sizes = [len(b[1]) for b in out]
    assert sizes == ([5] * 4 if drop_last else [5, 5, 5, 5, 3])
    seen = np.concatenate([b[1] for b in out])
    assert len(np.unique(seen)) == len(seen)  # no sample twice
    if not drop_last:
        np.testing.assert_array_equal(np.sort(seen), np.arange(23))
    for bx, by in out:
        np.testing.assert_array_equal(bx, 10 * by)
    assert not np.array_equal(seen, np.sort(seen))  # shuffled
    other = np.concatenate([b[1] for b in data.batches(jax.random.key(5), x, y, batch_size=5)])
    assert not np.array_equal(other, seen)


def test_batches_without_shuffle_keep_order():
    out = list(data.batches(None, np.arange(7), batch_size=3, shuffle=False))
    assert [b[0].tolist() for b in out] == [[0, 1, 2], [3, 4, 5], [6]]


def test_standardize_uses_training_statistics_only():
    train = np.array([[0.0, 5.0], [2.0, 5.0], [4.0, 5.0]])
    test = np.array([[2.0, 7.0]])
    train_s, test_s = data.standardize(train, test)
    np.testing.assert_allclose(train_s.mean(0), [0, 0], atol=1e-7)
    np.testing.assert_allclose(train_s[:, 0].std(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(test_s, [[0.0, 2.0]])  # constant feature: divided by 1
    assert isinstance(data.standardize(jnp.asarray(train))[0], jax.Array)


def test_one_hot():
    np.testing.assert_array_equal(data.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(
        ValueError, match=r"one_hot: `labels` must lie in \[0, 3\), got 1 outside \(e.g. 3\)"
    ):
        data.one_hot(np.array([0, 3]), 3)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda k: data.split(k, np.zeros(10), fractions=(0.5, 0.4)),
            r"split: `fractions` must sum to 1, got \(0.5, 0.4\) \(sum 0.9\)",
        ),
        (
            lambda k: data.split(k, np.zeros(10), fractions=(1.2, -0.2)),
            r"`fractions` must be numbers in \(0, 1\]",
        ),
        (
            lambda k: data.split(k, np.zeros(10), np.zeros(9)),
            "split: arrays must have the same number of samples; array 1 has 10, array 2 has 9",
        ),
        (
            lambda k: data.split(k, np.zeros(3), fractions=(0.9, 0.05, 0.05)),
            "part 1 .* would be empty with 3 samples",
        ),
        (
            lambda k: data.split(k, np.zeros(4), stratify=np.zeros(3)),
            r"`stratify` must have shape \(4,\), got \(3,\)",
        ),
        (
            lambda k: data.batches(k, np.zeros(10), batch_size=0),
            "batches: `batch_size` must be a positive int, got 0",
        ),
        (
            lambda k: data.batches(k, np.zeros(10), batch_size=11, drop_last=True),
            "`batch_size` 11 exceeds the 10 samples, so drop_last=True would yield nothing",
        ),
        (
            lambda k: data.batches(k, np.zeros(10), np.zeros(8), batch_size=2),
            "array 1 has 10, array 2 has 8",
        ),
        (
            lambda k: data.batches(None, np.zeros(10), batch_size=2),
            "`key` is required when shuffle=True",
        ),
        (
            lambda k: data.standardize(np.zeros((4, 3)), np.zeros((2, 2))),
            r"every array must have the feature shape of `train` \(3,\), got \(2,\)",
        ),
    ],
)
def test_bad_input(call, match, key):
    with pytest.raises(ValueError, match=match):
        call(key)


def test_int_seed_instead_of_key_gets_a_hint():
    with pytest.raises(
        TypeError, match=r"split: `key` must be a JAX PRNG key, got 3; pass `jax.random.key\(3\)`"
    ):
        data.split(3, np.zeros(10))
