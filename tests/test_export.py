"""skrtrl.export: ONNX graphs and the torch hand-over against predict.

Every check compares the exported model's outputs with the estimator's own
``predict`` / ``predict_proba`` on the same inputs: float32 graphs within
1e-5, float64 graphs and torch within 1e-10.
"""

import re
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import skl2onnx
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._cells import CELLS as CELL_REGISTRY
from skrtrl.export import (
    initial_step_state,
    onnx_step_model,
    register_onnx_converters,
    to_onnx,
    to_torch,
)

CELLS = ["elman", "diagonal", "gru", "lstm", "egru", "elstm", "lru", "glru"]
POOLINGS = ["mean", "max", "mean+last"]
#: The poolings whose step model counts the steps (a running mean).
MEAN_POOLINGS = ["mean", "mean+last"]
#: Cells that ONNX's RNN / GRU / LSTM operators run; the others need Scan.
OPERATOR_CELLS = ["elman", "gru", "lstm"]
ELEMENTWISE_CELLS = ["diagonal", "egru", "elstm", "lru", "glru"]
#: The output feedback each cell trains with: teacher forcing always,
#: free-running where the cell supports it (not the LRUs).
FEEDBACK_MODES = [
    (cell, teacher_forcing)
    for cell in CELLS
    for teacher_forcing in (True, False)
    if teacher_forcing or "free_running" in CELL_REGISTRY[cell].modes("rtrl")
]
CELLS_WITH_MEMORY = ["lstm", "elstm"]
LENGTHS = np.array([5, 8, 6, 8, 3, 7])
N_FEATURES = 2
TASKS = ["regressor", "binary", "multiclass"]


def _session(onx):
    return ort.InferenceSession(
        onx.SerializeToString(), providers=["CPUExecutionProvider"]
    )


def _sequences(seed=0):
    rng = np.random.RandomState(seed)
    return [rng.normal(size=(t, N_FEATURES)) for t in LENGTHS]


def _padded(X, dtype=np.float32, fill=np.nan):
    """Sequences padded at the end with NaN, which must not matter."""
    T = max(len(x) for x in X)
    out = np.full((len(X), T, X[0].shape[1]), fill, dtype=dtype)
    for i, x in enumerate(X):
        out[i, : len(x)] = x
    return out


def _targets(task, X, output, rng):
    labels = {"binary": np.array([3, 7]), "multiclass": np.array(["a", "b", "c"])}
    if output == "last":
        if task == "regressor":
            return rng.normal(size=len(X))
        return labels[task][np.arange(len(X)) % len(labels[task])]
    if task == "regressor":
        return [rng.normal(size=len(x)) for x in X]
    return [labels[task][rng.randint(len(labels[task]), size=len(x))] for x in X]


def _fit(task, cell, output, *, activation="tanh", pooling="last", **params):
    X = _sequences()
    rng = np.random.RandomState(1)
    y = _targets(task, X, output, rng)
    Estimator = RTRLRegressor if task == "regressor" else RTRLClassifier
    est = Estimator(
        n_hidden=4,
        cell=cell,
        output=output,
        activation=activation,
        pooling=pooling,
        max_iter=3,
        random_state=0,
        **params,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    return est, X


def _options(est, **options):
    """Converter options; zipmap off for classifiers (plain tensors)."""
    if isinstance(est, RTRLClassifier):
        options["zipmap"] = False
    return options


def _valid_steps(values, lengths):
    """Per-step rows of padded (N, T, ...) outputs, sequence after sequence."""
    return np.concatenate([values[i, :t] for i, t in enumerate(lengths)])


def _check_against_estimator(est, X, outputs, atol):
    """Compare a graph's outputs (padded when per step) with predict."""
    per_step = est.output == "sequence"

    def flat(pred):
        if per_step:
            return np.concatenate([np.asarray(p) for p in pred])
        return np.asarray(pred)

    if isinstance(est, RTRLRegressor):
        (values,) = outputs
        values = _valid_steps(values, LENGTHS) if per_step else values
        np.testing.assert_allclose(values[..., 0], flat(est.predict(X)), atol=atol)
        return
    label, proba = outputs
    if per_step:
        label, proba = _valid_steps(label, LENGTHS), _valid_steps(proba, LENGTHS)
    expected = flat(est.predict_proba(X))
    np.testing.assert_allclose(proba, expected, atol=atol)
    # Labels agree wherever the decision is not a near tie.
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-4
    labels = np.asarray(flat(est.predict(X)))
    assert clear.any()
    np.testing.assert_array_equal(label[clear].astype(labels.dtype), labels[clear])


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("output", ["last", "sequence"])
@pytest.mark.parametrize("cell", CELLS)
def test_whole_sequences_match_predict(cell, output, task):
    est, X = _fit(task, cell, output)
    feeds = {"X": _padded(X), "lengths": LENGTHS.astype(np.int64)}
    for scan in (False, True):
        onx = to_onnx(est, lengths=True, options=_options(est, scan=scan))
        uses_operator = any(
            node.op_type in ("RNN", "GRU", "LSTM") for node in onx.graph.node
        )
        assert uses_operator == (cell in OPERATOR_CELLS and not scan)
        _check_against_estimator(est, X, _session(onx).run(None, feeds), atol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "logistic", "identity"])
