"""The one-row path: single stream rows skip what earlier calls checked.

Every one-row call must give exactly what the general path gives (results,
errors and their messages, the model afterwards), for every cell, with and
without output feedback, for both estimators. The general path is forced on
a twin by dropping its cache (``skrtrl._rows._CACHES``) before each call.
"""

import copy
import os
import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import skrtrl._base
from skrtrl import RTRLClassifier, RTRLRegressor, _rows
from skrtrl._cells import CELLS

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CELL_NAMES = sorted(CELLS)
N_FEATURES = 2
VARIANTS = {
    "plain": {},
    "feedback": {"output_feedback": True},
    "free running": {"output_feedback": True, "teacher_forcing": False},
}
#: (cell, variant) pairs the cells support (the LRU has no free running).
CELL_VARIANTS = [
    (cell, variant)
    for cell in CELL_NAMES
    for variant in VARIANTS
    if variant != "free running" or "free_running" in CELLS[cell].modes("rtrl")
]
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("SKRTRL_HYPOTHESIS_EXAMPLES", 60)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


FITTED = {}


def fitted(estimator_class, cell="elman", variant="plain", dtype=np.float64):
    """A stream model fitted on 30 rows of 2 features (a fresh copy)."""
    key = (estimator_class, cell, variant, dtype)
    if key not in FITTED:
        rng = np.random.RandomState(0)
        X = rng.normal(size=(30, N_FEATURES)).astype(dtype)
        if estimator_class is RTRLClassifier:
            y, extra = np.arange(30) % 3, {"classes": [0, 1, 2]}
        else:
            y, extra = X[:, 0] + 0.5 * np.roll(X[:, 1], 1), {}
        est = estimator_class(
            n_hidden=3, cell=cell, stateful=True, learning_rate_init=0.01,
            random_state=0, **VARIANTS[variant],
        )  # fmt: skip
        FITTED[key] = est.partial_fit(X, y, **extra)
    return copy.deepcopy(FITTED[key])


def with_cache(est):
    """``est`` after one general call, so that its one-row path is ready."""
    est.predict(np.zeros((2, N_FEATURES), dtype=est._model.dtype))
    assert _rows.cache_for(est, training=True) is not None
    return est


def general(est, method, *args):
    """``method`` of ``est`` called through the general path."""
    _rows._CACHES.pop(est._model, None)
    return getattr(est, method)(*args)


def state(est):
    """Everything a call may change, bit for bit."""
    return {
        "params": {k: v.copy() for k, v in est.params_.items()},
        "stream": {k: np.copy(v) for k, v in est._model.stream.items()},
        "optimizer": copy.deepcopy(est._model.optimizer.__dict__),
        "counts": (est.t_, est.n_iter_, list(est.loss_curve_)),
        "attributes": sorted(est.__dict__),
    }


def assert_same_state(a, b):
    for part in ("params", "stream", "optimizer"):
        assert a[part].keys() == b[part].keys()
        for name in a[part]:
            np.testing.assert_array_equal(a[part][name], b[part][name], err_msg=name)
    assert a["counts"] == b["counts"]
    assert a["attributes"] == b["attributes"]


def outcome(call, *args):
    """("ok", result) or ("error", type, message) of ``call(*args)``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ("ok", call(*args))
    except (ValueError, TypeError) as error:
        return ("error", type(error), str(error))


def assert_same_outcome(fast, slow):
    assert fast[0] == slow[0], (fast, slow)
    if fast[0] == "error":
        assert fast[1:] == slow[1:]
    elif isinstance(fast[1], np.ndarray):
        np.testing.assert_array_equal(fast[1], slow[1])


def refuse_the_general_path(monkeypatch):
    """Make the general path's stream validation fail loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("the general path ran")

    monkeypatch.setattr(skrtrl._base, "check_stream", refuse)
    monkeypatch.setattr(skrtrl._base, "check_sequence_targets", refuse)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_one_row_calls_skip_the_general_path(cell, monkeypatch):
    reg = with_cache(fitted(RTRLRegressor, cell))
    clf = with_cache(fitted(RTRLClassifier, cell))
    refuse_the_general_path(monkeypatch)
    row = np.ones((1, N_FEATURES))
    reg.predict(row)
    reg.partial_fit(row, np.array([0.5]))
    clf.predict(row)
    clf.predict_proba(row)
    clf.decision_function(row)
    clf.partial_fit(row, np.array([2]))
    assert reg.t_ == 31 and clf.t_ == 31
    # The patch does stop the general path.
    with pytest.raises(AssertionError, match="general path"):
        reg.predict(np.ones((2, N_FEATURES)))


