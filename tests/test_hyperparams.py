"""Optimizer hyperparameters as state: read, replaced without a retrace, traced, vmapped."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import optim
from fnnet.optim import schedules

PARAMS = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2)}
GRADS = {"w": jnp.full((3, 2), 0.5), "b": jnp.full(2, -0.25)}


def test_hyperparams_by_argument_name():
    assert set(optim.hyperparams(optim.adam(1e-3).init(PARAMS))) == {
        "learning_rate",
        "b1",
        "b2",
        "eps",
    }
    assert set(optim.hyperparams(optim.adamw(1e-3).init(PARAMS))) == {
        "learning_rate", "b1", "b2", "eps", "weight_decay",
    }  # fmt: skip
    assert set(optim.hyperparams(optim.sgd(0.1).init(PARAMS))) == {"learning_rate"}
    assert set(optim.hyperparams(optim.sgd(0.1, momentum=0.9, weight_decay=1e-4).init(PARAMS))) == {
        "learning_rate", "weight_decay", "momentum", "dampening",
    }  # fmt: skip
    assert set(optim.hyperparams(optim.rmsprop().init(PARAMS))) == {"learning_rate", "decay", "eps"}
    # A traced zero keeps its term (its value is not known when the optimizer is built).
    traced = jax.jit(lambda wd: optim.sgd(0.1, weight_decay=wd).init(PARAMS).hyperparams)(0.0)
    assert set(traced) == {"learning_rate", "weight_decay"}
    scheduled = optim.adam(schedules.cosine_decay(1e-3, 100)).init(PARAMS)
    assert "learning_rate" not in optim.hyperparams(scheduled)
    assert float(optim.hyperparams(scheduled)["learning_rate_scale"]) == 1.0
    clipped = optim.clip_by_global_norm(optim.adam(), 2.0).init(PARAMS)
    assert float(optim.hyperparams(clipped)["max_norm"]) == 2.0


def _updated(optimizer, state, steps=3):
    for _ in range(steps):
        state = optimizer.update(state, GRADS)
    return state


@pytest.mark.parametrize(
    ("make", "name", "value"),
    [
        (lambda v: optim.sgd(v, momentum=0.9), "learning_rate", 0.03),
        (lambda v: optim.sgd(0.1, momentum=v), "momentum", 0.5),
        (lambda v: optim.adam(1e-2, b1=v), "b1", 0.7),
        (lambda v: optim.adamw(1e-2, weight_decay=v), "weight_decay", 0.3),
        (lambda v: optim.rmsprop(1e-2, decay=v), "decay", 0.8),
        (lambda v: optim.clip_by_global_norm(optim.sgd(0.1), v), "max_norm", 0.1),
    ],
)
def test_with_hyperparams_equals_building_the_optimizer_with_that_value(make, name, value):
    default = make(0.9 if name in ("momentum", "b1", "decay") else 0.1)
    replaced = optim.with_hyperparams(default.init(PARAMS), **{name: value})
    chex.assert_trees_all_close(
        _updated(default, replaced).params,
        _updated(make(value), make(value).init(PARAMS)).params,
        rtol=1e-6,
    )


def test_a_changed_learning_rate_does_not_retrace_the_jitted_update():
    traces = []
    optimizer = optim.adam(1e-2)

    @jax.jit
    def update(state, grads):
        traces.append(1)  # runs only while tracing
        return optimizer.update(state, grads)

    state = update(optimizer.init(PARAMS), GRADS)
    for rate in (1e-3, 1e-4, 0.0):
        state = update(optim.with_hyperparams(state, learning_rate=rate), GRADS)
    assert len(traces) == 1
    frozen = optim.with_hyperparams(state, learning_rate=0.0)
    chex.assert_trees_all_equal(update(frozen, GRADS).params, frozen.params)  # lr 0: no move
    assert len(traces) == 1


def test_array_hyperparameters_concrete_traced_and_vmapped():
    concrete = optim.adam(jnp.float32(1e-2), b1=np.float32(0.8))
    expected = _updated(optim.adam(1e-2, b1=0.8), optim.adam(1e-2, b1=0.8).init(PARAMS)).params
    chex.assert_trees_all_close(_updated(concrete, concrete.init(PARAMS)).params, expected)

    def train(rate):  # the optimizer built from a traced learning rate
        optimizer = optim.adam(rate)
        return _updated(optimizer, optimizer.init(PARAMS)).params

    chex.assert_trees_all_close(jax.jit(train)(1e-2), expected_lr := train(1e-2))
    rates = jnp.array([1e-3, 1e-2, 1e-1])
    swept = jax.vmap(train)(rates)
    for i, rate in enumerate(rates):
        chex.assert_trees_all_close(
            jax.tree.map(lambda leaf, i=i: leaf[i], swept), train(float(rate)), rtol=1e-6
        )
    assert not np.allclose(expected_lr["w"], swept["w"][0])


def test_traced_hyperparameters_skip_the_range_checks_concrete_ones_keep():
    with pytest.raises(ValueError, match=r"adam: `b1` must be a number in \[0, 1\), got 1.5"):
        optim.adam(b1=jnp.float32(1.5))
    jax.jit(lambda b1: optim.adam(b1=b1).init(PARAMS).hyperparams["b1"])(1.5)  # cannot check


def test_schedule_scale_multiplies_the_schedule():
    schedule = schedules.step_decay(0.1, step_size=2, gamma=0.5)
    optimizer = optim.sgd(schedule)
    half = optim.with_hyperparams(optimizer.init(PARAMS), learning_rate_scale=0.5)
    chex.assert_trees_all_close(
        _updated(optimizer, half).params,
        _updated(optim.sgd(schedules.step_decay(0.05, 2, 0.5)), optimizer.init(PARAMS)).params,
        rtol=1e-6,
    )


@pytest.mark.parametrize(
    ("values", "error", "match"),
    [
        (
            {"lr": 0.1},
            ValueError,
            r"with_hyperparams: unknown hyperparameter 'lr'; this optimizer state has 'learning_rate', 'b1', 'b2', 'eps'.$",
        ),
        (
            {"learning_rate": jnp.ones(2)},
            ValueError,
            r"`learning_rate` must have the stored shape \(\), got shape \(2,\)",
        ),
        (
            {"learning_rate": "fast"},
            TypeError,
            "`learning_rate` must be a number or an array of numbers, got str",
        ),
        ({"b1": 1.0}, ValueError, r"with_hyperparams: `b1` must be a number in \[0, 1\), got 1.0"),
        (
            {"eps": float("nan")},
            ValueError,
            r"`eps` must be a finite number > 0 \(0 turns .*\), got nan",
        ),
        ({"learning_rate_scale": 0.5}, ValueError, "This optimizer has a constant `learning_rate`"),
        (
            {"weight_decay": 0.1},
            ValueError,
            r"unknown hyperparameter 'weight_decay'.* A `momentum` or `weight_decay` of 0 when the optimizer was built is compiled out",
        ),
    ],
)
def test_with_hyperparams_bad_input(values, error, match):
    with pytest.raises(error, match=match):
        optim.with_hyperparams(optim.adam().init(PARAMS), **values)


def test_hyperparams_of_something_else_is_a_type_error():
    with pytest.raises(TypeError, match="hyperparams: `opt_state` must be the state of an fnnet"):
        optim.hyperparams(PARAMS)


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: optim.sgd(0.1, momentum=0.9, **kw),
        lambda **kw: optim.adam(1e-2, **kw),
        lambda **kw: optim.adamw(1e-2, **kw),
        lambda **kw: optim.rmsprop(1e-2, **kw),
    ],
)
def test_maximize_ascends_as_descending_the_negated_objective(make):
    ascend = make(maximize=True)
    descend = make()
    negated = jax.tree.map(jnp.negative, GRADS)
    up = ascend.update(ascend.init(PARAMS), GRADS)
    down = descend.update(descend.init(PARAMS), negated)
    chex.assert_trees_all_equal(up.params, down.params)
