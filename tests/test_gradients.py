"""The RTRL gradient of the Elman and diagonal cells is exact: it equals BPTT.

The reference here is an independent, plain-numpy backpropagation through
time over the same network and loss, for models of several sizes and every
activation; it shares no code with the package. Finite differences, for
every cell and gradient method: ``test_cell_conformance.py``.
"""

import warnings

import numpy as np
import pytest
from scipy.special import expit
from sklearn.exceptions import ConvergenceWarning

from skrtrl import RTRLClassifier, RTRLRegressor

from _helpers import (
    assert_float32_gradient_matches,
    loss_and_output_grad,
    random_sequences,
)

ACTIVATIONS = {
    "tanh": (np.tanh, lambda h, a: 1 - h**2),
    "logistic": (expit, lambda h, a: h * (1 - h)),
    "relu": (lambda a: np.maximum(a, 0), lambda h, a: (a > 0).astype(float)),
    "identity": (lambda a: a, lambda h, a: np.ones_like(a)),
}


def bptt(params, sequences, targets, weights, activation, loss_kind, every_step):
    """Loss and gradient by backpropagation through time, one sequence at a time.

    A 1D ``weight_hh`` is the element-wise (diagonal) cell's recurrence.
    """
    phi, dphi = ACTIVATIONS[activation]
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    if W_hh.ndim == 1:
        W_hh = np.diag(W_hh)
    b = params["bias_ih"] + params["bias_hh"]
    W_out, b_out = params["weight_out"], params["bias_out"]
    grads = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}
    total = 0.0
    for x, y, w in zip(sequences, targets, weights):
        T = x.shape[0]
        hs, As = [np.zeros(W_hh.shape[0])], []
        for t in range(T):
            a = W_ih @ x[t] + W_hh @ hs[-1] + b
            As.append(a)
            hs.append(phi(a))
        dh = np.zeros(W_hh.shape[0])
        for t in reversed(range(T)):
            h = hs[t + 1]
            if every_step or t == T - 1:
                target = y[t] if every_step else y
                scale = w / T if every_step else w
                loss, dz = loss_and_output_grad(loss_kind, W_out @ h + b_out, target)
                total += scale * loss
                dz = scale * dz
                grads["weight_out"] += np.outer(dz, h)
                grads["bias_out"] += dz
                dh = dh + W_out.T @ dz
            da = dh * dphi(h, As[t])
            grads["weight_ih"] += np.outer(da, x[t])
            if params["weight_hh"].ndim == 1:
                grads["weight_hh"] += da * hs[t]
            else:
                grads["weight_hh"] += np.outer(da, hs[t])
            grads["bias_ih"] += da
            grads["bias_hh"] += da
            dh = W_hh.T @ da
    return total, grads


