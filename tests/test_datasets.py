"""Tests for skrtrl.datasets."""

import numpy as np
import pytest
from sklearn.utils import Bunch

from skrtrl.datasets import (
    REBER_SYMBOLS,
    load_japanese_vowels,
    make_adding_problem,
    make_concept_drift_stream,
    make_copy_task,
    make_delayed_sum,
    make_delayed_xor,
    make_embedded_reber,
    make_mackey_glass,
)

# --------------------------------------------------------------------------
# Japanese Vowels


@pytest.fixture(scope="module")
def vowels():
    return load_japanese_vowels()


def test_japanese_vowels_bunch(vowels):
    assert isinstance(vowels, Bunch)
    for key in (
        "X_train",
        "y_train",
        "X_test",
        "y_test",
        "feature_names",
        "target_names",
        "DESCR",
    ):
        assert key in vowels
    assert vowels.feature_names == [f"lpc_{i}" for i in range(12)]
    assert list(vowels.target_names) == [f"speaker_{k}" for k in range(1, 10)]
    assert "Kudo" in vowels.DESCR


def test_japanese_vowels_counts_and_shapes(vowels):
    assert len(vowels.X_train) == 270
    assert len(vowels.X_test) == 370
    assert vowels.y_train.shape == (270,)
    assert vowels.y_test.shape == (370,)
    lengths = []
    for X in (vowels.X_train, vowels.X_test):
        for seq in X:
            assert isinstance(seq, np.ndarray)
            assert seq.dtype == np.float64
            assert seq.ndim == 2 and seq.shape[1] == 12
            assert np.isfinite(seq).all()
            lengths.append(seq.shape[0])
    assert min(lengths) == 7
    assert max(lengths) == 29
    assert sum(lengths) == 4274 + 5687


def test_japanese_vowels_labels(vowels):
    for y in (vowels.y_train, vowels.y_test):
        assert y.dtype == np.int64
        assert set(np.unique(y)) == set(range(1, 10))
    assert np.bincount(vowels.y_train)[1:].tolist() == [30] * 9
    assert np.bincount(vowels.y_test)[1:].tolist() == [
        31,
        35,
        88,
        44,
        29,
        24,
        40,
        50,
        29,
    ]


def test_japanese_vowels_first_values(vowels):
    # first frame of the first training utterance, as distributed
    np.testing.assert_array_equal(
        vowels.X_train[0][0, :3], [1.860936, -0.207383, 0.261557]
    )
    assert vowels.X_train[0].shape == (20, 12)


def test_japanese_vowels_return_X_y(vowels):
    X_train, X_test, y_train, y_test = load_japanese_vowels(return_X_y=True)
    assert len(X_train) == 270 and len(X_test) == 370
    np.testing.assert_array_equal(y_train, vowels.y_train)
    np.testing.assert_array_equal(y_test, vowels.y_test)
    for a, b in zip(X_test, vowels.X_test):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# Mackey-Glass


def test_mackey_glass_shape_and_range():
    x = make_mackey_glass(2000, random_state=0)
    assert x.shape == (2000,)
    assert x.dtype == np.float64
    assert np.isfinite(x).all()
    assert 0.2 < x.min() < 0.6
    assert 1.1 < x.max() < 1.45


def test_mackey_glass_not_periodic():
    x = make_mackey_glass(2000, random_state=0)
    xc = x - x.mean()
    acf = np.correlate(xc, xc, mode="full")[x.size - 1 :]
    acf = acf / acf[0]
    # a periodic signal would come back to an autocorrelation close to 1
    assert acf[10:1000].max() < 0.95


def test_mackey_glass_reproducible():
    a = make_mackey_glass(300, random_state=42)
    b = make_mackey_glass(300, random_state=np.random.RandomState(42))
    np.testing.assert_array_equal(a, b)
    c = make_mackey_glass(300, random_state=43)
    assert not np.allclose(a, c)


