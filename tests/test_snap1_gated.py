"""SnAp-1 for the gated cells (GRU, LSTM).

SnAp-1 (Menick et al., 2020) keeps, of the RTRL influence d s_t / d theta,
only the block of each unit's state (h_i, and c_i for the LSTM) with respect
to that unit's own gate rows of theta. Its gradients, step updates and
streams are checked against numpy RTRL cut back to those blocks after every
step (``tests/_reference.py``) for every cell in ``test_cell_conformance.py``;
here: the stream's influence in the kernel's layout, threads, float32, the
workspace sizes and learning.
"""

import numpy as np
import pytest

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._cells import GRUCell, LSTMCell

from _helpers import (
    assert_float32_gradient_matches,
    assert_same_snapshot,
    noisy_sine_stream,
    prequential_error_ratio,
    random_sequences,
    randomize,
    snapshot,
    stream_model,
)
from _reference import rtrl

GATED = ["gru", "lstm"]
N_GATES = {"gru": 3, "lstm": 4}


# Models are fitted for an epoch or a few, on purpose.
pytestmark = pytest.mark.usefixtures("quiet_convergence")


# -- cases ----------------------------------------------------------------------
def make_case(cell, kind, k, every_step, rng, n_hidden=None, **params):
    """A model with random parameters, data, targets for the estimator and
    for the reference, and the loss name; random sizes and lengths."""
    if n_hidden is None:
        n_hidden = rng.randint(2, 6)
    n_features = rng.randint(1, 4)
    X = random_sequences(rng, rng.randint(4, 8), n_features)
    common = dict(
        cell=cell,
        gradient="snap1",
        output="sequence" if every_step else "last",
        max_iter=1,
        alpha=0.0,
        random_state=0,
    )
    common.update(params)
    if kind == "regression":
        shape = (lambda T: (T, k)) if every_step else (lambda T: (k,))
        y = [rng.normal(size=shape(x.shape[0])) for x in X]
        est = RTRLRegressor(n_hidden, **common).fit(X, y)
        return randomize(est, rng, 0.8), X, y, y, "squared_error"
    est = RTRLClassifier(n_hidden, **common)
    if every_step:
        est.fit(X, [np.arange(x.shape[0]) % k for x in X])
        y = [rng.randint(0, k, size=x.shape[0]) for x in X]
    else:
        est.fit(X, np.arange(len(X)) % k)
        y = rng.randint(0, k, size=len(X))
    if k == 2:
        y_ref = [np.reshape(np.asarray(v, float), (-1, 1)) for v in y]
        y_ref = y_ref if every_step else [v[0] for v in y_ref]
        return randomize(est, rng, 0.8), X, y, y_ref, "log_loss_binary"
    return randomize(est, rng, 0.8), X, y, [np.eye(k)[v] for v in y], "log_loss"


# -- gradients ------------------------------------------------------------------
@pytest.mark.parametrize("cell", GATED)
def test_snap1_threads_give_the_same_gradient(cell):
    rng = np.random.RandomState(5)
    est, X, y, _, _ = make_case(cell, "multiclass", 3, True, rng)
    _, one = est.loss_gradient(X, y)
    est.set_params(n_jobs=2)
    _, two = est.loss_gradient(X, y)
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])


@pytest.mark.parametrize("cell", GATED)
def test_snap1_float32_matches_float64(cell):
    rng = np.random.RandomState(9)
    X64 = random_sequences(rng, 6, 3)
    X32 = [x.astype(np.float32) for x in X64]
    y = rng.normal(size=6)
    common = dict(cell=cell, gradient="snap1", max_iter=1)
    est64 = randomize(RTRLRegressor(4, **common).fit(X64, y), rng, 0.5)
    est32 = RTRLRegressor(4, **common).fit(X32, y.astype(np.float32))
    assert_float32_gradient_matches(est64, est32, X64, y, X32, y.astype(np.float32))


@pytest.mark.parametrize("cell_class", [GRUCell, LSTMCell])
def test_cells_refuse_unknown_gradient_methods(cell_class):
    with pytest.raises(ValueError, match="gradient in"):
        cell_class(3, 2, 1, gradient="bogus")


