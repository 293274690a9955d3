"""The test-then-train call: predict_partial_fit, predict_proba_partial_fit.

For a block of stream rows, one kernel call returns each row's prediction
made before learning from that row; it must equal ``predict`` then
``partial_fit`` row by row, for every cell and gradient method that streams
(the registry ``skrtrl._cells.CELLS`` says which), with output feedback too.
"""

import copy
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._cells import CELLS


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def streaming_settings():
    """Every (cell, gradient, feedback) that trains on a stream."""
    for name, cell in sorted(CELLS.items()):
        for gradient in cell.gradients:
            modes = cell.modes(gradient)
            if "stream" not in modes:
                continue
            base = {"cell": name, "gradient": gradient}
            if gradient == "bptt":
                base["truncation"] = 3
            yield pytest.param(base, id=f"{name}-{gradient}")
            if "feedback" in modes:
                yield pytest.param(
                    {**base, "output_feedback": True},
                    id=f"{name}-{gradient}-feedback",
                )
            if "free_running" in modes:
                yield pytest.param(
                    {**base, "output_feedback": True, "teacher_forcing": False},
                    id=f"{name}-{gradient}-free-running",
                )


SETTINGS = list(streaming_settings())


def stream(n_rows, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_rows, 2))
    y = np.column_stack([X[:, 0] + 0.5 * np.roll(X[:, 1], 1), np.roll(X[:, 0], 2)])
    return X, y


def model(estimator_class, settings, **params):
    return estimator_class(
        n_hidden=3, stateful=True, learning_rate_init=0.02, random_state=0,
        **settings, **params,
    )  # fmt: skip


def row_by_row(est, X, y, predict):
    """``predict`` on each row, then ``partial_fit`` on it."""
    out = []
    for t in range(X.shape[0]):
        out.append(getattr(est, predict)(X[t : t + 1])[0])
        est.partial_fit(X[t : t + 1], y[t : t + 1])
    return np.array(out)


def assert_same_model(a, b):
    for name in a.params_:
        np.testing.assert_allclose(
            a.params_[name], b.params_[name], rtol=1e-12, atol=1e-15, err_msg=name
        )
    for name, value in a._model.stream.items():
        np.testing.assert_allclose(
            value, b._model.stream[name], rtol=1e-12, atol=1e-15, err_msg=name
        )
    assert a.t_ == b.t_


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("n_outputs", [1, 2])
def test_regressor_predictions_before_learning_equal_predict_then_learn(
    settings, n_outputs
):
    X, Y = stream(60)
    y = Y[:, 0] if n_outputs == 1 else Y
    one_call = model(RTRLRegressor, settings).partial_fit(X[:10], y[:10])
    rows = copy.deepcopy(one_call)

    got = one_call.predict_partial_fit(X[10:], y[10:])

    expected = row_by_row(rows, X[10:], y[10:], "predict")
    assert got.shape == expected.shape == y[10:].shape
    # atol: predictions near zero (as assert_same_model's parameters).
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert_same_model(one_call, rows)
    # The block counts as one pass, as partial_fit on it would.
    assert one_call.n_iter_ == 2 and len(one_call.loss_curve_) == 2


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_classifier_probabilities_before_learning_equal_predict_then_learn(
    settings, n_classes
):
    X, Y = stream(60)
    y = np.digitize(Y[:, 0], [-0.5, 0.5][: n_classes - 1])
    classes = np.arange(n_classes)
    one_call = model(RTRLClassifier, settings)
    one_call.partial_fit(X[:10], y[:10], classes=classes)
    rows = copy.deepcopy(one_call)
    labels = copy.deepcopy(one_call)

    proba = one_call.predict_proba_partial_fit(X[10:], y[10:])

    np.testing.assert_allclose(
        proba, row_by_row(rows, X[10:], y[10:], "predict_proba"), rtol=1e-12
    )
    assert_same_model(one_call, rows)
    predicted = labels.predict_partial_fit(X[10:], y[10:])
    np.testing.assert_array_equal(predicted, classes[np.argmax(proba, axis=1)])
    assert_same_model(labels, rows)


