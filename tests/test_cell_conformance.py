"""Conformance of every registered cell with every gradient method and mode.

Driven by the registry: ``skrtrl._cells.CELLS`` names the cells, and each
cell class declares ``gradients`` (the gradient methods it supports) and
``modes(gradient)`` (which of ``skrtrl._cells.MODES`` each supports). Every
declared combination is checked through the public estimator API
(``loss_gradient``, ``partial_fit``, ``predict``, ``params_``) against the
plain-numpy references of ``tests/_reference.py``, which are built on the
cell's own numpy step in ``skrtrl/inspection/_cell_steps.py``
(``CELL_STEPS[name]``) and share no code with the compiled kernels:

* ``"minibatch"``: ``loss_gradient`` with sample weights and L2 penalty, for
  the last output and every step, regression and classification (binary
  and multiclass). The exact methods ("rtrl", "bptt" untruncated) equal
  central finite differences of the numpy forward pass (rtol 1e-7, float64);
  truncated BPTT equals the numpy truncated BPTT; SnAp-1 equals numpy RTRL
  cut to per-unit blocks (and exact RTRL with one hidden unit); UORO's
  estimates average to the exact gradient and follow the seed.
* ``"step"`` and ``"stream"``: one ``partial_fit`` with ``update="step"``
  and plain SGD (no momentum), or two ``partial_fit`` calls on a stream,
  give the parameters of the numpy per-step updates (RTRL's influence
  carried under the changing weights, SnAp-1's cut influence, BPTT through
  the records of the last k steps), and the stream's predictions run on
  from the numpy state.
* ``"feedback"`` (teacher forcing) and ``"free_running"`` (the model's own
  outputs fed back): the same checks with the feedback loop in the numpy
  forward pass and, free running, RTRL's influence through the fed-back
  outputs (with ``update="step"`` and on streams where the cell declares
  those modes too).
* Every combination a cell does not declare is refused by ``fit`` with a
  ValueError that names the gradient methods supporting the mode.

A new cell is covered without editing a test file: register it in ``CELLS``
with the gradients and modes it supports, and add its numpy step class to
``CELL_STEPS`` (``skrtrl/inspection/_cell_steps.py``), following the
conventions in the docstring of ``tests/_reference.py``. A new gradient
method needs a reference here: ``test_every_declared_gradient_has_a_check``
fails until it has one.
"""

import numpy as np
import pytest

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._cells import CELLS, GRADIENTS, MODES

from _helpers import (
    assert_same_params,
    fit_then_randomize,
    float_params,
    numeric_gradient,
    random_sequences,
    steps_from,
)
from _reference import Layout, bptt, cell_params, forward_loss, link, penalty, rtrl

pytestmark = pytest.mark.usefixtures("quiet_convergence")

N_HIDDEN = 3
N_FEATURES = 2
#: Loss and number of outputs (classes) of each kind of estimator.
KINDS = {
    "regression": ("squared_error", 2),
    "binary": ("log_loss_binary", 2),
    "multiclass": ("log_loss", 3),
}
#: The Elman and diagonal cells' activation (and the LRU's output map's) in
#: each case (the gated cells ignore it), so that every activation is
#: checked.
ACTIVATION = {
    ("regression", "last"): "tanh",
    ("regression", "sequence"): "logistic",
    ("binary", "last"): "identity",
    ("binary", "sequence"): "tanh",
    ("multiclass", "last"): "relu",
    ("multiclass", "sequence"): "tanh",
}
#: Gradient methods checked against a numpy reference, and those (random)
#: checked by their statistics.
DETERMINISTIC = ("rtrl", "snap1", "bptt")
STATISTICAL = ("uoro",)
#: The truncations of BPTT checked (None: untruncated, exact). A stream
#: needs one; 30 reaches back to the start of the streams here.
TRUNCATIONS = {"bptt": (None, 2)}
STREAM_TRUNCATIONS = {"bptt": (2, 30)}
LEARNING_RATE = 0.1
ALPHA = 0.05


