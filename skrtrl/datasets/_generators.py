"""Synthetic sequence data sets for recurrent models.

All generators are pure numpy and take a ``random_state`` argument with the
usual scikit-learn semantics (None, an int seed or a
:class:`numpy.random.RandomState`).
"""

import math
import numbers

import numpy as np
from sklearn.utils import check_random_state

__all__ = [
    "REBER_SYMBOLS",
    "make_adding_problem",
    "make_concept_drift_stream",
    "make_copy_task",
    "make_delayed_sum",
    "make_delayed_xor",
    "make_embedded_reber",
    "make_mackey_glass",
    "make_narendra_plant",
]


# --------------------------------------------------------------------------
# argument validation helpers


def _check_int(value, name, *, min_value=None, max_value=None):
    """Check that ``value`` is an integer in ``[min_value, max_value]``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"{name} must be an integer, got {value!r} of type {type(value).__name__}."
        )
    value = int(value)
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}.")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name} must be <= {max_value}, got {value}.")
    return value


def _check_real(value, name, *, min_value=None, strict=False):
    """Check that ``value`` is a finite real number (optionally bounded below).

    With ``strict=True`` the bound is exclusive (``value > min_value``).
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"{name} must be a real number, got {value!r} of type "
            f"{type(value).__name__}."
        )
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    if min_value is not None:
        if strict and value <= min_value:
            raise ValueError(f"{name} must be > {min_value}, got {value}.")
        if not strict and value < min_value:
            raise ValueError(f"{name} must be >= {min_value}, got {value}.")
    return value


def _check_output(output):
    if output not in ("last", "sequence"):
        raise ValueError(f"output must be 'last' or 'sequence', got {output!r}.")
    return output


# --------------------------------------------------------------------------
# Mackey-Glass


def _mackey_glass_rhs(x, x_delayed, beta, gamma, n):
    return beta * x_delayed / (1.0 + x_delayed**n) - gamma * x


