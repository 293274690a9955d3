"""Gated cells (GRU, LSTM): exact RTRL through the gates, torch's layout.

The references here are independent plain-numpy implementations of torch's
equations (a forward pass and backpropagation through time); they share no
code with the package. Where torch is installed, the parameters are also
loaded into ``torch.nn.GRU`` / ``torch.nn.LSTM``.
"""

import copy
import pickle
import warnings

import numpy as np
import pytest
from scipy.special import expit, log_softmax
from sklearn.exceptions import ConvergenceWarning

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._kernels import _gated

GATED = ["gru", "lstm"]
N_GATES = {"gru": 3, "lstm": 4}


@pytest.fixture(autouse=True)
def _quiet_convergence():
    # Models are fitted for an epoch or a few, on purpose.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# -- plain-numpy references ---------------------------------------------------
def gru_step(p, x, h):
    """torch.nn.GRU, one step; returns h' and what the backward pass needs."""
    n = h.shape[0]
    gi = p["weight_ih"] @ x + p["bias_ih"]
    gh = p["weight_hh"] @ h + p["bias_hh"]
    r = expit(gi[:n] + gh[:n])
    z = expit(gi[n : 2 * n] + gh[n : 2 * n])
    u = gh[2 * n :]
    e = np.tanh(gi[2 * n :] + r * u)
    return (1 - z) * e + z * h, (r, z, u, e)


def lstm_step(p, x, h, c):
    """torch.nn.LSTM, one step; returns h', c' and the gate values."""
    n = h.shape[0]
    a = p["weight_ih"] @ x + p["bias_ih"] + p["weight_hh"] @ h + p["bias_hh"]
    i, f = expit(a[:n]), expit(a[n : 2 * n])
    g, o = np.tanh(a[2 * n : 3 * n]), expit(a[3 * n :])
    c_new = f * c + i * g
    return o * np.tanh(c_new), c_new, (i, f, g, o)


def forward(cell, p, x, state=None):
    """Hidden states h_1..h_T of one sequence, and the final full state."""
    n = p["weight_hh"].shape[1]
    h = np.zeros(n) if state is None else np.array(state[:n], dtype=float)
    c = np.zeros(n) if state is None or cell == "gru" else np.array(state[n:], float)
    hs = []
    for t in range(x.shape[0]):
        if cell == "gru":
            h, _ = gru_step(p, x[t], h)
        else:
            h, c, _ = lstm_step(p, x[t], h, c)
        hs.append(h)
    final = h if cell == "gru" else np.concatenate([h, c])
    return np.array(hs), final


def loss_and_output_grad(kind, z, y):
    """Loss of one target and its gradient w.r.t. the readout z."""
    if kind == "squared_error":
        return 0.5 * np.mean((z - y) ** 2), (z - y) / z.shape[0]
    if kind == "log_loss_binary":
        p = expit(z[0])
        loss = -(y[0] * np.log(p) + (1 - y[0]) * np.log(1 - p))
        return loss, np.array([p - y[0]])
    log_p = log_softmax(z)
    return -np.sum(y * log_p), np.exp(log_p) - y


