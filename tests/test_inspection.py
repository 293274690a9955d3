"""skrtrl.inspection: the arrays against independent computations.

The references here: a plain numpy Elman forward pass written out below,
central finite differences, the estimators' own ``predict`` /
``decision_function`` / ``loss_gradient``, and numpy's SVD and eigenvalues.
For every registered cell, the tools' derivatives (which come from the
``vjp`` and ``jacobian`` of ``skrtrl/inspection/_cell_steps.py``) are checked
against finite differences of that module's forward step, itself checked
against the estimator's ``predict``."""

import doctest

import numpy as np
import pytest
from scipy.special import expit, log_softmax
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._cells import CELLS as CELL_REGISTRY
from skrtrl.inspection import (
    credit_over_time,
    input_saliency,
    recurrent_jacobian_spectrum,
)

from _helpers import cell_step, state_size, steps_from

ACTIVATIONS = {
    "tanh": np.tanh,
    "logistic": expit,
    "relu": lambda a: np.maximum(a, 0.0),
    "identity": lambda a: a,
}
RECURRENT = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


# -- an independent forward pass ---------------------------------------------
def forward(params, x, activation, step_params=None):
    """Hidden states h_1..h_T and final readout of one sequence x (T, m).

    ``step_params`` maps a step t to parameters that replace the shared ones
    at that step only (for finite differences per step).
    """
    phi = ACTIVATIONS[activation]
    h = np.zeros(params["weight_hh"].shape[0])
    hs = []
    for t in range(x.shape[0]):
        p = params if step_params is None else step_params.get(t, params)
        a = p["weight_ih"] @ x[t] + p["weight_hh"] @ h + p["bias_ih"] + p["bias_hh"]
        h = phi(a)
        hs.append(h)
    z = params["weight_out"] @ h + params["bias_out"]
    return np.array(hs), z


def last_step_loss(kind, z, target):
    """The estimators' loss of one target, from the readout z."""
    if kind == "regressor":
        return 0.5 * np.mean((z - target) ** 2)
    if kind == "binary":
        return -(target * np.log(expit(z[0])) + (1 - target) * np.log(expit(-z[0])))
    return -log_softmax(z)[target]


def params_of(est):
    return {k: np.array(v, dtype=np.float64) for k, v in est.params_.items()}


