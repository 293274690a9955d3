"""Stacked layers (``n_hidden`` a tuple of layer sizes).

Exact RTRL through a stack equals central finite differences of the numpy
forward pass (rtol 1e-7, float64) and the numpy RTRL of
``tests/_reference.py`` (``stack_rtrl``, which carries the influence of
every parameter on every layer densely); the layer-local approximation
(``gradient="local"``) equals that numpy reference of its definition, and
exact RTRL with one layer. Per-step updates and streams follow the numpy
runs under SGD. Pooled readouts (the mean or maximum of the top layer's h)
train by exact RTRL and BPTT, both equal to finite differences, and predict
as the numpy forward pass. Everything is small: a few units, short
sequences.
"""

import pickle

import numpy as np
import pytest

from skrtrl import RTRLClassifier, RTRLRegressor

from _helpers import (
    assert_same_params,
    fit_then_randomize,
    float_params,
    numeric_gradient,
    random_sequences,
    randomize,
)
from _reference import (
    Layout,
    penalty,
    stack_forward_loss,
    stack_pooled_loss,
    stack_pooled_outputs,
    stack_rtrl,
)

pytestmark = pytest.mark.usefixtures("quiet_convergence")

N_FEATURES = 2
SIZES = (3, 2, 3)
ALPHA = 0.05
LEARNING_RATE = 0.1
CELLS = ("egru", "elstm", "diagonal", "elman", "gru", "lstm", "lru", "glru")
#: Mixed stacks (a tuple ``cell``, one per layer) and their sizes: fully
#: connected under element-wise, the other way, ns = 1 under ns = 2, and
#: three layers (cross terms through a middle layer of another form).
MIXES = {
    ("gru", "egru"): (3, 4),
    ("egru", "gru"): (3, 2),
    ("elman", "elstm"): (2, 3),
    ("elstm", "lstm", "diagonal"): (2, 2, 3),
    ("diagonal", "elman", "egru"): (3, 2, 2),
    # The LRUs' layers read and are read through their output maps: under
    # and over a per-unit, a dense and another map layer.
    ("lru", "gru"): (3, 2),
    ("egru", "glru"): (3, 2),
    ("gru", "lru", "egru"): (2, 3, 2),
    ("glru", "lru", "elstm"): (2, 3, 2),
    ("elman", "glru", "lru"): (2, 2, 3),
    ("egru", "lru", "gru"): (3, 2, 2),
}
#: Every stack the exactness checks run on: one cell for every layer, or a mix.
STACKS = [pytest.param(cell, id=cell) for cell in CELLS] + [
    pytest.param(cells, id="-".join(cells)) for cells in MIXES
]


def sizes_of(cell):
    """The layer sizes the checks give ``cell`` (a name or a mix)."""
    return SIZES if isinstance(cell, str) else MIXES[cell]


KINDS = {"regression": ("squared_error", 2), "multiclass": ("log_loss", 3)}


def targets_of(kind, rng, lengths, every_step):
    loss, k = KINDS[kind]
    if kind == "regression":
        draw = [rng.normal(size=(T, k) if every_step else (k,)) for T in lengths]
    else:
        draw = [rng.randint(k, size=T if every_step else None) for T in lengths]
    rows = []
    for T, value in zip(lengths, draw):
        if kind == "multiclass":
            value = np.eye(k)[value]
        row = np.zeros((T, value.shape[-1]))
        row[slice(None) if every_step else -1] = value
        rows.append(row)
    return (draw if every_step else np.array(draw)), rows


def make(kind, cell, gradient="rtrl", sizes=None, **params):
    Estimator = RTRLRegressor if kind == "regression" else RTRLClassifier
    defaults = dict(
        cell=cell,
        gradient=gradient,
        max_iter=1,
        alpha=0.0,
        shuffle=False,
        random_state=0,
    )
    return Estimator(sizes or sizes_of(cell), **{**defaults, **params})


def set_up(est, kind, X, y, rng):
    n_classes = None if kind == "regression" else KINDS[kind][1]
    return fit_then_randomize(est, X, y, rng, n_classes)


