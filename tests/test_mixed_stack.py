"""Mixed stacks: a tuple ``cell`` names each stacked layer's cell.

Every layer keeps its influence as its own cell asks (per unit for the
element-wise cells, dense for the fully connected ones), and the cross-layer
terms take each side's form. Exact RTRL equals central finite differences of
the numpy forward pass (rtol 1e-7, float64) and the numpy RTRL of
``tests/_reference.py`` (dense over every parameter, which the per-step
updates and streams are checked against); BPTT equals RTRL (rtol 1e-10);
the layer-local approximation equals its numpy definition; pooled readouts
likewise. Sizes are tiny.
"""

import pickle

import numpy as np
import pytest
from sklearn.base import clone

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._stack import STACK_CELLS, StackCell

from _helpers import (
    assert_same_params,
    fit_then_randomize,
    float_params,
    numeric_gradient,
    random_sequences,
    randomize,
)
from _reference import (
    _stack_params,
    _stack_steps,
    penalty,
    stack_forward_loss,
    stack_pooled_loss,
    stack_rtrl,
)

pytestmark = pytest.mark.usefixtures("quiet_convergence")

N_FEATURES = 2
ALPHA = 0.05
LEARNING_RATE = 0.1
KINDS = {"regression": ("squared_error", 2), "multiclass": ("log_loss", 3)}
#: Fully connected under element-wise, the other way, ns = 1 under ns = 2,
#: and three layers (cross terms through a middle layer of another form).
MIXES = {
    ("gru", "egru"): (3, 4),
    ("egru", "gru"): (3, 2),
    ("elman", "elstm"): (2, 3),
    ("elstm", "lstm", "diagonal"): (2, 2, 3),
    ("diagonal", "elman", "egru"): (3, 2, 2),
}
MIX_IDS = ["-".join(cells) for cells in MIXES]


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


def make(kind, cells, gradient="rtrl", **params):
    Estimator = RTRLRegressor if kind == "regression" else RTRLClassifier
    defaults = dict(
        cell=cells,
        gradient=gradient,
        max_iter=1,
        alpha=0.0,
        shuffle=False,
        random_state=0,
    )
    return Estimator(MIXES[cells], **{**defaults, **params})


