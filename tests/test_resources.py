"""Memory and time estimates, made before training allocates anything.

* The estimate is what the cells allocate: ``workspace_shapes``,
  ``state_shapes`` and ``online_shapes`` give exactly the bytes of the
  arrays ``workspace``, ``new_state`` and a ``train_online`` call create,
  for every cell, gradient method and feedback mode.
* Sizes that cannot fit are refused with a ValueError that gives the
  estimate and the cheaper options, before anything is allocated or
  changed; fits estimated to be very long get a warning, also before
  anything changes.
"""

import tracemalloc
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import skrtrl._resources
from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._cells import CELLS, nbytes
from skrtrl._feedback import FeedbackCell
from skrtrl._methods import make_cell
from skrtrl._optim import OnlineUpdate, SGDOptimizer
from skrtrl._sequences import TrainingBatch

CELL_NAMES = sorted(CELLS)
GIB = 2**30


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def all_cells(n=5, m=3, o=2):
    """Every cell, gradient method and feedback mode, built small."""
    for name in CELL_NAMES:
        for gradient in CELLS[name].gradients:
            for truncation in (None, 4) if gradient == "bptt" else (None,):
                yield make_cell(name, n, m, o, gradient=gradient, truncation=truncation)
                for teacher in (True, False):
                    mode = "feedback" if teacher else "free_running"
                    if mode not in CELLS[name].modes(gradient):
                        continue
                    yield FeedbackCell(
                        name, n, m, o, gradient=gradient, truncation=truncation,
                        teacher_forcing=teacher,
                    )  # fmt: skip


def array_bytes(arrays):
    return sum(v.nbytes for v in arrays.values() if isinstance(v, np.ndarray))


def cell_id(cell):
    feedback = ""
    if isinstance(cell, FeedbackCell):
        feedback = "-teacher" if cell.teacher_forcing else "-free"
    truncation = getattr(cell, "truncation", None)
    truncation = f"-{truncation}" if truncation else ""
    return f"{cell.name}-{cell.gradient}{truncation}{feedback}"


CASES = list(all_cells())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell", CASES, ids=cell_id)
def test_estimates_are_what_the_cells_allocate(cell, dtype):
    workspace = cell.workspace(7, 2, dtype)
    assert array_bytes(workspace) == nbytes(cell.workspace_shapes(7, 2), dtype)
    state = cell.new_state(dtype)
    assert array_bytes(state) == nbytes(cell.state_shapes(), dtype)


