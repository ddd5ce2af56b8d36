"""Readers of the dataset files a learner downloads: IDX (MNIST, Fashion-MNIST, KMNIST) and
CIFAR-10's binary version. Nothing is downloaded; a wrong, truncated or missing file is a
`DatasetFileError` naming it.

IDX (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code, the number of
dimensions, each dimension as a big-endian uint32, then the values, big-endian, row-major.
CIFAR-10 binary (https://www.cs.toronto.edu/~kriz/cifar.html): records of one label byte and
3072 pixel bytes (the red, green and blue 32x32 planes).
"""

from __future__ import annotations

import gzip
import os
from typing import Any

import numpy as np

__all__ = ["DatasetFileError", "load_cifar10", "load_fashion_mnist", "load_mnist", "read_idx"]

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
_CIFAR_RECORD = 1 + 32 * 32 * 3


class DatasetFileError(ValueError):
    """A dataset file that is missing, truncated, or not in the format its name says."""


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array in an IDX file (``.gz`` or not), memory-mapped when uncompressed.

    Returns:
      An array of the file's shape and type (uint8 for MNIST's images and labels), in the
      machine's byte order for one-byte types (big-endian ``>i4`` etc. for wider ones).
    Raises:
      DatasetFileError (a ValueError): for a missing file, a wrong magic number, or a size
        other than the header says.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DatasetFileError(f"read_idx: no file {path}.")
    compressed = path.endswith(".gz")
    if compressed:
        try:
            with gzip.open(path, "rb") as file:
                content = file.read()
        except (OSError, EOFError) as error:
            raise DatasetFileError(
                f"read_idx: {path} is not a readable gzip file ({error})."
            ) from None
        header = content[:4]
    else:
        with open(path, "rb") as file:
            header = file.read(4)
    if len(header) < 4 or header[:2] != b"\0\0" or header[2] not in _IDX_TYPES or header[3] == 0:
        raise DatasetFileError(
            f"read_idx: {path} is not an IDX file: its magic number is {header.hex() or 'empty'}, "
            "expected 0000 then a type code (08 for uint8) and the number of dimensions."
        )
    dtype, ndim = np.dtype(_IDX_TYPES[header[2]]), header[3]
    offset = 4 + 4 * ndim
    dims_bytes = content[4:offset] if compressed else _read_at(path, 4, 4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        raise DatasetFileError(f"read_idx: {path} is truncated inside its header.")
    shape = tuple(int(d) for d in np.frombuffer(dims_bytes, ">u4"))
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    size = len(content) if compressed else os.path.getsize(path)
    if size != expected:
        raise DatasetFileError(
            f"read_idx: {path} holds {size} bytes, but its header (shape {shape}, {dtype}) "
            f"needs {expected}; the file is truncated or damaged, download it again."
        )
    if compressed:
        return np.frombuffer(content, dtype, offset=offset).reshape(shape)
    return np.memmap(path, dtype, mode="r", offset=offset, shape=shape)


def _read_at(path: str, offset: int, size: int) -> bytes:
    with open(path, "rb") as file:
        file.seek(offset)
        return file.read(size)


def _find(directory: str, names: tuple[str, ...], where: str, how: str) -> str:
    """The first of `names` (each also with ``.gz``) present in `directory`."""
    for name in names:
        for candidate in (name, name + ".gz"):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                return path
    raise DatasetFileError(f"{where}: no {names[0]} (or .gz) in {directory}; {how}")


def _split(where: str, split: Any) -> str:
    if split not in ("train", "test"):
        raise ValueError(f"{where}: `split` must be 'train' or 'test', got {split!r}.")
    return split


def _load_idx_pair(where: str, directory: str | os.PathLike, split: str, how: str):
    directory, split = os.fspath(directory), _split(where, split)
    images_name, labels_name = _MNIST_FILES[split]
    alternatives = lambda name: (name, name.replace("-idx", ".idx"))  # noqa: E731 (Kaggle's names)
    images_path = _find(directory, alternatives(images_name), where, how)
    labels_path = _find(directory, alternatives(labels_name), where, how)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetFileError(
            f"{where}: {images_path} holds {images.dtype} of shape {images.shape}, expected "
            "uint8 images (n, rows, columns)."
        )
    if labels.ndim != 1 or len(labels) != len(images):
        raise DatasetFileError(
            f"{where}: {labels_path} holds {labels.shape} labels for the {len(images)} images "
            f"of {images_path}; the two files must come from the same split."
        )
    return images[..., None], np.asarray(labels, np.int32)


def load_mnist(
    directory: str | os.PathLike, *, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST from its four IDX files in `directory` (``train-images-idx3-ubyte`` etc., ``.gz``
    or not).

    Returns:
      ``(images, labels)``: uint8 ``(n, 28, 28, 1)`` (memory-mapped when uncompressed) and
      int32 ``(n,)``; n is 60000 for "train", 10000 for "test".
    Raises:
      DatasetFileError (a ValueError): for a missing, truncated or wrong file, naming it.
    """
    return _load_idx_pair("load_mnist", directory, split,
                          "download MNIST's four files (e.g. from https://github.com/"
                          "cvdfoundation/mnist-dataset) into that directory.")  # fmt: skip


def load_fashion_mnist(
    directory: str | os.PathLike, *, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST from its four IDX files in `directory` (the same names as MNIST's);
    returns and raises as `load_mnist`."""
    return _load_idx_pair("load_fashion_mnist", directory, split,
                          "download the four files of https://github.com/zalandoresearch/"
                          "fashion-mnist (data/fashion) into that directory.")  # fmt: skip


def load_cifar10(
    directory: str | os.PathLike, *, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 from its binary version: ``data_batch_1.bin`` ... ``data_batch_5.bin`` and
    ``test_batch.bin`` in `directory` (or in its ``cifar-10-batches-bin``).

    Returns:
      ``(images, labels)``: uint8 ``(n, 32, 32, 3)`` (NHWC) and int32 ``(n,)`` in 0..9; n is
      50000 for "train", 10000 for "test".
    Raises:
      DatasetFileError (a ValueError): for a missing file, a size that is not a whole number of
        3073-byte records, or a label outside 0..9, naming the file.
    """
    where, directory, split = "load_cifar10", os.fspath(directory), _split("load_cifar10", split)
    inner = os.path.join(directory, "cifar-10-batches-bin")
    directory = inner if os.path.isdir(inner) else directory
    images, labels = [], []
    for name in _CIFAR_FILES[split]:
        path = os.path.join(directory, name)
        if not os.path.isfile(path):
            raise DatasetFileError(
                f"{where}: no {name} in {directory}; download the binary version "
                "(cifar-10-binary.tar.gz) of https://www.cs.toronto.edu/~kriz/cifar.html and "
                "unpack it there."
            )
        size = os.path.getsize(path)
        if size == 0 or size % _CIFAR_RECORD:
            raise DatasetFileError(
                f"{where}: {path} holds {size} bytes, not a whole number of {_CIFAR_RECORD}-byte "
                "records (a label and 32x32x3 pixels); it is truncated or not the binary version."
            )
        records = np.fromfile(path, np.uint8).reshape(-1, _CIFAR_RECORD)
        if records[:, 0].max() > 9:
            raise DatasetFileError(
                f"{where}: {path} has labels up to {records[:, 0].max()}, expected 0..9; it is "
                "not CIFAR-10's binary version (CIFAR-100's has two label bytes)."
            )
        labels.append(records[:, 0].astype(np.int32))
        images.append(records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return np.concatenate(images), np.concatenate(labels)
