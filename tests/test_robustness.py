"""Robustness: bad inputs, divergence, extreme values, threads, long runs.

* Input validation, property-based: whatever the shapes, dtypes, lengths,
  NaN/inf placements, object or string arrays, ragged lists or targets of
  the wrong length or dtype, every call either works (and gives a finite
  result of the right form) or raises ValueError/TypeError with a message
  that names the problem, and a failed call leaves a fitted model exactly
  as it was.
* Divergence: training that explodes stops, warns, and keeps the last
  finite parameters.
* Extreme inputs and weights: probabilities stay probabilities, losses and
  gradients stay finite.
* Threads: concurrent predictions on one model equal sequential ones.
* Long runs: a stream of a million steps keeps memory flat; an interrupted
  fit leaves a model that predicts.

Everything runs for every recurrent cell in ``skrtrl._cells.CELLS``.
"""

import copy
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score

import skrtrl._optim
from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._cells import CELLS
from skrtrl._stack import STACK_CELLS

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CELL_NAMES = sorted(CELLS)
MODES = ["last", "sequence", "stream"]
N_FEATURES = 2  # per step, of the fitted models that calls are tried on

#: Property tests: 100 examples each keep the file well under a minute; set
#: SKRTRL_HYPOTHESIS_EXAMPLES=2000 for a deep search. On CI the examples are
#: the same every run (derandomized), elsewhere new ones each run.
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("SKRTRL_HYPOTHESIS_EXAMPLES", 100)),
    deadline=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# The models train for a couple of epochs only, on purpose; divergence
# tests catch their warnings themselves.
pytestmark = pytest.mark.usefixtures("quiet_convergence")


#: Gradient methods and training modes beside the data modes of MODES:
#: the property tests draw one per call.
VARIANTS = {
    "rtrl": {},
    "snap1": {"gradient": "snap1"},
    "bptt": {"gradient": "bptt", "truncation": 3},
    "uoro": {"gradient": "uoro"},
    "step": {"update": "step"},
    "feedback": {"output_feedback": True},
    "free_running": {"output_feedback": True, "teacher_forcing": False},
    "stack": {"n_hidden": (2, 3)},
    "stack_local": {"n_hidden": (3, 2), "gradient": "local"},
    "stack_bptt": {"n_hidden": (2, 2), "gradient": "bptt"},
    "pooling_mean": {"pooling": "mean"},
    "pooling_max": {"pooling": "max"},
}


def variants(mode, cell="elman"):
    """The VARIANTS that train in ``mode`` (a stream already updates per
    step; output feedback needs a target at every step) with ``cell`` (the
    cells that declare it train on their own fed-back outputs; stacks and
    pooled readouts where they apply)."""
    names = ["rtrl", "snap1", "bptt", "uoro"]
    if mode != "stream":
        names.append("step")
    if mode != "last":
        names.append("feedback")
        if "free_running" in CELLS[cell].modes("rtrl"):
            names.append("free_running")
    if cell in STACK_CELLS:
        names += ["stack", "stack_local"]
        if mode != "stream":
            names.append("stack_bptt")
    if mode == "last" and not CELLS[cell].output_map:
        names += ["pooling_mean", "pooling_max"]
    return st.sampled_from(names)


def model(estimator_class, mode, cell="elman", **params):
    params = {"n_hidden": 2, "max_iter": 2, "random_state": 0, **params}
    if mode == "sequence":
        params["output"] = "sequence"
    elif mode == "stream":
        params["stateful"] = True
    return estimator_class(cell=cell, **params)


# -- generated calls: at most one defect each, and the message it must get ---
Y_LENGTH = r"inconsistent numbers of samples|target per|one target|sequences but"
#: The defects of X, and what the error message must say about each.
X_DEFECTS = {
    "no sequences": r"at least one sequence|0 sample",
    "no steps": r"0 time steps|no time steps|0 feature",  # 2D: columns = steps
    "no features": r"0 feature",
    "mismatched features": r"same number of features",
    "letters": r"could not convert string",
    "None": r"NaN",
    "complex": r"[Cc]omplex",
    "nan": r"NaN",
    "inf": r"infinity",
    "-inf": r"infinity",
    "too few dimensions": r"2D array|dim",
    "too many dimensions": r"dim",
    "not an array": r"must be a string or a real number, not 'dict'",
}
#: For a fitted model, X with another number of features per step.
WRONG_FEATURES = r"features per time step|features, but"
#: The defects of y; the message depends on the estimator (see y_problem).
Y_DEFECTS = [
    "short",
    "long",
    "y letters",
    "y nan",
    "y inf",
    "y None",
    "y complex",
    "y continuous",
    "y one class",
    "y unseen label",
]
# (score with output="last" is scikit-learn's, which counts y, predictions
# and weights together.)
WEIGHT_DEFECTS = {
    "negative weight": r"Negative values",
    "nan weight": r"NaN",
    "weights length": r"sample_weight|inconsistent numbers of samples",
}
VALID_KINDS = [
    "float64",
    "float32",
    "float16",
    "int64",
    "bool",
    "object",
    "numeric strings",
]


def y_problem(defect, classify, fitted):
    """The message a y defect must get, or None if it is no defect here."""
    if defect in ("short", "long"):
        return Y_LENGTH
    if defect == "y letters":
        if classify:
            return r"not seen in classes_" if fitted else None  # new labels
        return r"numeric targets|could not convert"
    if defect == "y None":
        return r"label type|mixes types" if classify else r"NaN"
    if defect == "y continuous":
        return r"label type" if classify else None
    if defect == "y one class":
        return r"one class|at least 2 classes" if classify and not fitted else None
    if defect == "y unseen label":
        return r"not seen in classes_" if classify and fitted else None
    return {"y nan": r"NaN", "y inf": r"infinity", "y complex": r"[Cc]omplex"}[defect]


@dataclass
class Case:
    """A generated call: its arguments, and the problem it has (if any)."""

    X: object
    y: object = None
    sample_weight: object = None
    problems: list = field(default_factory=list)
    n_sequences: int = 0
    lengths: list = field(default_factory=list)
    description: str = ""
    float32: bool = False

    def describe(self):
        return f"problems={self.problems} ({self.description})"


