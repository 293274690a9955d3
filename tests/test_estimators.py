"""Behaviour of the public API of RTRLRegressor and RTRLClassifier.

Input validation (with messages that name the problem), failed calls that
leave a fitted model untouched, incremental training, the editable
``params_``, the classifier's probabilities and the regressor's output
shapes, sample weights, and the scikit-learn tooling (pipelines, grid search,
cloning, pickling, the HTML repr).
"""

import copy
import pickle
import re
import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted

from skrtrl import RTRLClassifier, RTRLRegressor

# The models here train for a few epochs only, on purpose.
pytestmark = pytest.mark.usefixtures("quiet_convergence")


RNG = np.random.RandomState(0)
X2 = RNG.normal(size=(12, 6))  # 12 univariate sequences of 6 steps
Y_REG = RNG.normal(size=12)
Y_CLF = np.arange(12) % 3
X3 = RNG.normal(size=(12, 5, 2))  # 12 sequences of 5 steps, 2 features
X_LIST = [RNG.normal(size=(n, 2)) for n in (3, 7, 1, 5, 4, 6, 2, 8)]
Y_LIST = RNG.normal(size=len(X_LIST))


def small(estimator_class, **params):
    """Four units; for the regressor the Elman cell, whose ``params_``
    shapes (a square ``weight_hh``) these tests spell out."""
    cell = {"cell": "elman"} if estimator_class is RTRLRegressor else {}
    params = {"max_iter": 3, "random_state": 0, **cell, **params}
    return estimator_class(4, **params)


@pytest.fixture(scope="module")
def fitted_models():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return {
            "regressor": small(RTRLRegressor).fit(X2, Y_REG),
            "classifier": small(RTRLClassifier).fit(X2, Y_CLF),
            "regressor_3d": small(RTRLRegressor).fit(X3, Y_REG),
            "regressor_list": small(RTRLRegressor).fit(X_LIST, Y_LIST),
        }


@pytest.fixture
def fitted(fitted_models):
    """A fresh deep copy of one of the fitted models, by name."""
    return lambda name: copy.deepcopy(fitted_models[name])


def exact_sgd(estimator_class, **params):
    """A model whose epoch on one minibatch is exactly ``-lr * gradient``."""
    params = {
        "solver": "sgd",
        "momentum": 0.0,
        "learning_rate_init": 0.1,
        "clip_norm": None,
        "shuffle": False,
        "batch_size": "auto",  # min(32, n_sequences): one minibatch here
        "random_state": 0,
        **params,
    }
    return estimator_class(4, **params)


def with_value(X, value):
    X = X.copy()
    X[1, 2] = value
    return X


def with_nan(X):
    return with_value(X, np.nan)


def with_inf(X):
    return with_value(X, np.inf)


# -- input validation ----------------------------------------------------------