def make_mackey_glass(
    n_steps=1000,
    *,
    tau=17.0,
    beta=0.2,
    gamma=0.1,
    n=10.0,
    dt=1.0,
    n_substeps=10,
    x0=1.2,
    discard=500,
    random_state=None,
):
    """Generate a Mackey-Glass chaotic time series.

    The series is a solution of the Mackey-Glass delay differential
    equation

    .. math::

        \\frac{dx}{dt} = \\beta \\frac{x(t - \\tau)}{1 + x(t - \\tau)^n}
        - \\gamma x(t),

    sampled every ``dt`` time units. With the default parameters
    (``tau=17``) the dynamics are chaotic and the values lie roughly in
    ``[0.2, 1.4]``.

    Parameters
    ----------
    n_steps : int, default=1000
        Number of samples returned.

    tau : float, default=17.0
        Delay :math:`\\tau` (> 0). It must be at least the integration step
        ``dt / n_substeps``.

    beta : float, default=0.2
        Production rate :math:`\\beta` (>= 0).

    gamma : float, default=0.1
        Decay rate :math:`\\gamma` (>= 0).

    n : float, default=10.0
        Exponent :math:`n` of the nonlinearity (> 0).

    dt : float, default=1.0
        Sampling interval of the returned series (> 0).

    n_substeps : int, default=10
        Number of integration steps per sampling interval; the equation is
        integrated with step ``h = dt / n_substeps``.

    x0 : float, default=1.2
        Nominal value (> 0) of the constant initial history :math:`x(t)`,
        :math:`t \\in [-\\tau, 0]` (see ``random_state``).

    discard : int, default=500
        Number of initial samples (of ``dt`` time units each) dropped as a
        transient before the ``n_steps`` returned samples.

    random_state : int, RandomState instance or None, default=None
        Seeds the small jitter of the initial history, which is the
        constant ``x0 * (1 + u)`` with ``u`` drawn uniformly from
        ``[-0.01, 0.01]``. As the system is chaotic, different seeds give
        trajectories that differ after the transient; the same seed gives
        the same trajectory.

    Returns
    -------
    x : ndarray of shape (n_steps,)
        The sampled series, float64.

    Notes
    -----
    The equation is integrated with the classical fourth-order Runge-Kutta
    scheme with fixed step ``h = dt / n_substeps`` on a grid that also
    covers the history interval. The delayed values
    :math:`x(t - \\tau)` needed by the Runge-Kutta stages that fall between
    grid points (the half steps, and any point when ``tau`` is not a
    multiple of ``h``) are obtained by cubic Hermite interpolation from the
    stored values and derivatives, which preserves the fourth order of the
    scheme. The default ``h = 0.1`` is far below the time scale of the
    dynamics. The returned series
    is the solution at times ``(discard + k) * dt`` for
    ``k = 0, ..., n_steps - 1``.

    References
    ----------
    M. C. Mackey and L. Glass, "Oscillation and chaos in physiological
    control systems", Science 197 (4300), 1977, pp. 287-289.

    Examples
    --------
    >>> from skrtrl.datasets import make_mackey_glass
    >>> x = make_mackey_glass(200, discard=100, random_state=0)
    >>> x.shape
    (200,)
    >>> bool(x.min() > 0.0)
    True
    """
    n_steps = _check_int(n_steps, "n_steps", min_value=1)
    tau = _check_real(tau, "tau", min_value=0.0, strict=True)
    beta = _check_real(beta, "beta", min_value=0.0)
    gamma = _check_real(gamma, "gamma", min_value=0.0)
    n = _check_real(n, "n", min_value=0.0, strict=True)
    dt = _check_real(dt, "dt", min_value=0.0, strict=True)
    n_substeps = _check_int(n_substeps, "n_substeps", min_value=1)
    x0 = _check_real(x0, "x0", min_value=0.0, strict=True)
    discard = _check_int(discard, "discard", min_value=0)
    rng = check_random_state(random_state)

    h = dt / n_substeps
    # delay measured in integration steps; round away float noise such as
    # 17 / 0.1 = 170.00000000000003
    lag = tau / h
    if abs(lag - round(lag)) < 1e-9:
        lag = float(round(lag))
    if lag < 1.0:
        raise ValueError(
            f"tau must be >= dt / n_substeps = {h}, got tau={tau}; decrease dt "
            "or increase n_substeps."
        )

    # grid index j corresponds to time (j - n_hist) * h
    n_hist = math.ceil(lag)
    n_total = (discard + n_steps) * n_substeps
    x = np.empty(n_hist + n_total + 1)
    x[: n_hist + 1] = x0 * (1.0 + rng.uniform(-0.01, 0.01))

    # dxdt[j] is the derivative at grid point j (zero on the constant history,
    # the right derivative at t = 0). The delayed value x(t_i - tau + c * h),
    # c in {0, 1/2, 1}, sits at the fractional grid position i - lag + c and is
    # evaluated with cubic Hermite interpolation, which keeps the scheme
    # fourth-order accurate.
    dxdt = np.zeros_like(x)
    base = math.floor(lag)
    frac = lag - base

    def delayed(i, offset):
        q = i - base - frac + offset
        j = math.floor(q)
        w = q - j
        if w == 0.0:
            return float(x[j])
        # the interval [j, j + 1] lies in the history when j + 1 <= n_hist
        right = float(dxdt[j + 1]) if j + 1 > n_hist else 0.0
        w2 = w * w
        w3 = w2 * w
        return (
            (2.0 * w3 - 3.0 * w2 + 1.0) * float(x[j])
            + (w3 - 2.0 * w2 + w) * h * float(dxdt[j])
            + (3.0 * w2 - 2.0 * w3) * float(x[j + 1])
            + (w3 - w2) * h * right
        )

    for i in range(n_hist, n_hist + n_total):
        xi = float(x[i])
        k1 = _mackey_glass_rhs(xi, delayed(i, 0.0), beta, gamma, n)
        dxdt[i] = k1
        dm = delayed(i, 0.5)
        k2 = _mackey_glass_rhs(xi + 0.5 * h * k1, dm, beta, gamma, n)
        k3 = _mackey_glass_rhs(xi + 0.5 * h * k2, dm, beta, gamma, n)
        k4 = _mackey_glass_rhs(xi + h * k3, delayed(i, 1.0), beta, gamma, n)
        x[i + 1] = xi + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)

    start = n_hist + discard * n_substeps
    return x[start : start + n_steps * n_substeps : n_substeps].copy()


