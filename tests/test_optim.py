import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import losses, nn, optim
from fnnet.optim import schedules

import references as ref

STEPS = 30
TARGET = np.linspace(-2.0, 3.0, 6)
CURVATURE = np.linspace(0.5, 2.0, 6)


def grad_fn(p, t, xp=np):
    """Gradient of a quadratic bowl plus a deterministic per-step wiggle."""
    return CURVATURE * (p - TARGET) + 0.3 * xp.cos(t + xp.arange(6.0))


def run_fnnet(optimizer, p0, steps=STEPS, jit=True, dtype=jnp.float32):
    state = optimizer.init(jnp.asarray(p0, dtype))
    update = jax.jit(optimizer.update) if jit else optimizer.update
    out = []
    for t in range(steps):
        state = update(state, grad_fn(state.params, t, jnp).astype(dtype))
        out.append(np.asarray(state.params))
    return out, state


def halving(step):  # a schedule: a factor 2 smaller every 10 steps
    return 0.1 * 0.5 ** (step // 10)


CONSTANT = {"lr": 0.1, "schedule": 0.1}
# (name, fnnet optimizer factory, reference, kwargs shared by both)
REFERENCE_CASES = [
    ("sgd", optim.sgd, ref.sgd, {}),
    ("sgd-momentum", optim.sgd, ref.sgd, {"momentum": 0.9}),
    ("sgd-dampening", optim.sgd, ref.sgd, {"momentum": 0.9, "dampening": 0.5}),
    ("sgd-nesterov", optim.sgd, ref.sgd, {"momentum": 0.8, "nesterov": True}),
    ("sgd-weight-decay", optim.sgd, ref.sgd, {"momentum": 0.5, "weight_decay": 0.1}),
    ("adam", optim.adam, ref.adam, {}),
    ("adam-betas-eps", optim.adam, ref.adam, {"b1": 0.5, "b2": 0.9, "eps": 1e-3}),
    ("adam-weight-decay", optim.adam, ref.adam, {"weight_decay": 0.1}),
    # b2 = 0.9 lets v fall as the gradients shrink, so AMSGrad's maximum matters (checked below).
    ("adam-amsgrad", optim.adam, ref.adam, {"amsgrad": True, "b2": 0.9}),
    (
        "adam-amsgrad-weight-decay",
        optim.adam,
        ref.adam,
        {"amsgrad": True, "b2": 0.9, "weight_decay": 0.05},
    ),
    ("adamw", optim.adamw, functools.partial(ref.adam, decoupled=True, weight_decay=1e-2), {}),
    (
        "adamw-amsgrad",
        optim.adamw,
        functools.partial(ref.adam, decoupled=True),
        {"weight_decay": 0.2, "amsgrad": True, "b2": 0.9},
    ),
    ("rmsprop", optim.rmsprop, ref.rmsprop, {}),
    ("rmsprop-centered", optim.rmsprop, ref.rmsprop, {"centered": True}),
    ("rmsprop-momentum", optim.rmsprop, ref.rmsprop, {"momentum": 0.9}),
    (
        "rmsprop-centered-momentum",
        optim.rmsprop,
        ref.rmsprop,
        {"centered": True, "momentum": 0.5, "decay": 0.9},
    ),
    (
        "rmsprop-eps-in-sqrt",
        optim.rmsprop,
        ref.rmsprop,
        {"eps_in_sqrt": True, "decay": 0.9, "eps": 1e-6},
    ),
    ("rmsprop-weight-decay", optim.rmsprop, ref.rmsprop, {"weight_decay": 0.1}),
]


@pytest.mark.parametrize("schedule", [False, True], ids=["constant-lr", "schedule"])
@pytest.mark.parametrize(
    ("name", "make", "reference", "kwargs"), REFERENCE_CASES, ids=[c[0] for c in REFERENCE_CASES]
)
def test_matches_float64_reference_trajectory(name, make, reference, kwargs, schedule):
    base_lr = 0.01 if name.startswith("rmsprop") else 0.05
    lr = (lambda step: base_lr * 0.5 ** (step // 10)) if schedule else base_lr
    p0 = np.zeros(6)
    got, state = run_fnnet(make(lr, **kwargs), p0)
    expected = reference(
        p0, grad_fn, STEPS, lambda t: base_lr * 0.5 ** (t // 10) if schedule else base_lr, **kwargs
    )
    assert int(state.step) == STEPS
    np.testing.assert_allclose(np.stack(got), np.stack(expected), rtol=1e-5, atol=1e-6)
    assert np.abs(got[-1] - p0).max() > 0.05  # the trajectory really moved


@pytest.mark.parametrize(
    ("name", "make", "reference", "kwargs"), REFERENCE_CASES, ids=[c[0] for c in REFERENCE_CASES]
)
def test_float64_params_follow_the_float64_reference_exactly(name, make, reference, kwargs):
    """Under x64 every optimizer computes in float64 (bias corrections and step count too)."""
    lr = 0.01 if name.startswith("rmsprop") else 0.05
    with jax.enable_x64(True):
        got, state = run_fnnet(make(lr, **kwargs), np.zeros(6), dtype=jnp.float64)
        assert state.params.dtype == jnp.float64
        assert all(h.dtype == jnp.float64 for h in optim.hyperparams(state).values())
    expected = reference(np.zeros(6), grad_fn, STEPS, lambda t: lr, **kwargs)
    np.testing.assert_allclose(np.stack(got), np.stack(expected), rtol=1e-12, atol=1e-14)


def test_amsgrad_differs_from_adam_in_this_test():
    """Guards the AMSGrad reference test: the running maximum must matter on this problem."""
    plain = ref.adam(np.zeros(6), grad_fn, STEPS, lambda t: 0.05, b2=0.9)
    ams = ref.adam(np.zeros(6), grad_fn, STEPS, lambda t: 0.05, b2=0.9, amsgrad=True)
    assert np.abs(plain[-1] - ams[-1]).max() > 1e-2


def test_clip_by_global_norm_matches_reference():
    max_norm = 0.5
    p0 = np.zeros(6)

    def clipped_grad(p, t):
        g = grad_fn(p, t)
        return g * min(1.0, max_norm / (np.linalg.norm(g) + 1e-6))

    got, _ = run_fnnet(optim.clip_by_global_norm(optim.sgd(0.1, momentum=0.9), max_norm), p0)
    expected = ref.sgd(p0, clipped_grad, STEPS, lambda t: 0.1, momentum=0.9)
    np.testing.assert_allclose(np.stack(got), np.stack(expected), rtol=1e-5, atol=1e-6)


def test_clip_leaves_small_gradients_alone_and_scales_large_ones():
    grads = {"a": jnp.array([3.0, 0.0]), "b": (jnp.array([4.0]),)}  # global norm 5
    optimizer = optim.clip_by_global_norm(optim.sgd(1.0), 1.0)
    params = jax.tree.map(jnp.zeros_like, grads)
    state = optimizer.update(optimizer.init(params), grads)
    np.testing.assert_allclose(state.params["a"], [-3.0 / (5 + 1e-6), 0.0], rtol=1e-6)
    loose = optim.clip_by_global_norm(optim.sgd(1.0), 10.0)
    state = loose.update(loose.init(params), grads)
    np.testing.assert_allclose(state.params["b"][0], [-4.0], rtol=1e-6)


ALL_OPTIMIZERS = {
    "sgd": lambda: optim.sgd(0.1),
    "sgd-momentum": lambda: optim.sgd(0.1, momentum=0.9, nesterov=True),
    "adam": lambda: optim.adam(0.1),
    "adam-amsgrad": lambda: optim.adam(0.1, amsgrad=True),
    "adamw": lambda: optim.adamw(0.1),
    "rmsprop": lambda: optim.rmsprop(0.01, centered=True, momentum=0.5),
    "clipped-adam": lambda: optim.clip_by_global_norm(optim.adam(0.1), 1.0),
    "scheduled-sgd": lambda: optim.sgd(schedules.cosine_decay(0.1, 100)),
}

PARAM_TREES = {
    "scalar": lambda: 1.5,
    "array": lambda: jnp.ones((2, 3)),
    "dict": lambda: {"w": jnp.ones((2, 2)), "b": jnp.zeros(2)},
    "nested-tuple": lambda: (jnp.ones(3), ({"x": jnp.full((1,), 2.0)}, jnp.ones((2, 1)))),
}


@pytest.mark.parametrize("tree", sorted(PARAM_TREES))
@pytest.mark.parametrize("name", sorted(ALL_OPTIMIZERS))
def test_converges_under_jit_for_any_param_tree(name, tree):
    """Minimise sum((p - 0.5)²) for params shaped as a scalar, an array, a dict, nested tuples."""
    optimizer = ALL_OPTIMIZERS[name]()
    params = PARAM_TREES[tree]()
    loss = lambda p: sum(jnp.sum((leaf - 0.5) ** 2) for leaf in jax.tree.leaves(p))  # noqa: E731

    @jax.jit
    def step(state):
        return optimizer.update(state, jax.grad(loss)(state.params))

    state = optimizer.init(params)
    start = loss(state.params)
    for _ in range(300):
        state = step(state)
    chex.assert_trees_all_equal_structs(state.params, optimizer.init(params).params)
    assert loss(state.params) < 1e-3 * start


class TestProperties(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_update_with_and_without_jit_agree(self):
        params = {"w": jnp.linspace(-1, 1, 6).reshape(2, 3), "b": jnp.ones(3)}
        grads = jax.tree.map(lambda p: jnp.cos(3 * p), params)
        for name, make in sorted(ALL_OPTIMIZERS.items()):
            optimizer = make()
            state = optimizer.init(params)
            update = self.variant(optimizer.update)
            for _ in range(3):
                state = update(state, grads)
            expected = optimizer.init(params)
            for _ in range(3):
                expected = jax.jit(optimizer.update)(expected, grads)
            chex.assert_trees_all_close(state, expected, rtol=1e-6, custom_message=name)


@pytest.mark.parametrize(
    "make",
    [
        lambda: optim.sgd(0.1, momentum=0.9),
        optim.adam,
        optim.adamw,
        lambda: optim.adam(amsgrad=True),
    ],
)
def test_zero_gradients_leave_params_unchanged(make):
    optimizer = make() if callable(make) else make
    if "adamw" in repr(make):
        optimizer = optim.adamw(weight_decay=0.0)
    params = {"w": jnp.arange(6.0).reshape(2, 3)}
    state = optimizer.init(params)
    for _ in range(5):
        state = optimizer.update(state, jax.tree.map(jnp.zeros_like, params))
    chex.assert_trees_all_equal(state.params, params)


def test_adam_first_step_moves_each_parameter_by_learning_rate():
    params = jnp.array([1.0, -2.0, 3.0, 0.0])
    grads = jnp.array([1e-3, -5.0, 100.0, 0.3])
    state = optim.adam(0.01).update(optim.adam(0.01).init(params), grads)
    np.testing.assert_allclose(np.abs(state.params - params), 0.01, rtol=1e-4)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("name", sorted(ALL_OPTIMIZERS))
def test_params_keep_dtype_and_jit_compiles_once(name, dtype):
    optimizer = ALL_OPTIMIZERS[name]()
    traces = []

    @jax.jit
    def update(state, grads):
        traces.append(1)  # runs only while tracing
        return optimizer.update(state, grads)

    params = {"w": jnp.ones((3, 2), dtype), "b": jnp.zeros((2,), dtype)}
    state = optimizer.init(params)
    for _ in range(3):
        state = update(state, jax.tree.map(lambda p: jnp.full_like(p, 0.5), params))
    assert len(traces) == 1
    for leaf in jax.tree.leaves(state._replace(hyperparams={})):
        assert leaf.dtype in (dtype, jnp.int32), (name, leaf.dtype)
    # Hyperparameters stay float32 whatever the params' dtype: bfloat16 would round 1e-3.
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(state.hyperparams))
    assert state.step.dtype == jnp.int32 and state.step.shape == ()
    assert not jnp.allclose(state.params["w"].astype(jnp.float32), 1.0)


def test_python_scalar_params_become_fixed_dtype_arrays():
    state = optim.adam().init({"x": 1.0})
    assert state.params["x"].dtype == jnp.float32 and not state.params["x"].weak_type


def test_states_are_namedtuples_with_documented_fields():
    params = jnp.ones(2)
    assert optim.sgd(0.1).init(params)._fields == ("step", "params", "momentum", "hyperparams")
    assert optim.sgd(0.1).init(params).momentum is None  # no buffer without momentum
    assert optim.adam().init(params)._fields == (
        "step",
        "params",
        "mu",
        "nu",
        "nu_max",
        "hyperparams",
    )
    assert optim.adam(amsgrad=True).init(params).nu_max is not None
    assert optim.rmsprop().init(params)._fields == (
        "step",
        "params",
        "square_avg",
        "grad_avg",
        "momentum",
        "hyperparams",
    )


# ------------------------------------------------------------------ convergence on an MLP


def _regression_task():
    x = jax.random.uniform(jax.random.key(42), (256, 2), minval=-2, maxval=2)
    y = jnp.sin(x[:, :1]) * jnp.cos(x[:, 1:])
    return x, y


# Every optimizer must bring the MSE below 0.005 (2.5% of the targets' variance, 0.21) within
# 500 full-batch steps, and end below a tenth of where it started.
CONVERGENCE_STEPS, CONVERGENCE_THRESHOLD = 500, 0.005
CONVERGENCE = {
    "sgd": lambda: optim.sgd(0.1, momentum=0.9),
    "sgd-nesterov": lambda: optim.sgd(0.05, momentum=0.9, nesterov=True),
    "adam": lambda: optim.adam(1e-2),
    "adam-amsgrad": lambda: optim.adam(1e-2, amsgrad=True),
    "adamw": lambda: optim.adamw(1e-2),
    "rmsprop": lambda: optim.rmsprop(1e-3),
    "rmsprop-centered-momentum": lambda: optim.rmsprop(1e-3, centered=True, momentum=0.9),
    "clipped-adam-cosine": lambda: optim.clip_by_global_norm(
        optim.adam(schedules.warmup_cosine_decay(2e-2, 50, 500)), 1.0
    ),
}


@pytest.mark.parametrize("name", sorted(CONVERGENCE))
def test_trains_a_small_mlp_below_threshold(name):
    optimizer = CONVERGENCE[name]()
    model = nn.MLP((32, 32), 1, activation="tanh")
    params, model_state = model.init(jax.random.key(0), (2,))
    x, y = _regression_task()

    def loss(p):
        return losses.mse(model.apply(p, model_state, x)[0], y)

    @jax.jit
    def train(state):
        def body(state, _):
            value, grads = jax.value_and_grad(loss)(state.params)
            return optimizer.update(state, grads), value

        return jax.lax.scan(body, state, None, length=CONVERGENCE_STEPS)

    state, history = train(optimizer.init(params))
    assert float(history.min()) < CONVERGENCE_THRESHOLD, (name, float(history.min()))
    assert float(loss(state.params)) < 0.1 * float(history[0])


# ------------------------------------------------------------------ schedules


def test_schedules_follow_their_formulas():
    steps = np.arange(0, 120)
    cases = [
        (schedules.constant(0.3), np.full(steps.shape, 0.3)),
        (schedules.exponential_decay(0.1, 0.5, 20), 0.1 * 0.5 ** (steps / 20)),
        (schedules.step_decay(0.1, 30, 0.1), 0.1 * 0.1 ** (steps // 30)),
        (
            schedules.cosine_decay(0.1, 100, alpha=0.1),
            0.1 * (0.9 * 0.5 * (1 + np.cos(np.pi * np.minimum(steps, 100) / 100)) + 0.1),
        ),
        (
            schedules.warmup_cosine_decay(1.0, 10, 110, init_value=0.1, end_value=0.05),
            np.where(
                steps < 10,
                0.1 + 0.9 * steps / 10,
                0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * np.clip((steps - 10) / 100, 0, 1))),
            ),
        ),
    ]
    for schedule, expected in cases:
        got = jax.vmap(schedule)(jnp.asarray(steps, jnp.int32))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(schedule(7), expected[7], rtol=1e-5)  # eager python int


def test_schedule_is_called_with_updates_already_applied():
    seen = []
    optimizer = optim.sgd(lambda step: seen.append(int(step)) or 0.1)
    state = optimizer.init(jnp.zeros(1))
    for _ in range(3):
        state = optimizer.update(state, jnp.ones(1))
    assert seen == [0, 1, 2]


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: optim.sgd(-0.1),
            r"sgd: `learning_rate` must be a finite number >= 0 or a schedule",
        ),
        (
            lambda: optim.adam(float("inf")),
            "adam: `learning_rate` must be a finite number >= 0 .* got inf",
        ),
        (lambda: optim.adam(float("nan")), "got nan"),
        (lambda: optim.adam(b1=1.0), r"adam: `b1` must be a number in \[0, 1\), got 1.0"),
        (lambda: optim.adamw(b2=-0.1), r"adamw: `b2` must be a number in \[0, 1\), got -0.1"),
        (
            lambda: optim.rmsprop(decay=1.5),
            r"rmsprop: `decay` must be a number in \[0, 1\), got 1.5",
        ),
        (lambda: optim.adam(eps=-1e-8), r"adam: `eps` must be a finite number > 0 .*, got -1e-08"),
        (
            lambda: optim.sgd(0.1, weight_decay=-1),
            "sgd: `weight_decay` must be a finite number >= 0, got -1",
        ),
        (lambda: optim.rmsprop(momentum=-0.9), "rmsprop: `momentum` must be a finite number >= 0"),
        (
            lambda: optim.sgd(0.1, nesterov=True),
            "nesterov=True needs momentum > 0 and dampening == 0",
        ),
        (
            lambda: optim.sgd(0.1, momentum=0.9, dampening=0.1, nesterov=True),
            "got momentum=0.9 and dampening=0.1",
        ),
        (
            lambda: optim.clip_by_global_norm(optim.sgd(0.1), 0.0),
            "`max_norm` must be a finite number > 0, got 0.0",
        ),
        (
            lambda: schedules.cosine_decay(0.1, 0),
            "cosine_decay: `decay_steps` must be a positive int, got 0",
        ),
        (
            lambda: schedules.warmup_cosine_decay(0.1, 10, 10),
            "`decay_steps` counts the warm-up and must exceed",
        ),
    ],
)
def test_bad_hyperparameters_raise_at_construction(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: optim.adam("0.1"),
            r"adam: `learning_rate` must be .* a schedule \(a callable step -> learning rate.*got '0.1' \(str\)",
        ),
        (lambda: optim.adam("fast"), r"adam: `learning_rate` must be .* got 'fast' \(str\)"),
        (lambda: optim.rmsprop([0.1]), r"rmsprop: `learning_rate` must be .* got \[0.1\] \(list\)"),
        (lambda: optim.adam(b1="x"), r"adam: `b1` must be a number in \[0, 1\), got 'x' \(str\)"),
        (lambda: optim.sgd(0.1, momentum=None), r"sgd: `momentum` must be .* got None"),
        (lambda: optim.rmsprop(eps=True), r"rmsprop: `eps` must be .* got True \(bool\)"),
        (lambda: optim.clip_by_global_norm(optim.sgd(0.1), "1"), "`max_norm` must be"),
    ],
)
def test_wrong_kinds_of_hyperparameters_raise_type_errors(call, match):
    with pytest.raises(TypeError, match=match):
        call()