def combinations(*modes, gradients=DETERMINISTIC, truncations=TRUNCATIONS):
    """(cell, gradient, truncation) of every registered cell and gradient
    that declares all of ``modes``."""
    params = []
    for cell, cell_class in CELLS.items():
        for gradient in cell_class.gradients:
            if gradient not in gradients:
                continue
            if not set(modes) <= set(cell_class.modes(gradient)):
                continue
            for k in truncations.get(gradient, (None,)):
                name = gradient if k is None else f"{gradient}{k}"
                params.append(pytest.param(cell, gradient, k, id=f"{cell}-{name}"))
    return params


# -- data and models -----------------------------------------------------------
def seed_of(*keys):
    return sum(map(ord, "-".join(map(str, keys))))


def targets_of(kind, rng, lengths, every_step):
    """Targets as the estimator takes them, and as the references read them:
    one (T, o) array per sequence, zero rows where a step has no target."""
    loss, k = KINDS[kind]
    if kind == "regression":
        draw = [rng.normal(size=(T, k) if every_step else (k,)) for T in lengths]
    else:
        draw = [rng.randint(k, size=T if every_step else None) for T in lengths]
    rows = []
    for T, value in zip(lengths, draw):
        if kind == "binary":
            value = np.asarray(value, dtype=float)[..., None]
        elif kind == "multiclass":
            value = np.eye(k)[value]
        row = np.zeros((T, value.shape[-1]))
        row[slice(None) if every_step else -1] = value
        rows.append(row)
    y = draw if every_step else np.array(draw)
    return y, rows


def make_estimator(kind, cell, gradient, **params):
    Estimator = RTRLRegressor if kind == "regression" else RTRLClassifier
    # The numpy references read the last step (tests/test_pooling.py covers
    # the pooled readouts).
    defaults = dict(cell=cell, gradient=gradient, truncation=None, pooling="last",
                    max_iter=1, alpha=0.0, shuffle=False, random_state=0)  # fmt: skip
    return Estimator(N_HIDDEN, **{**defaults, **params})


def set_up(est, kind, X, y, rng):
    n_classes = None if kind == "regression" else KINDS[kind][1]
    return fit_then_randomize(est, X, y, rng, n_classes)


def minibatch_case(cell, gradient, truncation, kind, output, feedback):
    """A model with random parameters and alpha > 0, sequences, targets,
    sample weights, and the numpy view of the problem: per-step weights
    ``w_s / sum(w)`` (over the steps of s with per-step targets)."""
    rng = np.random.RandomState(seed_of(cell, kind, output, feedback))
    every_step = output == "sequence"
    X = random_sequences(rng, 4, N_FEATURES, max_len=5)
    lengths = [x.shape[0] for x in X]
    y, rows = targets_of(kind, rng, lengths, every_step)
    activation = ACTIVATION[kind, output]
    feedback_params = dict(output_feedback=feedback is not None,
                           teacher_forcing=feedback != "free")  # fmt: skip
    est = make_estimator(kind, cell, gradient, truncation=truncation, output=output,
                         activation=activation, **feedback_params)  # fmt: skip
    set_up(est, kind, X, y, rng)
    est.set_params(alpha=ALPHA)
    weights = rng.uniform(0.5, 2.0, size=len(X))
    sequences = []
    for x, row, w in zip(X, rows, weights / weights.sum()):
        T = x.shape[0]
        step_weights = np.full(T, w / T) if every_step else np.eye(T)[-1] * w
        sequences.append((x, row, step_weights))
    return est, X, y, weights, sequences, activation


def reference_run(cell, gradient, truncation, params, **kw):
    """The numpy training run of ``gradient`` (see ``tests/_reference.py``)."""
    if gradient in ("rtrl", "snap1"):
        return rtrl(cell, params, snap1=gradient == "snap1", **kw)
    if gradient == "bptt":
        return bptt(cell, params, truncation=truncation, **kw)
    raise NotImplementedError(f"No numpy reference for gradient={gradient!r}.")


