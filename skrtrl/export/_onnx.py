"""Public ONNX functions: whole-sequence export and the one-step model."""

import numpy as np

from ._graph import (
    GraphBuilder,
    cell_step,
    counter_names,
    link,
    pool_step,
    read_value,
    readout,
    step_state_names,
)
from ._heads import classifier_head, label_type_is_string, regressor_head
from ._model import describe

#: Opset of the one-step model unless asked otherwise (onnxruntime 1.14 and
#: later run it).
STEP_MODEL_OPSET = 17
_INSTALL_HINT = (
    "Install the optional dependencies with `pip install skrtrl[onnx]` "
    "(onnx, skl2onnx and onnxruntime)."
)


def _import_onnx(what):
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(f"{what} needs the onnx package. {_INSTALL_HINT}") from exc
    return onnx


def _check_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64; got {dtype}.")
    return dtype


def register_onnx_converters():
    """Make skl2onnx convert RTRLRegressor and RTRLClassifier.

    Registers a parser, a shape calculator and a converter for each
    estimator with :func:`skl2onnx.update_registered_converter`. After this
    call ``skl2onnx.to_onnx`` and ``skl2onnx.convert_sklearn`` convert the
    estimators on their own and inside pipelines. :func:`to_onnx` calls it
    for you; calling it again does no harm.

    The converters accept these options (skl2onnx's ``options``):
    ``"scan"`` (bool, default False) runs every cell in a Scan loop instead
    of ONNX's RNN / GRU / LSTM operators (the element-wise cells,
    ``"diagonal"``, ``"egru"``, ``"elstm"``, ``"lru"`` and ``"glru"``, always
    use it); for classifiers, ``"zipmap"`` (True, False or ``"columns"``,
    default True) and ``"nocl"`` (bool: labels 0 to n_classes - 1) as for
    scikit-learn's classifiers.

    Returns
    -------
    None

    See Also
    --------
    to_onnx : Export a fitted estimator, choosing the inputs for you.

    Examples
    --------
    >>> import numpy as np
    >>> from skl2onnx import to_onnx as skl2onnx_to_onnx
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skrtrl import RTRLRegressor
    >>> from skrtrl.export import register_onnx_converters
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(40, 6))
    >>> y = X[:, -2:].sum(axis=1)
    >>> pipe = make_pipeline(
    ...     StandardScaler(), RTRLRegressor(n_hidden=4, max_iter=5, random_state=0)
    ... ).fit(X, y)
    >>> register_onnx_converters()
    >>> onx = skl2onnx_to_onnx(pipe, X[:1].astype(np.float32))
    >>> [output.name for output in onx.graph.output]
    ['variable']
    """
    try:
        from ._skl2onnx import register_converters

        register_converters()
    except ImportError as exc:
        raise ImportError(
            f"Registering the ONNX converters needs skl2onnx. {_INSTALL_HINT}"
        ) from exc