# --------------------------------------------------------------------------
# concept drift stream


def make_concept_drift_stream(
    n_steps=2000,
    *,
    drift_at=0.5,
    noise=0.0,
    periods=(20.0, 8.0),
    random_state=None,
):
    """Generate a one-step-ahead prediction stream with an abrupt drift.

    The underlying signal is a unit-amplitude sinusoid
    :math:`s_t = \\sin(\\phi_t)` whose phase advances by
    :math:`\\omega = 2\\pi / P` per step. At the drift point the period
    switches from ``periods[0]`` to ``periods[1]``; the phase (hence the
    signal) stays continuous, only the frequency changes. Equivalently,
    the noise-free signal obeys the linear recurrence
    :math:`s_{t+1} = 2\\cos(\\omega) s_t - s_{t-1}`, whose coefficient
    :math:`2\\cos(\\omega)` switches at the drift point. Nothing else
    (amplitude, noise level) changes.

    Parameters
    ----------
    n_steps : int, default=2000
        Length of the stream (>= 2).

    drift_at : float or int, default=0.5
        Position of the drift. A float in ``[0, 1]`` is a fraction of
        ``n_steps`` (the index is ``round(drift_at * n_steps)``); an int in
        ``[0, n_steps]`` is the index itself. Let ``t_d`` be that index:
        the phase increment from step ``t`` to step ``t + 1`` is
        ``2 * pi / periods[0]`` for ``t < t_d`` and ``2 * pi / periods[1]``
        for ``t >= t_d``. So ``y[t]`` follows the old dynamics for
        ``t < t_d`` and the new ones for ``t >= t_d``. ``t_d = n_steps``
        means no drift within the stream.

    noise : float, default=0.0
        Standard deviation (>= 0) of i.i.d. Gaussian observation noise added
        to every observed value (so to both ``X`` and ``y``).

    periods : tuple of two floats, default=(20.0, 8.0)
        Periods (in steps, each > 2) of the sinusoid before and after the
        drift.

    random_state : int, RandomState instance or None, default=None
        Seeds the initial phase (uniform in ``[0, 2 pi)``) and the noise.

    Returns
    -------
    X : ndarray of shape (n_steps, 1)
        ``X[t, 0]`` is the observed value at step ``t``, float64.

    y : ndarray of shape (n_steps,)
        ``y[t]`` is the observed value at step ``t + 1``, so
        ``y[:-1] == X[1:, 0]``.

    Examples
    --------
    >>> from skrtrl.datasets import make_concept_drift_stream
    >>> X, y = make_concept_drift_stream(500, drift_at=0.5, random_state=0)
    >>> X.shape, y.shape
    ((500, 1), (500,))
    >>> bool((y[:-1] == X[1:, 0]).all())
    True
    """
    n_steps = _check_int(n_steps, "n_steps", min_value=2)
    if isinstance(drift_at, (bool, np.bool_)) or not isinstance(drift_at, numbers.Real):
        raise ValueError(
            f"drift_at must be a float in [0, 1] or an int in [0, n_steps], "
            f"got {drift_at!r}."
        )
    if isinstance(drift_at, numbers.Integral):
        t_drift = _check_int(drift_at, "drift_at", min_value=0, max_value=n_steps)
    else:
        drift_at = float(drift_at)
        if not 0.0 <= drift_at <= 1.0:
            raise ValueError(
                f"drift_at given as a float must be a fraction in [0, 1], "
                f"got {drift_at}."
            )
        t_drift = int(round(drift_at * n_steps))
    noise = _check_real(noise, "noise", min_value=0.0)
    try:
        period_before, period_after = periods
    except (TypeError, ValueError):
        raise ValueError(
            f"periods must be a pair (before, after), got {periods!r}."
        ) from None
    period_before = _check_real(period_before, "periods[0]", min_value=2.0, strict=True)
    period_after = _check_real(period_after, "periods[1]", min_value=2.0, strict=True)
    rng = check_random_state(random_state)

    phase0 = rng.uniform(0.0, 2.0 * np.pi)
    # increment applied on the transition t -> t + 1, t = 0 .. n_steps - 1
    increments = np.where(
        np.arange(n_steps) < t_drift,
        2.0 * np.pi / period_before,
        2.0 * np.pi / period_after,
    )
    phase = phase0 + np.concatenate(([0.0], np.cumsum(increments)))
    values = np.sin(phase)  # n_steps + 1 values
    if noise > 0.0:
        values = values + noise * rng.standard_normal(n_steps + 1)
    X = values[:n_steps, np.newaxis].copy()
    y = values[1:].copy()
    return X, y