@pytest.mark.parametrize("cell", ["elman", "diagonal", "lru", "glru"])
def test_activations_of_the_elman_diagonal_and_lru_cells(cell, activation):
    """The hidden activation; the LRUs' is that of their output map."""
    est, X = _fit("regressor", cell, "sequence", activation=activation)
    feeds = {"X": _padded(X), "lengths": LENGTHS.astype(np.int64)}
    for scan in (False, True):
        onx = to_onnx(est, lengths=True, options={"scan": scan})
        ops = {node.op_type for node in onx.graph.node}
        assert ("RNN" in ops) == (cell == "elman" and not scan)
        _check_against_estimator(est, X, _session(onx).run(None, feeds), atol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_float64_graph_matches_predict_closely(cell):
    est, X = _fit("multiclass", cell, "sequence")
    onx = to_onnx(est, lengths=True, dtype=np.float64, options=_options(est))
    feeds = {"X": _padded(X, np.float64), "lengths": LENGTHS.astype(np.int64)}
    _check_against_estimator(est, X, _session(onx).run(None, feeds), atol=1e-12)


# -- pooled readouts ----------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("cell", CELLS)
def test_pooled_readout_of_padded_sequences_matches_predict(cell, pooling, task):
    """Sequences of different lengths in one batch, padded with NaN."""
    est, X = _fit(task, cell, "last", pooling=pooling)
    feeds = {"X": _padded(X), "lengths": LENGTHS.astype(np.int64)}
    for scan in (False, True):
        onx = to_onnx(est, lengths=True, options=_options(est, scan=scan))
        ops = {node.op_type for node in onx.graph.node}
        assert bool(ops & {"RNN", "GRU", "LSTM"}) == (
            cell in OPERATOR_CELLS and not scan
        )
        assert ("ReduceMax" if pooling == "max" else "ReduceSum") in ops
        # The last part is read at each sequence's own last step.
        assert ("GatherND" in ops) == (pooling == "mean+last")
        _check_against_estimator(est, X, _session(onx).run(None, feeds), atol=1e-5)
    onx = to_onnx(est, lengths=True, dtype=np.float64, options=_options(est))
    feeds = {"X": _padded(X, np.float64), "lengths": LENGTHS.astype(np.int64)}
    _check_against_estimator(est, X, _session(onx).run(None, feeds), atol=1e-12)


def _pooled_3d(task, cell, pooling, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(8, 6, N_FEATURES))
    labels = {"regressor": None, "binary": [3, 7], "multiclass": ["a", "b", "c"]}
    if task == "regressor":
        y = X[:, :, 0].max(axis=1)
    else:
        y = np.array(labels[task])[np.arange(len(X)) % len(labels[task])]
    Estimator = RTRLRegressor if task == "regressor" else RTRLClassifier
    est = Estimator(
        n_hidden=4,
        cell=cell,
        output="last",
        pooling=pooling,
        max_iter=3,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    return est, X


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("cell", CELLS)
def test_pooled_readout_of_a_3d_array_matches_predict(cell, pooling, dtype):
    """Equal lengths: without a lengths input, and with all lengths T."""
    est, X = _pooled_3d("multiclass", cell, pooling)
    atol = 1e-5 if dtype == np.float32 else 1e-12
    expected = est.predict_proba(X)
    for scan in (False, True):
        for lengths in (False, True):
            onx = to_onnx(
                est, lengths=lengths, dtype=dtype, options=_options(est, scan=scan)
            )
            feeds = {"X": X.astype(dtype)}
            if lengths:
                feeds["lengths"] = np.full(len(X), X.shape[1], dtype=np.int64)
            label, proba = _session(onx).run(None, feeds)
            np.testing.assert_allclose(proba, expected, atol=atol)
            np.testing.assert_array_equal(label, est.predict(X))


@pytest.mark.parametrize("target_opset", [14, 17, 18, None])
@pytest.mark.parametrize("pooling", POOLINGS)
def test_pooled_readout_across_opsets(pooling, target_opset):
    """The reductions' axes are an attribute before opset 18, an input after."""
    est, X = _fit("regressor", "gru", "last", pooling=pooling)
    expected = est.predict(X)
    for scan in (False, True):
        onx = to_onnx(
            est, lengths=True, target_opset=target_opset, options={"scan": scan}
        )
        feeds = {"X": _padded(X), "lengths": LENGTHS.astype(np.int64)}
        (values,) = _session(onx).run(None, feeds)
        np.testing.assert_allclose(values[:, 0], expected, atol=1e-5)
    est_3d, X_3d = _pooled_3d("regressor", "gru", pooling)
    onx = to_onnx(est_3d, target_opset=target_opset)
    (values,) = _session(onx).run(None, {"X": X_3d.astype(np.float32)})
    np.testing.assert_allclose(values[:, 0], est_3d.predict(X_3d), atol=1e-5)


def test_pooled_readout_ignores_the_padding_values():
    """The maximum and the mean read the valid steps only, whatever follows."""
    est, X = _fit("regressor", "elman", "last", pooling="max")
    lengths = LENGTHS.astype(np.int64)
    results = []
    for fill in (0.0, 1e3, -1e3):
        for scan in (False, True):
            sess = _session(to_onnx(est, lengths=True, options={"scan": scan}))
            (values,) = sess.run(None, {"X": _padded(X, fill=fill), "lengths": lengths})
            results.append(values[:, 0])
    for values in results:
        np.testing.assert_allclose(values, est.predict(X), atol=1e-5)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_pooled_readout_of_2d_univariate_sequences(pooling):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(20, 7))
    y = X.max(axis=1)
    reg = RTRLRegressor(
        n_hidden=4, cell="lstm", output="last", pooling=pooling, max_iter=3,
        random_state=0,
    ).fit(X, y)  # fmt: skip
    for scan in (False, True):
        onx = to_onnx(reg, options={"scan": scan})
        (values,) = _session(onx).run(None, {"X": X.astype(np.float32)})
        np.testing.assert_allclose(values[:, 0], reg.predict(X), atol=1e-5)


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("cell", ["egru", "glru"])
def test_pooled_classifier_pipeline_converts_with_skl2onnx_zipmap(cell, pooling):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 6))
    y = np.digitize(X.max(axis=1), [0.8, 1.4])
    pipe = make_pipeline(
        StandardScaler(),
        RTRLClassifier(
            n_hidden=5, cell=cell, output="last", pooling=pooling, max_iter=5,
            random_state=0,
        ),
    ).fit(X, y)  # fmt: skip
    register_onnx_converters()
    onx = skl2onnx.to_onnx(pipe, X[:1].astype(np.float32))
    assert [o.name for o in onx.graph.output] == ["output_label", "output_probability"]
    label, proba = _session(onx).run(None, {"X": X.astype(np.float32)})
    expected = pipe.predict_proba(X)
    as_matrix = np.array([[row[c] for c in range(3)] for row in proba])
    np.testing.assert_allclose(as_matrix, expected, atol=1e-5)
    clear = np.ptp(np.sort(expected, axis=1)[:, -2:], axis=1) > 1e-4
    np.testing.assert_array_equal(label[clear], pipe.predict(X)[clear])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("cell", CELLS)