def to_onnx(
    estimator, *, lengths=False, dtype=np.float32, target_opset=None, options=None
):
    """Convert a fitted RTRLRegressor or RTRLClassifier to ONNX.

    The graph runs whole sequences, as ``predict`` and ``predict_proba``
    do, through skl2onnx (see :func:`register_onnx_converters`). Its input
    ``X`` depends on the data the estimator was fitted on: ``[N, T]``
    (float) for a 2D X of univariate sequences, with the fitted number of
    columns T; ``[N, T, n_features]`` for a 3D X or a list of sequences,
    shorter sequences padded at the end; ``[n_steps, n_features]`` for a
    stream (``stateful=True``), run on from the estimator's current stream
    state. Padding values past a sequence's end do not matter when
    ``lengths`` is given. A pooled readout (``pooling="mean"``, ``"max"``
    or ``"mean+last"``) reads the mean or each unit's maximum of the hidden
    states (for ``cell="lru"`` and ``"glru"``, of their output map y), or
    their mean followed by the last one divided by the length, over each
    sequence's own steps,
    the first ``lengths[i]`` (all T without ``lengths``), as ``predict``
    does.

    Outputs follow skl2onnx's conventions. Regressor: ``variable``, shape
    ``[N, n_outputs]`` (``[N, T, n_outputs]`` with ``output="sequence"``).
    Classifier: ``label`` and ``probabilities`` (``[N]`` and ``[N,
    n_classes]``, with a time axis after N for ``output="sequence"``; turned
    into ``output_label`` and ``output_probability`` by the default
    ``zipmap`` option where the outputs have one row per sequence). Per-step
    entries past a sequence's end are padding: ignore them.

    Parameters
    ----------
    estimator : RTRLRegressor or RTRLClassifier
        A fitted estimator.
    lengths : bool, default=False
        Add a second input ``lengths`` (int64, ``[N]``, each at least 1):
        the number of valid steps of each padded sequence. Not for streams.
    dtype : {np.float32, np.float64}, default=np.float32
        Type of the input and of the computation. onnxruntime runs its RNN,
        GRU and LSTM operators in float32 only; a float64 graph runs every
        cell in a Scan loop.
    target_opset : int or None, default=None
        ONNX opset (at least 14); None lets skl2onnx choose its latest.
    options : dict or None, default=None
        Converter options, as for :func:`register_onnx_converters`, for
        example ``{"zipmap": False}``.

    Returns
    -------
    onx : onnx.ModelProto
        The ONNX model; save it with ``onx.SerializeToString()``.

    See Also
    --------
    onnx_step_model : One step with the state as input and output.

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime as ort
    >>> from skrtrl import RTRLClassifier
    >>> from skrtrl.export import to_onnx
    >>> rng = np.random.RandomState(0)
    >>> X = [rng.normal(size=(t, 2)) for t in (5, 8, 6, 8)]
    >>> y = [0, 1, 0, 1]
    >>> clf = RTRLClassifier(n_hidden=4, cell="gru", max_iter=5, random_state=0)
    >>> clf = clf.fit(X, y)
    >>> onx = to_onnx(clf, lengths=True, options={"zipmap": False})
    >>> padded = np.zeros((4, 8, 2), dtype=np.float32)
    >>> for i, x in enumerate(X):
    ...     padded[i, : len(x)] = x
    >>> sess = ort.InferenceSession(onx.SerializeToString())
    >>> label, proba = sess.run(None, {"X": padded, "lengths": np.array([5, 8, 6, 8])})
    >>> bool(np.allclose(proba, clf.predict_proba(X), atol=1e-5))
    True
    """
    _import_onnx("to_onnx")
    dtype = _check_dtype(dtype)
    model = describe(estimator)
    register_onnx_converters()
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
    )

    tensor = FloatTensorType if dtype == np.float32 else DoubleTensorType
    if model.input_kind == "2d":
        shape = [None, model.n_timesteps]
    elif model.input_kind == "stream":
        shape = [None, model.n_inputs]
    else:
        shape = [None, None, model.n_inputs]
    initial_types = [("X", tensor(shape))]
    if lengths:
        if model.stateful:
            raise ValueError(
                "lengths=True is for padded sequences; a stateful estimator "
                "reads the rows of one stream. Use lengths=False."
            )
        initial_types.append(("lengths", Int64TensorType([None])))
    return convert_sklearn(
        estimator,
        initial_types=initial_types,
        target_opset=target_opset,
        options={id(estimator): dict(options)} if options else None,
    )


