"""Mixed stacks: a tuple ``cell`` names each stacked layer's cell.

The exactness checks (exact RTRL against central finite differences and the
numpy RTRL, BPTT against RTRL, the layer-local approximation against its
numpy definition, per-step updates, streams and pooled readouts) run on the
mixes of ``tests/test_stack.py``'s ``MIXES`` beside the single-cell stacks,
and so do the refusals of bad settings. Here: what is particular to a tuple
``cell`` (names and shapes, round trips, threads, resources, refusals of
inspection and export). Sizes are tiny.
"""

import pickle

import numpy as np
import pytest
from sklearn.base import clone

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._stack import STACK_CELLS, StackCell

from _helpers import (
    assert_same_params,
    random_sequences,
    randomize,
)

pytestmark = pytest.mark.usefixtures("quiet_convergence")

N_FEATURES = 2


def test_params_names_and_shapes_are_each_layers_cells():
    rng = np.random.RandomState(4)
    X = random_sequences(rng, 5, N_FEATURES, max_len=5)
    y = rng.randint(2, size=len(X))
    est = RTRLClassifier(
        (4, 6, 3), cell=("gru", "egru", "lstm"), max_iter=1, random_state=0
    ).fit(X, y)
    shapes = {name: value.shape for name, value in est.params_.items()}
    assert shapes == {
        "weight_ih_l0": (12, N_FEATURES),
        "weight_hh_l0": (12, 4),
        "bias_ih_l0": (12,),
        "bias_hh_l0": (12,),
        "weight_ih_l1": (18, 4),
        "weight_hh_l1": (18,),
        "bias_ih_l1": (18,),
        "bias_hh_l1": (18,),
        "weight_ih_l2": (12, 6),
        "weight_hh_l2": (12, 3),
        "bias_ih_l2": (12,),
        "bias_hh_l2": (12,),
        "weight_out": (1, 3),
        "bias_out": (1,),
    }
    assert list(est.params_) == list(shapes)
    assert est._cell.cells == ("gru", "egru", "lstm")


def test_one_name_per_layer_is_the_single_cell_stack():
    rng = np.random.RandomState(5)
    X = random_sequences(rng, 4, N_FEATURES, max_len=5)
    y = rng.normal(size=len(X))
    same = RTRLRegressor((3, 2), cell="gru", max_iter=2, random_state=0).fit(X, y)
    named = RTRLRegressor((3, 2), cell=("gru", "gru"), max_iter=2, random_state=0)
    named.fit(X, y)
    for name, value in same.params_.items():
        np.testing.assert_array_equal(named.params_[name], value)
    # Either spelling continues the other's fit; another mix is refused.
    same.set_params(cell=["gru", "gru"]).partial_fit(X, y)
    before = {k: v.copy() for k, v in same.params_.items()}
    with pytest.raises(ValueError, match="fitted with cell="):
        same.set_params(cell=("gru", "egru")).partial_fit(X, y)
    assert_same_params(same.params_, before, rtol=0, atol=0)
    with pytest.raises(ValueError, match="fitted with cell="):
        same.set_params(cell=("egru", "gru"), warm_start=True).fit(X, y)
    assert_same_params(same.params_, before, rtol=0, atol=0)
    # Without warm_start a new cell starts a new model.
    same.set_params(warm_start=False).fit(X, y)
    assert same._cell.cells == ("egru", "gru")