# --------------------------------------------------------------------------
# embedded Reber grammar

#: Symbol order of the one-hot encoding used by :func:`make_embedded_reber`.
REBER_SYMBOLS = ("B", "T", "S", "X", "P", "V", "E")
_SYM = {s: i for i, s in enumerate(REBER_SYMBOLS)}

# Reber grammar as a finite automaton: state -> ((symbol, next_state), ...).
# Each state has two equally likely outgoing transitions, except the last.
_REBER_TRANSITIONS = {
    0: (("T", 1), ("P", 2)),
    1: (("S", 1), ("X", 3)),
    2: (("T", 2), ("V", 4)),
    3: (("X", 2), ("S", 5)),
    4: (("P", 3), ("V", 5)),
    5: (("E", 6),),
}


def _reber_string(rng):
    """Sample one (non-embedded) Reber string with the legal next sets.

    Returns the symbols and, for each symbol, the set of legal successors
    inside the inner grammar (empty after the final ``E``).
    """
    symbols = ["B"]
    next_sets = []
    state = 0
    while state in _REBER_TRANSITIONS:
        options = _REBER_TRANSITIONS[state]
        next_sets.append({s for s, _ in options})
        symbol, state = options[rng.randint(len(options))]
        symbols.append(symbol)
    next_sets.append(set())
    return symbols, next_sets


def make_embedded_reber(n_sequences=100, *, random_state=None):
    """Generate strings of the embedded Reber grammar.

    Each string has the form ``B a <r> a E`` where ``a`` is ``T`` or ``P``
    (equally likely) and ``<r>`` is a string of the Reber grammar
    (itself starting with ``B`` and ending with ``E``; at every branching
    point both transitions are equally likely). To predict the
    penultimate symbol a model must remember the second one across the
    whole inner string.

    Symbols are one-hot encoded in the order ``B, T, S, X, P, V, E``
    (column ``k`` is ``REBER_SYMBOLS[k]``).

    Parameters
    ----------
    n_sequences : int, default=100
        Number of strings (>= 1).

    random_state : int, RandomState instance or None, default=None
        Seeds the random choices of the grammar.

    Returns
    -------
    X : list of ndarray of shape (T_i, 7)
        One-hot encoding of the complete strings (including the initial
        ``B`` and final ``E``), float64.

    y : list of ndarray of shape (T_i, 7)
        Next-symbol prediction targets, float64: ``y[i][t]`` is the
        multi-hot indicator of the symbols that may legally follow the
        prefix ``X[i][: t + 1]``. At the penultimate symbol only ``E`` is
        legal, and after the inner string only the symbol equal to the
        second one is legal. The last row (after the final ``E``) is all
        zeros; drop it with ``X[i][:-1], y[i][:-1]`` if not wanted.

    References
    ----------
    A. S. Reber, "Implicit learning of artificial grammars", Journal of
    Verbal Learning and Verbal Behavior 6, 1967, pp. 855-863.

    S. Hochreiter and J. Schmidhuber, "Long short-term memory", Neural
    Computation 9 (8), 1997, pp. 1735-1780.

    Examples
    --------
    >>> from skrtrl.datasets import make_embedded_reber
    >>> from skrtrl.datasets import REBER_SYMBOLS
    >>> X, y = make_embedded_reber(5, random_state=0)
    >>> len(X), X[0].shape[1], y[0].shape == X[0].shape
    (5, 7, True)
    >>> s = "".join(REBER_SYMBOLS[k] for k in X[0].argmax(axis=1))
    >>> s[0], s[-1], s[1] == s[-2]
    ('B', 'E', True)
    """
    n_sequences = _check_int(n_sequences, "n_sequences", min_value=1)
    rng = check_random_state(random_state)
    n_symbols = len(REBER_SYMBOLS)

    X, y = [], []
    for _ in range(n_sequences):
        outer = "T" if rng.randint(2) == 0 else "P"
        inner, inner_next = _reber_string(rng)
        symbols = ["B", outer, *inner, outer, "E"]
        next_sets = [{"T", "P"}, {"B"}, *inner_next[:-1], {outer}, {"E"}, set()]
        length = len(symbols)
        x_seq = np.zeros((length, n_symbols))
        y_seq = np.zeros((length, n_symbols))
        x_seq[np.arange(length), [_SYM[s] for s in symbols]] = 1.0
        for t, legal in enumerate(next_sets):
            y_seq[t, [_SYM[s] for s in legal]] = 1.0
        X.append(x_seq)
        y.append(y_seq)
    return X, y


