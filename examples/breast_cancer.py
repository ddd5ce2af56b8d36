"""Binary classification: malignant or benign tumour, from 30 cell-nucleus measurements.

Trains an MLP with one output logit and `sigmoid_binary_cross_entropy` on the Breast Cancer
Wisconsin (Diagnostic) data shipped with fnnet, and reports precision, recall and F1 of the
positive class (malignant) on a held-out test set: recall is the share of cancers caught,
precision the share of alarms that were cancers.

    python examples/breast_cancer.py [--seed 0] [--plot breast_cancer_curves.png]
"""

import argparse
import time

import jax
import numpy as np

from fnnet import data, datasets, losses, metrics, nn, optim, train

from common import save_curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="breast_cancer_curves.png")
    args = parser.parse_args()
    started = time.perf_counter()
    split_key, train_key = jax.random.split(jax.random.key(args.seed))

    features, labels = datasets.load_breast_cancer()  # labels: 1 = malignant
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data.split(
        split_key, features, labels, fractions=(0.7, 0.15, 0.15), stratify=labels
    )
    x_train, x_val, x_test = data.standardize(x_train, x_val, x_test)
    targets = lambda y: y[:, None].astype(np.float32)  # noqa: E731  (n, 1) targets in {0, 1}
    print(
        f"breast cancer: {len(x_train)} train, {len(x_val)} validation, {len(x_test)} test; "
        f"{labels.mean():.0%} malignant"
    )

    model = nn.MLP((32, 16), 1, activation="relu", drop_rate=0.2)  # one logit
    stopper = train.EarlyStopping(patience=15)
    result = train.fit(
        model,
        losses.sigmoid_binary_cross_entropy,
        optim.adam(1e-3),
        (x_train, targets(y_train)),
        epochs=200,
        batch_size=32,
        key=train_key,
        validation_data=(x_val, targets(y_val)),
        metrics=("accuracy",),
        early_stopping=stopper,
    )

    logits = train.predict(model, result.state, x_test)[:, 0]
    predicted = (logits > 0).astype(np.int32)  # probability > 0.5
    print("test set, positive class = malignant:")
    for name, score in [
        ("accuracy", metrics.accuracy(y_test, predicted)),
        ("precision", metrics.precision(y_test, predicted, pos_label=1)),
        ("recall", metrics.recall(y_test, predicted, pos_label=1)),
        ("f1", metrics.f1_score(y_test, predicted, pos_label=1)),
    ]:
        print(f"  {name:9s} {float(score):.4f}")
    tn, fp, fn, tp = np.asarray(metrics.confusion_matrix(y_test, predicted, num_classes=2)).ravel()
    print(f"  {tp} cancers caught, {fn} missed; {fp} false alarms, {tn} benign cleared")
    save_curves(
        result.history, args.plot, "MLP on breast cancer (binary)", best_epoch=stopper.best_epoch
    )
    print(f"done in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