FRESH_FIT_ERRORS = [
    ("nan", lambda: RTRLRegressor(4).fit(with_nan(X2), Y_REG), ValueError, "NaN"),
    (
        "nan in a list",
        lambda: RTRLRegressor(4).fit(
            [np.ones((3, 1)), np.array([[1.0], [np.nan]])], [1, 2]
        ),
        ValueError,
        "sequence 1 contains NaN",
    ),
    ("inf", lambda: RTRLRegressor(4).fit(with_inf(X2), Y_REG), ValueError, "infinity"),
    (
        "inf in y",
        lambda: RTRLRegressor(4).fit(X2, np.where(np.arange(12) == 1, np.inf, Y_REG)),
        ValueError,
        "infinity",
    ),
    (
        "empty list",
        lambda: RTRLRegressor(4).fit([], []),
        ValueError,
        "at least one sequence",
    ),
    (
        "zero-length sequence",
        lambda: RTRLRegressor(4).fit([np.ones((3, 2)), np.ones((0, 2))], [1, 2]),
        ValueError,
        "Sequence 1 has no time steps",
    ),
    (
        "zero sequences",
        lambda: RTRLRegressor(4).fit(np.ones((0, 5)), np.ones(0)),
        ValueError,
        "0 sample",
    ),
    (
        "X/y length mismatch",
        lambda: RTRLRegressor(4).fit(X2, Y_REG[:-1]),
        ValueError,
        r"X has 12 sequences, y has 11 targets",
    ),
    (
        "complex X",
        lambda: RTRLRegressor(4).fit(X2 + 1j, Y_REG),
        ValueError,
        "Complex data not supported",
    ),
    (
        "complex sequence in a list",
        lambda: RTRLRegressor(4).fit([np.ones((3, 1)) + 1j, np.ones((2, 1))], [1, 2]),
        ValueError,
        "Complex data not supported",
    ),
    (
        "complex y",
        lambda: RTRLRegressor(4).fit(X2, Y_REG + 1j),
        ValueError,
        "Complex data not supported",
    ),
    (
        "3D array inside a list",
        lambda: RTRLRegressor(4).fit([np.ones((3, 2)), np.ones((2, 3, 2))], [1, 2]),
        ValueError,
        r"Sequence 1 must be a 2D array .* got 3 dimensions",
    ),
    (
        "list holding one 3D array",
        lambda: RTRLRegressor(4).fit([np.ones((2, 3, 2))], [1, 2]),
        ValueError,
        "dim 4",
    ),
    (
        "sequences with different feature counts",
        lambda: RTRLRegressor(4).fit([np.ones((3, 2)), np.ones((4, 3))], [1, 2]),
        ValueError,
        "same number of features: sequence 0 has 2, sequence 1 has 3",
    ),
    ("X None", lambda: RTRLRegressor(4).fit(None, Y_REG), ValueError, "got None"),
    ("y None", lambda: RTRLRegressor(4).fit(X2, None), ValueError, "y is None"),
    (
        "classifier y None",
        lambda: RTRLClassifier(4).fit(X2, None),
        ValueError,
        "y is None",
    ),
    (
        "per-step targets with output='last'",
        lambda: RTRLRegressor(4).fit(X_LIST, [np.ones((len(x), 1)) for x in X_LIST]),
        ValueError,
        "one target per sequence",
    ),
    (
        "per-step y of the wrong length (list)",
        lambda: RTRLRegressor(4, output="sequence").fit(
            [np.ones((3, 1)), np.ones((2, 1))], [np.ones(3), np.ones(3)]
        ),
        ValueError,
        r"y\[1\] must have one target per time step: sequence 1 has 2 steps",
    ),
    (
        "per-step y of the wrong number of sequences",
        lambda: RTRLRegressor(4, output="sequence").fit(
            X_LIST, [np.ones(len(x)) for x in X_LIST[:-1]]
        ),
        ValueError,
        "X has 8 sequences but y has 7",
    ),
    (
        "per-step y of the wrong shape (array)",
        lambda: RTRLRegressor(4, output="sequence").fit(X2, Y_REG),
        ValueError,
        r"one target per time step, shape \(12, 6\)",
    ),
    (
        "per-step y too short (array)",
        lambda: RTRLRegressor(4, output="sequence").fit(X3, np.ones((12, 4))),
        ValueError,
        r"got \(12, 4\)",
    ),
    (
        "per-step y not a list for list X",
        lambda: RTRLRegressor(4, output="sequence").fit(X_LIST, np.ones((8, 3))),
        ValueError,
        "must be a list of per-step target arrays",
    ),
    (
        "non-numeric regression targets",
        lambda: RTRLRegressor(4).fit(X2, np.array(["a"] * 12)),
        ValueError,
        "numeric targets",
    ),
    (
        "continuous classification targets",
        lambda: RTRLClassifier(4).fit(X2, Y_REG),
        ValueError,
        "Unknown label type",
    ),
    (
        "a single class",
        lambda: RTRLClassifier(4).fit(X2, np.zeros(12)),
        ValueError,
        "at least 2 classes",
    ),
    (
        "classes missing on the first partial_fit",
        lambda: RTRLClassifier(4).partial_fit(X2, Y_CLF),
        ValueError,
        "classes must be passed on the first call",
    ),
    (
        "labels outside classes on the first partial_fit",
        lambda: RTRLClassifier(4).partial_fit(X2, Y_CLF, classes=[0, 1]),
        ValueError,
        r"labels not seen in classes_.*\[2\]",
    ),
    (
        "negative sample_weight",
        lambda: RTRLRegressor(4).fit(X2, Y_REG, sample_weight=-np.ones(12)),
        ValueError,
        "Negative values in data passed to `sample_weight`",
    ),
    (
        "all-zero sample_weight",
        lambda: RTRLRegressor(4).fit(X2, Y_REG, sample_weight=np.zeros(12)),
        ValueError,
        "at least one non-zero",
    ),
    (
        "sample_weight of the wrong length",
        lambda: RTRLRegressor(4).fit(X2, Y_REG, sample_weight=np.ones(5)),
        ValueError,
        r"sample_weight.shape == \(5,\), expected \(12,\)",
    ),
]


