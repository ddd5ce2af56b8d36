"""Independent NumPy (float64) references written from the documented formulas.

Nothing here imports fnnet: each function restates a paper's or PyTorch's documented equation
so that tests compare two independent implementations.
"""

from __future__ import annotations

import math

import numpy as np

# ---------------------------------------------------------------- activations


def sigmoid(x):
    x = np.asarray(x, np.float64)
    return np.where(
        x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x)))
    )


def softplus(x):
    x = np.asarray(x, np.float64)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def erf(x):
    return np.vectorize(math.erf)(x)


ACTIVATIONS = {
    "sigmoid": sigmoid,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "leaky_relu": lambda x: np.where(x >= 0, x, 0.01 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "gelu": lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2))),
    "silu": lambda x: x * sigmoid(x),
    "softplus": softplus,
    "softmax": lambda x: np.exp(x - log_sum_exp(x)),
    "log_softmax": lambda x: x - log_sum_exp(x),
}


def log_sum_exp(x, axis=-1):
    x = np.asarray(x, np.float64)
    m = np.max(x, axis=axis, keepdims=True)
    return m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


# ---------------------------------------------------------------- losses (PyTorch docs)


def reduce(values, reduction):
    return {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](values)


def mse(p, t):
    return (np.float64(p) - t) ** 2


def mae(p, t):
    return np.abs(np.float64(p) - t)


def huber(p, t, delta=1.0):
    d = np.abs(np.float64(p) - t)
    return np.where(d < delta, 0.5 * d**2, delta * (d - 0.5 * delta))


def cross_entropy(logits, labels, label_smoothing=0.0):
    """Per-example CrossEntropyLoss: class ids or probabilities, with label smoothing."""
    logits = np.asarray(logits, np.float64)
    num_classes = logits.shape[-1]
    log_p = logits - log_sum_exp(logits)
    labels = np.asarray(labels)
    if np.issubdtype(labels.dtype, np.integer):
        labels = np.eye(num_classes)[labels]
    target = (1 - label_smoothing) * labels + label_smoothing / num_classes
    return -np.sum(target * log_p, axis=-1)


def binary_cross_entropy_with_logits(x, t):
    """-[t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))], written stably."""
    x = np.asarray(x, np.float64)
    return t * softplus(-x) + (1 - t) * softplus(x)


# ---------------------------------------------------------------- optimizers (PyTorch docs)


# Each optimizer reference runs `steps` updates from `p`, with `grad_fn(p, t)` the gradient at
# p on step t (t = 0 first) and `lr(t)` the learning rate, and returns the params after each.


def sgd(p, grad_fn, steps, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    p = np.array(p, np.float64)
    b = None
    out = []
    for t in range(steps):
        g = grad_fn(p, t) + weight_decay * p
        if momentum:
            b = g.copy() if b is None else momentum * b + (1 - dampening) * g
            g = g + momentum * b if nesterov else b
        p = p - lr(t) * g
        out.append(p)
    return out


def adam(
    p,
    grad_fn,
    steps,
    lr,
    b1=0.9,
    b2=0.999,
    eps=1e-8,
    weight_decay=0.0,
    amsgrad=False,
    decoupled=False,
):
    p = np.array(p, np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    v_max = np.zeros_like(p)
    out = []
    for t0 in range(steps):
        t = t0 + 1
        g = grad_fn(p, t0)
        if decoupled:
            p = p * (1 - lr(t0) * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        v_max = np.maximum(v_max, v)
        v_hat = (v_max if amsgrad else v) / (1 - b2**t)
        m_hat = m / (1 - b1**t)
        p = p - lr(t0) * m_hat / (np.sqrt(v_hat) + eps)
        out.append(p)
    return out


def rmsprop(
    p,
    grad_fn,
    steps,
    lr,
    decay=0.99,
    eps=1e-8,
    momentum=0.0,
    centered=False,
    weight_decay=0.0,
    eps_in_sqrt=False,
):
    p = np.array(p, np.float64)
    v = np.zeros_like(p)
    a = np.zeros_like(p)
    b = np.zeros_like(p)
    out = []
    for t in range(steps):
        g = grad_fn(p, t) + weight_decay * p
        v = decay * v + (1 - decay) * g**2
        s = v
        if centered:
            a = decay * a + (1 - decay) * g
            s = v - a**2
        r = np.sqrt(s + eps) if eps_in_sqrt else np.sqrt(s) + eps
        if momentum:
            b = momentum * b + g / r
            p = p - lr(t) * b
        else:
            p = p - lr(t) * g / r
        out.append(p)
    return out
