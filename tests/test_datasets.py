import jax
import numpy as np
import pytest

from fnnet import datasets


def test_load_digits():
    images, labels = datasets.load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int32
    assert images.min() == 0.0 and images.max() == 1.0
    np.testing.assert_array_equal(
        np.bincount(labels), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    )
    np.testing.assert_array_equal(labels[:10], np.arange(10))


def test_load_breast_cancer():
    features, labels = datasets.load_breast_cancer()
    assert features.shape == (569, 30) and features.dtype == np.float32
    assert np.isfinite(features).all()
    np.testing.assert_array_equal(np.bincount(labels), [357, 212])  # 1 = malignant


def test_load_genesis():
    text = datasets.load_genesis()
    assert len(text) == 196_818 and len(set(text)) == 60
    assert text.startswith("In the beginning God created the heaven and the earth.\n")


@pytest.mark.parametrize(
    ("make", "x_shape", "y_shape"),
    [
        (datasets.make_moons, (100, 2), (100,)),
        (datasets.make_spirals, (100, 2), (100,)),
        (datasets.make_sine, (100, 1), (100, 1)),
        (datasets.make_robot_arm, (100, 3), (100, 2)),
    ],
)
def test_synthetic_shapes_and_reproducibility(make, x_shape, y_shape, key):
    x, y = make(100, key=key)
    assert x.shape == x_shape and y.shape == y_shape
    x2, y2 = make(100, key=key)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(make(100, key=jax.random.key(9))[0], x)


def test_robot_arm_forward_kinematics(key):
    angles, positions = datasets.make_robot_arm(50, key=key, link_lengths=(1.0, 0.5))
    q = np.asarray(angles, np.float64)
    x = np.cos(q[:, 0]) + 0.5 * np.cos(q[:, 0] + q[:, 1])
    y = np.sin(q[:, 0]) + 0.5 * np.sin(q[:, 0] + q[:, 1])
    np.testing.assert_allclose(positions, np.stack([x, y], 1), atol=1e-5)
    with pytest.raises(
        ValueError, match="`link_lengths` must be a non-empty sequence of positive numbers"
    ):
        datasets.make_robot_arm(5, key=key, link_lengths=(1.0, -1.0))


def test_spirals_classes_balanced(key):
    _, y = datasets.make_spirals(99, key=key, num_classes=3)
    np.testing.assert_array_equal(np.bincount(y), [33, 33, 33])