def onnx_step_model(estimator, *, dtype=np.float32, target_opset=STEP_MODEL_OPSET):
    """One time step as an ONNX model, with the state in and out.

    For streams and closed loops the caller keeps the state: each call takes
    the inputs of one step for N independent streams and the state left by
    the previous call, and returns the prediction and the new state.

    Inputs: ``X`` ``[N, n_features]``; ``h`` ``[N, n_hidden]`` (for
    ``cell="lru"`` and ``"glru"`` ``[N, 2 n_hidden]``, the real parts of the
    complex state then the imaginary parts, as in the stream state); ``c``
    ``[N, n_hidden]`` (``cell="lstm"`` or ``"elstm"`` only); ``feedback``
    ``[N, n_outputs]`` (with ``output_feedback=True`` only): the previous
    output fed back, that is the previous prediction (regressor), the
    probability of ``classes_[1]`` (two classes) or the probability vector,
    or, to feed back an observation as training did with teacher forcing,
    the observed target (for the classifier, 1.0 for ``classes_[1]`` or the
    one-hot class vector).
    With a pooled readout (``pooling="mean"``, ``"max"`` or
    ``"mean+last"``) more inputs carry the pooling: ``pool`` ``[N,
    n_hidden]``, the running sum (``"mean"``, ``"mean+last"``) or each
    unit's running maximum (``"max"``) of h (of the output map y for
    ``cell="lru"`` and ``"glru"``), and for the two means ``steps`` ``[N,
    1]``, the number of steps taken (a float). The last part of
    ``"mean+last"`` is the step's own h (or y) divided by ``steps``: no
    input carries it.
    :func:`initial_step_state` gives the state to start from.

    Outputs: the prediction (regressor: ``variable`` ``[N, n_outputs]``;
    classifier: ``label`` ``[N]`` and ``probabilities`` ``[N, n_classes]``),
    then ``h_next``, ``c_next`` (``"lstm"``, ``"elstm"``), ``feedback_next``
    (output feedback: the model's own output, to feed back in a closed loop),
    ``pool_next`` and ``steps_next`` (pooled readouts). With a pooled
    readout the prediction after a step is that of the sequence so far:
    the readout of the mean or maximum of h (or y) over the steps taken (or
    of that mean followed by this step's h), so the prediction after a
    sequence's last step is ``predict``'s.

    Parameters
    ----------
    estimator : RTRLRegressor or RTRLClassifier
        A fitted estimator, of any exported cell, output mode, pooling and
        feedback setting.
    dtype : {np.float32, np.float64}, default=np.float32
        Type of the inputs, outputs and computation.
    target_opset : int, default=17
        ONNX opset of the model, at least 14.

    Returns
    -------
    onx : onnx.ModelProto
        The one-step model.

    See Also
    --------
    initial_step_state : The state a stream starts from.
    to_onnx : Whole sequences in one call.

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime as ort
    >>> from skrtrl import RTRLRegressor
    >>> from skrtrl.export import initial_step_state, onnx_step_model
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(100, 1))
    >>> y = np.roll(X[:, 0], 1)
    >>> reg = RTRLRegressor(n_hidden=8, stateful=True, max_iter=3, random_state=0)
    >>> reg = reg.fit(X, y).reset_state()
    >>> sess = ort.InferenceSession(onnx_step_model(reg).SerializeToString())
    >>> state = initial_step_state(reg)
    >>> steps = []
    >>> for x in X[:10].astype(np.float32):
    ...     y_t, state["h"] = sess.run(None, {"X": x[None], **state})
    ...     steps.append(y_t[0, 0])
    >>> bool(np.allclose(steps, reg.predict(X[:10]), atol=1e-5))
    True
    """
    onnx = _import_onnx("onnx_step_model")
    from onnx import helper

    dtype = _check_dtype(dtype)
    if target_opset < 14:
        raise ValueError(f"target_opset must be at least 14; got {target_opset}.")
    model = describe(estimator)
    unique = counter_names()
    g = GraphBuilder(dtype, unique, opset=int(target_opset))
    names = step_state_names(model)
    x = unique("X")
    state = {name: unique(name) for name in names}
    new, z = cell_step(g, model, x, state)
    if model.feedback:
        new["feedback"] = link(g, model, z)
    if model.pooling != "last":
        pooled, pooled_h = pool_step(g, model, state, read_value(model, new))
        new.update(pooled)
        z = readout(g, model, pooled_h)
    float_type = g.onnx_type
    n = model.n_hidden
    sizes = {
        "h": model.n_state,
        "c": n,
        "feedback": model.n_outputs,
        "pool": n,
        "steps": 1,
    }
    inputs = [helper.make_tensor_value_info(x, float_type, ["N", model.n_inputs])]
    inputs += [
        helper.make_tensor_value_info(state[name], float_type, ["N", sizes[name]])
        for name in names
    ]
    if model.classes is None:
        regressor_head(g, z, unique("variable"))
        outputs = [
            helper.make_tensor_value_info(
                "variable", float_type, ["N", model.n_outputs]
            )
        ]
    else:
        classifier_head(g, model, z, unique("label"), unique("probabilities"))
        label_type = (
            onnx.TensorProto.STRING
            if label_type_is_string(model.classes)
            else onnx.TensorProto.INT64
        )
        outputs = [
            helper.make_tensor_value_info("label", label_type, ["N"]),
            helper.make_tensor_value_info(
                "probabilities", float_type, ["N", len(model.classes)]
            ),
        ]
    for name in names:
        out = unique(f"{name}_next")
        g.op("Identity", new[name], outputs=[out])
        outputs.append(
            helper.make_tensor_value_info(out, float_type, ["N", sizes[name]])
        )
    graph = helper.make_graph(
        g.nodes, f"{type(estimator).__name__}_step", inputs, outputs, g.initializers
    )
    opset = [helper.make_opsetid("", int(target_opset))]
    onx = helper.make_model(
        graph, opset_imports=opset, producer_name="skrtrl", doc_string=_step_doc(model)
    )
    onx.ir_version = helper.find_min_ir_version_for(opset)
    return onx


