"""`precision=`: bfloat16 mixed precision and full float32 matmuls ("highest").

Dtypes are read from the traced programs (`jax.make_jaxpr`), which is what bfloat16 on a CPU
can show; speed is measured in benchmarks/bench_gpu.py, accuracy in bench_precision.py.
"""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import losses, nn, optim, train

BF16, F32 = jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float32)
LOSS = losses.softmax_cross_entropy


def _cnn():
    return nn.serial(
        nn.Conv2D(4, 3, use_bias=False), nn.BatchNorm(), nn.Relu(), nn.MaxPool2D(2),
        nn.Flatten(), nn.Dropout(0.1), nn.Dense(16), nn.LayerNorm(), nn.Gelu(), nn.Dense(5),
    )  # fmt: skip


def _gpt():
    return nn.serial(
        nn.Embedding(11, 16),
        nn.repeat(nn.serial(nn.LayerNorm(), nn.MultiHeadAttention(2, 16, causal=True)), 2),
        nn.LSTM(8), nn.Dense(11),
    )  # fmt: skip


CASES = {  # model, input batch, targets
    "cnn": (_cnn, np.random.default_rng(0).normal(size=(6, 6, 6, 1)).astype(np.float32),
            np.arange(6) % 5),
    "tokens": (_gpt, np.arange(24).reshape(4, 6) % 11, np.arange(24).reshape(4, 6) % 11),
}  # fmt: skip


def _eqns(jaxpr):
    """Every equation of a closed jaxpr, those of its sub-jaxprs (scan, jit, ...) included."""
    for eqn in jaxpr.eqns:
        yield eqn
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            yield from _eqns(sub)


def _traced_step(name, precision, optimizer=None):
    make, inputs, targets = CASES[name]
    model, optimizer = make(), optimizer or optim.adam(1e-3)
    state = train.init_state(model, optimizer, jax.random.key(0), inputs.shape[1:])
    step = train.make_train_step(model, LOSS, optimizer, precision=precision)
    jaxpr = jax.make_jaxpr(step)(state, (inputs, targets))
    return jaxpr, state, jax.eval_shape(step, state, (inputs, targets))


def _heavy(jaxpr):
    """The matmuls and convolutions of a traced program."""
    names = ("dot_general", "conv_general_dilated")
    return [e for e in _eqns(jaxpr.jaxpr) if e.primitive.name in names]


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("precision, dtype", [("bfloat16", BF16), ("float32", F32)])
def test_bfloat16_runs_every_matmul_and_convolution_in_bfloat16(name, precision, dtype):
    heavy = _heavy(_traced_step(name, precision)[0])
    assert len(heavy) >= 6  # forward and backward
    for eqn in heavy:
        # attention's backward pass multiplies its float32 score gradient with bfloat16 inputs
        # by a bfloat16 matmul with float32 accumulation
        mixed = eqn.params.get("precision") == jax.lax.DotAlgorithmPreset.BF16_BF16_F32
        assert mixed or [v.aval.dtype for v in eqn.invars] == [dtype, dtype], eqn


@pytest.mark.parametrize("name", CASES)
def test_bfloat16_keeps_float32_params_optimizer_state_loss_and_layer_state(name):
    _, state, (new_state, loss) = _traced_step(name, "bfloat16")
    assert loss.dtype == F32
    for before, after in zip(jax.tree.leaves(state), jax.tree.leaves(new_state), strict=True):
        assert after.dtype == before.dtype and after.shape == before.shape
    assert {leaf.dtype for leaf in jax.tree.leaves(state.params)} == {F32}