def test_step_model_pools_the_sequence_so_far(cell, pooling, dtype):
    """After t steps the step model predicts what predict does on x[:t]."""
    est, X = _fit("multiclass", cell, "last", pooling=pooling)
    state = initial_step_state(est, len(X), dtype=dtype)
    expected_names = {"h", "pool"} | ({"c"} if cell in CELLS_WITH_MEMORY else set())
    steps = {"steps"} if pooling in MEAN_POOLINGS else set()
    assert set(state) == expected_names | steps
    sess = _session(onnx_step_model(est, dtype=dtype))
    names = [o.name for o in sess.get_outputs()]
    assert names[2:] == [f"{name}_next" for name in state]
    atol = 1e-5 if dtype == np.float32 else 1e-12
    for t in range(1, min(LENGTHS) + 1):
        batch = np.stack([x[t - 1] for x in X]).astype(dtype)
        result = dict(zip(names, sess.run(None, {"X": batch, **state})))
        state = {name: result[f"{name}_next"] for name in state}
        expected = est.predict_proba([x[:t] for x in X])
        np.testing.assert_allclose(result["probabilities"], expected, atol=atol)


def test_export_follows_a_pooling_changed_after_fit_as_predict_does():
    est, X = _fit("regressor", "gru", "last", pooling="max")
    feeds = {"X": _padded(X), "lengths": LENGTHS.astype(np.int64)}
    # The poolings that read n numbers, as the fitted readout does.
    same_width = ("mean", "last", "max")
    for pooling in same_width:
        est.set_params(pooling=pooling)
        (values,) = _session(to_onnx(est, lengths=True)).run(None, feeds)
        np.testing.assert_allclose(values[:, 0], est.predict(X), atol=1e-5)
    assert len({est.set_params(pooling=p).predict(X)[0] for p in same_width}) == 3