# --------------------------------------------------------------------------
# long-range memory benchmarks


def make_adding_problem(n_sequences=1000, n_steps=50, *, random_state=None):
    """Generate the adding problem.

    Each sequence has two input channels: channel 0 holds values drawn
    uniformly from ``[0, 1]``, channel 1 is a marker that is 1 at exactly
    two positions and 0 elsewhere. One marked position is drawn uniformly
    from the first half ``[0, n_steps // 2)`` and the other from the
    second half ``[n_steps // 2, n_steps)``. The target is the sum of the
    two marked values, read after the last step.

    Parameters
    ----------
    n_sequences : int, default=1000
        Number of sequences (>= 1).

    n_steps : int, default=50
        Length of each sequence (>= 2).

    random_state : int, RandomState instance or None, default=None
        Seeds the values and the marker positions.

    Returns
    -------
    X : ndarray of shape (n_sequences, n_steps, 2)
        Values (channel 0) and markers (channel 1), float64.

    y : ndarray of shape (n_sequences,)
        Sum of the two marked values, float64 in ``[0, 2]``.

    References
    ----------
    S. Hochreiter and J. Schmidhuber, "Long short-term memory", Neural
    Computation 9 (8), 1997, pp. 1735-1780.

    Q. V. Le, N. Jaitly and G. E. Hinton, "A simple way to initialize
    recurrent networks of rectified linear units", arXiv:1504.00941, 2015.

    Examples
    --------
    >>> from skrtrl.datasets import make_adding_problem
    >>> X, y = make_adding_problem(100, 20, random_state=0)
    >>> X.shape, y.shape
    ((100, 20, 2), (100,))
    >>> X[:, :, 1].sum(axis=1)[:3]
    array([2., 2., 2.])
    """
    n_sequences = _check_int(n_sequences, "n_sequences", min_value=1)
    n_steps = _check_int(n_steps, "n_steps", min_value=2)
    rng = check_random_state(random_state)

    half = n_steps // 2
    values = rng.uniform(0.0, 1.0, size=(n_sequences, n_steps))
    first = rng.randint(0, half, size=n_sequences)
    second = rng.randint(half, n_steps, size=n_sequences)
    rows = np.arange(n_sequences)
    markers = np.zeros((n_sequences, n_steps))
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    X = np.stack([values, markers], axis=2)
    y = values[rows, first] + values[rows, second]
    return X, y