def _step_doc(model):
    state = ", ".join(step_state_names(model))
    return (
        f"One step of a fitted skrtrl {model.cell} cell: inputs X and the "
        f"state ({state}); outputs the prediction and the new state."
    )


def initial_step_state(estimator, n_streams=1, *, dtype=np.float32):
    """The state inputs of :func:`onnx_step_model` to start streams from.

    Zeros, as every sequence starts in skrtrl; for a stateful estimator the
    current stream state (its hidden state, and with output feedback the
    value it would feed back next), so that the step model continues the
    stream where the estimator is. A pooled readout starts from no steps:
    ``pool`` zeros for ``pooling="mean"`` and ``"mean+last"`` (and
    ``steps`` zero), -inf for ``"max"``.

    Parameters
    ----------
    estimator : RTRLRegressor or RTRLClassifier
        A fitted estimator.
    n_streams : int, default=1
        Number of streams N (rows of each array).
    dtype : {np.float32, np.float64}, default=np.float32
        Type of the arrays; the step model's dtype.

    Returns
    -------
    state : dict of str to ndarray
        ``"h"`` (and ``"c"`` for the LSTMs, ``"feedback"`` with output
        feedback, ``"pool"`` and for the two means ``"steps"`` with a
        pooled readout), each of shape (n_streams, size), ready to pass to the
        step model's ``run`` together with ``"X"``.

    Examples
    --------
    >>> import numpy as np
    >>> from skrtrl import RTRLRegressor
    >>> from skrtrl.export import initial_step_state
    >>> X = np.random.RandomState(0).normal(size=(20, 1))
    >>> reg = RTRLRegressor(n_hidden=3, cell="lstm", stateful=True, max_iter=2)
    >>> reg = reg.fit(X, X[:, 0])
    >>> {name: value.shape for name, value in initial_step_state(reg, 2).items()}
    {'h': (2, 3), 'c': (2, 3)}
    """
    dtype = _check_dtype(dtype)
    if not (isinstance(n_streams, int | np.integer) and n_streams >= 1):
        raise ValueError(f"n_streams must be a positive integer; got {n_streams!r}.")
    model = describe(estimator)
    return {
        name: np.tile(model.state[name].astype(dtype), (int(n_streams), 1))
        for name in step_state_names(model)
    }
