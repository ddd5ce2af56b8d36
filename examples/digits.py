"""Handwritten digits: an MLP trained with mini-batches, validation and early stopping.

The main job of fnnet's README. Trains on the UCI 8x8 digits shipped with the package
(1797 images), split 80 / 10 / 10 into train / validation / test with every digit in the same
share, stops when the validation loss stops improving, restores the best epoch and reports
accuracy, precision, recall and F1 on the held-out test set.

    python examples/digits.py [--epochs 100] [--seed 0] [--precision bfloat16]
                              [--plot digits_curves.png]
"""

import argparse
import time

import jax
import numpy as np

from fnnet import checkpoint, data, datasets, losses, metrics, nn, optim, train

from common import PRECISIONS, print_test_scores, save_curves


def splits(split_key):
    """The 80/10/10 stratified split of the digits, standardised with the training part."""
    images, labels = datasets.load_digits()
    inputs = images.reshape(len(images), -1)  # (1797, 64)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data.split(
        split_key, inputs, labels, fractions=(0.8, 0.1, 0.1), stratify=labels
    )
    x_train, x_val, x_test = data.standardize(x_train, x_val, x_test)
    return (x_train, y_train), (x_val, y_val), (x_test, y_test)


def make_model() -> nn.Layer:
    """One hidden layer of 256 ReLU units with dropout."""
    return nn.MLP((256,), 10, activation="relu", drop_rate=0.3)


def make_optimizer() -> optim.Optimizer:
    return optim.adamw(1e-3, weight_decay=1e-2)  # the weight decay regularises too


def run(seed: int, *, epochs: int = 100, precision: str = "float32", verbose: bool = True):
    """Trains the MLP with early stopping; returns ``(model, result, stopper, test_data)``."""
    split_key, train_key = jax.random.split(jax.random.key(seed))
    (x_train, y_train), (x_val, y_val), test_data = splits(split_key)
    if verbose:
        print(f"digits: {len(x_train)} train, {len(x_val)} validation, "
              f"{len(test_data[0])} test samples")  # fmt: skip
    model = make_model()
    stopper = train.EarlyStopping(patience=10)
    result = train.fit(
        model,
        losses.softmax_cross_entropy,
        make_optimizer(),
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
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    parser.add_argument("--plot", default="digits_curves.png", help="where to save the curves")
    parser.add_argument("--save", default="digits_state.ckpt", help="where to save the model")
    args = parser.parse_args()
    started = time.perf_counter()
    model, result, stopper, (x_test, y_test) = run(
        args.seed, epochs=args.epochs, precision=args.precision
    )

    heading = "test set (macro averages over the 10 digits):"
    print_test_scores(model, result.state, (x_test, y_test), heading, args.precision)
    outputs = train.predict(model, result.state, x_test, precision=args.precision)
    predictions = np.argmax(outputs, axis=-1)
    print("confusion matrix (rows: true digit, columns: predicted):")
    print(np.asarray(metrics.confusion_matrix(y_test, predictions, num_classes=10)))
    save_curves(result.history, args.plot, "MLP on the UCI digits", best_epoch=stopper.best_epoch)
    checkpoint.save(args.save, result.state, metadata={"seed": args.seed})
    print(f"saved the trained state to {args.save} (examples/predict_digits.py loads it)")
    print(f"done in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
