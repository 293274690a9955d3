"""The linear recurrent unit, ``cell="lru"``: what is particular to it.

Its gradients in every declared mode are checked with every other cell by
``test_cell_conformance.py`` (against the numpy step ``LRUSteps`` of
``skrtrl/inspection/_cell_steps.py``), its persistence by
``test_persistence.py``, its memory estimates by ``test_resources.py`` and
its one-row path by ``test_rows.py``, all driven by the registry, and its
ONNX export with the other cells' by ``test_export.py``. Here: its
``params_``, its ring initialisation, its output map, float32, what export
does particularly for it and a learning check on held-out data.
"""

import numpy as np
import pytest
from sklearn.metrics import r2_score

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._cells import CELLS, LRUCell
from skrtrl.datasets import make_delayed_sum

from _helpers import assert_float32_gradient_matches, cell_forward, randomize

pytestmark = pytest.mark.usefixtures("quiet_convergence")

RNG = np.random.RandomState(0)
X3 = RNG.normal(size=(6, 5, 2))
Y3 = X3[:, -1, 0] - X3[:, -3, 1]


def test_lru_is_registered_as_an_elementwise_cell():
    assert CELLS["lru"] is LRUCell
    assert LRUCell.elementwise
    assert "free_running" not in LRUCell.modes("rtrl")
    assert set(LRUCell.modes("rtrl")) == {"minibatch", "step", "stream", "feedback"}


@pytest.mark.parametrize("cell", ["lru", "glru"])
@pytest.mark.parametrize("feedback", [False, True])
def test_params_names_and_shapes(cell, feedback):
    # The gated LRU (tests/test_glru.py) adds its gate's two entries.
    n, m, o = 4, 2, 3
    y = np.arange(6) % o
    clf = RTRLClassifier(n, cell=cell, max_iter=1, random_state=0)
    clf.set_params(output="sequence", output_feedback=feedback)
    clf.fit(X3, np.repeat(y[:, None], 5, axis=1))
    mi = m + (o if feedback else 0)
    gate = {"weight_gate": (n, mi), "bias_gate": (n,)} if cell == "glru" else {}
    assert {k: v.shape for k, v in clf.params_.items()} == {
        "nu_log": (n,),
        "theta_log": (n,),
        "gamma_log": (n,),
        "B_re": (n, mi),
        "B_im": (n, mi),
        **gate,
        "C_re": (n, n),
        "C_im": (n, n),
        "D": (n, mi),
        "bias_y": (n,),
        "weight_out": (o, n),
        "bias_out": (o,),
    }
    # Every entry of the flat vector is seen once.
    total = sum(v.size for v in clf.params_.values())
    assert total == clf._model.params.shape[0]


def test_ring_initialisation():
    n = 2000
    cell = LRUCell(n, 3, 1)
    flat = np.empty(cell.n_params)
    cell.initialize(flat, np.random.RandomState(0))
    p = cell.views(flat)
    modulus = np.exp(-np.exp(p["nu_log"]))
    phase = np.exp(p["theta_log"])
    assert modulus.min() >= LRUCell.R_MIN - 1e-12
    assert modulus.max() <= LRUCell.R_MAX + 1e-12
    assert phase.min() > 0 and phase.max() <= LRUCell.MAX_PHASE + 1e-12
    # Uniform on the ring of the complex plane: |lambda|^2 uniform.
    low, high = LRUCell.R_MIN**2, LRUCell.R_MAX**2
    squares = modulus**2
    assert abs(squares.mean() - (low + high) / 2) < 0.02
    assert abs(squares.var() - (high - low) ** 2 / 12) < 0.01
    assert abs(phase.mean() - LRUCell.MAX_PHASE / 2) < 0.1
    np.testing.assert_allclose(np.exp(p["gamma_log"]), np.sqrt(1 - squares), rtol=1e-12)
    assert p["B_re"].std() == pytest.approx(np.sqrt(1 / 6), rel=0.05)
    assert p["C_im"].std() == pytest.approx(np.sqrt(1 / n), rel=0.05)


def test_the_recurrence_stays_stable_for_any_parameters():
    # |lambda| = exp(-exp(nu_log)) < 1 whatever nu_log is: a long run of
    # inputs of size one keeps h bounded by gamma |B| / (1 - |lambda|).
    reg = RTRLRegressor(3, cell="lru", max_iter=1, random_state=0).fit(X3, Y3)
    randomize(reg, np.random.RandomState(1), 3.0)
    x = np.ones((2000, 2))
    states, _ = cell_forward("lru", reg.params_, x)
    assert np.all(np.isfinite(states))
    modulus = np.exp(-np.exp(reg.params_["nu_log"]))
    gain = np.exp(reg.params_["gamma_log"]) * (
        np.abs(reg.params_["B_re"] + 1j * reg.params_["B_im"]).sum(axis=1)
    )
    h = states[:, :3] + 1j * states[:, 3:]
    assert np.all(np.abs(h) <= gain / (1 - modulus) + 1e-9)