@pytest.mark.parametrize(
    "call, error, match",
    [case[1:] for case in FRESH_FIT_ERRORS],
    ids=[case[0] for case in FRESH_FIT_ERRORS],
)
def test_bad_training_input_raises_a_message_naming_the_problem(call, error, match):
    with pytest.raises(error, match=match):
        call()


FITTED_CALL_ERRORS = [
    (
        "2D with the wrong number of columns",
        "regressor",
        lambda est: est.predict(X2[:, :4]),
        "X has 4 features, but RTRLRegressor is expecting 6 features",
    ),
    (
        "3D with the wrong number of features per step",
        "regressor_3d",
        lambda est: est.predict(np.ones((2, 5, 3))),
        "X has 3 features per time step, but RTRLRegressor is expecting 2",
    ),
    (
        "list with the wrong number of features per step",
        "regressor_list",
        lambda est: est.predict([np.ones((3, 1)), np.ones((4, 1))]),
        "X has 1 features per time step, but RTRLRegressor is expecting 2",
    ),
    (
        "univariate 2D for a multivariate model",
        "regressor_3d",
        lambda est: est.predict(X2),
        "X has 1 features per time step, but RTRLRegressor is expecting 2",
    ),
    ("NaN at predict", "regressor", lambda est: est.predict(with_nan(X2)), "NaN"),
    (
        "unknown labels in partial_fit",
        "classifier",
        lambda est: est.partial_fit(X2, np.where(Y_CLF == 2, 7, Y_CLF)),
        r"labels not seen in classes_.*\[7\]",
    ),
    (
        "other classes in partial_fit",
        "classifier",
        lambda est: est.partial_fit(X2, Y_CLF, classes=[0, 1, 2, 3]),
        "not the same as on the first call",
    ),
    (
        "other number of outputs in partial_fit",
        "regressor",
        lambda est: est.partial_fit(X2, np.ones((12, 3))),
        "y has 3 outputs, but the model was fitted with 1",
    ),
]


@pytest.mark.parametrize(
    "model, call, match",
    [case[1:] for case in FITTED_CALL_ERRORS],
    ids=[case[0] for case in FITTED_CALL_ERRORS],
)
def test_bad_input_to_a_fitted_model_raises_a_message_naming_the_problem(
    fitted, model, call, match
):
    with pytest.raises(ValueError, match=match):
        call(fitted(model))


@pytest.mark.parametrize(
    "params, name",
    [
        ({"cell": "transformer"}, "cell"),
        ({"activation": "foo"}, "activation"),
        ({"n_hidden": 0}, "n_hidden"),
        ({"output": "x"}, "output"),
        ({"solver": "lbfgs"}, "solver"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate_init": 0.0}, "learning_rate_init"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
    ],
)
@pytest.mark.parametrize("estimator_class", [RTRLRegressor, RTRLClassifier])
def test_invalid_hyperparameters_raise_at_fit(estimator_class, params, name):
    est = estimator_class(**params)  # constructing never validates
    y = Y_REG if estimator_class is RTRLRegressor else Y_CLF
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
        est.fit(X2, y)
    assert issubclass(InvalidParameterError, ValueError)


# -- a failed call changes nothing ---------------------------------------------

FITTED_ATTRIBUTES = (
    "params_",
    "n_iter_",
    "t_",
    "loss_",
    "loss_curve_",
    "best_loss_",
    "n_features_in_",
    "n_outputs_",
    "classes_",
)


def snapshot(est):
    return {
        name: copy.deepcopy(getattr(est, name))
        for name in FITTED_ATTRIBUTES
        if hasattr(est, name)
    }


def assert_unchanged(est, before):
    after = snapshot(est)
    assert after.keys() == before.keys()
    for name, value in before.items():
        if name == "params_":
            assert after[name].keys() == value.keys()
            for key in value:
                np.testing.assert_array_equal(after[name][key], value[key])
        elif isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[name], value)
        else:
            assert after[name] == value, name