@pytest.mark.parametrize("cell, variant", CELL_VARIANTS)
@pytest.mark.parametrize("estimator_class", [RTRLRegressor, RTRLClassifier])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_row_calls_equal_the_general_path(estimator_class, cell, variant, dtype):
    fast = fitted(estimator_class, cell, variant, dtype)
    slow = copy.deepcopy(fast)
    rng = np.random.RandomState(1)
    classify = estimator_class is RTRLClassifier
    for t in range(12):
        # Rows of both float dtypes reach a model of either dtype.
        row = rng.normal(size=(1, N_FEATURES)).astype([np.float64, np.float32][t % 2])
        target = np.array([t % 3]) if classify else rng.normal(size=1)
        method = "predict_proba" if classify and t % 2 else "predict"
        np.testing.assert_array_equal(
            getattr(fast, method)(row), general(slow, method, row)
        )
        fast.partial_fit(row, target)
        general(slow, "partial_fit", row, target)
    assert_same_state(state(fast), state(slow))
    assert fast.t_ == 42


def test_changed_settings_take_the_general_path():
    est = with_cache(fitted(RTRLRegressor))
    twin = copy.deepcopy(est)
    row, target = np.ones((1, N_FEATURES)), np.array([0.3])
    # A setting that cannot train refuses the one-row call too.
    est.set_params(update="batch")
    with pytest.raises(ValueError, match="update='step'"):
        est.partial_fit(row, target)
    est.set_params(update="auto")
    # A new L2 strength, set by assignment, is the one that trains.
    est.alpha = twin.alpha = 0.5
    est.partial_fit(row, target)
    general(twin, "partial_fit", row, target)
    assert_same_state(state(est), state(twin))
    # A value of another type is not taken as the same setting.
    est.set_params(stateful=1)
    assert _rows.cache_for(est, training=False) is None


def test_a_replaced_params_entry_takes_effect_on_one_row():
    est = with_cache(fitted(RTRLRegressor))
    row = np.ones((1, N_FEATURES))
    before = est.predict(row)
    est.params_["bias_out"] = est.params_["bias_out"] + 1.0
    np.testing.assert_allclose(est.predict(row), before + 1.0)
    # An edit in place reaches the kernel as well.
    est.params_["bias_out"][...] -= 1.0
    np.testing.assert_allclose(est.predict(row), before)


def test_a_new_model_starts_without_a_cache():
    est = with_cache(fitted(RTRLRegressor))
    for restored in (pickle.loads(pickle.dumps(est)), copy.deepcopy(est)):
        assert _rows.cache_for(restored, training=False) is None
        row = np.ones((1, N_FEATURES))
        np.testing.assert_array_equal(restored.predict(row), est.predict(row))