@pytest.mark.parametrize("cell", list(all_cells(n=40)), ids=cell_id)
def test_online_estimate_covers_what_a_call_allocates(cell):
    # Trace one train_online call: what it allocates beyond its inputs is
    # the online buffers, one gradient of the size of the parameters and
    # the loss of each sequence (and a few KiB of Python objects).
    rng = np.random.RandomState(0)
    m = cell.m
    lengths = np.array([6, 3], dtype=np.intp)
    X = rng.normal(size=(9, m))
    Y = rng.normal(size=(9, cell.o))
    starts = np.array([0, 6], dtype=np.intp)
    batch = TrainingBatch(X, Y, starts, starts, lengths, np.ones(9), True)
    flat = np.zeros(cell.n_params)
    cell.initialize(flat, rng)
    update = OnlineUpdate(SGDOptimizer(cell.n_params, 1e-3), np.zeros_like(flat), None)
    state = cell.new_state(np.float64)
    expected = nbytes(cell.online_shapes(longest=6), np.float64)
    expected += flat.nbytes + 8 * lengths.shape[0]
    # Once untraced: the first call sets up thread-pool bookkeeping.
    cell.train_online(flat, update, batch, "squared_error", state, True)

    tracemalloc.start()
    cell.train_online(flat, update, batch, "squared_error", state, True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    # Teacher forcing also packs the inputs with the fed-back targets.
    packed_inputs = 0
    if isinstance(cell, FeedbackCell):
        packed_inputs = X.shape[0] * (m + cell.o) * 8
    assert expected <= peak <= expected + packed_inputs + 16 * 1024


def test_too_large_n_hidden_is_refused_before_allocating():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(8, 5, 1))
    y = X[:, -1, 0]
    est = RTRLRegressor(cell="elman", n_hidden=2048)

    tracemalloc.start()
    with pytest.raises(ValueError) as info:
        est.fit(X, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    message = str(info.value)
    # The estimate: 2 x 2048 x 2048 x 2050 influence numbers of 8 bytes.
    influence = 2 * 2048 * 2048 * 2050 * 8
    estimate = float(message.split("need about ")[1].split(" GiB")[0])
    assert influence / GIB <= estimate < 1.01 * influence / GIB
    assert "available" in message
    for option in ("element-wise", "cell='diagonal'", "snap1", "bptt",
                   "smaller n_hidden", "smaller batch_size"):  # fmt: skip
        assert option in message, option
    # Nothing of the size of the model was allocated, nothing was fitted.
    assert peak < 50 * 2**20
    assert not hasattr(est, "_model") and not hasattr(est, "n_features_in_")


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("mode", ["minibatch", "step", "stream"])
def test_refusal_follows_the_available_memory(cell, mode, monkeypatch):
    rng = np.random.RandomState(0)
    params = {"cell": cell, "n_hidden": 6, "max_iter": 2, "random_state": 0}
    if mode == "stream":
        X, y = rng.normal(size=(30, 2)), rng.normal(size=30)
        params["stateful"] = True
    else:
        X, y = rng.normal(size=(6, 4, 2)), rng.normal(size=6)
        params["update"] = "step" if mode == "step" else "batch"
    est = RTRLRegressor(**params).fit(X, y)
    before = {k: v.copy() for k, v in est.params_.items()}
    n_iter, t = est.n_iter_, est.t_

    monkeypatch.setattr(skrtrl._resources, "available_memory", lambda: 1000)
    with pytest.raises(ValueError, match=r"need about .* but 1000 B is available"):
        RTRLRegressor(**params).fit(X, y)
    # A failed call changes nothing, here through warm_start.
    est.set_params(warm_start=True)
    with pytest.raises(ValueError, match="is available"):
        est.fit(X, y)
    for name, value in est.params_.items():
        np.testing.assert_array_equal(value, before[name])
    assert (est.n_iter_, est.t_) == (n_iter, t)

    monkeypatch.setattr(skrtrl._resources, "available_memory", lambda: None)
    RTRLRegressor(**params).fit(X, y)  # unknown: not refused


def test_cheaper_options_fit_where_exact_rtrl_does_not(monkeypatch):
    # With 128 MiB available, exact RTRL of n_hidden=256 (two influence
    # buffers of 256 x 256 x 258 numbers of 8 bytes: 258 MiB) is refused;
    # the options it names fit.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(4, 3, 1))
    y = X[:, -1, 0]
    monkeypatch.setattr(skrtrl._resources, "available_memory", lambda: 128 * 2**20)
    with pytest.raises(ValueError) as info:
        RTRLRegressor(cell="elman", n_hidden=256, max_iter=1).fit(X, y)
    estimate = float(str(info.value).split("need about ")[1].split(" MiB")[0])
    influence = 2 * 256 * 256 * 258 * 8 / 2**20
    assert influence <= estimate < 1.05 * influence
    for params in ({"cell": "diagonal"}, {"gradient": "snap1"}, {"gradient": "bptt"}):
        RTRLRegressor(n_hidden=256, max_iter=1, **params).fit(X, y)


def test_a_very_long_fit_is_announced_before_it_starts():
    # n_hidden=300, exact RTRL: 2 n^2 nq + 2n nq + 2nq flops per step and
    # sequence (doc/performance.rst, q = 302: 1.6e10); 10 sequences of 100
    # steps, at least 11 epochs (the default n_iter_no_change=10): about
    # 1.8e14 flops, 5 hours at 1e10 per second.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(10, 100, 1))
    y = X[:, -1, 0]
    est = RTRLClassifier(n_hidden=300, cell="elman")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # stops the call
        with pytest.raises(UserWarning, match=r"at least .* hours") as info:
            est.fit(X, y > 0)
    message = str(info.value)
    hours = float(message.split("at least ")[1].split(" hours")[0])
    n, q = 300, 302
    flops = 2 * n * n * n * q + 2 * n * n * q + 2 * n * q
    expected = flops * 1000 * 11 / 1e10 / 3600
    assert abs(hours - expected) <= 0.05 + 0.01 * expected
    assert f"{flops:.2g} floating-point operations per step" in message
    assert "1000 steps x 11 epoch(s)" in message
    assert "snap1" in message and "cell='diagonal'" in message
    assert not hasattr(est, "_model")

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter=2
        RTRLClassifier(n_hidden=8, max_iter=2).fit(X, y > 0)  # short: silent


def test_available_memory_is_read_from_the_system():
    available = skrtrl._resources.available_memory()
    assert available is None or 0 < available < 2**60