def test_huge_logarithms_are_clipped_and_stay_finite():
    # exp would overflow (cos(inf), inf * 0): the cell reads nu_log,
    # theta_log and gamma_log clipped to [-20, 20], with zero derivative
    # beyond.
    reg = RTRLRegressor(3, cell="lru", max_iter=1, random_state=0).fit(X3, Y3)
    reg.params_["nu_log"][...] = [800.0, -800.0, 0.1]
    reg.params_["theta_log"][...] = [1e4, -1e4, 0.2]
    reg.params_["gamma_log"][...] = [1e3, -1e3, 0.3]
    # Unit 0's huge state would saturate every output: keep it out of y.
    reg.params_["C_re"][:, 0] = reg.params_["C_im"][:, 0] = 0
    assert np.isfinite(reg.predict(X3)).all()
    _, grad = reg.loss_gradient(X3, Y3)
    assert all(np.isfinite(g).all() for g in grad.values())
    for name in ("nu_log", "theta_log", "gamma_log"):
        np.testing.assert_array_equal(grad[name][:2], 0)
        assert grad[name][2] != 0


def test_the_readout_reads_the_output_map():
    # With C = 0, D = 0 and bias_y = b the output is activation(b) whatever
    # the input: the readout reads y, not h.
    reg = RTRLRegressor(3, cell="lru", activation="tanh", max_iter=1, random_state=0)
    reg.fit(X3, Y3)
    for name in ("C_re", "C_im", "D"):
        reg.params_[name][...] = 0
    reg.params_["bias_y"][...] = [0.1, -0.2, 0.3]
    w, b = reg.params_["weight_out"][0], reg.params_["bias_out"][0]
    expected = w @ np.tanh([0.1, -0.2, 0.3]) + b
    np.testing.assert_allclose(reg.predict(X3), expected, rtol=1e-12)


@pytest.mark.parametrize("cell", ["lru", "glru"])
def test_float32_gradient_matches_float64(cell):
    reg64 = RTRLRegressor(4, cell=cell, max_iter=1, random_state=0).fit(X3, Y3)
    randomize(reg64, np.random.RandomState(2), 0.5)
    reg32 = RTRLRegressor(4, cell=cell, max_iter=1, random_state=0)
    reg32.fit(X3.astype(np.float32), Y3.astype(np.float32))
    assert all(value.dtype == np.float32 for value in reg32.params_.values())
    assert_float32_gradient_matches(
        reg64, reg32, X3, Y3, X3.astype(np.float32), Y3.astype(np.float32)
    )


def test_to_torch_refuses_the_lru():
    # torch.nn has no such layer; refused before torch is imported, so
    # without it too.
    pytest.importorskip("onnx")
    from skrtrl.export import to_torch

    reg = RTRLRegressor(3, cell="lru", max_iter=1, random_state=0).fit(X3, Y3)
    before = {k: v.copy() for k, v in reg.params_.items()}
    with pytest.raises(ValueError, match="cell='lru' .*no torch.nn layer.*to_onnx"):
        to_torch(reg)
    for name, value in before.items():
        np.testing.assert_array_equal(reg.params_[name], value)


def test_export_reads_the_logarithms_clipped():
    # The graph's constant lambda and gamma come from nu_log, theta_log and
    # gamma_log clipped to [-20, 20], as predict reads them (tests/
    # test_export.py checks every other setting against predict).
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort

    from skrtrl.export import to_onnx

    reg = RTRLRegressor(3, cell="lru", max_iter=1, random_state=0).fit(X3, Y3)
    reg.params_["nu_log"][...] = [-800.0, 0.1, 0.2]
    reg.params_["theta_log"][...] = [25.0, -1e4, 0.3]
    reg.params_["gamma_log"][...] = [0.0, 21.0, -30.0]
    # Units 1 and 2 reach y at the scale of their clipped gamma, so that
    # the clipping shows in the predictions.
    for name in ("C_re", "C_im"):
        reg.params_[name][:, 1:] *= [np.exp(-20.0), np.exp(20.0)]
    expected = reg.predict(X3)
    onx = to_onnx(reg, dtype=np.float64).SerializeToString()
    sess = ort.InferenceSession(onx, providers=["CPUExecutionProvider"])
    (values,) = sess.run(None, {"X": X3})
    np.testing.assert_allclose(values[:, 0], expected, rtol=1e-12, atol=1e-12)


def test_export_refuses_settings_changed_after_fit():
    pytest.importorskip("onnx")
    from skrtrl.export import onnx_step_model

    lru = RTRLRegressor(3, cell="lru", max_iter=1, random_state=0).fit(X3, Y3)
    gru = RTRLRegressor(3, cell="gru", max_iter=1, random_state=0).fit(X3, Y3)
    for est, changes in [
        (lru, {"cell": "gru"}),
        (lru, {"output_feedback": True}),
        (gru, {"cell": "lru"}),
    ]:
        est.set_params(**changes)
        with pytest.raises(ValueError, match="set_params after fitting"):
            onnx_step_model(est)
        est.set_params(cell=est._model.cell.name, output_feedback=False)


def test_learns_the_delayed_sum_on_held_out_data():
    task = dict(n_steps=12, delay=4, output="sequence")
    X, y = make_delayed_sum(300, **task, random_state=0)
    X_test, y_test = make_delayed_sum(300, **task, random_state=1)
    reg = RTRLRegressor(
        16, cell="lru", output="sequence", learning_rate_init=0.01, max_iter=30,
        batch_size=16, random_state=0,
    ).fit(X, y)  # fmt: skip
    delay = task["delay"]
    pred = reg.predict(X_test)
    assert r2_score(y_test[:, delay:].ravel(), pred[:, delay:].ravel()) >= 0.9
