"""Pooled readouts (``"mean"``, ``"max"``, ``"mean+last"``) of one target per sequence.

The readout reads the mean or the per-unit maximum of the cell's outputs y
(h, or the LRUs' output map) over each sequence's own steps, or the mean
followed by the last y. Checked
against plain-numpy references
(``tests/_reference.py``: the pooled forward pass, each sequence run alone,
and RTRL with the pooled accumulator): exact RTRL and full BPTT equal
central finite differences (rtol 1e-7, float64) for every registered cell,
SnAp-1 equals the numpy RTRL cut to per-unit blocks, prediction equals the
numpy forward pass, padding does not leak into the mean or the maximum, and
settings where pooling has no meaning are refused.
"""

import pickle
import re

import numpy as np
import pytest
from sklearn.utils._param_validation import InvalidParameterError

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._cells import CELLS

from _helpers import numeric_gradient, random_sequences, randomize
from _reference import Layout, pooled_loss, pooled_outputs, pooled_rtrl

pytestmark = pytest.mark.usefixtures("quiet_convergence")

N_HIDDEN = 3
N_FEATURES = 2
POOLINGS = ("mean", "max", "mean+last")
#: The Elman and diagonal cells' activation (the gated cells ignore it).
ACTIVATION = {"elman": "tanh", "diagonal": "logistic"}
LOSS = {"regression": "squared_error", "multiclass": "log_loss"}


def activation_of(cell):
    return ACTIVATION.get(cell, "tanh")


def fitted(kind, cell, pooling, X, y, rng, **params):
    """A model set up by one ``partial_fit``, then random parameters."""
    Estimator = RTRLRegressor if kind == "regression" else RTRLClassifier
    est = Estimator(
        N_HIDDEN,
        cell=cell,
        pooling=pooling,
        alpha=0.0,
        max_iter=1,
        activation=activation_of(cell),
        random_state=0,
        **params,
    )
    classes = {} if kind == "regression" else {"classes": np.arange(3)}
    est.partial_fit(X, y, **classes)
    return randomize(est, rng, 0.7)


def float_params(est):
    return {k: np.array(v, dtype=np.float64) for k, v in est.params_.items()}


def case(cell, pooling, kind):
    """Variable-length sequences, targets, sample weights, and the numpy
    view of the problem: ``(x, y, w_s / sum(w))`` per sequence."""
    rng = np.random.RandomState(sum(map(ord, f"{cell}-{pooling}-{kind}")))
    X = random_sequences(rng, 4, N_FEATURES, min_len=1, max_len=6)
    if kind == "regression":
        y = rng.normal(size=(len(X), 2))
        rows = list(y)
    else:
        y = rng.randint(3, size=len(X))
        rows = list(np.eye(3)[y])
    weights = rng.uniform(0.5, 2.0, size=len(X))
    sequences = list(zip(X, rows, weights / weights.sum()))
    return rng, X, y, weights, sequences


_NUMERIC = {}


def numeric(cell, pooling, kind, params, sequences):
    """Central finite differences of the numpy pooled loss, once per problem."""
    key = (cell, pooling, kind, Layout(params).vector(params).tobytes())
    if key not in _NUMERIC:

        def objective():
            return pooled_loss(cell, params, activation_of(cell), LOSS[kind],
                               sequences, pooling)  # fmt: skip

        _NUMERIC[key] = (objective(), numeric_gradient(objective, params))
    return _NUMERIC[key]


def assert_same(actual, expected, **tol):
    assert actual.keys() == expected.keys()
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], err_msg=name, **tol)


#: Every registered cell: y is h, or the LRUs' output map.
POOLED_CELLS = list(CELLS)
GRADIENT_CASES = [
    pytest.param(cell, gradient, pooling, id=f"{cell}-{gradient}-{pooling}")
    for cell in POOLED_CELLS
    for gradient in ("rtrl", "bptt", "snap1")
    for pooling in POOLINGS
]