@pytest.mark.parametrize(
    "fitted, changed",
    [("max", "mean+last"), ("mean+last", "mean"), ("mean+last", "last")],
)
def test_a_pooling_of_another_readout_width_changed_after_fit_is_refused(
    fitted, changed
):
    # "mean+last" reads 2n numbers, the other poolings n: the fitted readout
    # cannot read the new pooling, and predict refuses it too.
    est, _ = _fit("regressor", "gru", "last", pooling=fitted)
    est.set_params(pooling=changed)
    match = (
        re.escape(f"fitted with pooling={fitted!r}")
        + ".*"
        + re.escape(f"now has pooling={changed!r}")
    )
    exporters = [
        lambda: to_onnx(est, lengths=True),
        lambda: onnx_step_model(est),
        lambda: initial_step_state(est),
    ]
    for export in exporters:
        with pytest.raises(ValueError, match=match):
            export()
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match=match):
        to_torch(est)


def test_pooled_readout_with_settings_changed_after_fit_is_refused(monkeypatch):
    import builtins

    est, _ = _fit("regressor", "gru", "last", pooling="max")
    est.set_params(output="sequence")
    with pytest.raises(ValueError, match="pooling='max' together with"):
        to_onnx(est, lengths=True)
    # The settings are refused before PyTorch is imported: the same error
    # with or without it.
    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(ValueError, match="set_params after fitting"):
        to_torch(est)


def test_equal_length_3d_input_needs_no_lengths():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(8, 6, 3))
    y = X[:, -2:, 0].sum(axis=1)
    reg = RTRLRegressor(n_hidden=5, cell="gru", max_iter=3, random_state=0).fit(X, y)
    (values,) = _session(to_onnx(reg)).run(None, {"X": X.astype(np.float32)})
    np.testing.assert_allclose(values[:, 0], reg.predict(X), atol=1e-5)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("cell", CELLS)
def test_output_feedback_whole_sequences_run_the_closed_loop(cell, task):
    est, X = _fit(task, cell, "sequence", output_feedback=True)
    onx = to_onnx(est, lengths=True, options=_options(est))
    assert "Scan" in {node.op_type for node in onx.graph.node}
    feeds = {"X": _padded(X), "lengths": LENGTHS.astype(np.int64)}
    _check_against_estimator(est, X, _session(onx).run(None, feeds), atol=1e-5)


def _stream(task, cell, *, output_feedback=False, teacher_forcing=True, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(60, N_FEATURES))
    if task == "regressor":
        y = np.sin(np.cumsum(X[:, 0]) / 3)
    elif task == "binary":
        y = np.where(X[:, 0] > 0, "up", "down")
    else:
        y = np.digitize(X[:, 0], [-0.5, 0.5])
    Estimator = RTRLRegressor if task == "regressor" else RTRLClassifier
    est = Estimator(
        n_hidden=4,
        cell=cell,
        stateful=True,
        output_feedback=output_feedback,
        teacher_forcing=teacher_forcing,
        pooling="last",
        max_iter=2,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X[:40], y[:40])
    return est, X[40:], y[40:]


def _run_steps(est, X, state, *, closed_loop, observed=None):
    """Run the step model over the rows of X; per-step outputs stacked."""
    sess = _session(onnx_step_model(est))
    names = [o.name for o in sess.get_outputs()]
    n_pred = 1 if isinstance(est, RTRLRegressor) else 2
    rows = []
    for t, x in enumerate(X.astype(np.float32)):
        result = dict(zip(names, sess.run(None, {"X": x[None], **state})))
        rows.append([result[name] for name in names[:n_pred]])
        for name in state:
            state[name] = result[f"{name}_next"]
        if "feedback" in state and not closed_loop:
            state["feedback"] = observed[t][None].astype(np.float32)
    return [np.concatenate(parts) for parts in zip(*rows)]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("cell", CELLS)