#: Bad one-row calls: (X, y, the message). Each is refused by the general
#: path, with its message, and leaves the model unchanged.
BAD_ROWS = {
    "NaN": (np.array([[np.nan, 0.0]]), np.array([1.0]), "NaN"),
    "inf": (np.array([[0.0, np.inf]]), np.array([1.0]), "infinity"),
    "-inf in float32": (
        np.array([[-np.inf, 0.0]], dtype=np.float32),
        np.array([1.0]),
        "infinity",
    ),
    "three features": (np.ones((1, 3)), np.array([1.0]), "3 features"),
    "one feature": (np.ones((1, 1)), np.array([1.0]), "1 features"),
    "1D row": (np.ones(N_FEATURES), np.array([1.0]), "2D array"),
    "3D row": (np.ones((1, N_FEATURES, 1)), np.array([1.0]), "dim"),
    "complex": (np.ones((1, N_FEATURES), dtype=complex), np.array([1.0]), "omplex"),
    "strings": (np.full((1, N_FEATURES), "a"), np.array([1.0]), "string"),
    "y NaN": (np.ones((1, N_FEATURES)), np.array([np.nan]), "NaN"),
    "y two targets": (np.ones((1, N_FEATURES)), np.array([1.0, 2.0]), "target per row"),
}
BAD_LABELS = {
    "unseen label": (np.array([7]), "not seen in classes_"),
    "string label": (np.array(["a"]), "not seen in classes_|Unknown label"),
    "continuous label": (np.array([0.5]), "continuous"),
    "NaN label": (np.array([np.nan]), "NaN"),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_bad_rows_are_refused_and_change_nothing(cell, case):
    X, y, match = BAD_ROWS[case]
    est = with_cache(fitted(RTRLRegressor, cell))
    twin = copy.deepcopy(est)
    before = state(est)
    methods = ["partial_fit"] + ([] if case.startswith("y") else ["predict"])
    for method in methods:
        args = (X, y) if method == "partial_fit" else (X,)
        with pytest.raises((ValueError, TypeError), match=match):
            getattr(est, method)(*args)
        assert_same_outcome(
            outcome(getattr(est, method), *args),
            outcome(general, twin, method, *args),
        )
    assert_same_state(before, state(est))


@pytest.mark.parametrize("case", list(BAD_LABELS))
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_bad_labels_are_refused_and_change_nothing(cell, case):
    y, match = BAD_LABELS[case]
    est = with_cache(fitted(RTRLClassifier, cell))
    twin = copy.deepcopy(est)
    before = state(est)
    X = np.ones((1, N_FEATURES))
    with pytest.raises((ValueError, TypeError), match=match):
        est.partial_fit(X, y)
    assert_same_outcome(
        outcome(lambda: est.partial_fit(X, y)),
        outcome(lambda: general(twin, "partial_fit", X, y)),
    )
    assert_same_state(before, state(est))


def test_a_class_the_general_path_refuses_alone_is_refused_on_one_row():
    # classes_ may hold 0.5 (given up front), yet a lone 0.5 is a
    # "continuous" target to scikit-learn and is refused; so on one row.
    X = np.random.RandomState(0).normal(size=(6, N_FEATURES))
    clf = RTRLClassifier(n_hidden=3, stateful=True, random_state=0)
    clf.partial_fit(X, np.array([0, 1, 0, 1, 0, 1]), classes=[0, 0.5, 1])
    with pytest.raises(ValueError, match="continuous"):
        clf.partial_fit(X[:1], np.array([0.5]))
    clf.partial_fit(X[:1], np.array([1.0]))  # an integral float is a label
    assert clf.t_ == 7


# -- properties ----------------------------------------------------------------
X_KINDS = ["float64", "float32", "float16", "int64", "bool", "object", "str"]


@st.composite
def one_row_calls(draw, classify):
    """A call on (about) one row: valid, or with one defect."""
    kind = draw(st.sampled_from(X_KINDS))
    shape = draw(
        st.sampled_from(
            [(1, N_FEATURES)] * 6 + [(1, 1), (1, 3), (N_FEATURES,), (2, N_FEATURES)]
        )
    )
    values = draw(
        st.lists(
            st.one_of(
                st.floats(-1e3, 1e3),
                st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1e308]),
            ),
            min_size=int(np.prod(shape)),
            max_size=int(np.prod(shape)),
        )
    )
    X = np.array(values).reshape(shape)
    with np.errstate(invalid="ignore", over="ignore"):
        X = X.astype(str) if kind == "str" else X.astype(kind)
    n_rows = shape[0] if len(shape) == 2 else 1
    if classify:
        label = draw(st.sampled_from([0, 1, 2, 2.0, 7, 0.5, "a", np.nan, True]))
        y = np.array([label] * draw(st.sampled_from([n_rows, n_rows, 2])))
    else:
        y = np.array(
            draw(
                st.lists(
                    st.one_of(st.floats(-10, 10), st.just(np.nan)),
                    min_size=1,
                    max_size=2,
                )
            )
        )
        if draw(st.booleans()):
            y = y.astype(np.float32)
    return X, y