def refit_with(**params):
    def call(est):
        return est.set_params(**params)

    return call


FAILING_CALLS = [
    ("fit: NaN", "regressor", lambda est: est.fit(with_nan(X2), Y_REG)),
    (
        "fit: new feature count, bad y",
        "regressor",
        lambda est: est.fit(X2[:, :4], Y_REG[:5]),
    ),
    (
        "fit: new output count, bad sample_weight",
        "regressor",
        lambda est: est.fit(X2, np.ones((12, 3)), sample_weight=np.ones(3)),
    ),
    (
        "fit: new input form, bad per-step y",
        "regressor",
        lambda est: est.set_params(output="sequence").fit(X_LIST, Y_LIST),
    ),
    (
        "fit: validation set too small",
        "regressor",
        lambda est: est.set_params(early_stopping=True).fit(X2[:5], Y_REG[:5]),
    ),
    (
        "fit: warm start with new features",
        "regressor",
        lambda est: est.set_params(warm_start=True).fit(X3, Y_REG),
    ),
    (
        "fit: new labels, bad sample_weight",
        "classifier",
        lambda est: est.fit(X2, np.array(list("ab") * 6), sample_weight=[1, 2]),
    ),
    ("fit: one class", "classifier", lambda est: est.fit(X2, np.ones(12))),
    (
        "partial_fit: NaN in y",
        "regressor",
        lambda est: est.partial_fit(X2, Y_REG * np.nan),
    ),
    (
        "partial_fit: wrong features",
        "regressor_list",
        lambda est: est.partial_fit(X3[:, :, :1], Y_REG),
    ),
    (
        "partial_fit: unknown label",
        "classifier",
        lambda est: est.partial_fit(X2, Y_CLF + 1),
    ),
    (
        "partial_fit: other classes",
        "classifier",
        lambda est: est.partial_fit(X2, Y_CLF, classes=["x", "y"]),
    ),
    ("predict: wrong columns", "regressor", lambda est: est.predict(X2[:, 1:])),
    ("predict: inf", "regressor_3d", lambda est: est.predict(with_inf(X3))),
    (
        "predict_proba: wrong columns",
        "classifier",
        lambda est: est.predict_proba(X2[:, 1:]),
    ),
    (
        "loss_gradient: bad y",
        "classifier",
        lambda est: est.loss_gradient(X2, Y_CLF + 5),
    ),
]


@pytest.mark.parametrize(
    "model, call",
    [case[1:] for case in FAILING_CALLS],
    ids=[case[0] for case in FAILING_CALLS],
)
def test_a_failed_call_leaves_a_fitted_model_as_it_was(fitted, model, call):
    est = fitted(model)
    X = {"regressor_3d": X3, "regressor_list": X_LIST}.get(model, X2)
    prediction = est.predict(X)
    before = snapshot(est)
    params = est.get_params()
    with pytest.raises(ValueError):
        call(est)
    assert_unchanged(est, before)
    # The model still works, with the hyperparameters it was fitted with.
    est.set_params(**params)
    np.testing.assert_array_equal(est.predict(X), prediction)


def test_a_failed_first_call_leaves_the_model_unfitted():
    clf = RTRLClassifier(4)
    with pytest.raises(ValueError, match="labels not seen"):
        clf.partial_fit(X2, Y_CLF, classes=[0, 1])
    # The validation split comes after the weights are initialised.
    reg = RTRLRegressor(4, early_stopping=True)
    with pytest.raises(ValueError, match="validation set is too small"):
        reg.fit(X2[:5], Y_REG[:5])
    for est in (clf, reg):
        with pytest.raises(NotFittedError):
            check_is_fitted(est)
        for name in ("n_features_in_", "classes_", "params_", "n_iter_"):
            assert not hasattr(est, name), name


# -- partial_fit, warm_start ----------------------------------------------------


def test_partial_fit_runs_one_epoch_per_call():
    reg = small(RTRLRegressor)
    n_steps = sum(len(x) for x in X_LIST)
    reg.partial_fit(X_LIST, Y_LIST)
    assert (reg.n_iter_, reg.t_, len(reg.loss_curve_)) == (1, n_steps, 1)
    reg.partial_fit(X_LIST[:3], Y_LIST[:3])
    assert reg.n_iter_ == 2
    assert reg.t_ == n_steps + sum(len(x) for x in X_LIST[:3])
    assert len(reg.loss_curve_) == 2