def test_clone_pickle_and_skops_round_trip(tmp_path):
    rng = np.random.RandomState(6)
    X = random_sequences(rng, 6, N_FEATURES, min_len=2, max_len=5)
    y = np.arange(len(X)) % 2
    cells = ("gru", "egru")
    est = RTRLClassifier((3, 4), cell=cells, max_iter=2, random_state=0).fit(X, y)
    copy = clone(est)
    assert copy.get_params()["cell"] == cells
    assert type(copy.get_params()["cell"]) is tuple
    np.testing.assert_array_equal(copy.fit(X, y).predict_proba(X), est.predict_proba(X))
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict_proba(X), est.predict_proba(X))
    restored.partial_fit(X, y)
    sio = pytest.importorskip("skops.io")
    path = tmp_path / "mixed.skops"
    sio.dump(est, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert all(name.startswith("skrtrl.") for name in untrusted), untrusted
    loaded = sio.load(path, trusted=untrusted)
    assert loaded.cell == cells
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


def test_threads_agree():
    rng = np.random.RandomState(3)
    X = random_sequences(rng, 8, N_FEATURES, max_len=6)
    y = rng.normal(size=len(X))
    est = RTRLRegressor((3, 4), cell=("lstm", "elstm"), max_iter=1, random_state=0)
    randomize(est.fit(X, y), rng, 0.5)
    # Threads take whole sequences and the rows are summed in order.
    for gradient, pooling in [("local", "last"), ("bptt", "max"), ("rtrl", "mean")]:
        est.set_params(gradient=gradient, pooling=pooling, n_jobs=1)
        loss, grad = est.loss_gradient(X, y)
        loss2, grad2 = est.set_params(n_jobs=2).loss_gradient(X, y)
        assert loss2 == loss
        for name in grad:
            np.testing.assert_array_equal(grad2[name], grad[name])


def test_resources_count_each_layers_form():
    from skrtrl._resources import training_bytes

    def size(cells, sizes):
        cell = StackCell(cells, sizes, 2, 1)
        return training_bytes(
            cell, np.float64, online=True, batch_size=1, n_threads=1, longest=1
        ), cell

    # A small fully connected layer under a wide element-wise one: its own
    # influence dense (S_0 x W_0), the wide layer's per unit, and the cross
    # term S_1 x W_0.
    mixed, cell = size(("gru", "egru"), (4, 64))
    W0 = 3 * 4 * (2 + 4 + 2)
    W1 = 3 * 64 * (4 + 3)
    assert cell._influence == 4 * W0 + W1 + 64 * W0
    wide_gru, _ = size(("gru", "gru"), (4, 64))
    assert mixed < wide_gru / 20
    # The cost model counts the dense layer densely, the other per unit.
    assert cell.step_flops(True) < StackCell("gru", (4, 64), 2, 1).step_flops(True)
    assert cell.step_flops(True) > StackCell("egru", (4, 64), 2, 1).step_flops(True)


def test_resources_count_the_lru_layers_output_rows():
    # Each LRU layer's own influence per unit (2 W_l), M^(l,k) dense
    # (S_l W_k) and, for exact RTRL below the top, its output rows
    # d y^l / d theta^k (n_l W_k for k < l, and k = l under an LRU layer
    # that is not the top); the top layer's, and those of the LRU layer
    # under it on its own parameters, only with a pooled readout, after
    # its accumulators.
    m, n0, n1 = 2, 3, 5
    W0 = n0 * (3 * m + 2 * n0 + 4)  # the LRU's q = 3 m + 2 n + 4
    W1 = n1 * (3 * n0 + 2 * n1 + 4)
    exact = StackCell("lru", (n0, n1), m, 1)
    assert exact._influence == (
        2 * W0  # layer 0: own (its output rows only under a pooled top)
        + 2 * W1 + 2 * n1 * W0  # layer 1: own, M^(1,0)
    )  # fmt: skip
    assert exact._pool == 0
    pooled = StackCell("lru", (n0, n1), m, 1, pooling="mean")
    r1 = 2 * n0 + 3  # the top layer's columns with influence
    # Its own rows of d y / d theta, A^0, Y^(1,0) and Y^(0,0).
    row = n1 * r1 + (2 * n1 + n0 + 1)
    assert pooled._pool == n1 * row + n1 * W0 + n1 * W0 + n0 * W0
    # Three layers: Y^(0,0) (under layer 1, not the top) and Y^(1,0) are
    # the influence's; Y^(1,1) is not (layer 2 is the top).
    n2 = 2
    W2 = n2 * (3 * n1 + 2 * n2 + 4)
    three = StackCell("lru", (n0, n1, n2), m, 1)
    assert three._influence == (
        2 * W0 + n0 * W0
        + 2 * W1 + 2 * n1 * W0 + n1 * W0
        + 2 * W2 + 2 * n2 * W0 + 2 * n2 * W1
    )  # fmt: skip
    local = StackCell("lru", (n0, n1), m, 1, gradient="local")
    assert local._influence == 2 * W0 + 2 * W1
    # Above an LRU the source is dense (y mixes the units): more work than
    # above an element-wise GRU of the same size, and the map's rows cost.
    over_lru = StackCell(("lru", "egru"), (8, 8), m, 1).step_flops(True)
    over_egru = StackCell(("egru", "egru"), (8, 8), m, 1).step_flops(True)
    assert over_lru > over_egru


def test_every_stack_cell_mixes():
    for below in STACK_CELLS:
        for above in STACK_CELLS:
            assert StackCell((below, above), (2, 3), 1, 1).n_hidden == (2, 3)


def test_one_layer_tuple_cell_is_a_stack_of_one():
    rng = np.random.RandomState(8)
    X = random_sequences(rng, 4, N_FEATURES, max_len=4)
    y = rng.normal(size=len(X))
    one = RTRLRegressor((3,), cell=("gru",), max_iter=2, random_state=0).fit(X, y)
    single = RTRLRegressor(3, cell="gru", max_iter=2, random_state=0).fit(X, y)
    # Named per layer, as every stack: the single cell's entries, suffixed.
    for name, value in single.params_.items():
        key = name if name.endswith("_out") else f"{name}_l0"
        np.testing.assert_allclose(one.params_[key], value, rtol=1e-10, atol=1e-13)
    # Either spelling continues the other's fit, under its own names.
    single.set_params(cell=("gru",), n_hidden=(3,)).partial_fit(X, y)
    assert list(single.params_) == list(one.params_)
    single.set_params(cell="gru", n_hidden=3).partial_fit(X, y)
    assert "weight_ih" in single.params_


def test_inspection_and_export_refuse_mixed_stacks():
    import skrtrl.inspection as inspection

    X, y = np.zeros((2, 3, 2)), np.zeros(2)
    est = RTRLRegressor((3, 2), cell=("gru", "egru"), max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="stacked layers"):
        inspection.input_saliency(est, X)
    pytest.importorskip("onnx")
    from skrtrl.export import to_onnx

    with pytest.raises(ValueError, match=r"stack of \('gru', 'egru'\) layers"):
        to_onnx(est)