def test_numpy_and_jax_scalar_learning_rates_are_accepted():
    for lr in (np.float32(0.1), jnp.float32(0.1), jnp.asarray(0.1)):
        state = optim.sgd(lr).update(optim.sgd(lr).init(jnp.ones(2)), jnp.ones(2))
        np.testing.assert_allclose(state.params, [0.9, 0.9], rtol=1e-6)
    with pytest.raises(ValueError, match=r"`alpha` .* must be in \[0, 1\], got 3.0"):
        schedules.cosine_decay(1.0, 10, alpha=3.0)


def test_clip_rejects_a_non_optimizer():
    with pytest.raises(TypeError, match="`optimizer` must be an fnnet Optimizer"):
        optim.clip_by_global_norm(optim.adam, 1.0)


def test_update_with_mismatched_grads_names_both_trees():
    optimizer = optim.adam()
    state = optimizer.init({"w": jnp.ones((2, 3)), "b": jnp.ones(3)})
    with pytest.raises(
        ValueError,
        match=r"adam.update: `grads` must have the same tree structure .* params: PyTreeDef\(\{'b': \*, 'w': \*\}\), grads: PyTreeDef\(\{'w': \*\}\)",
    ):
        optimizer.update(state, {"w": jnp.ones((2, 3))})
    with pytest.raises(
        ValueError, match=r"at \['w'\] the param has shape \(2, 3\) and the grad \(3, 2\)"
    ):
        jax.jit(optimizer.update)(state, {"w": jnp.ones((3, 2)), "b": jnp.ones(3)})


def test_integer_params_are_refused():
    with pytest.raises(
        TypeError, match=r"sgd: every param must be a floating array, got int32 at \['n'\]"
    ):
        optim.sgd(0.1).init({"n": jnp.arange(3)})
