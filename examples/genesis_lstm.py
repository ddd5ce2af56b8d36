"""A character-level language model: an LSTM reads the Book of Genesis and writes more.

The text (King James Version, public domain, shipped with fnnet) is cut into sequences of 64
characters; the network predicts each next character (cross-entropy over the 60 characters of
the text). The last 10% of the book is held out: its loss and perplexity (exp of the loss,
"how many characters the model hesitates between") measure how well it generalises. At the
end the model continues a prompt, one sampled character at a time.

    python examples/genesis_lstm.py [--epochs 12] [--seed 0] [--prompt "And God said"]
"""

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnnet import datasets, losses, nn, optim, train

from common import save_curves

CONTEXT = 64  # characters per training sequence, and the window the sampler looks at


def sequences(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping windows: inputs ids[t : t + 64], targets ids[t + 1 : t + 65]."""
    count = (len(ids) - 1) // CONTEXT
    windows = ids[: count * CONTEXT + 1]
    inputs = windows[:-1].reshape(count, CONTEXT)
    targets = windows[1:].reshape(count, CONTEXT)
    return inputs, targets


def sample(model, state, prompt_ids, length, key, temperature=0.8):
    """Continues `prompt_ids` by `length` characters drawn from the model's predictions."""

    @jax.jit
    def next_logits(context):  # (CONTEXT,) ids -> logits for the character that follows
        return model.apply(state.params, state.model_state, context[None])[0][0, -1]

    ids = list(prompt_ids)
    for step_key in jax.random.split(key, length):
        context = ([0] * CONTEXT + ids)[-CONTEXT:]  # left-padded with "\n" (id 0)
        logits = next_logits(jnp.asarray(context, jnp.int32))
        ids.append(int(jax.random.categorical(step_key, logits / temperature)))
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompt", default="And God said")
    parser.add_argument("--plot", default="genesis_lstm_curves.png")
    args = parser.parse_args()
    started = time.perf_counter()
    train_key, sample_key = jax.random.split(jax.random.key(args.seed))

    text = datasets.load_genesis()
    alphabet = sorted(set(text))  # 60 characters; "\n" sorts first
    ids = np.array([alphabet.index(c) for c in text], np.int32)
    cut = int(0.9 * len(ids))
    x_train, y_train = sequences(ids[:cut])
    x_val, y_val = sequences(ids[cut:])
    print(
        f"Genesis: {len(text)} characters, {len(alphabet)} distinct; {len(x_train)} training "
        f"and {len(x_val)} validation sequences of {CONTEXT}"
    )

    model = nn.serial(
        nn.Embedding(len(alphabet), 64),  # (batch, 64) ids -> (batch, 64, 64)
        nn.LSTM(256),                     # -> (batch, 64, 256), the whole sequence
        nn.Dense(len(alphabet)),          # -> (batch, 64, 60) logits for each next character
    )  # fmt: skip
    steps = args.epochs * (len(x_train) // 32)
    stopper = train.EarlyStopping(patience=3)
    result = train.fit(
        model,
        losses.softmax_cross_entropy,
        optim.clip_by_global_norm(optim.adam(optim.schedules.cosine_decay(3e-3, steps)), 1.0),
        (x_train, y_train),
        epochs=args.epochs,
        batch_size=32,
        key=train_key,
        validation_data=(x_val, y_val),
        early_stopping=stopper,
    )
    val_loss = min(result.history["val_loss"])
    print(
        f"validation: loss {val_loss:.4f} nats per character, perplexity "
        f"{math.exp(val_loss):.2f} (a uniform guess over {len(alphabet)} characters: "
        f"{len(alphabet)})"
    )
    accuracy = train.evaluate(model, result.state, (x_val, y_val), metrics=("accuracy",))
    print(f"validation accuracy of the next character: {accuracy['accuracy']:.3f}")

    generated = sample(
        model, result.state, [alphabet.index(c) for c in args.prompt], 300, sample_key
    )
    print("sample:\n" + "".join(alphabet[i] for i in generated))
    save_curves(
        result.history, args.plot, "LSTM character model on Genesis", best_epoch=stopper.best_epoch
    )
    print(f"done in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