def test_step_model_reproduces_a_stream(cell, task):
    est, X, _ = _stream(task, cell)
    # From the stream state the estimator is in, as predict runs on.
    outputs = _run_steps(est, X, initial_step_state(est), closed_loop=True)
    _check_stream(est, X, outputs)
    # From a fresh stream.
    est.reset_state()
    outputs = _run_steps(est, X, initial_step_state(est), closed_loop=True)
    _check_stream(est, X, outputs)


def _check_stream(est, X, outputs, atol=1e-5):
    if isinstance(est, RTRLRegressor):
        np.testing.assert_allclose(outputs[0][:, 0], est.predict(X), atol=atol)
        return
    label, proba = outputs
    expected = est.predict_proba(X)
    np.testing.assert_allclose(proba, expected, atol=atol)
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-4
    labels = est.predict(X)
    np.testing.assert_array_equal(label[clear].astype(labels.dtype), labels[clear])


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize(("cell", "teacher_forcing"), FEEDBACK_MODES)
def test_step_model_closed_loop_with_output_feedback(cell, teacher_forcing, task):
    est, X, _ = _stream(
        task, cell, output_feedback=True, teacher_forcing=teacher_forcing
    )
    state = initial_step_state(est)
    memory = {"c"} if cell in CELLS_WITH_MEMORY else set()
    assert set(state) == {"h", "feedback"} | memory
    # predict is a closed-loop forecast from the stream state.
    outputs = _run_steps(est, X, state, closed_loop=True)
    _check_stream(est, X, outputs)


def test_step_model_feeds_back_observed_targets_like_update_state():
    est, X, y = _stream("regressor", "gru", output_feedback=True)
    # Feed back the observed targets for 10 steps, then forecast 10 steps.
    state = initial_step_state(est)
    _run_steps(est, X[:10], state, closed_loop=False, observed=y[:10, None])
    est.update_state(X[:10], y[:10])
    outputs = _run_steps(est, X[10:20], state, closed_loop=True)
    _check_stream(est, X[10:20], outputs)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("cell", ["elman", "lstm", "diagonal", "elstm", "lru", "glru"])
def test_stateful_whole_graph_runs_on_from_the_stream_state(cell, task):
    est, X, _ = _stream(task, cell)
    onx = to_onnx(est, options=_options(est))
    outputs = _session(onx).run(None, {"X": X.astype(np.float32)})
    _check_stream(est, X, outputs)


def test_stateful_whole_graph_with_output_feedback():
    est, X, _ = _stream("multiclass", "lstm", output_feedback=True)
    outputs = _session(to_onnx(est, options={"zipmap": False})).run(
        None, {"X": X.astype(np.float32)}
    )
    _check_stream(est, X, outputs)


@pytest.mark.parametrize("cell", CELLS)
def test_step_model_steps_sequences_in_parallel(cell):
    """N streams at once: one step model call per time step."""
    est, X = _fit("multiclass", cell, "sequence")
    T = min(LENGTHS)
    batch = np.stack([x[:T] for x in X]).astype(np.float32)
    state = initial_step_state(est, len(X))
    sess = _session(onnx_step_model(est))
    names = [o.name for o in sess.get_outputs()]
    proba = []
    for t in range(T):
        result = dict(zip(names, sess.run(None, {"X": batch[:, t], **state})))
        proba.append(result["probabilities"])
        state = {name: result[f"{name}_next"] for name in state}
    expected = np.stack([p[:T] for p in est.predict_proba([x[:T] for x in X])])
    np.testing.assert_allclose(np.stack(proba, axis=1), expected, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "lru", "glru"])
def test_step_model_float64(cell):
    est, X, _ = _stream("regressor", cell)
    sess = _session(onnx_step_model(est, dtype=np.float64))
    state = initial_step_state(est, dtype=np.float64)
    y = []
    for x in X:
        y_t, *new = sess.run(None, {"X": x[None], **state})
        state = dict(zip(state, new))
        y.append(y_t[0, 0])
    np.testing.assert_allclose(y, est.predict(X), rtol=0, atol=1e-12)


# -- skl2onnx conventions ------------------------------------------------------