_OBJECTIVE_GRADIENTS = {}


def objective_and_numeric_gradient(key, cell, params, activation, loss, sequences,
                                   feedback, scale):  # fmt: skip
    """The numpy objective and its central finite differences, computed once
    per problem (``key``) and shared by the exact methods."""

    def objective():
        data = forward_loss(cell, params, activation, loss, sequences, feedback)
        return data + penalty(params, ALPHA, scale)

    if key not in _OBJECTIVE_GRADIENTS:
        _OBJECTIVE_GRADIENTS[key] = (objective(), numeric_gradient(objective, params))
    return _OBJECTIVE_GRADIENTS[key]


def check_minibatch_gradient(cell, gradient, truncation, kind, output, feedback):
    est, X, y, weights, sequences, activation = minibatch_case(
        cell, gradient, truncation, kind, output, feedback
    )
    loss_name = KINDS[kind][0]
    loss, grad = est.loss_gradient(X, y, sample_weight=weights)
    params = float_params(est)
    key = (cell, kind, output, feedback, Layout(params).vector(params).tobytes())
    objective, numeric = objective_and_numeric_gradient(
        key, cell, params, activation, loss_name, sequences, feedback,
        1 / weights.sum(),
    )  # fmt: skip
    assert loss == pytest.approx(objective, rel=1e-10)
    exact = gradient == "rtrl" or (gradient == "bptt" and truncation is None)
    reference = dict(activation=activation, loss=loss_name, sequences=sequences,
                     feedback=feedback)  # fmt: skip
    scale = ALPHA / weights.sum()
    if exact:
        assert_same_params(grad, numeric, rtol=1e-7, atol=1e-9)
        if gradient == "rtrl":
            # The numpy RTRL that the other checks lean on is exact too.
            result = rtrl(cell, params, **reference)
            layout = result["layout"]
            total = result["gradient"] + scale * layout.penalty_mask() * (
                layout.vector(params)
            )
            assert_same_params(layout.arrays(total), numeric, rtol=1e-7, atol=1e-9)
        return
    result = reference_run(cell, gradient, truncation, params, **reference)
    layout = result["layout"]
    expected = result["gradient"] + scale * layout.penalty_mask() * layout.vector(
        params
    )
    assert_same_params(grad, layout.arrays(expected), rtol=1e-7, atol=1e-12)


# -- the registry ----------------------------------------------------------------
def test_every_declared_gradient_has_a_check():
    for name, cell_class in CELLS.items():
        assert set(cell_class.gradients) <= set(GRADIENTS), name
        for gradient in cell_class.gradients:
            assert gradient in DETERMINISTIC + STATISTICAL, (name, gradient)
            modes = cell_class.modes(gradient)
            assert modes and set(modes) <= set(MODES), (name, gradient, modes)


def test_every_cell_has_a_numpy_step():
    from skrtrl.inspection._cell_steps import CELL_STEPS

    assert set(CELLS) <= set(CELL_STEPS)


#: Estimator settings that train in each mode (BPTT's streams need a
#: truncation).
MODE_SETTINGS = {
    "minibatch": dict(),
    "step": dict(update="step"),
    "stream": dict(stateful=True, truncation=3),
    "feedback": dict(output_feedback=True),
    "free_running": dict(output_feedback=True, teacher_forcing=False),
}
UNDECLARED = [
    pytest.param(cell, gradient, mode, id=f"{cell}-{gradient}-{mode}")
    for cell, cell_class in CELLS.items()
    for gradient in GRADIENTS
    for mode in MODES
    if mode not in cell_class.modes(gradient)
]


