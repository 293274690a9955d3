"""Gated cells (GRU, LSTM): exact RTRL through the gates, torch's layout.

The references here are plain numpy and share no code with the kernels: the
forward pass of ``skrtrl/inspection/_cell_steps.py`` (torch's equations)
and the numpy RTRL of ``tests/_reference.py`` built on it. Where torch is
installed, the parameters are also loaded into ``torch.nn.GRU`` /
``torch.nn.LSTM``. Gradients against finite differences, step updates and
streams against the numpy references, for every cell, gradient method and
mode: ``test_cell_conformance.py``.
"""

import copy
import pickle

import numpy as np
import pytest
from scipy.special import log_softmax

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._cells import kernel_codes
from skrtrl._kernels import _rtrl
from skrtrl._sequences import TrainingBatch

from _helpers import (
    assert_float32_gradient_matches,
    assert_same_snapshot,
    cell_forward,
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


# -- plain-numpy references ---------------------------------------------------
def forward(cell, p, x, state=None):
    """Hidden states h_1..h_T of one sequence, and the final full state."""
    states, final = cell_forward(cell, p, x, state=state)
    return states[:, : p["weight_hh"].shape[1]], final


def exact_gradient(cell, params, X, y_ref, loss_kind, every_step):
    """Loss and gradient of the numpy RTRL of ``tests/_reference.py`` (on
    the numpy steps of ``skrtrl/inspection/_cell_steps.py``), equal weights."""
    sequences = []
    for x, target in zip(X, y_ref):
        T = x.shape[0]
        rows = np.zeros((T, np.shape(target)[-1]))
        rows[slice(None) if every_step else -1] = target
        w = np.full(T, 1 / T) if every_step else np.eye(T)[-1]
        sequences.append((x, rows, w / len(X)))
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    result = rtrl(cell, p, "tanh", loss_kind, sequences)
    return result["loss"], result["layout"].arrays(result["gradient"])


# -- helpers --------------------------------------------------------------------
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
        est = RTRLClassifier(n_hidden, pooling="last", **common)
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
    return randomize(est, rng, 0.8), X, y, y_ref, loss_kind


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
def test_lstm_split_and_dense_jacobian_agree():
    """The LSTM kernel splits off the diagonal half of its state Jacobian;
    the dense product gives the same gradient."""
    rng = np.random.RandomState(4)
    est, X, y, _, _ = make_case("lstm", "regression", 2, True, rng)
    cell = est._cell
    lengths = np.array([x.shape[0] for x in X], dtype=np.intp)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.intp)
    Y = np.concatenate(y)
    batch = TrainingBatch(
        np.concatenate(X), Y, starts, starts, lengths, np.ones(len(Y)), True
    )
    out = []
    for dense in (False, True):
        ws = cell.workspace(len(X), 1, np.float64)
        _rtrl.rtrl_minibatch(
            *kernel_codes(cell, "squared_error"), batch, 1.0, est._flat_params,
            ws, dense=dense,
        )  # fmt: skip
        out.append(ws["grad"].copy())
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("cell", GATED)
@pytest.mark.parametrize("every_step", [False, True])
@pytest.mark.parametrize("columns", [7, 8, 24, 100])
def test_influence_product_in_column_blocks_gives_the_exact_gradient(
    cell, every_step, columns
):
    """The kernel splits the influence GEMM into column blocks (their width
    depends on n; the small models of the other tests fit one block), each
    with its own immediate term, LSTM diagonal pass and gradient
    contraction; any width, also one that cuts through a row of theta's
    columns, gives the exact gradient (numpy RTRL)."""
    rng = np.random.RandomState(columns)
    est, X, y, y_ref, loss_kind = make_case(cell, "regression", 2, every_step, rng)
    _rtrl._set_block_columns(columns)
    try:
        loss, grad = est.loss_gradient(X, y)
    finally:
        _rtrl._set_block_columns(0)
    ref_loss, ref_grad = exact_gradient(
        cell, est.params_, X, y_ref, loss_kind, every_step
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
        _rtrl._set_block_columns(columns)
        try:
            est.partial_fit(X, y)
        finally:
            _rtrl._set_block_columns(0)
        params[columns] = est._flat_params.copy()
    np.testing.assert_allclose(params[7], params[0], rtol=1e-12, atol=1e-14)


def test_set_block_columns_rejects_negative_widths():
    with pytest.raises(ValueError, match="columns must be >= 0"):
        _rtrl._set_block_columns(-1)


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
        RTRLRegressor(5, cell=cell, output="sequence", max_iter=1).fit(X, y), rng, 0.8
    )
    p = est.params_
    pred = est.predict(X)
    for x, out in zip(X, pred):
        hs, _ = forward(cell, p, x)
        np.testing.assert_allclose(
            out, hs @ p["weight_out"].T + p["bias_out"], rtol=1e-12, atol=1e-14
        )
    clf = RTRLClassifier(4, cell=cell, pooling="last", max_iter=1)
    clf = clf.fit(X, np.arange(6) % 3)
    randomize(clf, rng, 0.8)
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
        RTRLRegressor(n, cell=cell, output="sequence", max_iter=1).fit(X, y), rng, 0.8
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
def gated_stream_model(cell, **params):
    return stream_model(**{"n_hidden": 4, "cell": cell, **params})


