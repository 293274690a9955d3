"""Saving and loading fitted models: pickle, joblib and skops.

A restored model is the same model: it predicts exactly what the saved one
predicts (probabilities included), a stream picks up at the hidden state it
was saved in, and training goes on as if it had never been saved. skops
loads it without executing arbitrary code: the only types it has to be
told to trust are skrtrl's own. A model saved in another version of skrtrl's
model format is refused with a message that says so.

Every test runs for every recurrent cell in ``skrtrl._cells.CELLS``.
"""

import copy
import pickle
import types

import joblib
import numpy as np
import pytest

import skrtrl._base
from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._cells import CELLS

sio = pytest.importorskip("skops.io")

CELL_NAMES = sorted(CELLS)
#: The ways a model can be trained and used; "stream" is saved mid-stream.
MODES = {
    "last": {},
    "sequence": {"output": "sequence"},
    "step": {"update": "step"},
    "stream": {"stateful": True},
}


# The models train for a few epochs only, on purpose.
pytestmark = pytest.mark.usefixtures("quiet_convergence")


RNG = np.random.RandomState(0)
X3 = RNG.normal(size=(12, 5, 2))  # 12 sequences of 5 steps, 2 features
Y_REG = X3[:, -1, 0] - 0.5 * X3[:, -2, 1]
Y_CLF = np.arange(12) % 3
STREAM = RNG.normal(size=(80, 2))  # 80 time steps of a 2-feature stream


def data(estimator_class, mode, part=None):
    """Inputs and targets for a mode: all of them, or half ``part`` (0 or 1).

    A stream has no "all": its halves are its first and next 40 rows.
    """
    classify = estimator_class is RTRLClassifier
    if mode == "stream":
        rows = STREAM[40 * part : 40 * (part + 1)]
        y = rows[:, 0] > 0 if classify else np.roll(rows[:, 0], 1)
        return rows, y
    X = X3[6 * part : 6 * (part + 1)] if part is not None else X3
    y = Y_CLF if classify else Y_REG
    y = y[6 * part : 6 * (part + 1)] if part is not None else y
    if mode == "sequence":
        y = np.repeat(y[:, None], X.shape[1], axis=1)
    return X, y


def fitted(estimator_class, cell, mode):
    est = estimator_class(
        n_hidden=4, cell=cell, max_iter=3, random_state=0, **MODES[mode]
    )
    est.fit(*data(estimator_class, mode, part=0 if mode == "stream" else None))
    if mode == "stream":
        # Mid-stream: the hidden state carries the steps seen so far.
        est.partial_fit(*data(estimator_class, mode, part=0))
        assert np.any(est._stream_state["hidden"] != 0)
    return est


def query(estimator_class, mode):
    """Inputs to predict on: new sequences, or the next rows of the stream."""
    if mode == "stream":
        return STREAM[40:50]
    return RNG.normal(size=(4, 5, 2))


def outputs(est, X):
    """Everything the model computes from X, by method name."""
    methods = ["predict"]
    if isinstance(est, RTRLClassifier):
        methods += ["predict_proba", "predict_log_proba", "decision_function"]
    return {name: getattr(est, name)(X) for name in methods}


def pickle_round_trip(est, tmp_path):
    return pickle.loads(pickle.dumps(est))