@pytest.mark.parametrize("cell, gradient, mode", UNDECLARED)
def test_undeclared_combinations_are_refused(cell, gradient, mode):
    # The message names what the cell supports instead.
    supported = [g for g in CELLS[cell].gradients if mode in CELLS[cell].modes(g)]
    X, y = np.zeros((3, 4, N_FEATURES)), np.zeros((3, 4))
    if mode == "stream":
        X, y = X[0], y[0]
    est = make_estimator("regression", cell, gradient, output="sequence",
                         **MODE_SETTINGS[mode])  # fmt: skip
    with pytest.raises(ValueError) as error:
        est.fit(X, y)
    for name in supported:
        assert repr(name) in str(error.value)
    assert not hasattr(est, "params_")


# -- minibatch -------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("output", ["last", "sequence"])
@pytest.mark.parametrize("cell, gradient, truncation", combinations("minibatch"))
def test_minibatch_gradient(cell, gradient, truncation, output, kind):
    check_minibatch_gradient(cell, gradient, truncation, kind, output, None)


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("cell, gradient, truncation", combinations("feedback"))
def test_teacher_forced_gradient(cell, gradient, truncation, kind):
    check_minibatch_gradient(cell, gradient, truncation, kind, "sequence", "teacher")


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("cell, gradient, truncation", combinations("free_running"))
def test_free_running_gradient(cell, gradient, truncation, kind):
    check_minibatch_gradient(cell, gradient, truncation, kind, "sequence", "free")


# -- per-step updates: update="step" and streams -----------------------------------
def outputs_from(cell, params, activation, loss, X, state, fed):
    """Readouts over the rows X from ``state``; with a fed-back value
    ``fed``, the closed loop (each output fed into the next step)."""
    p = cell_params(params)
    W, b = params["weight_out"], params["bias_out"]
    s, Z = state, []
    for x in X:
        u = x if fed is None else np.concatenate([x, fed])
        steps = steps_from(cell, p, u[None, None], activation, s[None])
        s = steps.S[0, 1]
        Z.append(W @ steps.output(0)[0] + b)
        if fed is not None:
            fed = link(loss, Z[-1])
    return np.array(Z)


def check_online_updates(cell, gradient, truncation, kind, output, setting, feedback):
    """``partial_fit`` with plain SGD after every step equals the numpy run:
    on sequences (``setting="step"``, sample weights spread over the steps),
    or on a stream cut into two calls (``"stream"``, a weight per row)."""
    rng = np.random.RandomState(seed_of(cell, kind, output, setting, feedback))
    loss_name = KINDS[kind][0]
    activation = ACTIVATION[kind, output]
    params = dict(
        truncation=truncation, update="step", solver="sgd", momentum=0.0,
        learning_rate_init=LEARNING_RATE, clip_norm=None, output=output,
        activation=activation, output_feedback=feedback is not None,
        teacher_forcing=feedback != "free",
    )  # fmt: skip
    if setting == "stream":
        X = rng.normal(size=(12, N_FEATURES))
        (y,), (rows,) = targets_of(kind, rng, [12], every_step=True)
        weights = rng.uniform(0.5, 2.0, size=12)
        weights[3] = 0.0  # a row without an update (its target is still fed back)
        est = make_estimator(kind, cell, gradient, stateful=True, **params)
        set_up(est, kind, X, y, rng).reset_state()
        sequences = [(X, rows, weights)]
    else:
        X = random_sequences(rng, 3, N_FEATURES, max_len=5)
        y, rows = targets_of(kind, rng, [x.shape[0] for x in X], output == "sequence")
        weights = rng.uniform(0.5, 2.0, size=len(X))
        est = make_estimator(kind, cell, gradient, **params)
        set_up(est, kind, X, y, rng)
        sequences = []
        for x, row, w in zip(X, rows, weights):
            T = x.shape[0]
            spread = np.full(T, w / T) if output == "sequence" else np.eye(T)[-1] * w
            sequences.append((x, row, spread))
    est.set_params(alpha=ALPHA)
    start = float_params(est)
    if setting == "stream":
        est.partial_fit(X[:5], y[:5], sample_weight=weights[:5])
        est.partial_fit(X[5:], y[5:], sample_weight=weights[5:])
    else:
        est.partial_fit(X, y, sample_weight=weights)
    kw = dict(activation=activation, loss=loss_name, sequences=sequences,
              feedback=feedback, alpha=ALPHA)  # fmt: skip
    expected = reference_run(cell, gradient, truncation, start, lr=LEARNING_RATE, **kw)
    assert_same_params(est.params_, expected["params"], rtol=1e-9, atol=1e-12)
    # The weights move within a call: one update with the summed gradient
    # (what the first order in the learning rate sees) is measurably off.
    layout = expected["layout"]
    fixed = reference_run(cell, gradient, truncation, start, lr=0.0, **kw)
    first_order = layout.vector(start) - LEARNING_RATE * fixed["gradient"]
    assert not np.allclose(layout.vector(expected["params"]), first_order, rtol=1e-6)
    if setting == "stream":
        # Predictions run on from the stream's state (and fed-back value).
        X_next = rng.normal(size=(4, N_FEATURES))
        Z = outputs_from(cell, expected["params"], activation, loss_name, X_next,
                         expected["state"], expected["fed"])  # fmt: skip
        if kind == "regression":
            np.testing.assert_allclose(est.predict(X_next), Z, rtol=1e-9, atol=1e-12)
        else:
            proba = np.array([link(loss_name, z) for z in Z])
            np.testing.assert_allclose(
                est.predict_proba(X_next), proba, rtol=1e-9, atol=1e-12
            )