@pytest.mark.parametrize(
    "layer, shape",
    [(nn.BatchNorm(), (4, 3, 3, 5)), (nn.LayerNorm(), (4, 5)), (nn.Softmax(), (4, 5)),
     (nn.LogSoftmax(), (4, 5)), (nn.MultiHeadAttention(2, 8, causal=True), (2, 6, 8))],
)  # fmt: skip
@pytest.mark.parametrize("train_mode", [False, True])
def test_layers_accumulate_bfloat16_inputs_in_float32(layer, shape, train_mode):
    params, state = layer.init(jax.random.key(0), shape[1:])
    params = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
    x = jax.random.normal(jax.random.key(1), shape, jnp.bfloat16)

    def apply(x):
        return layer.apply(params, state, x, train=train_mode)

    jaxpr = jax.make_jaxpr(apply)(x)
    reductions = [e for e in _eqns(jaxpr.jaxpr) if e.primitive.name.startswith("reduce_")]
    assert reductions or not train_mode  # BatchNorm evaluates with its running statistics
    for eqn in reductions:
        assert eqn.outvars[0].aval.dtype == F32, eqn
    outputs, new_state = apply(x)
    assert outputs.dtype == BF16
    assert all(leaf.dtype == F32 for leaf in jax.tree.leaves(new_state))
    wide = layer.apply(jax.tree.map(lambda p: p.astype(F32), params), state, x.astype(F32),
                       train=train_mode)[0]  # fmt: skip
    np.testing.assert_allclose(np.asarray(outputs, F32), wide, rtol=2e-2, atol=2e-2)


def test_highest_pins_every_matmul_and_convolution_to_full_float32():
    with jax.default_matmul_precision("default"):  # the tests otherwise run under "highest"
        for precision, pinned in (("highest", True), ("float32", False)):
            heavy = _heavy(_traced_step("cnn", precision)[0])
            assert heavy
            for eqn in heavy:
                highest = eqn.params["precision"] == (jax.lax.Precision.HIGHEST,) * 2
                assert highest == pinned, (precision, eqn)


def _digits_like(n=96, features=12, classes=4):
    rng = np.random.default_rng(3)
    centers = rng.normal(size=(classes, features)) * 2
    labels = np.arange(n) % classes
    return (centers[labels] + rng.normal(size=(n, features))).astype(np.float32), labels


def test_fit_in_bfloat16_trains_float32_master_weights_close_to_float32():
    data = _digits_like()
    runs = {
        precision: train.fit(nn.MLP((32,), 4), LOSS, optim.adam(1e-2), data, epochs=8,
                             batch_size=16, key=jax.random.key(0), validation_data=data,
                             metrics=("accuracy",), precision=precision, verbose=False)
        for precision in ("float32", "bfloat16", "highest")
    }  # fmt: skip
    bf16, f32 = runs["bfloat16"], runs["float32"]
    assert {leaf.dtype for leaf in jax.tree.leaves(bf16.state.params)} == {F32}
    assert bf16.history["loss"][-1] < 0.5 * bf16.history["loss"][0]
    np.testing.assert_allclose(bf16.history["loss"], f32.history["loss"], rtol=0.1, atol=0.02)
    assert abs(bf16.history["val_accuracy"][-1] - f32.history["val_accuracy"][-1]) <= 0.05
    # bfloat16 rounding (8 significant bits) does move the params: it is not float32 in disguise
    assert not np.allclose(bf16.state.params[0]["w"], f32.state.params[0]["w"], atol=1e-5)
    np.testing.assert_allclose(runs["highest"].history["loss"], f32.history["loss"], rtol=1e-5)


def test_predict_and_evaluate_in_bfloat16_return_float32_close_to_float32():
    inputs, labels = _digits_like()
    model = nn.MLP((32,), 4)
    state = train.init_state(model, optim.sgd(0.1), jax.random.key(0), inputs.shape[1:])
    wide = train.predict(model, state, inputs)
    narrow = train.predict(model, state, inputs, precision="bfloat16", batch_size=40)
    assert narrow.dtype == F32 and narrow.shape == wide.shape
    np.testing.assert_allclose(narrow, wide, rtol=5e-2, atol=5e-2)
    assert not np.array_equal(narrow, wide)
    scores = {p: train.evaluate(model, state, (inputs, labels), loss_fn=LOSS, precision=p)
              for p in ("float32", "bfloat16")}  # fmt: skip
    assert scores["bfloat16"]["loss"] == pytest.approx(scores["float32"]["loss"], rel=2e-2)