@pytest.mark.parametrize("cell, gradient, pooling", GRADIENT_CASES)
def test_pooled_gradient_matches_the_numpy_references(cell, gradient, pooling):
    kind = "multiclass" if cell in ("gru", "egru") else "regression"
    rng, X, y, weights, sequences = case(cell, pooling, kind)
    rng = np.random.RandomState(0)
    est = fitted(kind, cell, pooling, X, y, rng, gradient=gradient)
    loss, grad = est.loss_gradient(X, y, sample_weight=weights)
    params = float_params(est)
    objective, expected = numeric(cell, pooling, kind, params, sequences)
    assert loss == pytest.approx(objective, rel=1e-10)
    if gradient == "snap1" and not CELLS[cell].elementwise:
        result = pooled_rtrl(cell, params, activation_of(cell), LOSS[kind],
                             sequences, pooling, snap1=True)  # fmt: skip
        expected = result["layout"].arrays(result["gradient"])
        assert_same(grad, expected, rtol=1e-7, atol=1e-12)
        return
    assert_same(grad, expected, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_numpy_pooled_rtrl_is_exact(pooling):
    # The numpy RTRL that the SnAp-1 check leans on is exact without the cut.
    cell, kind = "gru", "regression"
    _, X, y, _, sequences = case(cell, pooling, kind)
    est = fitted(kind, cell, pooling, X, y, np.random.RandomState(1))
    params = float_params(est)
    result = pooled_rtrl(cell, params, "tanh", LOSS[kind], sequences, pooling)
    _, expected = numeric(cell, pooling, kind, params, sequences)
    assert_same(result["layout"].arrays(result["gradient"]), expected, rtol=1e-7,
                atol=1e-9)  # fmt: skip


@pytest.mark.parametrize("cell", POOLED_CELLS)
@pytest.mark.parametrize("pooling", ("last",) + POOLINGS)
def test_predictions_read_the_pooled_hidden_states(cell, pooling):
    rng = np.random.RandomState(2)
    X = random_sequences(rng, 5, N_FEATURES, min_len=1, max_len=7)
    y = rng.normal(size=len(X))
    est = fitted("regression", cell, pooling, X, y, rng)
    expected = pooled_outputs(cell, float_params(est), activation_of(cell), X, pooling)
    np.testing.assert_allclose(est.predict(X), expected[:, 0], rtol=1e-12, atol=1e-12)


def test_classifier_probabilities_read_the_pooled_hidden_states():
    rng = np.random.RandomState(3)
    X = random_sequences(rng, 5, N_FEATURES, min_len=2, max_len=6)
    y = rng.randint(3, size=len(X))
    est = fitted("multiclass", "egru", "max", X, y, rng)
    z = pooled_outputs("egru", float_params(est), "tanh", X, "max")
    np.testing.assert_allclose(est.decision_function(X), z, rtol=1e-12)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(est.predict_proba(X), p / p.sum(axis=1, keepdims=True))


def assert_batch_gradient_is_the_mean_of_each_sequences(est, X, y):
    loss, grad = est.loss_gradient(X, y)
    parts = [est.loss_gradient([x], y[i : i + 1]) for i, x in enumerate(X)]
    assert loss == pytest.approx(np.mean([p[0] for p in parts]), rel=1e-12)
    for name in grad:
        np.testing.assert_allclose(
            grad[name], np.mean([p[1][name] for p in parts], axis=0), rtol=1e-10,
            atol=1e-14,
        )  # fmt: skip


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("gradient", ["rtrl", "bptt"])
def test_padding_does_not_leak_into_the_pool(pooling, gradient):
    # Hidden states near -1: a padded zero would win every maximum and
    # pull every mean towards 0.
    rng = np.random.RandomState(4)
    X = [rng.normal(size=(T, N_FEATURES)) for T in (1, 6, 2, 9)]
    y = rng.normal(size=len(X))
    est = fitted("regression", "elman", pooling, X, y, rng, gradient=gradient)
    est.params_["bias_ih"][:] = -4.0
    together = est.predict(X)
    alone = np.array([est.predict([x])[0] for x in X])
    np.testing.assert_allclose(together, alone, rtol=1e-13)
    expected = pooled_outputs("elman", float_params(est), "tanh", X, pooling)
    np.testing.assert_allclose(together, expected[:, 0], rtol=1e-12)
    # 3D input (equal lengths) and the list of the same sequences agree.
    X3 = np.stack([rng.normal(size=(5, N_FEATURES)) for _ in range(3)])
    np.testing.assert_allclose(est.predict(X3), est.predict(list(X3)), rtol=1e-13)
    assert_batch_gradient_is_the_mean_of_each_sequences(est, X, y)


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("cell", ["lru", "glru"])
def test_lru_pooled_rtrl_needs_no_accumulator(cell, pooling):
    # Exact RTRL takes an output map's pooled gradient in two passes over
    # each sequence: no accumulator beside the influence, and each
    # sequence's passes read its own steps only (lengths 1 to 9 in one
    # minibatch, one thread).
    rng = np.random.RandomState(6)
    X = [rng.normal(size=(T, N_FEATURES)) for T in (1, 6, 2, 9)]
    y = rng.normal(size=len(X))
    est = fitted("regression", cell, pooling, X, y, rng, n_jobs=1)
    pooled = CELLS[cell](N_HIDDEN, N_FEATURES, 1, pooling=pooling)
    last = CELLS[cell](N_HIDDEN, N_FEATURES, 1, pooling="last")
    for buffer in ("influence", "scratch"):
        assert (
            pooled.workspace_shapes(4, 1)[buffer] == last.workspace_shapes(4, 1)[buffer]
        )
    assert_batch_gradient_is_the_mean_of_each_sequences(est, X, y)


@pytest.mark.parametrize("pooling", ["mean", "mean+last"])
@pytest.mark.parametrize("cell", ["elman", "egru", "lstm", "glru"])
def test_float32_pooled_gradient_matches_float64(cell, pooling):
    rng = np.random.RandomState(5)
    X = random_sequences(rng, 4, N_FEATURES, min_len=1, max_len=6)
    y = rng.normal(size=len(X))
    est = fitted("regression", cell, pooling, X, y, rng)
    X32 = [x.astype(np.float32) for x in X]
    est32 = fitted("regression", cell, pooling, X32, y, rng)
    for name, value in est.params_.items():
        est32.params_[name][...] = value
    loss, grad = est.loss_gradient(X, y)
    loss32, grad32 = est32.loss_gradient([x.astype(np.float32) for x in X], y)
    assert loss32 == pytest.approx(loss, rel=1e-5)
    for name in grad:
        assert grad32[name].dtype == np.float32
        np.testing.assert_allclose(grad32[name], grad[name], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        est32.predict([x.astype(np.float32) for x in X]), est.predict(X), atol=1e-6
    )


def test_last_is_the_default_and_unchanged():
    rng = np.random.RandomState(6)
    X = random_sequences(rng, 4, N_FEATURES, min_len=1, max_len=6)
    y = rng.normal(size=len(X))
    assert RTRLRegressor().pooling == "last"
    a = RTRLRegressor(4, cell="gru", max_iter=3, random_state=0).fit(X, y)
    b = RTRLRegressor(4, cell="gru", max_iter=3, random_state=0, pooling="last")
    b.fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("cell", ["gru", "glru"])
@pytest.mark.parametrize("gradient", ["rtrl", "snap1", "bptt"])
def test_pooled_models_learn_and_run_in_several_threads(gradient, cell, pooling):
    rng = np.random.RandomState(7)
    X = random_sequences(rng, 12, N_FEATURES, min_len=2, max_len=8)
    y = rng.normal(size=len(X))
    fits = [
        RTRLRegressor(4, cell=cell, gradient=gradient, pooling=pooling, max_iter=3,
                      batch_size=6, random_state=0, n_jobs=jobs).fit(X, y)
        for jobs in (1, 2)
    ]  # fmt: skip
    np.testing.assert_allclose(fits[0].predict(X), fits[1].predict(X), rtol=1e-12)
    assert np.all(np.isfinite(fits[0].loss_curve_))


def test_changing_pooling_after_fit_changes_what_predict_reads():
    rng = np.random.RandomState(8)
    X = random_sequences(rng, 4, N_FEATURES, min_len=2, max_len=6)
    y = rng.normal(size=len(X))
    est = fitted("regression", "egru", "last", X, y, rng)
    est.set_params(pooling="max")
    expected = pooled_outputs("egru", float_params(est), "tanh", X, "max")
    np.testing.assert_allclose(est.predict(X), expected[:, 0], rtol=1e-12)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(output="sequence"), "target at every step"),
        (dict(stateful=True), "stream"),
        (dict(update="step"), "batch_size=1"),
        (dict(output="sequence", output_feedback=True), "every step"),
        (dict(gradient="uoro"), "UORO"),
        (dict(gradient="bptt", truncation=2), "truncation=None"),
    ],
)
@pytest.mark.parametrize("pooling", POOLINGS)
def test_refused_where_pooling_has_no_meaning(params, match, pooling):
    rng = np.random.RandomState(9)
    X = random_sequences(rng, 3, N_FEATURES, min_len=2, max_len=4)
    every_step = params.get("output") == "sequence" or params.get("stateful")
    if params.get("stateful"):
        X, y = X[0], rng.normal(size=X[0].shape[0])
    elif every_step:
        y = [rng.normal(size=x.shape[0]) for x in X]
    else:
        y = rng.normal(size=len(X))
    est = RTRLRegressor(3, pooling=pooling, max_iter=1, **params)
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)
    assert not hasattr(est, "params_")


