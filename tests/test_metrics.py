import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import metrics

# A hand-worked 3-class case. Rows are true classes, columns predictions:
#          pred 0  pred 1  pred 2
# true 0     2       1       0
# true 1     0       1       1
# true 2     0       0       0      <- class 2 never occurs in y_true
Y_TRUE = np.array([0, 0, 0, 1, 1])
Y_PRED = np.array([0, 0, 1, 1, 2])
CONFUSION = np.array([[2, 1, 0], [0, 1, 1], [0, 0, 0]])
# per class: tp = [2, 1, 0], fp = [0, 1, 1], fn = [1, 1, 0], support = [3, 2, 0]
PRECISION = np.array([1.0, 0.5, 0.0])  # class 2: 0 / (0 + 1)
RECALL = np.array([2 / 3, 0.5, 0.0])  # class 2: no true samples -> 0, not NaN
F1 = np.array([0.8, 0.5, 0.0])  # 2tp / (2tp + fp + fn)


class TestHandComputed(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_confusion_matrix_and_accuracy(self):
        cm = self.variant(lambda t, p: metrics.confusion_matrix(t, p, num_classes=3))(
            Y_TRUE, Y_PRED
        )
        np.testing.assert_array_equal(cm, CONFUSION)
        assert cm.dtype == jnp.int32
        np.testing.assert_allclose(self.variant(metrics.accuracy)(Y_TRUE, Y_PRED), 3 / 5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_per_class_and_averages(self):
        expected = {
            "precision": PRECISION,
            "recall": RECALL,
            "f1_score": F1,
        }
        support = np.array([3, 2, 0])
        for name, per_class in expected.items():
            fn = getattr(metrics, name)
            for average, value in [
                (None, per_class),
                ("macro", per_class.mean()),
                ("weighted", (per_class * support).sum() / 5),
                ("micro", 3 / 5),  # single-label multiclass: micro P = R = F1 = accuracy
            ]:
                got = self.variant(
                    lambda t, p, fn=fn, a=average: fn(t, p, num_classes=3, average=a)
                )(Y_TRUE, Y_PRED)
                np.testing.assert_allclose(got, value, rtol=1e-6, err_msg=f"{name} {average}")
                assert bool(jnp.all(jnp.isfinite(got)))

    def test_without_num_classes_uses_the_classes_present(self):
        # Classes {0, 1, 2} are all present in y_true or y_pred, so the result is the same.
        np.testing.assert_allclose(metrics.f1_score(Y_TRUE, Y_PRED, average=None), F1, rtol=1e-6)
        # Labels need not be 0..k-1: classes {3, 7} present, in sorted order.
        got = metrics.recall(np.array([3, 7, 7]), np.array([3, 3, 7]), average=None)
        np.testing.assert_allclose(got, [1.0, 0.5])


def test_binary_positive_class():
    y_true = np.array([1, 1, 1, 0, 0, 0, 0])
    y_pred = np.array([1, 1, 0, 1, 0, 0, 0])  # tp 2, fn 1, fp 1, tn 3
    np.testing.assert_allclose(metrics.precision(y_true, y_pred), 2 / 3)
    np.testing.assert_allclose(metrics.recall(y_true, y_pred), 2 / 3)
    np.testing.assert_allclose(metrics.f1_score(y_true, y_pred), 2 / 3)
    np.testing.assert_allclose(metrics.precision(y_true, y_pred, pos_label=0), 3 / 4)
    np.testing.assert_allclose(metrics.recall(y_true, y_pred, num_classes=2, pos_label=0), 3 / 4)
    # No positive predictions: precision 0, not NaN.
    assert float(metrics.precision(y_true, np.zeros(7, int))) == 0.0
    assert float(metrics.f1_score(np.zeros(4, int), np.zeros(4, int))) == 0.0


def test_scores_are_reduced_with_argmax():
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    np.testing.assert_allclose(metrics.accuracy(np.array([0, 1, 1]), scores), 2 / 3)
    np.testing.assert_array_equal(
        metrics.confusion_matrix(np.array([0, 1, 1]), scores, num_classes=2), [[1, 0], [1, 1]]
    )


def test_jit_compiles_once_with_num_classes():
    traces = []

    @jax.jit
    def f1(t, p):
        traces.append(1)
        return metrics.f1_score(t, p, num_classes=3, average="macro")

    f1(jnp.asarray(Y_TRUE), jnp.asarray(Y_PRED))
    f1(jnp.asarray(Y_PRED), jnp.asarray(Y_TRUE))
    assert len(traces) == 1


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: metrics.f1_score(Y_TRUE, Y_PRED),
            ValueError,
            r"average='binary' needs at most two classes, got 3 \(\[0, 1, 2\]\); choose average='macro'",
        ),
        (
            lambda: metrics.precision(Y_TRUE, Y_PRED, num_classes=3),
            ValueError,
            "average='binary' needs num_classes <= 2, got 3",
        ),
        (
            lambda: metrics.recall(np.array([0, 2]), np.array([2, 0])),
            ValueError,
            r"`pos_label` must be one of the classes \[0, 2\], got 1",
        ),
        (
            lambda: metrics.recall(Y_TRUE, Y_PRED, average="samples"),
            ValueError,
            "`average` must be one of 'binary', 'micro', 'macro', 'weighted', None; got 'samples'",
        ),
        (
            lambda: metrics.confusion_matrix(Y_TRUE, Y_PRED, num_classes=2),
            ValueError,
            r"labels must lie in \[0, 2\) for num_classes=2, got 1 outside \(e.g. 2\)",
        ),
        (
            lambda: metrics.accuracy(Y_TRUE, Y_PRED[:4]),
            ValueError,
            "`y_pred` must have the shape of `y_true`",
        ),
        (
            lambda: metrics.accuracy(Y_TRUE, Y_PRED.astype(float)),
            TypeError,
            r"`y_pred` must hold integer class ids, got shape \(5,\) float32",
        ),
        (
            lambda: jax.jit(lambda t, p: metrics.f1_score(t, p, average="macro"))(Y_TRUE, Y_PRED),
            ValueError,
            "pass `num_classes` to use this metric under jit",
        ),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_equal_to_scikit_learn_on_random_labels():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for trial in range(20):
        k = int(rng.integers(2, 6))
        y_true = rng.integers(0, k, size=int(rng.integers(1, 40)))
        y_pred = rng.integers(0, k, size=y_true.size)
        averages = ["micro", "macro", "weighted", None] + (["binary"] if k == 2 else [])
        for average in averages:
            for ours, theirs in [
                (metrics.precision, sk.precision_score),
                (metrics.recall, sk.recall_score),
                (metrics.f1_score, sk.f1_score),
            ]:
                expected = theirs(
                    y_true,
                    y_pred,
                    average=average,
                    zero_division=0,
                    labels=list(range(k)) if average != "binary" else None,
                )
                got = ours(y_true, y_pred, num_classes=k, average=average)
                np.testing.assert_allclose(
                    got,
                    expected,
                    rtol=1e-6,
                    atol=1e-7,
                    err_msg=f"{trial} {ours.__name__} {average}",
                )
                expected = theirs(y_true, y_pred, average=average, zero_division=0)
                np.testing.assert_allclose(
                    ours(y_true, y_pred, average=average), expected, rtol=1e-6, atol=1e-7
                )
        np.testing.assert_array_equal(
            metrics.confusion_matrix(y_true, y_pred, num_classes=k),
            sk.confusion_matrix(y_true, y_pred, labels=list(range(k))),
        )
        np.testing.assert_allclose(
            metrics.accuracy(y_true, y_pred), sk.accuracy_score(y_true, y_pred)
        )