@pytest.mark.parametrize("cell", ["elman", "lru", "glru"])
def test_pipeline_with_scaler_converts_with_skl2onnx(cell):
    rng = np.random.RandomState(0)
    X = rng.normal(loc=3.0, scale=2.0, size=(30, 7))
    y = X[:, -1] - X[:, -3]
    pipe = make_pipeline(
        StandardScaler(),
        RTRLRegressor(n_hidden=6, cell=cell, max_iter=5, random_state=0),
    ).fit(X, y)
    register_onnx_converters()
    onx = skl2onnx.to_onnx(pipe, X[:1].astype(np.float32))
    (values,) = _session(onx).run(None, {"X": X.astype(np.float32)})
    np.testing.assert_allclose(values[:, 0], pipe.predict(X), atol=1e-5)


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("cell", ["gru", "lru", "glru"])
def test_classifier_pipeline_with_zipmap(cell, n_classes):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 6))
    y = np.digitize(X[:, 0], [-0.4, 0.4] if n_classes == 3 else [0.0])
    pipe = make_pipeline(
        StandardScaler(),
        RTRLClassifier(n_hidden=5, cell=cell, max_iter=5, random_state=0),
    ).fit(X, y)
    register_onnx_converters()
    onx = skl2onnx.to_onnx(pipe, X[:1].astype(np.float32))
    assert [o.name for o in onx.graph.output] == ["output_label", "output_probability"]
    label, proba = _session(onx).run(None, {"X": X.astype(np.float32)})
    expected = pipe.predict_proba(X)
    as_matrix = np.array([[row[c] for c in range(n_classes)] for row in proba])
    np.testing.assert_allclose(as_matrix, expected, atol=1e-5)
    clear = np.ptp(np.sort(expected, axis=1)[:, -2:], axis=1) > 1e-4
    np.testing.assert_array_equal(label[clear], pipe.predict(X)[clear])


def test_string_labels_and_nocl():
    est, X = _fit("multiclass", "elman", "last")
    feeds = {"X": _padded(X), "lengths": LENGTHS.astype(np.int64)}
    label, _ = _session(to_onnx(est, lengths=True, options={"zipmap": False})).run(
        None, feeds
    )
    assert label.dtype == object
    codes, _ = _session(
        to_onnx(est, lengths=True, options={"zipmap": False, "nocl": True})
    ).run(None, feeds)
    np.testing.assert_array_equal(est.classes_[codes], label)


def test_whole_number_float_labels_become_int64():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(10, 4))
    clf = RTRLClassifier(n_hidden=3, max_iter=2).fit(X, np.tile([0.0, 2.0], 5))
    label, _ = _session(to_onnx(clf, options={"zipmap": False})).run(
        None, {"X": X.astype(np.float32)}
    )
    assert label.dtype == np.int64
    np.testing.assert_array_equal(label, clf.predict(X))


def test_bad_inputs_and_settings_are_refused():
    est, X, _ = _stream("regressor", "elman")
    with pytest.raises(ValueError, match="stream"):
        to_onnx(est, lengths=True)
    seq, _ = _fit("regressor", "elman", "last")
    with pytest.raises(ValueError, match="opset 14"):
        to_onnx(seq, target_opset=13)
    with pytest.raises(ValueError, match="at least 14"):
        onnx_step_model(seq, target_opset=12)
    with pytest.raises(ValueError, match="float32 or float64"):
        to_onnx(seq, dtype=np.int32)
    from skl2onnx.common.data_types import FloatTensorType

    register_onnx_converters()
    with pytest.raises(ValueError, match="3D tensor"):
        skl2onnx.convert_sklearn(
            seq, initial_types=[("X", FloatTensorType([None, N_FEATURES]))]
        )
    with pytest.raises(TypeError, match="fitted RTRLRegressor or RTRLClassifier"):
        to_onnx(StandardScaler())
    with pytest.raises(ValueError, match="n_streams"):
        initial_step_state(seq, 0)
    seq.set_params(cell="gru")
    with pytest.raises(ValueError, match="set_params"):
        onnx_step_model(seq)


@pytest.mark.parametrize(("fitted", "changed"), [("glru", "lru"), ("lru", "glru")])
def test_lru_and_gated_lru_changed_into_each_other_are_refused(fitted, changed):
    # A gated LRU's params_ hold every LRU entry: read as an LRU it would
    # export without its gate.
    est, _ = _fit("regressor", fitted, "last")
    est.set_params(cell=changed)
    for export in (onnx_step_model, to_onnx):
        with pytest.raises(ValueError, match="set_params after fitting"):
            export(est)


def test_unfitted_estimator_is_refused():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        to_onnx(RTRLRegressor())