def _auto_and_explicit(params, explicit, seed, Estimator=RTRLClassifier):
    """Fits with pooling="auto" and with ``explicit``, otherwise alike."""
    rng = np.random.RandomState(seed)
    X = random_sequences(rng, 6, N_FEATURES, min_len=2, max_len=5)
    if Estimator is RTRLClassifier:
        draw = lambda size: rng.randint(2, size=size)  # noqa: E731
    else:
        draw = lambda size: rng.normal(size=size)  # noqa: E731
    if params.get("stateful"):
        X, y = X[0], draw(X[0].shape[0])
    elif params.get("output") == "sequence":
        y = [draw(x.shape[0]) for x in X]
    else:
        y = np.arange(len(X)) % 2 if Estimator is RTRLClassifier else draw(len(X))
    fits = [
        Estimator(
            **{"n_hidden": 3, **params},
            pooling=pooling,
            max_iter=2,
            random_state=0,
        ).fit(X, y)
        for pooling in ("auto", explicit)
    ]
    return fits, X


@pytest.mark.parametrize(
    "params",
    [
        dict(output="sequence"),
        dict(stateful=True),
        dict(update="step"),
        dict(output="sequence", output_feedback=True),
        dict(gradient="uoro"),
        dict(gradient="bptt", truncation=2),
        dict(n_hidden=(3, 2), cell="egru", gradient="local"),
    ],
)
def test_auto_reads_the_last_state_where_pooling_has_no_meaning(params):
    (auto, last), X = _auto_and_explicit(params, "last", 12)
    assert getattr(auto._cell, "pooling", "last") == "last"
    for a, b in zip(auto.predict(X), last.predict(X)):
        np.testing.assert_array_equal(a, b)
    assert auto.pooling == "auto"


