"""skrtrl.river: stream models as river estimators."""

import copy
import math
import os
import warnings

import numpy as np
import pytest
from river import checks, evaluate, metrics, preprocessing
from sklearn.exceptions import ConvergenceWarning

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl.datasets import make_mackey_glass
from skrtrl.river import RiverClassifier, RiverRegressor

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("SKRTRL_HYPOTHESIS_EXAMPLES", 60)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def river_checks():
    """(adapter class, check) for every check river runs on the adapter."""
    for cls in (RiverRegressor, RiverClassifier):
        for params in cls._unit_test_params():
            model = cls(**params)
            for check in checks.yield_checks(model):
                if check.__name__ not in model._unit_test_skips():
                    yield pytest.param(cls, params, check, id=f"{cls.__name__}-{check}")


def _check_id(value):
    return getattr(value, "__name__", None)


@pytest.mark.parametrize("cls, params, check", list(river_checks()), ids=_check_id)
def test_river_conventions(cls, params, check):
    check(cls(**copy.deepcopy(params)).clone())


def regressor(**params):
    params = {"n_hidden": 4, "stateful": True, "random_state": 0, **params}
    return RTRLRegressor(learning_rate_init=0.01, **params)


def classifier(**params):
    params = {"n_hidden": 4, "stateful": True, "random_state": 0, **params}
    return RTRLClassifier(learning_rate_init=0.01, **params)


def series_stream(n, seed=0):
    rng = np.random.RandomState(seed)
    a, b = rng.normal(size=(2, n))
    X = np.column_stack([a, b])
    y = a + 0.5 * np.roll(b, 1)
    return X, y


def as_dicts(X, names=("a", "b")):
    return [dict(zip(names, row.tolist())) for row in X]


def estimator_state(est):
    if not est.__sklearn_is_fitted__():
        return None
    return (
        {k: v.copy() for k, v in est.params_.items()},
        {k: np.copy(v) for k, v in est._model.stream.items()},
        est.t_,
        list(est.loss_curve_),
    )


def assert_same_estimator_state(a, b):
    assert (a is None) == (b is None)
    if a is None:
        return
    for part in (0, 1):
        for name in a[part]:
            np.testing.assert_array_equal(a[part][name], b[part][name], err_msg=name)
    assert a[2:] == b[2:]


#: Settings of a stream model (regressor or classifier) that the adapters
#: serve: the compiled step (Elman, GRU, SnAp-1) and the estimator's one-row
#: path (UORO, output feedback).
STREAM_VARIANTS = [
    {},
    {"cell": "gru"},
    {"gradient": "snap1"},
    {"gradient": "uoro"},
    {"output_feedback": True},
]


@pytest.mark.parametrize("variant", STREAM_VARIANTS, ids=repr)
def test_the_regressor_adapter_is_the_estimator_row_by_row(variant):
    X, y = series_stream(40)
    adapter = RiverRegressor(regressor(**variant))
    direct = regressor(**variant)
    for t, x in enumerate(as_dicts(X)):
        y_hat = adapter.predict_one(x)
        if t == 0:
            assert y_hat == 0.0  # nothing learnt yet
        else:
            assert y_hat == direct.predict(X[t : t + 1])[0]
        adapter.learn_one(x, y[t])
        direct.partial_fit(X[t : t + 1], y[t : t + 1])
    assert_same_estimator_state(
        estimator_state(adapter.estimator), estimator_state(direct)
    )


def test_the_classifier_adapter_encodes_any_labels():
    X, y = series_stream(40)
    labels = [None, "up", 3]  # no order among them: the adapter encodes
    codes = np.digitize(y, [-0.5, 0.5])
    adapter = RiverClassifier(classifier(), classes=labels)
    direct = classifier()
    assert adapter.predict_proba_one({"a": 0.0, "b": 0.0}) == dict.fromkeys(
        labels, 1 / 3
    )
    for t, x in enumerate(as_dicts(X)):
        if t:
            proba = adapter.predict_proba_one(x)
            assert list(proba) == labels
            np.testing.assert_array_equal(
                list(proba.values()), direct.predict_proba(X[t : t + 1])[0]
            )
            best = int(np.argmax(list(proba.values())))
            assert adapter.predict_one(x) == labels[best]
        adapter.learn_one(x, labels[codes[t]])
        direct.partial_fit(X[t : t + 1], codes[t : t + 1], classes=[0, 1, 2])
    assert_same_estimator_state(
        estimator_state(adapter.estimator), estimator_state(direct)
    )
    assert adapter._multiclass