def make_copy_task(
    n_sequences=1000,
    *,
    n_symbols=8,
    length=10,
    delay=10,
    random_state=None,
):
    """Generate the copy (memory) task.

    Each sequence has ``T = length + delay + length`` steps and uses
    ``n_symbols + 2`` classes: the data symbols ``0 .. n_symbols - 1``,
    the blank ``n_symbols`` and the delimiter ``n_symbols + 1``. The
    layout of the input, by step, is

    - ``[0, length)``: the ``length`` data symbols to memorise, drawn
      uniformly;
    - ``[length, length + delay - 1)``: blanks;
    - ``length + delay - 1``: the delimiter, signalling "start copying";
    - ``[length + delay, T)``: blanks.

    The target is the blank class at every step except the last
    ``length`` ones, ``[length + delay, T)``, where it is the data
    symbols in their original order.

    Parameters
    ----------
    n_sequences : int, default=1000
        Number of sequences (>= 1).

    n_symbols : int, default=8
        Number of distinct data symbols (>= 1).

    length : int, default=10
        Number of symbols to copy (>= 1).

    delay : int, default=10
        Number of steps between the end of the data symbols and the start
        of the output; the last of them carries the delimiter (>= 1).

    random_state : int, RandomState instance or None, default=None
        Seeds the data symbols.

    Returns
    -------
    X : ndarray of shape (n_sequences, 2 * length + delay, n_symbols + 2)
        One-hot input, float64.

    y : ndarray of shape (n_sequences, 2 * length + delay)
        Integer target classes (int64) in ``[0, n_symbols]``; ``n_symbols``
        is the blank class.

    References
    ----------
    S. Hochreiter and J. Schmidhuber, "Long short-term memory", Neural
    Computation 9 (8), 1997, pp. 1735-1780.

    M. Arjovsky, A. Shah and Y. Bengio, "Unitary evolution recurrent
    neural networks", ICML 2016.

    Examples
    --------
    >>> from skrtrl.datasets import make_copy_task
    >>> X, y = make_copy_task(50, n_symbols=4, length=5, delay=3, random_state=0)
    >>> X.shape, y.shape
    ((50, 13, 6), (50, 13))
    >>> bool((y[:, -5:] == X[:, :5].argmax(axis=2)).all())
    True
    """
    n_sequences = _check_int(n_sequences, "n_sequences", min_value=1)
    n_symbols = _check_int(n_symbols, "n_symbols", min_value=1)
    length = _check_int(length, "length", min_value=1)
    delay = _check_int(delay, "delay", min_value=1)
    rng = check_random_state(random_state)

    blank, delimiter = n_symbols, n_symbols + 1
    n_total = 2 * length + delay
    data = rng.randint(0, n_symbols, size=(n_sequences, length))

    inputs = np.full((n_sequences, n_total), blank, dtype=np.int64)
    inputs[:, :length] = data
    inputs[:, length + delay - 1] = delimiter
    X = np.zeros((n_sequences, n_total, n_symbols + 2))
    np.put_along_axis(X, inputs[:, :, np.newaxis], 1.0, axis=2)

    y = np.full((n_sequences, n_total), blank, dtype=np.int64)
    y[:, length + delay :] = data
    return X, y


def make_delayed_xor(
    n_sequences=1000, n_steps=10, *, delay=2, output="last", random_state=None
):
    """Generate the delayed XOR task.

    The input is a sequence of independent fair random bits :math:`x_t`.
    The target at step ``t`` is :math:`x_t \\oplus x_{t - \\mathrm{delay}}`,
    which requires remembering the bit seen ``delay`` steps earlier.

    Parameters
    ----------
    n_sequences : int, default=1000
        Number of sequences (>= 1).

    n_steps : int, default=10
        Length of each sequence (>= 2).

    delay : int, default=2
        Delay of the second XOR operand, in ``[1, n_steps - 1]``.

    output : {"last", "sequence"}, default="last"
        ``"last"``: one target per sequence, the XOR of the bits at
        positions ``n_steps - 1`` and ``n_steps - 1 - delay``.
        ``"sequence"``: one target per step, ``y[:, t] = x[:, t] XOR
        x[:, t - delay]`` for ``t >= delay`` and ``0`` for ``t < delay``.

    random_state : int, RandomState instance or None, default=None
        Seeds the bits.

    Returns
    -------
    X : ndarray of shape (n_sequences, n_steps)
        The bits as float64 (0.0 or 1.0), one univariate sequence per row.

    y : ndarray of shape (n_sequences,) or (n_sequences, n_steps)
        Targets (int64, 0 or 1), depending on ``output``.

    Examples
    --------
    >>> from skrtrl.datasets import make_delayed_xor
    >>> X, y = make_delayed_xor(100, 8, delay=3, random_state=0)
    >>> X.shape, y.shape
    ((100, 8), (100,))
    >>> X, y = make_delayed_xor(100, 8, delay=3, output="sequence", random_state=0)
    >>> y.shape
    (100, 8)
    """
    n_sequences = _check_int(n_sequences, "n_sequences", min_value=1)
    n_steps = _check_int(n_steps, "n_steps", min_value=2)
    delay = _check_int(delay, "delay", min_value=1, max_value=n_steps - 1)
    output = _check_output(output)
    rng = check_random_state(random_state)

    bits = rng.randint(0, 2, size=(n_sequences, n_steps)).astype(np.int64)
    if output == "last":
        y = bits[:, -1] ^ bits[:, -1 - delay]
    else:
        y = np.zeros((n_sequences, n_steps), dtype=np.int64)
        y[:, delay:] = bits[:, delay:] ^ bits[:, :-delay]
    return bits.astype(np.float64), y


