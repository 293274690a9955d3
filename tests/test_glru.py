"""The gated LRU, ``cell="glru"``: what is particular to it.

Its gradients in every declared mode are checked with every other cell by
``test_cell_conformance.py`` (against the numpy step ``GLRUSteps`` of
``skrtrl/inspection/_cell_steps.py``), its persistence, memory estimates
and one-row path by the registry-driven tests, and its ONNX export by
``test_export.py``; its ``params_`` and float32 gradient with the LRU's,
by ``test_lru.py``. Here: the gate's two limits (closed: nothing stored;
open: the LRU), the refusals it shares with the LRU, and what the gate is
for: the adding problem on held-out data, which
the LRU does not learn; and what its pooled readout is for: a pattern
early in a long sequence, which the last step has forgotten
(``test_pooling.py`` checks the pooled gradients with every cell's).
"""

import numpy as np
import pytest
from sklearn.metrics import r2_score

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._cells import CELLS, GLRUCell, LRUCell
from skrtrl.datasets import make_adding_problem

from _helpers import cell_forward, randomize

pytestmark = pytest.mark.usefixtures("quiet_convergence")

RNG = np.random.RandomState(0)
X3 = RNG.normal(size=(6, 5, 2))
Y3 = X3[:, -1, 0] - X3[:, -3, 1]


def _fitted(**params):
    return RTRLRegressor(3, cell="glru", max_iter=1, random_state=0, **params).fit(
        X3, Y3
    )


def test_glru_is_registered_as_an_lru_with_an_output_map():
    assert CELLS["glru"] is GLRUCell
    assert issubclass(GLRUCell, LRUCell)
    assert GLRUCell.elementwise and GLRUCell.output_map
    assert GLRUCell.modes("rtrl") == LRUCell.modes("rtrl")


def test_initialisation_is_the_lrus_ring_and_a_half_open_gate():
    n, m = 2000, 3
    flat = np.empty(GLRUCell(n, m, 1).n_params)
    cell = GLRUCell(n, m, 1)
    cell.initialize(flat, np.random.RandomState(0))
    p = cell.views(flat)
    modulus = np.exp(-np.exp(p["nu_log"]))
    assert modulus.min() >= LRUCell.R_MIN - 1e-12
    assert modulus.max() <= LRUCell.R_MAX + 1e-12
    np.testing.assert_array_equal(p["bias_gate"], 0.0)
    assert p["weight_gate"].std() == pytest.approx(np.sqrt(1 / m), rel=0.05)


def test_a_closed_gate_stores_nothing():
    reg = _fitted()
    reg.params_["bias_gate"][...] = -800.0  # exp(800) overflows: gate 0, not NaN
    states, _ = cell_forward("glru", reg.params_, RNG.normal(size=(30, 2)))
    np.testing.assert_array_equal(states, 0.0)


def test_an_open_gate_is_the_lru():
    glru = _fitted()
    randomize(glru, np.random.RandomState(1), 0.5)
    glru.params_["weight_gate"][...] = 0.0
    glru.params_["bias_gate"][...] = 800.0  # gate exactly 1 in float64
    lru = RTRLRegressor(3, cell="lru", max_iter=1, random_state=0).fit(X3, Y3)
    for name in lru.params_:
        lru.params_[name][...] = glru.params_[name]
    np.testing.assert_allclose(glru.predict(X3), lru.predict(X3), rtol=1e-13)
    _, g_glru = glru.loss_gradient(X3, Y3)
    _, g_lru = lru.loss_gradient(X3, Y3)
    for name in g_lru:
        np.testing.assert_allclose(g_glru[name], g_lru[name], rtol=1e-12, atol=1e-15)
    # The saturated gate passes no gradient to its own weights.
    np.testing.assert_array_equal(g_glru["weight_gate"], 0.0)


@pytest.mark.parametrize(
    "params, match",
    [
        (
            dict(output_feedback=True, teacher_forcing=False, output="sequence"),
            "cell='glru' does not support training mode 'free_running'",
        ),
        # Stacked layers carry the maps' influences (``_kernels/_stack.pyx``)
        # but no output feedback, whatever the cell.
        (dict(n_hidden=(3, 2), output_feedback=True), "stacked layers.*feedback"),
    ],
)
def test_what_the_lru_refuses_the_glru_refuses(params, match):
    reg = RTRLRegressor(**{"n_hidden": 3, "cell": "glru", "max_iter": 1, **params})
    with pytest.raises(ValueError, match=match):
        reg.fit(X3, Y3)
    assert not hasattr(reg, "params_")


def test_the_gate_learns_the_adding_problem_which_the_lru_does_not():
    # The target is the sum of the two values whose marker is 1: a unit
    # must store value * marker, a product no linear recurrence forms. With
    # the same settings (16 units, 40 epochs) the gated LRU reached held-out
    # R^2 0.98 and the LRU -0.17 when this test was written.
    X, y = make_adding_problem(400, n_steps=20, random_state=0)
    X_test, y_test = make_adding_problem(500, n_steps=20, random_state=1)
    scores = {}
    for cell in ("glru", "lru"):
        reg = RTRLRegressor(
            16, cell=cell, learning_rate_init=0.01, max_iter=40, batch_size=16,
            random_state=0,
        ).fit(X, y)  # fmt: skip
        scores[cell] = r2_score(y_test, reg.predict(X_test))
    assert scores["glru"] >= 0.9
    assert scores["lru"] <= 0.5


def _pattern_anywhere(n, seed, n_steps=80):
    """Noise with one of three 3-step shapes somewhere in its first 30
    steps: the class. Read at the last step it has decayed into noise."""
    rng = np.random.RandomState(seed)
    y = rng.randint(3, size=n)
    X = rng.normal(scale=0.5, size=(n, n_steps, 1))
    shapes = np.array([[2, 2, 2], [2, -2, 2], [-2, 2, -2]])
    for i, at in enumerate(rng.randint(0, n_steps - 50, size=n)):
        X[i, at : at + 3, 0] += shapes[y[i]]
    return X, y


def test_the_pooled_output_finds_a_pattern_the_last_step_has_forgotten():
    # When written: held-out accuracy 0.987 with the maximum of y over
    # time, 0.313 (chance: 1/3) from the last step, same settings.
    X, y = _pattern_anywhere(150, 0)
    X_test, y_test = _pattern_anywhere(300, 1)
    scores = {}
    for pooling in ("max", "last"):
        clf = RTRLClassifier(
            8, cell="glru", pooling=pooling, learning_rate_init=0.01, max_iter=25,
            random_state=0,
        ).fit(X, y)  # fmt: skip
        scores[pooling] = clf.score(X_test, y_test)
    assert scores["max"] >= 0.9
    assert scores["last"] <= 0.5
