"""fnnet.datasets' readers of downloaded files, on small files written here in each format."""

import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fnnet import datasets


def write_idx(path, array, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    content = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as file:
            file.write(content)
    else:
        path.write_bytes(content)


def mnist_like(directory, n=12, compressed=False, split="train"):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    prefix = "train" if split == "train" else "t10k"
    suffix = ".gz" if compressed else ""
    write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return images, labels


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("load", [datasets.load_mnist, datasets.load_fashion_mnist])
def test_idx_files_read_as_uint8_nhwc_images_and_int32_labels(tmp_path, compressed, load):
    images, labels = mnist_like(tmp_path, compressed=compressed, split="test")
    got_images, got_labels = load(tmp_path, split="test")
    assert got_images.shape == (12, 28, 28, 1) and got_images.dtype == np.uint8
    assert got_labels.dtype == np.int32
    np.testing.assert_array_equal(got_images[..., 0], images)
    np.testing.assert_array_equal(got_labels, labels)
    assert isinstance(got_images, np.memmap) == (not compressed)  # streamed by fit's "auto"


def test_read_idx_reads_wider_types_big_endian(tmp_path):
    values = np.arange(-6, 6, dtype=np.int32).reshape(3, 4)
    write_idx(tmp_path / "x.idx", values, type_code=0x0C)
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "x.idx"), values)
    floats = np.linspace(0, 1, 5, dtype=np.float32)
    write_idx(tmp_path / "f.idx.gz", floats, type_code=0x0D)
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "f.idx.gz"), floats)


def test_bad_idx_files_are_errors_naming_the_file(tmp_path):
    mnist_like(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(datasets.DatasetFileError, match=rf"{path}.*truncated or damaged"):
        datasets.load_mnist(tmp_path)
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(
        ValueError, match=rf"{path} is not an IDX file: its magic number is 1f8b0800"
    ):
        datasets.read_idx(path)
    with pytest.raises(datasets.DatasetFileError, match=r"no t10k-images-idx3-ubyte \(or .gz\) in"):
        datasets.load_mnist(tmp_path, split="test")
    with pytest.raises(ValueError, match="`split` must be 'train' or 'test'"):
        datasets.load_mnist(tmp_path, split="val")
    broken = tmp_path / "broken.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(datasets.DatasetFileError, match="not a readable gzip file"):
        datasets.read_idx(broken)


def test_mismatched_image_and_label_files_are_an_error(tmp_path):
    mnist_like(tmp_path, n=12)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5, np.uint8))
    with pytest.raises(datasets.DatasetFileError, match=r"\(5,\) labels for the 12 images"):
        datasets.load_mnist(tmp_path)


def write_cifar(directory, names, n=7):
    rng = np.random.default_rng(1)
    out = {}
    for name in names:
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        planes = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        records = np.concatenate([labels[:, None], planes.reshape(n, -1)], axis=1)
        (directory / name).write_bytes(records.tobytes())
        out[name] = (planes.transpose(0, 2, 3, 1), labels)
    return out


def test_cifar10_binary_batches_read_as_nhwc(tmp_path):
    inner = tmp_path / "cifar-10-batches-bin"
    inner.mkdir()
    written = write_cifar(inner, [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"])
    images, labels = datasets.load_cifar10(tmp_path)
    assert images.shape == (35, 32, 32, 3) and images.dtype == np.uint8 and labels.dtype == np.int32
    np.testing.assert_array_equal(images[7:14], written["data_batch_2.bin"][0])
    np.testing.assert_array_equal(labels[:7], written["data_batch_1.bin"][1])
    test_images, _ = datasets.load_cifar10(inner, split="test")
    np.testing.assert_array_equal(test_images[3, 5, 9], written["test_batch.bin"][0][3, 5, 9])


def test_bad_cifar_files_are_errors_naming_the_file(tmp_path):
    with pytest.raises(datasets.DatasetFileError, match=r"no test_batch\.bin in .*binary version"):
        datasets.load_cifar10(tmp_path, split="test")
    write_cifar(tmp_path, ["test_batch.bin"])
    path = tmp_path / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(datasets.DatasetFileError, match=rf"{path} holds 21510 bytes, not a whole"):
        datasets.load_cifar10(tmp_path, split="test")
    path.write_bytes(bytes([12]) + bytes(3072))
    with pytest.raises(datasets.DatasetFileError, match="labels up to 12"):
        datasets.load_cifar10(tmp_path, split="test")


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist_cnn.py"


def test_the_mnist_example_trains_on_the_files_and_says_how_to_get_them_when_missing(tmp_path):
    mnist_like(tmp_path, n=96)
    mnist_like(tmp_path, n=24, split="test")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    command = [sys.executable, str(EXAMPLE), "--data", str(tmp_path), "--epochs", "1",
               "--batch-size", "8"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "MNIST: 88 train, 8 validation, 24 test images" in done.stdout
    assert "streamed from the host" in done.stdout and "test set:" in done.stdout
    missing = subprocess.run([*command[:3], str(tmp_path / "none")], env=env,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert missing.returncode == 1
    assert "curl -O https://storage.googleapis.com/cvdf-datasets/mnist/" in missing.stderr