def minibatch_case(cell, gradient, kind, output, sizes=None, seed=0):
    rng = np.random.RandomState(seed + len(cell) + len(kind) + len(output))
    every_step = output == "sequence"
    X = random_sequences(rng, 3, N_FEATURES, max_len=4)
    y, rows = targets_of(kind, rng, [x.shape[0] for x in X], every_step)
    est = make(kind, cell, gradient, sizes, output=output)
    set_up(est, kind, X, y, rng)
    est.set_params(alpha=ALPHA)
    weights = rng.uniform(0.5, 2.0, size=len(X))
    sequences = []
    for x, row, w in zip(X, rows, weights / weights.sum()):
        T = x.shape[0]
        step_weights = np.full(T, w / T) if every_step else np.eye(T)[-1] * w
        sequences.append((x, row, step_weights))
    return est, X, y, weights, sequences


def with_penalty(result, params, scale):
    layout = result["layout"]
    total = result["gradient"] + scale * layout.penalty_mask() * layout.vector(params)
    return layout.arrays(total)


CASES = [("regression", "last"), ("multiclass", "sequence")]


@pytest.mark.parametrize("kind, output", CASES)
@pytest.mark.parametrize("cell", STACKS)
def test_exact_rtrl_equals_finite_differences_and_numpy(cell, kind, output):
    est, X, y, weights, sequences = minibatch_case(cell, "rtrl", kind, output)
    loss_name = KINDS[kind][0]
    loss, grad = est.loss_gradient(X, y, sample_weight=weights)
    params = float_params(est)
    scale = 1 / weights.sum()

    def objective():
        data = stack_forward_loss(cell, params, "tanh", loss_name, sequences)
        return data + penalty(params, ALPHA, scale)

    assert loss == pytest.approx(objective(), rel=1e-10)
    numeric = numeric_gradient(objective, params)
    assert_same_params(grad, numeric, rtol=1e-7, atol=1e-9)
    # The numpy RTRL the other checks lean on is exact too.
    result = stack_rtrl(cell, params, "tanh", loss_name, sequences)
    assert_same_params(
        with_penalty(result, params, ALPHA * scale), numeric, rtol=1e-7, atol=1e-9
    )
    # And so is BPTT through the stack: RTRL = BPTT = finite differences.
    bptt_loss, bptt_grad = est.set_params(gradient="bptt").loss_gradient(
        X, y, sample_weight=weights
    )
    assert bptt_loss == pytest.approx(loss, rel=1e-12)
    assert_same_params(bptt_grad, numeric, rtol=1e-7, atol=1e-9)
    assert_same_params(bptt_grad, grad, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("activation", ["logistic", "relu", "identity"])
@pytest.mark.parametrize("cell", ["elman", "diagonal"])
def test_activation_reaches_every_layer(cell, activation):
    est, X, y, weights, sequences = minibatch_case(cell, "rtrl", "regression", "last")
    est.set_params(activation=activation)
    loss, grad = est.loss_gradient(X, y, sample_weight=weights)
    params = float_params(est)
    scale = ALPHA / weights.sum()
    result = stack_rtrl(cell, params, activation, "squared_error", sequences)
    assert loss == pytest.approx(
        result["loss"] + penalty(params, ALPHA, 1 / weights.sum())
    )
    assert_same_params(grad, with_penalty(result, params, scale), rtol=1e-9, atol=1e-12)
    local = stack_rtrl(cell, params, activation, "squared_error", sequences, local=True)
    _, grad = est.set_params(gradient="local").loss_gradient(
        X, y, sample_weight=weights
    )
    assert_same_params(grad, with_penalty(local, params, scale), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind, output", CASES)
@pytest.mark.parametrize("cell", STACKS)
def test_local_equals_numpy_reference(cell, kind, output):
    est, X, y, weights, sequences = minibatch_case(cell, "local", kind, output)
    _, grad = est.loss_gradient(X, y, sample_weight=weights)
    params = float_params(est)
    result = stack_rtrl(cell, params, "tanh", KINDS[kind][0], sequences, local=True)
    expected = with_penalty(result, params, ALPHA / weights.sum())
    assert_same_params(grad, expected, rtol=1e-9, atol=1e-12)
    # An approximation: the lower layers' gradients differ from the exact.
    exact = est.set_params(gradient="rtrl").loss_gradient(X, y, sample_weight=weights)
    bottom = [name for name in grad if name.endswith("_l0")]
    assert not np.allclose(
        np.concatenate([np.ravel(grad[name]) for name in bottom]),
        np.concatenate([np.ravel(exact[1][name]) for name in bottom]),
        rtol=1e-6,
        atol=0,
    )
    np.testing.assert_allclose(grad["weight_out"], exact[1]["weight_out"], rtol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_one_layer_local_and_tuple_equal_the_single_cell(cell):
    rng = np.random.RandomState(1)
    X = random_sequences(rng, 4, N_FEATURES, max_len=5)
    y = rng.normal(size=len(X))
    single = RTRLRegressor(3, cell=cell, max_iter=2, random_state=0).fit(X, y)
    tuple_one = RTRLRegressor((3,), cell=cell, max_iter=2, random_state=0).fit(X, y)
    local = RTRLRegressor(3, cell=cell, gradient="local", max_iter=2, random_state=0)
    local.fit(X, y)
    assert list(tuple_one.params_) == list(single.params_)
    # One layer: the same names, the same initialisation, the same gradient.
    assert list(local.params_) == [
        k if k.endswith("_out") else f"{k}_l0" for k in single.params_
    ]
    for name, value in single.params_.items():
        np.testing.assert_array_equal(tuple_one.params_[name], value)
        key = name if name.endswith("_out") else f"{name}_l0"
        np.testing.assert_allclose(local.params_[key], value, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize(
    "kind, output", [("regression", "last"), ("multiclass", "sequence")]
)
@pytest.mark.parametrize("gradient", ["rtrl", "local"])
@pytest.mark.parametrize("cell", STACKS)
def test_step_updates_follow_numpy(cell, gradient, kind, output):
    rng = np.random.RandomState(7 + len(cell))
    X = random_sequences(rng, 3, N_FEATURES, max_len=4)
    y, rows = targets_of(kind, rng, [x.shape[0] for x in X], output == "sequence")
    weights = rng.uniform(0.5, 2.0, size=len(X))
    est = make(
        kind,
        cell,
        gradient,
        update="step",
        solver="sgd",
        momentum=0.0,
        learning_rate_init=LEARNING_RATE,
        clip_norm=None,
        output=output,
    )
    set_up(est, kind, X, y, rng)
    est.set_params(alpha=ALPHA)
    start = float_params(est)
    est.partial_fit(X, y, sample_weight=weights)
    sequences = []
    for x, row, w in zip(X, rows, weights):
        T = x.shape[0]
        spread = np.full(T, w / T) if output == "sequence" else np.eye(T)[-1] * w
        sequences.append((x, row, spread))
    expected = stack_rtrl(
        cell,
        start,
        "tanh",
        KINDS[kind][0],
        sequences,
        lr=LEARNING_RATE,
        alpha=ALPHA,
        local=gradient == "local",
    )
    assert_same_params(est.params_, expected["params"], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("gradient", ["rtrl", "local"])
@pytest.mark.parametrize("cell", STACKS)
def test_stream_follows_numpy_and_predicts_on(cell, gradient):
    rng = np.random.RandomState(11)
    X = rng.normal(size=(9, N_FEATURES))
    y = rng.normal(size=(9, 2))
    weights = rng.uniform(0.5, 2.0, size=9)
    weights[3] = 0.0
    est = make(
        "regression",
        cell,
        gradient,
        stateful=True,
        solver="sgd",
        momentum=0.0,
        learning_rate_init=LEARNING_RATE,
        clip_norm=None,
    )
    set_up(est, "regression", X, y, rng).reset_state()
    est.set_params(alpha=ALPHA)
    start = float_params(est)
    est.partial_fit(X[:4], y[:4], sample_weight=weights[:4])
    est.partial_fit(X[4:], y[4:], sample_weight=weights[4:])
    expected = stack_rtrl(
        cell,
        start,
        "tanh",
        "squared_error",
        [(X, y, weights)],
        lr=LEARNING_RATE,
        alpha=ALPHA,
        local=gradient == "local",
        reset=False,
    )
    assert_same_params(est.params_, expected["params"], rtol=1e-9, atol=1e-12)
    # Predictions run on from the stream state, which they leave as it is.
    X_next = rng.normal(size=(3, N_FEATURES))
    follow = stack_rtrl(
        cell,
        expected["params"],
        "tanh",
        "squared_error",
        [(X_next, np.zeros((3, 2)), np.zeros(3))],
    )
    del follow
    predicted = est.predict(X_next)
    np.testing.assert_array_equal(est.predict(X_next), predicted)
    states = [np.copy(s) for s in expected["state"]]
    params = expected["params"]
    from _reference import _stack_params, _stack_steps

    layers = _stack_params(cell, params)
    Z = []
    for x in X_next:
        states, top = _stack_steps(cell, layers, x, states, "tanh")
        Z.append(params["weight_out"] @ top + params["bias_out"])
    np.testing.assert_allclose(predicted, np.array(Z), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("cell", ["elstm", ("glru", "lru", "gru")])
def test_threads_and_float32_agree(cell):
    rng = np.random.RandomState(3)
    X = random_sequences(rng, 8, N_FEATURES, max_len=6)
    y = rng.normal(size=len(X))
    est = RTRLRegressor(SIZES, cell=cell, max_iter=1, random_state=0).fit(X, y)
    randomize(est, rng, 0.5)
    # Threads take whole sequences and the rows are summed in order.
    for gradient in ("local", "bptt", "rtrl"):
        est.set_params(gradient=gradient, n_jobs=1)
        loss, grad = est.loss_gradient(X, y)
        loss2, grad2 = est.set_params(n_jobs=2).loss_gradient(X, y)
        assert loss2 == loss
        for name in grad:
            np.testing.assert_array_equal(grad2[name], grad[name])
    est.set_params(n_jobs=1)
    loss, grad = est.loss_gradient(X, y)
    X32 = [x.astype(np.float32) for x in X]
    est32 = RTRLRegressor(SIZES, cell=cell, max_iter=1, random_state=0)
    est32.fit(X32, y.astype(np.float32))
    for name, value in est.params_.items():
        est32.params_[name][...] = value
    loss32, grad32 = est32.loss_gradient(X32, y.astype(np.float32))
    assert loss32 == pytest.approx(loss, rel=1e-4)
    for name in grad:
        assert grad32[name].dtype == np.float32
        np.testing.assert_allclose(grad32[name], grad[name], rtol=1e-3, atol=1e-5)


def test_params_names_pickling_and_layout_changes():
    rng = np.random.RandomState(4)
    X = random_sequences(rng, 5, N_FEATURES, max_len=5)
    y = rng.randint(2, size=len(X))
    est = RTRLClassifier((4, 3), cell="egru", max_iter=2, random_state=0).fit(X, y)
    assert list(est.params_) == [
        "weight_ih_l0",
        "weight_hh_l0",
        "bias_ih_l0",
        "bias_hh_l0",
        "weight_ih_l1",
        "weight_hh_l1",
        "bias_ih_l1",
        "bias_hh_l1",
        "weight_out",
        "bias_out",
    ]
    assert est.params_["weight_ih_l0"].shape == (12, N_FEATURES)
    assert est.params_["weight_ih_l1"].shape == (9, 4)
    assert est.params_["weight_hh_l1"].shape == (9,)
    assert est.params_["weight_out"].shape == (1, 3)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict_proba(X), est.predict_proba(X))
    restored.partial_fit(X, y)
    # Another stack asks for another layout: refused, the model unchanged.
    before = {k: v.copy() for k, v in est.params_.items()}
    with pytest.raises(ValueError, match="n_hidden"):
        est.set_params(n_hidden=(4, 4)).partial_fit(X, y)
    assert_same_params(est.params_, before, rtol=0)
    # A list asks for the same stack as the tuple.
    est.set_params(n_hidden=[4, 3]).partial_fit(X, y)


def test_skops_round_trip(tmp_path):
    sio = pytest.importorskip("skops.io")
    rng = np.random.RandomState(5)
    X = rng.normal(size=(20, N_FEATURES))
    y = rng.normal(size=20)
    est = RTRLRegressor(
        (3, 2), cell="egru", stateful=True, max_iter=1, random_state=0
    ).fit(X, y)
    path = tmp_path / "stack.skops"
    sio.dump(est, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert all(name.startswith("skrtrl.") for name in untrusted), untrusted
    restored = sio.load(path, trusted=untrusted)
    np.testing.assert_array_equal(restored.predict(X[:4]), est.predict(X[:4]))


@pytest.mark.parametrize(
    "params, match",
    [
        (
            dict(n_hidden=(3, 2), cell="egru", gradient="bptt", update="step"),
            r"support it are \['rtrl', 'local'\]",
        ),
        (
            dict(n_hidden=(3, 2), cell="egru", gradient="bptt", truncation=2),
            "truncation must be None",
        ),
        (dict(n_hidden=(3, 2), cell="egru", gradient="snap1"), "'rtrl', 'local'"),
        # The LRUs stack with the same methods: SnAp-1 (for them the exact
        # per-unit influence of one layer) is not one of a stack's.
        (dict(n_hidden=(3, 2), cell="glru", gradient="snap1"), "'rtrl', 'local'"),
        (dict(n_hidden=(3, 2), cell=("lru", "gru"), gradient="uoro"), "'rtrl'"),
        (dict(n_hidden=(3, 2), cell="egru", gradient="uoro"), "'rtrl', 'local'"),
        (
            dict(n_hidden=(3, 2), cell="egru", output_feedback=True, output="sequence"),
            "output feedback",
        ),
        (
            dict(
                n_hidden=(3, 2),
                cell="egru",
                output="last",
                pooling="mean",
                gradient="local",
            ),
            "layer-local approximation sends each step's error",
        ),
        (
            dict(n_hidden=(3, 2), cell="egru", pooling="max", stateful=True),
            "no sequence to pool over",
        ),
        (dict(n_hidden=(3, 2), cell="egru", pooling="mean"), "target at every step"),
        (
            dict(
                n_hidden=(3, 2),
                cell="egru",
                output="last",
                pooling="mean",
                update="step",
            ),
            "batch_size=1",
        ),
        (dict(n_hidden=(3, 0), cell="egru"), "positive int"),
        (dict(n_hidden=(), cell="egru"), "non-empty tuple"),
        (dict(n_hidden=(3, 2.5), cell="egru"), "positive int"),
        (dict(n_hidden=(1,) * 17, cell="egru"), "at most 16"),
        # A tuple cell: one name per layer, each a cell that stacks.
        (dict(n_hidden=3, cell=("gru", "egru")), "tuple n_hidden of the same length"),
        (
            dict(n_hidden=(3, 2, 2), cell=("gru", "egru")),
            "tuple n_hidden of the same length",
        ),
        (dict(n_hidden=(3, 2), cell=("gru", "nope")), "cells that stack.*'nope'"),
        (
            dict(n_hidden=(3, 2), cell=("gru", "egru"), gradient="snap1"),
            "'rtrl', 'local'",
        ),
        (
            dict(n_hidden=(3, 2), cell=("gru", "egru"), output_feedback=True),
            "output feedback",
        ),
    ],
)
def test_refusals_name_what_works(params, match):
    X, y = np.zeros((3, 4, N_FEATURES)), np.zeros((3, 4))
    est = RTRLRegressor(**{"output": "sequence", **params})
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)
    assert not hasattr(est, "params_")


def test_resources_refuse_a_stack_that_cannot_fit(monkeypatch):
    import skrtrl._resources as resources
    from skrtrl._stack import StackCell

    monkeypatch.setattr(resources, "available_memory", lambda: 5 << 20)
    small = StackCell("egru", (4, 4), 2, 1)
    large = StackCell("egru", (64, 64, 64), 2, 1)
    local = StackCell("egru", (64, 64, 64), 2, 1, gradient="local")
    sizes = [
        resources.training_bytes(
            cell, np.float64, online=True, batch_size=1, n_threads=1, longest=1
        )
        for cell in (small, large, local)
    ]
    assert sizes[0] < sizes[2] < sizes[1]
    # The cross-layer influence: S_2 (W_0 + W_1) + S_1 W_0 numbers, beyond
    # each layer's own (about the parameters).
    W = [3 * 64 * (2 + 3), 3 * 64 * (64 + 3), 3 * 64 * (64 + 3)]
    assert sizes[1] - sizes[2] == 8 * 64 * (W[0] + W[1] + W[0])
    X, y = np.zeros((2, 3, 2)), np.zeros(2)
    with pytest.raises(ValueError, match="would need about.*gradient='local'"):
        RTRLRegressor((64, 64, 64), cell="egru").fit(X, y)
    RTRLRegressor((64, 64, 64), cell="egru", gradient="local", max_iter=1).fit(X, y)


@pytest.mark.parametrize("cell", ["egru", "lru", ("lru", "gru")])
def test_export_refuses_stacks(cell):
    pytest.importorskip("onnx")
    from skrtrl.export import to_onnx

    X, y = np.zeros((2, 3, 2)), np.zeros(2)
    est = RTRLRegressor((3, 2), cell=cell, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="does not support stacked layers"):
        to_onnx(est)


@pytest.mark.parametrize("cell", ["egru", "glru"])
@pytest.mark.parametrize(
    "name", ["credit_over_time", "input_saliency", "recurrent_jacobian_spectrum"]
)
def test_inspection_refuses_stacks(name, cell):
    import skrtrl.inspection as inspection

    X, y = np.zeros((2, 3, 2)), np.zeros(2)
    # (An LRU stack has no weight_ih_l0: each layer's suffix tells.)
    est = RTRLRegressor((3, 2), cell=cell, max_iter=1).fit(X, y)
    args = (X, y) if name == "credit_over_time" else (X,)
    with pytest.raises(ValueError, match="stacked layers"):
        getattr(inspection, name)(est, *args)


def test_layout_vector_matches_params_order():
    # The numpy references read params_ in its order.
    rng = np.random.RandomState(6)
    X = random_sequences(rng, 2, N_FEATURES, max_len=3)
    est = RTRLRegressor(SIZES, cell="egru", max_iter=1).fit(X, np.zeros(2))
    layout = Layout(float_params(est))
    assert layout.size == sum(v.size for v in est.params_.values())


@pytest.mark.parametrize("gradient", ["rtrl", "local", "bptt"])
@pytest.mark.parametrize("cell", ["glru", ("lru", "gru"), ("egru", "lru", "glru")])
def test_fitted_lru_stack_predicts_as_numpy(cell, gradient):
    from _reference import _stack_params, _stack_steps, _zero_states

    rng = np.random.RandomState(26)
    X = random_sequences(rng, 5, N_FEATURES, min_len=2, max_len=5)
    Y = [rng.normal(size=(x.shape[0], 2)) for x in X]
    sizes = (3, 2) if isinstance(cell, str) else (3, 2, 4)[: len(cell)]
    est = RTRLRegressor(
        sizes, cell=cell, gradient=gradient, output="sequence", max_iter=3,
        activation="logistic", random_state=0,
    ).fit(X, Y)  # fmt: skip
    params = float_params(est)
    layers = _stack_params(cell, params)
    predicted = est.predict(X)
    for x, rows in zip(X, predicted):
        states, Z = _zero_states(cell, layers), []
        for x_t in x:
            states, top = _stack_steps(cell, layers, x_t, states, "logistic")
            Z.append(params["weight_out"] @ top + params["bias_out"])
        np.testing.assert_allclose(rows, np.array(Z), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("gradient", ["rtrl", "local", "bptt"])
def test_one_lru_layer_with_many_inputs_is_the_single_cell(gradient):
    # A tuple of one LRU layer is a stack of one; its top layer reads more
    # inputs (12) than it has units (2), which the stack's buffers of
    # layer-sized errors must not be asked to hold.
    rng = np.random.RandomState(27)
    X = random_sequences(rng, 4, 12, min_len=2, max_len=5)
    y = rng.normal(size=len(X))
    single = RTRLRegressor(2, cell="glru", max_iter=1, random_state=0).fit(X, y)
    one = RTRLRegressor(
        (2,), cell=("glru",), gradient=gradient, max_iter=1, random_state=0
    ).fit(X, y)
    for name, value in single.params_.items():
        key = name if name.endswith("_out") else f"{name}_l0"
        one.params_[key][...] = value
    loss, grad = single.loss_gradient(X, y)
    loss_one, grad_one = one.loss_gradient(X, y)
    assert loss_one == pytest.approx(loss, rel=1e-12)
    for name, value in grad.items():
        key = name if name.endswith("_out") else f"{name}_l0"
        np.testing.assert_allclose(grad_one[key], value, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("cell", ["lru", "glru"])
def test_lru_layers_take_the_ring_initialisation(cell):
    from skrtrl._cells import CELLS
    from skrtrl._stack import StackCell

    stack = StackCell(("egru", cell, cell), (2, 5, 4), 3, 1)
    flat = np.empty(stack.n_params)
    stack.initialize(flat, np.random.RandomState(0))
    views = stack.views(flat)
    lru = CELLS[cell]
    for k, n in ((1, 5), (2, 4)):
        modulus = np.exp(-np.exp(views[f"nu_log_l{k}"]))
        assert np.all((lru.R_MIN <= modulus) & (modulus <= lru.R_MAX))
        # gamma = sqrt(1 - |lambda|^2), B of variance 1 / (2 m): not uniform.
        np.testing.assert_allclose(
            np.exp(views[f"gamma_log_l{k}"]), np.sqrt(1 - modulus**2)
        )
        assert views[f"C_re_l{k}"].shape == (n, n)
    # The layer below keeps torch's uniform draw.
    assert np.abs(views["weight_ih_l0"]).max() <= 1 / np.sqrt(2)


def test_only_known_cells_stack():
    from skrtrl._stack import STACK_CELLS, StackCell

    with pytest.raises(ValueError, match="cells that stack"):
        StackCell("unknown", (2, 2), 1, 1)
    for name in STACK_CELLS:
        assert StackCell(name, (2, 2), 1, 1).n_hidden == (2, 2)


# -- pooled readouts ---------------------------------------------------------

POOLED_SIZES = (3, 2)


def pooled_case(cell, pooling, kind, gradient="rtrl"):
    """A pooled stack at random parameters, variable-length sequences, sample
    weights, and the numpy view: ``(x, target row, w_s / sum(w))``."""
    rng = np.random.RandomState(sum(map(ord, f"{cell}-{pooling}-{kind}")))
    X = random_sequences(rng, 3, N_FEATURES, min_len=1, max_len=5)
    y, rows = targets_of(kind, rng, [x.shape[0] for x in X], False)
    est = make(kind, cell, gradient, POOLED_SIZES, pooling=pooling)
    set_up(est, kind, X, y, rng)
    est.set_params(alpha=ALPHA)
    weights = rng.uniform(0.5, 2.0, size=len(X))
    sequences = [(x, row[-1], w) for x, row, w in zip(X, rows, weights / weights.sum())]
    return est, X, y, weights, sequences


#: The first mixes, and the LRUs' output maps pooled over a dense, a
#: per-unit and a map layer, and read by a dense one.
POOLED_MIXES = list(MIXES)[:3] + [
    ("gru", "lru"),
    ("egru", "glru"),
    ("glru", "lru"),
    ("lru", "gru"),
]
POOLED_CASES = [
    pytest.param(cell, pooling, kind, id=f"{cell}-{pooling}-{kind}")
    for cell, kind in (
        ("egru", "multiclass"),
        ("gru", "regression"),
        ("lru", "regression"),
        ("glru", "multiclass"),
    )
    for pooling in ("mean", "max")
] + [
    pytest.param(cells, pooling, "multiclass", id=f"{'-'.join(cells)}-{pooling}")
    for cells in POOLED_MIXES
    for pooling in ("mean", "max")
]


@pytest.mark.parametrize("cell, pooling, kind", POOLED_CASES)
def test_pooled_rtrl_equals_bptt_and_finite_differences(cell, pooling, kind):
    est, X, y, weights, sequences = pooled_case(cell, pooling, kind)
    assert est._cell.pooling == pooling
    loss_name = KINDS[kind][0]
    loss, grad = est.loss_gradient(X, y, sample_weight=weights)
    params = float_params(est)

    def objective():
        data = stack_pooled_loss(cell, params, "tanh", loss_name, sequences, pooling)
        return data + penalty(params, ALPHA, 1 / weights.sum())

    assert loss == pytest.approx(objective(), rel=1e-10)
    numeric = numeric_gradient(objective, params)
    assert_same_params(grad, numeric, rtol=1e-7, atol=1e-9)
    # Every layer's parameters get a share (the pooled error reaches down).
    bottom = [np.abs(value).max() for name, value in grad.items() if "_l0" in name]
    assert max(bottom) > 1e-3
    bptt_loss, bptt_grad = est.set_params(gradient="bptt").loss_gradient(
        X, y, sample_weight=weights
    )
    assert bptt_loss == pytest.approx(loss, rel=1e-12)
    assert_same_params(bptt_grad, grad, rtol=1e-10, atol=1e-13)
    # pooling="last" reads the last state again.
    last = est.set_params(pooling="last").loss_gradient(X, y, sample_weight=weights)
    expected = stack_pooled_loss(cell, params, "tanh", loss_name, sequences, "last")
    assert last[0] == pytest.approx(
        expected + penalty(params, ALPHA, 1 / weights.sum()), rel=1e-10
    )


@pytest.mark.parametrize("gradient", ["rtrl", "bptt"])
@pytest.mark.parametrize("pooling", ["mean", "max"])
@pytest.mark.parametrize("cell", ["egru", "elman", "glru", ("lru", "egru")])
def test_fitted_pooled_stack_predicts_as_numpy(cell, pooling, gradient):
    rng = np.random.RandomState(21)
    X = random_sequences(rng, 6, N_FEATURES, min_len=1, max_len=5)
    y = rng.normal(size=len(X))
    est = RTRLRegressor(
        POOLED_SIZES, cell=cell, gradient=gradient, pooling=pooling, max_iter=3,
        random_state=0,
    ).fit(X, y)  # fmt: skip
    expected = stack_pooled_outputs(cell, float_params(est), "tanh", X, pooling)
    np.testing.assert_allclose(est.predict(X), expected[:, 0], rtol=1e-9, atol=1e-12)
    # Another pooling reads other numbers from the same parameters.
    other = {"mean": "max", "max": "mean"}[pooling]
    assert not np.allclose(
        est.predict(X),
        stack_pooled_outputs(cell, float_params(est), "tanh", X, other)[:, 0],
    )


@pytest.mark.parametrize("gradient", ["rtrl", "bptt"])
def test_pooled_stack_classifier_fits_and_predicts(gradient):
    rng = np.random.RandomState(22)
    X = random_sequences(rng, 12, N_FEATURES, min_len=2, max_len=5)
    y = np.array([int(x[:, 0].max() > 1) for x in X])
    est = RTRLClassifier(
        POOLED_SIZES, cell="egru", gradient=gradient, pooling="mean", max_iter=5,
        learning_rate_init=0.05, random_state=0,
    ).fit(X, y)  # fmt: skip
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    z = stack_pooled_outputs("egru", float_params(est), "tanh", X, "mean")[:, 0]
    np.testing.assert_allclose(
        est.predict_proba(X)[:, 1], 1 / (1 + np.exp(-z)), rtol=1e-9
    )
    np.testing.assert_array_equal(est.predict(X), (z > 0).astype(int))


@pytest.mark.parametrize("gradient", ["rtrl", "bptt"])
def test_auto_pools_a_classifier_stack_by_the_maximum(gradient):
    rng = np.random.RandomState(23)
    X = random_sequences(rng, 6, N_FEATURES, min_len=2, max_len=5)
    y = np.arange(len(X)) % 2
    auto, pooled = (
        RTRLClassifier(POOLED_SIZES, cell="egru", gradient=gradient,
                       pooling=pooling, max_iter=2, random_state=0).fit(X, y)
        for pooling in ("auto", "max")
    )  # fmt: skip
    assert auto._cell.pooling == "max"
    np.testing.assert_array_equal(auto.loss_curve_, pooled.loss_curve_)
    np.testing.assert_array_equal(auto.predict_proba(X), pooled.predict_proba(X))
    # The layer-local approximation has no pooled form: "auto" reads the last.
    auto.set_params(gradient="local").fit(X, y)
    assert auto._cell.pooling == "last"


@pytest.mark.parametrize("cell", ["elstm", ("egru", "glru")])
def test_pooled_stack_threads_and_float32_agree(cell):
    rng = np.random.RandomState(24)
    X = random_sequences(rng, 8, N_FEATURES, min_len=1, max_len=6)
    y = rng.normal(size=len(X))
    est = RTRLRegressor(POOLED_SIZES, cell=cell, pooling="max", max_iter=1,
                        random_state=0).fit(X, y)  # fmt: skip
    randomize(est, rng, 0.5)
    for gradient in ("bptt", "rtrl"):
        est.set_params(gradient=gradient, n_jobs=1)
        loss, grad = est.loss_gradient(X, y)
        loss2, grad2 = est.set_params(n_jobs=2).loss_gradient(X, y)
        assert loss2 == loss
        for name in grad:
            np.testing.assert_array_equal(grad2[name], grad[name])
    X32 = [x.astype(np.float32) for x in X]
    est32 = RTRLRegressor(POOLED_SIZES, cell=cell, pooling="max", max_iter=1,
                          random_state=0).fit(X32, y.astype(np.float32))  # fmt: skip
    for name, value in est.params_.items():
        est32.params_[name][...] = value
    loss32, grad32 = est32.loss_gradient(X32, y.astype(np.float32))
    assert loss32 == pytest.approx(loss, rel=1e-4)
    for name in grad:
        np.testing.assert_allclose(grad32[name], grad[name], rtol=1e-3, atol=1e-5)


def test_a_refused_pooled_change_leaves_the_stack_unchanged():
    rng = np.random.RandomState(25)
    X = random_sequences(rng, 4, N_FEATURES, min_len=2, max_len=4)
    y = rng.normal(size=len(X))
    est = RTRLRegressor(POOLED_SIZES, cell="egru", pooling="mean", max_iter=2,
                        random_state=0).fit(X, y)  # fmt: skip
    before = {name: value.copy() for name, value in est.params_.items()}
    predicted = est.predict(X)
    est.set_params(gradient="local")
    with pytest.raises(ValueError, match="layer-local approximation"):
        est.partial_fit(X, y)
    with pytest.raises(ValueError, match="layer-local approximation"):
        est.fit(X, y)
    est.set_params(gradient="rtrl")
    assert_same_params(est.params_, before, rtol=0, atol=0)
    np.testing.assert_array_equal(est.predict(X), predicted)
    assert est._cell.pooling == "mean"
