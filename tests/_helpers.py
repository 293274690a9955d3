"""Helpers shared by the test modules (imported by name: ``tests/`` is on
``sys.path``, see ``conftest.py``).

The numpy equations of the cells are those of
``skrtrl/inspection/_cell_steps.py`` (``CELL_STEPS``, one class per
registered cell): they share no code with the compiled kernels, and
``test_cell_conformance.py`` checks every registered cell's kernels against
them. :func:`steps_from` runs them from any state.
"""

import numpy as np
import pytest
from scipy.special import log_softmax

from skrtrl import RTRLRegressor
from skrtrl.inspection._cell_steps import CELL_STEPS


# -- data ---------------------------------------------------------------------
def noisy_sine_stream(n_steps, seed=0):
    """A stream of rows x_t (n_steps, 1) and next-value targets (n_steps,)."""
    rng = np.random.RandomState(seed)
    x = np.sin(0.3 * np.arange(n_steps + 1)) + 0.1 * rng.normal(size=n_steps + 1)
    return x[:-1, None], x[1:]


def random_sequences(rng, n_seq, n_features, min_len=1, max_len=7, dtype=np.float64):
    """``n_seq`` sequences of random lengths in [min_len, max_len]."""
    lengths = rng.randint(min_len, max_len + 1, size=n_seq)
    return [rng.normal(size=(T, n_features)).astype(dtype) for T in lengths]


# -- models -------------------------------------------------------------------
def stream_model(**params):
    """A stream regressor (``stateful=True``) of Elman units (the cell whose
    numpy reference the stream tests use); ``params`` override these."""
    defaults = dict(
        n_hidden=6,
        cell="elman",
        clip_norm=5.0,
        stateful=True,
        learning_rate_init=0.01,
        random_state=0,
    )
    defaults.update(params)
    return RTRLRegressor(**defaults)


def randomize(est, rng, scale):
    """Uniform(-scale, scale) parameters, written in place into ``params_``,
    so that no structure of the initialisation hides errors."""
    for value in est.params_.values():
        value[...] = rng.uniform(-scale, scale, size=value.shape)
    return est


def fit_then_randomize(est, X, y, rng, n_classes=None):
    """One ``partial_fit`` to initialise, then random parameters of order one
    (``classes`` 0 .. n_classes - 1 for a classifier)."""
    classes = {} if n_classes is None else {"classes": np.arange(n_classes)}
    est.partial_fit(X, y, **classes)
    return randomize(est, rng, 0.7)


def float_params(est):
    """A float64 copy of every ``params_`` entry."""
    return {k: np.array(v, dtype=np.float64) for k, v in est.params_.items()}


def assert_same_params(actual, expected, **tol):
    """Same parameter names, and each array close to the expected one."""
    assert actual.keys() == expected.keys()
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], err_msg=name, **tol)


def snapshot(est):
    """Everything a stream step may change: weights, stream state, the
    optimizer's first moment and ``t_``."""
    return (
        {k: v.copy() for k, v in est.params_.items()},
        {k: np.copy(v) for k, v in est._stream_state.items()},
        est._optimizer.m.copy(),
        est.t_,
    )


def assert_same_snapshot(a, b, **tol):
    """Two snapshots agree to the tolerance ``tol`` (``t_`` exactly)."""
    assert a[0].keys() == b[0].keys()
    for name in a[0]:
        np.testing.assert_allclose(a[0][name], b[0][name], err_msg=name, **tol)
    assert a[1].keys() == b[1].keys()
    for name in a[1]:
        np.testing.assert_allclose(a[1][name], b[1][name], err_msg=name, **tol)
    np.testing.assert_allclose(a[2], b[2], **tol)
    assert a[3] == b[3]


def prequential_error_ratio(est, X, y, chunk, start):
    """Run a stream prequentially (predict each chunk of rows, then learn
    from it; the first chunk is predicted by persistence, ``X[:, 0]``) and
    return the RMSE of the predictions from row ``start`` on, relative to
    that of persistence."""
    predictions = np.empty_like(y)
    for first in range(0, len(X), chunk):
        rows = slice(first, first + chunk)
        predictions[rows] = est.predict(X[rows]) if first else X[rows, 0]
        est.partial_fit(X[rows], y[rows])
    rmse = np.sqrt(np.mean((predictions[start:] - y[start:]) ** 2))
    return rmse / np.sqrt(np.mean((X[start:, 0] - y[start:]) ** 2))