@pytest.mark.parametrize("cell", GATED)
def test_stream_chunk_size_does_not_matter(cell):
    X, y = noisy_sine_stream(60)
    whole = gated_stream_model(cell).partial_fit(X, y)
    assert whole._stream_state["hidden"].shape == (4 if cell == "gru" else 8,)
    for chunk in (1, 7):
        pieces = gated_stream_model(cell)
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
    est = gated_stream_model(cell, learning_rate_init=1e-12).partial_fit(X, y)
    _, final = forward(cell, est.params_, X)
    np.testing.assert_allclose(est._stream_state["hidden"], final, rtol=1e-8)


@pytest.mark.parametrize("cell", GATED)
def test_pickled_mid_stream_continues_exactly(cell):
    X, y = noisy_sine_stream(80)
    est = gated_stream_model(cell).partial_fit(X[:40], y[:40])
    restored = pickle.loads(pickle.dumps(est))
    twin = copy.deepcopy(est)
    for model in (est, restored, twin):
        model.partial_fit(X[40:], y[40:])
    assert_same_snapshot(snapshot(est), snapshot(restored), rtol=0, atol=0)
    assert_same_snapshot(snapshot(est), snapshot(twin), rtol=0, atol=0)


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
    est = gated_stream_model(cell, n_hidden=6, learning_rate_init=0.01)
    # Measured: 0.60 (GRU), 0.58 (LSTM) of persistence's error.
    assert prequential_error_ratio(est, X, y, chunk=50, start=1000) < 0.8


# -- float32 ------------------------------------------------------------------
def test_float32_gates_are_within_three_ulp():
    # The float32 kernels take sigmoid and tanh from their own exponential
    # (``_exp_nonpositive``, written to run four units at a time): that
    # within 1.5 ulp of e^-|a| (measured: 1.12), the gates within 3
    # (measured: 2.25 and 1.86), and NaN, infinities and signed zeros as
    # numpy gives them.
    a = np.concatenate(
        [
            np.linspace(-120, 120, 400_001),
            np.geomspace(1e-30, 20, 20_001),
            -np.geomspace(1e-30, 20, 20_001),
            [0.0, -0.0, np.inf, -np.inf, np.nan],
        ]
    ).astype(np.float32)
    got = _rtrl._float32_gates(a)
    x = a.astype(np.float64)
    with np.errstate(over="ignore", divide="ignore"):
        exact = {
            "sigmoid": 1 / (1 + np.exp(-x)),
            "tanh": np.tanh(x),
            "exp": np.exp(-np.abs(x)),
        }
        # One unit in the last place of the float32 binade of each exact
        # value (the smallest subnormal's below).
        ulp = {
            name: np.maximum(np.exp2(np.floor(np.log2(np.abs(ref))) - 23), 2.0**-149)
            for name, ref in exact.items()
        }
    finite = slice(None, -5)
    for row, (name, ref), bound in zip(got, exact.items(), (3, 3, 1.5)):
        assert not np.isnan(row[finite]).any(), name
        err = np.abs(row[finite] - ref[finite]) / ulp[name][finite]
        assert err.max() <= bound, name
        np.testing.assert_array_equal(row[-5:], ref[-5:].astype(np.float32))
    assert np.signbit(got[1, -4]) and not np.signbit(got[0, -4])


@pytest.mark.parametrize("cell", GATED)
def test_float32_matches_float64(cell):
    rng = np.random.RandomState(9)
    X64 = random_sequences(rng, 6, 3)
    X32 = [x.astype(np.float32) for x in X64]
    y = rng.normal(size=6)
    est64 = randomize(RTRLRegressor(4, cell=cell, max_iter=1).fit(X64, y), rng, 0.5)
    est32 = RTRLRegressor(4, cell=cell, max_iter=1).fit(X32, y.astype(np.float32))
    assert est32.params_["weight_hh"].dtype == np.float32
    assert_float32_gradient_matches(est64, est32, X64, y, X32, y.astype(np.float32))
    np.testing.assert_allclose(est32.predict(X32), est64.predict(X64), rtol=1e-5)
    # Training and streams run in float32 too.
    est32.set_params(max_iter=3).fit(X32, y.astype(np.float32))
    assert est32._flat_params.dtype == np.float32
    stream = gated_stream_model(cell)
    Xs, ys = noisy_sine_stream(20)
    stream.partial_fit(Xs.astype(np.float32), ys.astype(np.float32))
    assert stream._stream_state["influence"].dtype == np.float32
    assert np.isfinite(stream.predict(Xs.astype(np.float32))).all()