def test_a_model_saved_when_auto_read_another_pooling_keeps_it():
    # Before the gated LRU's "auto" read the last y beside the mean, it
    # read the mean: such a model, loaded, reads the mean still.
    (auto, mean), X = _auto_and_explicit(dict(cell="glru"), "mean", 16)
    assert auto._cell.pooling == "mean+last"
    state = mean.__getstate__()
    state["pooling"] = "auto"  # as the saved model has it
    loaded = RTRLClassifier.__new__(RTRLClassifier)
    loaded.__setstate__(state)
    assert loaded.pooling == "mean"
    np.testing.assert_array_equal(loaded.predict_proba(X), mean.predict_proba(X))
    # A model fitted with "auto" as it reads now keeps "auto".
    again = pickle.loads(pickle.dumps(auto))
    assert again.pooling == "auto"
    np.testing.assert_array_equal(again.predict_proba(X), auto.predict_proba(X))


def test_loading_keeps_auto_changed_to_another_setting_after_fit():
    # Only the former "auto" of the gated LRU is kept on load: a stream
    # fitted with "auto" (the last state) and set to batches afterwards
    # is refused after a round trip, as before it.
    rng = np.random.RandomState(17)
    X, y = rng.normal(size=(30, N_FEATURES)), rng.randint(0, 2, 30)
    est = RTRLClassifier(n_hidden=3, max_iter=2, stateful=True, random_state=0)
    est.fit(X, y).set_params(stateful=False)
    batch = random_sequences(rng, 3, N_FEATURES, min_len=2, max_len=4)
    for model in (est, pickle.loads(pickle.dumps(est))):
        assert model.pooling == "auto"
        with pytest.raises(ValueError, match="fitted with pooling='last'"):
            model.predict(batch)


