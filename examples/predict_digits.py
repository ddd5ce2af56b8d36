"""Predict with the model that examples/digits.py trained and saved, in a new process.

The checkpoint holds arrays only; the model is rebuilt from its definition (`make_model`),
and a freshly initialised state of the same model and optimizer tells `checkpoint.load` the
structure to fill (every path, shape and dtype is checked against the file).

    python examples/digits.py && python examples/predict_digits.py [--state digits_state.ckpt]
"""

import argparse

import jax
import numpy as np

from fnnet import checkpoint, metrics, train

from digits import make_model, make_optimizer, splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", default="digits_state.ckpt")
    args = parser.parse_args()
    model = make_model()
    like = train.init_state(model, make_optimizer(), jax.random.key(0), (64,))
    state = checkpoint.load(args.state, like)
    seed = checkpoint.metadata(args.state)["seed"]
    _, _, (x_test, y_test) = splits(jax.random.split(jax.random.key(seed))[0])
    predicted = np.argmax(train.predict(model, state, x_test), axis=-1)
    print(f"loaded {args.state}: test accuracy {float(metrics.accuracy(y_test, predicted)):.4f}")
    print("first ten test digits:", predicted[:10].tolist(), "true:", y_test[:10].tolist())


if __name__ == "__main__":
    main()