def test_progressive_validation_in_a_pipeline_is_the_prequential_loop():
    series = make_mackey_glass(400, random_state=0)
    stream = [({"x": a}, b) for a, b in zip(series[:-1], series[1:])]
    model = preprocessing.StandardScaler() | RiverRegressor(regressor())
    mae = evaluate.progressive_val_score(stream, model, metrics.MAE())

    scaler, adapter = preprocessing.StandardScaler(), RiverRegressor(regressor())
    errors = []
    for x, y in stream:
        errors.append(abs(adapter.predict_one(scaler.transform_one(x)) - y))
        scaler.learn_one(x)
        adapter.learn_one(scaler.transform_one(x), y)
    assert mae.get() == pytest.approx(np.mean(errors), rel=1e-12)
    assert model["RiverRegressor"].estimator.t_ == len(stream)


def test_the_order_of_a_dicts_keys_does_not_matter():
    X, y = series_stream(20)
    forward, backward = RiverRegressor(regressor()), RiverRegressor(regressor())
    for t, x in enumerate(as_dicts(X)):
        reverse = dict(reversed(list(x.items())))
        assert forward.predict_one(x) == backward.predict_one(reverse)
        forward.learn_one(x, y[t])
        backward.learn_one(reverse, y[t])
    # Given explicitly, the order is the network's input order.
    swapped = RiverRegressor(regressor(), features=["b", "a"])
    direct = regressor()
    for t, x in enumerate(as_dicts(X)):
        swapped.learn_one(x, y[t])
        direct.partial_fit(X[t : t + 1, ::-1], y[t : t + 1])
    assert_same_estimator_state(
        estimator_state(swapped.estimator), estimator_state(direct)
    )


def test_extra_features_are_ignored():
    X, y = series_stream(10)
    adapter, twin = RiverRegressor(regressor()), RiverRegressor(regressor())
    for t, x in enumerate(as_dicts(X)):
        adapter.learn_one({**x, "new": 5.0}, y[t]) if t else adapter.learn_one(x, y[t])
        twin.learn_one(x, y[t])
    assert_same_estimator_state(
        estimator_state(adapter.estimator), estimator_state(twin.estimator)
    )


def test_clone_starts_afresh_and_a_fitted_estimator_is_trained_on():
    X, y = series_stream(30)
    est = regressor().partial_fit(X[:20], y[:20])
    adapter = RiverRegressor(est)
    assert (
        adapter.predict_one({"a": X[20, 0], "b": X[20, 1]}) == est.predict(X[20:21])[0]
    )
    adapter.learn_one({"a": X[20, 0], "b": X[20, 1]}, y[20])
    assert est.t_ == 21  # the estimator itself learns
    fresh = adapter.clone()
    assert not fresh.estimator.__sklearn_is_fitted__()
    assert fresh.estimator.get_params() == est.get_params()


@pytest.mark.parametrize(
    "make, match, error",
    [
        (lambda: RiverRegressor(regressor(stateful=False)), "stateful", ValueError),
        (lambda: RiverRegressor(classifier()), "wraps an RTRLReg", TypeError),
        (lambda: RiverClassifier(classifier(), classes=[1]), "two", ValueError),
        (lambda: RiverClassifier(classifier(), classes=[1, 1]), "once", ValueError),
        (lambda: RiverClassifier(classifier(), classes=[[1], 2]), "hashab", TypeError),
    ],
)
def test_bad_adapters_are_refused(make, match, error):
    with pytest.raises(error, match=match):
        make()


def test_a_regressor_of_two_outputs_is_refused():
    X, y = series_stream(10)
    est = regressor().partial_fit(X, np.column_stack([y, y]))
    with pytest.raises(ValueError, match="one output"):
        RiverRegressor(est)