def make_delayed_sum(
    n_sequences=1000, n_steps=10, *, delay=2, output="last", random_state=None
):
    """Generate the delayed sum task.

    The input is a sequence of independent values :math:`x_t` drawn
    uniformly from ``[-1, 1]``. The target at step ``t`` is
    :math:`x_t + x_{t - \\mathrm{delay}}`, with
    :math:`x_{t - \\mathrm{delay}} = 0` for ``t < delay``.

    Parameters
    ----------
    n_sequences : int, default=1000
        Number of sequences (>= 1).

    n_steps : int, default=10
        Length of each sequence (>= 2).

    delay : int, default=2
        Delay of the second summand, in ``[1, n_steps - 1]``.

    output : {"last", "sequence"}, default="last"
        ``"last"``: one target per sequence,
        ``x[:, n_steps - 1] + x[:, n_steps - 1 - delay]``.
        ``"sequence"``: one target per step,
        ``y[:, t] = x[:, t] + x[:, t - delay]`` for ``t >= delay`` and
        ``y[:, t] = x[:, t]`` for ``t < delay``.

    random_state : int, RandomState instance or None, default=None
        Seeds the values.

    Returns
    -------
    X : ndarray of shape (n_sequences, n_steps)
        The input values, float64, one univariate sequence per row.

    y : ndarray of shape (n_sequences,) or (n_sequences, n_steps)
        Targets (float64 in ``[-2, 2]``), depending on ``output``.

    Examples
    --------
    >>> from skrtrl.datasets import make_delayed_sum
    >>> X, y = make_delayed_sum(100, 8, delay=3, random_state=0)
    >>> X.shape, y.shape
    ((100, 8), (100,))
    >>> X, y = make_delayed_sum(100, 8, delay=3, output="sequence", random_state=0)
    >>> y.shape
    (100, 8)
    """
    n_sequences = _check_int(n_sequences, "n_sequences", min_value=1)
    n_steps = _check_int(n_steps, "n_steps", min_value=2)
    delay = _check_int(delay, "delay", min_value=1, max_value=n_steps - 1)
    output = _check_output(output)
    rng = check_random_state(random_state)

    X = rng.uniform(-1.0, 1.0, size=(n_sequences, n_steps))
    if output == "last":
        y = X[:, -1] + X[:, -1 - delay]
    else:
        y = X.copy()
        y[:, delay:] += X[:, :-delay]
    return X, y


# --------------------------------------------------------------------------
# nonlinear plant for identification and control


def _narendra_f(y1, y2, y3, u1, u2):
    """Right-hand side of the plant of :func:`make_narendra_plant`."""
    return (y1 * y2 * y3 * u2 * (y3 - 1.0) + u1) / (1.0 + y2 * y2 + y3 * y3)