def test_the_first_call_initialises_the_model():
    X, Y = stream(30)
    reg = model(RTRLRegressor, {})
    got = reg.predict_partial_fit(X, Y[:, 0])
    assert got.shape == (30,) and np.isfinite(got).all() and reg.t_ == 30
    # After the block, the model is the one partial_fit makes.
    twin = model(RTRLRegressor, {}).partial_fit(X, Y[:, 0])
    assert_same_model(reg, twin)
    clf = model(RTRLClassifier, {})
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.predict_proba_partial_fit(X, Y[:, 0] > 0)
    proba = clf.predict_proba_partial_fit(X, Y[:, 0] > 0, classes=[False, True])
    assert proba.shape == (30, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_sample_weights_weigh_the_learning_not_the_predictions():
    X, Y = stream(40)
    weights = np.random.RandomState(0).uniform(0.5, 2.0, size=30)
    one_call = model(RTRLRegressor, {}).partial_fit(X[:10], Y[:10, 0])
    whole = copy.deepcopy(one_call)
    got = one_call.predict_partial_fit(X[10:], Y[10:, 0], sample_weight=weights)
    before = whole.predict(X[10:11])
    whole.partial_fit(X[10:], Y[10:, 0], sample_weight=weights)
    assert_same_model(one_call, whole)
    assert got[0] == pytest.approx(before[0], rel=1e-12)


def test_sequence_models_are_refused():
    X, Y = stream(10)
    reg = RTRLRegressor(n_hidden=3, random_state=0)
    with pytest.raises(ValueError, match="stateful=True"):
        reg.predict_partial_fit(X, Y[:, 0])
    assert not reg.__sklearn_is_fitted__()


@pytest.mark.parametrize(
    "X, y, match",
    [
        (np.full((5, 2), np.nan), np.zeros(5), "NaN"),
        (np.zeros((5, 3)), np.zeros(5), "features"),
        (np.zeros((5, 2)), np.zeros(4), "one target per row"),
        (np.zeros((5, 2)), np.full(5, np.inf), "infinity"),
    ],
)
def test_bad_blocks_are_refused_and_change_nothing(X, y, match):
    X0, Y0 = stream(10)
    est = model(RTRLRegressor, {}).partial_fit(X0, Y0[:, 0])
    before = (
        {k: v.copy() for k, v in est.params_.items()},
        {k: np.copy(v) for k, v in est._model.stream.items()},
        est.t_,
        list(est.loss_curve_),
    )
    with pytest.raises(ValueError, match=match):
        est.predict_partial_fit(X, y)
    for name, value in before[0].items():
        np.testing.assert_array_equal(est.params_[name], value)
    for name, value in before[1].items():
        np.testing.assert_array_equal(est._model.stream[name], value)
    assert (est.t_, est.loss_curve_) == (before[2], before[3])


@pytest.mark.parametrize(
    "Estimator, settings",
    [
        (RTRLRegressor, {}),
        (RTRLClassifier, {}),
        # The fed-back value is part of the state a forward pass starts from.
        (RTRLRegressor, {"output_feedback": True}),
        (RTRLRegressor, {"cell": "lstm"}),
    ],
)
def test_a_diverging_block_returns_the_restored_models_predictions(Estimator, settings):
    # A step size this large makes the block diverge part-way; the block is
    # undone, and what it returns must be what the restored model predicts
    # from the state the block began in, not the diverged run's NaN.
    rng = np.random.RandomState(5)
    X = rng.normal(size=(400, 2)) * 50
    y = X[:, 0] * 1e3 if Estimator is RTRLRegressor else (X[:, 0] > 0).astype(int)
    est = Estimator(8, cell="elman", activation="relu", stateful=True,
                    learning_rate_init=1e3, solver="sgd", clip_norm=None,
                    random_state=0)  # fmt: skip
    est.set_params(**settings)
    classes = {} if Estimator is RTRLRegressor else {"classes": [0, 1]}
    est.partial_fit(X[:20], y[:20], **classes)
    before = copy.deepcopy(est)
    method = (
        "predict_partial_fit"
        if Estimator is RTRLRegressor
        else "predict_proba_partial_fit"
    )
    with pytest.warns(ConvergenceWarning, match="diverged"):
        got = getattr(est, method)(X[20:], y[20:])
    expected = (
        before.predict(X[20:])
        if Estimator is RTRLRegressor
        else before.predict_proba(X[20:])
    )
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    for name, value in before.params_.items():
        np.testing.assert_array_equal(est.params_[name], value)