@pytest.mark.parametrize("cell", ["egru", "gru"])
def test_auto_reads_the_last_state_for_the_regressor(cell):
    (auto, last), X = _auto_and_explicit(dict(cell=cell), "last", 14, RTRLRegressor)
    assert auto._cell.pooling == "last"
    np.testing.assert_array_equal(auto.predict(X), last.predict(X))


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("gradient", ["rtrl", "snap1", "bptt"])
def test_auto_reads_the_cells_pooling_for_one_target_per_sequence(cell, gradient):
    # The maximum, but the mean of the LRU's output map, and the gated
    # LRU's mean beside its last y.
    expected = {"lru": "mean", "glru": "mean+last"}.get(cell, "max")
    (auto, pooled), X = _auto_and_explicit(
        dict(cell=cell, gradient=gradient), expected, 13
    )
    assert auto._cell.pooling == expected
    np.testing.assert_array_equal(auto.predict(X), pooled.predict(X))
    np.testing.assert_array_equal(auto.loss_curve_, pooled.loss_curve_)


def assert_refused_and_unchanged(est, X, y, match, **change):
    """After ``set_params(**change)``, ``partial_fit`` raises a ValueError
    matching ``match``; with the settings back, the fitted parameters are
    those of before."""
    before = {k: v.copy() for k, v in est.params_.items()}
    was = {name: getattr(est, name) for name in change}
    est.set_params(**change)
    with pytest.raises(ValueError, match=match):
        est.partial_fit(X, y)
    est.set_params(**was)
    assert_same(est.params_, before, rtol=0, atol=0)


def test_a_refused_change_leaves_the_fitted_model_unchanged():
    rng = np.random.RandomState(10)
    X = random_sequences(rng, 3, N_FEATURES, min_len=2, max_len=4)
    y = rng.normal(size=len(X))
    est = RTRLRegressor(3, pooling="mean", max_iter=2, random_state=0).fit(X, y)
    assert_refused_and_unchanged(est, X, y, "UORO", gradient="uoro")


def test_pooling_is_validated():
    with pytest.raises(InvalidParameterError, match="pooling"):
        RTRLRegressor(pooling="median").fit([np.zeros((2, 1))], [0.0])