@pytest.mark.parametrize("output", ["last", "sequence"])
def test_partial_fit_takes_one_gradient_step_from_the_current_weights(output):
    # With plain SGD on a single minibatch, one partial_fit moves the weights
    # by exactly -learning_rate * gradient at the weights it started from.
    rng = np.random.RandomState(1)
    y = Y_LIST if output == "last" else [rng.normal(size=len(x)) for x in X_LIST]
    reg = exact_sgd(RTRLRegressor, output=output).partial_fit(X_LIST, y)
    for _ in range(2):
        start = {k: v.copy() for k, v in reg.params_.items()}
        loss, grad = reg.loss_gradient(X_LIST, y)
        reg.partial_fit(X_LIST, y)
        assert reg.loss_ == pytest.approx(loss, rel=1e-12)
        for name, value in reg.params_.items():
            np.testing.assert_allclose(
                value, start[name] - 0.1 * grad[name], rtol=1e-12, atol=1e-14
            )


def test_partial_fit_checks_classes_and_keeps_them():
    clf = small(RTRLClassifier)
    clf.partial_fit(X2[:4], Y_CLF[:4], classes=[2, 0, 1, 0])
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    # Later calls may omit classes, or repeat them in any order.
    clf.partial_fit(X2[4:8], Y_CLF[4:8])
    clf.partial_fit(X2[8:], Y_CLF[8:], classes=[1, 2, 0])
    assert clf.n_iter_ == 3
    assert clf.predict_proba(X2).shape == (12, 3)
    with pytest.raises(ValueError, match="not the same as on the first call"):
        clf.partial_fit(X2, Y_CLF, classes=[0, 1])


def test_partial_fit_after_fit_continues_from_the_fitted_weights():
    reg = exact_sgd(RTRLRegressor, max_iter=4).fit(X2, Y_REG)
    assert reg.n_iter_ == 4
    start = {k: v.copy() for k, v in reg.params_.items()}
    _, grad = reg.loss_gradient(X2, Y_REG)
    reg.partial_fit(X2, Y_REG)
    assert reg.n_iter_ == 5
    assert len(reg.loss_curve_) == 5
    for name in start:
        np.testing.assert_allclose(
            reg.params_[name], start[name] - 0.1 * grad[name], rtol=1e-12
        )


def test_warm_start_continues_and_cold_start_starts_over():
    warm = small(RTRLRegressor, warm_start=True, learning_rate_init=0.01)
    warm.fit(X2, Y_REG)
    first_curve = list(warm.loss_curve_)
    warm.fit(X2, Y_REG)
    assert warm.n_iter_ == 6
    assert warm.loss_curve_[:3] == first_curve
    assert warm.loss_curve_[3] < first_curve[0]

    cold = small(RTRLRegressor, learning_rate_init=0.01).fit(X2, Y_REG)
    cold.fit(X2, Y_REG)
    assert cold.n_iter_ == 3
    assert cold.loss_curve_ == first_curve


def test_warm_start_fit_steps_from_the_previous_weights():
    reg = exact_sgd(RTRLRegressor, max_iter=2).fit(X3, Y_REG)
    start = {k: v.copy() for k, v in reg.params_.items()}
    _, grad = reg.loss_gradient(X3, Y_REG)
    reg.set_params(warm_start=True, max_iter=1).fit(X3, Y_REG)
    for name in start:
        np.testing.assert_allclose(
            reg.params_[name], start[name] - 0.1 * grad[name], rtol=1e-12
        )


# -- params_ is the model ---------------------------------------------------------


def test_editing_params_in_place_changes_predictions():
    reg = small(RTRLRegressor).fit(X_LIST, Y_LIST)
    before = reg.predict(X_LIST)
    reg.params_["weight_hh"][...] = 0.0
    after = reg.predict(X_LIST)
    assert not np.allclose(before, after)
    # A one-step sequence never sees weight_hh (the state starts at zero).
    assert after[2] == pytest.approx(before[2], rel=1e-12)
    reg.params_["weight_out"][...] = 0.0
    np.testing.assert_allclose(reg.predict(X_LIST), reg.params_["bias_out"][0])