@pytest.mark.parametrize("cell", CELLS)
def test_exported_models_pass_the_onnx_checker(cell):
    import onnx

    est, _ = _fit("binary", cell, "sequence", output_feedback=True)
    onx = onnx_step_model(est)
    onnx.checker.check_model(onx, full_check=True)
    names = [i.name for i in onx.graph.input]
    memory = ["c"] if cell in CELLS_WITH_MEMORY else []
    assert names == ["X", "h"] + memory + ["feedback"]
    onnx.checker.check_model(to_onnx(est, lengths=True), full_check=True)
    plain, _ = _fit("multiclass", cell, "last")
    onnx.checker.check_model(to_onnx(plain, lengths=True), full_check=True)
    for pooling in POOLINGS:
        pooled, _ = _fit("multiclass", cell, "last", pooling=pooling)
        for lengths, scan in [(True, False), (True, True), (False, True)]:
            onx = to_onnx(pooled, lengths=lengths, options={"scan": scan})
            onnx.checker.check_model(onx, full_check=True)
        onnx.checker.check_model(onnx_step_model(pooled), full_check=True)


# -- torch -------------------------------------------------------------------------


def _torch_outputs(est, X, torch):
    """Readout values per sequence from to_torch's modules (list X)."""
    recurrent, readout = to_torch(est)
    link = {
        "identity": lambda z: z,
        "logistic": torch.sigmoid,
        "softmax": lambda z: torch.softmax(z, dim=-1),
    }[_link(est)]
    results = []
    with torch.no_grad():
        for x in X:
            x = torch.from_numpy(x[None])
            if est.output_feedback:
                shape = (1, 1, est.n_outputs_)
                state, f, steps = None, torch.zeros(shape, dtype=torch.float64), []
                for t in range(x.shape[1]):
                    inputs = torch.cat([x[:, t : t + 1], f], dim=-1)
                    h, state = recurrent(inputs, state)
                    z = readout(h)
                    steps.append(z)
                    f = link(z)
                z = torch.cat(steps, dim=1)[0]
            else:
                h, _ = recurrent(x)
                z = readout(h[0])
            results.append(z.numpy() if est.output == "sequence" else z[-1].numpy())
    return results, link


def _link(est):
    if isinstance(est, RTRLRegressor):
        return "identity"
    return "logistic" if len(est.classes_) == 2 else "softmax"


@pytest.mark.parametrize("output_feedback", [False, True])
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("cell", OPERATOR_CELLS)
def test_torch_hand_over_reproduces_predict(cell, task, output_feedback):
    torch = pytest.importorskip("torch")
    output = "sequence" if output_feedback else "last"
    est, X = _fit(task, cell, output, output_feedback=output_feedback)
    z, link = _torch_outputs(est, X, torch)
    z = np.concatenate(z) if output == "sequence" else np.stack(z)
    flat = (
        (lambda v: np.concatenate([np.asarray(p) for p in v]))
        if output == "sequence"
        else np.asarray
    )
    if task == "regressor":
        np.testing.assert_allclose(z[:, 0], flat(est.predict(X)), rtol=0, atol=1e-10)
        return
    p = link(torch.from_numpy(z)).numpy()
    if task == "binary":
        p = np.column_stack([1 - p[:, 0], p[:, 0]])
    np.testing.assert_allclose(p, flat(est.predict_proba(X)), rtol=0, atol=1e-10)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("cell", OPERATOR_CELLS)
def test_torch_pooled_readout_of_a_padded_batch(cell, pooling, task):
    torch = pytest.importorskip("torch")
    est, X = _fit(task, cell, "last", pooling=pooling)
    recurrent, readout = to_torch(est)
    assert isinstance(readout.linear, torch.nn.Linear)
    assert readout.pooling == pooling
    link = {
        "identity": lambda z: z,
        "logistic": torch.sigmoid,
        "softmax": lambda z: torch.softmax(z, dim=-1),
    }[_link(est)]
    # One padded batch (NaN past each end: must not reach the result), and
    # each sequence alone, unbatched and without lengths.
    with torch.no_grad():
        hidden, _ = recurrent(torch.from_numpy(_padded(X, np.float64)))
        batch = link(readout(hidden, torch.from_numpy(LENGTHS))).numpy()
        alone = np.stack(
            [link(readout(recurrent(torch.from_numpy(x))[0])).numpy() for x in X]
        )
    for p in (batch, alone):
        if task == "regressor":
            np.testing.assert_allclose(p[:, 0], est.predict(X), rtol=0, atol=1e-10)
            continue
        if task == "binary":
            p = np.column_stack([1 - p[:, 0], p[:, 0]])
        np.testing.assert_allclose(p, est.predict_proba(X), rtol=0, atol=1e-10)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_torch_pooled_readout_of_a_3d_array_in_float32(pooling):
    torch = pytest.importorskip("torch")
    est, X = _pooled_3d("regressor", "lstm", pooling)
    recurrent, readout = to_torch(est, dtype=torch.float32)
    assert readout.linear.weight.dtype == torch.float32
    with torch.no_grad():
        hidden, _ = recurrent(torch.from_numpy(X.astype(np.float32)))
        y = readout(hidden)[:, 0].numpy()
        y_lengths = readout(hidden, [X.shape[1]] * len(X))[:, 0].numpy()
    np.testing.assert_allclose(y, est.predict(X), atol=1e-5)
    np.testing.assert_array_equal(y_lengths, y)