def joblib_round_trip(est, tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(est, path, compress=3)
    return joblib.load(path)


def skops_round_trip(est, tmp_path):
    path = tmp_path / "model.skops"
    sio.dump(est, path)
    return sio.load(path, trusted=sio.get_untrusted_types(file=path))


ROUND_TRIPS = {
    "pickle": pickle_round_trip,
    "joblib": joblib_round_trip,
    "skops": skops_round_trip,
}


def assert_same_model(restored, est):
    assert type(restored) is type(est)
    assert restored.get_params() == est.get_params()
    assert restored.params_.keys() == est.params_.keys()
    for name, value in est.params_.items():
        assert restored.params_[name].dtype == value.dtype
        np.testing.assert_array_equal(restored.params_[name], value, err_msg=name)
    for name in ("n_iter_", "t_", "loss_curve_", "n_features_in_", "n_outputs_"):
        assert getattr(restored, name) == getattr(est, name), name


@pytest.mark.parametrize("round_trip", ROUND_TRIPS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("estimator_class", [RTRLRegressor, RTRLClassifier])
def test_round_trip_reproduces_predictions_exactly(
    estimator_class, cell, mode, round_trip, tmp_path
):
    est = fitted(estimator_class, cell, mode)
    X = query(estimator_class, mode)
    expected = outputs(est, X)

    restored = ROUND_TRIPS[round_trip](est, tmp_path)

    assert_same_model(restored, est)
    for name, value in outputs(restored, X).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)
    if isinstance(est, RTRLClassifier):
        np.testing.assert_array_equal(restored.classes_, est.classes_)
        np.testing.assert_allclose(expected["predict_proba"].sum(axis=-1), 1.0)


@pytest.mark.parametrize("round_trip", ROUND_TRIPS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", CELL_NAMES)
def test_a_restored_model_trains_on_exactly_like_the_original(
    cell, mode, round_trip, tmp_path
):
    # The optimizer's moments, its step count and (mid-stream) the hidden
    # state and influence matrices are saved too, so further training does
    # not notice the round trip.
    est = fitted(RTRLRegressor, cell, mode)
    restored = ROUND_TRIPS[round_trip](est, tmp_path)

    X_more, y_more = data(RTRLRegressor, mode, part=1)
    est.partial_fit(X_more, y_more)
    restored.partial_fit(X_more, y_more)

    assert_same_model(restored, est)
    X = query(RTRLRegressor, mode)
    np.testing.assert_array_equal(restored.predict(X), est.predict(X))
    if mode == "stream":
        for name, value in est._stream_state.items():
            np.testing.assert_array_equal(restored._stream_state[name], value)


@pytest.mark.parametrize("round_trip", ROUND_TRIPS)
def test_restored_params_are_views_into_the_restored_model(round_trip, tmp_path):
    est = fitted(RTRLRegressor, "elman", "last")
    X = query(RTRLRegressor, "last")
    expected = est.predict(X)

    restored = ROUND_TRIPS[round_trip](est, tmp_path)
    restored.params_["weight_out"][...] = 0.0
    restored.params_["bias_out"][...] = 2.5

    np.testing.assert_array_equal(restored.predict(X), 2.5)
    np.testing.assert_array_equal(est.predict(X), expected)


@pytest.mark.parametrize("round_trip", ROUND_TRIPS)
def test_float32_models_stay_float32(round_trip, tmp_path):
    est = RTRLRegressor(n_hidden=4, max_iter=2, random_state=0)
    est.fit(X3.astype(np.float32), Y_REG.astype(np.float32))
    restored = ROUND_TRIPS[round_trip](est, tmp_path)
    assert all(v.dtype == np.float32 for v in restored.params_.values())
    X = query(RTRLRegressor, "last").astype(np.float32)
    np.testing.assert_array_equal(restored.predict(X), est.predict(X))


@pytest.mark.parametrize("round_trip", ROUND_TRIPS)
def test_an_unfitted_model_round_trips_unfitted(round_trip, tmp_path):
    est = RTRLClassifier(n_hidden=5, cell=CELL_NAMES[-1], output="sequence")
    restored = ROUND_TRIPS[round_trip](est, tmp_path)
    assert restored.get_params() == est.get_params()
    assert not restored.__sklearn_is_fitted__()


# -- skops: loading without executing untrusted code -------------------------
@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("estimator_class", [RTRLRegressor, RTRLClassifier])
def test_skops_needs_to_trust_only_skrtrl_types(
    estimator_class, cell, mode, solver, tmp_path
):
    est = estimator_class(
        n_hidden=4, cell=cell, solver=solver, max_iter=2, random_state=0
    ).set_params(**MODES[mode])
    est.fit(*data(estimator_class, mode, part=0 if mode == "stream" else None))
    path = tmp_path / "model.skops"
    sio.dump(est, path)

    untrusted = sio.get_untrusted_types(file=path)

    assert untrusted, "skops should ask to trust the estimator class at least"
    assert all(name.startswith("skrtrl.") for name in untrusted), untrusted
    assert f"skrtrl._estimators.{estimator_class.__name__}" in untrusted
    # Nothing is loaded without the user's consent...
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException):
        sio.load(path)
    # ...and with it, the model is the same model.
    restored = sio.load(path, trusted=untrusted)
    X = query(estimator_class, mode)
    for name, value in outputs(restored, X).items():
        np.testing.assert_array_equal(value, outputs(est, X)[name], err_msg=name)


def test_skops_round_trips_in_memory_too():
    est = fitted(RTRLClassifier, "elman", "last")
    blob = sio.dumps(est)
    restored = sio.loads(blob, trusted=sio.get_untrusted_types(data=blob))
    X = query(RTRLClassifier, "last")
    np.testing.assert_array_equal(restored.predict_proba(X), est.predict_proba(X))


# -- the model format version ------------------------------------------------
def test_the_saved_state_records_the_format_version():
    est = fitted(RTRLRegressor, "elman", "last")
    state = est.__getstate__()
    assert state["_skrtrl_format"] == skrtrl._base.FORMAT_VERSION
    # The params_ views are rebuilt on load, not saved as copies.
    assert "params_" not in state


@pytest.mark.parametrize("estimator_class", [RTRLRegressor, RTRLClassifier])
def test_a_model_of_another_format_version_is_refused(estimator_class):
    est = fitted(estimator_class, "elman", "last")
    state = est.__getstate__()
    state["_skrtrl_format"] = 999
    new = object.__new__(type(est))
    with pytest.raises(ValueError, match="format") as excinfo:
        new.__setstate__(state)
    message = str(excinfo.value)
    assert "format 999" in message
    assert f"format {skrtrl._base.FORMAT_VERSION}" in message
    assert estimator_class.__name__ in message
    # Refused before anything was set: no half-loaded model.
    assert new.__dict__ == {}


@pytest.mark.parametrize("round_trip", ROUND_TRIPS)
def test_a_file_written_by_another_format_version_is_refused(
    round_trip, tmp_path, monkeypatch
):
    # The version that saves the file writes a later format...
    later = skrtrl._base.FORMAT_VERSION + 1
    est = fitted(RTRLRegressor, "elman", "last")
    with monkeypatch.context() as patched:
        patched.setattr(skrtrl._base, "FORMAT_VERSION", later)
        if round_trip == "pickle":
            blob = pickle.dumps(est)
        else:
            path = tmp_path / f"model.{round_trip}"
            (joblib.dump if round_trip == "joblib" else sio.dump)(est, path)
    # ...and this one refuses it.
    with pytest.raises(ValueError, match=rf"saved in skrtrl's model format {later}"):
        if round_trip == "pickle":
            pickle.loads(blob)
        elif round_trip == "joblib":
            joblib.load(path)
        else:
            sio.load(path, trusted=sio.get_untrusted_types(file=path))


@pytest.mark.parametrize("stateful", [False, True])
def test_a_model_saved_in_format_1_loads_and_predicts_the_same(stateful):
    # Format 1 kept the cell, the flat parameters, the optimizer and the
    # stream state as separate attributes of the estimator.
    rng = np.random.RandomState(0)
    if stateful:
        X, y = rng.normal(size=(30, 2)), rng.normal(size=30)
        est = RTRLRegressor(n_hidden=4, cell="gru", stateful=True, random_state=0)
        est.partial_fit(X, y)
        X_new = rng.normal(size=(5, 2))
    else:
        est = fitted(RTRLRegressor, "gru", "last")
        X_new = rng.normal(size=(3, 6, est.n_features_in_))
    expected = est.predict(X_new)
    state = dict(est.__getstate__())
    model = state.pop("_model")
    state.update(
        _skrtrl_format=1,
        _cell=types.SimpleNamespace(m=model.cell.m, o=model.cell.o),
        _flat_params=model.params,
        _optimizer=model.optimizer,
    )
    if model.stream is not None:
        state["_stream_state"] = model.stream
    loaded = RTRLRegressor.__new__(RTRLRegressor)
    loaded.__setstate__(state)
    np.testing.assert_array_equal(loaded.predict(X_new), expected)
    assert loaded.params_["weight_hh"].base is not None


def assert_the_stream_continues_exactly(est, state, X, y):
    """The estimator loaded from ``state`` learns ``X, y`` as ``est`` does."""
    loaded = RTRLRegressor.__new__(RTRLRegressor)
    loaded.__setstate__(state)
    loaded.partial_fit(X, y)
    est.partial_fit(X, y)
    for name, value in est.params_.items():
        np.testing.assert_array_equal(loaded.params_[name], value)


@pytest.mark.parametrize("cell", ["lru", "glru"])
def test_an_lru_bptt_stream_saved_before_the_record_grew_continues_exactly(cell):
    # The LRUs' records gained three coefficient vectors after their first
    # 14; a stream's ring saved before lacks them.
    rng = np.random.RandomState(2)
    X, y = rng.normal(size=(40, 3)), rng.normal(size=40)
    est = RTRLRegressor(
        n_hidden=4, cell=cell, gradient="bptt", truncation=5, stateful=True,
        random_state=0,
    )  # fmt: skip
    est.partial_fit(X[:30], y[:30])
    state = dict(est.__getstate__())
    model = copy.deepcopy(state["_model"])
    m, n = model.cell.m, model.cell.n
    at = m + 2 * n + 1 + 14 * n
    model.stream["ring"] = np.delete(
        model.stream["ring"], np.arange(at, at + 3 * n), axis=1
    )
    state["_model"] = pickle.loads(pickle.dumps(model))
    assert_the_stream_continues_exactly(est, state, X[30:], y[30:])


def test_a_bptt_stream_saved_in_format_1_continues_exactly():
    # Format 1's BPTT records had no constant-input columns after [x, h].
    rng = np.random.RandomState(1)
    X, y = rng.normal(size=(40, 2)), rng.normal(size=40)
    est = RTRLRegressor(
        n_hidden=3, cell="gru", gradient="bptt", truncation=4, stateful=True,
        random_state=0,
    )  # fmt: skip
    est.partial_fit(X[:30], y[:30])
    state = dict(est.__getstate__())
    model = state.pop("_model")
    stream = {k: np.copy(v) for k, v in model.stream.items()}
    at = model.cell.m + model.cell.n
    stream["ring"] = np.delete(stream["ring"], [at, at + 1], axis=1)
    state.update(
        _skrtrl_format=1,
        _cell=types.SimpleNamespace(m=model.cell.m, o=model.cell.o),
        _flat_params=model.params.copy(),
        _optimizer=copy.deepcopy(model.optimizer),
        _stream_state=stream,
    )
    assert_the_stream_continues_exactly(est, state, X[30:], y[30:])