def test_edited_and_replaced_params_are_where_the_next_partial_fit_starts():
    reg = exact_sgd(RTRLRegressor).partial_fit(X3, Y_REG)
    reg.params_["weight_hh"][...] = 0.0
    reg.params_["bias_out"] = reg.params_["bias_out"] + 1.0
    start = {k: v.copy() for k, v in reg.params_.items()}
    _, grad = reg.loss_gradient(X3, Y_REG)
    reg.partial_fit(X3, Y_REG)
    for name in start:
        np.testing.assert_allclose(
            reg.params_[name], start[name] - 0.1 * grad[name], rtol=1e-12
        )


def test_replacing_an_entry_of_params_takes_effect():
    reg = small(RTRLRegressor).fit(X2, Y_REG)
    before = reg.predict(X2)
    reg.params_["bias_out"] = reg.params_["bias_out"] + 2.5
    np.testing.assert_allclose(reg.predict(X2), before + 2.5)
    # The replacement was copied into the model, and params_ holds views
    # again: editing in place works as before.
    reg.params_["bias_out"][...] -= 2.5
    np.testing.assert_allclose(reg.predict(X2), before)


def test_replacing_an_entry_with_a_view_of_itself_takes_effect():
    # A transposed view shares memory with the parameters but is new content.
    reg = small(RTRLRegressor).fit(X2, Y_REG)
    weight_hh = reg.params_["weight_hh"].copy()
    expected = clone(reg).fit(X2, Y_REG)
    expected.params_["weight_hh"][...] = weight_hh.T
    reg.params_["weight_hh"] = reg.params_["weight_hh"].T
    np.testing.assert_array_equal(reg.predict(X2), expected.predict(X2))
    np.testing.assert_array_equal(reg.params_["weight_hh"], weight_hh.T)


def test_replacing_an_entry_of_params_with_a_wrong_shape_raises():
    reg = small(RTRLRegressor).fit(X2, Y_REG)
    reg.params_["bias_out"] = np.zeros(3)
    message = re.escape("params_['bias_out'] has shape (3,), expected (1,)")
    with pytest.raises(ValueError, match=message):
        reg.predict(X2)
    with pytest.raises(ValueError, match=message):
        reg.partial_fit(X2, Y_REG)
    reg.params_["bias_out"] = np.zeros(1)
    assert reg.predict(X2).shape == (12,)


def test_a_rejected_replacement_changes_nothing():
    reg = small(RTRLRegressor).fit(X2, Y_REG)
    before = reg.predict(X2)
    bias_out = reg.params_["bias_out"].copy()
    reg.params_["weight_ih"] = np.zeros((4, 1))  # fine on its own
    reg.params_["bias_out"] = np.zeros(3)  # the wrong shape: (1,)
    with pytest.raises(ValueError, match="bias_out"):
        reg.predict(X2)
    reg.params_["bias_out"] = bias_out
    del reg.params_["weight_ih"]  # restored from the model, never taken in
    np.testing.assert_array_equal(reg.predict(X2), before)


def test_loss_gradient_has_the_names_shapes_and_dtypes_of_params():
    for est, X, y in [
        (small(RTRLRegressor).fit(X3, np.ones((12, 3))), X3, np.ones((12, 3))),
        (small(RTRLClassifier).fit(X2, Y_CLF), X2, Y_CLF),
    ]:
        loss, grad = est.loss_gradient(X, y)
        assert np.isfinite(loss) and loss > 0
        assert list(grad) == list(est.params_)
        for name, value in est.params_.items():
            assert grad[name].shape == value.shape, name
            assert grad[name].dtype == value.dtype, name
    n_features = X3.shape[2]
    shapes = {
        k: v.shape for k, v in small(RTRLRegressor).fit(X3, Y_REG).params_.items()
    }
    assert shapes == {
        "weight_ih": (4, n_features),
        "weight_hh": (4, 4),
        "bias_ih": (4,),
        "bias_hh": (4,),
        "weight_out": (1, 4),
        "bias_out": (1,),
    }


# -- classifier ---------------------------------------------------------------------