@pytest.mark.parametrize("pooling", POOLINGS)
def test_pickle_and_skops_keep_the_pooling(pooling, tmp_path):
    sio = pytest.importorskip("skops.io")
    rng = np.random.RandomState(11)
    X = random_sequences(rng, 5, N_FEATURES, min_len=1, max_len=6)
    y = rng.randint(2, size=len(X))
    est = RTRLClassifier(3, cell="egru", pooling=pooling, max_iter=2,
                         random_state=0).fit(X, y)  # fmt: skip
    expected = est.predict_proba(X)
    again = pickle.loads(pickle.dumps(est))
    assert again.pooling == pooling
    np.testing.assert_array_equal(again.predict_proba(X), expected)
    path = tmp_path / "model.skops"
    sio.dump(est, path)
    loaded = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)
    # Training goes on the same way after the round trip.
    est.partial_fit(X, y)
    again.partial_fit(X, y)
    np.testing.assert_array_equal(again.predict_proba(X), est.predict_proba(X))


def test_models_pickled_before_pooling_load_as_last():
    rng = np.random.RandomState(12)
    X = random_sequences(rng, 3, N_FEATURES, min_len=2, max_len=4)
    y = rng.normal(size=len(X))
    est = RTRLRegressor(3, max_iter=1, random_state=0).fit(X, y)
    state = est.__getstate__()
    del state["pooling"]
    old = RTRLRegressor.__new__(RTRLRegressor)
    old.__setstate__(state)
    assert old.pooling == "last"
    np.testing.assert_array_equal(old.predict(X), est.predict(X))


@pytest.mark.parametrize("pooling", POOLINGS)
def test_pooled_readouts_export(pooling):
    """Export reads the pooling (tests/test_export.py checks every cell)."""
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from skrtrl.export import to_onnx

    rng = np.random.RandomState(13)
    X = random_sequences(rng, 3, N_FEATURES, min_len=2, max_len=4)
    y = rng.normal(size=len(X))
    est = RTRLRegressor(
        3, cell="gru", output="last", pooling=pooling, max_iter=1, random_state=0
    ).fit(X, y)
    padded = np.zeros((len(X), max(len(x) for x in X), N_FEATURES), np.float32)
    for i, x in enumerate(X):
        padded[i, : len(x)] = x
    lengths = np.array([len(x) for x in X], dtype=np.int64)
    sess = ort.InferenceSession(to_onnx(est, lengths=True).SerializeToString())
    (values,) = sess.run(None, {"X": padded, "lengths": lengths})
    np.testing.assert_allclose(values[:, 0], est.predict(X), atol=1e-5)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_inspection_refuses_pooled_readouts(pooling):
    from skrtrl.inspection import credit_over_time

    rng = np.random.RandomState(14)
    X = random_sequences(rng, 3, N_FEATURES, min_len=2, max_len=4)
    y = rng.normal(size=len(X))
    est = RTRLRegressor(3, pooling=pooling, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match=re.escape(f"pooling={pooling!r}")):
        credit_over_time(est, X, y)


# -- the mean beside the last state ------------------------------------------
@pytest.mark.parametrize("cell", ["gru", "glru"])
def test_mean_last_reads_the_mean_then_the_last_state(cell):
    # weight_out has 2 n columns: the mean's, then the last state's; with
    # either half zeroed, the model predicts as "mean" would with the other
    # half's weights, or as "last" would with them divided by the length.
    rng = np.random.RandomState(15)
    X = random_sequences(rng, 5, N_FEATURES, min_len=1, max_len=7)
    lengths = np.array([len(x) for x in X])
    assert len(set(lengths)) > 1
    y = rng.normal(size=len(X))
    est = fitted("regression", cell, "mean+last", X, y, rng)
    W = est.params_["weight_out"]
    bias = est.params_["bias_out"][0]
    assert W.shape == (1, 2 * N_HIDDEN)
    halves = {"mean": slice(0, N_HIDDEN), "last": slice(N_HIDDEN, None)}
    for pooling, half in halves.items():
        other = fitted("regression", cell, pooling, X, y, rng)
        for name, view in est.params_.items():
            if name != "weight_out":
                other.params_[name][...] = view
        other.params_["weight_out"][...] = W[:, half]
        expected = other.predict(X)
        if pooling == "last":
            expected = bias + (expected - bias) / lengths
        kept = W.copy()
        W[...] = 0
        W[:, half] = kept[:, half]
        np.testing.assert_allclose(est.predict(X), expected, rtol=1e-12,
                                   atol=1e-13)  # fmt: skip
        W[...] = kept