def test_a_classifier_fitted_on_other_labels_is_refused():
    X, y = series_stream(10)
    est = classifier().partial_fit(X, np.where(y > 0, "p", "n"), classes=["n", "p"])
    with pytest.raises(ValueError, match="fitted on the labels"):
        RiverClassifier(est, classes=["n", "p"])


BAD_SAMPLES = {
    "missing feature": ({"a": 1.0}, 0.5, ValueError, "no feature 'b'"),
    "NaN feature": ({"a": math.nan, "b": 1.0}, 0.5, ValueError, r"\['a'\].*finite"),
    "infinite feature": ({"a": 1.0, "b": math.inf}, 0.5, ValueError, "not finite"),
    "text feature": ({"a": "x", "b": 1.0}, 0.5, ValueError, "real number"),
    "None feature": ({"a": None, "b": 1.0}, 0.5, ValueError, r"got \[None\]"),
    "not a dict": ([1.0, 2.0], 0.5, TypeError, "dict of features"),
    "NaN target": ({"a": 1.0, "b": 1.0}, math.nan, ValueError, "finite"),
    "text target": ({"a": 1.0, "b": 1.0}, "x", ValueError, "real number"),
}


@pytest.mark.parametrize("case", list(BAD_SAMPLES))
@pytest.mark.parametrize("fitted", [False, True])
def test_bad_samples_are_refused_and_change_nothing(case, fitted):
    x, y, error, match = BAD_SAMPLES[case]
    adapter = RiverRegressor(regressor())
    if fitted:
        X, Y = series_stream(10)
        for t, sample in enumerate(as_dicts(X)):
            adapter.learn_one(sample, Y[t])
    elif case == "missing feature":
        adapter.learn_one({"a": 0.0, "b": 0.0}, 0.0)
    before = estimator_state(adapter.estimator)
    names = adapter._names
    with pytest.raises(error, match=match):
        adapter.learn_one(x, y)
    if "target" not in case:
        with pytest.raises(error, match=match):
            adapter.predict_one(x)
    assert_same_estimator_state(before, estimator_state(adapter.estimator))
    assert adapter._names == names


@pytest.mark.parametrize("label", ["c", None, 2, [0]])
def test_unknown_labels_are_refused_and_change_nothing(label):
    adapter = RiverClassifier(classifier(), classes=["a", "b"])
    adapter.learn_one({"v": 1.0}, "a")
    before = estimator_state(adapter.estimator)
    with pytest.raises(ValueError, match="not one of the classes"):
        adapter.learn_one({"v": 1.0}, label)
    assert_same_estimator_state(before, estimator_state(adapter.estimator))


# -- property ------------------------------------------------------------------
NAMES = ["a", "b", "c"]
VALUES = st.one_of(
    st.floats(-1e3, 1e3),
    st.integers(-5, 5),
    st.booleans(),
    st.sampled_from([math.nan, math.inf, None, "x", "1.5", 1e308]),
)


@st.composite
def samples(draw, classify):
    keys = draw(st.lists(st.sampled_from(NAMES), unique=True, min_size=1))
    x = {key: draw(VALUES) for key in keys}
    if classify:
        y = draw(st.sampled_from(["a", "b", "c", None, 0]))
    else:
        y = draw(st.one_of(st.floats(-10, 10), st.sampled_from([math.nan, "y"])))
    return x, y


