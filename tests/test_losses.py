import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import losses

import references as ref
from gradcheck import check_reverse_grads

REDUCTIONS = ("mean", "sum", "none")


class TestRegressionLosses(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_against_reference(self):
        rng = np.random.default_rng(1)
        p = rng.normal(size=(6, 3)).astype(np.float32)
        t = rng.normal(size=(6, 3)).astype(np.float32) * 2
        cases = [
            (losses.mse, ref.mse, {}),
            (losses.mae, ref.mae, {}),
            (losses.huber, ref.huber, {}),
            (losses.huber, lambda a, b: ref.huber(a, b, delta=0.5), {"delta": 0.5}),
        ]
        for loss, reference, kwargs in cases:
            for reduction in REDUCTIONS:
                fn = self.variant(
                    lambda a, b, loss=loss, r=reduction, kw=kwargs: loss(a, b, reduction=r, **kw)
                )
                np.testing.assert_allclose(
                    fn(p, t), ref.reduce(reference(p, t), reduction), rtol=1e-5, atol=1e-6
                )


def test_regression_gradients_by_finite_differences(rng):
    p, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)) * 3
    for loss in (losses.mse, losses.mae, losses.huber):
        check_reverse_grads(lambda a, loss=loss: loss(a, t), p)


class TestCrossEntropy(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_integer_labels_with_smoothing(self):
        rng = np.random.default_rng(2)
        logits = rng.normal(scale=3, size=(5, 7)).astype(np.float32)
        labels = rng.integers(0, 7, size=5)
        for smoothing in (0.0, 0.1, 1.0):
            for reduction in REDUCTIONS:
                fn = self.variant(
                    lambda a, b, s=smoothing, r=reduction: losses.softmax_cross_entropy(
                        a, b, label_smoothing=s, reduction=r
                    )
                )
                expected = ref.reduce(ref.cross_entropy(logits, labels, smoothing), reduction)
                np.testing.assert_allclose(fn(logits, labels), expected, rtol=1e-5, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_probability_labels_and_extra_axes(self):
        rng = np.random.default_rng(3)
        logits = rng.normal(size=(2, 3, 4)).astype(np.float32)
        probs = rng.dirichlet(np.ones(4), size=(2, 3)).astype(np.float32)
        fn = self.variant(lambda a, b: losses.softmax_cross_entropy(a, b, label_smoothing=0.2))
        np.testing.assert_allclose(
            fn(logits, probs), ref.cross_entropy(logits, probs, 0.2).mean(), rtol=1e-5
        )
        per_example = losses.softmax_cross_entropy(logits, probs, reduction="none")
        chex.assert_shape(per_example, (2, 3))

    def test_one_hot_equals_class_ids(self):
        logits = jnp.array([[1.0, 2.0, 3.0], [0.0, -1.0, 5.0]])
        labels = jnp.array([2, 0])
        np.testing.assert_allclose(
            losses.softmax_cross_entropy(logits, labels),
            losses.softmax_cross_entropy(logits, jax.nn.one_hot(labels, 3)),
            rtol=1e-6,
        )


def test_cross_entropy_stable_for_extreme_logits():
    logits = jnp.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]])
    labels = jnp.array([1, 2])
    value, grad = jax.value_and_grad(losses.softmax_cross_entropy)(logits, labels)
    np.testing.assert_allclose(value, (2e4 + 0.0) / 2, rtol=1e-6)
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_binary_cross_entropy_against_reference_and_extremes(rng):
    x = np.concatenate([rng.normal(scale=4, size=20), [-1e4, -100, 0.0, 100, 1e4]]).astype(
        np.float32
    )
    t = np.concatenate([rng.uniform(size=20), [0, 1, 0.5, 0, 1]]).astype(np.float32)
    for reduction in REDUCTIONS:
        np.testing.assert_allclose(
            losses.sigmoid_binary_cross_entropy(x, t, reduction=reduction),
            ref.reduce(ref.binary_cross_entropy_with_logits(x, t), reduction),
            rtol=1e-5,
            atol=1e-6,
        )
    grad = jax.grad(losses.sigmoid_binary_cross_entropy)(jnp.asarray(x), jnp.asarray(t))
    assert bool(jnp.all(jnp.isfinite(grad)))
    # The gradient is exactly (sigmoid(x) - t) / n, also at the kink-free x = 0.
    np.testing.assert_allclose(grad, (ref.sigmoid(x) - t) / x.size, rtol=1e-5, atol=1e-8)