def test_mean_last_learns_what_happened_at_the_end():
    # The label is the XOR of the last bit and the bit 3 steps before it:
    # the mean over time cannot tell when a bit came, the last state
    # beside it can (held-out sequences of the same task).
    from skrtrl.datasets import make_delayed_xor

    X, y = make_delayed_xor(400, 10, delay=3, random_state=0)
    X_test, y_test = make_delayed_xor(400, 10, delay=3, random_state=1)
    scores = {
        pooling: RTRLClassifier(16, pooling=pooling, random_state=0)
        .fit(X, y)
        .score(X_test, y_test)
        for pooling in ("mean", "mean+last")
    }
    assert scores["mean+last"] >= 0.95
    assert scores["mean"] <= 0.85


def test_a_stack_refuses_mean_last_and_stays_unfitted():
    rng = np.random.RandomState(16)
    X = random_sequences(rng, 3, N_FEATURES, min_len=2, max_len=4)
    y = rng.normal(size=len(X))
    est = RTRLRegressor((3, 2), cell="egru", pooling="mean+last", max_iter=1)
    with pytest.raises(ValueError, match="for one layer"):
        est.fit(X, y)
    assert not hasattr(est, "params_")
    fitted_est = RTRLRegressor((3, 2), cell="egru", pooling="mean", max_iter=1,
                               random_state=0).fit(X, y)  # fmt: skip
    assert_refused_and_unchanged(fitted_est, X, y, "for one layer",
                                 pooling="mean+last")  # fmt: skip


def test_cells_pickled_before_the_wider_readout_load():
    # A cell layout of before has no n_readout: its readout reads h.
    rng = np.random.RandomState(17)
    X = random_sequences(rng, 3, N_FEATURES, min_len=2, max_len=4)
    y = rng.normal(size=len(X))
    est = RTRLRegressor(3, cell="gru", pooling="mean", max_iter=1,
                        random_state=0).fit(X, y)  # fmt: skip
    expected = est.predict(X)
    del est._cell.layout.__dict__["n_readout"]
    again = pickle.loads(pickle.dumps(est))
    assert again._cell.layout.n_readout == 3
    np.testing.assert_array_equal(again.predict(X), expected)
    again.partial_fit(X, y)


@pytest.mark.parametrize("was, now", [("mean", "mean+last"), ("mean+last", "last")])
def test_a_change_of_readout_width_after_fitting_is_refused(was, now):
    rng = np.random.RandomState(18)
    X = random_sequences(rng, 4, N_FEATURES, min_len=2, max_len=5)
    y = rng.normal(size=len(X))
    est = RTRLRegressor(3, pooling=was, max_iter=2, random_state=0).fit(X, y)
    expected = est.predict(X)
    match = re.escape(f"fitted with pooling='{was}', but now has pooling='{now}'")
    with pytest.raises(ValueError, match=match):
        est.set_params(pooling=now).predict(X)
    est.set_params(pooling=was)
    assert_refused_and_unchanged(est, X, y, match, pooling=now)
    np.testing.assert_array_equal(est.predict(X), expected)
    # fit trains a new model of the new width.
    est.set_params(pooling=now).fit(X, y)
    assert est.params_["weight_out"].shape[1] == (6 if now == "mean+last" else 3)
