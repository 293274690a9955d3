"""SnAp-1 for the gated cells (GRU, LSTM).

SnAp-1 (Menick et al., 2020) keeps, of the RTRL influence d s_t / d theta,
only the block of each unit's state (h_i, and c_i for the LSTM) with respect
to that unit's own gate rows of theta. The reference here is dense RTRL in
plain numpy whose Jacobians are taken by complex-step differentiation of
torch's cell equations (no hand-derived derivative is shared with the
kernel), with the influence cut back to those blocks after every step.
"""

import warnings

import numpy as np
import pytest
from scipy.special import log_softmax
from sklearn.exceptions import ConvergenceWarning

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._cells import GRUCell, LSTMCell

GATED = ["gru", "lstm"]
N_GATES = {"gru": 3, "lstm": 4}
STEP = 1e-30  # complex step: derivatives exact to rounding, no cancellation


@pytest.fixture(autouse=True)
def _quiet_convergence():
    # Models are fitted for an epoch or a few, on purpose.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# -- dense reference ------------------------------------------------------------
def sigmoid(a):
    return 1 / (1 + np.exp(-a))  # also for complex arguments


def cell_step(cell, theta, x, s, n):
    """torch's GRU / LSTM step on stacked theta rows [W_ih | W_hh | b_ih | b_hh].

    ``theta`` (..., G*n, q) and ``s`` (..., S) may carry a leading batch
    axis, and be complex (for the complex step).
    """
    m = x.shape[0]
    h = s[..., :n]
    gi = theta[..., :m] @ x + theta[..., m + n]
    gh = (theta[..., m : m + n] @ h[..., None])[..., 0] + theta[..., m + n + 1]
    if cell == "gru":
        r = sigmoid(gi[..., :n] + gh[..., :n])
        z = sigmoid(gi[..., n : 2 * n] + gh[..., n : 2 * n])
        e = np.tanh(gi[..., 2 * n :] + r * gh[..., 2 * n :])
        return (1 - z) * e + z * h
    a = gi + gh
    i, f = sigmoid(a[..., :n]), sigmoid(a[..., n : 2 * n])
    g, o = np.tanh(a[..., 2 * n : 3 * n]), sigmoid(a[..., 3 * n :])
    c = f * s[..., n:] + i * g
    return np.concatenate([o * np.tanh(c), c], axis=-1)


def step_jacobians(cell, theta, x, s, n):
    """d s_t / d s_{t-1} (S x S) and d s_t / d theta (S x G*n*q)."""
    S, K = s.shape[0], theta.size
    s_batch = s + 1j * STEP * np.eye(S)
    J = cell_step(cell, theta[None].astype(complex), x, s_batch, n).imag / STEP
    theta_batch = theta + 1j * STEP * np.eye(K).reshape((K, *theta.shape))
    s_wide = np.broadcast_to(s.astype(complex), (K, S))
    I = cell_step(cell, theta_batch, x, s_wide, n).imag / STEP  # noqa: E741
    return J.T, I.T


def loss_and_output_grad(kind, z, y):
    """Loss of one target and its gradient w.r.t. the readout z."""
    if kind == "squared_error":
        return 0.5 * np.mean((z - y) ** 2), (z - y) / z.shape[0]
    if kind == "log_loss_binary":
        p = sigmoid(z[0])
        loss = -(y[0] * np.log(p) + (1 - y[0]) * np.log(1 - p))
        return loss, np.array([p - y[0]])
    log_p = log_softmax(z)
    return -np.sum(y * log_p), np.exp(log_p) - y