STEP_CASES = [("regression", "last"), ("regression", "sequence"),
              ("binary", "sequence"), ("multiclass", "last")]  # fmt: skip


@pytest.mark.parametrize("kind, output", STEP_CASES)
@pytest.mark.parametrize("cell, gradient, truncation", combinations("step"))
def test_step_updates(cell, gradient, truncation, kind, output):
    check_online_updates(cell, gradient, truncation, kind, output, "step", None)


@pytest.mark.parametrize("kind", ["regression", "multiclass"])
@pytest.mark.parametrize(
    "cell, gradient, truncation",
    combinations("stream", truncations=STREAM_TRUNCATIONS),
)
def test_stream_updates(cell, gradient, truncation, kind):
    check_online_updates(cell, gradient, truncation, kind, "sequence", "stream", None)


@pytest.mark.parametrize("kind", ["regression", "multiclass"])
@pytest.mark.parametrize("cell, gradient, truncation", combinations("feedback", "step"))
def test_teacher_forced_step_updates(cell, gradient, truncation, kind):
    check_online_updates(
        cell, gradient, truncation, kind, "sequence", "step", "teacher"
    )


@pytest.mark.parametrize("kind", ["regression", "multiclass"])
@pytest.mark.parametrize(
    "cell, gradient, truncation",
    combinations("feedback", "stream", truncations=STREAM_TRUNCATIONS),
)
def test_teacher_forced_stream_updates(cell, gradient, truncation, kind):
    check_online_updates(
        cell, gradient, truncation, kind, "sequence", "stream", "teacher"
    )


@pytest.mark.parametrize("kind", ["regression", "binary"])
@pytest.mark.parametrize(
    "cell, gradient, truncation", combinations("free_running", "step")
)
def test_free_running_step_updates(cell, gradient, truncation, kind):
    check_online_updates(cell, gradient, truncation, kind, "sequence", "step", "free")


@pytest.mark.parametrize("kind", ["regression", "multiclass"])
@pytest.mark.parametrize(
    "cell, gradient, truncation",
    combinations("free_running", "stream", truncations=STREAM_TRUNCATIONS),
)
def test_free_running_stream_updates(cell, gradient, truncation, kind):
    check_online_updates(cell, gradient, truncation, kind, "sequence", "stream", "free")