def make_model(kind, activation="tanh", n_hidden=3, n_features=2, n_steps=5, **kw):
    """A model after one pass of training, with data (X 3D, y, y codes)."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(12, n_steps, n_features))
    if kind == "regressor":
        y = X[:, 0, 0] - X[:, -1, -1]
        est = RTRLRegressor(
            n_hidden=n_hidden, cell="elman", activation=activation, random_state=0
        )
        est.partial_fit(X, y)
        return est, X, y, y
    n_classes = 2 if kind == "binary" else 3
    codes = np.arange(12) % n_classes
    y = np.array(["a", "b", "c"])[codes]
    # The Elman cell (neither estimator's default) read at the last step.
    est = RTRLClassifier(n_hidden=n_hidden, cell="elman", pooling="last",
                         activation=activation, random_state=0)  # fmt: skip
    est.set_params(**kw)
    est.partial_fit(X, y, classes=np.unique(y))
    return est, X, y, codes


def enlarge_recurrent_weights(est, factor=2.5):
    """Make the recurrent weights large enough for a nontrivial Jacobian."""
    est.params_["weight_hh"][...] *= factor
    est.params_["weight_ih"][...] *= factor


# -- credit over time --------------------------------------------------------
@pytest.mark.parametrize("activation", ["tanh", "logistic", "relu", "identity"])
@pytest.mark.parametrize("kind", ["regressor", "binary", "multiclass"])
def test_credit_sums_to_loss_gradient(kind, activation):
    est, X, y, _ = make_model(kind, activation)
    est.set_params(alpha=0.0)
    enlarge_recurrent_weights(est)
    for s in (0, 5):
        credit = credit_over_time(
            est, X[s : s + 1], y[s : s + 1], return_contributions=True
        )
        _, grad = est.loss_gradient(X[s : s + 1], y[s : s + 1])
        (contrib,) = credit.contributions
        for name in RECURRENT:
            assert contrib[name].shape == (X.shape[1],) + grad[name].shape
            np.testing.assert_allclose(
                contrib[name].sum(axis=0), grad[name], rtol=1e-9, atol=1e-12
            )
        flat = np.concatenate(
            [contrib[name].reshape(X.shape[1], -1) for name in RECURRENT], axis=1
        )
        np.testing.assert_allclose(credit.norms[0], np.linalg.norm(flat, axis=1))
        np.testing.assert_allclose(credit.mean_norms, credit.norms[0])
        np.testing.assert_array_equal(credit.distances, np.arange(X.shape[1]))


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("kind", ["regressor", "binary", "multiclass"])
def test_credit_contributions_are_per_step_derivatives(kind, activation):
    """Contribution of step t = dL / d(parameters used at step t only)."""
    est, X, y, codes = make_model(kind, activation)
    enlarge_recurrent_weights(est)
    params = params_of(est)
    s = 3
    x, target = X[s], codes[s]
    credit = credit_over_time(
        est, X[s : s + 1], y[s : s + 1], return_contributions=True
    )
    (contrib,) = credit.contributions
    T, eps = x.shape[0], 1e-6
    for t in range(T):
        for name in RECURRENT:
            fd = np.zeros(params[name].shape)
            for idx in np.ndindex(*params[name].shape):
                losses = []
                for sign in (1, -1):
                    p = {k: v.copy() for k, v in params.items()}
                    p[name][idx] += sign * eps
                    _, z = forward(params, x, activation, step_params={t: p})
                    losses.append(last_step_loss(kind, z, target))
                fd[idx] = (losses[0] - losses[1]) / (2 * eps)
            # contributions are indexed by distance from the end
            np.testing.assert_allclose(contrib[name][T - 1 - t], fd, atol=1e-7)


def test_credit_varying_lengths_pads_with_nan():
    est, X3, y, _ = make_model("regressor", n_steps=6)
    rng = np.random.RandomState(1)
    lengths = [6, 2, 4]
    X = [rng.normal(size=(L, 2)) for L in lengths]
    y = rng.normal(size=3)
    credit = credit_over_time(est, X, y)
    assert credit.norms.shape == (3, 6)
    for i, L in enumerate(lengths):
        assert np.all(np.isfinite(credit.norms[i, :L]))
        assert np.all(np.isnan(credit.norms[i, L:]))
        alone = credit_over_time(est, [X[i]], y[i : i + 1])
        np.testing.assert_allclose(alone.norms[0], credit.norms[i, :L], rtol=1e-12)
    expected = [
        np.mean([credit.norms[i, d] for i, L in enumerate(lengths) if d < L])
        for d in range(6)
    ]
    np.testing.assert_allclose(credit.mean_norms, expected)


def test_credit_output_sequence_uses_last_step_loss():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(8, 5, 2))
    Y = rng.normal(size=(8, 5))
    seq = RTRLRegressor(n_hidden=3, output="sequence", random_state=0)
    seq.partial_fit(X, Y)
    last = RTRLRegressor(n_hidden=3, alpha=0.0, random_state=1).partial_fit(X, Y[:, -1])
    for name, value in seq.params_.items():
        last.params_[name][...] = value
    got = credit_over_time(seq, X, Y, return_contributions=True)
    ref = credit_over_time(last, X, Y[:, -1], return_contributions=True)
    np.testing.assert_allclose(got.norms, ref.norms)
    _, grad = last.loss_gradient(X[2:3], Y[2:3, -1])
    np.testing.assert_allclose(
        got.contributions[2]["weight_hh"].sum(axis=0), grad["weight_hh"], atol=1e-12
    )


# -- input saliency ----------------------------------------------------------
def fd_inputs(f, X, s, eps=1e-6):
    """Central differences of the scalar f(X) w.r.t. every entry of X[s]."""
    grad = np.zeros(X[s].shape)
    for idx in np.ndindex(*X[s].shape):
        values = []
        for sign in (1, -1):
            Xp = X.copy()
            Xp[(s,) + idx] += sign * eps
            values.append(f(Xp))
        grad[idx] = (values[0] - values[1]) / (2 * eps)
    return grad


@pytest.mark.parametrize("activation", ["tanh", "logistic", "relu", "identity"])
def test_saliency_regressor_finite_differences(activation):
    est, X, _, _ = make_model("regressor", activation)
    enlarge_recurrent_weights(est)
    saliency = input_saliency(est, X)
    assert len(saliency) == X.shape[0]
    for s in (0, 7):
        assert saliency[s].shape == X.shape[1:]
        fd = fd_inputs(lambda Z, s=s: est.predict(Z)[s], X, s)
        np.testing.assert_allclose(saliency[s], fd, atol=1e-7)


def test_saliency_multi_output_regressor():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(6, 4, 2))
    Y = rng.normal(size=(6, 3))
    est = RTRLRegressor(n_hidden=3, random_state=0).partial_fit(X, Y)
    with pytest.raises(ValueError, match="output_index"):
        input_saliency(est, X)
    with pytest.raises(ValueError, match="output_index"):
        input_saliency(est, X, output_index=3)
    for j in range(3):
        saliency = input_saliency(est, X, output_index=j)
        fd = fd_inputs(lambda Z, j=j: est.predict(Z)[1, j], X, 1)
        np.testing.assert_allclose(saliency[1], fd, atol=1e-8)


def test_saliency_binary_classifier_is_log_odds_of_predicted_class():
    est, X, _, _ = make_model("binary")
    enlarge_recurrent_weights(est, 3.0)
    labels = est.predict(X)
    assert len(set(labels)) == 2  # both signs are exercised
    saliency = input_saliency(est, X)
    for s in range(X.shape[0]):
        sign = 1.0 if labels[s] == est.classes_[1] else -1.0
        fd = fd_inputs(lambda Z, s=s: est.decision_function(Z)[s], X, s)
        np.testing.assert_allclose(saliency[s], sign * fd, atol=1e-7)
    # An explicit class: the log-odds of classes_[0] is minus the decision.
    np.testing.assert_allclose(
        input_saliency(est, X, output_index=0)[2],
        -input_saliency(est, X, output_index=1)[2],
    )


def test_saliency_multiclass_classifier():
    est, X, _, _ = make_model("multiclass")
    enlarge_recurrent_weights(est, 3.0)
    predicted = np.searchsorted(est.classes_, est.predict(X))
    saliency = input_saliency(est, X)
    explicit = input_saliency(est, X, output_index=2)
    for s in (0, 4):
        k = predicted[s]
        fd = fd_inputs(lambda Z, s=s, k=k: est.decision_function(Z)[s, k], X, s)
        np.testing.assert_allclose(saliency[s], fd, atol=1e-7)
        fd2 = fd_inputs(lambda Z, s=s: est.decision_function(Z)[s, 2], X, s)
        np.testing.assert_allclose(explicit[s], fd2, atol=1e-7)


def test_saliency_list_and_2d_input():
    rng = np.random.RandomState(0)
    X2 = rng.normal(size=(5, 7))
    est = RTRLRegressor(n_hidden=3, random_state=0).partial_fit(X2, X2[:, 0])
    saliency = input_saliency(est, X2)
    assert saliency[0].shape == (7, 1)
    fd = fd_inputs(lambda Z: est.predict(Z)[2], X2, 2)
    np.testing.assert_allclose(saliency[2][:, 0], fd, atol=1e-8)

    est3, _, _, _ = make_model("regressor")
    X = [rng.normal(size=(L, 2)) for L in (3, 6, 1)]
    saliency = input_saliency(est3, X)
    assert [a.shape for a in saliency] == [(3, 2), (6, 2), (1, 2)]
    for i, x in enumerate(X):
        np.testing.assert_allclose(saliency[i], input_saliency(est3, x[None])[0])


def test_saliency_output_sequence_is_last_step():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(5, 6, 2))
    est = RTRLRegressor(n_hidden=3, output="sequence", random_state=0)
    est.partial_fit(X, rng.normal(size=(5, 6)))
    saliency = input_saliency(est, X)
    fd = fd_inputs(lambda Z: est.predict(Z)[3, -1], X, 3)
    np.testing.assert_allclose(saliency[3], fd, atol=1e-8)


# -- Jacobian spectrum -------------------------------------------------------
@pytest.mark.parametrize("activation", ["tanh", "logistic", "relu", "identity"])
def test_jacobian_spectrum_against_numpy_and_finite_differences(activation):
    est, X, _, _ = make_model("regressor", activation, n_hidden=4)
    enlarge_recurrent_weights(est)
    params = params_of(est)
    phi = ACTIVATIONS[activation]
    spectrum = recurrent_jacobian_spectrum(est, X)
    assert len(spectrum.singular_values) == X.shape[0]
    b = params["bias_ih"] + params["bias_hh"]
    for s in (0, 9):
        hs, z = forward(params, X[s], activation)
        # The recomputed trajectory is the estimator's.
        np.testing.assert_allclose(z[0], est.predict(X[s : s + 1])[0], rtol=1e-10)
        h_prev = np.vstack([np.zeros(4), hs[:-1]])
        assert spectrum.singular_values[s].shape == (X.shape[1], 4)
        assert spectrum.spectral_radius[s].shape == (X.shape[1],)
        for t in range(X.shape[1]):

            def step(h, s=s, t=t):
                return phi(params["weight_ih"] @ X[s, t] + params["weight_hh"] @ h + b)

            eps = 1e-6
            J = np.column_stack(
                [
                    (step(h_prev[t] + eps * e) - step(h_prev[t] - eps * e)) / (2 * eps)
                    for e in np.eye(4)
                ]
            )
            np.testing.assert_allclose(
                spectrum.singular_values[s][t],
                np.linalg.svd(J, compute_uv=False),
                atol=1e-7,
            )
            np.testing.assert_allclose(
                spectrum.spectral_radius[s][t],
                np.max(np.abs(np.linalg.eigvals(J))),
                atol=1e-6,
            )


def test_jacobian_spectrum_k_and_lengths():
    est, _, _, _ = make_model("regressor", n_hidden=4)
    rng = np.random.RandomState(0)
    X = [rng.normal(size=(L, 2)) for L in (4, 1, 3)]
    full = recurrent_jacobian_spectrum(est, X)
    top2 = recurrent_jacobian_spectrum(est, X, k=2)
    for a, b, L in zip(full.singular_values, top2.singular_values, (4, 1, 3)):
        assert a.shape == (L, 4) and b.shape == (L, 2)
        np.testing.assert_allclose(b, a[:, :2])
        assert np.all(np.diff(a, axis=1) <= 1e-12)
    for r, sv in zip(full.spectral_radius, full.singular_values):
        assert np.all(r <= sv[:, 0] + 1e-12)
    for bad in (0, 5, 1.5, True):
        with pytest.raises(ValueError, match="k must be"):
            recurrent_jacobian_spectrum(est, X, k=bad)


# -- settings that are not supported -----------------------------------------
def test_unsupported_settings():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(4, 5, 2))
    y = rng.normal(size=4)
    with pytest.raises(NotFittedError):
        credit_over_time(RTRLRegressor(cell="elman"), X, y)
    with pytest.raises(TypeError, match="RTRLRegressor or RTRLClassifier"):
        input_saliency(object(), X)

    stream = RTRLRegressor(cell="elman", n_hidden=3, stateful=True, random_state=0)
    stream.partial_fit(X[0], rng.normal(size=5))
    for func, args in [
        (credit_over_time, (X[0], rng.normal(size=5))),
        (input_saliency, (X[0],)),
        (recurrent_jacobian_spectrum, (X[0],)),
    ]:
        with pytest.raises(ValueError, match="stateful=True"):
            func(stream, *args)

    est = RTRLRegressor(cell="elman", n_hidden=3, random_state=0).partial_fit(X, y)
    est.cell = "lstm"  # the parameters are an Elman net's
    with pytest.raises(ValueError, match="fitted with cell='elman'"):
        recurrent_jacobian_spectrum(est, X)
    est.cell = "elman"
    with pytest.raises(ValueError, match="features per time step"):
        input_saliency(est, rng.normal(size=(4, 5, 3)))


def test_float32_model():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(6, 5, 2)).astype(np.float32)
    y = X[:, 0, 0]
    est = RTRLRegressor(n_hidden=3, random_state=0).partial_fit(X, y)
    assert est.params_["weight_hh"].dtype == np.float32
    credit = credit_over_time(est, X, y)
    assert credit.norms.dtype == np.float64 and np.all(np.isfinite(credit.norms))
    # predict runs in float32: a step large against its rounding error
    fd = fd_inputs(lambda Z: float(est.predict(Z)[0]), X.astype(float), 0, eps=1e-2)
    np.testing.assert_allclose(input_saliency(est, X)[0], fd, atol=2e-4)


# -- every cell ---------------------------------------------------------------
# Every registered cell, with the numpy step of its equations (the state is h,
# or [h, c] for the LSTM). The inspection tools differentiate those same
# equations (skrtrl/inspection/_cell_steps.py); here the forward pass is
# checked against the estimator's own predict, and the tools' derivatives
# against central finite differences of it.
CELLS = list(CELL_REGISTRY)


def cell_forward(cell, params, x, activation, step_params=None):
    """States after each step and the final readout, from the zero state
    (the readout reads h, or the LRU's output map with the last step's
    parameters)."""
    n = params["weight_out"].shape[1]
    s = np.zeros(state_size(cell, n))
    states = []
    for t in range(x.shape[0]):
        p = params if step_params is None else step_params.get(t, params)
        steps = steps_from(cell, p, x[t][None, None], activation, s[None])
        s = steps.S[0, 1]
        states.append(s)
    return np.array(states), params["weight_out"] @ steps.output(0)[0] + params[
        "bias_out"
    ]


def cell_parameters(cell_params):
    """The names of a cell's parameters (all but the readout's)."""
    return [name for name in cell_params if name not in ("weight_out", "bias_out")]


def make_cell_model(cell, kind, n_steps=5):
    """A fitted model of ``cell`` with random weights of order one."""
    est, X, y, codes = make_model(kind, n_steps=n_steps)
    est = clone(est).set_params(cell=cell, alpha=0.0)
    est.partial_fit(X, y, **({} if kind == "regressor" else {"classes": np.unique(y)}))
    # Large enough that every gate and Jacobian term matters.
    rng = np.random.RandomState(2)
    for value in est.params_.values():
        value[...] = rng.uniform(-1.0, 1.0, size=value.shape)
    return est, X, y, codes


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kind", ["regressor", "multiclass"])
def test_every_cell_credit_sums_to_loss_gradient(cell, kind):
    est, X, y, _ = make_cell_model(cell, kind)
    credit = credit_over_time(est, X[2:3], y[2:3], return_contributions=True)
    _, grad = est.loss_gradient(X[2:3], y[2:3])
    for name in cell_parameters(est.params_):
        np.testing.assert_allclose(
            credit.contributions[0][name].sum(axis=0), grad[name], rtol=1e-9, atol=1e-12
        )


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_credit_contributions_are_per_step_derivatives(cell):
    est, X, y, codes = make_cell_model(cell, "multiclass", n_steps=3)
    params = params_of(est)
    s = 1
    credit = credit_over_time(
        est, X[s : s + 1], y[s : s + 1], return_contributions=True
    )
    (contrib,) = credit.contributions
    T, eps = X.shape[1], 1e-6
    for t in range(T):
        for name in cell_parameters(est.params_):
            fd = np.zeros(params[name].shape)
            for idx in np.ndindex(*params[name].shape):
                losses = []
                for sign in (1, -1):
                    p = {k: v.copy() for k, v in params.items()}
                    p[name][idx] += sign * eps
                    _, z = cell_forward(cell, params, X[s], "tanh", {t: p})
                    losses.append(last_step_loss("multiclass", z, codes[s]))
                fd[idx] = (losses[0] - losses[1]) / (2 * eps)
            np.testing.assert_allclose(contrib[name][T - 1 - t], fd, atol=1e-8)


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_saliency_is_the_derivative_of_predict(cell):
    est, X, _, _ = make_cell_model(cell, "regressor")
    saliency = input_saliency(est, X)
    for s in (0, 7):
        fd = fd_inputs(lambda Z, s=s: float(est.predict(Z[s : s + 1])[0]), X, s)
        np.testing.assert_allclose(saliency[s], fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_jacobian_spectrum_against_finite_differences(cell):
    est, X, _, _ = make_cell_model(cell, "regressor")
    params = params_of(est)
    spectrum = recurrent_jacobian_spectrum(est, X)
    size = state_size(cell, 3)
    for s in (0, 4):
        states, z = cell_forward(cell, params, X[s], "tanh")
        np.testing.assert_allclose(z[0], est.predict(X[s : s + 1])[0], rtol=1e-10)
        prev = np.vstack([np.zeros(size), states[:-1]])
        assert spectrum.singular_values[s].shape == (X.shape[1], size)
        for t in range(X.shape[1]):
            eps = 1e-6
            J = np.column_stack(
                [
                    (
                        cell_step(cell, params, X[s, t], prev[t] + eps * e)
                        - cell_step(cell, params, X[s, t], prev[t] - eps * e)
                    )
                    / (2 * eps)
                    for e in np.eye(size)
                ]
            )
            np.testing.assert_allclose(
                spectrum.singular_values[s][t], np.linalg.svd(J, compute_uv=False),
                atol=1e-8,
            )  # fmt: skip
            np.testing.assert_allclose(
                spectrum.spectral_radius[s][t], np.abs(np.linalg.eigvals(J)).max(),
                atol=1e-7,
            )  # fmt: skip
    with pytest.raises(ValueError, match=rf"integer in \[1, {size}\]"):
        recurrent_jacobian_spectrum(est, X, k=size + 1)


# -- displays ----------------------------------------------------------------
@pytest.fixture
def pyplot():
    mpl = pytest.importorskip("matplotlib")
    mpl.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


def test_credit_over_time_display(pyplot):
    from skrtrl.inspection import CreditOverTimeDisplay

    est, X, y, _ = make_model("multiclass", n_steps=6)
    display = CreditOverTimeDisplay.from_estimator(est, X, y, show_sequences=True)
    credit = credit_over_time(est, X, y)
    assert display.ax_.get_yscale() == "log"
    assert display.figure_ is display.ax_.figure
    assert len(display.sequence_lines_) == X.shape[0]
    np.testing.assert_allclose(display.line_.get_ydata(), credit.mean_norms)
    assert display.line_.get_label() == "RTRLClassifier (mean)"

    fig, ax = pyplot.subplots()
    again = display.plot(ax=ax, name="mine", normalize=True)
    assert again is display and display.ax_ is ax and display.sequence_lines_ is None
    assert display.line_.get_ydata()[0] == pytest.approx(1.0)
    assert display.line_.get_label() == "mine"
    # from the arrays alone, with a zero norm (a log-axis gap, not an error)
    norms = credit.norms.copy()
    norms[:, -1] = 0.0
    CreditOverTimeDisplay(
        distances=credit.distances, norms=norms, mean_norms=norms.mean(axis=0)
    ).plot(show_sequences=True)


def test_input_saliency_display(pyplot):
    from skrtrl.inspection import InputSaliencyDisplay

    est, X, _, _ = make_model("binary", n_steps=6)
    display = InputSaliencyDisplay.from_estimator(
        est, X, sequence_index=-1, feature_names=["left", "right"]
    )
    expected = input_saliency(est, X)[-1]
    np.testing.assert_allclose(display.im_.get_array(), expected.T)
    assert display.sequence_index == X.shape[0] - 1
    assert [t.get_text() for t in display.ax_.get_yticklabels()] == ["left", "right"]
    assert display.colorbar_ is not None
    lo, hi = display.im_.get_clim()
    assert lo == -hi
    fig, ax = pyplot.subplots()
    assert display.plot(ax=ax, colorbar=False) is display
    assert display.ax_ is ax and display.colorbar_ is None
    with pytest.raises(ValueError, match="sequence_index"):
        InputSaliencyDisplay.from_estimator(est, X, sequence_index=X.shape[0])
    with pytest.raises(ValueError, match="feature_names"):
        InputSaliencyDisplay(saliency=expected, feature_names=["a"]).plot()


def test_jacobian_spectrum_display(pyplot):
    from skrtrl.inspection import JacobianSpectrumDisplay

    est, X, _, _ = make_model("regressor", n_steps=6, n_hidden=4)
    rng = np.random.RandomState(0)
    X = [rng.normal(size=(L, 2)) for L in (6, 3, 5)]
    display = JacobianSpectrumDisplay.from_estimator(est, X, show_radius=True)
    spectrum = recurrent_jacobian_spectrum(est, X, k=1)
    largest = np.full((3, 6), np.nan)
    for i, sv in enumerate(spectrum.singular_values):
        largest[i, : sv.shape[0]] = sv[:, 0]
    np.testing.assert_allclose(display.line_.get_ydata(), np.nanmean(largest, axis=0))
    assert display.fill_ is not None and display.radius_line_ is not None
    fig, ax = pyplot.subplots()
    assert display.plot(ax=ax, quantiles=None, name="net") is display
    assert display.ax_ is ax and display.fill_ is None and display.radius_line_ is None
    assert display.figure_ is fig


def test_docstring_examples(pyplot):
    from skrtrl.inspection import _gradients, _plot

    for module in (_gradients, _plot):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0