def test_torch_relu_elman_and_refusals():
    torch = pytest.importorskip("torch")
    est, X = _fit("regressor", "elman", "sequence", activation="relu")
    recurrent, readout = to_torch(est)
    assert recurrent.nonlinearity == "relu" and recurrent.batch_first
    with torch.no_grad():
        y = [readout(recurrent(torch.from_numpy(x[None]))[0][0]).numpy() for x in X]
    for y_torch, y_est in zip(y, est.predict(X)):
        np.testing.assert_allclose(y_torch[:, 0], y_est, rtol=0, atol=1e-10)
    assert to_torch(est, dtype=torch.float32)[0].weight_hh_l0.dtype == torch.float32
    logistic, _ = _fit("regressor", "elman", "last", activation="logistic")
    with pytest.raises(ValueError, match="tanh and relu"):
        to_torch(logistic)


def test_to_torch_without_torch_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    est, _ = _fit("regressor", "gru", "last")
    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(ImportError, match="pip install torch"):
        to_torch(est)


@pytest.mark.parametrize("cell", OPERATOR_CELLS)
def test_torch_continues_a_stream_from_the_estimators_state(cell):
    torch = pytest.importorskip("torch")
    est, X, _ = _stream("regressor", cell)
    state = initial_step_state(est, dtype=np.float64)
    initial = torch.from_numpy(state["h"][None])
    if cell == "lstm":
        initial = (initial, torch.from_numpy(state["c"][None]))
    recurrent, readout = to_torch(est)
    with torch.no_grad():
        hidden, _ = recurrent(torch.from_numpy(X[None]), initial)
        y = readout(hidden[0])[:, 0].numpy()
    np.testing.assert_allclose(y, est.predict(X), rtol=0, atol=1e-10)


def test_every_registered_cell_is_exported():
    assert set(CELL_REGISTRY) == set(CELLS)


@pytest.mark.parametrize("cell", ELEMENTWISE_CELLS)
def test_to_torch_refuses_the_elementwise_cells_by_name(cell):
    pytest.importorskip("torch")
    # With a pooled readout too (for the LRUs, of their output map y).
    for pooling in ["last", *POOLINGS]:
        est, _ = _fit("regressor", cell, "last", pooling=pooling)
        with pytest.raises(ValueError, match=f"cell={cell!r} .*no torch.nn layer"):
            to_torch(est)


def test_a_cell_the_export_does_not_know_is_refused_by_name():
    # A cell added to the estimators before the export supports it: every
    # exporter refuses it, naming it, rather than exporting another cell's
    # equations.
    est, _ = _fit("regressor", "elman", "last")
    est.cell = "unknown_cell"
    exporters = [
        lambda: to_onnx(est, lengths=True),
        lambda: onnx_step_model(est),
        lambda: initial_step_state(est),
        lambda: to_torch(est),
    ]
    for export in exporters:
        with pytest.raises(ValueError, match="cell='unknown_cell' cannot be exported"):
            export()


def test_to_torch_refuses_an_exported_cell_without_a_torch_layer(monkeypatch):
    # A cell the ONNX export supports is not thereby a torch.nn layer:
    # to_torch names the layers it has instead of building another one.
    import dataclasses

    from skrtrl.export import _model, _torch

    pytest.importorskip("torch")
    est, _ = _fit("regressor", "gru", "last")
    monkeypatch.setattr(
        _torch,
        "describe",
        lambda estimator: dataclasses.replace(
            _model.describe(estimator), cell="unknown_cell"
        ),
    )
    with pytest.raises(ValueError, match="cell='unknown_cell' has no torch.nn layer"):
        to_torch(est)