def make_values(rng, shape, kind, scale):
    """Random values of the given shape and kind."""
    a = rng.uniform(-1, 1, size=shape) * scale
    if kind in ("float64", "float32", "float16"):
        return a.astype(kind)
    if kind == "int64":
        return np.round(np.clip(a, -1e6, 1e6)).astype(np.int64)
    if kind == "bool":
        return a > 0
    if kind == "object":
        return a.astype(object)
    if kind == "numeric strings":
        return a.astype(str)
    if kind == "letters":
        return np.full(shape, "a")
    if kind == "complex":
        return a.astype(np.complex128)
    # "None": an object array with one entry missing.
    a = a.astype(object)
    if a.size:
        a.flat[rng.randint(a.size)] = None
    return a


@st.composite
def sequences(draw, mode, fitted=None, defects=None):
    """X for ``mode``, valid or with one of ``defects`` (a list of names).

    ``fitted`` is the model X goes to, if it was fitted already.
    """
    stream = mode == "stream"
    expected = None if fitted is None else fitted.n_features_in_
    defects = list(X_DEFECTS) if defects is None else defects
    if stream:
        defects = [d for d in defects if d not in ("no steps", "mismatched features")]
    if fitted is not None:
        defects = defects + ["wrong features"]
    defect = draw(st.one_of(st.none(), st.sampled_from(defects))) if defects else None

    if defect in ("letters", "None", "complex"):
        kind = defect
    elif defect in ("nan", "inf", "-inf"):
        kind = draw(st.sampled_from(["float64", "float32", "float16", "object"]))
    else:
        kind = draw(st.sampled_from(VALID_KINDS))
    scale = 1.0
    if kind in ("float64", "float32", "object"):
        scale = draw(st.sampled_from([1.0, 1.0, 1e30]))
    rng = np.random.RandomState(draw(st.integers(0, 2**16)))

    n_features = expected or draw(st.integers(1, 3))
    if defect == "wrong features":
        n_features = draw(st.sampled_from([n for n in (1, 2, 3) if n != expected]))
    elif defect == "no features":
        n_features = 0
    if stream:
        form = "rows"
    elif defect == "mismatched features":
        form = "list"
    elif n_features != 1 or defect == "no features":
        form = draw(st.sampled_from(["3d", "list"]))
    else:  # univariate: a 2D array is one more way to say it
        form = draw(st.sampled_from(["2d", "3d", "list"]))
    if defect == "too few dimensions":
        form = "1d"
    elif defect == "too many dimensions":
        form = "3d" if stream else "4d"
    elif defect == "not an array":
        form = "dict"

    n_seq = 0 if defect == "no sequences" else draw(st.integers(1, 4))
    if defect == "mismatched features":
        n_seq = max(n_seq, 2)
    if form == "list":
        lengths = draw(st.lists(st.integers(1, 5), min_size=n_seq, max_size=n_seq))
    else:
        lengths = [draw(st.integers(1, 5))] * n_seq
    if defect == "no steps":
        if form == "list":
            lengths[draw(st.integers(0, n_seq - 1))] = 0
        else:
            lengths = [0] * n_seq

    def values(shape):
        return make_values(rng, shape, kind, scale)

    if form == "2d":
        X = values((n_seq, lengths[0] if n_seq else 1))
    elif form == "3d" and stream:
        X = values((n_seq, 3, n_features))
    elif form == "3d":
        X = values((n_seq, lengths[0] if n_seq else 1, n_features))
    elif form == "4d":
        X = values((n_seq, lengths[0] if n_seq else 1, n_features, 1))
    elif form == "1d":
        X = values((sum(lengths),))
    elif form == "dict":
        X = {"steps": values((n_seq, 3))}
    elif form == "rows":
        lengths = [draw(st.integers(1, 12))] if n_seq else [0]
        X = values((lengths[0], n_features))
    else:  # a list of sequences, 1D ones if univariate
        counts = [n_features] * n_seq
        if defect == "mismatched features":
            counts[draw(st.integers(1, n_seq - 1))] = n_features + 1
        one_d = counts == [1] * n_seq and draw(st.booleans())
        X = [
            values((length,) if one_d else (length, count))
            for length, count in zip(lengths, counts)
        ]
    if defect in ("nan", "inf", "-inf"):
        target = X[draw(st.integers(0, n_seq - 1))] if form == "list" else X
        target.flat[rng.randint(target.size)] = float(defect)

    problems = []
    if defect == "wrong features":
        problems.append(WRONG_FEATURES)
    elif defect is not None:
        problems.append(X_DEFECTS[defect])
    return Case(
        X,
        problems=problems,
        n_sequences=1 if stream else n_seq,
        lengths=lengths,
        description=f"X {form} of {kind}, defect {defect}",
        float32=kind == "float32",
    )


def with_wrong_length(y, longer, along_time):
    """y with one target too many or too few (in the last sequence)."""
    if isinstance(y, list):
        return y[:-1] + [with_wrong_length(y[-1], longer, False)]
    axis = 1 if along_time else 0
    if longer:
        return np.concatenate([y, np.take(y, [0], axis=axis)], axis=axis)
    return np.delete(y, -1, axis=axis)


