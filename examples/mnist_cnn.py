"""MNIST (or Fashion-MNIST) with a small CNN, streamed from the downloaded IDX files.

The images stay memory-mapped uint8 files on the host: `fit` gathers each chunk of batches
there in the order of its shuffle, a background thread puts it on the device two chunks
ahead, and `transform` turns the bytes into floats on the device (a quarter of float32's
transfer). Nothing is downloaded: point `--data` at a directory holding
train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
t10k-labels-idx1-ubyte (``.gz`` or not).

    python examples/mnist_cnn.py --data ~/data/mnist [--fashion] [--epochs 3] [--plot curves.png]
"""

import argparse
import sys

import jax

from fnnet import datasets, losses, nn, optim, train

from common import print_test_scores, save_curves

HOW_TO_GET = """no MNIST files in {directory}: {error}

Download the four files (about 11 MB gzipped), e.g.
    mkdir -p {directory} && cd {directory}
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \\
             t10k-labels-idx1-ubyte; do
        curl -O https://storage.googleapis.com/cvdf-datasets/mnist/$f.gz
    done
(Fashion-MNIST: https://github.com/zalandoresearch/fashion-mnist, data/fashion), then run
this script again with --data {directory}."""


def cnn() -> nn.Layer:
    return nn.serial(
        nn.Conv2D(32, 3), nn.Relu(), nn.MaxPool2D(2),   # (14, 14, 32)
        nn.Conv2D(64, 3), nn.Relu(), nn.MaxPool2D(2),   # (7, 7, 64)
        nn.Flatten(), nn.Dropout(0.3), nn.Dense(128), nn.Relu(), nn.Dense(10),
    )  # fmt: skip


def scale(images):
    """uint8 pixels to [0, 1] floats, on the device inside the compiled step."""
    return images / 255.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="data/mnist", help="directory of the IDX files")
    parser.add_argument("--fashion", action="store_true", help="the files are Fashion-MNIST")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", help="save the training curves to this PNG (matplotlib)")
    args = parser.parse_args()
    load = datasets.load_fashion_mnist if args.fashion else datasets.load_mnist
    try:
        x_train, y_train = load(args.data, split="train")
        x_test, y_test = load(args.data, split="test")
    except datasets.DatasetFileError as error:
        print(HOW_TO_GET.format(directory=args.data, error=error), file=sys.stderr)
        return 1
    validation = len(x_train) // 12  # the last 5000 of 60000 training images
    print(f"{'Fashion-' if args.fashion else ''}MNIST: {len(x_train) - validation} train, "
          f"{validation} validation, {len(x_test)} test images (uint8, memory-mapped)")  # fmt: skip
    model = cnn()
    result = train.fit(
        model, losses.softmax_cross_entropy, optim.adam(1e-3),
        (x_train[:-validation], y_train[:-validation]),
        epochs=args.epochs, batch_size=args.batch_size, key=jax.random.key(args.seed),
        validation_data=(x_train[-validation:], y_train[-validation:]), metrics=("accuracy",),
        transform=scale, data_placement="host",
    )  # fmt: skip
    print_test_scores(model, result.state, (x_test, y_test), "test set:", transform=scale)
    if args.plot:
        save_curves(result.history, args.plot, "MNIST CNN")
    return 0


if __name__ == "__main__":
    sys.exit(main())