def row_of(x, names):
    """The row the estimator would see, or None if ``x`` cannot be one."""
    try:
        row = np.array([[x[name] for name in names]], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        return None
    return row if np.isfinite(row).all() else None


@pytest.mark.parametrize("classify", [False, True])
@PROPERTY_SETTINGS
@given(data=st.data())
def test_any_sample_is_learnt_as_its_row_or_refused(classify, data):
    if classify:
        adapter = RiverClassifier(classifier(), classes=["a", "b"])
        adapter.learn_one({"a": 0.0, "b": 1.0}, "a")
    else:
        adapter = RiverRegressor(regressor())
        adapter.learn_one({"a": 0.0, "b": 1.0}, 0.0)
    twin = copy.deepcopy(adapter.estimator)
    x, y = data.draw(samples(classify), label="sample")
    method = data.draw(st.sampled_from(["learn", "predict"]), label="method")
    before = estimator_state(adapter.estimator)

    row = row_of(x, ("a", "b"))
    target = {"a": 0, "b": 1}.get(y) if classify else y
    valid_target = target is not None and (
        classify or (isinstance(y, float) and math.isfinite(y))
    )
    try:
        if method == "learn":
            adapter.learn_one(x, y)
        elif classify:
            result = adapter.predict_proba_one(x)
        else:
            result = adapter.predict_one(x)
    except (ValueError, TypeError) as error:
        assert row is None or (method == "learn" and not valid_target), error
        assert_same_estimator_state(before, estimator_state(adapter.estimator))
        return
    assert row is not None
    if method == "learn":
        assert valid_target
        twin.partial_fit(row, np.array([target]))
        assert_same_estimator_state(
            estimator_state(twin), estimator_state(adapter.estimator)
        )
    else:
        assert_same_estimator_state(before, estimator_state(adapter.estimator))
        if classify:
            np.testing.assert_array_equal(
                list(result.values()), twin.predict_proba(row)[0]
            )
        else:
            assert result == twin.predict(row)[0]


def test_large_finite_features_are_features():
    # Found by the property above: a sum of two features overflowed, and
    # the sample was refused as if one were infinite.
    adapter = RiverRegressor(regressor())
    adapter.learn_one({"a": 1e308, "b": 1e308}, 0.0)
    assert adapter.estimator.t_ == 1


def _replace_weight_out(est):
    est.params_["weight_out"] = est.params_["weight_out"] * 0.5


def _scale_weight_out_in_place(est):
    est.params_["weight_out"] *= 0.5


def _refit(est):
    X, y = series_stream(30, seed=1)
    est.fit(X, y)


def _warm_partial_fit_block(est):
    X, y = series_stream(5, seed=2)
    est.partial_fit(X, y)


ESTIMATOR_CHANGES = {
    "set_params": lambda est: est.set_params(learning_rate_init=0.05),
    "assignment": lambda est: setattr(est, "alpha", 0.01),
    "params_ entry replaced": _replace_weight_out,
    "params_ entry edited in place": _scale_weight_out_in_place,
    "refit": _refit,
    "block partial_fit": _warm_partial_fit_block,
    "reset_state": lambda est: est.reset_state(),
}


@pytest.mark.parametrize("cell", ["elman", "gru"])
@pytest.mark.parametrize("change", ESTIMATOR_CHANGES, ids=str)
def test_the_adapter_picks_up_changes_of_its_estimator(cell, change):
    # The adapter binds the compiled step once; a change of the estimator
    # between samples must reach it exactly as it reaches the estimator.
    X, y = series_stream(60)
    adapter = RiverRegressor(regressor(cell=cell))
    direct = regressor(cell=cell)
    for t, x in enumerate(as_dicts(X)):
        if t == 30:
            ESTIMATOR_CHANGES[change](adapter.estimator)
            ESTIMATOR_CHANGES[change](direct)
        y_hat = adapter.predict_one(x)
        if t > 0:
            np.testing.assert_allclose(
                y_hat, direct.predict(X[t : t + 1])[0], rtol=1e-12, atol=0
            )
        adapter.learn_one(x, y[t])
        direct.partial_fit(X[t : t + 1], y[t : t + 1])
    assert adapter._stream._step is not None  # the compiled path ran
    assert_same_estimator_state(
        estimator_state(adapter.estimator), estimator_state(direct)
    )


@pytest.mark.parametrize("cell", ["elman", "gru"])
def test_the_compiled_path_is_the_estimator_over_a_long_stream(cell):
    X, y = series_stream(400, seed=3)
    adapter = RiverRegressor(regressor(cell=cell, n_hidden=16))
    direct = regressor(cell=cell, n_hidden=16)
    predictions, expected = [], []
    for t, x in enumerate(as_dicts(X)):
        predictions.append(adapter.predict_one(x))
        expected.append(direct.predict(X[t : t + 1])[0] if t else 0.0)
        adapter.learn_one(x, y[t])
        direct.partial_fit(X[t : t + 1], y[t : t + 1])
    np.testing.assert_allclose(predictions, expected, rtol=1e-12, atol=0)
    assert predictions == expected  # in fact bit for bit
    for name, value in direct.params_.items():
        np.testing.assert_allclose(
            adapter.estimator.params_[name], value, rtol=1e-12, atol=0
        )
    assert adapter.estimator.loss_curve_ == direct.loss_curve_
    assert adapter._stream._step is not None


def test_a_new_estimator_assigned_to_the_adapter_is_used():
    X, y = series_stream(20)
    adapter = RiverRegressor(regressor())
    for x, target in zip(as_dicts(X), y):
        adapter.predict_one(x)
        adapter.learn_one(x, target)
    adapter.estimator = regressor(random_state=1)
    for x, target in zip(as_dicts(X), y):
        adapter.predict_one(x)
        adapter.learn_one(x, target)
    assert adapter.estimator.t_ == 20


def test_a_copied_adapter_learns_on_its_own():
    X, y = series_stream(40)
    adapter = RiverRegressor(regressor())
    for x, target in zip(as_dicts(X[:20]), y[:20]):
        adapter.predict_one(x)
        adapter.learn_one(x, target)
    twin = copy.deepcopy(adapter)
    before = estimator_state(adapter.estimator)
    for x, target in zip(as_dicts(X[20:]), y[20:]):
        twin.predict_one(x)
        twin.learn_one(x, target)
    assert twin.estimator.t_ == 40
    assert_same_estimator_state(estimator_state(adapter.estimator), before)


# -- the classifier's per-sample path ------------------------------------------
COMPILED = ({}, {"cell": "gru"}, {"gradient": "snap1"})


def label_stream(n, n_classes, seed=0):
    X, y = series_stream(n, seed)
    edges = [-0.5] if n_classes == 2 else [-0.5, 0.5]
    return X, np.digitize(y, edges)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("variant", STREAM_VARIANTS, ids=repr)
def test_the_classifier_adapter_is_the_estimator_row_by_row(variant, n_classes):
    X, codes = label_stream(60, n_classes)
    labels = ["low", "mid", "high"][:n_classes]
    adapter = RiverClassifier(classifier(**variant), classes=labels)
    direct = classifier(**variant)
    for t, x in enumerate(as_dicts(X)):
        if t:
            proba = adapter.predict_proba_one(x)
            assert list(proba) == labels
            np.testing.assert_array_equal(
                list(proba.values()), direct.predict_proba(X[t : t + 1])[0]
            )
        adapter.learn_one(x, labels[codes[t]])
        direct.partial_fit(X[t : t + 1], codes[t : t + 1], classes=np.arange(n_classes))
    assert_same_estimator_state(
        estimator_state(adapter.estimator), estimator_state(direct)
    )
    assert (adapter._stream._step is not None) == (variant in COMPILED)


@pytest.mark.parametrize("classify", [False, True], ids=["regressor", "classifier"])
@pytest.mark.parametrize("variant", STREAM_VARIANTS, ids=repr)
def test_a_fitted_adapter_never_takes_the_general_path(variant, classify):
    # Models without a compiled step take the estimator's one-row path.
    if classify:
        X, codes = label_stream(30, 3)
        adapter = RiverClassifier(classifier(**variant), classes=[0, 1, 2])
        samples = list(zip(as_dicts(X), codes.tolist()))
        predict_one, predict_name = adapter.predict_proba_one, "predict_proba"
    else:
        X, y = series_stream(30)
        adapter = RiverRegressor(regressor(**variant))
        samples = list(zip(as_dicts(X), y))
        predict_one, predict_name = adapter.predict_one, "predict"
    adapter.learn_one(*samples[0])

    def general(*args, **kwargs):
        raise AssertionError("the general path ran")

    adapter.estimator.partial_fit = general
    setattr(adapter.estimator, predict_name, general)
    for x, target in samples[1:]:
        predict_one(x)
        adapter.learn_one(x, target)
    assert adapter.estimator.t_ == 30


CLASSIFIER_CHANGES = {
    "set_params": lambda est: est.set_params(learning_rate_init=0.05),
    "assignment": lambda est: setattr(est, "alpha", 0.01),
    "params_ entry replaced": _replace_weight_out,
    "params_ entry edited in place": _scale_weight_out_in_place,
    "reset_state": lambda est: est.reset_state(),
}


@pytest.mark.parametrize("cell", ["elman", "gru"])
@pytest.mark.parametrize("change", CLASSIFIER_CHANGES, ids=str)
def test_the_classifier_adapter_picks_up_changes_of_its_estimator(cell, change):
    X, codes = label_stream(50, 3)
    adapter = RiverClassifier(classifier(cell=cell), classes=[0, 1, 2])
    direct = classifier(cell=cell)
    for t, x in enumerate(as_dicts(X)):
        if t == 25:
            CLASSIFIER_CHANGES[change](adapter.estimator)
            CLASSIFIER_CHANGES[change](direct)
        if t:
            np.testing.assert_array_equal(
                list(adapter.predict_proba_one(x).values()),
                direct.predict_proba(X[t : t + 1])[0],
            )
        adapter.learn_one(x, int(codes[t]))
        direct.partial_fit(X[t : t + 1], codes[t : t + 1], classes=[0, 1, 2])
    assert adapter._stream._step is not None
    assert_same_estimator_state(
        estimator_state(adapter.estimator), estimator_state(direct)
    )


@pytest.mark.parametrize("classify", [False, True])
def test_a_setting_of_another_type_is_seen_by_the_per_sample_path(classify):
    # Equal to the value it replaces, yet refused by the estimator's
    # validation: the per-sample path must not let it through.
    X, codes = label_stream(10, 2)
    if classify:
        adapter = RiverClassifier(classifier(), classes=[0, 1])
        targets = codes.tolist()
    else:
        adapter = RiverRegressor(regressor())
        targets = X[:, 0].tolist()
    for x, target in zip(as_dicts(X), targets):
        adapter.learn_one(x, target)
    assert adapter._stream._step is not None
    adapter.estimator.n_hidden = 4.0
    before = estimator_state(adapter.estimator)
    x = as_dicts(X)[0]
    with pytest.raises(ValueError, match="n_hidden"):
        adapter.learn_one(x, targets[0])
    with pytest.raises(ValueError, match="n_hidden"):
        (adapter.predict_proba_one if classify else adapter.predict_one)(x)
    assert_same_estimator_state(before, estimator_state(adapter.estimator))


@pytest.mark.parametrize("value", [1, True, np.float64(0.5), np.float32(0.5)])
def test_values_that_are_not_python_floats_are_the_same_row(value):
    # The per-sample path takes lists of Python floats; other numbers go
    # through the general conversion, to the same row.
    adapter = RiverRegressor(regressor())
    direct = regressor()
    X, y = series_stream(6)
    for t, x in enumerate(as_dicts(X)):
        adapter.learn_one(x, y[t])
        direct.partial_fit(X[t : t + 1], y[t : t + 1])
    sample = {"a": value, "b": 0.25}
    row = np.array([[value, 0.25]], dtype=np.float64)
    assert adapter.predict_one(sample) == direct.predict(row)[0]
    adapter.learn_one(sample, 0.5)
    direct.partial_fit(row, np.array([0.5]))
    assert_same_estimator_state(
        estimator_state(adapter.estimator), estimator_state(direct)
    )


def test_an_adapter_without_a_sample_stream_makes_one():
    # As unpickled from a version whose classifier adapter had none.
    X, codes = label_stream(6, 2)
    adapter = RiverClassifier(classifier(), classes=[0, 1])
    for x, label in zip(as_dicts(X), codes.tolist()):
        adapter.learn_one(x, label)
    del adapter._stream
    adapter.learn_one(as_dicts(X)[0], 1)
    assert adapter._stream._step is not None
    assert adapter.estimator.t_ == 7