@st.composite
def calls(draw, estimator_class, mode, fitted=None):
    """Arguments of fit-like calls (X, y, sample_weight), one defect at most."""
    classify = estimator_class is RTRLClassifier
    kind = draw(st.sampled_from(["X", "y", "weights"]))
    if kind == "X":
        case = draw(sequences(mode, fitted))
        defect = None
    else:
        case = draw(sequences(mode, fitted, defects=[]))
        names = Y_DEFECTS if kind == "y" else list(WEIGHT_DEFECTS)
        defect = draw(st.one_of(st.none(), st.sampled_from(names)))
        if defect in Y_DEFECTS and y_problem(defect, classify, fitted) is None:
            defect = None
    rng = np.random.RandomState(draw(st.integers(0, 2**16)))
    lengths = case.lengths

    # Valid targets: one per sequence, or one per step.
    n = sum(lengths) if mode != "last" else case.n_sequences
    if classify:
        classes = (
            fitted.classes_
            if fitted is not None
            else draw(st.sampled_from([[0, 1, 2], ["a", "b"], [-1.0, 1.0]]))
        )
        y = np.asarray(classes)[rng.randint(len(classes), size=n)]
        y[: min(n, 2)] = classes[: min(n, 2)]  # two classes when possible
    elif fitted is None and draw(st.booleans()):
        y = rng.normal(size=(n, 2))  # two outputs
    else:
        y = rng.normal(size=n)
    if defect in ("y complex", "y nan", "y inf") and y.dtype.kind not in "biuf":
        y = rng.randint(0, 2, size=n)  # numbers, to break
    if defect == "y letters":
        y = np.full(n, "x")
    elif defect == "y continuous":
        y = rng.normal(size=n) + 0.5
    elif defect == "y complex":
        y = y.astype(np.complex128)
    elif defect == "y one class":
        y = np.full(n, y[0])
    elif defect == "y unseen label":
        y[rng.randint(n)] = 7
    elif defect in ("y nan", "y inf", "y None"):
        y = y.astype(object if defect == "y None" else float)
        y.flat[rng.randint(y.size)] = {"y nan": np.nan, "y inf": np.inf}.get(defect)
    if mode == "sequence" and isinstance(case.X, list):
        y = np.split(y, np.cumsum(lengths)[:-1]) if lengths else []  # per sequence
    elif mode == "sequence" and lengths:
        y = y.reshape((len(lengths), lengths[0]) + y.shape[1:])
    if defect in ("short", "long"):
        along_time = mode == "sequence" and not isinstance(y, list)
        y = with_wrong_length(y, defect == "long", along_time)

    if defect is not None:  # (X is valid then: at least one sequence and step)
        case.problems.append(
            WEIGHT_DEFECTS[defect]
            if defect in WEIGHT_DEFECTS
            else y_problem(defect, classify, fitted)
        )
    if classify and fitted is None:  # one sequence in "last" mode, say
        if len(np.unique(flatten(y).astype(str))) < 2:
            case.problems.append(y_problem("y one class", classify, fitted))

    sample_weight = None
    n_weights = lengths[0] if mode == "stream" else case.n_sequences
    if defect in WEIGHT_DEFECTS or draw(st.booleans()):
        sample_weight = rng.uniform(0.5, 2.0, size=n_weights)
    if defect == "negative weight":
        sample_weight[0] = -1.0
    elif defect == "nan weight":
        sample_weight[0] = np.nan
    elif defect == "weights length":
        sample_weight = np.ones(n_weights + 1)
    case.y, case.sample_weight = y, sample_weight
    case.description += f", {kind} defect {defect}"
    return case


def assert_names_a_problem(error, case):
    message = str(error)
    assert case.problems, (
        f"a valid call failed: {type(error).__name__}: {message!r}; " + case.describe()
    )
    assert any(re.search(p, message) for p in case.problems), (
        f"{type(error).__name__}: {message!r} names none of " + case.describe()
    )