# -- SnAp-1 and UORO -----------------------------------------------------------------
@pytest.mark.parametrize("kind", ["regression", "binary"])
@pytest.mark.parametrize(
    "cell, gradient, truncation",
    [p for p in combinations("minibatch") if p.values[1] == "snap1"],
)
def test_snap1_with_one_unit_is_exact_rtrl(cell, gradient, truncation, kind):
    # One unit: the per-unit blocks are the whole influence, SnAp-1 is exact.
    rng = np.random.RandomState(seed_of(cell, kind))
    X = random_sequences(rng, 4, N_FEATURES, max_len=5)
    y, rows = targets_of(kind, rng, [x.shape[0] for x in X], every_step=True)
    est = make_estimator(kind, cell, gradient, truncation=truncation, output="sequence")
    set_up(est.set_params(n_hidden=1), kind, X, y, rng)
    loss, grad = est.loss_gradient(X, y)
    sequences = [(x, row, np.full(len(x), 1 / (len(x) * len(X))))
                 for x, row in zip(X, rows)]  # fmt: skip
    exact = rtrl(cell, float_params(est), activation="tanh", loss=KINDS[kind][0],
                 sequences=sequences)  # fmt: skip
    assert loss == pytest.approx(exact["loss"], rel=1e-10)
    assert_same_params(grad, exact["layout"].arrays(exact["gradient"]), rtol=1e-9,
                       atol=1e-13)  # fmt: skip


def assert_unbiased(means, exact, readout, exact_rtol=1e-9, exact_atol=1e-13):
    """``means`` (M, P): M independent means of UORO estimates of ``exact``.

    The readout's entries (``readout``, a mask) are exact, and so is every
    entry that never varies. For the others, unbiased estimates make
    z = (mean - exact) / se about Student-t with M - 1 degrees of freedom
    (se from the spread of the M means): every |z| < 5 (a false alarm has
    probability ~1e-5 per entry with M = 50) and the mean of z^2 within
    [1/4, 3] (the entries are correlated, so the mean of z^2 spreads more
    than a chi-square's over P). And the check has power: the same
    estimates are far from 1.25 times the exact gradient.
    """
    M = means.shape[0]
    spread = means.std(axis=0, ddof=1)
    # UORO's estimates spread by about their size; rounding far less.
    varies = ~readout & (spread > 1e-6 * np.abs(exact).max())
    np.testing.assert_allclose(means[:, ~varies].mean(axis=0), exact[~varies],
                               rtol=exact_rtol, atol=exact_atol)  # fmt: skip
    assert varies.sum() >= 5
    se = spread[varies] / np.sqrt(M)
    z = (means[:, varies].mean(axis=0) - exact[varies]) / se
    assert np.abs(z).max() < 5
    assert 0.25 < np.mean(z**2) < 3
    biased = (means[:, varies].mean(axis=0) - 1.25 * exact[varies]) / se
    assert np.abs(biased).max() > 5, "too few estimates to see a bias"


def readout_mask(layout):
    mask = np.zeros(layout.size, dtype=bool)
    for name in ("weight_out", "bias_out"):
        mask[layout.slices[name]] = True
    return mask


UORO_MEANS = 50  # independent means per check
UORO_COPIES = 200  # estimates per mean


def uoro_case(cell, gradient, feedback=None, **params):
    """A UORO model (random parameters), one sequence with targets at every
    step, and its exact gradient from the numpy RTRL (weights 1/T)."""
    rng = np.random.RandomState(seed_of(cell, gradient, feedback))
    x = rng.normal(size=(4, N_FEATURES))
    (y,), (rows,) = targets_of("regression", rng, [4], every_step=True)
    est = make_estimator("regression", cell, gradient, output="sequence",
                         output_feedback=feedback is not None, **params)  # fmt: skip
    set_up(est, "regression", [x], [y], rng)
    start = float_params(est)
    sequences = [(x, rows, np.full(4, 0.25))]
    exact = rtrl(cell, start, activation="tanh", loss="squared_error",
                 sequences=sequences, feedback=feedback)  # fmt: skip
    return est, x, y, start, exact