def case(cells, gradient, kind, output, seed=0, **params):
    """A mixed stack at random parameters, sample weights, and the numpy
    view of the data: ``(x, target rows, step weights / sum(w))``."""
    rng = np.random.RandomState(seed + sum(map(ord, "".join(cells) + kind + output)))
    every_step = output == "sequence"
    X = random_sequences(rng, 3, N_FEATURES, min_len=1, max_len=4)
    y, rows = targets_of(kind, rng, [x.shape[0] for x in X], every_step)
    est = make(kind, cells, gradient, output=output, **params)
    fit_then_randomize(est, X, y, rng, None if kind == "regression" else 3)
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
@pytest.mark.parametrize("cells", MIXES, ids=MIX_IDS)
def test_rtrl_equals_finite_differences_and_bptt(cells, kind, output):
    est, X, y, weights, sequences = case(cells, "rtrl", kind, output)
    loss_name = KINDS[kind][0]
    loss, grad = est.loss_gradient(X, y, sample_weight=weights)
    params = float_params(est)
    scale = 1 / weights.sum()

    def objective():
        data = stack_forward_loss(cells, params, "tanh", loss_name, sequences)
        return data + penalty(params, ALPHA, scale)

    assert loss == pytest.approx(objective(), rel=1e-10)
    numeric = numeric_gradient(objective, params)
    assert_same_params(grad, numeric, rtol=1e-7, atol=1e-9)
    # The numpy RTRL that the step and stream checks lean on is exact too.
    result = stack_rtrl(cells, params, "tanh", loss_name, sequences)
    assert_same_params(
        with_penalty(result, params, ALPHA * scale), numeric, rtol=1e-7, atol=1e-9
    )
    bptt_loss, bptt_grad = est.set_params(gradient="bptt").loss_gradient(
        X, y, sample_weight=weights
    )
    assert bptt_loss == pytest.approx(loss, rel=1e-12)
    assert_same_params(bptt_grad, grad, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("kind, output", CASES)
@pytest.mark.parametrize("cells", MIXES, ids=MIX_IDS)
def test_local_equals_numpy_reference(cells, kind, output):
    est, X, y, weights, sequences = case(cells, "local", kind, output)
    _, grad = est.loss_gradient(X, y, sample_weight=weights)
    params = float_params(est)
    result = stack_rtrl(cells, params, "tanh", KINDS[kind][0], sequences, local=True)
    expected = with_penalty(result, params, ALPHA / weights.sum())
    assert_same_params(grad, expected, rtol=1e-9, atol=1e-12)
    exact = est.set_params(gradient="rtrl").loss_gradient(X, y, sample_weight=weights)
    assert not np.allclose(grad["weight_ih_l0"], exact[1]["weight_ih_l0"])


@pytest.mark.parametrize("gradient", ["rtrl", "local"])
@pytest.mark.parametrize("cells", MIXES, ids=MIX_IDS)
def test_step_updates_follow_numpy(cells, gradient):
    kind, output = "multiclass", "sequence"
    rng = np.random.RandomState(7 + len(cells))
    X = random_sequences(rng, 3, N_FEATURES, max_len=4)
    y, rows = targets_of(kind, rng, [x.shape[0] for x in X], True)
    weights = rng.uniform(0.5, 2.0, size=len(X))
    est = make(
        kind, cells, gradient, update="step", solver="sgd", momentum=0.0,
        learning_rate_init=LEARNING_RATE, clip_norm=None, output=output,
    )  # fmt: skip
    fit_then_randomize(est, X, y, rng, 3)
    est.set_params(alpha=ALPHA)
    start = float_params(est)
    est.partial_fit(X, y, sample_weight=weights)
    sequences = [
        (x, row, np.full(x.shape[0], w / x.shape[0]))
        for x, row, w in zip(X, rows, weights)
    ]
    expected = stack_rtrl(
        cells, start, "tanh", KINDS[kind][0], sequences, lr=LEARNING_RATE,
        alpha=ALPHA, local=gradient == "local",
    )  # fmt: skip
    assert_same_params(est.params_, expected["params"], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("gradient", ["rtrl", "local"])
@pytest.mark.parametrize("cells", MIXES, ids=MIX_IDS)
def test_stream_follows_numpy_and_predicts_on(cells, gradient):
    rng = np.random.RandomState(11)
    X = rng.normal(size=(9, N_FEATURES))
    y = rng.normal(size=(9, 2))
    weights = rng.uniform(0.5, 2.0, size=9)
    weights[3] = 0.0
    est = make(
        "regression", cells, gradient, stateful=True, solver="sgd", momentum=0.0,
        learning_rate_init=LEARNING_RATE, clip_norm=None,
    )  # fmt: skip
    fit_then_randomize(est, X, y, rng, None).reset_state()
    est.set_params(alpha=ALPHA)
    start = float_params(est)
    est.partial_fit(X[:4], y[:4], sample_weight=weights[:4])
    est.partial_fit(X[4:], y[4:], sample_weight=weights[4:])
    expected = stack_rtrl(
        cells, start, "tanh", "squared_error", [(X, y, weights)], lr=LEARNING_RATE,
        alpha=ALPHA, local=gradient == "local", reset=False,
    )  # fmt: skip
    assert_same_params(est.params_, expected["params"], rtol=1e-9, atol=1e-12)
    # Predictions run on from the stream state.
    X_next = rng.normal(size=(3, N_FEATURES))
    params, states = expected["params"], [np.copy(s) for s in expected["state"]]
    layers = _stack_params(cells, params)
    Z = []
    for x in X_next:
        states = _stack_steps(cells, layers, x, states, "tanh")
        Z.append(params["weight_out"] @ states[-1][: MIXES[cells][-1]])
    Z = np.array(Z) + params["bias_out"]
    np.testing.assert_allclose(est.predict(X_next), Z, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("pooling", ["mean", "max"])
@pytest.mark.parametrize("cells", list(MIXES)[:3], ids=MIX_IDS[:3])
def test_pooled_rtrl_equals_finite_differences_and_bptt(cells, pooling):
    kind = "multiclass"
    est, X, y, weights, sequences = case(cells, "rtrl", kind, "last", pooling=pooling)
    sequences = [(x, row[-1], w.sum()) for x, row, w in sequences]
    assert est._cell.pooling == pooling
    loss, grad = est.loss_gradient(X, y, sample_weight=weights)
    params = float_params(est)

    def objective():
        data = stack_pooled_loss(cells, params, "tanh", "log_loss", sequences, pooling)
        return data + penalty(params, ALPHA, 1 / weights.sum())

    assert loss == pytest.approx(objective(), rel=1e-10)
    assert_same_params(grad, numeric_gradient(objective, params), rtol=1e-7, atol=1e-9)
    bptt_loss, bptt_grad = est.set_params(gradient="bptt").loss_gradient(
        X, y, sample_weight=weights
    )
    assert bptt_loss == pytest.approx(loss, rel=1e-12)
    assert_same_params(bptt_grad, grad, rtol=1e-10, atol=1e-13)


def test_params_names_and_shapes_are_each_layers_cells():
    rng = np.random.RandomState(4)
    X = random_sequences(rng, 5, N_FEATURES, max_len=5)
    y = rng.randint(2, size=len(X))
    est = RTRLClassifier(
        (4, 6, 3), cell=("gru", "egru", "lstm"), max_iter=1, random_state=0
    ).fit(X, y)
    shapes = {name: value.shape for name, value in est.params_.items()}
    assert shapes == {
        "weight_ih_l0": (12, N_FEATURES),
        "weight_hh_l0": (12, 4),
        "bias_ih_l0": (12,),
        "bias_hh_l0": (12,),
        "weight_ih_l1": (18, 4),
        "weight_hh_l1": (18,),
        "bias_ih_l1": (18,),
        "bias_hh_l1": (18,),
        "weight_ih_l2": (12, 6),
        "weight_hh_l2": (12, 3),
        "bias_ih_l2": (12,),
        "bias_hh_l2": (12,),
        "weight_out": (1, 3),
        "bias_out": (1,),
    }
    assert list(est.params_) == list(shapes)
    assert est._cell.cells == ("gru", "egru", "lstm")


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(n_hidden=3, cell=("gru", "egru")), "tuple n_hidden of the same length"),
        (
            dict(n_hidden=(3, 2, 2), cell=("gru", "egru")),
            "tuple n_hidden of the same length",
        ),
        (dict(n_hidden=(3, 2), cell=("gru", "lru")), "cells that stack.*'lru'"),
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


def test_one_name_per_layer_is_the_single_cell_stack():
    rng = np.random.RandomState(5)
    X = random_sequences(rng, 4, N_FEATURES, max_len=5)
    y = rng.normal(size=len(X))
    same = RTRLRegressor((3, 2), cell="gru", max_iter=2, random_state=0).fit(X, y)
    named = RTRLRegressor((3, 2), cell=("gru", "gru"), max_iter=2, random_state=0)
    named.fit(X, y)
    for name, value in same.params_.items():
        np.testing.assert_array_equal(named.params_[name], value)
    # Either spelling continues the other's fit; another mix is refused.
    same.set_params(cell=["gru", "gru"]).partial_fit(X, y)
    before = {k: v.copy() for k, v in same.params_.items()}
    with pytest.raises(ValueError, match="fitted with cell="):
        same.set_params(cell=("gru", "egru")).partial_fit(X, y)
    assert_same_params(same.params_, before, rtol=0, atol=0)
    with pytest.raises(ValueError, match="fitted with cell="):
        same.set_params(cell=("egru", "gru"), warm_start=True).fit(X, y)
    assert_same_params(same.params_, before, rtol=0, atol=0)
    # Without warm_start a new cell starts a new model.
    same.set_params(warm_start=False).fit(X, y)
    assert same._cell.cells == ("egru", "gru")


def test_clone_pickle_and_skops_round_trip(tmp_path):
    rng = np.random.RandomState(6)
    X = random_sequences(rng, 6, N_FEATURES, min_len=2, max_len=5)
    y = np.arange(len(X)) % 2
    cells = ("gru", "egru")
    est = RTRLClassifier((3, 4), cell=cells, max_iter=2, random_state=0).fit(X, y)
    copy = clone(est)
    assert copy.get_params()["cell"] == cells
    assert type(copy.get_params()["cell"]) is tuple
    np.testing.assert_array_equal(copy.fit(X, y).predict_proba(X), est.predict_proba(X))
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict_proba(X), est.predict_proba(X))
    restored.partial_fit(X, y)
    sio = pytest.importorskip("skops.io")
    path = tmp_path / "mixed.skops"
    sio.dump(est, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert all(name.startswith("skrtrl.") for name in untrusted), untrusted
    loaded = sio.load(path, trusted=untrusted)
    assert loaded.cell == cells
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


def test_threads_agree():
    rng = np.random.RandomState(3)
    X = random_sequences(rng, 8, N_FEATURES, max_len=6)
    y = rng.normal(size=len(X))
    est = RTRLRegressor((3, 4), cell=("lstm", "elstm"), max_iter=1, random_state=0)
    randomize(est.fit(X, y), rng, 0.5)
    # Threads take whole sequences and the rows are summed in order.
    for gradient, pooling in [("local", "last"), ("bptt", "max"), ("rtrl", "mean")]:
        est.set_params(gradient=gradient, pooling=pooling, n_jobs=1)
        loss, grad = est.loss_gradient(X, y)
        loss2, grad2 = est.set_params(n_jobs=2).loss_gradient(X, y)
        assert loss2 == loss
        for name in grad:
            np.testing.assert_array_equal(grad2[name], grad[name])


def test_resources_count_each_layers_form():
    from skrtrl._resources import training_bytes

    def size(cells, sizes):
        cell = StackCell(cells, sizes, 2, 1)
        return training_bytes(
            cell, np.float64, online=True, batch_size=1, n_threads=1, longest=1
        ), cell

    # A small fully connected layer under a wide element-wise one: its own
    # influence dense (S_0 x W_0), the wide layer's per unit, and the cross
    # term S_1 x W_0.
    mixed, cell = size(("gru", "egru"), (4, 64))
    W0 = 3 * 4 * (2 + 4 + 2)
    W1 = 3 * 64 * (4 + 3)
    assert cell._influence == 4 * W0 + W1 + 64 * W0
    wide_gru, _ = size(("gru", "gru"), (4, 64))
    assert mixed < wide_gru / 20
    # The cost model counts the dense layer densely, the other per unit.
    assert cell.step_flops(True) < StackCell("gru", (4, 64), 2, 1).step_flops(True)
    assert cell.step_flops(True) > StackCell("egru", (4, 64), 2, 1).step_flops(True)


def test_every_stack_cell_mixes():
    for below in STACK_CELLS:
        for above in STACK_CELLS:
            assert StackCell((below, above), (2, 3), 1, 1).n_hidden == (2, 3)


def test_one_layer_tuple_cell_is_a_stack_of_one():
    rng = np.random.RandomState(8)
    X = random_sequences(rng, 4, N_FEATURES, max_len=4)
    y = rng.normal(size=len(X))
    one = RTRLRegressor((3,), cell=("gru",), max_iter=2, random_state=0).fit(X, y)
    single = RTRLRegressor(3, cell="gru", max_iter=2, random_state=0).fit(X, y)
    # Named per layer, as every stack: the single cell's entries, suffixed.
    for name, value in single.params_.items():
        key = name if name.endswith("_out") else f"{name}_l0"
        np.testing.assert_allclose(one.params_[key], value, rtol=1e-10, atol=1e-13)
    # Either spelling continues the other's fit, under its own names.
    single.set_params(cell=("gru",), n_hidden=(3,)).partial_fit(X, y)
    assert list(single.params_) == list(one.params_)
    single.set_params(cell="gru", n_hidden=3).partial_fit(X, y)
    assert "weight_ih" in single.params_


def test_inspection_and_export_refuse_mixed_stacks():
    import skrtrl.inspection as inspection

    X, y = np.zeros((2, 3, 2)), np.zeros(2)
    est = RTRLRegressor((3, 2), cell=("gru", "egru"), max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="stacked layers"):
        inspection.input_saliency(est, X)
    pytest.importorskip("onnx")
    from skrtrl.export import to_onnx

    with pytest.raises(ValueError, match=r"stack of \('gru', 'egru'\) layers"):
        to_onnx(est)