def test_make_train_epoch_and_fit_ensemble_take_bfloat16():
    data = _digits_like()
    model, optimizer = nn.MLP((16,), 4), optim.adam(1e-2)
    epoch = train.make_train_epoch(model, LOSS, optimizer, batch_size=16, precision="bfloat16")
    state = train.init_state(model, optimizer, jax.random.key(0), (12,))
    dots = _heavy(jax.make_jaxpr(epoch)(state, *map(jnp.asarray, data)))
    assert dots and all(v.aval.dtype == BF16 for e in dots for v in e.invars)
    result = train.fit_ensemble(model, LOSS, optimizer, data, keys=jax.random.split(
        jax.random.key(0), 2), epochs=3, batch_size=16, precision="bfloat16", verbose=False)  # fmt: skip
    assert result.history["loss"][-1].shape == (2,)
    assert np.all(result.history["loss"][-1] < result.history["loss"][0])


CALLS = {
    "fit": lambda model, state, data, **kw: train.fit(
        model, LOSS, optim.sgd(0.1), data, epochs=1, batch_size=8, initial_state=state,
        verbose=False, **kw),
    "fit_ensemble": lambda model, state, data, **kw: train.fit_ensemble(
        model, LOSS, optim.sgd(0.1), data, keys=jax.random.split(jax.random.key(0), 2),
        epochs=1, batch_size=8, verbose=False, **kw),
    "make_train_step": lambda model, state, data, **kw: train.make_train_step(
        model, LOSS, optim.sgd(0.1), **kw)(state, data),
    "make_train_epoch": lambda model, state, data, **kw: train.make_train_epoch(
        model, LOSS, optim.sgd(0.1), batch_size=8, **kw)(state, *data),
    "evaluate": lambda model, state, data, **kw: train.evaluate(model, state, data, **kw),
    "predict": lambda model, state, data, **kw: train.predict(model, state, data[0], **kw),
}  # fmt: skip


@pytest.mark.parametrize("where", CALLS)
@pytest.mark.parametrize("precision", ["bf16", "float16", "HIGHEST", None, 32])
def test_unknown_precision_is_a_value_error_listing_the_names(where, precision):
    model = nn.MLP((8,), 4)
    state = train.init_state(model, optim.sgd(0.1), jax.random.key(0), (12,))
    with pytest.raises(ValueError, match=r"`precision` must be one of 'float32', 'highest', "
                       r"'bfloat16'; got"):  # fmt: skip
        CALLS[where](model, state, _digits_like(16), precision=precision)


@pytest.mark.parametrize("where", CALLS)
def test_bfloat16_with_float64_params_is_a_value_error_naming_the_leaf(where):
    def float64_normal(key, shape, dtype=jnp.float32):
        return 0.1 * jax.random.normal(key, shape, jnp.float64)

    with jax.enable_x64(True):
        model = nn.serial(nn.Dense(8, w_init=float64_normal), nn.Relu(), nn.Dense(4))
        state = train.init_state(model, optim.sgd(0.1), jax.random.key(0), (12,))
        assert state.params[0]["w"].dtype == jnp.float64
        inputs, labels = _digits_like(16)
        with pytest.raises(ValueError, match=rf"^{where}: precision='bfloat16' computes in "
                           r"bfloat16 from float32 params .* got float64 params at \[0\]\['b'\]"):  # fmt: skip
            CALLS[where](model, state, (inputs.astype(np.float64), labels),
                         precision="bfloat16")  # fmt: skip


def test_attention_falls_back_to_xla_where_cudnn_cannot_run(monkeypatch):
    """On a GPU bfloat16 attention asks for cuDNN's fused kernel; where cuDNN refuses while
    tracing (here: no cuDNN at all), XLA's attention runs instead, with the same outputs."""
    layer = nn.MultiHeadAttention(2, 16, causal=True)
    params, state = layer.init(jax.random.key(0), (8, 16))
    params = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
    x = jax.random.normal(jax.random.key(1), (2, 8, 16), jnp.bfloat16)
    on_cpu = layer.apply(params, state, x)[0]
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    np.testing.assert_array_equal(layer.apply(params, state, x)[0], on_cpu)