def make_model(estimator, X, y, rng, scale=0.6):
    """A model fitted for one epoch, then given random parameters in place."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.set_params(max_iter=1, alpha=0.0).fit(X, y)
    for value in estimator.params_.values():
        value[...] = rng.uniform(-scale, scale, size=value.shape)
    return estimator


def reference_targets(kind, rng, X, n_outputs, every_step, n_classes=None):
    """Targets as the estimator takes them, and as the reference reads them."""
    if kind == "regression":
        shape = lambda T: (T, n_outputs) if every_step else (n_outputs,)  # noqa: E731
        user = [rng.normal(size=shape(x.shape[0])) for x in X]
        return user, user
    labels = [
        rng.randint(0, n_classes, size=x.shape[0])
        if every_step
        else rng.randint(n_classes)
        for x in X
    ]
    if n_classes == 2:
        ref = [
            np.asarray(lab, dtype=float).reshape(-1, 1)
            if every_step
            else np.array([lab], float)
            for lab in labels
        ]
    else:
        eye = np.eye(n_classes)
        ref = [eye[lab] for lab in labels]
    return labels, ref


CASES = [
    # estimator kind, activation, n_classes / n_outputs, every_step
    ("regression", "tanh", 1, False),
    ("regression", "logistic", 3, True),
    ("regression", "relu", 2, False),
    ("regression", "identity", 1, True),
    ("binary", "tanh", 2, False),
    ("binary", "relu", 2, True),
    ("multiclass", "logistic", 4, False),
    ("multiclass", "tanh", 3, True),
]


EXACT = [("elman", "rtrl"), ("diagonal", "rtrl"), ("diagonal", "snap1")]


@pytest.mark.parametrize("cell, gradient", EXACT)
@pytest.mark.parametrize("kind, activation, k, every_step", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_rtrl_gradient_equals_bptt(
    cell, gradient, kind, activation, k, every_step, seed
):
    rng = np.random.RandomState(seed)
    n_hidden, n_features = rng.randint(2, 7), rng.randint(1, 4)
    X = random_sequences(rng, rng.randint(5, 9), n_features)
    output = "sequence" if every_step else "last"
    cell_params = dict(cell=cell, gradient=gradient)
    if kind == "regression":
        est = RTRLRegressor(
            n_hidden,
            activation=activation,
            output=output,
            random_state=0,
            **cell_params,
        )
        y, y_ref = reference_targets(kind, rng, X, k, every_step)
        loss_kind = "squared_error"
    else:
        est = RTRLClassifier(
            n_hidden,
            activation=activation,
            output=output,
            pooling="last",
            random_state=0,
            **cell_params,
        )
        # Every class must be present for the fit that sets classes_.
        y, y_ref = reference_targets(kind, rng, X, None, every_step, n_classes=k)
        fit_y = (
            [np.arange(x.shape[0]) % k for x in X]
            if every_step
            else np.arange(len(X)) % k
        )
        make_model(est, X, fit_y, rng)
        loss_kind = "log_loss_binary" if k == 2 else "log_loss"
    if kind == "regression":
        make_model(est, X, y, rng)
    weights = rng.uniform(0.2, 2.0, size=len(X))
    loss, grad = est.loss_gradient(X, y, sample_weight=weights)
    ref_loss, ref_grad = bptt(
        est.params_,
        X,
        y_ref,
        weights / weights.sum(),
        activation,
        loss_kind,
        every_step,
    )
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    assert set(grad) == set(est.params_)
    for name in grad:
        assert grad[name].shape == est.params_[name].shape
        np.testing.assert_allclose(
            grad[name], ref_grad[name], rtol=1e-7, atol=1e-12, err_msg=name
        )


def test_gradient_includes_l2_penalty_on_weights_only():
    rng = np.random.RandomState(3)
    X = random_sequences(rng, 6, 1)
    y = rng.normal(size=6)
    est = make_model(RTRLRegressor(3, random_state=0), X, y, rng)
    loss0, grad0 = est.loss_gradient(X, y)
    est.set_params(alpha=0.5)
    loss1, grad1 = est.loss_gradient(X, y)
    weights = ("weight_ih", "weight_hh", "weight_out")
    expected = loss0 + 0.5 * 0.5 / 6 * sum(np.sum(est.params_[w] ** 2) for w in weights)
    assert loss1 == pytest.approx(expected, rel=1e-12)
    for name in grad0:
        extra = 0.5 / 6 * est.params_[name] if name in weights else 0.0
        np.testing.assert_allclose(grad1[name], grad0[name] + extra, rtol=1e-12)


def test_float32_gradient_matches_float64():
    rng = np.random.RandomState(7)
    X64 = random_sequences(rng, 6, 3)
    X32 = [x.astype(np.float32) for x in X64]
    y = rng.normal(size=6)
    est64 = make_model(RTRLRegressor(5, random_state=0), X64, y, rng)
    est32 = RTRLRegressor(5, random_state=0)
    make_model(est32, X32, y.astype(np.float32), rng)
    assert est32.params_["weight_hh"].dtype == np.float32
    assert_float32_gradient_matches(est64, est32, X64, y, X32, y.astype(np.float32))


def test_loss_gradient_does_not_change_the_model():
    rng = np.random.RandomState(0)
    X = random_sequences(rng, 4, 2)
    y = rng.normal(size=4)
    est = make_model(RTRLRegressor(3, random_state=0), X, y, rng)
    before = {k: v.copy() for k, v in est.params_.items()}
    state = (est.n_iter_, est.t_, list(est.loss_curve_))
    est.loss_gradient(X, y)
    for k in before:
        np.testing.assert_array_equal(est.params_[k], before[k])
    assert (est.n_iter_, est.t_, est.loss_curve_) == state


def snap1_reference(params, sequences, targets, weights, activation):
    """SnAp-1 by its definition: dense RTRL whose influence is cut back to
    the entries d h_i / d theta[i, :] after every step (squared loss, last
    step only)."""
    phi, dphi = ACTIVATIONS[activation]
    W_ih, W_hh = params["weight_ih"], params["weight_hh"]
    b = params["bias_ih"] + params["bias_hh"]
    W_out, b_out = params["weight_out"], params["bias_out"]
    n, m = W_ih.shape
    q = m + n + 1
    keep = np.zeros((n, n, q), dtype=bool)
    keep[np.arange(n), np.arange(n), :] = True
    grad = np.zeros((n, q))
    grad_out, grad_bias_out = np.zeros_like(W_out), np.zeros_like(b_out)
    for x, y, w in zip(sequences, targets, weights):
        h, P = np.zeros(n), np.zeros((n, n, q))
        for t in range(x.shape[0]):
            z = np.concatenate([x[t], h, [1.0]])
            a = W_ih @ x[t] + W_hh @ h + b
            h = phi(a)
            immediate = np.zeros((n, n, q))
            immediate[np.arange(n), np.arange(n), :] = z
            P = dphi(h, a)[:, None, None] * (
                np.einsum("kl,liq->kiq", W_hh, P) + immediate
            )
            P[~keep] = 0.0
        _, dz = loss_and_output_grad("squared_error", W_out @ h + b_out, y)
        g = W_out.T @ (w * dz)
        grad += np.einsum("k,kiq->iq", g, P)
        grad_out += np.outer(w * dz, h)
        grad_bias_out += w * dz
    return {
        "weight_ih": grad[:, :m],
        "weight_hh": grad[:, m : m + n],
        "bias_ih": grad[:, -1],
        "bias_hh": grad[:, -1],
        "weight_out": grad_out,
        "bias_out": grad_bias_out,
    }


@pytest.mark.parametrize("activation", ["tanh", "relu", "logistic"])
def test_snap1_equals_influence_restricted_to_diagonal_blocks(activation):
    rng = np.random.RandomState(5)
    X = random_sequences(rng, 6, 2, min_len=1, max_len=8)
    y = rng.normal(size=(6, 2))
    est = make_model(
        RTRLRegressor(
            4, cell="elman", gradient="snap1", activation=activation, random_state=0
        ),
        X,
        y,
        rng,
    )
    _, grad = est.loss_gradient(X, y)
    expected = snap1_reference(est.params_, X, y, np.full(6, 1 / 6), activation)
    for name in grad:
        np.testing.assert_allclose(
            grad[name], expected[name], rtol=1e-9, atol=1e-12, err_msg=name
        )
    # And it is an approximation: the exact gradient differs.
    est.set_params(gradient="rtrl")
    _, exact = est.loss_gradient(X, y)
    assert not np.allclose(exact["weight_hh"], grad["weight_hh"])
    np.testing.assert_allclose(exact["weight_out"], grad["weight_out"], rtol=1e-12)


@pytest.mark.parametrize("n_hidden", [3, 17, 40])
@pytest.mark.parametrize("columns", [7, 8, 24, 100])
def test_influence_product_in_column_blocks_gives_the_same_gradient(n_hidden, columns):
    """The kernel splits the influence product into column blocks (their
    width depends on n); any width gives the BPTT gradient."""
    from skrtrl._kernels._rtrl import _set_block_columns

    rng = np.random.RandomState(n_hidden)
    X = random_sequences(rng, 4, 2, min_len=1, max_len=6)
    y, y_ref = reference_targets("regression", rng, X, 2, True)
    est = RTRLRegressor(
        n_hidden, cell="elman", output="sequence", alpha=0.0, random_state=0
    )
    make_model(est, X, y, rng)
    _set_block_columns(columns)
    try:
        loss, grad = est.loss_gradient(X, y)
    finally:
        _set_block_columns(0)
    weights = np.full(len(X), 1.0 / len(X))
    ref_loss, ref_grad = bptt(
        est.params_, X, y_ref, weights, "tanh", "squared_error", True
    )
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    for name in grad:
        np.testing.assert_allclose(
            grad[name], ref_grad[name], rtol=1e-7, atol=1e-12, err_msg=name
        )