def test_mackey_glass_converges_with_substeps():
    a = make_mackey_glass(50, discard=0, n_substeps=10, random_state=0)
    b = make_mackey_glass(50, discard=0, n_substeps=40, random_state=0)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_mackey_glass_non_integer_delay():
    x = make_mackey_glass(100, tau=16.5, dt=0.5, n_substeps=3, random_state=0)
    assert x.shape == (100,)
    assert np.isfinite(x).all()


def test_mackey_glass_stable_regime_decays_to_fixed_point():
    # for a short delay the equation has a stable fixed point where
    # beta / (1 + x^n) = gamma, i.e. x* = (beta / gamma - 1) ** (1 / n) = 1
    x = make_mackey_glass(10, tau=2.0, discard=500, random_state=0)
    np.testing.assert_allclose(x, 1.0, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_steps": 0}, "n_steps must be >= 1"),
        ({"n_steps": 2.5}, "n_steps must be an integer"),
        ({"tau": 0.0}, "tau must be > 0"),
        ({"tau": 0.05}, "tau must be >= dt / n_substeps"),
        ({"beta": -1.0}, "beta must be >= 0"),
        ({"gamma": -0.1}, "gamma must be >= 0"),
        ({"n": 0}, "n must be > 0"),
        ({"dt": 0.0}, "dt must be > 0"),
        ({"dt": float("nan")}, "dt must be finite"),
        ({"n_substeps": 0}, "n_substeps must be >= 1"),
        ({"x0": -1.0}, "x0 must be > 0"),
        ({"discard": -1}, "discard must be >= 0"),
        ({"tau": "17"}, "tau must be a real number"),
    ],
)
def test_mackey_glass_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_mackey_glass(**kwargs)


# --------------------------------------------------------------------------
# concept drift stream


def test_concept_drift_shapes_and_shift():
    X, y = make_concept_drift_stream(400, noise=0.1, random_state=0)
    assert X.shape == (400, 1) and y.shape == (400,)
    assert X.dtype == np.float64 and y.dtype == np.float64
    np.testing.assert_array_equal(y[:-1], X[1:, 0])


def _recurrence_coefficient(X, y):
    """Estimate c in s[t+1] = c s[t] - s[t-1] from a noise-free stream."""
    s, s_prev, s_next = X[1:, 0], X[:-1, 0], y[1:]
    return (s_next + s_prev) / s


@pytest.mark.parametrize(
    "drift_at, t_drift", [(0.5, 150), (0.25, 75), (100, 100), (0, 0), (300, 300)]
)
def test_concept_drift_frequency_switch(drift_at, t_drift):
    periods = (20.0, 8.0)
    X, y = make_concept_drift_stream(
        300, drift_at=drift_at, periods=periods, random_state=0
    )
    # without noise the one-step map is s[t+1] = 2 cos(w) s[t] - s[t-1],
    # with w = 2 pi / period before t_drift and after
    t = np.arange(1, 300)
    coef = _recurrence_coefficient(X, y)
    ok = np.abs(X[1:, 0]) > 0.2  # avoid dividing by values close to zero
    before = ok & (t < t_drift)
    after = ok & (t > t_drift)
    np.testing.assert_allclose(coef[before], 2 * np.cos(2 * np.pi / periods[0]))
    np.testing.assert_allclose(coef[after], 2 * np.cos(2 * np.pi / periods[1]))
    assert np.all(np.abs(X) <= 1.0 + 1e-12)


def test_concept_drift_noise_level():
    X0, _ = make_concept_drift_stream(5000, noise=0.0, random_state=1)
    X1, _ = make_concept_drift_stream(5000, noise=0.3, random_state=1)
    assert abs(np.std(X1 - X0) - 0.3) < 0.02