@pytest.mark.parametrize("n_classes", [2, 4])
def test_classifier_probabilities(n_classes):
    y = np.arange(12) % n_classes
    clf = small(RTRLClassifier).fit(X2, y)
    proba = clf.predict_proba(X2)
    assert proba.shape == (12, n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all((proba > 0) & (proba < 1))
    np.testing.assert_allclose(clf.predict_log_proba(X2), np.log(proba), rtol=1e-10)
    np.testing.assert_array_equal(clf.predict(X2), clf.classes_[proba.argmax(axis=1)])

    scores = clf.decision_function(X2)
    if n_classes == 2:
        assert scores.shape == (12,)
        np.testing.assert_array_equal(clf.predict(X2), clf.classes_[(scores > 0) * 1])
    else:
        assert scores.shape == (12, n_classes)
        np.testing.assert_array_equal(scores.argmax(axis=1), proba.argmax(axis=1))


def test_classifier_with_string_labels():
    labels = np.array(["cat", "dog", "eel"])[Y_CLF]
    clf = small(RTRLClassifier).fit(X_LIST, labels[: len(X_LIST)])
    np.testing.assert_array_equal(clf.classes_, ["cat", "dog", "eel"])
    pred = clf.predict(X_LIST)
    assert pred.dtype == labels.dtype
    assert set(pred) <= {"cat", "dog", "eel"}
    assert 0 <= clf.score(X_LIST, labels[: len(X_LIST)]) <= 1


def test_per_step_classifier_with_string_labels():
    y = [np.array(["up", "down"])[np.arange(len(x)) % 2] for x in X_LIST]
    clf = small(RTRLClassifier, output="sequence").fit(X_LIST, y)
    np.testing.assert_array_equal(clf.classes_, ["down", "up"])
    pred = clf.predict(X_LIST)
    assert all(
        p.shape == (len(x),) and set(p) <= {"up", "down"} for p, x in zip(pred, X_LIST)
    )
    assert clf.decision_function(X_LIST)[0].shape == (len(X_LIST[0]),)


# -- regressor ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "y_shape, pred_shape",
    [((12,), (12,)), ((12, 1), (12, 1)), ((12, 3), (12, 3))],
)
def test_regressor_predictions_have_the_shape_of_y(y_shape, pred_shape):
    y = np.random.RandomState(2).normal(size=y_shape)
    reg = small(RTRLRegressor).fit(X2, y)
    assert reg.n_outputs_ == (1 if len(y_shape) == 1 else y_shape[1])
    assert reg.predict(X2).shape == pred_shape
    assert reg.predict(X2[:1]).shape == (1, *pred_shape[1:])
    assert np.isfinite(reg.score(X2, y))


# -- sample weights -----------------------------------------------------------------


@pytest.mark.parametrize("output", ["last", "sequence"])
def test_zero_weight_is_the_same_as_leaving_the_sequence_out(output):
    rng = np.random.RandomState(3)
    y = Y_LIST if output == "last" else [rng.normal(size=len(x)) for x in X_LIST]
    reg = small(RTRLRegressor, output=output, alpha=0.1).fit(X_LIST, y)
    weights = rng.uniform(0.5, 2.0, size=len(X_LIST))
    weights[3] = 0.0
    keep = [i for i in range(len(X_LIST)) if i != 3]
    loss, grad = reg.loss_gradient(X_LIST, y, sample_weight=weights)
    loss_without, grad_without = reg.loss_gradient(
        [X_LIST[i] for i in keep],
        (y[keep] if output == "last" else [y[i] for i in keep]),
        sample_weight=weights[keep],
    )
    assert loss == pytest.approx(loss_without, rel=1e-12)
    for name in grad:
        np.testing.assert_allclose(
            grad[name], grad_without[name], rtol=1e-10, atol=1e-15
        )


def test_a_weight_of_two_is_the_same_as_repeating_the_sequence():
    clf = small(RTRLClassifier, alpha=0.1).fit(X_LIST, Y_CLF[: len(X_LIST)])
    y = Y_CLF[: len(X_LIST)]
    weights = np.ones(len(X_LIST))
    weights[5] = 2.0
    loss, grad = clf.loss_gradient(X_LIST, y, sample_weight=weights)
    loss_repeated, grad_repeated = clf.loss_gradient(
        X_LIST + [X_LIST[5]], np.append(y, y[5])
    )
    assert loss == pytest.approx(loss_repeated, rel=1e-12)
    for name in grad:
        np.testing.assert_allclose(
            grad[name], grad_repeated[name], rtol=1e-10, atol=1e-15
        )