def unit_blocks(cell, n, q):
    """Mask of the SnAp-1 entries: state row of unit i, column of a theta row
    of unit i (row g*n + i of theta belongs to unit i)."""
    S = n if cell == "gru" else 2 * n
    G = N_GATES[cell]
    state_unit = np.arange(S) % n
    column_unit = (np.arange(G * n * q) // q) % n
    return state_unit[:, None] == column_unit[None, :]


def dense_rtrl(cell, p, sequences, targets, weights, loss_kind, every_step, cut):
    """Loss, gradient and final influence of dense RTRL; ``cut`` keeps only
    the SnAp-1 blocks after every step (None: exact RTRL)."""
    theta = np.hstack(
        [p["weight_ih"], p["weight_hh"], p["bias_ih"][:, None], p["bias_hh"][:, None]]
    )
    W_out, b_out = p["weight_out"], p["bias_out"]
    n = W_out.shape[1]
    q = theta.shape[1]
    S = n if cell == "gru" else 2 * n
    g_theta = np.zeros(theta.size)
    grads = {"weight_out": np.zeros_like(W_out), "bias_out": np.zeros_like(b_out)}
    total = 0.0
    for x, y, w in zip(sequences, targets, weights):
        s, P = np.zeros(S), np.zeros((S, theta.size))
        T = x.shape[0]
        for t in range(T):
            J, I = step_jacobians(cell, theta, x[t], s, n)  # noqa: E741
            s = cell_step(cell, theta, x[t], s, n)
            P = J @ P + I
            if cut is not None:
                P[~cut] = 0.0
            if every_step or t == T - 1:
                scale = w / T if every_step else w
                loss, dz = loss_and_output_grad(
                    loss_kind, W_out @ s[:n] + b_out, y[t] if every_step else y
                )
                total += scale * loss
                dz = scale * dz
                grads["weight_out"] += np.outer(dz, s[:n])
                grads["bias_out"] += dz
                g_theta += (W_out.T @ dz) @ P[:n]
    g_theta = g_theta.reshape(theta.shape)
    m = p["weight_ih"].shape[1]
    grads.update(
        weight_ih=g_theta[:, :m],
        weight_hh=g_theta[:, m : m + n],
        bias_ih=g_theta[:, m + n],
        bias_hh=g_theta[:, m + n + 1],
    )
    return total, grads, P, q


# -- cases ----------------------------------------------------------------------
def random_sequences(rng, n_seq, n_features, min_len=1, max_len=7):
    lengths = rng.randint(min_len, max_len + 1, size=n_seq)
    return [rng.normal(size=(T, n_features)) for T in lengths]


def randomize(est, rng, scale=0.8):
    for value in est.params_.values():
        value[...] = rng.uniform(-scale, scale, size=value.shape)
    return est


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
        return randomize(est, rng), X, y, y, "squared_error"
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
        return randomize(est, rng), X, y, y_ref, "log_loss_binary"
    return randomize(est, rng), X, y, [np.eye(k)[v] for v in y], "log_loss"


CASES = [
    # estimator kind, n_outputs / n_classes, every_step
    ("regression", 1, False),
    ("regression", 3, True),
    ("binary", 2, False),
    ("binary", 2, True),
    ("multiclass", 3, False),
    ("multiclass", 4, True),
]


def assert_same_gradient(grad, expected, loss=None, expected_loss=None):
    if loss is not None:
        assert loss == pytest.approx(expected_loss, rel=1e-10)
    assert set(grad) == set(expected)
    for name in grad:
        assert grad[name].shape == expected[name].shape, name
        np.testing.assert_allclose(
            grad[name], expected[name], rtol=1e-7, atol=1e-12, err_msg=name
        )


# -- gradients ------------------------------------------------------------------
@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("every_step", [False, True])
def test_dense_reference_without_cut_is_exact_rtrl(cell, every_step):
    """The reference itself: uncut, it gives the exact kernel's gradient."""
    rng = np.random.RandomState(10)
    est, X, y, y_ref, loss_kind = make_case(
        cell, "regression", 2, every_step, rng, gradient="rtrl"
    )
    loss, grad = est.loss_gradient(X, y)
    ref_loss, ref_grad, _, _ = dense_rtrl(
        cell, est.params_, X, y_ref, np.full(len(X), 1 / len(X)), loss_kind,
        every_step, cut=None,
    )  # fmt: skip
    assert_same_gradient(grad, ref_grad, loss, ref_loss)


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("kind, k, every_step", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_snap1_equals_influence_restricted_to_unit_blocks(
    cell, kind, k, every_step, seed
):
    rng = np.random.RandomState(seed)
    est, X, y, y_ref, loss_kind = make_case(cell, kind, k, every_step, rng)
    weights = rng.uniform(0.2, 2.0, size=len(X))
    loss, grad = est.loss_gradient(X, y, sample_weight=weights)
    n, m = est.n_hidden, X[0].shape[1]
    ref_loss, ref_grad, _, _ = dense_rtrl(
        cell, est.params_, X, y_ref, weights / weights.sum(), loss_kind,
        every_step, cut=unit_blocks(cell, n, m + n + 2),
    )  # fmt: skip
    assert_same_gradient(grad, ref_grad, loss, ref_loss)
    # And it is an approximation: with n >= 2 the exact gradient differs.
    est.set_params(gradient="rtrl")
    _, exact = est.loss_gradient(X, y, sample_weight=weights)
    assert not np.allclose(exact["weight_hh"], grad["weight_hh"])
    np.testing.assert_allclose(exact["weight_out"], grad["weight_out"], rtol=1e-12)


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("kind, k, every_step", CASES[:4])
def test_snap1_with_one_unit_is_exact_rtrl(cell, kind, k, every_step):
    rng = np.random.RandomState(2)
    est, X, y, _, _ = make_case(cell, kind, k, every_step, rng, n_hidden=1)
    loss, grad = est.loss_gradient(X, y)
    est.set_params(gradient="rtrl")
    exact_loss, exact = est.loss_gradient(X, y)
    assert loss == exact_loss
    for name in grad:
        np.testing.assert_allclose(
            grad[name], exact[name], rtol=1e-12, atol=1e-15, err_msg=name
        )


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
    for name, value in est64.params_.items():
        est32.params_[name][...] = value
    loss64, grad64 = est64.loss_gradient(X64, y)
    loss32, grad32 = est32.loss_gradient(X32, y.astype(np.float32))
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    for name in grad64:
        assert grad32[name].dtype == np.float32
        np.testing.assert_allclose(grad32[name], grad64[name], rtol=2e-4, atol=1e-6)


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
def noisy_sine_stream(n_steps, seed=0):
    rng = np.random.RandomState(seed)
    x = np.sin(0.3 * np.arange(n_steps + 1)) + 0.1 * rng.normal(size=n_steps + 1)
    return x[:-1, None], x[1:]


def stream_model(cell, **params):
    defaults = dict(
        n_hidden=4,
        cell=cell,
        gradient="snap1",
        stateful=True,
        learning_rate_init=0.01,
        random_state=0,
    )
    defaults.update(params)
    return RTRLRegressor(**defaults)


def snapshot(est):
    return (
        {k: v.copy() for k, v in est.params_.items()},
        {k: np.copy(v) for k, v in est._stream_state.items()},
        est._optimizer.m.copy(),
        est.t_,
    )


def assert_same_snapshot(a, b, **tol):
    for part in (0, 1):
        for name in a[part]:
            np.testing.assert_allclose(a[part][name], b[part][name], **tol)
    np.testing.assert_allclose(a[2], b[2], **tol)
    assert a[3] == b[3]


@pytest.mark.parametrize("cell", GATED)
def test_stream_chunk_size_does_not_matter(cell):
    X, y = noisy_sine_stream(60)
    whole = stream_model(cell).partial_fit(X, y)
    for chunk in (1, 7):
        pieces = stream_model(cell)
        for start in range(0, len(X), chunk):
            pieces.partial_fit(X[start : start + chunk], y[start : start + chunk])
        assert_same_snapshot(snapshot(whole), snapshot(pieces), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("cell", GATED)
def test_stream_influence_follows_the_dense_reference(cell):
    """With a negligible learning rate the weights stay put, so the carried
    state and SnAp-1 influence are those of the cut dense RTRL."""
    X, y = noisy_sine_stream(25)
    est = stream_model(cell, learning_rate_init=1e-14).partial_fit(X, y)
    n, q = 4, 1 + 4 + 2
    _, _, P, _ = dense_rtrl(
        cell, est.params_, [X], [y], [1.0], "squared_error", True,
        cut=unit_blocks(cell, n, q),
    )  # fmt: skip
    # The kernel stores d h_i / d theta[row] (then d c_i / d theta[row]) in
    # theta's row order: row g*n + i belongs to unit i.
    rows = np.arange(N_GATES[cell] * n)
    kept = [P[rows % n].reshape(len(rows), len(rows), q)[rows, rows]]
    if cell == "lstm":
        kept.append(P[n + rows % n].reshape(len(rows), len(rows), q)[rows, rows])
    np.testing.assert_allclose(
        est._stream_state["influence"][0], np.concatenate(kept).ravel(), rtol=1e-8,
        atol=1e-12,
    )  # fmt: skip


@pytest.mark.parametrize("cell", GATED)
def test_step_updates_equal_batch_update_to_first_order(cell):
    """The real-time kernel and the minibatch kernel agree: a tiny learning
    rate moves the weights by the same total."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(1, 10, 2))
    y = rng.normal(size=(1, 10))
    common = dict(
        n_hidden=3, cell=cell, gradient="snap1", output="sequence", solver="sgd",
        momentum=0.0, learning_rate_init=1e-6, alpha=0.0, clip_norm=None,
        random_state=0,
    )  # fmt: skip
    batch = RTRLRegressor(update="batch", **common).partial_fit(X, y)
    step = RTRLRegressor(update="step", **common).partial_fit(X, y)
    start = {k: rng.uniform(-0.5, 0.5, size=v.shape) for k, v in batch.params_.items()}
    for model in (batch, step):
        for name, value in start.items():
            model.params_[name][...] = value
        model.partial_fit(X, y)
    for name in start:
        moved_batch = batch.params_[name] - start[name]
        moved_step = step.params_[name] - start[name]
        assert np.abs(moved_batch).max() > 1e-9
        np.testing.assert_allclose(
            moved_step, moved_batch, rtol=1e-4, atol=1e-14, err_msg=name
        )


@pytest.mark.parametrize("cell", GATED)
def test_switching_gradient_mid_stream_restarts_the_state(cell):
    X, y = noisy_sine_stream(40)
    est = stream_model(cell, gradient="rtrl").partial_fit(X[:20], y[:20])
    est.set_params(gradient="snap1").partial_fit(X[20:], y[20:])
    assert est._stream_state["influence"].shape[0] == 1
    assert np.isfinite(est.predict(X[:5])).all()


@pytest.mark.parametrize("cell", GATED)
def test_snap1_stream_learns_a_noisy_sine(cell):
    X, y = noisy_sine_stream(1500)
    est = stream_model(cell, n_hidden=6)
    predictions = np.empty_like(y)
    for start in range(0, len(X), 50):
        rows = slice(start, start + 50)
        predictions[rows] = est.predict(X[rows]) if start else X[rows, 0]
        est.partial_fit(X[rows], y[rows])
    late = slice(1000, None)
    rmse = np.sqrt(np.mean((predictions[late] - y[late]) ** 2))
    persistence = np.sqrt(np.mean((X[late, 0] - y[late]) ** 2))
    assert rmse < 0.8 * persistence


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