@pytest.mark.parametrize("cell_class", [GRUCell, LSTMCell])
def test_snap1_influence_is_the_size_of_theta_per_state_vector(cell_class):
    cell = cell_class(5, 3, 2, gradient="snap1")
    theta_size = cell.n_gates * 5 * (3 + 5 + 2)
    states = 1 if cell_class is GRUCell else 2
    ws = cell.workspace(4, 2, np.float64)
    assert ws["influence"].shape == (2, states * theta_size)
    assert cell.new_state(np.float64)["influence"].shape == (1, states * theta_size)


# -- streams and real-time updates ----------------------------------------------
def snap1_stream_model(cell, **params):
    return stream_model(**{"n_hidden": 4, "cell": cell, "gradient": "snap1", **params})


@pytest.mark.parametrize("cell", GATED)
def test_stream_chunk_size_does_not_matter(cell):
    X, y = noisy_sine_stream(60)
    whole = snap1_stream_model(cell).partial_fit(X, y)
    for chunk in (1, 7):
        pieces = snap1_stream_model(cell)
        for start in range(0, len(X), chunk):
            pieces.partial_fit(X[start : start + chunk], y[start : start + chunk])
        assert_same_snapshot(snapshot(whole), snapshot(pieces), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("cell", GATED)
def test_stream_influence_follows_the_numpy_reference(cell):
    """With a negligible learning rate the weights stay put, so the carried
    state and SnAp-1 influence are those of the numpy SnAp-1."""
    X, y = noisy_sine_stream(25)
    est = snap1_stream_model(cell, learning_rate_init=1e-14).partial_fit(X, y)
    params = {k: np.array(v, dtype=np.float64) for k, v in est.params_.items()}
    result = rtrl(cell, params, "tanh", "squared_error",
                  [(X, y[:, None], np.ones(25))], snap1=True)  # fmt: skip
    layout, P = result["layout"], result["influence"]
    np.testing.assert_allclose(est._stream_state["hidden"], result["state"],
                               rtol=1e-8)  # fmt: skip
    # The kernel stores d h_i / d theta[row] (then d c_i / d theta[row]) in
    # theta's row order, [W_ih row | W_hh row | b_ih | b_hh]: row g*n + i
    # belongs to unit i.
    n, R = 4, N_GATES[cell] * 4
    theta = np.concatenate(
        [P[:, layout.slices[name]].reshape(P.shape[0], R, -1)
         for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")],
        axis=2,
    )  # fmt: skip
    rows = np.arange(R)
    kept = [theta[rows % n, rows]]
    if cell == "lstm":
        kept.append(theta[n + rows % n, rows])
    np.testing.assert_allclose(
        est._stream_state["influence"][0], np.concatenate(kept).ravel(), rtol=1e-8,
        atol=1e-12,
    )  # fmt: skip


@pytest.mark.parametrize("cell", GATED)
def test_switching_gradient_mid_stream_restarts_the_state(cell):
    X, y = noisy_sine_stream(40)
    est = snap1_stream_model(cell, gradient="rtrl").partial_fit(X[:20], y[:20])
    est.set_params(gradient="snap1").partial_fit(X[20:], y[20:])
    assert est._stream_state["influence"].shape[0] == 1
    assert np.isfinite(est.predict(X[:5])).all()


@pytest.mark.parametrize("cell", GATED)
def test_snap1_stream_learns_a_noisy_sine(cell):
    X, y = noisy_sine_stream(1500)
    est = snap1_stream_model(cell, n_hidden=6)
    assert prequential_error_ratio(est, X, y, chunk=50, start=1000) < 0.8


@pytest.mark.parametrize("cell", GATED)
def test_snap1_update_step_learns_a_sum_of_inputs(cell):
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(240, 5))
    y = X[:, -1] + X[:, -2]
    est = RTRLRegressor(
        6, cell=cell, gradient="snap1", update="step", learning_rate_init=0.01,
        max_iter=6, random_state=0,
    ).fit(X[:200], y[:200])  # fmt: skip
    assert est.score(X[200:], y[200:]) > 0.8