def run(call, case):
    """Run ``call``; None if it worked, else the ValueError/TypeError raised.

    Any other exception (or a crash) fails the test.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
    except (ValueError, TypeError) as error:
        event(f"raised {type(error).__name__}")
        assert_names_a_problem(error, case)
        return error
    event("worked")
    return None


def flatten(outputs):
    """All values of an output, whether an array or a list of arrays."""
    if isinstance(outputs, list):
        return np.concatenate([np.ravel(o) for o in outputs] or [np.empty(0)])
    return np.ravel(outputs)


def expected_rows(case, mode):
    return sum(case.lengths) if mode != "last" else case.n_sequences


def assert_sound_predictions(est, case, mode, dtype=None):
    """The fitted model's predictions on the call's X: right form, finite.

    ``dtype`` of the parameters: by default that of a new model trained on
    the call's X (float32 for float32 data, float64 for anything else).
    """
    pred = est.predict(case.X)
    if mode == "sequence" and isinstance(case.X, list):
        assert [len(p) for p in pred] == case.lengths
    elif mode == "sequence":
        assert np.shape(pred)[:2] == (case.n_sequences, case.lengths[0])
    else:
        assert len(pred) == expected_rows(case, mode)
    if isinstance(est, RTRLRegressor):
        assert np.isfinite(flatten(pred)).all()
    else:
        assert np.isin(flatten(pred), est.classes_).all()
    for value in est.params_.values():
        assert np.isfinite(value).all()
        assert value.dtype == (dtype or (np.float32 if case.float32 else np.float64))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("estimator_class", [RTRLRegressor, RTRLClassifier])
@PROPERTY_SETTINGS
@given(data=st.data())
def test_fit_either_works_or_names_the_problem(estimator_class, mode, data):
    case = data.draw(calls(estimator_class, mode), label="call")
    cell = data.draw(st.sampled_from(CELL_NAMES), label="cell")
    variant = data.draw(variants(mode, cell), label="variant")
    event(f"cell {cell}, {variant}")
    est = model(estimator_class, mode, cell, **VARIANTS[variant])

    error = run(lambda: est.fit(case.X, case.y, sample_weight=case.sample_weight), case)

    if error is None:
        assert not case.problems, "a call with problems worked: " + case.describe()
        assert_sound_predictions(est, case, mode)
    else:
        assert not est.__sklearn_is_fitted__()


FITTED = {}


def fitted_model(estimator_class, mode, cell, variant="rtrl"):
    """A model fitted on 3D data (2 features per step), one per kind."""
    key = (estimator_class, mode, cell, variant)
    if key not in FITTED:
        rng = np.random.RandomState(0)
        est = model(estimator_class, mode, cell, **VARIANTS[variant])
        if mode == "stream":
            X = rng.normal(size=(30, N_FEATURES))
            y = np.arange(30) % 3 if estimator_class is RTRLClassifier else X[:, 0]
        else:
            X = rng.normal(size=(9, 4, N_FEATURES))
            y = np.arange(9) % 3 if estimator_class is RTRLClassifier else X[:, -1, 0]
            if mode == "sequence":
                y = np.repeat(y[:, None], 4, axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
        FITTED[key] = est
    return copy.deepcopy(FITTED[key])


def observable_state(est):
    """What a failed call must not change (and pickle bytes for the rest)."""
    return {
        "params_": {k: v.copy() for k, v in est.params_.items()},
        "n_iter_": est.n_iter_,
        "t_": est.t_,
        "loss_curve_": list(est.loss_curve_),
        "n_features_in_": est.n_features_in_,
        "attributes": sorted(est.__dict__),
        "pickle": pickle.dumps(est),
    }


def assert_unchanged(est, before):
    after = observable_state(est)
    for name in before["params_"]:
        np.testing.assert_array_equal(after["params_"][name], before["params_"][name])
    for name in ("n_iter_", "t_", "loss_curve_", "n_features_in_", "attributes"):
        assert after[name] == before[name], name
    assert after["pickle"] == before["pickle"], "some fitted state changed"


#: score compares y with the predictions through scikit-learn's metrics,
#: which name bad labels their own way.
METRIC_MESSAGES = (
    r"Mix of label input types|not supported between instances|can't handle a mix"
)


def adjust_for_score(case, mode):
    """What score makes of a call, which differs from training."""
    if "y unseen label" in case.description:
        # A label never seen counts as a wrong prediction.
        case.problems.remove(r"not seen in classes_")
    elif "negative weight" in case.description and mode == "last":
        # With one target per sequence, score is scikit-learn's, whose
        # metrics take negative weights (as for every scikit-learn model).
        case.problems.remove(WEIGHT_DEFECTS["negative weight"])
    elif "y defect" in case.description and case.problems:
        case.problems.append(METRIC_MESSAGES)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("estimator_class", [RTRLRegressor, RTRLClassifier])
@PROPERTY_SETTINGS
@given(data=st.data())
def test_a_failed_call_leaves_a_fitted_model_unchanged(estimator_class, mode, data):
    cell = data.draw(st.sampled_from(CELL_NAMES), label="cell")
    variant = data.draw(variants(mode, cell), label="variant")
    event(f"cell {cell}, {variant}")
    est = fitted_model(estimator_class, mode, cell, variant)
    method = data.draw(
        st.sampled_from(["partial_fit", "fit", "loss_gradient", "score"]),
        label="method",
    )
    # Refitting starts afresh: then any feature count and labels are fine.
    fitted = None if method == "fit" else est
    case = data.draw(calls(estimator_class, mode, fitted), label="call")
    if method == "score":
        adjust_for_score(case, mode)
    before = observable_state(est)

    call = getattr(est, method)
    generator = est._random_state.get_state()
    error = run(lambda: call(case.X, case.y, sample_weight=case.sample_weight), case)

    if error is None:
        assert not case.problems, "a call with problems worked: " + case.describe()
        if method == "loss_gradient" and variant == "uoro":
            # Each UORO estimate draws its random signs from the estimator's
            # generator (independent calls, independent estimates): the one
            # change reading such a model makes.
            est._random_state.set_state(generator)
    if error is not None or method in ("loss_gradient", "score"):
        # Reading the model never changes it, even when the call works.
        assert_unchanged(est, before)
    else:
        # Training on keeps the model's dtype; fitting anew takes the data's.
        dtype = np.float64 if method == "partial_fit" else None
        assert_sound_predictions(est, case, mode, dtype)


@pytest.mark.parametrize("mode", MODES)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_predicting_works_or_names_the_problem_and_changes_nothing(mode, data):
    cell = data.draw(st.sampled_from(CELL_NAMES), label="cell")
    variant = data.draw(variants(mode, cell), label="variant")
    event(f"cell {cell}, {variant}")
    est = fitted_model(RTRLClassifier, mode, cell, variant)
    method = data.draw(
        st.sampled_from(["predict", "predict_proba", "decision_function"]),
        label="method",
    )
    case = data.draw(sequences(mode, est), label="X")
    before = observable_state(est)

    result = []
    error = run(lambda: result.append(getattr(est, method)(case.X)), case)

    assert_unchanged(est, before)
    if error is None:
        assert not case.problems, "a call with problems worked: " + case.describe()
        output = result[0]
        assert np.isfinite(flatten(output)).all()
        n_rows = expected_rows(case, mode)
        if mode == "sequence" and not isinstance(output, list):
            assert output.shape[:2] == (case.n_sequences, case.lengths[0])
        elif mode == "sequence":
            assert [len(o) for o in output] == case.lengths
        else:
            assert len(output) == n_rows
        if method == "predict_proba":
            np.testing.assert_allclose(flatten(output).reshape(-1, 3).sum(1), 1)


# -- what the property tests found, pinned down -----------------------------
@pytest.mark.parametrize("n_features", [1, 2])
@pytest.mark.parametrize("estimator_class", [RTRLRegressor, RTRLClassifier])
def test_score_of_a_stream_model_is_the_metric_over_its_rows(
    estimator_class, n_features
):
    # score used to read the rows of a stream as one-step sequences.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, n_features))
    y, metric = np.roll(X[:, 0], 1), r2_score
    if estimator_class is RTRLClassifier:
        y, metric = y > 0, accuracy_score
    est = model(estimator_class, "stream", n_hidden=3, max_iter=3).fit(X, y)
    weights = rng.uniform(0.5, 2.0, size=60)  # one per row, as in fit

    pred = est.predict(X)
    assert est.score(X, y) == pytest.approx(metric(y, pred))
    assert est.score(X, y, sample_weight=weights) == pytest.approx(
        metric(y, pred, sample_weight=weights)
    )


def test_none_among_regression_targets_is_reported_not_trained_on():
    # An object array's None turns into NaN only when converted to float;
    # it used to reach training, which then "diverged".
    X = np.random.RandomState(0).normal(size=(4, 3))
    y = np.array([1.0, None, 2.0, 3.0], dtype=object)
    reg = model(RTRLRegressor, "last")
    with pytest.raises(ValueError, match="y contains NaN"):
        reg.fit(X, y)
    reg.fit(X, [1.0, 0.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="y contains NaN"):
        reg.loss_gradient(X, y)


def test_per_step_targets_need_at_least_one_output():
    X = np.ones((2, 3))
    reg = model(RTRLRegressor, "sequence")
    with pytest.raises(ValueError, match="0 outputs per time step"):
        reg.fit(X, np.ones((2, 3, 0)))
    # A y of the wrong number of steps is reported as such, even when empty.
    with pytest.raises(ValueError, match=r"one target per time step.*got \(2, 0\)"):
        reg.fit(X, np.ones((2, 0)))
    assert not reg.__sklearn_is_fitted__()


def test_labels_that_cannot_be_sorted_are_named():
    X = np.ones((3, 2))
    y = np.array(["a", None, "b"], dtype=object)
    with pytest.raises(TypeError, match="labels that can be sorted.*mixes types"):
        model(RTRLClassifier, "last").fit(X, y)


# -- lengths: one step, and a long sequence ------------------------------------
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_one_step_sequences_train_and_predict(cell):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(8, 1))  # 8 sequences of one step
    reg = model(RTRLRegressor, "last", cell).fit(X, X[:, 0])
    assert reg.predict(X).shape == (8,)
    assert reg.t_ == 2 * 8  # two epochs of 8 steps
    seq = model(RTRLRegressor, "sequence", cell).fit(X, X)
    assert seq.predict(X).shape == (8, 1)


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("mode", ["last", "sequence"])
def test_a_sequence_of_ten_thousand_steps(cell, mode):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(1, 10_000, 1))
    y = X[:, :, 0] if mode == "sequence" else X[:, -1, 0]
    est = model(RTRLRegressor, mode, cell, n_hidden=4, max_iter=1)
    est.fit(X, y)
    assert est.t_ == 10_000
    pred = est.predict(X)
    assert pred.shape == ((1, 10_000) if mode == "sequence" else (1,))
    assert np.isfinite(pred).all()
    assert np.isfinite(est.loss_)


# -- divergence -----------------------------------------------------------------
EXPLODING = {
    "solver": "sgd",
    "learning_rate_init": 1e10,
    "clip_norm": None,
    "n_hidden": 4,
    "alpha": 0.0,
    "shuffle": False,
    "n_iter_no_change": 1000,  # a growing loss must not stop training first
}


def exploding_data(mode):
    rng = np.random.RandomState(0)
    if mode == "stream":
        X = rng.normal(size=(200, 2)) * 1e3
        return X, np.roll(X[:, 0], 1)
    X = rng.normal(size=(16, 5, 2)) * 1e3
    return X, X[:, -1, 0] + X[:, -2, 1]


@pytest.mark.parametrize("update", ["batch", "step", "stream"])
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_divergence_stops_with_a_warning_keeping_the_last_finite_parameters(
    cell, update
):
    mode = "stream" if update == "stream" else "last"
    X, y = exploding_data(mode)
    params = dict(EXPLODING, batch_size=16)  # one update per batch-mode pass
    if update != "stream":
        params["update"] = update
    est = model(RTRLRegressor, mode, cell, **params)
    est.partial_fit(X, y)  # the first pass may be fine or not...

    # ...but the passes explode soon; each is checked just before it runs.
    for _ in range(50):
        before = observable_state(est)
        optimizer_before = copy.deepcopy(est._optimizer.__dict__)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.partial_fit(X, y)
        diverged = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
        if diverged:
            break
    else:
        pytest.fail("training never diverged")

    message = str(diverged[0].message)
    assert "diverged" in message
    assert "learning_rate_init" in message and "clip_norm" in message
    # The parameters and the optimizer are those from before the pass that
    # blew up: the last finite ones, and the pass is not counted.
    assert_unchanged_except_stream_state(est, before)
    for name, value in optimizer_before.items():
        np.testing.assert_array_equal(getattr(est._optimizer, name), value)
    for value in est.params_.values():
        assert np.isfinite(value).all()
    assert np.isfinite(est.predict(X)).all()
    if update == "stream":
        # The hidden state held NaN too: the stream starts over.
        for value in est._stream_state.values():
            assert not np.any(value)


def assert_unchanged_except_stream_state(est, before):
    after = observable_state(est)
    for name in before["params_"]:
        np.testing.assert_array_equal(after["params_"][name], before["params_"][name])
    for name in ("n_iter_", "t_", "loss_curve_"):
        assert after[name] == before[name], name


@pytest.mark.parametrize("update", ["batch", "step", "stream"])
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_fit_that_diverges_keeps_finite_parameters(cell, update):
    mode = "stream" if update == "stream" else "last"
    X, y = exploding_data(mode)
    params = dict(EXPLODING, max_iter=50)
    if update != "stream":
        params["update"] = update
    est = model(RTRLRegressor, mode, cell, **params)

    with pytest.warns(ConvergenceWarning, match="diverged"):
        est.fit(X, y)

    assert est.n_iter_ < 50
    assert len(est.loss_curve_) == est.n_iter_
    assert np.isfinite(est.loss_curve_).all()
    for value in est.params_.values():
        assert np.isfinite(value).all()
    assert np.isfinite(est.predict(X)).all()


# A learning rate far too large on targets of scale 1e3: with bounded
# activations nothing becomes NaN, the loss only grows by orders of
# magnitude (the divergence rule of skrtrl._divergence must catch it).
# Eight units diverge as 32 do, at a fraction of exact RTRL's O(n^4) cost
# (the stacks of TRAINING_MODES set their own sizes).
EXPLOSION = {
    "n_hidden": 8,
    "learning_rate_init": 1e4,
    "solver": "sgd",
    "clip_norm": None,
    "max_iter": 20,
    "random_state": 0,
}
#: Every training mode, by the settings that select it.
TRAINING_MODES = {
    "minibatch": {},
    "sequence": {"output": "sequence"},
    "step": {"update": "step"},
    "stream": {"stateful": True},
    "feedback": {"stateful": True, "output_feedback": True},
    "free_running": {
        "stateful": True,
        "output_feedback": True,
        "teacher_forcing": False,
    },
    "stack": {"n_hidden": (3, 2)},
    "stack_local": {"n_hidden": (3, 2), "gradient": "local"},
    "stack_stream": {"n_hidden": (3, 2), "stateful": True},
    "pooling_mean": {"pooling": "mean"},
    "pooling_max": {"pooling": "max"},
}


def _trains(cell, mode):
    """Whether ``cell`` trains in the TRAINING_MODES entry ``mode``."""
    if mode == "free_running":
        return "free_running" in CELLS[cell].modes("rtrl")
    if mode.startswith("stack"):
        return cell in STACK_CELLS
    if mode.startswith("pooling"):
        return not CELLS[cell].output_map
    return True


def explosion_data(mode):
    rng = np.random.RandomState(0)
    if TRAINING_MODES[mode].get("stateful"):
        X = rng.normal(size=(300, 2))
        return X, 1e3 * np.roll(X[:, 0], 1)
    X = rng.normal(size=(32, 6, 2))
    if mode == "sequence":
        return X, 1e3 * X[:, :, 0]
    return X, 1e3 * X[:, -1, 0]


def starting_loss(est, X, y):
    """Training loss of the parameters ``est`` starts from.

    A clone fitted for one epoch at a learning rate so small that no update
    changes any parameter (checked: two such rates give the same
    parameters, but for those that start at 0, such as the gated LRU's
    ``bias_gate``, which move by the rate times their gradient) holds the
    initial parameters.
    """
    clones = [
        clone(est).set_params(max_iter=1, learning_rate_init=rate).fit(X, y)
        for rate in (1e-300, 1e-250)
    ]
    for name, value in clones[0].params_.items():
        np.testing.assert_allclose(value, clones[1].params_[name], rtol=0, atol=1e-200)
    return clones[0].loss_gradient(X, y)[0]


@pytest.mark.parametrize(
    "cell, mode",
    [
        (cell, mode)
        for cell in CELL_NAMES
        for mode in TRAINING_MODES
        if _trains(cell, mode)
    ],
)
def test_an_exploding_fit_warns_once_and_ends_no_worse_than_it_started(cell, mode):
    X, y = explosion_data(mode)
    est = RTRLRegressor(cell=cell, **{**EXPLOSION, **TRAINING_MODES[mode]})

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, y)

    convergence = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(convergence) == 1, [str(w.message) for w in caught]
    message = str(convergence[0].message)
    assert "diverged" in message
    assert "learning_rate_init" in message and "clip_norm" in message
    assert len(caught) == 1, [str(w.message) for w in caught]  # no numpy warning
    for value in est.params_.values():
        assert np.isfinite(value).all() and np.abs(value).max() < 1e6
    loss, _ = est.loss_gradient(X, y)
    assert loss <= starting_loss(est, X, y)
    assert len(est.loss_curve_) == est.n_iter_ < EXPLOSION["max_iter"]
    # The model trains on, at a sensible rate.
    est.set_params(learning_rate_init=1e-3, solver="adam", clip_norm=5.0)
    est.partial_fit(X, y)
    assert np.isfinite(est.predict(X)).all()


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_an_exploding_stream_of_single_rows_restores_the_previous_call(cell):
    X, y = explosion_data("stream")
    est = RTRLRegressor(cell=cell, **EXPLOSION, stateful=True)
    for i in range(X.shape[0]):
        before = {k: v.copy() for k, v in est.params_.items()} if i else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est.partial_fit(X[i : i + 1], y[i : i + 1])
        if caught:
            break
    else:
        pytest.fail("the stream never diverged")
    assert len(caught) == 1 and "diverged" in str(caught[0].message)
    for name, value in est.params_.items():
        np.testing.assert_array_equal(value, before[name])
    # The stream starts over from the zero state.
    for value in est._stream_state.values():
        assert not np.any(value)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_noisy_single_rows_of_a_healthy_stream_are_no_divergence(cell):
    # Three rows are outliers of 30 standard deviations of the targets:
    # each one's loss is some 500 to 1000 times the stream's mean loss per
    # step before it, a jump that single rows may make (a rule with a
    # factor of 100 would stop here), far from a blow-up.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(1500, 1))
    y = np.roll(X[:, 0], 1) + 0.1 * rng.normal(size=1500)
    y[250::500] += 30 * rng.choice([-1, 1], size=3)
    est = RTRLRegressor(cell=cell, n_hidden=4, stateful=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(X.shape[0]):
            est.partial_fit(X[i : i + 1], y[i : i + 1])
    assert est.t_ == 1500


# -- extreme inputs and weights -----------------------------------------------
def assert_probabilities(proba, log_proba):
    assert np.isfinite(proba).all()
    assert ((proba >= 0) & (proba <= 1)).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert not np.isnan(log_proba).any()
    assert (log_proba <= 0).all()
    # -inf only where the probability underflowed to zero.
    assert np.isfinite(log_proba[proba > 0]).all()


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("activation", ["tanh", "relu", "logistic", "identity"])
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_probabilities_stay_probabilities_at_extreme_inputs(
    cell, activation, n_classes
):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(12, 4, 2))
    y = np.arange(12) % n_classes
    clf = model(RTRLClassifier, "last", cell, n_hidden=4, activation=activation)
    clf.fit(X, y)
    X_extreme = np.sign(X) * 1e30
    # Inputs of 1e30 and readout weights of 1e100: logits of 1e100 to 1e130
    # (relu and identity pass the 1e30 on), so the probabilities saturate.
    weight_out = clf.params_["weight_out"]
    weight_out[...] = 1e100 * rng.choice([-1, 1], weight_out.shape)

    proba = clf.predict_proba(X_extreme)
    log_proba = clf.predict_log_proba(X_extreme)

    assert_probabilities(proba, log_proba)
    # The most probable class is the predicted one.
    np.testing.assert_array_equal(
        clf.classes_[np.argmax(proba, axis=1)], clf.predict(X_extreme)
    )


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_probabilities_when_the_readout_overflows(cell):
    # Logits of +-inf (a readout beyond the float range) split the
    # probability among the classes whose logit overflowed upwards.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(12, 4, 2))
    clf = model(RTRLClassifier, "last", cell, n_hidden=4)
    clf.fit(X, np.arange(12) % 3)
    clf.params_["weight_out"][...] = 0.0
    clf.params_["bias_out"][...] = [np.inf, -np.inf, np.inf]

    proba = clf.predict_proba(X)
    log_proba = clf.predict_log_proba(X)

    assert_probabilities(proba, log_proba)
    np.testing.assert_array_equal(proba, np.tile([0.5, 0.0, 0.5], (12, 1)))
    np.testing.assert_allclose(log_proba[:, [0, 2]], np.log(0.5))
    np.testing.assert_array_equal(clf.predict(X), 0)

    binary = model(RTRLClassifier, "last", cell, n_hidden=4)
    binary.fit(X, np.arange(12) % 2)
    binary.params_["weight_out"][...] = 0.0
    binary.params_["bias_out"][...] = -np.inf
    np.testing.assert_array_equal(binary.predict_proba(X), np.tile([1, 0], (12, 1)))
    log_proba = binary.predict_log_proba(X)
    np.testing.assert_array_equal(log_proba[:, 0], 0.0)
    assert (log_proba[:, 1] == -np.inf).all()  # the probability is 0
    np.testing.assert_array_equal(binary.predict(X), 0)


@pytest.mark.parametrize("activation", ["tanh", "relu", "logistic", "identity"])
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_loss_gradient_is_finite_at_extreme_inputs(cell, activation):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(12, 4, 2))
    X_extreme = np.sign(X) * 1e30
    for mode in ("last", "sequence"):
        y = np.arange(12) % 3
        y = np.repeat(y[:, None], 4, axis=1) if mode == "sequence" else y
        clf = model(RTRLClassifier, mode, cell, n_hidden=4, activation=activation)
        clf.fit(X, y)
        W = clf.params_["weight_out"]  # (3, 8) for the mean beside the last
        W[...] = 1e100 * rng.choice([-1, 1], W.shape)
        loss, grad = clf.loss_gradient(X_extreme, y)
        assert np.isfinite(loss) and loss > 0
        for name, value in grad.items():
            assert np.isfinite(value).all(), name

        reg = model(RTRLRegressor, mode, cell, n_hidden=4, activation=activation)
        reg.fit(X, y.astype(float))
        loss, grad = reg.loss_gradient(X_extreme, y.astype(float))
        assert np.isfinite(loss)
        for name, value in grad.items():
            assert np.isfinite(value).all(), name


# -- threads ------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_concurrent_predictions_equal_sequential_ones(cell, mode):
    rng = np.random.RandomState(0)
    clf = model(RTRLClassifier, mode, cell, n_hidden=6, max_iter=3)
    if mode == "stream":
        X = rng.normal(size=(200, 3))
        clf.fit(X, X[:, 0] > 0)
        queries = [rng.normal(size=(50 + i, 3)) for i in range(20)]
    else:
        X = rng.normal(size=(40, 8, 3))
        y = (X[:, :, 0] > 0).astype(int)
        clf.fit(X, y if mode == "sequence" else y[:, -1])
        queries = [rng.normal(size=(10 + i, 8 + i % 3, 3)) for i in range(20)]
    expected = [clf.predict_proba(q) for q in queries]
    before = observable_state(clf)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(clf.predict_proba, queries))

    for got, want in zip(results, expected):
        np.testing.assert_array_equal(got, want)
    assert_unchanged(clf, before)


# -- long runs ------------------------------------------------------------------
MEMORY_SCRIPT = textwrap.dedent(
    """
    import resource, sys, tracemalloc
    import numpy as np
    from skrtrl import RTRLRegressor

    est = RTRLRegressor(n_hidden=4, cell=sys.argv[1], stateful=True,
                        learning_rate_init=1e-3, random_state=0)
    chunk = 100_000
    tracemalloc.start()
    for i in range(10):
        t = np.arange(i * chunk, (i + 1) * chunk + 1)
        x = np.sin(0.01 * t)[:, None]
        est.partial_fit(x[:-1], x[1:, 0])
        est.predict(x[:1000])
        if i == 0:
            rss_first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            traced_first = tracemalloc.get_traced_memory()[0]
    rss_last = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    traced_last = tracemalloc.get_traced_memory()[0]
    assert np.isfinite(est.loss_curve_).all()
    print(est.t_, rss_first, rss_last, traced_first, traced_last)
    """
)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_a_million_step_stream_keeps_memory_flat(cell, tmp_path):
    # In a fresh process, so that the peak resident size is this run's; run
    # from an empty folder, so that it imports the installed package and not
    # a source checkout in the current directory.
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, cell],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    t, rss_first, rss_last, traced_first, traced_last = map(int, done.stdout.split())
    assert t == 1_000_000
    # Peak resident size (KiB) after 10^5 steps and after 10^6.
    assert rss_last - rss_first < 0.05 * rss_first, (rss_first, rss_last)
    # Memory held by Python objects and numpy arrays: no per-step growth.
    assert traced_last - traced_first < 1_000_000, (traced_first, traced_last)


@pytest.mark.parametrize("cell", CELL_NAMES)
def test_a_fit_interrupted_by_keyboard_interrupt_leaves_a_working_model(
    cell, monkeypatch
):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 5, 2))
    y = X[:, -1, 0]
    recorded = []
    step = skrtrl._optim.AdamOptimizer.step

    def interrupted_step(self, params, grad):
        if len(recorded) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the third update
        step(self, params, grad)
        recorded.append(params.copy())

    monkeypatch.setattr(skrtrl._optim.AdamOptimizer, "step", interrupted_step)
    est = model(RTRLRegressor, "last", cell, n_hidden=4, batch_size=10)
    with pytest.raises(KeyboardInterrupt):
        est.fit(X, y)
    monkeypatch.undo()

    # The model is the one after the second update, and it predicts.
    np.testing.assert_array_equal(est._flat_params, recorded[1])
    assert est.__sklearn_is_fitted__()
    pred = est.predict(X)
    assert pred.shape == (40,) and np.isfinite(pred).all()
    # It can be trained on, too.
    est.partial_fit(X, y)
    assert np.isfinite(est.predict(X)).all()


#: Stream settings whose compiled loops check for Ctrl-C: every gradient
#: method, and exact RTRL through the model's own fed-back outputs.
INTERRUPTED_STREAMS = {
    "rtrl": {},
    "snap1": {"gradient": "snap1"},
    "bptt": {"gradient": "bptt", "truncation": 4},
    "uoro": {"gradient": "uoro"},
    "free_running": {"output_feedback": True, "teacher_forcing": False},
}


@pytest.mark.parametrize(
    "cell, settings",
    [
        (cell, settings)
        for cell in CELL_NAMES
        for settings in INTERRUPTED_STREAMS
        if settings != "free_running" or "free_running" in CELLS[cell].modes("rtrl")
    ],
)
def test_ctrl_c_stops_a_long_stream_call_between_two_steps(cell, settings):
    rng = np.random.RandomState(0)
    n_rows = 3_000_000  # seconds of work for any cell: the signal comes first
    X = rng.normal(size=(n_rows, 1))
    y = np.roll(X[:, 0], 1)
    est = RTRLRegressor(
        n_hidden=8, cell=cell, stateful=True, update="step", random_state=0,
        **INTERRUPTED_STREAMS[settings],
    )  # fmt: skip
    est.partial_fit(X[:20], y[:20])
    before = copy.deepcopy(est)

    # Ctrl-C, as the terminal sends it, once the kernel runs (without the
    # GIL: the parameters it updates in place have changed).
    call_ended = threading.Event()
    start = est._flat_params.copy()

    def press_ctrl_c():
        while np.array_equal(est._flat_params, start):
            if call_ended.wait(0.005):
                return  # the call ended first (which fails the test below)
        if not call_ended.wait(0.05):
            os.kill(os.getpid(), signal.SIGINT)

    watcher = threading.Thread(target=press_ctrl_c)
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            est.partial_fit(X[20:], y[20:])
    finally:
        call_ended.set()
        watcher.join()

    # Interrupted: part of the rows were trained on, the call is not counted
    # as an epoch, and t_ counts the rows the stream moved over.
    done = est.t_ - before.t_
    assert 0 < done < n_rows - 20
    assert est.n_iter_ == before.n_iter_
    assert est._optimizer.t == before._optimizer.t + done
    # Consistent: exactly the model that trained on those rows only.
    before.partial_fit(X[20 : 20 + done], y[20 : 20 + done])
    for name, value in est.params_.items():
        np.testing.assert_array_equal(value, before.params_[name])
    for name, value in est._stream_state.items():
        np.testing.assert_array_equal(value, before._stream_state[name], name)
    for name, value in vars(est._optimizer).items():
        np.testing.assert_array_equal(value, vars(before._optimizer)[name])
    # It predicts and trains on.
    assert np.isfinite(est.predict(X[:50])).all()
    est.partial_fit(X[:100], y[:100])
    assert est.t_ == before.t_ + 100


#: Minibatch settings whose compiled loops check for Ctrl-C, with the
#: (sequences, steps) of one minibatch that is seconds of kernel work: every
#: gradient method (BPTT full, in float32 to keep its records small, and
#: truncated with a target at every step) and free-running output feedback.
INTERRUPTED_MINIBATCHES = {
    "rtrl": ({"cell": "lstm"}, (2, 20_000)),
    "snap1": ({"cell": "lstm", "gradient": "snap1"}, (2, 300_000)),
    "bptt": ({"cell": "gru", "n_hidden": 128, "gradient": "bptt"}, (1, 25_000)),
    "bptt_truncated": (
        {"cell": "lstm", "gradient": "bptt", "truncation": 50, "output": "sequence"},
        (2, 20_000),
    ),
    "uoro": ({"cell": "lstm", "gradient": "uoro"}, (2, 100_000)),
    "free_running": (
        {
            "cell": "lstm",
            "output": "sequence",
            "output_feedback": True,
            "teacher_forcing": False,
        },
        (2, 10_000),
    ),
    "stack": ({"cell": "egru", "n_hidden": (16, 16)}, (2, 500_000)),
    "stack_local": (
        {"cell": "egru", "n_hidden": (16, 16), "gradient": "local"},
        (2, 500_000),
    ),
    "stack_bptt": (
        {"cell": "gru", "n_hidden": (64, 64), "gradient": "bptt"},
        (1, 25_000),
    ),
    "pooling": ({"cell": "lstm", "pooling": "max"}, (2, 20_000)),
}


@pytest.mark.parametrize("settings", list(INTERRUPTED_MINIBATCHES))
def test_ctrl_c_during_a_long_minibatch_drops_its_gradient(settings):
    # One minibatch of long sequences: seconds of kernel work, which stops
    # at the signal; its incomplete gradient is not applied.
    params, shape = INTERRUPTED_MINIBATCHES[settings]
    params = {"n_hidden": 16, "random_state": 0, **params}
    rng = np.random.RandomState(0)
    dtype = np.float32 if settings in ("bptt", "stack_bptt") else np.float64
    X = rng.normal(size=(*shape, 1)).astype(dtype)
    y = X[:, :, 0] if params.get("output") == "sequence" else X[:, -1, 0]
    est = RTRLRegressor(**params)
    est.partial_fit(X[:, :50], y[:, :50] if y.ndim == 2 else y)
    before = copy.deepcopy(est)

    timer = threading.Timer(0.25, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt) as raised:
            est.partial_fit(X, y)
    finally:
        timer.cancel()

    # The kernel stopped at the signal: the exception comes from the kept
    # one, not from Python's handler once the kernel had run to its end.
    frames = [str(entry.name) for entry in raised.traceback]
    assert any(name.endswith("raise_pending_signal") for name in frames), frames
    assert_unchanged_except_stream_state(est, observable_state(before))
    assert est._optimizer.t == before._optimizer.t
    short = X[:, :50]
    assert np.isfinite(est.predict(short)).all()
    est.partial_fit(short, y[:, :50] if y.ndim == 2 else y)
    assert est.n_iter_ == before.n_iter_ + 1