@pytest.mark.parametrize("estimator_class", [RTRLRegressor, RTRLClassifier])
@PROPERTY_SETTINGS
@given(data=st.data())
def test_any_one_row_call_does_what_the_general_path_does(estimator_class, data):
    classify = estimator_class is RTRLClassifier
    cell, variant = data.draw(st.sampled_from(CELL_VARIANTS), label="cell, variant")
    est = with_cache(fitted(estimator_class, cell, variant))
    twin = copy.deepcopy(est)
    X, y = data.draw(one_row_calls(classify), label="call")
    methods = ["predict", "partial_fit"] + (["predict_proba"] if classify else [])
    method = data.draw(st.sampled_from(methods), label="method")
    args = (X, y) if method == "partial_fit" else (X,)
    before = state(est)

    fast = outcome(lambda: getattr(est, method)(*args))
    slow = outcome(lambda: general(twin, method, *args))

    assert_same_outcome(fast, slow)
    assert_same_state(state(est), state(twin))
    if fast[0] == "error" or method != "partial_fit":
        assert_same_state(before, state(est))


# -- the compiled one-row stream (Cell.row_stream) ---------------------------


def compiled_step(est):
    """The RowStream the one-row path of ``est`` holds, or None."""
    cache = _rows._CACHES.get(est._model)
    return None if cache is None else cache._step


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_float64_rtrl_streams_learn_rows_in_compiled_code(cell):
    row, target = np.ones((1, N_FEATURES)), np.array([0.5])
    est = with_cache(fitted(RTRLRegressor, cell))
    est.partial_fit(row, target)
    assert compiled_step(est) is not None
    # float32, other gradient methods and output feedback keep the Python
    # path around their kernels.
    others = [
        fitted(RTRLRegressor, cell, dtype=np.float32),
        fitted(RTRLRegressor, cell, "feedback"),
        RTRLRegressor(
            n_hidden=3,
            cell=cell,
            gradient="bptt",
            truncation=4,
            stateful=True,
            random_state=0,
        ).partial_fit(np.ones((5, N_FEATURES)), np.zeros(5)),
    ]
    for other in others:
        with_cache(other).partial_fit(row.astype(other._model.dtype), target)
        assert compiled_step(other) is None


def _diverging_pair(cell):
    fast = with_cache(fitted(RTRLRegressor, cell))
    fast.partial_fit(np.ones((1, N_FEATURES)), np.array([0.5]))
    assert compiled_step(fast) is not None
    return fast, copy.deepcopy(fast)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_a_non_finite_step_is_undone_as_the_general_path_does(cell):
    fast, slow = _diverging_pair(cell)
    before = state(fast)
    row, target = np.ones((1, N_FEATURES)), np.array([1e300])
    with pytest.warns(ConvergenceWarning, match="diverged"):
        fast.partial_fit(row, target)
    with pytest.warns(ConvergenceWarning, match="diverged"):
        general(slow, "partial_fit", row, target)
    assert_same_state(state(fast), state(slow))
    for name, value in before["params"].items():
        np.testing.assert_array_equal(fast.params_[name], value)
    # The stream was reset and learns on from the restored parameters.
    fast.partial_fit(row, np.array([0.5]))
    general(slow, "partial_fit", row, np.array([0.5]))
    assert_same_state(state(fast), state(slow))