def test_unit_weights_are_the_same_as_no_weights():
    reg = small(RTRLRegressor, alpha=0.1).fit(X3, Y_REG)
    loss, grad = reg.loss_gradient(X3, Y_REG)
    loss_w, grad_w = reg.loss_gradient(X3, Y_REG, sample_weight=np.ones(12))
    assert loss == loss_w
    for name in grad:
        np.testing.assert_array_equal(grad[name], grad_w[name])


# -- monitoring -----------------------------------------------------------------------


def test_early_stopping_records_validation_scores():
    clf = small(
        RTRLClassifier, early_stopping=True, validation_fraction=0.25, max_iter=4
    )
    clf.fit(X2, Y_CLF)
    assert len(clf.validation_scores_) == clf.n_iter_ == 4
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.best_loss_ is None

    reg = small(RTRLRegressor)
    reg.fit(X2, Y_REG)
    assert reg.validation_scores_ is None and reg.best_validation_score_ is None
    assert reg.best_loss_ == min(reg.loss_curve_)


def test_verbose_prints_one_line_per_epoch(capsys):
    small(RTRLRegressor, verbose=1).fit(X2, Y_REG)
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    epoch_lines = [line for line in lines if "Iteration" in line]
    assert len(epoch_lines) == 3
    assert all("loss" in line for line in epoch_lines)

    small(RTRLRegressor).fit(X2, Y_REG)
    assert capsys.readouterr().out == ""


# -- scikit-learn tooling -----------------------------------------------------------


def test_pipeline_with_a_scaler_on_2d_input():
    pipe = make_pipeline(StandardScaler(), small(RTRLClassifier)).fit(X2, Y_CLF)
    assert pipe.predict(X2).shape == (12,)
    assert pipe.predict_proba(X2).shape == (12, 3)
    assert pipe[-1].n_features_in_ == 6


@pytest.mark.parametrize(
    "param_grid", [{"n_hidden": [3, 5]}, {"learning_rate_init": [0.01, 0.05]}]
)
def test_grid_search_in_parallel(param_grid):
    search = GridSearchCV(small(RTRLRegressor), param_grid, cv=2, n_jobs=2)
    search.fit(X2, Y_REG)
    ((name, values),) = param_grid.items()
    assert search.best_params_[name] in values
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.predict(X2).shape == (12,)


def test_clone_gives_an_unfitted_copy_with_the_same_hyperparameters():
    reg = small(RTRLRegressor, output="sequence", activation="relu")
    reg.fit(X3, np.ones((12, 5)))
    copy_ = clone(reg)
    assert copy_.get_params() == reg.get_params()
    assert not hasattr(copy_, "params_")
    with pytest.raises(NotFittedError):
        copy_.predict(X3)


@pytest.mark.parametrize("model", ["regressor_list", "classifier"])
def test_pickle_and_joblib_round_trips_predict_identically(fitted, model, tmp_path):
    est = fitted(model)
    X = X_LIST if model == "regressor_list" else X2
    expected = est.predict(X)
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    for restored in (pickle.loads(pickle.dumps(est)), joblib.load(path)):
        np.testing.assert_array_equal(restored.predict(X), expected)
        for name, value in est.params_.items():
            np.testing.assert_array_equal(restored.params_[name], value)
        # params_ are views into the restored model again, not copies.
        restored.params_["weight_out"][...] = 0.0
        restored.params_["bias_out"][...] = 0.0
        if model == "classifier":
            np.testing.assert_allclose(restored.predict_proba(X), 1 / 3)
        else:
            np.testing.assert_array_equal(restored.predict(X), 0.0)
        np.testing.assert_array_equal(est.predict(X), expected)


def test_a_restored_model_trains_on():
    reg = small(RTRLRegressor).fit(X2, Y_REG)
    restored = pickle.loads(pickle.dumps(reg))
    reg.partial_fit(X2, Y_REG)
    restored.partial_fit(X2, Y_REG)
    np.testing.assert_array_equal(restored.predict(X2), reg.predict(X2))
    assert restored.loss_curve_ == reg.loss_curve_


@pytest.mark.parametrize("estimator_class", [RTRLRegressor, RTRLClassifier])
def test_html_repr_links_to_the_skrtrl_docs(estimator_class):
    html = estimator_class(n_hidden=8)._repr_html_()
    links = re.findall(r'href="([^"]+)"', html)
    assert any("skrtrl" in link and estimator_class.__name__ in link for link in links)