@pytest.mark.parametrize(
    "cell, gradient, truncation, feedback",
    [
        pytest.param(*p.values, feedback, id=f"{p.id}-{mode}")
        for mode, feedback in [("minibatch", None), ("feedback", "teacher")]
        for p in combinations(mode, gradients=STATISTICAL)
    ],
)
def test_uoro_gradient_is_unbiased(cell, gradient, truncation, feedback):
    est, x, y, _, exact = uoro_case(cell, gradient, feedback)
    # Every copy of the sequence draws its own random signs.
    copies = (np.repeat(x[None], UORO_COPIES, 0), np.repeat(y[None], UORO_COPIES, 0))
    layout = exact["layout"]
    means = np.array(
        [layout.vector(est.loss_gradient(*copies)[1]) for _ in range(UORO_MEANS)]
    )
    assert_unbiased(means, exact["gradient"], readout_mask(layout))


@pytest.mark.parametrize(
    "cell, gradient, truncation", combinations("step", gradients=STATISTICAL)
)
def test_uoro_step_updates_are_unbiased(cell, gradient, truncation):
    # With a learning rate this small the weights stay put to first order
    # (they move by ~1e-5 relative over the copies), and the update of each
    # copy is -lr times its estimate; a smaller rate would drown the updates
    # in the rounding of the parameters.
    lr = 1e-7
    est, x, y, start, exact = uoro_case(
        cell, gradient, update="step", solver="sgd", momentum=0.0,
        learning_rate_init=lr, clip_norm=None,
    )  # fmt: skip
    layout = exact["layout"]
    copies = (np.repeat(x[None], UORO_COPIES, 0), np.repeat(y[None], UORO_COPIES, 0))
    means = []
    for _ in range(UORO_MEANS):
        for name, value in start.items():
            est.params_[name][...] = value
        est.partial_fit(*copies)
        moved = layout.vector(start) - layout.vector(float_params(est))
        means.append(moved / (lr * UORO_COPIES))
    # The weights' drift moves every exact entry (the readout's, the LRU's
    # output map's) by ~1e-5 of the gradient's scale, not of its own size.
    scale = np.abs(exact["gradient"]).max()
    assert_unbiased(
        np.array(means), exact["gradient"], readout_mask(layout), exact_rtol=1e-4,
        exact_atol=1e-4 * scale,
    )  # fmt: skip


@pytest.mark.parametrize(
    "cell, gradient, truncation, mode",
    [
        pytest.param(*p.values, mode, id=f"{p.id}-{mode}")
        for mode in ("minibatch", "step", "stream")
        for p in combinations(mode, gradients=STATISTICAL)
    ],
)
def test_uoro_follows_the_seed(cell, gradient, truncation, mode):
    rng = np.random.RandomState(seed_of(cell, mode))
    X = rng.normal(size=(6, 5, N_FEATURES))
    y = rng.normal(size=(6, 5))
    if mode == "stream":
        X, y = X.reshape(-1, N_FEATURES), y.ravel()
    values = rng.uniform(-0.7, 0.7, size=10_000)

    def run(seed):
        est = make_estimator("regression", cell, gradient, output="sequence",
                             random_state=seed, **MODE_SETTINGS[mode])  # fmt: skip
        est.partial_fit(X, y)
        for value in est.params_.values():  # the same weights for every seed
            value[...] = values[: value.size].reshape(value.shape)
        if mode == "minibatch":
            return np.concatenate(
                [g.ravel() for g in est.loss_gradient(X, y)[1].values()]
            )
        est.partial_fit(X, y)
        return np.concatenate([v.ravel() for v in est.params_.values()])

    first = run(0)
    np.testing.assert_array_equal(run(0), first)
    assert not np.allclose(run(1), first, rtol=1e-6)
