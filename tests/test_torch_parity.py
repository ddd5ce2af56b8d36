"""Trajectories against PyTorch itself (skipped where torch is not installed).

The float64 NumPy references in test_optim.py always run; these tests add the real thing:
the same float32 gradients fed to ``torch.optim`` and to fnnet, step by step.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import nn, optim, train

torch = pytest.importorskip("torch")

STEPS = 50
TARGET = np.linspace(-2.0, 3.0, 6, dtype=np.float32)
CURVATURE = np.linspace(0.5, 2.0, 6, dtype=np.float32)
WIGGLE = 0.3 * np.cos(np.arange(STEPS)[:, None] + np.arange(6.0)).astype(np.float32)


def grad_at(p, t):
    return CURVATURE * (p - TARGET) + WIGGLE[t]


CASES = [
    ("sgd", lambda: optim.sgd(0.05), lambda p: torch.optim.SGD(p, lr=0.05)),
    (
        "sgd-momentum-dampening-wd",
        lambda: optim.sgd(0.05, momentum=0.9, dampening=0.3, weight_decay=0.01),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01),
    ),
    (
        "sgd-nesterov",
        lambda: optim.sgd(0.05, momentum=0.9, nesterov=True),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    ),
    ("adam", lambda: optim.adam(0.05), lambda p: torch.optim.Adam(p, lr=0.05)),
    (
        "adam-wd-amsgrad",
        lambda: optim.adam(0.05, b1=0.8, b2=0.9, weight_decay=0.1, amsgrad=True),
        lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.9), weight_decay=0.1, amsgrad=True),
    ),
    ("adamw", lambda: optim.adamw(0.05), lambda p: torch.optim.AdamW(p, lr=0.05)),
    (
        "adamw-amsgrad",
        lambda: optim.adamw(0.05, weight_decay=0.3, amsgrad=True, b2=0.9),
        lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.3, amsgrad=True, betas=(0.9, 0.9)),
    ),
    ("rmsprop", lambda: optim.rmsprop(0.01), lambda p: torch.optim.RMSprop(p, lr=0.01)),
    (
        "adam-maximize",
        lambda: optim.adam(0.05, maximize=True),
        lambda p: torch.optim.Adam(p, lr=0.05, maximize=True),
    ),
    (
        "sgd-momentum-maximize-wd",
        lambda: optim.sgd(0.05, momentum=0.9, weight_decay=0.01, maximize=True),
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01, maximize=True),
    ),
    (
        "rmsprop-centered-momentum-wd",
        lambda: optim.rmsprop(0.01, decay=0.9, centered=True, momentum=0.5, weight_decay=0.1),
        lambda p: torch.optim.RMSprop(
            p, lr=0.01, alpha=0.9, centered=True, momentum=0.5, weight_decay=0.1
        ),
    ),
]


@pytest.mark.parametrize(("name", "make", "make_torch"), CASES, ids=[c[0] for c in CASES])
def test_same_trajectory_as_torch(name, make, make_torch):
    optimizer = make()
    state = optimizer.init(jnp.zeros(6, jnp.float32))
    update = jax.jit(optimizer.update)
    param = torch.zeros(6, dtype=torch.float32, requires_grad=True)
    torch_optimizer = make_torch([param])
    worst = 0.0
    for t in range(STEPS):
        state = update(state, jnp.asarray(grad_at(np.asarray(state.params), t)))
        param.grad = torch.from_numpy(grad_at(param.detach().numpy(), t))
        torch_optimizer.step()
        ours, theirs = np.asarray(state.params), param.detach().numpy()
        np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=1e-7, err_msg=f"step {t}")
        worst = max(worst, float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs))))
    print(f"{name}: max |fnnet - torch| / max |torch| over {STEPS} steps: {worst:.1e}")


def test_clip_by_global_norm_equals_clip_grad_norm():
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(3, 4)).astype(np.float32) * 5, rng.normal(size=7).astype(np.float32)]
    tensors = [torch.zeros(g.shape, requires_grad=True) for g in grads]
    for tensor, g in zip(tensors, grads, strict=True):
        tensor.grad = torch.from_numpy(g.copy())
    torch.nn.utils.clip_grad_norm_(tensors, max_norm=1.5)
    optimizer = optim.clip_by_global_norm(optim.sgd(1.0), 1.5)
    params = [jnp.zeros(g.shape) for g in grads]
    state = optimizer.update(optimizer.init(params), [jnp.asarray(g) for g in grads])
    for ours, tensor in zip(state.params, tensors, strict=True):
        np.testing.assert_allclose(-np.asarray(ours), tensor.grad.numpy(), rtol=1e-6)


def _loss_cases(rng):
    p = rng.normal(size=(8, 3)).astype(np.float32)
    t = (rng.normal(size=(8, 3)) * 2).astype(np.float32)
    logits = np.concatenate([rng.normal(scale=3, size=(6, 5)), [[1e4, -1e4, 0, 3, 2]]]).astype(
        np.float32
    )
    labels = np.append(rng.integers(0, 5, size=6), 1)
    probs = rng.dirichlet(np.ones(5), size=7).astype(np.float32)
    bce_logits = np.append(rng.normal(scale=4, size=9), [-1e4, 1e4]).astype(np.float32)
    bce_targets = np.append(rng.uniform(size=9), [1.0, 0.0]).astype(np.float32)
    from fnnet import losses

    for reduction in ("mean", "sum", "none"):
        yield (losses.mse(p, t, reduction=reduction), torch.nn.MSELoss(reduction=reduction), p, t)
        yield (losses.mae(p, t, reduction=reduction), torch.nn.L1Loss(reduction=reduction), p, t)
        yield (
            losses.huber(p, t, delta=0.7, reduction=reduction),
            torch.nn.HuberLoss(reduction=reduction, delta=0.7),
            p,
            t,
        )
        for smoothing in (0.0, 0.15):
            module = torch.nn.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing)
            yield (
                losses.softmax_cross_entropy(
                    logits, labels, label_smoothing=smoothing, reduction=reduction
                ),
                module,
                logits,
                labels,
            )
            yield (
                losses.softmax_cross_entropy(
                    logits, probs, label_smoothing=smoothing, reduction=reduction
                ),
                module,
                logits,
                probs,
            )
        yield (
            losses.sigmoid_binary_cross_entropy(bce_logits, bce_targets, reduction=reduction),
            torch.nn.BCEWithLogitsLoss(reduction=reduction),
            bce_logits,
            bce_targets,
        )


def test_losses_equal_torch_modules():
    for ours, module, a, b in _loss_cases(np.random.default_rng(0)):
        theirs = module(torch.from_numpy(np.asarray(a)), torch.from_numpy(np.asarray(b))).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=1e-6, err_msg=repr(module))


# ------------------------------------------------------------------ layers


def _t(array):
    return torch.from_numpy(np.asarray(array, np.float32).copy())


def test_lstm_and_gru_equal_torch_with_the_same_weights():
    from fnnet import nn

    x = np.random.default_rng(0).normal(size=(3, 9, 5)).astype(np.float32)
    for layer, module in (
        (nn.LSTM(7), torch.nn.LSTM(5, 7, batch_first=True)),
        (nn.GRU(7), torch.nn.GRU(5, 7, batch_first=True)),
    ):
        params, state = layer.init(jax.random.key(0), (9, 5))
        with torch.no_grad():
            for name in ("w_ih", "w_hh"):  # fnnet stores PyTorch's weights transposed
                getattr(module, f"weight_{name[2:]}_l0").copy_(_t(params[name]).T)
            for name in ("b_ih", "b_hh"):
                getattr(module, f"bias_{name[2:]}_l0").copy_(_t(params[name]))
            expected = module(_t(x))[0].numpy()
        np.testing.assert_allclose(layer.apply(params, state, x)[0], expected, rtol=1e-5, atol=1e-6)


def test_conv2d_equals_torch_conv2d():
    from fnnet import nn

    x = np.random.default_rng(1).normal(size=(2, 9, 8, 3)).astype(np.float32)
    layer = nn.Conv2D(4, (3, 2), strides=(2, 1), padding=(1, 2), dilation=(1, 2))
    params, state = layer.init(jax.random.key(0), (9, 8, 3))
    module = torch.nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(1, 2))
    with torch.no_grad():
        module.weight.copy_(_t(params["w"]).permute(3, 2, 0, 1))  # HWIO -> OIHW
        module.bias.copy_(_t(params["b"]))
        expected = module(_t(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(layer.apply(params, state, x)[0], expected, rtol=1e-5, atol=1e-5)


def test_batch_norm_equals_torch_over_several_steps():
    from fnnet import nn

    layer = nn.BatchNorm(momentum=0.2)
    params, state = layer.init(jax.random.key(0), (5, 5, 4))
    module = torch.nn.BatchNorm2d(4, momentum=0.2)
    rng = np.random.default_rng(2)
    for _ in range(3):
        x = (rng.normal(size=(6, 5, 5, 4)) * 3 + 1).astype(np.float32)
        y, state = layer.apply(params, state, x, train=True)
        module.train()
        expected = module(_t(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).detach().numpy()
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(state["mean"], module.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state["var"], module.running_var.numpy(), rtol=1e-5)
    module.eval()
    x = rng.normal(size=(2, 5, 5, 4)).astype(np.float32)
    expected = module(_t(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).detach().numpy()
    np.testing.assert_allclose(layer.apply(params, state, x)[0], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_equals_torch_multihead_attention(causal):
    from fnnet import nn

    x = np.random.default_rng(3).normal(size=(2, 6, 8)).astype(np.float32)
    layer = nn.MultiHeadAttention(2, 8, causal=causal)
    params, state = layer.init(jax.random.key(0), (6, 8))
    module = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    with torch.no_grad():
        module.in_proj_weight.copy_(
            torch.cat([_t(params[n]["w"]).T for n in ("query", "key", "value")])
        )
        module.in_proj_bias.copy_(
            torch.cat([_t(params[n]["b"]) for n in ("query", "key", "value")])
        )
        module.out_proj.weight.copy_(_t(params["out"]["w"]).T)
        module.out_proj.bias.copy_(_t(params["out"]["b"]))
        mask = torch.triu(torch.ones(6, 6, dtype=torch.bool), diagonal=1) if causal else None
        expected = module(_t(x), _t(x), _t(x), attn_mask=mask, need_weights=False)[0].numpy()
    np.testing.assert_allclose(layer.apply(params, state, x)[0], expected, rtol=1e-5, atol=1e-5)


def test_reduce_lr_on_plateau_follows_torch_scheduler():
    """The same monitored values give the same learning rates as torch's ReduceLROnPlateau."""
    values = [1.0, 0.9, 0.95, 0.9, 0.8999, 0.91, 0.92, 0.5, 0.6, 0.7, 0.8, 0.9, 0.85, 0.4]
    param = torch.zeros(1, requires_grad=True)
    torch_optimizer = torch.optim.SGD([param], lr=0.1)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        torch_optimizer, factor=0.5, patience=2, threshold=1e-3, min_lr=0.02
    )
    callback = train.ReduceLROnPlateau(
        monitor="loss", factor=0.5, patience=2, min_delta=1e-3, min_lr=0.02
    )
    optimizer = optim.sgd(0.1)
    state = train.init_state(nn.Dense(1), optimizer, jax.random.key(0), (1,))
    callback.on_train_begin(state)
    for epoch, value in enumerate(values, start=1):
        scheduler.step(value)
        lr = float(optim.hyperparams(state.opt_state)["learning_rate"])
        state = callback.on_epoch_end(epoch, state, {"loss": value, "lr": lr}) or state
        ours = float(optim.hyperparams(state.opt_state)["learning_rate"])
        assert ours == pytest.approx(torch_optimizer.param_groups[0]["lr"], rel=1e-6), epoch
    assert ours == pytest.approx(0.025)  # reduced twice (0.1 -> 0.05 -> 0.025), not below 0.02