def test_concept_drift_reproducible():
    a = make_concept_drift_stream(200, noise=0.2, random_state=3)
    b = make_concept_drift_stream(200, noise=0.2, random_state=3)
    c = make_concept_drift_stream(200, noise=0.2, random_state=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[0], c[0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_steps": 1}, "n_steps must be >= 2"),
        ({"drift_at": 1.5}, r"fraction in \[0, 1\]"),
        ({"drift_at": -0.1}, r"fraction in \[0, 1\]"),
        ({"drift_at": 2001}, "drift_at must be <= 2000"),
        ({"drift_at": -1}, "drift_at must be >= 0"),
        ({"drift_at": "half"}, "drift_at must be a float"),
        ({"drift_at": True}, "drift_at must be a float"),
        ({"noise": -1.0}, "noise must be >= 0"),
        ({"periods": (20.0,)}, "periods must be a pair"),
        ({"periods": (20.0, 1.0)}, r"periods\[1\] must be > 2"),
    ],
)
def test_concept_drift_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_concept_drift_stream(**kwargs)


# --------------------------------------------------------------------------
# embedded Reber grammar

# Reber grammar written as regular-expression-free automaton for checking:
# state -> {symbol: next state}; state 6 is accepting.
_REBER = {
    0: {"B": 1},
    1: {"T": 2, "P": 3},
    2: {"S": 2, "X": 4},
    3: {"T": 3, "V": 5},
    4: {"X": 3, "S": 6},
    5: {"P": 4, "V": 6},
    6: {"E": 7},
}


def _accepts_reber(string):
    state = 0
    for symbol in string:
        if symbol not in _REBER.get(state, {}):
            return False
        state = _REBER[state][symbol]
    return state == 7


def _accepts_embedded_reber(string):
    return (
        len(string) >= 4
        and string[0] == "B"
        and string[-1] == "E"
        and string[1] in "TP"
        and string[-2] == string[1]
        and _accepts_reber(string[2:-2])
    )


def _legal_next(prefix):
    """Legal next symbols after a prefix of an embedded Reber string."""
    legal = set()
    for symbol in REBER_SYMBOLS:
        candidate = prefix + symbol
        # a prefix is legal if it can be completed; check by brute force on
        # the automaton: run the inner part and see whether the state exists
        if _is_viable_prefix(candidate):
            legal.add(symbol)
    return legal


def _is_viable_prefix(s):
    if not s:
        return True
    if s[0] != "B":
        return False
    if len(s) == 1:
        return True
    if s[1] not in "TP":
        return False
    inner = s[2:]
    state = 0
    for k, symbol in enumerate(inner):
        if state == 7:
            rest = inner[k:]
            return rest in ("", s[1], s[1] + "E")
        if symbol not in _REBER[state]:
            return False
        state = _REBER[state][symbol]
    return True


def test_reber_checker_sanity():
    assert _accepts_embedded_reber("BTBTXSETE")
    assert _accepts_embedded_reber("BPBPVVEPE")
    assert _accepts_embedded_reber("BTBPTVPXTTVVETE")
    assert not _accepts_embedded_reber("BTBTXSEPE")
    assert not _accepts_embedded_reber("BTBTXXETE")
    assert not _accepts_embedded_reber("BTBTSETE")


def test_embedded_reber_strings_are_grammatical():
    X, y = make_embedded_reber(200, random_state=0)
    assert isinstance(X, list) and isinstance(y, list)
    assert len(X) == len(y) == 200
    seconds = []
    for x_seq, y_seq in zip(X, y):
        assert x_seq.dtype == np.float64 and y_seq.dtype == np.float64
        assert x_seq.ndim == 2 and x_seq.shape[1] == 7
        assert y_seq.shape == x_seq.shape
        np.testing.assert_array_equal(x_seq.sum(axis=1), 1.0)
        assert set(np.unique(x_seq)) <= {0.0, 1.0}
        string = "".join(REBER_SYMBOLS[k] for k in x_seq.argmax(axis=1))
        assert _accepts_embedded_reber(string), string
        assert string[1] == string[-2]
        seconds.append(string[1])
    # both embeddings occur
    assert set(seconds) == {"T", "P"}


