"""Handwritten digits with a small convolutional network and BatchNorm.

Two 3x3 convolutions with batch normalization, max pooling, dropout and a dense head, trained
on the bundled 8x8 UCI digits (NHWC images with one channel) with the same 80 / 10 / 10
stratified split and early stopping as examples/digits.py. BatchNorm's running statistics are
updated during training and used for validation and test.

    python examples/digits_cnn.py [--epochs 60] [--seed 0] [--precision bfloat16]
                                  [--plot digits_cnn_curves.png]
"""

import argparse
import time

import jax

from fnnet import data, datasets, losses, nn, optim, train

from common import PRECISIONS, print_test_scores, save_curves


def cnn() -> nn.Layer:
    return nn.serial(
        nn.Conv2D(32, 3, use_bias=False), nn.BatchNorm(), nn.Relu(),  # (8, 8, 32)
        nn.Conv2D(64, 3, use_bias=False), nn.BatchNorm(), nn.Relu(),  # (8, 8, 64)
        nn.MaxPool2D(2), nn.Flatten(), nn.Dropout(0.3),               # (1024,)
        nn.Dense(128), nn.Relu(), nn.Dense(10),                       # logits
    )  # fmt: skip


def run(seed: int, *, epochs: int = 60, precision: str = "float32", verbose: bool = True):
    """Trains the CNN with early stopping; returns ``(model, result, stopper, test_data)``."""
    split_key, train_key = jax.random.split(jax.random.key(seed))
    images, labels = datasets.load_digits()
    images = images[..., None]  # (1797, 8, 8, 1): NHWC with one channel
    (x_train, y_train), (x_val, y_val), test_data = data.split(
        split_key, images, labels, fractions=(0.8, 0.1, 0.1), stratify=labels
    )
    if verbose:
        print(f"digits: {len(x_train)} train, {len(x_val)} validation, "
              f"{len(test_data[0])} test images")  # fmt: skip
    model = cnn()
    stopper = train.EarlyStopping(patience=10)
    result = train.fit(
        model,
        losses.softmax_cross_entropy,
        optim.adamw(1e-3, weight_decay=5e-2),
        (x_train, y_train),
        epochs=epochs,
        batch_size=32,
        key=train_key,
        validation_data=(x_val, y_val),
        metrics=("accuracy",),
        early_stopping=stopper,
        precision=precision,
        verbose=verbose,
    )
    return model, result, stopper, test_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    parser.add_argument("--plot", default="digits_cnn_curves.png")
    args = parser.parse_args()
    started = time.perf_counter()
    model, result, stopper, test_data = run(args.seed, epochs=args.epochs, precision=args.precision)
    heading = "test set (macro averages over the 10 digits):"
    print_test_scores(model, result.state, test_data, heading, args.precision)
    save_curves(
        result.history,
        args.plot,
        "CNN with BatchNorm on the UCI digits",
        best_epoch=stopper.best_epoch,
    )
    print(f"done in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
