"""Quick start: an MLP trained by hand with `jax.grad` and plain gradient descent.

Three spiral arms in the plane, one class each: a task no linear model can solve. The loop
below is all there is to training: a loss over params, `jax.value_and_grad`, an update.

    python examples/quickstart.py
"""

import jax
import jax.numpy as jnp

from fnnet import data, datasets, losses, metrics, nn

x, y = datasets.make_spirals(1200, key=jax.random.key(0), num_classes=3)
(x_train, y_train), (x_test, y_test) = data.split(jax.random.key(1), x, y, fractions=(0.8, 0.2))

model = nn.MLP((64, 64), 3, activation="tanh")  # two hidden layers of 64 neurons
params, state = model.init(jax.random.key(2), (2,))  # shapes inferred from one input's shape


def loss_fn(params, x, y):
    logits, _ = model.apply(params, state, x)
    return losses.softmax_cross_entropy(logits, y)


@jax.jit
def train_step(params, x, y, learning_rate=0.5):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    return jax.tree.map(lambda p, g: p - learning_rate * g, params, grads), loss


for step in range(1, 2001):
    params, loss = train_step(params, x_train, y_train)
    if step == 1 or step % 250 == 0:
        print(f"step {step:4d}  training loss {float(loss):.4f}")

logits, _ = model.apply(params, state, x_test)
print(f"test accuracy {float(metrics.accuracy(y_test, logits)):.3f}")
print(
    f"test macro F1 {float(metrics.f1_score(y_test, jnp.argmax(logits, -1), average='macro')):.3f}"
)