@pytest.mark.parametrize("cell", ["elman", "egru"])
def test_a_step_the_stream_rule_refuses_is_undone(cell):
    fast, slow = _diverging_pair(cell)
    rng = np.random.RandomState(2)
    for _ in range(90):  # past the steps the stream rule waits for
        row, target = rng.normal(size=(1, N_FEATURES)), rng.normal(size=1) * 0.1
        fast.partial_fit(row, target)
        general(slow, "partial_fit", row, target)
    before = state(fast)
    # Finite, but a loss orders of magnitude over the stream's.
    row, target = np.ones((1, N_FEATURES)), np.array([1e8])
    with pytest.warns(ConvergenceWarning, match="diverged"):
        fast.partial_fit(row, target)
    with pytest.warns(ConvergenceWarning, match="diverged"):
        general(slow, "partial_fit", row, target)
    assert_same_state(state(fast), state(slow))
    for name, value in before["params"].items():
        np.testing.assert_array_equal(fast.params_[name], value)


@pytest.mark.parametrize("cell", ["elman", "gru", "elstm"])
def test_the_compiled_step_follows_replaced_stream_state(cell):
    fast, slow = _diverging_pair(cell)
    rng = np.random.RandomState(3)
    for t in range(8):
        if t == 4:
            fast.reset_state()
            slow.reset_state()
        row, target = rng.normal(size=(1, N_FEATURES)), rng.normal(size=1)
        np.testing.assert_array_equal(fast.predict(row), general(slow, "predict", row))
        fast.partial_fit(row, target)
        general(slow, "partial_fit", row, target)
    assert_same_state(state(fast), state(slow))


