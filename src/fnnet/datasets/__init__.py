"""Datasets: real ones shipped inside the package, and synthetic ones drawn from a key."""

from fnnet.datasets.bundled import load_breast_cancer, load_digits, load_genesis
from fnnet.datasets.synthetic import make_moons, make_robot_arm, make_sine, make_spirals

__all__ = [
    "load_breast_cancer",
    "load_digits",
    "load_genesis",
    "make_moons",
    "make_robot_arm",
    "make_sine",
    "make_spirals",
]
