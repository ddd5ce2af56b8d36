"""Datasets: real ones shipped inside the package, readers of downloaded files (MNIST,
Fashion-MNIST, CIFAR-10; nothing is downloaded), and synthetic ones drawn from a key."""

from fnnet.datasets.bundled import load_breast_cancer, load_digits, load_genesis
from fnnet.datasets.files import (
    DatasetFileError,
    load_cifar10,
    load_fashion_mnist,
    load_mnist,
    read_idx,
)
from fnnet.datasets.synthetic import make_moons, make_robot_arm, make_sine, make_spirals

__all__ = [
    "DatasetFileError",
    "load_breast_cancer",
    "load_cifar10",
    "load_digits",
    "load_fashion_mnist",
    "load_genesis",
    "load_mnist",
    "make_moons",
    "make_robot_arm",
    "make_sine",
    "make_spirals",
    "read_idx",
]
