"""Real datasets shipped inside the package (no download at run time)."""

from __future__ import annotations

import gzip
from importlib import resources

import numpy as np

__all__ = ["load_breast_cancer", "load_digits", "load_genesis"]


def _data_file(name: str):
    return resources.files("fnnet.datasets").joinpath("data", name)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The UCI optical-recognition handwritten digits: 1797 images of 8x8 pixels, 10 classes.

    Source: E. Alpaydin and C. Kaynak, "Optical Recognition of Handwritten Digits", UCI Machine
    Learning Repository (1998), https://archive.ics.uci.edu/dataset/80, CC BY 4.0: its test
    part of 1797 samples, as distributed with scikit-learn's ``load_digits``.

    Returns:
      ``(images, labels)``: images ``(1797, 8, 8)`` float32 in [0, 1] (the original counts
      0..16 divided by 16) and labels ``(1797,)`` int32 in 0..9. Add a channel axis with
      ``images[..., None]`` for convolutions, flatten with ``images.reshape(-1, 64)`` for an MLP.

    Example:
      >>> images, labels = load_digits()
      >>> images.shape, labels.shape, int(labels.max())
      ((1797, 8, 8), (1797,), 9)
    """
    with _data_file("digits.npz").open("rb") as f, np.load(f) as data:
        return data["images"].astype(np.float32) / 16.0, data["labels"].astype(np.int32)


def load_breast_cancer() -> tuple[np.ndarray, np.ndarray]:
    """The Breast Cancer Wisconsin (Diagnostic) data: 569 tumours, 30 features, 2 classes.

    Source: W. Wolberg, O. Mangasarian, N. Street and W. Street, UCI Machine Learning
    Repository (1995), https://archive.ics.uci.edu/dataset/17, CC BY 4.0, as distributed with
    scikit-learn's ``load_breast_cancer``.

    Returns:
      ``(features, labels)``: features ``(569, 30)`` float32 (raw measurements of widely
      different scales: standardize them) and labels ``(569,)`` int32, 1 for malignant (212)
      and 0 for benign (357).
    """
    with _data_file("breast_cancer.npz").open("rb") as f, np.load(f) as data:
        return data["features"].astype(np.float32), data["labels"].astype(np.int32)


def load_genesis() -> str:
    """The Book of Genesis, King James Version (public domain), as one string of 196,818
    characters: one verse per line, 60 distinct characters.

    Source: the ``bible-kjv-text`` Debian package (text of 1611, copyright expired).
    """
    with _data_file("genesis.txt.gz").open("rb") as f:
        return gzip.decompress(f.read()).decode("ascii")