def bptt(cell, p, sequences, targets, weights, loss_kind, every_step):
    """Loss and gradient by backpropagation through time."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in p.items()}
    n = p["weight_hh"].shape[1]
    W_hh, W_out = p["weight_hh"], p["weight_out"]
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    total = 0.0
    for x, y, w in zip(sequences, targets, weights):
        T = x.shape[0]
        h, c, tape = np.zeros(n), np.zeros(n), []
        for t in range(T):
            if cell == "gru":
                h_new, gates = gru_step(p, x[t], h)
                tape.append((h, gates))
            else:
                h_new, c_new, gates = lstm_step(p, x[t], h, c)
                tape.append((h, c, c_new, gates))
                c = c_new
            h = h_new
            tape[-1] = tape[-1] + (h,)
        dh, dc = np.zeros(n), np.zeros(n)
        for t in reversed(range(T)):
            h_t = tape[t][-1]
            if every_step or t == T - 1:
                target = y[t] if every_step else y
                scale = w / T if every_step else w
                loss, dz = loss_and_output_grad(
                    loss_kind, W_out @ h_t + p["bias_out"], target
                )
                total += scale * loss
                dz = scale * dz
                grads["weight_out"] += np.outer(dz, h_t)
                grads["bias_out"] += dz
                dh = dh + W_out.T @ dz
            if cell == "gru":
                h_prev, (r, z, u, e), _ = tape[t]
                da_n = dh * (1 - z) * (1 - e**2)
                da_z = dh * (h_prev - e) * z * (1 - z)
                da_r = da_n * u * r * (1 - r)
                du = da_n * r
                d_ih = np.concatenate([da_r, da_z, da_n])
                d_hh = np.concatenate([da_r, da_z, du])
                dh = dh * z + W_hh.T @ d_hh
            else:
                h_prev, c_prev, c_t, (i, f, g, o), _ = tape[t]
                tc = np.tanh(c_t)
                dc = dc + dh * o * (1 - tc**2)
                d_ih = np.concatenate(
                    [
                        dc * g * i * (1 - i),
                        dc * c_prev * f * (1 - f),
                        dc * i * (1 - g**2),
                        dh * tc * o * (1 - o),
                    ]
                )
                d_hh = d_ih
                dc = dc * f
                dh = W_hh.T @ d_hh
            grads["weight_ih"] += np.outer(d_ih, x[t])
            grads["weight_hh"] += np.outer(d_hh, h_prev)
            grads["bias_ih"] += d_ih
            grads["bias_hh"] += d_hh
    return total, grads


# -- helpers --------------------------------------------------------------------
def random_sequences(rng, n_seq, n_features, min_len=1, max_len=7, dtype=np.float64):
    lengths = rng.randint(min_len, max_len + 1, size=n_seq)
    return [rng.normal(size=(T, n_features)).astype(dtype) for T in lengths]


def randomize(est, rng, scale=0.8):
    """Random parameters, written in place into ``params_``."""
    for value in est.params_.values():
        value[...] = rng.uniform(-scale, scale, size=value.shape)
    return est


def make_case(cell, kind, k, every_step, rng, **params):
    """A fitted model with random parameters, data, targets in the user's form
    and as the reference reads them, and the loss name."""
    n_hidden, n_features = rng.randint(2, 6), rng.randint(1, 4)
    X = random_sequences(rng, rng.randint(4, 8), n_features)
    output = "sequence" if every_step else "last"
    common = dict(cell=cell, output=output, max_iter=1, alpha=0.0, random_state=0)
    common.update(params)
    if kind == "regression":
        shape = lambda T: (T, k) if every_step else (k,)  # noqa: E731
        y = [rng.normal(size=shape(x.shape[0])) for x in X]
        if k == 1:
            y = [v[..., 0] for v in y]
        est = RTRLRegressor(n_hidden, **common).fit(X, y)
        y_ref = [np.reshape(v, shape(x.shape[0])) for v, x in zip(y, X)]
        loss_kind = "squared_error"
    else:
        est = RTRLClassifier(n_hidden, **common)
        # Every class must be present for the fit that sets classes_.
        if every_step:
            fit_y = [np.arange(x.shape[0]) % k for x in X]
        else:
            fit_y = np.arange(len(X)) % k
        est.fit(X, fit_y)
        y = [
            rng.randint(0, k, size=x.shape[0]) if every_step else rng.randint(k)
            for x in X
        ]
        if not every_step:
            y = np.array(y)
        if k == 2:
            y_ref = [np.asarray(v, float).reshape(-1, 1) for v in y]
            if not every_step:
                y_ref = [v[0] for v in y_ref]
            loss_kind = "log_loss_binary"
        else:
            y_ref = [np.eye(k)[v] for v in y]
            loss_kind = "log_loss"
    return randomize(est, rng), X, y, y_ref, loss_kind


CASES = [
    # estimator kind, n_outputs / n_classes, every_step
    ("regression", 1, False),
    ("regression", 3, True),
    ("binary", 2, False),
    ("binary", 2, True),
    ("multiclass", 3, False),
    ("multiclass", 4, True),
]


# -- layout -------------------------------------------------------------------
@pytest.mark.parametrize("cell", GATED)
def test_params_have_torch_names_shapes_and_views(cell):
    rng = np.random.RandomState(0)
    X = random_sequences(rng, 5, 3)
    est = RTRLRegressor(4, cell=cell, max_iter=1).fit(X, rng.normal(size=5))
    G = N_GATES[cell]
    shapes = {k: v.shape for k, v in est.params_.items()}
    assert shapes == {
        "weight_ih": (G * 4, 3),
        "weight_hh": (G * 4, 4),
        "bias_ih": (G * 4,),
        "bias_hh": (G * 4,),
        "weight_out": (1, 4),
        "bias_out": (1,),
    }
    # Every entry of the flat vector is in exactly one view.
    flat = est._flat_params
    flat[:] = np.arange(flat.shape[0])
    ids = np.concatenate([v.ravel() for v in est.params_.values()])
    np.testing.assert_array_equal(np.sort(ids), np.arange(flat.shape[0]))


# -- gradients ----------------------------------------------------------------
@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("kind, k, every_step", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_rtrl_gradient_equals_bptt(cell, kind, k, every_step, seed):
    rng = np.random.RandomState(seed)
    est, X, y, y_ref, loss_kind = make_case(cell, kind, k, every_step, rng)
    weights = rng.uniform(0.2, 2.0, size=len(X))
    loss, grad = est.loss_gradient(X, y, sample_weight=weights)
    ref_loss, ref_grad = bptt(
        cell, est.params_, X, y_ref, weights / weights.sum(), loss_kind, every_step
    )
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    assert set(grad) == set(est.params_)
    for name in grad:
        assert grad[name].shape == est.params_[name].shape
        np.testing.assert_allclose(
            grad[name], ref_grad[name], rtol=1e-7, atol=1e-12, err_msg=name
        )


FD_CASES = [
    ("gru", "regression", 2, False),
    ("gru", "multiclass", 3, True),
    ("lstm", "regression", 1, True),
    ("lstm", "binary", 2, False),
]


@pytest.mark.parametrize("cell, kind, k, every_step", FD_CASES)
def test_rtrl_gradient_equals_finite_differences(cell, kind, k, every_step):
    rng = np.random.RandomState(3)
    est, X, y, _, _ = make_case(cell, kind, k, every_step, rng)
    est.set_params(alpha=1e-2)  # the penalty is part of the objective
    _, grad = est.loss_gradient(X, y)
    eps = 1e-6
    for name, value in est.params_.items():
        numeric = np.zeros(value.shape)
        for index in np.ndindex(value.shape):
            original = value[index]
            value[index] = original + eps
            plus, _ = est.loss_gradient(X, y)
            value[index] = original - eps
            minus, _ = est.loss_gradient(X, y)
            value[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(
            grad[name], numeric, rtol=1e-7, atol=1e-9, err_msg=name
        )


def test_lstm_split_and_dense_jacobian_agree():
    """The LSTM kernel splits off the diagonal half of its state Jacobian;
    the dense product gives the same gradient."""
    rng = np.random.RandomState(4)
    est, X, y, _, _ = make_case("lstm", "regression", 2, True, rng)
    cell = est._cell
    packed_X = np.concatenate(X)
    lengths = np.array([x.shape[0] for x in X], dtype=np.intp)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
    Y = np.concatenate(y)
    theta, _, W_out, b_out = cell.layout.blocks(est._flat_params)
    out = []
    for dense in (False, True):
        ws = cell.workspace(len(X), 1, np.float64)
        _gated.gated_rtrl_minibatch(
            cell.kind, packed_X, Y, starts, starts, lengths, np.ones(len(Y)),
            1.0, True, theta, W_out, b_out, 0, ws["grad"], ws["influence"],
            ws["scratch"], ws["loss"], lstm_dense=dense,
        )  # fmt: skip
        out.append(ws["grad"].copy())
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("every_step", [False, True])
@pytest.mark.parametrize("columns", [7, 8, 24, 100])
def test_influence_product_in_column_blocks_gives_the_bptt_gradient(
    cell, every_step, columns
):
    """The kernel splits the influence GEMM into column blocks (their width
    depends on n; the small models of the other tests fit one block), each
    with its own immediate term, LSTM diagonal pass and gradient
    contraction; any width, also one that cuts through a row of theta's
    columns, gives the BPTT gradient."""
    rng = np.random.RandomState(columns)
    est, X, y, y_ref, loss_kind = make_case(cell, "regression", 2, every_step, rng)
    _gated._set_block_columns(columns)
    try:
        loss, grad = est.loss_gradient(X, y)
    finally:
        _gated._set_block_columns(0)
    weights = np.full(len(X), 1.0 / len(X))
    ref_loss, ref_grad = bptt(
        cell, est.params_, X, y_ref, weights, loss_kind, every_step
    )
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    for name in grad:
        np.testing.assert_allclose(
            grad[name], ref_grad[name], rtol=1e-7, atol=1e-12, err_msg=name
        )


@pytest.mark.parametrize("cell", GATED)
def test_step_updates_in_column_blocks_are_the_same(cell):
    """The online kernel (update="step") shares the blocked influence
    update; narrow blocks give the same parameters."""
    rng = np.random.RandomState(5)
    X = rng.normal(size=(2, 12, 2))
    y = rng.normal(size=(2, 12))
    params = {}
    for columns in (0, 7):
        est = RTRLRegressor(
            5, cell=cell, output="sequence", update="step", random_state=0
        )
        _gated._set_block_columns(columns)
        try:
            est.partial_fit(X, y)
        finally:
            _gated._set_block_columns(0)
        params[columns] = est._flat_params.copy()
    np.testing.assert_allclose(params[7], params[0], rtol=1e-12, atol=1e-14)


def test_set_block_columns_rejects_negative_widths():
    with pytest.raises(ValueError, match="columns must be >= 0"):
        _gated._set_block_columns(-1)


@pytest.mark.parametrize("cell", GATED)
def test_threads_give_the_same_gradient(cell):
    rng = np.random.RandomState(5)
    est, X, y, _, _ = make_case(cell, "regression", 2, False, rng)
    _, one = est.loss_gradient(X, y)
    est.set_params(n_jobs=2)
    _, two = est.loss_gradient(X, y)
    for name in one:
        np.testing.assert_array_equal(one[name], two[name])


# -- forward pass -------------------------------------------------------------
@pytest.mark.parametrize("cell", GATED)
def test_predictions_follow_torch_equations(cell):
    rng = np.random.RandomState(6)
    X = random_sequences(rng, 6, 2, max_len=9)
    y = [rng.normal(size=(x.shape[0], 2)) for x in X]
    est = randomize(
        RTRLRegressor(5, cell=cell, output="sequence", max_iter=1).fit(X, y), rng
    )
    p = est.params_
    pred = est.predict(X)
    for x, out in zip(X, pred):
        hs, _ = forward(cell, p, x)
        np.testing.assert_allclose(
            out, hs @ p["weight_out"].T + p["bias_out"], rtol=1e-12, atol=1e-14
        )
    clf = RTRLClassifier(4, cell=cell, max_iter=1).fit(X, np.arange(6) % 3)
    randomize(clf, rng)
    logits = np.array([forward(cell, clf.params_, x)[0][-1] for x in X])
    logits = logits @ clf.params_["weight_out"].T + clf.params_["bias_out"]
    expected = np.exp(log_softmax(logits, axis=1))
    np.testing.assert_allclose(clf.predict_proba(X), expected, rtol=1e-10)


@pytest.mark.parametrize("cell", GATED)
def test_torch_modules_give_the_same_states_and_outputs(cell):
    torch = pytest.importorskip("torch")
    rng = np.random.RandomState(7)
    n, m, T = 6, 3, 8
    X = rng.normal(size=(4, T, m))
    y = rng.normal(size=(4, T, 2))
    est = randomize(
        RTRLRegressor(n, cell=cell, output="sequence", max_iter=1).fit(X, y), rng
    )
    module = (torch.nn.GRU if cell == "gru" else torch.nn.LSTM)(
        m, n, batch_first=True
    ).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(module, f"{name}_l0").copy_(torch.from_numpy(est.params_[name]))
        hs, _ = module(torch.from_numpy(X))
    hs = hs.numpy()
    cell_obj = est._cell
    starts = np.arange(0, 4 * T, T, dtype=np.intp)
    H = cell_obj.forward(
        est._flat_params,
        np.ascontiguousarray(X.reshape(-1, m)),
        starts,
        np.full(4, T, dtype=np.intp),
        True,
    )
    np.testing.assert_allclose(H.reshape(4, T, n), hs, rtol=1e-12, atol=1e-14)
    expected = hs @ est.params_["weight_out"].T + est.params_["bias_out"]
    np.testing.assert_allclose(est.predict(X), expected, rtol=1e-12, atol=1e-14)
    # And torch's weights load into skrtrl as they are.
    twin = RTRLRegressor(n, cell=cell, output="sequence", max_iter=1).fit(X, y)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        twin.params_[name] = getattr(module, f"{name}_l0").detach().numpy()
    for name in ("weight_out", "bias_out"):
        twin.params_[name] = est.params_[name].copy()
    np.testing.assert_allclose(twin.predict(X), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", GATED)
def test_activation_is_ignored(cell):
    rng = np.random.RandomState(8)
    X = random_sequences(rng, 5, 2)
    y = rng.normal(size=5)
    common = dict(cell=cell, max_iter=2, random_state=0)
    a = RTRLRegressor(3, **common).fit(X, y)
    b = RTRLRegressor(3, activation="relu", **common).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


# -- streams and real-time updates -------------------------------------------
def noisy_sine_stream(n_steps, seed=0):
    rng = np.random.RandomState(seed)
    x = np.sin(0.3 * np.arange(n_steps + 1)) + 0.1 * rng.normal(size=n_steps + 1)
    return x[:-1, None], x[1:]


def stream_model(cell, **params):
    defaults = dict(
        n_hidden=4, cell=cell, stateful=True, learning_rate_init=0.01, random_state=0
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
    for name in a[0]:
        np.testing.assert_allclose(a[0][name], b[0][name], err_msg=name, **tol)
    for name in a[1]:
        np.testing.assert_allclose(a[1][name], b[1][name], err_msg=name, **tol)
    np.testing.assert_allclose(a[2], b[2], **tol)
    assert a[3] == b[3]


@pytest.mark.parametrize("cell", GATED)
def test_stream_chunk_size_does_not_matter(cell):
    X, y = noisy_sine_stream(60)
    whole = stream_model(cell).partial_fit(X, y)
    assert whole._stream_state["hidden"].shape == (4 if cell == "gru" else 8,)
    for chunk in (1, 7):
        pieces = stream_model(cell)
        for start in range(0, len(X), chunk):
            pieces.partial_fit(X[start : start + chunk], y[start : start + chunk])
        assert_same_snapshot(snapshot(whole), snapshot(pieces), rtol=1e-10, atol=1e-13)
    # Predictions run on from the full state ([h, c] for the LSTM).
    X_next, _ = noisy_sine_stream(10, seed=1)
    hs, _ = forward(cell, whole.params_, X_next, whole._stream_state["hidden"])
    expected = hs @ whole.params_["weight_out"].T + whole.params_["bias_out"]
    np.testing.assert_allclose(whole.predict(X_next), expected[:, 0], rtol=1e-10)


@pytest.mark.parametrize("cell", GATED)
def test_stream_state_follows_the_forward_pass(cell):
    X, y = noisy_sine_stream(30)
    est = stream_model(cell, learning_rate_init=1e-12).partial_fit(X, y)
    _, final = forward(cell, est.params_, X)
    np.testing.assert_allclose(est._stream_state["hidden"], final, rtol=1e-8)


@pytest.mark.parametrize("cell", GATED)
def test_pickled_mid_stream_continues_exactly(cell):
    X, y = noisy_sine_stream(80)
    est = stream_model(cell).partial_fit(X[:40], y[:40])
    restored = pickle.loads(pickle.dumps(est))
    twin = copy.deepcopy(est)
    for model in (est, restored, twin):
        model.partial_fit(X[40:], y[40:])
    assert_same_snapshot(snapshot(est), snapshot(restored), rtol=0, atol=0)
    assert_same_snapshot(snapshot(est), snapshot(twin), rtol=0, atol=0)


@pytest.mark.parametrize("cell", GATED)
def test_step_updates_equal_batch_update_to_first_order(cell):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(1, 10, 2))
    y = rng.normal(size=(1, 10))
    common = dict(
        n_hidden=3,
        cell=cell,
        output="sequence",
        solver="sgd",
        momentum=0.0,
        learning_rate_init=1e-6,
        alpha=0.0,
        clip_norm=None,
        random_state=0,
    )
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
def test_update_step_learns_a_sum_of_inputs(cell):
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(240, 5))
    y = X[:, -1] + X[:, -2]
    est = RTRLRegressor(
        6, cell=cell, update="step", learning_rate_init=0.01, max_iter=6,
        random_state=0,
    ).fit(X[:200], y[:200])  # fmt: skip
    # Measured: 0.998 (GRU), 0.988 (LSTM).
    assert est.score(X[200:], y[200:]) > 0.8


@pytest.mark.parametrize("cell", GATED)
def test_stream_learns_a_noisy_sine(cell):
    X, y = noisy_sine_stream(1500)
    est = stream_model(cell, n_hidden=6, learning_rate_init=0.01)
    predictions = np.empty_like(y)
    for start in range(0, len(X), 50):
        rows = slice(start, start + 50)
        predictions[rows] = est.predict(X[rows]) if start else X[rows, 0]
        est.partial_fit(X[rows], y[rows])
    late = slice(1000, None)
    rmse = np.sqrt(np.mean((predictions[late] - y[late]) ** 2))
    persistence = np.sqrt(np.mean((X[late, 0] - y[late]) ** 2))
    # Measured: 0.60 (GRU), 0.58 (LSTM) of persistence's error.
    assert rmse < 0.8 * persistence


# -- float32 ------------------------------------------------------------------
@pytest.mark.parametrize("cell", GATED)
def test_float32_matches_float64(cell):
    rng = np.random.RandomState(9)
    X64 = random_sequences(rng, 6, 3)
    X32 = [x.astype(np.float32) for x in X64]
    y = rng.normal(size=6)
    est64 = randomize(RTRLRegressor(4, cell=cell, max_iter=1).fit(X64, y), rng, 0.5)
    est32 = RTRLRegressor(4, cell=cell, max_iter=1).fit(X32, y.astype(np.float32))
    assert est32.params_["weight_hh"].dtype == np.float32
    for name, value in est64.params_.items():
        est32.params_[name][...] = value
    loss64, grad64 = est64.loss_gradient(X64, y)
    loss32, grad32 = est32.loss_gradient(X32, y.astype(np.float32))
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    for name in grad64:
        assert grad32[name].dtype == np.float32
        np.testing.assert_allclose(grad32[name], grad64[name], rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(est32.predict(X32), est64.predict(X64), rtol=1e-5)
    # Training and streams run in float32 too.
    est32.set_params(max_iter=3).fit(X32, y.astype(np.float32))
    assert est32._flat_params.dtype == np.float32
    stream = stream_model(cell)
    Xs, ys = noisy_sine_stream(20)
    stream.partial_fit(Xs.astype(np.float32), ys.astype(np.float32))
    assert stream._stream_state["influence"].dtype == np.float32
    assert np.isfinite(stream.predict(Xs.astype(np.float32))).all()