def test_row_stream_refuses_rows_of_the_wrong_shape():
    est = with_cache(fitted(RTRLRegressor))
    est.partial_fit(np.ones((1, N_FEATURES)), np.array([0.5]))
    step = compiled_step(est)
    with pytest.raises(ValueError, match="one row"):
        step.learn(np.ones((2, N_FEATURES)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="one row"):
        step.learn(np.ones((1, N_FEATURES)), np.ones((1, 2)))
    with pytest.raises(ValueError, match="one row"):
        step.hidden_after(np.ones((1, N_FEATURES + 1)), np.empty(3))
    with pytest.raises(RuntimeError, match="nothing to undo"):
        _undo_twice(step)


def _undo_twice(step):
    step.learn(np.ones((1, N_FEATURES)), np.ones((1, 1)))
    step.undo()
    step.undo()


def test_compiled_steps_leave_the_blas_threads_as_they_were():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    est = with_cache(fitted(RTRLRegressor, "elman"))
    row = np.ones((1, N_FEATURES))
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = [i["num_threads"] for i in threadpoolctl.threadpool_info()]
        for _ in range(3):
            est.predict(row)
            est.partial_fit(row, np.array([0.5]))
        assert compiled_step(est) is not None
        after = [i["num_threads"] for i in threadpoolctl.threadpool_info()]
    assert after == before


def _twin_steps(cell="elman"):
    """Two equal models and their compiled steps."""
    models = [with_cache(fitted(RTRLRegressor, cell)) for _ in range(2)]
    for est in models:
        est.partial_fit(np.ones((1, N_FEATURES)), np.array([0.5]))
    return models[0], compiled_step(models[0]), models[1], compiled_step(models[1])


@pytest.mark.parametrize("cell", ["elman", "gru", "egru"])
def test_the_buffered_row_is_the_row_argument_bit_for_bit(cell):
    # set_row + predict_hidden / learn_value: the row kept in the step's
    # own buffer, for a caller that hands over a list of floats.
    est, step, twin, twin_step = _twin_steps(cell)
    assert step is not None and twin_step is not None
    rng = np.random.RandomState(4)
    h = np.empty(step.hidden_out.shape[0])
    for _ in range(5):
        row, target = rng.normal(size=(1, N_FEATURES)), float(rng.normal())
        assert step.set_row(row[0].tolist())
        step.predict_hidden()
        twin_step.hidden_after(row, h)
        np.testing.assert_array_equal(step.hidden_out, h)
        assert step.learn_value(target) == twin_step.learn(row, np.array([[target]]))
    assert_same_state(state(est), state(twin))


@pytest.mark.parametrize(
    "values",
    [[1.0], [1.0, 2.0, 3.0], [1, 2.0], [np.float64(1.0), 2.0], [np.nan, 1.0],
     [1.0, np.inf], [None, 1.0], ["1.0", 1.0]],
    ids=repr,
)  # fmt: skip
def test_set_row_takes_finite_floats_only_and_keeps_its_row_otherwise(values):
    est, step, _, _ = _twin_steps()
    assert step.set_row([0.5, -0.5])
    step.predict_hidden()
    before = step.hidden_out.copy()
    assert not step.set_row(values)
    step.predict_hidden()
    np.testing.assert_array_equal(step.hidden_out, before)


def test_the_guard_sees_any_replaced_entry_and_nothing_else():
    est, step, _, _ = _twin_steps()
    value, box, sizes = object(), {"a": None}, {"x": 1}
    mapping = {"kept": value}
    step.watch(
        [(mapping, "kept", value), (mapping, "absent", _rows.GUARD_ABSENT),
         (box, "a", None), (sizes, None, 1)]
    )  # fmt: skip
    assert step.unchanged()
    mapping["other"] = 1  # not watched
    assert step.unchanged()
    for change, undo in [
        (lambda: mapping.__setitem__("kept", object()),
         lambda: mapping.__setitem__("kept", value)),
        (lambda: mapping.__setitem__("absent", 0), lambda: mapping.pop("absent")),
        (lambda: box.__setitem__("a", 0), lambda: box.__setitem__("a", None)),
        (lambda: sizes.__setitem__("y", 2), lambda: sizes.pop("y")),
        (lambda: mapping.pop("kept"), lambda: mapping.__setitem__("kept", value)),
    ]:  # fmt: skip
        change()
        assert not step.unchanged()
        undo()
        assert step.unchanged()
    with pytest.raises(TypeError, match="dicts"):
        step.watch([([], "a", 1)])


class _Mapping(dict):
    pass


@pytest.mark.parametrize(
    "sample",
    [{"a": 1.0}, {"a": 1.0, "b": 2}, {"a": np.nan, "b": 1.0},
     _Mapping(a=1.0, b=2.0), [1.0, 2.0], {"a": np.float64(1.0), "b": 2.0}],
    ids=repr,
)  # fmt: skip
def test_a_sample_the_compiled_step_cannot_take_changes_nothing(sample):
    # predict_sample / learn_sample (the river adapters' calls) take a dict
    # of finite Python floats only, and only while the guard holds.
    est, step, twin, _ = _twin_steps()
    step.watch([])
    names = ("a", "b")
    assert step.predict_sample({"a": 0.5, "b": -0.5}, names)
    before = step.hidden_out.copy()
    assert not step.predict_sample(sample, names)
    assert step.learn_sample(sample, names, 0.5) is None
    assert step.learn_sample_target(sample, names, np.ones((1, 1))) is None
    np.testing.assert_array_equal(step.hidden_out, before)
    assert_same_state(state(est), state(twin))


def test_the_compiled_sample_calls_check_the_guard_first():
    est, step, twin, twin_step = _twin_steps()
    box = {"key": float("1.5")}
    step.watch([(box, "key", box["key"])])
    sample, names = {"a": 0.25, "b": 0.75}, ("a", "b")
    box["key"] = 2.5  # replaced: the guard fails
    assert not step.predict_sample(sample, names)
    assert step.learn_sample(sample, names, 0.5) is None
    assert_same_state(state(est), state(twin))
    box["key"] = float("2.5")
    box["key"] = float("1.5")  # an equal float, another object
    assert not step.unchanged()
    step.watch([(box, "key", box["key"])])
    assert step.predict_sample(sample, names)
    row = np.array([[0.25, 0.75]])
    h = np.empty_like(step.hidden_out)
    twin_step.hidden_after(row, h)
    np.testing.assert_array_equal(step.hidden_out, h)
    assert step.learn_sample(sample, names, 0.5) == twin_step.learn(
        row, np.array([[0.5]])
    )
    assert_same_state(state(est), state(twin))