def test_classification_gradients_by_finite_differences(rng):
    logits = rng.normal(size=(4, 5))
    labels = rng.integers(0, 5, size=4)
    probs = rng.dirichlet(np.ones(5), size=4)
    targets = rng.uniform(size=(4, 5))
    for fn in (
        lambda a: losses.softmax_cross_entropy(a, labels, label_smoothing=0.1),
        lambda a: losses.softmax_cross_entropy(a, probs),
        lambda a: losses.sigmoid_binary_cross_entropy(a, targets),
    ):
        check_reverse_grads(fn, logits, order=2)


def test_out_of_range_labels_raise_eagerly_and_give_nan_under_jit():
    logits = jnp.zeros((3, 4))
    with pytest.raises(
        ValueError, match=r"integer `labels` must lie in \[0, 4\).*got 1 outside \(e.g. 4\)"
    ):
        losses.softmax_cross_entropy(logits, jnp.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"e.g. -1"):
        losses.softmax_cross_entropy(logits, np.array([0, -1, 1]))
    jitted = jax.jit(losses.softmax_cross_entropy)
    assert bool(jnp.isnan(jitted(logits, jnp.array([0, 4, 1]))))
    assert bool(jnp.isnan(jitted(logits, jnp.array([0, -1, 1]))))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: losses.mse(jnp.zeros((3, 1)), jnp.zeros(3)),
            ValueError,
            r"mse: `targets` must have the shape of `predictions` \(3, 1\), got \(3,\)",
        ),
        (lambda: losses.mae(jnp.zeros(3), jnp.zeros(4)), ValueError, "mae: `targets` must have"),
        (
            lambda: losses.huber(jnp.zeros(3), jnp.zeros(3), delta=0.0),
            ValueError,
            "huber: `delta` must be a finite number > 0, got 0.0",
        ),
        (
            lambda: losses.mse(jnp.zeros(3), jnp.zeros(3), reduction="avg"),
            ValueError,
            "`reduction` must be one of 'mean', 'sum', 'none'; got 'avg'",
        ),
        (
            lambda: losses.softmax_cross_entropy(jnp.zeros((3, 4)), jnp.zeros((3, 1), jnp.int32)),
            ValueError,
            r"integer `labels` must have shape logits.shape\[:-1\] = \(3,\), got \(3, 1\)",
        ),
        (
            lambda: losses.softmax_cross_entropy(jnp.zeros((3, 4)), jnp.zeros((3, 4), jnp.int32)),
            ValueError,
            "For one-hot or probability labels pass a float array",
        ),
        (
            lambda: losses.softmax_cross_entropy(jnp.zeros((3, 4)), jnp.zeros(3)),
            ValueError,
            r"probability `labels` must have the shape of `logits` \(3, 4\), got \(3,\)",
        ),
        (
            lambda: losses.softmax_cross_entropy(jnp.zeros((3, 4)), jnp.zeros(3, bool)),
            TypeError,
            "`labels` must be integer class ids or floating probabilities, got shape \\(3,\\) bool",
        ),
        (
            lambda: losses.softmax_cross_entropy(
                jnp.zeros((3, 4), jnp.int32), jnp.zeros(3, jnp.int32)
            ),
            TypeError,
            "`logits` must be a floating array",
        ),
        (
            lambda: losses.softmax_cross_entropy(
                jnp.zeros((3, 4)), jnp.zeros(3, jnp.int32), label_smoothing=1.5
            ),
            ValueError,
            r"`label_smoothing` must be a number in \[0, 1\], got 1.5",
        ),
        (
            lambda: losses.sigmoid_binary_cross_entropy(jnp.zeros(3), jnp.array([0.0, 2.0, -1.0])),
            ValueError,
            r"`targets` must lie in \[0, 1\], got 2 values outside",
        ),
        (
            lambda: losses.sigmoid_binary_cross_entropy(jnp.zeros((3, 1)), jnp.zeros(3)),
            ValueError,
            r"`targets` must have the shape of `logits` \(3, 1\), got \(3,\)",
        ),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_shape_checks_fire_under_jit():
    with pytest.raises(ValueError, match="must have the shape"):
        jax.jit(losses.mse)(jnp.zeros((3, 1)), jnp.zeros(3))


def test_mae_gradient_at_a_zero_residual_is_zero_as_pytorch():
    grad = jax.grad(lambda p: losses.mae(p, jnp.array([1.0, 2.0])))(jnp.array([1.0, 0.0]))
    np.testing.assert_array_equal(grad, [0.0, -0.5])