def test_embedded_reber_targets_are_legal_next_sets():
    X, y = make_embedded_reber(50, random_state=1)
    for x_seq, y_seq in zip(X, y):
        string = "".join(REBER_SYMBOLS[k] for k in x_seq.argmax(axis=1))
        for t in range(len(string)):
            expected = _legal_next(string[: t + 1])
            got = {REBER_SYMBOLS[k] for k in np.flatnonzero(y_seq[t])}
            assert got == expected, (string, t)
            # the actual next symbol is always among the legal ones
            if t + 1 < len(string):
                assert string[t + 1] in got
        np.testing.assert_array_equal(y_seq[-1], 0.0)
        # the long-range target: after the inner E only the 2nd symbol
        assert {REBER_SYMBOLS[k] for k in np.flatnonzero(y_seq[-3])} == {string[1]}


def test_embedded_reber_reproducible():
    a, _ = make_embedded_reber(20, random_state=5)
    b, _ = make_embedded_reber(20, random_state=5)
    c, _ = make_embedded_reber(20, random_state=6)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not all(p.shape == q.shape and np.array_equal(p, q) for p, q in zip(a, c))


def test_embedded_reber_validation():
    with pytest.raises(ValueError, match="n_sequences must be >= 1"):
        make_embedded_reber(0)
    with pytest.raises(ValueError, match="n_sequences must be an integer"):
        make_embedded_reber(1.5)


# --------------------------------------------------------------------------
# adding problem


def test_adding_problem():
    X, y = make_adding_problem(300, 21, random_state=0)
    assert X.shape == (300, 21, 2) and y.shape == (300,)
    assert X.dtype == np.float64 and y.dtype == np.float64
    values, markers = X[:, :, 0], X[:, :, 1]
    assert values.min() >= 0.0 and values.max() <= 1.0
    assert set(np.unique(markers)) == {0.0, 1.0}
    np.testing.assert_array_equal(markers.sum(axis=1), 2.0)
    half = 21 // 2
    np.testing.assert_array_equal(markers[:, :half].sum(axis=1), 1.0)
    np.testing.assert_array_equal(markers[:, half:].sum(axis=1), 1.0)
    np.testing.assert_allclose(y, (values * markers).sum(axis=1))
    assert 0.0 <= y.min() and y.max() <= 2.0


def test_adding_problem_reproducible():
    a = make_adding_problem(10, 8, random_state=0)
    b = make_adding_problem(10, 8, random_state=0)
    c = make_adding_problem(10, 8, random_state=1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[0], c[0])


@pytest.mark.parametrize(
    "args, match",
    [
        ((0, 10), "n_sequences must be >= 1"),
        ((10, 1), "n_steps must be >= 2"),
        ((10, "5"), "n_steps must be an integer"),
    ],
)
def test_adding_problem_validation(args, match):
    with pytest.raises(ValueError, match=match):
        make_adding_problem(*args)


# --------------------------------------------------------------------------
# copy task


def test_copy_task_layout():
    n_symbols, length, delay = 5, 4, 6
    X, y = make_copy_task(
        100, n_symbols=n_symbols, length=length, delay=delay, random_state=0
    )
    n_total = 2 * length + delay
    assert X.shape == (100, n_total, n_symbols + 2)
    assert y.shape == (100, n_total)
    assert X.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(X.sum(axis=2), 1.0)
    blank, delimiter = n_symbols, n_symbols + 1
    inputs = X.argmax(axis=2)
    data = inputs[:, :length]
    assert data.max() < n_symbols
    expected_inputs = np.full((100, n_total), blank)
    expected_inputs[:, :length] = data
    expected_inputs[:, length + delay - 1] = delimiter
    np.testing.assert_array_equal(inputs, expected_inputs)
    expected_y = np.full((100, n_total), blank)
    expected_y[:, -length:] = data
    np.testing.assert_array_equal(y, expected_y)
    # all data symbols are used
    assert set(np.unique(data)) == set(range(n_symbols))


