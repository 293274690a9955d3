"""Running a stream without learning: ``NoLearning`` and the kernels' ``learn``.

``update_state`` needs a call that moves a stream's state (hidden state,
influence, BPTT ring, UORO factors, fed-back output) exactly as a learning
call would, without a gradient or an update: every online kernel reads
``learn`` from the update rule it is given (false for
``skrtrl._optim.NoLearning``). Here every cell and gradient method runs
through its cell object that way, and is compared with the same call under
SGD with learning rate 0 (which moves the state the same way and leaves the
parameters where they are).
"""

import numpy as np
import pytest
from skrtrl._kernels._rtrl import rtrl_online

from skrtrl._cells import CELLS, kernel_codes
from skrtrl._feedback import FeedbackCell
from skrtrl._methods import make_cell
from skrtrl._optim import NoLearning, OnlineUpdate, SGDOptimizer
from skrtrl._sequences import TrainingBatch

N_HIDDEN, N_INPUTS, N_OUTPUTS = 4, 2, 2
LENGTHS = np.array([5, 3], dtype=np.intp)


def _cells():
    for name in CELLS:
        for gradient, truncation in [
            ("rtrl", None),
            ("snap1", None),
            ("bptt", 3),
            ("uoro", None),
        ]:
            yield pytest.param(
                name, gradient, truncation, False, id=f"{name}-{gradient}"
            )
        if "free_running" in CELLS[name].modes("rtrl"):
            yield pytest.param(name, "rtrl", None, True, id=f"{name}-free_running")


def _make(name, gradient, truncation, feedback):
    if feedback:
        return FeedbackCell(name, N_HIDDEN, N_INPUTS, N_OUTPUTS, teacher_forcing=False)
    return make_cell(
        name, N_HIDDEN, N_INPUTS, N_OUTPUTS, gradient=gradient,
        truncation=truncation, random_state=np.random.RandomState(3),
    )  # fmt: skip


def _data(rng):
    values = rng.normal(size=(int(LENGTHS.sum()), N_INPUTS))
    targets = rng.normal(size=(values.shape[0], N_OUTPUTS))
    starts = np.array([0, LENGTHS[0]], dtype=np.intp)
    return TrainingBatch(
        values, targets, starts, starts.copy(), LENGTHS, np.ones(len(values)), True
    )


def _run(cell, flat, update, state, batch):
    """Two calls: from a reset, then continuing the stream."""
    for reset in (True, False):
        cell.train_online(flat, update, batch, "squared_error", state, reset)


@pytest.mark.parametrize("name, gradient, truncation, feedback", _cells())
def test_learn_false_advances_the_state_as_a_zero_learning_rate_does(
    name, gradient, truncation, feedback
):
    rng = np.random.RandomState(0)
    data = _data(rng)
    reference = _make(name, gradient, truncation, feedback)
    flat = np.empty(reference.n_params)
    reference.initialize(flat, rng)
    frozen = SGDOptimizer(flat.shape[0], learning_rate=0.0)
    penalty = 0.1 * reference.penalty_mask(flat.dtype)
    expected = reference.new_state(flat.dtype)
    flat_expected = flat.copy()
    _run(reference, flat_expected, OnlineUpdate(frozen, penalty, 1.0), expected, data)

    cell = _make(name, gradient, truncation, feedback)
    no_learning = NoLearning(flat.shape[0], flat.dtype)
    state = cell.new_state(flat.dtype)
    flat_given = flat.copy()
    _run(cell, flat_given, no_learning, state, data)

    # The reference did update (its optimizer counted), this call did not.
    assert frozen.t > 0
    assert no_learning.optimizer.t == 0
    np.testing.assert_array_equal(flat_given, flat)
    np.testing.assert_array_equal(flat_expected, flat)
    assert state.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_allclose(state[key], value, rtol=1e-12, atol=1e-14)
    assert np.any(state["hidden"] != 0)


def test_learn_false_still_reports_the_losses():
    """The losses of a non-learning call are those of the learning one."""
    rng = np.random.RandomState(1)
    batch = _data(rng)
    cell = make_cell("elman", N_HIDDEN, N_INPUTS, N_OUTPUTS)
    flat = np.empty(cell.n_params)
    cell.initialize(flat, rng)
    rows = []
    for learn in (True, False):
        state = cell.new_state(flat.dtype)
        optimizer = SGDOptimizer(flat.shape[0], learning_rate=0.0)
        update = OnlineUpdate(optimizer, np.zeros_like(flat), None)
        update.learn = learn
        loss_rows = rtrl_online(
            *kernel_codes(cell, "squared_error"), batch, update, state, True,
            flat.copy(),
        )  # fmt: skip
        rows.append(loss_rows)
    assert np.all(rows[0] > 0)
    np.testing.assert_allclose(rows[1], rows[0], rtol=1e-12)
