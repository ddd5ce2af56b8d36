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


# ---------------------------------------------------------------- vision layers


def pad_hw(x, padding):
    """Zero-pads the spatial axes of an NHWC array by ((top, bottom), (left, right))."""
    return np.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))


def conv2d(x, w, b, strides=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1)):
    """Cross-correlation by explicit loops: x (n, h, w, c), w (kh, kw, c, o)."""
    x = pad_hw(np.asarray(x, np.float64), padding)
    kh, kw, _, out_channels = w.shape
    extent_h, extent_w = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    out_h = (x.shape[1] - extent_h) // strides[0] + 1
    out_w = (x.shape[2] - extent_w) // strides[1] + 1
    out = np.zeros((x.shape[0], out_h, out_w, out_channels))
    for i in range(out_h):
        for j in range(out_w):
            for u in range(kh):
                for v in range(kw):
                    pixel = x[
                        :, i * strides[0] + u * dilation[0], j * strides[1] + v * dilation[1], :
                    ]
                    out[:, i, j, :] += pixel @ w[u, v]
    return out + b


def pool2d(x, window, strides, padding, reduce, pad_value):
    """Pooling by explicit loops; `reduce` maps a (n, wh, ww, c) patch to (n, c)."""
    x = np.pad(
        np.asarray(x, np.float64),
        ((0, 0), padding[0], padding[1], (0, 0)),
        constant_values=pad_value,
    )
    out_h = (x.shape[1] - window[0]) // strides[0] + 1
    out_w = (x.shape[2] - window[1]) // strides[1] + 1
    out = np.zeros((x.shape[0], out_h, out_w, x.shape[3]))
    for i in range(out_h):
        for j in range(out_w):
            patch = x[
                :,
                i * strides[0] : i * strides[0] + window[0],
                j * strides[1] : j * strides[1] + window[1],
                :,
            ]
            out[:, i, j, :] = reduce(patch)
    return out


def same_padding(size, window, stride):
    """TensorFlow's SAME padding (low, high) for one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def batch_norm_train(x, running_mean, running_var, scale, bias, momentum, eps):
    """PyTorch BatchNorm in training mode: returns (y, new_mean, new_var)."""
    x = np.asarray(x, np.float64)
    axes = tuple(range(x.ndim - 1))
    n = x.size // x.shape[-1]
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)
    y = (x - mean) / np.sqrt(var + eps) * scale + bias
    return (
        y,
        (1 - momentum) * running_mean + momentum * mean,
        (1 - momentum) * running_var + momentum * var * n / (n - 1),
    )


# ---------------------------------------------------------------- sequence layers


def lstm(x, w_ih, w_hh, b_ih, b_hh):
    """PyTorch's LSTM equations, gates (i, f, g, o); x (batch, time, in)."""
    x = np.asarray(x, np.float64)
    hidden = w_hh.shape[0]
    h = np.zeros((x.shape[0], hidden))
    c = np.zeros_like(h)
    outputs = []
    for t in range(x.shape[1]):
        gates = x[:, t] @ w_ih + b_ih + h @ w_hh + b_hh
        i, f, g, o = (gates[:, k * hidden : (k + 1) * hidden] for k in range(4))
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs, axis=1)


def gru(x, w_ih, w_hh, b_ih, b_hh):
    """PyTorch's GRU equations, gates (r, z, n)."""
    x = np.asarray(x, np.float64)
    hidden = w_hh.shape[0]
    h = np.zeros((x.shape[0], hidden))
    outputs = []
    for t in range(x.shape[1]):
        gx = x[:, t] @ w_ih + b_ih
        gh = h @ w_hh + b_hh
        r = sigmoid(gx[:, :hidden] + gh[:, :hidden])
        z = sigmoid(gx[:, hidden : 2 * hidden] + gh[:, hidden : 2 * hidden])
        n = np.tanh(gx[:, 2 * hidden :] + r * gh[:, 2 * hidden :])
        h = (1 - z) * n + z * h
        outputs.append(h)
    return np.stack(outputs, axis=1)


def self_attention(x, params, num_heads, causal):
    """Multi-head self-attention, one head and one query position at a time."""
    x = np.asarray(x, np.float64)
    batch, time, _ = x.shape

    def project(name, inputs):
        return inputs @ params[name]["w"] + params[name]["b"]

    q, k, v = (project(name, x) for name in ("query", "key", "value"))
    features = q.shape[-1]
    d = features // num_heads
    out = np.zeros((batch, time, features))
    for n in range(batch):
        for head in range(num_heads):
            cols = slice(head * d, (head + 1) * d)
            for t in range(time):
                visible = t + 1 if causal else time
                scores = k[n, :visible, cols] @ q[n, t, cols] / np.sqrt(d)
                weights = np.exp(scores - scores.max())
                weights /= weights.sum()
                out[n, t, cols] = weights @ v[n, :visible, cols]
    return project("out", out)
