"""The non-finite guard: a step is committed only if its loss, gradients and new state are finite."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import losses, nn, optim, train

X = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
Y = (X[:, 0] > 0).astype(np.int32)
MODEL = nn.MLP((8,), 2)


def inf_from(step: int) -> optim.Optimizer:
    """SGD whose learning-rate schedule returns inf from update `step` on (0-based): the
    gradients stay finite, the params do not."""
    return optim.sgd(lambda t: jnp.where(t >= step, jnp.inf, 0.1))


def all_finite(tree) -> bool:
    leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)


def fit_error(optimizer, model=MODEL, data=(X, Y), loss_fn=losses.softmax_cross_entropy, **kw):
    kwargs = dict(epochs=3, batch_size=16, key=jax.random.key(0), verbose=False)
    kwargs.update(kw)
    with pytest.raises(train.NonFiniteLossError) as info:
        train.fit(model, loss_fn, optimizer, data, **kwargs)
    return info.value


@pytest.mark.parametrize("dispatch", ["scan", "step"])
def test_finite_gradients_giving_non_finite_params_are_not_committed(dispatch):
    error = fit_error(inf_from(5), dispatch=dispatch)
    assert (error.epoch, error.step) == (2, 2)  # update 6 of 4 per epoch
    assert error.path == "[0]['b']"  # the first param leaf: every new param is inf or NaN
    assert "first in the parameter at [0]['b']" in str(error)
    state = error.result.state
    assert int(state.step) == 5 and all_finite(state)
    assert len(error.result.history["loss"]) == 1


def test_a_non_finite_optimizer_moment_is_not_committed_and_is_named():
    """A gradient of 1e30 is finite but its square overflows float32: Adam's `nu` turns inf
    while the params stay finite (m / sqrt(inf) = 0). The old guard committed that state."""

    def steep(outputs, targets):  # finite loss, gradient 1e30
        return jnp.mean(outputs - targets) * 1e30

    x, y = np.ones((4, 1), np.float32), np.zeros((4, 1), np.float32)
    error = fit_error(optim.adam(), model=nn.Dense(1), data=(x, y), loss_fn=steep, batch_size=2)
    assert error.path in ("opt_state.nu['b']", "opt_state.nu['w']")
    assert "optimizer state at opt_state.nu" in str(error)
    assert int(error.result.state.step) == 0 and all_finite(error.result.state)


def test_a_loss_alone_not_finite_has_no_path():
    def inf_loss(outputs, targets):  # inf in value, no gradient through the inf
        return losses.softmax_cross_entropy(outputs, targets) + jax.lax.stop_gradient(jnp.inf)

    error = fit_error(optim.sgd(0.1), loss_fn=inf_loss)
    assert error.path is None and (error.epoch, error.step) == (1, 1)
    assert "(its loss)" in str(error)


def test_the_failing_update_is_found_with_accumulated_gradients():
    error = fit_error(inf_from(3), accumulate_steps=2, batch_size=8)
    assert (error.epoch, error.step) == (1, 4) and error.path == "[0]['b']"
    assert int(error.result.state.step) == 3 and all_finite(error.result.state)


def test_skip_nonfinite_step_leaves_the_state_as_it_was(key):
    step = train.make_train_step(
        MODEL, losses.softmax_cross_entropy, inf_from(0), skip_nonfinite=True
    )
    state = train.init_state(MODEL, inf_from(0), key, (4,))
    before = jax.device_get(state.opt_state)
    state, loss = step(state, (X[:16], Y[:16]))
    assert np.isnan(float(loss)) and int(state.step) == 0
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.opt_state), before)


def test_epoch_commits_nothing_after_the_first_non_finite_update(key):
    epoch = train.make_train_epoch(MODEL, losses.softmax_cross_entropy, inf_from(2), batch_size=8)
    state = train.init_state(MODEL, inf_from(2), key, (4,))
    state, step_losses = epoch(state, X, Y)
    step_losses = np.asarray(step_losses)
    assert np.isfinite(step_losses[:2]).all() and np.isnan(step_losses[2:]).all()
    assert int(state.step) == 2 and all_finite(state)


def test_the_unguarded_step_is_the_hand_written_one(key):
    """Without skip_nonfinite nothing is checked: the inf goes into the params."""
    step = train.make_train_step(MODEL, losses.softmax_cross_entropy, inf_from(0))
    state = train.init_state(MODEL, inf_from(0), key, (4,))
    state, _ = step(state, (X[:16], Y[:16]))
    assert int(state.step) == 1 and not all_finite(state.params)