def assert_float32_gradient_matches(est64, est32, X64, y64, X32, y32, atol=1e-6):
    """With ``est64``'s parameters copied into ``est32``, ``loss_gradient`` in
    float32 agrees with float64 to float32 precision."""
    for name, value in est64.params_.items():
        est32.params_[name][...] = value
    loss64, grad64 = est64.loss_gradient(X64, y64)
    loss32, grad32 = est32.loss_gradient(X32, y32)
    assert loss32 == pytest.approx(loss64, rel=1e-5)
    for name in grad64:
        assert grad32[name].dtype == np.float32
        np.testing.assert_allclose(
            grad32[name], grad64[name], rtol=2e-4, atol=atol, err_msg=name
        )


# -- derivatives --------------------------------------------------------------
def numeric_gradient(f, params, eps=1e-6):
    """Central finite differences of ``f()`` with respect to every entry of
    the arrays in ``params``, which are changed in place and restored."""
    grad = {}
    for name, value in params.items():
        numeric = np.zeros(value.shape)
        for index in np.ndindex(value.shape):
            original = value[index]
            value[index] = original + eps
            plus = f()
            value[index] = original - eps
            minus = f()
            value[index] = original
            numeric[index] = (plus - minus) / (2 * eps)
        grad[name] = numeric
    return grad


def sigmoid(a):
    """The logistic function, also for complex arguments (complex step)."""
    return 1 / (1 + np.exp(-a))


def loss_and_output_grad(kind, z, y):
    """Loss of one target and its gradient with respect to the readout z."""
    if kind == "squared_error":
        return 0.5 * np.mean((z - y) ** 2), (z - y) / z.shape[0]
    if kind == "log_loss_binary":
        p = sigmoid(z[0])
        loss = -(y[0] * np.log(p) + (1 - y[0]) * np.log(1 - p))
        return loss, np.array([p - y[0]])
    log_p = log_softmax(z)
    return -np.sum(y * log_p), np.exp(log_p) - y


# -- the cells' equations -----------------------------------------------------
def steps_from(cell, params, X, activation="tanh", state=None):
    """``CELL_STEPS[cell]`` run over the padded inputs ``X`` (N, T, m) from
    ``state`` (N, S), or from the zero state.

    The classes of ``skrtrl/inspection/_cell_steps.py`` start from the zero
    state; this runs their ``_step`` from any state and leaves the object as
    their ``__init__`` does (``S[:, t]`` the state before step t, ``cache``
    what ``vjp`` and ``jacobian`` need), so that ``vjp(t, g)`` and
    ``jacobian(t)`` apply.
    """
    steps_class = CELL_STEPS[cell]
    if state is None:
        return steps_class(params, X, activation)
    steps = steps_class(params, X[:, :0], activation)
    N, T, _ = X.shape
    steps.X = X
    steps.S = np.zeros((N, T + 1, np.shape(state)[-1]))
    steps.S[:, 0] = state
    for t in range(T):
        steps.S[:, t + 1], step_cache = steps._step(X[:, t], steps.S[:, t], activation)
        steps.cache.append(step_cache)
    return steps


def hidden_size(cell, params):
    """Hidden units of ``cell`` with ``params`` (the readout may read 2n)."""
    return CELL_STEPS[cell].hidden_size(params)


def state_size(cell, n_hidden):
    """Numbers in the state of ``cell`` (h; or [h, c] for the LSTM)."""
    return CELL_STEPS[cell].state_per_unit * n_hidden


def cell_step(cell, params, x, state, activation="tanh"):
    """The state after one step of ``cell`` on input ``x`` from ``state``.

    ``params`` has the names and layout of ``params_``; the cell's numpy
    equations are those of ``CELL_STEPS`` (checked against the compiled
    kernels by ``test_cell_conformance.py``).
    """
    steps = steps_from(cell, params, x[None, None], activation, state[None])
    return steps.S[0, 1]


def cell_forward(cell, params, x, activation="tanh", state=None):
    """States after every step of one sequence ``x`` (T, m) from ``state``
    (default zero): (states (T, S), final state)."""
    S = state_size(cell, params["weight_out"].shape[1])
    s = np.zeros(S) if state is None else np.asarray(state, dtype=np.float64)
    steps = steps_from(cell, params, x[None], activation, s[None])
    return steps.S[0, 1:], steps.S[0, -1]
