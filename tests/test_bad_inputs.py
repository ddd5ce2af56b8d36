"""Bad inputs across the public API: each gets a ValueError or TypeError naming the argument.

Every case is ``(call, error type, pattern)``; the pattern is searched in the message and names
the argument (or the value) at fault, so a message that only comes from JAX, NumPy or XLA
internals fails. The last tests check that no error leaves a caller's arrays or state changed.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnnet import (
    activations,
    checkpoint,
    data,
    datasets,
    initializers,
    losses,
    metrics,
    nn,
    optim,
    train,
)
from fnnet.optim import schedules

KEY = jax.random.key(0)
X = np.random.default_rng(0).normal(size=(24, 4)).astype(np.float32)
Y = (np.arange(24) % 3).astype(np.int32)
MLP = nn.MLP((8,), 3)
CE = losses.softmax_cross_entropy


def state():
    return train.init_state(MLP, optim.sgd(0.1), KEY, (4,))


def fit(**overrides):
    kwargs = dict(epochs=1, batch_size=8, key=KEY, verbose=False)
    kwargs.update(overrides)
    model = kwargs.pop("model", MLP)
    loss_fn = kwargs.pop("loss_fn", CE)
    optimizer = kwargs.pop("optimizer", optim.sgd(0.1))
    train_data = kwargs.pop("train_data", (X, Y))
    return train.fit(model, loss_fn, optimizer, train_data, **kwargs)


def apply(layer, input_shape, inputs, params=None, **kwargs):
    p, s = layer.init(KEY, input_shape)
    return layer.apply(p if params is None else params(p), s, inputs, **kwargs)


def swapped(first, second, input_shape):
    """`first` applied with the params of `second` (another model)."""
    p, s = second.init(KEY, input_shape)
    return lambda: first.apply(p, s, jnp.ones((2, *input_shape)))


def donated():
    step = train.make_train_step(MLP, CE, optim.sgd(0.1))
    old = state()
    step(old, (X[:8], Y[:8]))
    return step, old


def reuse_donated_in_step():
    step, old = donated()
    step(old, (X[:8], Y[:8]))


def reuse_donated_in(function):
    def call():
        _, old = donated()
        function(old)

    return call


def epoch_twice():
    epoch = train.make_train_epoch(MLP, CE, optim.sgd(0.1), batch_size=8)
    old = state()
    epoch(old, X, Y)
    epoch(old, X, Y)


ONES = jnp.ones((2, 3))
LABELS = jnp.array([0, 1])
NOT_A_KEY = "`key` must be a (single |)(JAX )?PRNG key"

# fmt: off
CASES = [
    # --- keys that are not keys (everywhere a key is taken) ---
    ("init_state key None", lambda: train.init_state(MLP, optim.sgd(0.1), None, (4,)), TypeError, NOT_A_KEY),
    ("init_state key int", lambda: train.init_state(MLP, optim.sgd(0.1), 0, (4,)), TypeError, r"jax\.random\.key\(0\)"),
    ("init_state key float array", lambda: train.init_state(MLP, optim.sgd(0.1), jnp.zeros(2), (4,)), TypeError, NOT_A_KEY),
    ("init_state raw key of 3", lambda: train.init_state(MLP, optim.sgd(0.1), jnp.zeros(3, jnp.uint32), (4,)), TypeError, NOT_A_KEY),
    ("init_state batch of keys", lambda: train.init_state(MLP, optim.sgd(0.1), jax.random.split(KEY), (4,)), TypeError, "single PRNG key"),
    ("init_state key str", lambda: train.init_state(MLP, optim.sgd(0.1), "seed", (4,)), TypeError, NOT_A_KEY),
    ("fit key None", lambda: fit(key=None), TypeError, NOT_A_KEY),
    ("fit key int", lambda: fit(key=3), TypeError, NOT_A_KEY),
    ("fit key float", lambda: fit(key=jnp.zeros(2)), TypeError, NOT_A_KEY),
    ("layer init key None", lambda: MLP.init(None, (4,)), TypeError, NOT_A_KEY),
    ("layer init key int", lambda: MLP.init(1, (4,)), TypeError, NOT_A_KEY),
    ("Dropout key float", lambda: apply(nn.Dropout(0.5), (4,), jnp.ones((2, 4)), key=jnp.ones(2), train=True), TypeError, NOT_A_KEY),
    ("split key None", lambda: data.split(None, X, Y), TypeError, NOT_A_KEY),
    ("split key float", lambda: data.split(jnp.zeros(2), X, Y), TypeError, NOT_A_KEY),
    ("batches key int", lambda: list(data.batches(7, X, batch_size=4)), TypeError, NOT_A_KEY),
    ("make_moons key None", lambda: datasets.make_moons(10, key=None), TypeError, NOT_A_KEY),
    ("make_moons key int", lambda: datasets.make_moons(10, key=3), TypeError, NOT_A_KEY),
    ("make_spirals key float", lambda: datasets.make_spirals(10, key=jnp.zeros(2)), TypeError, NOT_A_KEY),
    ("make_sine key raw wrong shape", lambda: datasets.make_sine(10, key=jnp.zeros(4, jnp.uint32)), TypeError, NOT_A_KEY),
    ("make_robot_arm key None", lambda: datasets.make_robot_arm(10, key=None), TypeError, NOT_A_KEY),
    ("initializer key None", lambda: initializers.glorot_uniform()(None, (3, 3)), TypeError, NOT_A_KEY),
    ("initializer key int", lambda: initializers.he_normal()(0, (3, 3)), TypeError, NOT_A_KEY),
    # --- input shapes ---
    ("init_state negative dim", lambda: train.init_state(MLP, optim.sgd(0.1), KEY, (-4,)), ValueError, "`input_shape` must have positive dimensions"),
    ("init_state zero dim", lambda: train.init_state(MLP, optim.sgd(0.1), KEY, (0,)), ValueError, "`input_shape` must have positive dimensions"),
    ("init_state int shape", lambda: train.init_state(MLP, optim.sgd(0.1), KEY, 4), TypeError, "`input_shape` must be a tuple of ints"),
    ("init_state float dims", lambda: train.init_state(MLP, optim.sgd(0.1), KEY, (4.0,)), TypeError, "`input_shape` must be a tuple of ints"),
    ("Dense init negative", lambda: nn.Dense(3).init(KEY, (-1,)), ValueError, "`input_shape` must have positive"),
    ("Conv2D init negative", lambda: nn.Conv2D(3, 3).init(KEY, (8, -8, 1)), ValueError, "`input_shape`"),
    ("Conv2D init rank 2", lambda: nn.Conv2D(3, 3).init(KEY, (8, 8)), ValueError, "`input_shape`"),
    ("LSTM init rank 1", lambda: nn.LSTM(3).init(KEY, (8,)), ValueError, "`input_shape` must be \\(time, features\\)"),
    ("Embedding init bool dim", lambda: nn.Embedding(5, 3).init(KEY, (True,)), ValueError, "`input_shape`"),
    ("summary negative", lambda: nn.summary(MLP, (-4,)), ValueError, "`input_shape`"),
    ("summary not a shape", lambda: nn.summary(MLP, "4"), TypeError, "`input_shape`"),
    # --- params of another model or layer ---
    ("MLP with another MLP's params", swapped(nn.MLP((8,), 3), nn.MLP((8,), 5), (4,)), ValueError, r"Dense: `params` do not fit this layer: expected \{'w': \(in, 3\)"),
    ("MLP with a deeper MLP's params", swapped(nn.MLP((8,), 3), nn.MLP((8, 8), 3), (4,)), ValueError, "`params` must be a tuple with one entry per layer"),
    ("Dense without bias key", lambda: apply(nn.Dense(3), (4,), jnp.ones((2, 4)), params=lambda p: {"w": p["w"]}), ValueError, "`params` do not fit"),
    ("Dense params a list", lambda: apply(nn.Dense(3), (4,), jnp.ones((2, 4)), params=lambda p: [p["w"], p["b"]]), ValueError, "`params` do not fit"),
    ("Dense params None", lambda: apply(nn.Dense(3), (4,), jnp.ones((2, 4)), params=lambda p: None), ValueError, "`params` do not fit"),
    ("Dense extra param", lambda: apply(nn.Dense(3), (4,), jnp.ones((2, 4)), params=lambda p: {**p, "c": p["b"]}), ValueError, "`params` do not fit"),
    ("Dense use_bias=False given a bias", swapped(nn.Dense(3, use_bias=False), nn.Dense(3), (4,)), ValueError, "`params` do not fit"),
    ("Conv2D other features", swapped(nn.Conv2D(4, 3), nn.Conv2D(8, 3), (6, 6, 1)), ValueError, "Conv2D: `params` do not fit"),
    ("Conv2D other kernel", swapped(nn.Conv2D(4, 3), nn.Conv2D(4, 5), (6, 6, 1)), ValueError, "Conv2D: `params` do not fit"),
    ("BatchNorm missing scale", lambda: apply(nn.BatchNorm(), (4,), jnp.ones((2, 4)), params=lambda p: {"bias": p["bias"]}), ValueError, "BatchNorm: `params` do not fit"),
    ("BatchNorm state of another width", lambda: nn.BatchNorm().apply(nn.BatchNorm().init(KEY, (4,))[0], nn.BatchNorm().init(KEY, (5,))[1], jnp.ones((2, 4))), ValueError, "BatchNorm: `state` do not fit"),
    ("LayerNorm scale and bias differ", lambda: apply(nn.LayerNorm(), (4,), jnp.ones((2, 4)), params=lambda p: {"scale": p["scale"], "bias": jnp.zeros(5)}), ValueError, "LayerNorm: `params` do not fit"),
    ("Embedding other table", swapped(nn.Embedding(10, 4), nn.Embedding(12, 4), (3,)), ValueError, "Embedding: `params` do not fit"),
    ("LSTM with GRU params", swapped(nn.LSTM(4), nn.GRU(4), (5, 2)), ValueError, "LSTM: `params` do not fit"),
    ("GRU other features", swapped(nn.GRU(4), nn.GRU(6), (5, 2)), ValueError, "GRU: `params` do not fit"),
    ("attention other width", swapped(nn.MultiHeadAttention(2, 8), nn.MultiHeadAttention(2, 4), (5, 4)), ValueError, "MultiHeadAttention: `params` do not fit"),
    ("attention missing projection", lambda: apply(nn.MultiHeadAttention(2, 4), (5, 4), jnp.ones((2, 5, 4)), params=lambda p: {k: v for k, v in p.items() if k != "key"}), ValueError, "MultiHeadAttention: `params` do not fit"),
    ("predict with another model's state", lambda: train.predict(nn.MLP((8,), 5), state(), X), ValueError, "`params` do not fit"),
    ("fit initial_state of another model", lambda: fit(model=nn.MLP((8,), 5), initial_state=state()), ValueError, "`initial_state` does not fit"),
    ("fit initial_state of another optimizer", lambda: fit(optimizer=optim.adam(), initial_state=state()), ValueError, "`initial_state` does not fit"),
    ("fit initial_state not a state", lambda: fit(initial_state=state().params), TypeError, "`initial_state` must be a TrainState"),
    ("predict state not a state", lambda: train.predict(MLP, state().params, X), TypeError, "`state` must be a TrainState"),
    ("evaluate state not a state", lambda: train.evaluate(MLP, None, (X, Y)), TypeError, "`state` must be a TrainState"),
    ("predict model not a layer", lambda: train.predict("mlp", state(), X), TypeError, "`model` must be a Layer"),
    # --- optimizer states from another optimizer ---
    ("adam update with sgd state", lambda: optim.adam().update(optim.sgd(0.1).init(jnp.ones(3)), jnp.ones(3)), TypeError, "`state` must be the AdamState"),
    ("sgd update with adam state", lambda: optim.sgd(0.1).update(optim.adam().init(jnp.ones(3)), jnp.ones(3)), TypeError, "`state` must be the SGDState"),
    ("rmsprop update with adam state", lambda: optim.rmsprop().update(optim.adam().init(jnp.ones(3)), jnp.ones(3)), TypeError, "`state` must be the RMSpropState"),
    ("update with params instead of state", lambda: optim.adam().update(jnp.ones(3), jnp.ones(3)), TypeError, "`state` must be the AdamState"),
    ("amsgrad update without its maximum", lambda: optim.adam(amsgrad=True).update(optim.adam().init(jnp.ones(3)), jnp.ones(3)), ValueError, "slot 'nu_max' missing"),
    ("momentum update without buffer", lambda: optim.sgd(0.1, momentum=0.9).update(optim.sgd(0.1).init(jnp.ones(3)), jnp.ones(3)), ValueError, "slot 'momentum' missing"),
    ("centered rmsprop without average", lambda: optim.rmsprop(centered=True).update(optim.rmsprop().init(jnp.ones(3)), jnp.ones(3)), ValueError, "slot 'grad_avg' missing"),
    ("schedule optimizer with constant state", lambda: optim.adam(schedules.constant(0.1)).update(optim.adam().init(jnp.ones(3)), jnp.ones(3)), ValueError, "'learning_rate_scale' missing"),
    ("adamw update with adam state", lambda: optim.adamw().update(optim.adam().init(jnp.ones(3)), jnp.ones(3)), ValueError, "'weight_decay' missing"),
    ("update grads of another tree", lambda: optim.sgd(0.1).update(optim.sgd(0.1).init({"a": jnp.ones(3)}), {"b": jnp.ones(3)}), ValueError, "`grads` must have the same tree structure"),
    ("update grads of another shape", lambda: optim.sgd(0.1).update(optim.sgd(0.1).init(jnp.ones(3)), jnp.ones(4)), ValueError, "`grads` must match the params"),
    ("init integer params", lambda: optim.adam().init(jnp.ones(3, jnp.int32)), TypeError, "every param must be a floating array"),
    ("hyperparams of params", lambda: optim.hyperparams(jnp.ones(3)), TypeError, "`opt_state` must be the state of an fnnet optimizer"),
    ("with_hyperparams unknown", lambda: optim.with_hyperparams(optim.sgd(0.1).init(jnp.ones(3)), lr=0.1), ValueError, "unknown hyperparameter 'lr'"),
    ("with_hyperparams eps 0", lambda: optim.with_hyperparams(optim.adam().init(jnp.ones(3)), eps=0.0), ValueError, "`eps` must be a finite number > 0"),
    # --- optimizer hyperparameters ---
    ("adam eps 0", lambda: optim.adam(eps=0.0), ValueError, "`eps` must be a finite number > 0"),
    ("adamw eps 0", lambda: optim.adamw(eps=0), ValueError, "`eps` must be a finite number > 0"),
    ("rmsprop eps 0", lambda: optim.rmsprop(eps=0.0), ValueError, "`eps` must be a finite number > 0"),
    ("rmsprop eps_in_sqrt eps 0", lambda: optim.rmsprop(eps=0.0, eps_in_sqrt=True), ValueError, "`eps` must be a finite number > 0"),
    ("adam eps nan", lambda: optim.adam(eps=float("nan")), ValueError, "`eps`"),
    ("adam lr negative", lambda: optim.adam(-1e-3), ValueError, "`learning_rate`"),
    ("adam lr inf", lambda: optim.adam(float("inf")), ValueError, "`learning_rate`"),
    ("adam lr str", lambda: optim.adam("1e-3"), TypeError, "`learning_rate`"),
    ("adam lr None", lambda: optim.adam(None), TypeError, "`learning_rate`"),
    ("adam lr array of 2", lambda: optim.adam(jnp.ones(2)), TypeError, "`learning_rate`"),
    ("adam b1 1", lambda: optim.adam(b1=1.0), ValueError, "`b1` must be a number in \\[0, 1\\)"), ("adam b2 negative", lambda: optim.adam(b2=-0.1), ValueError, "`b2`"), ("adam weight_decay negative", lambda: optim.adam(weight_decay=-1.0), ValueError, "`weight_decay`"),
    ("sgd momentum negative", lambda: optim.sgd(0.1, momentum=-0.5), ValueError, "`momentum`"),
    ("sgd dampening 2", lambda: optim.sgd(0.1, momentum=0.9, dampening=2.0), ValueError, "`dampening`"),
    ("sgd nesterov without momentum", lambda: optim.sgd(0.1, nesterov=True), ValueError, "nesterov=True needs momentum > 0"),
    ("sgd lr missing", lambda: optim.sgd(), TypeError, "learning_rate"),
    ("rmsprop decay 1", lambda: optim.rmsprop(decay=1.0), ValueError, "`decay`"),
    ("rmsprop momentum bool", lambda: optim.rmsprop(momentum=True), TypeError, "`momentum`"),
    ("clip max_norm 0", lambda: optim.clip_by_global_norm(optim.sgd(0.1), 0.0), ValueError, "`max_norm`"),
    ("clip of a function", lambda: optim.clip_by_global_norm(optim.adam, 1.0), TypeError, "`optimizer` must be an fnnet Optimizer"),
    ("exponential_decay rate 0", lambda: schedules.exponential_decay(0.1, 0.0, 10), ValueError, "`decay_rate`"),
    ("step_decay step_size 0", lambda: schedules.step_decay(0.1, 0, 0.5), ValueError, "`step_size`"),
    ("cosine_decay steps float", lambda: schedules.cosine_decay(0.1, 10.5), TypeError, "`decay_steps`"),
    ("warmup too long", lambda: schedules.warmup_cosine_decay(0.1, 10, 10), ValueError, "`decay_steps`"),
    ("constant nan", lambda: schedules.constant(float("nan")), ValueError, "`value`"),
    # --- layer constructors ---
    ("Dense features 0", lambda: nn.Dense(0), ValueError, "`features` must be a positive int"),
    ("Dense features float", lambda: nn.Dense(3.0), TypeError, "`features` must be a positive int"),
    ("Dense features str", lambda: nn.Dense("3"), TypeError, "`features`"),
    ("Dense w_init not callable", lambda: nn.Dense(3, w_init="glorot"), TypeError, "`w_init`"),
    ("Dense w_init factory uncalled", lambda: nn.Dense(3, w_init=initializers.glorot_uniform), TypeError, "`w_init`"),
    ("Dropout rate 1", lambda: nn.Dropout(1.0), ValueError, "`drop_rate`"),
    ("Dropout rate negative", lambda: nn.Dropout(-0.1), ValueError, "`drop_rate`"),
    ("Dropout train without key", lambda: apply(nn.Dropout(0.5), (4,), jnp.ones((2, 4)), train=True), ValueError, "`key`"),
    ("Conv2D kernel 0", lambda: nn.Conv2D(3, 0), ValueError, "`kernel_size`"),
    ("Conv2D kernel triple", lambda: nn.Conv2D(3, (3, 3, 3)), ValueError, "`kernel_size`"),
    ("Conv2D padding unknown", lambda: nn.Conv2D(3, 3, padding="FULL"), ValueError, "`padding`"),
    ("Conv2D strides 0", lambda: nn.Conv2D(3, 3, strides=0), ValueError, "`strides`"),
    ("MaxPool2D window 0", lambda: nn.MaxPool2D(0), ValueError, "`window`"),
    ("AvgPool2D padding bad", lambda: nn.AvgPool2D(2, padding="same-ish"), ValueError, "`padding`"),
    ("BatchNorm momentum 2", lambda: nn.BatchNorm(momentum=2.0), ValueError, "`momentum`"),
    ("BatchNorm eps 0", lambda: nn.BatchNorm(eps=0.0), ValueError, "`eps`"),
    ("LayerNorm eps negative", lambda: nn.LayerNorm(eps=-1.0), ValueError, "`eps`"),
    ("Embedding num 0", lambda: nn.Embedding(0, 4), ValueError, "`num_embeddings`"),
    ("LSTM features 0", lambda: nn.LSTM(0), ValueError, "`features`"),
    ("attention heads not dividing", lambda: nn.MultiHeadAttention(3, 8), ValueError, "`features` must be divisible by `num_heads`"),
    ("LeakyRelu slope str", lambda: nn.LeakyRelu("0.1"), TypeError, "`negative_slope`"),
    ("MLP hidden int", lambda: nn.MLP(8, 3), TypeError, "`hidden_sizes`"),
    ("MLP hidden 0", lambda: nn.MLP((0,), 3), ValueError, r"`hidden_sizes\[0\]` must be a positive int"),
    ("MLP unknown activation", lambda: nn.MLP((8,), 3, activation="swish2"), ValueError, "activation"),
    ("serial uncalled layer", lambda: nn.serial(nn.Dense(3), nn.Relu), TypeError, "`Relu` instead of `Relu\\(\\)`"),
    ("serial not a layer", lambda: nn.serial(nn.Dense(3), 5), TypeError, "argument 2 must be a Layer"),
    ("residual not a layer", lambda: nn.residual("dense"), TypeError, "Layer"),
    # --- layer inputs ---
    ("Dense wrong width", lambda: apply(nn.Dense(3), (4,), jnp.ones((2, 5))), ValueError, "inputs must have last axis 4"),
    ("Conv2D rank 3", lambda: apply(nn.Conv2D(2, 3), (6, 6, 1), jnp.ones((6, 6, 1))), ValueError, "inputs must have rank 4"),
    ("LSTM rank 2", lambda: apply(nn.LSTM(2), (5, 3), jnp.ones((5, 3))), ValueError, "inputs must have rank 3"),
    ("Embedding float ids", lambda: apply(nn.Embedding(5, 2), (3,), jnp.ones((2, 3))), ValueError, "inputs must be integer ids"),
    ("Embedding id out of range", lambda: apply(nn.Embedding(5, 2), (3,), jnp.full((2, 3), 5)), ValueError, "ids must lie in \\[0, 5\\)"),
    ("BatchNorm batch of one", lambda: apply(nn.BatchNorm(), (4,), jnp.ones((1, 4)), train=True), ValueError, "batch of 2 or more"),
    ("Flatten scalar", lambda: apply(nn.Flatten(), (4,), jnp.ones(())), ValueError, "batch axis"),
    # --- activations and initializers ---
    ("softmax axis out of range", lambda: activations.softmax(ONES, axis=2), ValueError, "`axis`"),
    ("leaky_relu slope str", lambda: activations.leaky_relu(ONES, negative_slope="x"), TypeError, "`negative_slope`"),
    ("normal stddev negative", lambda: initializers.normal(stddev=-1.0), ValueError, "`stddev`"),
    ("uniform scale nan", lambda: initializers.uniform(scale=float("nan")), ValueError, "`scale`"),
    ("glorot shape an int", lambda: initializers.glorot_uniform()(KEY, 3), ValueError, "`shape` must be a tuple of ints"),
    ("initializer negative shape", lambda: initializers.zeros()(KEY, (-3, 2)), ValueError, "`shape`"),
    # --- losses ---
    ("mse shapes differ", lambda: losses.mse(jnp.ones(3), jnp.ones(4)), ValueError, "`targets` must have the shape of `predictions`"),
    ("mse complex", lambda: losses.mse(jnp.ones(3) * 1j, jnp.ones(3)), TypeError, "`predictions` must hold real numbers"),
    ("mse complex targets", lambda: losses.mse(jnp.ones(3), jnp.ones(3) * (1 + 1j)), TypeError, "`targets` must hold real numbers"),
    ("mae complex", lambda: losses.mae(jnp.ones(3) * 1j, jnp.ones(3)), TypeError, "`predictions` must hold real numbers"),
    ("huber complex", lambda: losses.huber(jnp.ones(3) * 1j, jnp.ones(3)), TypeError, "`predictions` must hold real numbers"),
    ("huber delta 0", lambda: losses.huber(jnp.ones(3), jnp.ones(3), delta=0.0), ValueError, "`delta`"),
    ("bce complex", lambda: losses.sigmoid_binary_cross_entropy(jnp.ones(3) * 1j, jnp.ones(3)), TypeError, "`logits` must hold real numbers"),
    ("bce targets above 1", lambda: losses.sigmoid_binary_cross_entropy(jnp.ones(3), jnp.full(3, 2.0)), ValueError, "`targets` must lie in \\[0, 1\\]"),
    ("mse reduction unknown", lambda: losses.mse(jnp.ones(3), jnp.ones(3), reduction="avg"), ValueError, "`reduction`"),
    ("ce complex logits", lambda: CE(ONES * 1j, LABELS), TypeError, "`logits` must be a floating array"),
    ("ce integer logits", lambda: CE(jnp.ones((2, 3), jnp.int32), LABELS), TypeError, "`logits`"),
    ("ce complex labels", lambda: CE(ONES, ONES * 1j), TypeError, "`labels`"),
    ("ce negative probabilities", lambda: CE(ONES, jnp.array([[-0.5, 1.0, 0.5], [0.0, 0.0, 1.0]])), ValueError, "probability `labels` must be finite and >= 0"),
    ("ce nan probabilities", lambda: CE(ONES, jnp.array([[jnp.nan, 1.0, 0.0], [0.0, 0.0, 1.0]])), ValueError, "probability `labels`"),
    ("ce label out of range", lambda: CE(ONES, jnp.array([0, 3])), ValueError, "integer `labels` must lie in \\[0, 3\\)"),
    ("ce labels of wrong shape", lambda: CE(ONES, jnp.array([0, 1, 2])), ValueError, "integer `labels` must have shape"),
    ("ce smoothing 2", lambda: CE(ONES, LABELS, label_smoothing=2.0), ValueError, "`label_smoothing`"),
    ("ce scalar logits", lambda: CE(jnp.ones(()), jnp.array(0)), TypeError, "`logits`"),
    # --- metrics ---
    ("accuracy one logit", lambda: metrics.accuracy(LABELS, jnp.array([[-1.0], [2.0]])), ValueError, "`y_pred` has a class axis of size 1"),
    ("f1 one logit", lambda: metrics.f1_score(LABELS, jnp.array([[-1.0], [2.0]])), ValueError, "`y_pred` has a class axis of size 1"),
    ("precision one logit", lambda: metrics.precision(LABELS, jnp.array([[0.2], [0.9]]), num_classes=2), ValueError, "`y_pred` has a class axis of size 1"),
    ("accuracy empty", lambda: metrics.accuracy(jnp.zeros(0, int), jnp.zeros(0, int)), ValueError, "`y_true` must hold at least one label"),
    ("f1 empty", lambda: metrics.f1_score(jnp.zeros(0, int), jnp.zeros(0, int), average="macro"), ValueError, "`y_true` must hold at least one label"),
    ("recall empty with num_classes", lambda: metrics.recall(jnp.zeros(0, int), jnp.zeros(0, int), num_classes=2), ValueError, "`y_true` must hold at least one label"),
    ("confusion empty", lambda: metrics.confusion_matrix(jnp.zeros(0, int), jnp.zeros(0, int), num_classes=2), ValueError, "`y_true` must hold at least one label"),
    ("accuracy float labels", lambda: metrics.accuracy(jnp.array([0.0, 1.0]), LABELS), TypeError, "`y_true` must hold integer class ids"),
    ("accuracy shapes differ", lambda: metrics.accuracy(LABELS, jnp.array([0, 1, 1])), ValueError, "`y_pred` must have the shape of `y_true`"),
    ("f1 average unknown", lambda: metrics.f1_score(LABELS, LABELS, average="mean"), ValueError, "`average`"),
    ("f1 binary with 3 classes", lambda: metrics.f1_score(jnp.array([0, 1, 2]), jnp.array([0, 1, 2])), ValueError, "average='binary' needs at most two classes"),
    ("precision label out of range", lambda: metrics.precision(LABELS, jnp.array([0, 5]), num_classes=2), ValueError, "labels must lie in \\[0, 2\\)"),
    ("confusion num_classes 0", lambda: metrics.confusion_matrix(LABELS, LABELS, num_classes=0), ValueError, "`num_classes`"),
    ("recall pos_label absent", lambda: metrics.recall(LABELS, LABELS, pos_label=5), ValueError, "`pos_label`"),
    # --- data ---
    ("split fractions a float", lambda: data.split(KEY, X, Y, fractions=0.8), TypeError, "`fractions` must be a tuple of numbers"),
    ("split fractions a str", lambda: data.split(KEY, X, Y, fractions="0.8,0.2"), TypeError, "`fractions`"),
    ("split fractions not summing", lambda: data.split(KEY, X, Y, fractions=(0.5, 0.2)), ValueError, "`fractions` must sum to 1"),
    ("split fraction 0", lambda: data.split(KEY, X, Y, fractions=(0.0, 1.0)), ValueError, "`fractions` must be numbers in \\(0, 1\\]"),
    ("split lengths differ", lambda: data.split(KEY, X, Y[:5]), ValueError, "same number of samples"),
    ("split no arrays", lambda: data.split(KEY), ValueError, "at least one array"),
    ("split stratify wrong shape", lambda: data.split(KEY, X, Y, fractions=(0.5, 0.5), stratify=Y[:4]), ValueError, "`stratify`"),
    ("batches batch_size 0", lambda: list(data.batches(KEY, X, batch_size=0)), ValueError, "`batch_size`"),
    ("batches lengths differ", lambda: list(data.batches(KEY, X, Y[:3], batch_size=4)), ValueError, "same number of samples"),
    ("one_hot float labels", lambda: data.one_hot(jnp.array([0.0, 1.0]), 2), TypeError, "`labels` must be integers"),
    ("one_hot num_classes 0", lambda: data.one_hot(LABELS, 0), ValueError, "`num_classes`"),
    ("standardize strings", lambda: data.standardize(np.array([["a"]])), TypeError, "`train` must hold real numbers"),
    ("standardize complex others", lambda: data.standardize(X, X * 1j), TypeError, "every array must hold real numbers"),
    ("make_moons n 0", lambda: datasets.make_moons(0, key=KEY), ValueError, "`n_samples`"),
    ("make_spirals classes 0", lambda: datasets.make_spirals(10, key=KEY, num_classes=0), ValueError, "`num_classes`"),
    ("make_robot_arm lengths negative", lambda: datasets.make_robot_arm(10, key=KEY, link_lengths=(1.0, -1.0)), ValueError, "`link_lengths`"),
    ("make_sine noise negative", lambda: datasets.make_sine(10, key=KEY, noise=-1.0), ValueError, "`noise`"),
    # --- fit ---
    ("fit epochs 0", lambda: fit(epochs=0), ValueError, "`epochs` must be a positive int"),
    ("fit epochs float", lambda: fit(epochs=2.0), TypeError, "`epochs` must be a positive int"),
    ("fit batch_size 0", lambda: fit(batch_size=0), ValueError, "`batch_size`"),
    ("fit batch_size too large", lambda: fit(batch_size=100), ValueError, "`batch_size` 100 exceeds the 24 training samples"),
    ("fit accumulate_steps too many", lambda: fit(accumulate_steps=4), ValueError, "`accumulate_steps`"),
    ("fit train_data not a pair", lambda: fit(train_data=X), TypeError, r"`train_data` must be a pair \(inputs, targets\) of arrays \(a tuple\), or a stream of such batches, got one array of shape \(24, 4\)"),
    ("fit train_data triple", lambda: fit(train_data=(X, Y, Y)), TypeError, "`train_data` must be a pair"),
    ("fit lengths differ", lambda: fit(train_data=(X, Y[:10])), ValueError, "`train_data` inputs and targets must have the same number"),
    ("fit nan inputs", lambda: fit(train_data=(np.where(np.eye(24, 4, dtype=bool), np.nan, X), Y)), ValueError, "`train_data` inputs contains"),
    ("fit inf targets", lambda: fit(loss_fn=losses.mse, model=nn.MLP((8,), 1), train_data=(X, np.full((24, 1), np.inf))), ValueError, "`train_data` targets contains"),
    ("fit complex inputs", lambda: fit(train_data=(X * (1 + 1j), Y)), TypeError, "`train_data` inputs must hold real numbers"),
    ("fit complex targets", lambda: fit(loss_fn=losses.mse, train_data=(X, np.ones((24, 3)) * 1j)), TypeError, "`train_data` targets must hold real numbers"),
    ("fit string inputs", lambda: fit(train_data=(X.astype(str), Y)), TypeError, "`train_data` inputs must hold real numbers"),
    ("fit ragged list inputs", lambda: fit(train_data=([[1.0, 2.0], [3.0]], [0, 1])), ValueError, "`train_data` inputs must be an array or nested lists"),
    ("fit labels out of range", lambda: fit(train_data=(X, Y + 1)), ValueError, "`train_data` labels must lie in \\[0, 3\\)"),
    ("fit data narrower than initial_state", lambda: fit(train_data=(X[:, :3], Y), initial_state=state()), ValueError, "`initial_state` does not fit"),
    ("fit loss not callable", lambda: fit(loss_fn="cross_entropy"), TypeError, "`loss_fn` must be callable"),
    ("fit loss shapes mismatch", lambda: fit(loss_fn=losses.mse), ValueError, "do not fit `loss_fn`"),
    ("fit loss not reduced", lambda: fit(loss_fn=lambda o, t: CE(o, t, reduction="none")), ValueError, "`loss_fn` must return a scalar"),
    ("fit optimizer uncalled", lambda: fit(optimizer=optim.adam), TypeError, "`optimizer` must be an fnnet Optimizer.*adam\\(\\)"),
    ("fit model not a layer", lambda: fit(model=lambda x: x), TypeError, "`model` must be a Layer"),
    ("fit metric unknown", lambda: fit(metrics=("acc",)), ValueError, "unknown metric 'acc'"),
    ("fit metric not callable", lambda: fit(metrics=(3,)), TypeError, "each metric must be a name or a callable"),
    ("fit metrics duplicated", lambda: fit(metrics=("f1", "f1")), ValueError, "metric names must be unique"),
    ("fit validation lengths differ", lambda: fit(validation_data=(X, Y[:3])), ValueError, "`validation_data` inputs and targets"),
    ("fit validation labels out of range", lambda: fit(validation_data=(X, Y + 5)), ValueError, "`validation_data` labels"),
    ("fit validation nan", lambda: fit(validation_data=(X * np.nan, Y)), ValueError, "`validation_data` inputs contains"),
    ("fit early_stopping class", lambda: fit(early_stopping=train.EarlyStopping), TypeError, "early_stopping"),
    ("fit callbacks a str", lambda: fit(callbacks="early"), TypeError, "`callbacks`"),
    ("fit callback monitors unknown key", lambda: fit(callbacks=[train.EarlyStopping(2, monitor="val_acc")]), ValueError, "'val_acc'"),
    ("fit checkpoint a path", lambda: fit(checkpoint="ckpt/"), TypeError, "`checkpoint` must be a train.Checkpoint"),
    ("fit dispatch unknown", lambda: fit(dispatch="loop"), ValueError, "`dispatch`"),
    ("fit initial_state donated", reuse_donated_in(lambda old: fit(initial_state=old)), ValueError, "`initial_state` was donated"),
    ("EarlyStopping patience 0", lambda: train.EarlyStopping(0), ValueError, "`patience`"),
    ("EarlyStopping mode", lambda: train.EarlyStopping(2, mode="lowest"), ValueError, "`mode`"),
    ("ReduceLROnPlateau factor 1", lambda: train.ReduceLROnPlateau(factor=1.0), ValueError, "`factor`"),
    ("Checkpoint keep 0", lambda: train.Checkpoint("/tmp/fnnet-bad", keep=0), ValueError, "`keep`"),
    ("Checkpoint every float", lambda: train.Checkpoint("/tmp/fnnet-bad", every=1.5), TypeError, "`every`"),
    # --- steps and epochs ---
    ("step reuses a donated state", reuse_donated_in_step, ValueError, "`state` was donated to an earlier training step"),
    ("epoch reuses a donated state", epoch_twice, ValueError, "`state` was donated to an earlier training step"),
    ("predict with a donated state", reuse_donated_in(lambda old: train.predict(MLP, old, X)), ValueError, "`state` was donated"),
    ("evaluate with a donated state", reuse_donated_in(lambda old: train.evaluate(MLP, old, (X, Y))), ValueError, "`state` was donated"),
    ("step batch not a pair", lambda: train.make_train_step(MLP, CE, optim.sgd(0.1))(state(), X), TypeError, "`batch` must be a pair"),
    ("step batch not divisible", lambda: train.make_train_step(MLP, CE, optim.sgd(0.1), accumulate_steps=5)(state(), (X, Y)), ValueError, "`accumulate_steps` 5 equal micro-batches"),
    ("step accumulate_steps 0", lambda: train.make_train_step(MLP, CE, optim.sgd(0.1), accumulate_steps=0), ValueError, "`accumulate_steps`"),
    ("epoch batch_size 0", lambda: train.make_train_epoch(MLP, CE, optim.sgd(0.1), batch_size=0), ValueError, "`batch_size`"),
    ("epoch too few samples", lambda: train.make_train_epoch(MLP, CE, optim.sgd(0.1), batch_size=32)(state(), X, Y), ValueError, "one update needs 32 samples"),
    ("make_train_step optimizer class", lambda: train.make_train_step(MLP, CE, optim.Optimizer), TypeError, "`optimizer`"),
    # --- evaluate and predict: the checks fit runs ---
    ("evaluate labels out of range", lambda: train.evaluate(MLP, state(), (X, Y + 5), loss_fn=CE, metrics=("accuracy",)), ValueError, "`data` labels must lie in \\[0, 3\\)"),
    ("evaluate negative labels", lambda: train.evaluate(MLP, state(), (X, Y - 1), metrics=("accuracy",)), ValueError, "`data` labels"),
    ("evaluate nan inputs", lambda: train.evaluate(MLP, state(), (X * np.nan, Y)), ValueError, "`data` inputs contains"),
    ("evaluate lengths differ", lambda: train.evaluate(MLP, state(), (X, Y[:3])), ValueError, "`data` inputs and targets"),
    ("evaluate not a pair", lambda: train.evaluate(MLP, state(), X), TypeError, r"`data` must be a pair \(inputs, targets\) of arrays \(a tuple\), or a stream"),
    ("evaluate complex", lambda: train.evaluate(MLP, state(), (X * 1j, Y)), TypeError, "`data` inputs must hold real numbers"),
    ("evaluate loss mismatch", lambda: train.evaluate(MLP, state(), (X, Y), loss_fn=losses.mse), ValueError, "do not fit `loss_fn`"),
    ("evaluate batch_size 0", lambda: train.evaluate(MLP, state(), (X, Y), batch_size=0), ValueError, "`batch_size`"),
    ("evaluate metric unknown", lambda: train.evaluate(MLP, state(), (X, Y), metrics=("auc",)), ValueError, "unknown metric 'auc'"),
    ("predict nan", lambda: train.predict(MLP, state(), X * np.nan), ValueError, "`inputs` contains"),
    ("predict complex", lambda: train.predict(MLP, state(), X * 1j), TypeError, "`inputs` must hold real numbers"),
    ("predict wrong width", lambda: train.predict(MLP, state(), X[:, :2]), ValueError, "inputs must have last axis 4"),
    ("predict batch_size float", lambda: train.predict(MLP, state(), X, batch_size=8.0), TypeError, "`batch_size`"),
    ("predict ids out of range", lambda: train.predict(nn.serial(nn.Embedding(5, 2), nn.Flatten(), nn.Dense(2)), train.init_state(nn.serial(nn.Embedding(5, 2), nn.Flatten(), nn.Dense(2)), optim.sgd(0.1), KEY, (3,)), jnp.full((2, 3), 7)), ValueError, "`inputs` \\(token ids\\) must lie in \\[0, 5\\)"),
    # --- checkpoints ---
    ("save a str tree", lambda: checkpoint.save("/tmp/fnnet-bad.ckpt", {"a": "text"}), TypeError, "save"),
    ("load missing file", lambda: checkpoint.load("/tmp/fnnet-does-not-exist.ckpt"), checkpoint.CheckpointError, "fnnet-does-not-exist.ckpt does not exist"),
    ("summary model not a layer", lambda: nn.summary("mlp", (4,)), TypeError, "`model`"),
]
# fmt: on


@pytest.mark.parametrize(
    ("call", "error", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_raises_a_clear_error(call, error, pattern):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert re.search(pattern, message), f"{pattern!r} not in {message!r}"
    assert "jax._src" not in message and "Traceback" not in message


def test_the_table_is_broad():
    assert len(CASES) >= 150
    assert len({c[0] for c in CASES}) == len(CASES)


def diverging_fit(st, x, y):
    fast = st._replace(opt_state=optim.with_hyperparams(st.opt_state, learning_rate=1e30))
    fit(initial_state=fast, train_data=(x, y), epochs=3)


def snapshot(tree):
    """Host copies of every array of `tree` (a PRNG key as its key data)."""

    def copy(leaf):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        return np.array(leaf)

    return jax.tree.map(copy, tree)


# fmt: off
ERRORS_AROUND_A_STATE = [
    ("step on a batch of the wrong width", lambda st, x, y: train.make_train_step(MLP, CE, optim.sgd(0.1))(st, (x[:, :3], y)), ValueError),
    ("step on labels of the wrong shape", lambda st, x, y: train.make_train_step(MLP, CE, optim.sgd(0.1))(st, (x, y[:, None])), ValueError),
    ("epoch on too few samples", lambda st, x, y: train.make_train_epoch(MLP, CE, optim.sgd(0.1), batch_size=32)(st, x, y), ValueError),
    ("epoch on data of the wrong width", lambda st, x, y: train.make_train_epoch(MLP, CE, optim.sgd(0.1), batch_size=8)(st, x[:, :3], y), ValueError),
    ("fit on labels out of range", lambda st, x, y: fit(initial_state=st, train_data=(x, y + 3)), ValueError),
    ("fit with an unknown monitor", lambda st, x, y: fit(initial_state=st, train_data=(x, y), callbacks=[train.EarlyStopping(1, monitor="val_f1")]), ValueError),
    ("fit diverging", diverging_fit, train.NonFiniteLossError),
    ("evaluate on labels out of range", lambda st, x, y: train.evaluate(MLP, st, (x, y - 1)), ValueError),
    ("predict on the wrong width", lambda st, x, y: train.predict(MLP, st, x[:, 1:]), ValueError),
    ("update with another optimizer", lambda st, x, y: optim.adam().update(st.opt_state, st.params), TypeError),
    ("save into a missing directory", lambda st, x, y: checkpoint.save("/tmp/fnnet-no-such-dir/a/b.ckpt", st), checkpoint.CheckpointError),
]
# fmt: on


@pytest.mark.parametrize("as_jax", [False, True], ids=["numpy", "jax"])
@pytest.mark.parametrize(
    ("call", "error"),
    [c[1:] for c in ERRORS_AROUND_A_STATE],
    ids=[c[0] for c in ERRORS_AROUND_A_STATE],
)
def test_an_error_changes_neither_the_callers_arrays_nor_their_state(call, error, as_jax):
    x, y = (jnp.asarray(X), jnp.asarray(Y)) if as_jax else (X.copy(), Y.copy())
    st = state()
    before = snapshot((x, y, st))
    with pytest.raises(error):
        call(st, x, y)
    after = snapshot((x, y, st))
    assert not any(
        leaf.is_deleted() for leaf in jax.tree.leaves((x, y, st)) if isinstance(leaf, jax.Array)
    )
    jax.tree.map(np.testing.assert_array_equal, after, before)
    step = train.make_train_step(MLP, CE, optim.sgd(0.1))
    st, loss = step(st, (X[:8], Y[:8]))  # the state is still usable
    assert np.isfinite(float(loss)) and int(st.step) == 1


def test_nested_lists_are_read_as_numpy_reads_them():
    st = state()
    lists = (X.tolist(), Y.tolist())
    np.testing.assert_array_equal(train.predict(MLP, st, lists[0]), train.predict(MLP, st, X))
    assert train.evaluate(MLP, st, lists, loss_fn=CE) == train.evaluate(MLP, st, (X, Y), loss_fn=CE)
    a, b = fit(train_data=lists, epochs=2), fit(epochs=2)
    jax.tree.map(np.testing.assert_array_equal, a.state.params, b.state.params)


def test_soft_targets_need_not_sum_to_one_as_in_pytorch():
    """PyTorch's CrossEntropyLoss takes any non-negative soft targets: -sum(t * log_softmax)."""
    logits = jnp.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    targets = jnp.array([[0.5, 0.5, 0.5], [0.0, 0.2, 0.1]])  # rows sum to 1.5 and 0.3
    z = np.asarray(logits, np.float64)
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    expected = -(np.asarray(targets, np.float64) * log_p).sum(axis=-1)
    np.testing.assert_allclose(CE(logits, targets, reduction="none"), expected, rtol=1e-6)


def test_inside_jit_out_of_range_values_give_nan_instead_of_an_error():
    """Values cannot raise under jit: an out-of-range label or token id turns NaN, so fit's guard
    stops instead of training on it."""
    loss = jax.jit(CE)(ONES, jnp.array([0, 7]))
    assert np.isnan(float(loss))
    embed = nn.Embedding(5, 2)
    params, s = embed.init(KEY, (3,))
    rows = jax.jit(lambda ids: embed.apply(params, s, ids)[0])(jnp.array([[0, 1, 9]]))
    assert np.isnan(np.asarray(rows)[0, 2]).all() and np.isfinite(np.asarray(rows)[0, :2]).all()
