"""Stream mode (stateful=True) and real-time updates (update="step")."""

import copy
import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl.datasets import make_mackey_glass

from _helpers import (
    assert_same_snapshot,
    cell_forward,
    noisy_sine_stream,
    prequential_error_ratio,
    snapshot,
    stream_model,
)


def elman_outputs(params, X, h0):
    """Reference: run the network over the rows of X from state h0."""
    states, h = cell_forward("elman", params, X, state=h0)
    return states @ params["weight_out"][0] + params["bias_out"][0], h


METHODS = [
    dict(cell="elman", gradient="rtrl"),
    dict(cell="elman", gradient="snap1"),
    dict(cell="diagonal"),
    # The stream state of these holds more than arrays: BPTT's ring position
    # and fill, UORO's generator state.
    dict(cell="gru", gradient="bptt", truncation=5),
    dict(cell="elman", gradient="uoro"),
    dict(cell="lstm", gradient="uoro"),
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("chunk", [1, 7])
def test_chunk_size_does_not_matter(chunk, method):
    X, y = noisy_sine_stream(150)
    whole = stream_model(**method).partial_fit(X, y)
    pieces = stream_model(**method)
    for start in range(0, len(X), chunk):
        pieces.partial_fit(X[start : start + chunk], y[start : start + chunk])
    assert_same_snapshot(snapshot(whole), snapshot(pieces), rtol=1e-10, atol=1e-13)
    X_next, _ = noisy_sine_stream(20, seed=1)
    np.testing.assert_allclose(
        whole.predict(X_next), pieces.predict(X_next), rtol=1e-10
    )


def test_predict_runs_on_from_the_state_and_leaves_it_unchanged():
    X, y = noisy_sine_stream(120)
    est = stream_model().partial_fit(X[:100], y[:100])
    before = snapshot(est)
    first = est.predict(X[100:])
    second = est.predict(X[100:])
    assert_same_snapshot(before, snapshot(est), rtol=0, atol=0)
    np.testing.assert_array_equal(first, second)
    expected, _ = elman_outputs(est.params_, X[100:], est._stream_state["hidden"])
    np.testing.assert_allclose(first, expected, rtol=1e-10)


def test_prequential_loop_matches_predict_then_learn_in_one_chunk():
    X, y = noisy_sine_stream(60)
    est = stream_model().partial_fit(X[:30], y[:30])
    # One step: the prediction for row t uses the state after rows < t.
    y_hat = est.predict(X[30:31])
    expected, _ = elman_outputs(est.params_, X[30:31], est._stream_state["hidden"])
    np.testing.assert_allclose(y_hat, expected, rtol=1e-10)


def test_reset_state_starts_the_stream_over_keeping_the_weights():
    X, y = noisy_sine_stream(80)
    est = stream_model().partial_fit(X, y)
    weights = {k: v.copy() for k, v in est.params_.items()}
    assert np.any(est._stream_state["hidden"] != 0)
    est.reset_state()
    for k in weights:
        np.testing.assert_array_equal(est.params_[k], weights[k])
    expected, _ = elman_outputs(est.params_, X[:10], np.zeros(6))
    np.testing.assert_allclose(est.predict(X[:10]), expected, rtol=1e-10)


@pytest.mark.parametrize(
    "bad_X, bad_y, match",
    [
        (np.full((3, 1), np.nan), np.zeros(3), "NaN"),
        (np.zeros((3, 2)), np.zeros(3), "features"),
        (np.zeros((3, 1)), np.zeros(4), "one target per row"),
    ],
)
def test_failed_partial_fit_leaves_stream_untouched(bad_X, bad_y, match):
    X, y = noisy_sine_stream(50)
    est = stream_model().partial_fit(X, y)
    before = snapshot(est)
    with pytest.raises(ValueError, match=match):
        est.partial_fit(bad_X, bad_y)
    assert_same_snapshot(before, snapshot(est), rtol=0, atol=0)


@pytest.mark.parametrize("method", METHODS)
def test_pickled_mid_stream_continues_exactly(method):
    X, y = noisy_sine_stream(200)
    est = stream_model(**method).partial_fit(X[:100], y[:100])
    restored = pickle.loads(pickle.dumps(est))
    est.partial_fit(X[100:], y[100:])
    restored.partial_fit(X[100:], y[100:])
    assert_same_snapshot(snapshot(est), snapshot(restored), rtol=0, atol=0)


def test_fit_starts_a_fresh_stream_and_makes_max_iter_passes():
    X, y = noisy_sine_stream(100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = stream_model(max_iter=3, tol=0.0).fit(X, y)
        b = stream_model(max_iter=3, tol=0.0).fit(X, y)
        # Refitting forgets the earlier stream and weights.
        b.partial_fit(X[:10], y[:10])
        b.fit(X, y)
    assert a.n_iter_ == 3 and a.t_ == 300
    assert_same_snapshot(snapshot(a), snapshot(b), rtol=0, atol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_stream_learning_beats_persistence_on_mackey_glass(seed):
    series = make_mackey_glass(3000, random_state=seed)
    # Standardise with statistics of the start of the stream only.
    series = (series - series[:500].mean()) / series[:500].std()
    X, y = series[:-1, None], series[1:]
    est = stream_model(n_hidden=8, learning_rate_init=0.003, random_state=seed)
    # Measured: 0.47 to 0.48 of persistence's error.
    assert prequential_error_ratio(est, X, y, chunk=5, start=len(y) // 2) < 0.6


def test_stream_classifier_learns_a_delayed_label():
    rng = np.random.RandomState(0)
    bits = rng.randint(0, 2, size=4001).astype(float)
    X, labels = bits[1:, None], bits[:-1]  # label: the previous input bit
    clf = RTRLClassifier(6, stateful=True, learning_rate_init=0.02, random_state=0)
    clf.partial_fit(X[:3000], labels[:3000], classes=[0.0, 1.0])
    proba = clf.predict_proba(X[3000:])
    assert proba.shape == (1000, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    accuracy = np.mean(clf.predict(X[3000:]) == labels[3000:])
    assert accuracy > 0.95


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(update="batch"), "update='step'"),
        (dict(early_stopping=True), "early_stopping"),
    ],
)
def test_stream_mode_rejects_settings_that_make_no_sense(params, match):
    X, y = noisy_sine_stream(20)
    with pytest.raises(ValueError, match=match):
        stream_model(**params).partial_fit(X, y)


def test_update_step_on_sequence_data_learns():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(400, 6))
    y = X[:, -1] + X[:, -3]
    est = RTRLRegressor(
        8, update="step", learning_rate_init=0.003, max_iter=15, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X[:300], y[:300])
    assert est.score(X[300:], y[300:]) > 0.9


def test_deepcopy_of_a_stream_model_is_independent():
    X, y = noisy_sine_stream(60)
    est = stream_model().partial_fit(X[:30], y[:30])
    twin = copy.deepcopy(est)
    est.partial_fit(X[30:], y[30:])
    assert twin.t_ == 30 and est.t_ == 60


def test_update_state_without_feedback_is_the_forward_pass():
    X, y = noisy_sine_stream(60)
    est = stream_model().partial_fit(X[:30], y[:30])
    whole = est.predict(X[30:])
    before = snapshot(est)
    est.update_state(X[30:45])  # no targets needed without feedback
    after = snapshot(est)
    for name in before[0]:
        np.testing.assert_array_equal(before[0][name], after[0][name])
    np.testing.assert_array_equal(before[2], after[2])
    np.testing.assert_allclose(est.predict(X[45:]), whole[15:], rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", ["egru", "elman"])
def test_online_clipping_follows_the_serial_norm_at_the_threshold(cell, dtype):
    # The online kernels decide on clipping from a fast partial-sum norm
    # (in float32, partial sums in float) and take the serial one near the
    # threshold (``clip_gradient``): the update must be the serial rule's,
    # bit for bit, on both sides of it. SGD with learning rate 1 and no
    # velocity yet leaves -grad (after clipping) in the velocity exactly.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(1, 2)).astype(dtype)
    y = rng.normal(size=1).astype(dtype)

    def first_gradient(clip_norm):
        est = RTRLRegressor(
            n_hidden=16, cell=cell, stateful=True, solver="sgd",
            learning_rate_init=1.0, alpha=1e-3, clip_norm=clip_norm,
            random_state=0,
        )  # fmt: skip
        est.partial_fit(X, y)
        return -est._model.optimizer.velocity.copy()

    grad = first_gradient(None)
    assert grad.dtype == dtype
    # Each square in the floating type, summed in double in index order.
    norm = np.sqrt(np.cumsum((grad * grad).astype(np.float64))[-1])
    assert norm > 0
    for clip in (2 * norm, norm, norm * (1 + 1e-12), norm * (1 + 1e-7)):
        assert np.array_equal(first_gradient(clip), grad)
    for clip in (norm * (1 - 1e-12), norm * (1 - 1e-7), norm / 2):
        # The scale rounded to the floating type first, as the kernel does.
        scale = dtype(clip / norm)
        np.testing.assert_array_equal(first_gradient(clip), grad * scale)