def make_narendra_plant(
    n_steps=1000,
    *,
    u="random",
    amplitude=1.0,
    noise=0.0,
    random_state=None,
):
    """Simulate the nonlinear plant of Narendra and Parthasarathy's Example 4.

    A single-input single-output discrete-time plant, the fourth
    identification example (model IV) of Narendra and Parthasarathy (1990):

    .. math::

        y(k + 1) = \\frac{y(k)\\, y(k - 1)\\, y(k - 2)\\, u(k - 1)\\,
        (y(k - 2) - 1) + u(k)}{1 + y(k - 1)^2 + y(k - 2)^2},

    started at rest: :math:`y(0) = y(-1) = y(-2) = 0` and
    :math:`u(-1) = 0`. The output depends nonlinearly on three past outputs
    and two inputs, so a model of it must keep a state. For inputs in
    ``[-1, 1]`` the output stays in about ``[-1, 1]`` as well; larger inputs
    (random inputs of amplitude 2, for instance) can make the product term
    grow without bound, and the output then overflows to infinity or NaN.

    Parameters
    ----------
    n_steps : int, default=1000
        Number of time steps (>= 1).

    u : {"random", "sinusoid"} or array-like of shape (n_steps,), \
            default="random"
        The input signal :math:`u(k)`, ``k = 0, ..., n_steps - 1``.
        ``"random"``: independent draws, uniform on
        ``[-amplitude, amplitude]``, the identification signal of the paper.
        ``"sinusoid"``: the paper's test signal, ``amplitude`` times
        :math:`\\sin(2\\pi k / 250)` for :math:`k < 500` and
        :math:`0.8 \\sin(2\\pi k / 250) + 0.2 \\sin(2\\pi k / 25)` after.
        An array gives the inputs themselves (finite values; its length
        must be ``n_steps``), for instance those a controller chose.

    amplitude : float, default=1.0
        Scale (> 0) of the generated input signals; ignored when ``u`` is an
        array.

    noise : float, default=0.0
        Standard deviation (>= 0) of i.i.d. Gaussian measurement noise added
        to the returned outputs. It does not enter the plant's dynamics.

    random_state : int, RandomState instance or None, default=None
        Seeds the random input and the measurement noise.

    Returns
    -------
    X : ndarray of shape (n_steps, 1)
        ``X[k, 0]`` is the input :math:`u(k)`, float64.

    y : ndarray of shape (n_steps,)
        ``y[k]`` is the output :math:`y(k + 1)` that follows the input
        ``X[k, 0]`` (plus the noise), float64. Row ``k`` of ``(X, y)`` is
        one step of the plant, as a stream learner reads it.

    References
    ----------
    K. S. Narendra and K. Parthasarathy, "Identification and control of
    dynamical systems using neural networks", IEEE Transactions on Neural
    Networks 1 (1), 1990, pp. 4-27 (Example 4).

    Examples
    --------
    >>> from skrtrl.datasets import make_narendra_plant
    >>> X, y = make_narendra_plant(500, random_state=0)
    >>> X.shape, y.shape
    ((500, 1), (500,))
    >>> X2, y2 = make_narendra_plant(500, u=X[:, 0])
    >>> bool((y2 == y).all())
    True
    """
    n_steps = _check_int(n_steps, "n_steps", min_value=1)
    amplitude = _check_real(amplitude, "amplitude", min_value=0.0, strict=True)
    noise = _check_real(noise, "noise", min_value=0.0)
    rng = check_random_state(random_state)
    if isinstance(u, str):
        if u == "random":
            inputs = rng.uniform(-amplitude, amplitude, size=n_steps)
        elif u == "sinusoid":
            k = np.arange(n_steps)
            inputs = np.where(
                k < 500,
                np.sin(2.0 * np.pi * k / 250.0),
                0.8 * np.sin(2.0 * np.pi * k / 250.0)
                + 0.2 * np.sin(2.0 * np.pi * k / 25.0),
            )
            inputs = amplitude * inputs
        else:
            raise ValueError(
                f"u must be 'random', 'sinusoid' or an array of inputs, got {u!r}."
            )
    else:
        try:
            inputs = np.asarray(u, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"u must be 'random', 'sinusoid' or an array of inputs, got {u!r}."
            ) from None
        if inputs.shape != (n_steps,):
            raise ValueError(
                f"u given as an array must have shape (n_steps,) = ({n_steps},), "
                f"got {inputs.shape}."
            )
        if not np.isfinite(inputs).all():
            raise ValueError("u must hold finite values.")
        inputs = inputs.copy()

    outputs = np.empty(n_steps)
    y1 = y2 = y3 = 0.0  # y(k), y(k - 1), y(k - 2)
    u_prev = 0.0  # u(k - 1)
    for k, u_k in enumerate(inputs.tolist()):
        y_next = _narendra_f(y1, y2, y3, u_k, u_prev)
        outputs[k] = y_next
        y1, y2, y3, u_prev = y_next, y1, y2, u_k
    if noise > 0.0:
        outputs = outputs + noise * rng.standard_normal(n_steps)
    return inputs[:, np.newaxis], outputs