def test_copy_task_minimal_delay():
    X, y = make_copy_task(3, n_symbols=2, length=2, delay=1, random_state=0)
    assert X.shape == (3, 5, 4)
    np.testing.assert_array_equal(X[:, 2].argmax(axis=1), 3)  # delimiter
    np.testing.assert_array_equal(y[:, 3:], X[:, :2].argmax(axis=2))


def test_copy_task_reproducible():
    a = make_copy_task(20, random_state=0)
    b = make_copy_task(20, random_state=0)
    c = make_copy_task(20, random_state=1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_sequences": 0}, "n_sequences must be >= 1"),
        ({"n_symbols": 0}, "n_symbols must be >= 1"),
        ({"length": 0}, "length must be >= 1"),
        ({"delay": 0}, "delay must be >= 1"),
        ({"delay": 2.0}, "delay must be an integer"),
    ],
)
def test_copy_task_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_copy_task(**kwargs)


# --------------------------------------------------------------------------
# delayed XOR and delayed sum


def test_delayed_xor_last():
    X, y = make_delayed_xor(500, 7, delay=3, random_state=0)
    assert X.shape == (500, 7) and y.shape == (500,)
    assert X.dtype == np.float64 and y.dtype == np.int64
    assert set(np.unique(X)) == {0.0, 1.0}
    bits = X.astype(int)
    expected = [int(row[6] != row[6 - 3]) for row in bits]
    np.testing.assert_array_equal(y, expected)
    assert 0.3 < y.mean() < 0.7


def test_delayed_xor_sequence():
    n_steps, delay = 9, 2
    X, y = make_delayed_xor(
        200, n_steps, delay=delay, output="sequence", random_state=0
    )
    assert y.shape == (200, n_steps) and y.dtype == np.int64
    for i in range(200):
        for t in range(n_steps):
            if t < delay:
                assert y[i, t] == 0
            else:
                assert y[i, t] == int(X[i, t] != X[i, t - delay])
    # the last column agrees with output="last"
    _, y_last = make_delayed_xor(200, n_steps, delay=delay, random_state=0)
    np.testing.assert_array_equal(y[:, -1], y_last)


def test_delayed_sum_last():
    X, y = make_delayed_sum(500, 6, delay=4, random_state=0)
    assert X.shape == (500, 6) and y.shape == (500,)
    assert X.dtype == np.float64 and y.dtype == np.float64
    assert X.min() >= -1.0 and X.max() <= 1.0
    assert X.min() < -0.9 and X.max() > 0.9
    expected = [row[5] + row[5 - 4] for row in X]
    np.testing.assert_allclose(y, expected)


def test_delayed_sum_sequence():
    n_steps, delay = 8, 3
    X, y = make_delayed_sum(
        100, n_steps, delay=delay, output="sequence", random_state=0
    )
    assert y.shape == (100, n_steps) and y.dtype == np.float64
    for i in range(100):
        for t in range(n_steps):
            past = X[i, t - delay] if t >= delay else 0.0
            assert y[i, t] == pytest.approx(X[i, t] + past)
    _, y_last = make_delayed_sum(100, n_steps, delay=delay, random_state=0)
    np.testing.assert_allclose(y[:, -1], y_last)


@pytest.mark.parametrize("maker", [make_delayed_xor, make_delayed_sum])
def test_delayed_tasks_reproducible(maker):
    a = maker(50, 10, random_state=0)
    b = maker(50, 10, random_state=0)
    c = maker(50, 10, random_state=1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("maker", [make_delayed_xor, make_delayed_sum])
@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((0, 10), {}, "n_sequences must be >= 1"),
        ((10, 1), {}, "n_steps must be >= 2"),
        ((10, 5), {"delay": 0}, "delay must be >= 1"),
        ((10, 5), {"delay": 5}, "delay must be <= 4"),
        ((10, 5), {"output": "all"}, "output must be 'last' or 'sequence'"),
    ],
)
def test_delayed_tasks_validation(maker, args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        maker(*args, **kwargs)
