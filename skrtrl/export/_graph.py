"""ONNX graphs of a fitted recurrent net, built node by node.

Two ways to run the recurrence over a whole sequence:

* ONNX's own ``RNN``, ``GRU`` and ``LSTM`` operators, for the Elman, GRU
  and LSTM cells without output feedback. Their equations are those of the
  cells once the gates are reordered (ONNX stacks the GRU's gates as z, r, h
  and the LSTM's as i, o, f, c, torch r, z, n and i, f, g, o) and the GRU
  applies its reset gate after the recurrent product (``linear_before_reset=1``,
  torch's GRU). The Elman cell's activations map to ``Tanh``, ``Relu``,
  ``Sigmoid`` and ``Affine`` with slope 1 and offset 0 (identity).
  onnxruntime implements these operators in float32 and time-major layout
  only, so the graph transposes the batch-first input.
* A ``Scan`` loop whose body is one step of the cell written out in
  elementary operators (:func:`cell_step`): every cell, output feedback
  (the body feeds the linked readout into the next step) and float64. The
  element-wise cells (diagonal, element-wise GRU and LSTM, the LRU and the
  gated LRU) always take this path: ONNX's operators have a full recurrent
  matrix, and the body multiplies h unit by unit instead. The LRUs' body
  carries their complex h as [Re h, Im h] and reads out their output map y.

Variable lengths: the ONNX operators take ``sequence_lens`` and hold the
state of a finished sequence; the Scan body does the same with a mask, so
the padding values never reach a state that is read. Per-step outputs past
a sequence's end are padding and mean nothing.

Pooled readouts (``pooling="mean"``, ``"max"`` or ``"mean+last"``): both
paths give what the readout reads at every step, (T, N, n), h or the LRUs'
output map y, and :func:`pool` reduces it over time, over each sequence's
valid steps only (``"mean+last"`` puts the value at each sequence's last
valid step, divided by its length, after the mean).
"""

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from ..inspection._cell_steps import lru_exp, lru_lambda
from ._model import CELLS_WITH_MEMORY

#: The LRU's parameters stored as logarithms.
LRU_LOGS = ("nu_log", "theta_log", "gamma_log")

ONNX_FLOAT_TYPES = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float64): TensorProto.DOUBLE,
}
#: torch's gate blocks in the order ONNX stacks them.
ONNX_GATE_ORDER = {"elman": [0], "gru": [1, 0, 2], "lstm": [0, 3, 1, 2]}
ONNX_RECURRENT_OPS = {"elman": "RNN", "gru": "GRU", "lstm": "LSTM"}
ELEMENTWISE = {"tanh": "Tanh", "logistic": "Sigmoid", "relu": "Relu"}


class GraphBuilder:
    """Collects nodes and constants under names that ``unique`` makes unique.

    In a subgraph (a Scan body) constants become ``Constant`` nodes, so that
    the body is self-contained; in the main graph they are initializers.
    """

    def __init__(self, dtype, unique, *, subgraph=False, opset=None):
        self.dtype = np.dtype(dtype)
        self.unique = unique
        self.subgraph = subgraph
        #: Target opset of the main domain; None for the latest.
        self.opset = opset
        self.nodes = []
        self.initializers = []

    @property
    def onnx_type(self):
        return ONNX_FLOAT_TYPES[self.dtype]

    def const(self, value, name="const"):
        """A constant holding ``value``: floats in the graph's dtype."""
        array = np.asarray(value)
        if array.dtype.kind == "f":
            array = array.astype(self.dtype)
        elif array.dtype.kind in "US":
            array = array.astype(object)
        out = self.unique(name)
        tensor = numpy_helper.from_array(array, out)
        if self.subgraph:
            self.nodes.append(
                helper.make_node(
                    "Constant", [], [out], name=self.unique("Constant"), value=tensor
                )
            )
        else:
            self.initializers.append(tensor)
        return out

    def ints(self, values, name="ints"):
        return self.const(np.asarray(values, dtype=np.int64), name)

    def op(self, op_type, *inputs, outputs=None, n_outputs=1, **attrs):
        """Add one node; returns its output name (a tuple for several)."""
        if outputs is None:
            outputs = [self.unique(op_type.lower()) for _ in range(n_outputs)]
        self.nodes.append(
            helper.make_node(
                op_type, list(inputs), list(outputs), name=self.unique(op_type), **attrs
            )
        )
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def reduce(self, op_type, x, axes, keepdims=0):
        """A ``Reduce*`` node over ``axes``.

        The axes are an input from opset 18 on (from 13 on for
        ``ReduceSum``) and an attribute before.
        """
        since = 13 if op_type == "ReduceSum" else 18
        if self.opset is None or self.opset >= since:
            return self.op(op_type, x, self.ints(axes, "axes"), keepdims=keepdims)
        return self.op(op_type, x, axes=list(axes), keepdims=keepdims)

    def sub(self):
        """A builder for a subgraph sharing this builder's names."""
        return GraphBuilder(self.dtype, self.unique, subgraph=True, opset=self.opset)


def counter_names():
    """A ``unique`` function for graphs built outside skl2onnx."""
    used = {}

    def unique(prefix):
        used[prefix] = used.get(prefix, -1) + 1
        return prefix if used[prefix] == 0 else f"{prefix}_{used[prefix]}"

    return unique


# -- one step ----------------------------------------------------------------


def _linear(g, x, weight, bias=None):
    """``x @ weight.T + bias`` over the last axis."""
    y = g.op("MatMul", x, g.const(np.ascontiguousarray(weight.T), "weight"))
    if bias is not None:
        y = g.op("Add", y, g.const(bias, "bias"))
    return y


def _activation(g, name, a):
    if name == "identity":
        return a
    return g.op(ELEMENTWISE[name], a)


def _split(g, a, parts, size):
    return g.op("Split", a, g.ints([size] * parts), n_outputs=parts, axis=-1)


def input_weights(model):
    """Weights of the cell's input: ``[W_ih | W_fb]`` with output feedback."""
    p = model.params
    if model.feedback:
        return np.hstack([p["weight_ih"], p["weight_fb"]])
    return p["weight_ih"]


def _recurrent(g, model, h, gates):
    """The gates' recurrent terms (N, gates n) without bias.

    ``h @ weight_hh.T`` for the GRU and LSTM; for their element-wise
    variants ``weight_hh`` is one vector (gates n,) and each gate's block
    multiplies h unit by unit, so h is repeated once per gate.
    """
    weight_hh = model.params["weight_hh"]
    if weight_hh.ndim == 2:
        return _linear(g, h, weight_hh)
    tiled = g.op("Concat", *([h] * gates), axis=-1)
    return g.op("Mul", tiled, g.const(weight_hh, "weight_hh"))


def cell_step(g, model, x, state):
    """One step of the cell from ``state`` on inputs ``x`` (N, m).

    ``state`` maps ``"h"`` (and ``"c"`` for the LSTMs, ``"feedback"`` with
    output feedback) to names of (N, n) and (N, n_outputs) tensors; the
    LRUs' ``"h"`` is [Re h, Im h], (N, 2n). Returns the new ``"h"`` (and
    ``"c"``; the LRUs' output map ``"y"``, (N, n), which their readout
    reads) and the readout pre-activation z (N, o); z is None with a pooled
    readout, which reads the pooling over the steps (:func:`pool`,
    :func:`pool_step`), not one step (for ``"mean+last"`` its weights do
    not even fit one step's values).
    """
    p, n = model.params, model.n_hidden
    h = state["h"]
    inputs = x
    if model.feedback:
        inputs = g.op("Concat", x, state["feedback"], axis=-1)
    if model.is_lru:
        new = _lru_step(g, model, inputs, h)
        return new, _step_readout(g, model, new["y"])
    W_in = input_weights(model)
    new = {}
    if model.cell == "elman":
        a = g.op(
            "Add",
            _linear(g, inputs, W_in, p["bias_ih"] + p["bias_hh"]),
            _linear(g, h, p["weight_hh"]),
        )
        new["h"] = _activation(g, model.activation, a)
    elif model.cell == "diagonal":
        a = g.op(
            "Add",
            _linear(g, inputs, W_in, p["bias_ih"] + p["bias_hh"]),
            g.op("Mul", h, g.const(p["weight_hh"], "weight_hh")),
        )
        new["h"] = _activation(g, model.activation, a)
    elif model.cell in ("gru", "egru"):
        gi_r, gi_z, gi_n = _split(g, _linear(g, inputs, W_in, p["bias_ih"]), 3, n)
        gh = g.op("Add", _recurrent(g, model, h, 3), g.const(p["bias_hh"], "bias"))
        gh_r, gh_z, gh_n = _split(g, gh, 3, n)
        r = g.op("Sigmoid", g.op("Add", gi_r, gh_r))
        z = g.op("Sigmoid", g.op("Add", gi_z, gh_z))
        cand = g.op("Tanh", g.op("Add", gi_n, g.op("Mul", r, gh_n)))
        # (1 - z) * cand + z * h
        new["h"] = g.op("Add", cand, g.op("Mul", z, g.op("Sub", h, cand)))
    else:
        a = g.op(
            "Add",
            _linear(g, inputs, W_in, p["bias_ih"] + p["bias_hh"]),
            _recurrent(g, model, h, 4),
        )
        a_i, a_f, a_g, a_o = _split(g, a, 4, n)
        c_new = g.op(
            "Add",
            g.op("Mul", g.op("Sigmoid", a_f), state["c"]),
            g.op("Mul", g.op("Sigmoid", a_i), g.op("Tanh", a_g)),
        )
        new["h"] = g.op("Mul", g.op("Sigmoid", a_o), g.op("Tanh", c_new))
        new["c"] = c_new
    return new, _step_readout(g, model, new["h"])


def _step_readout(g, model, value):
    """The readout of one step's ``value``; None for a pooled readout."""
    return readout(g, model, value) if model.pooling == "last" else None


def lru_constants(params):
    """The LRU's lambda (its real and imaginary parts) and gamma, (n,) each,
    from the logarithms read clipped as the cell reads them. In float64:
    :meth:`GraphBuilder.const` rounds them once to the graph's dtype."""
    p64 = {name: params[name].astype(np.float64) for name in LRU_LOGS}
    re, im, _, _ = lru_lambda(p64)
    return re, im, lru_exp(p64["gamma_log"])[0]


def _lru_step(g, model, inputs, h):
    """The LRUs' new [Re h, Im h] and output map y from ``inputs`` [x, f].

    h_t = lambda h_{t-1} + gamma B x_t in real arithmetic: with lambda = a +
    ib, Re h_t = a Re h - b Im h + gamma Re(B x) and Im h_t = b Re h + a Im h
    + gamma Im(B x), so [a, a] * [Re h, Im h] + [-b, b] * [Im h, Re h] plus
    one product of the inputs with gamma [B_re; B_im]. The gated LRU
    multiplies that product by its gate [g, g] (each unit's gate scales
    both parts of what it stores).
    """
    p, n = model.params, model.n_hidden
    a, b, gamma = lru_constants(p)
    weight_in = np.tile(gamma, 2)[:, None] * np.vstack([p["B_re"], p["B_im"]])
    stored = _linear(g, inputs, weight_in)
    if model.cell == "glru":
        gate = g.op("Sigmoid", _linear(g, inputs, p["weight_gate"], p["bias_gate"]))
        stored = g.op("Mul", stored, g.op("Concat", gate, gate, axis=-1))
    h_re, h_im = _split(g, h, 2, n)
    rotated = g.op(
        "Add",
        g.op("Mul", h, g.const(np.concatenate([a, a]), "lambda_re")),
        g.op(
            "Mul",
            g.op("Concat", h_im, h_re, axis=-1),
            g.const(np.concatenate([-b, b]), "lambda_im"),
        ),
    )
    h_new = g.op("Add", rotated, stored)
    # Re(C h) = C_re Re h - C_im Im h: one product with [C_re, -C_im].
    a_y = g.op(
        "Add",
        _linear(g, h_new, np.hstack([p["C_re"], -p["C_im"]])),
        _linear(g, inputs, p["D"], p["bias_y"]),
    )
    return {"h": h_new, "y": _activation(g, model.activation, a_y)}


def read_name(model):
    """The name of what the readout reads of a step: h, or the LRUs' y."""
    return "y" if model.is_lru else "h"


def read_value(model, new):
    """What the readout reads of a step's new state ``new`` (:func:`read_name`)."""
    return new[read_name(model)]


def readout(g, model, h):
    """Readout pre-activations ``h @ weight_out.T + bias_out``."""
    return _linear(g, h, model.params["weight_out"], model.params["bias_out"])


def link(g, model, z):
    """The value fed back: the prediction, or the class probabilities.

    The logistic link gives one column, the probability of ``classes_[1]``.
    """
    if model.link == "identity":
        return z
    if model.link == "logistic":
        return g.op("Sigmoid", z)
    return g.op("Softmax", z, axis=-1)


def state_names(model):
    """The state entries of a step of the cell, in a fixed order."""
    names = ["h"]
    if model.cell in CELLS_WITH_MEMORY:
        names.append("c")
    if model.feedback:
        names.append("feedback")
    return names


def step_state_names(model):
    """The state of the one-step model: the cell's, then the pooling's.

    A pooled readout also carries the running sum of what the readout reads
    (``"pool"``, of h, or of the LRUs' y) and the number of steps so far
    (``"steps"``) for ``"mean"`` and ``"mean+last"`` (whose last part is
    the step's own value, nothing to carry), or each unit's running maximum
    (``"pool"``) for ``"max"``.
    """
    names = state_names(model)
    if model.pooling in ("mean", "mean+last"):
        names += ["pool", "steps"]
    elif model.pooling == "max":
        names.append("pool")
    return names


def pool_step(g, model, state, h):
    """One step of a pooled readout, for the one-step model.

    From ``state``'s ``"pool"`` (and ``"steps"``) and h, what the readout
    reads of the new step (:func:`read_value`), returns the new ``{"pool":
    ...}`` (and ``"steps"``) and the pooled value so far: its running mean
    or maximum over the steps taken (for ``"mean+last"`` the running mean
    followed by h, this step's value, divided by the steps taken), what
    :func:`pool` gives for the sequence up to this step.
    """
    new = {}
    if model.pooling == "max":
        new["pool"] = g.op("Max", state["pool"], h)
        return new, new["pool"]
    new["pool"] = g.op("Add", state["pool"], h)
    new["steps"] = g.op("Add", state["steps"], g.const(np.ones(1), "one"))
    mean = g.op("Div", new["pool"], new["steps"])
    if model.pooling == "mean+last":
        last = g.op("Div", h, new["steps"])
        return new, g.op("Concat", mean, last, axis=-1)
    return new, mean


# -- whole sequences -----------------------------------------------------------


def uses_recurrent_operator(model, dtype, scan):
    """Whether ONNX's RNN / GRU / LSTM operator can run this model."""
    return (
        not scan
        and not model.feedback
        and model.cell in ONNX_RECURRENT_OPS
        and np.dtype(dtype) == np.float32
    )


def sequence_outputs(g, model, X, lengths=None, *, scan=False):
    """Readout pre-activations of whole sequences.

    ``X`` is (N, T) for a model fitted on 2D X, (N, T, m) otherwise, (T, m)
    for a stream; ``lengths`` (N,) int, optional. Returns the name of z:
    (N, T, o) per step, (N, o) after the last step or of the pooled values
    (hidden states, the LRUs' output maps), (T, o) for a stream.
    """
    if model.input_kind == "2d":
        X_tm = g.op("Unsqueeze", g.op("Transpose", X, perm=[1, 0]), g.ints([2]))
    elif model.input_kind == "stream":
        X_tm = g.op("Unsqueeze", X, g.ints([1]))
    else:
        X_tm = g.op("Transpose", X, perm=[1, 0, 2])
    pooled = model.pooling != "last"
    if uses_recurrent_operator(model, g.dtype, scan):
        H, h_last = _recurrent_operator(g, model, X_tm, lengths)
        Z = readout(g, model, H) if model.per_step else None
    else:
        steps, h_last = _scan(g, model, X_tm, lengths, hidden=pooled)
        H, Z = (steps, None) if pooled else (None, steps)
    if pooled:
        return readout(g, model, pool(g, model, H, lengths))
    if not model.per_step:
        return readout(g, model, h_last)
    if model.input_kind == "stream":
        return g.op("Squeeze", Z, g.ints([1]))
    return g.op("Transpose", Z, perm=[1, 0, 2])


def pool(g, model, H, lengths=None):
    """The pooled values of H (T, N, n), what the readout reads.

    H holds the hidden states, or the LRUs' output maps y. ``model.pooling``
    ``"mean"`` averages each sequence's values over its own steps (the sum
    over the valid steps divided by its length); ``"max"`` takes each
    unit's maximum over the valid steps; ``"mean+last"`` puts the value at
    each sequence's last valid step, ``lengths[i] - 1``, divided by the
    length, after the mean. Returns (N, n), or (N, 2n) for ``"mean+last"``.
    Without ``lengths`` every sequence has T steps. ``Where`` keeps the
    padded steps out without arithmetic, so whatever they hold (even NaN)
    does not reach the result.
    """
    if model.pooling == "mean+last":
        mean = _pool_over_time(g, "mean", H, lengths)
        last = g.op("Div", _last_valid(g, H, lengths), _step_counts(g, H, lengths))
        return g.op("Concat", mean, last, axis=-1)
    return _pool_over_time(g, model.pooling, H, lengths)


def _step_counts(g, H, lengths):
    """How many steps each sequence of H (T, N, n) has, in the graph's
    float type: ``lengths`` as (N, 1), or T without them."""
    if lengths is None:
        steps = g.op("Gather", g.op("Shape", H), g.ints(0, "zero_axis"), axis=0)
        return g.op("Cast", steps, to=g.onnx_type)
    steps = g.op("Cast", lengths, to=g.onnx_type)
    return g.op("Unsqueeze", steps, g.ints([1]))


def _pool_over_time(g, pooling, H, lengths):
    """The mean or maximum (N, n) of H (T, N, n) over the valid steps."""
    if lengths is None:
        op_type = {"mean": "ReduceMean", "max": "ReduceMax"}[pooling]
        return g.reduce(op_type, H, [0])
    valid = _valid_steps(g, H, lengths)
    if pooling == "max":
        lowest = g.const(np.array(-np.inf), "minus_inf")
        return g.reduce("ReduceMax", g.op("Where", valid, H, lowest), [0])
    total = g.reduce("ReduceSum", g.op("Where", valid, H, g.const(0.0, "zero")), [0])
    return g.op("Div", total, _step_counts(g, H, lengths))


def _last_valid(g, H, lengths):
    """H (T, N, n) at each sequence's last valid step: (N, n).

    Step ``lengths[i] - 1`` of sequence i, gathered batch by batch
    (``GatherND`` with ``batch_dims=1`` over H batch first), so nothing of
    the padding is read; the last step T - 1 without ``lengths``.
    """
    if lengths is None:
        return g.op("Gather", H, g.ints(-1, "last"), axis=0)
    last = g.op(
        "Sub",
        g.op("Cast", lengths, to=TensorProto.INT64),
        g.const(np.int64(1), "one"),
    )
    return g.op(
        "GatherND",
        g.op("Transpose", H, perm=[1, 0, 2]),
        g.op("Unsqueeze", last, g.ints([1])),
        batch_dims=1,
    )


def _valid_steps(g, X_tm, lengths):
    """(T, N, 1) bool: whether step t is within sequence i's length."""
    steps = g.op(
        "Range",
        g.const(np.int64(0), "zero"),
        g.op("Squeeze", g.op("Gather", g.op("Shape", X_tm), g.ints([0])), g.ints([0])),
        g.const(np.int64(1), "one"),
    )
    running = g.op(
        "Less",
        g.op("Unsqueeze", steps, g.ints([1])),
        g.op("Unsqueeze", g.op("Cast", lengths, to=TensorProto.INT64), g.ints([0])),
    )
    return g.op("Unsqueeze", running, g.ints([2]))


def _recurrent_operator(g, model, X_tm, lengths):
    """Hidden states (T, N, n) and the last ones (N, n) from RNN/GRU/LSTM."""
    p, n, cell = model.params, model.n_hidden, model.cell
    order = ONNX_GATE_ORDER[cell]

    def reorder(array):
        blocks = np.split(array, len(order), axis=0)
        return np.concatenate([blocks[k] for k in order], axis=0)[None]

    bias = np.concatenate([reorder(p["bias_ih"])[0], reorder(p["bias_hh"])[0]])
    inputs = [
        X_tm,
        g.const(reorder(p["weight_ih"]), "W"),
        g.const(reorder(p["weight_hh"]), "R"),
        g.const(bias[None], "B"),
    ]
    if lengths is not None:
        inputs.append(g.op("Cast", lengths, to=TensorProto.INT32))
    if model.stateful:
        # One stream of T steps (an omitted optional input, named "", would
        # not survive skl2onnx's topological sort), from the estimator's
        # current state.
        steps = g.op("Gather", g.op("Shape", X_tm), g.ints([0]))
        inputs.append(g.op("Cast", steps, to=TensorProto.INT32))
        inputs.append(g.const(model.state["h"][None, None], "initial_h"))
        if cell == "lstm":
            inputs.append(g.const(model.state["c"][None, None], "initial_c"))
    attrs = {"hidden_size": n}
    if cell == "elman":
        if model.activation == "identity":
            attrs.update(
                activations=["Affine"], activation_alpha=[1.0], activation_beta=[0.0]
            )
        else:
            attrs["activations"] = [ELEMENTWISE[model.activation]]
    elif cell == "gru":
        attrs["linear_before_reset"] = 1
    outputs = g.op(
        ONNX_RECURRENT_OPS[cell],
        *inputs,
        n_outputs=3 if cell == "lstm" else 2,
        **attrs,
    )
    Y, Y_h = outputs[0], outputs[1]
    # Y: (T, directions=1, N, n); Y_h: (1, N, n).
    return g.op("Squeeze", Y, g.ints([1])), g.op("Squeeze", Y_h, g.ints([0]))


def _scan(g, model, X_tm, lengths, *, hidden=False):
    """A Scan loop over the steps: per-step outputs (T, N, .) and the last h.

    The per-step outputs are the readouts (T, N, o), or with ``hidden`` what
    the readout reads (T, N, n): the hidden states, the LRUs' output maps y.
    What is returned as the last h is what the readout reads: the LRUs'
    last output map y, which the loop carries beside the state (held, like
    the state, past a sequence's end).
    """
    names = state_names(model)
    if model.is_lru:
        names.append("y")
    batch = g.op("Gather", g.op("Shape", X_tm), g.ints([1]))
    initial = []
    for name in names:
        # y is overwritten at the first step, which every sequence has.
        start = model.state.get(name, np.zeros(model.n_hidden, model.dtype))[None]
        size = g.ints([start.shape[1]])
        initial.append(
            g.op(
                "Expand",
                g.const(start, f"{name}0"),
                g.op("Concat", batch, size, axis=0),
            )
        )
    scan_inputs = [X_tm]
    if lengths is not None:
        scan_inputs.append(_valid_steps(g, X_tm, lengths))
    body = _scan_body(g, model, names, masked=lengths is not None, hidden=hidden)
    outputs = g.op(
        "Scan",
        *initial,
        *scan_inputs,
        n_outputs=len(names) + 1,
        num_scan_inputs=len(scan_inputs),
        body=body,
    )
    return outputs[-1], outputs[names.index(read_name(model))]


def _scan_body(g, model, names, *, masked, hidden=False):
    b = g.sub()
    old = {name: b.unique(f"{name}_prev") for name in names}
    x = b.unique("x_t")
    mask = b.unique("mask_t") if masked else None
    new, z = cell_step(b, model, x, old)
    if model.feedback:
        new["feedback"] = link(b, model, z)
    step_output = read_value(model, new) if hidden else z
    if mask is not None:
        # A finished sequence keeps its state. Where selects without
        # arithmetic, so whatever the padding gives (even inf or NaN) stays
        # out of the held state.
        new = {name: b.op("Where", mask, new[name], old[name]) for name in names}
    outputs = [new[name] for name in names] + [step_output]
    # A body output must be produced by its own node.
    seen = set()
    for i, name in enumerate(outputs):
        if name in seen or name in old.values():
            outputs[i] = b.op("Identity", name)
        seen.add(outputs[i])

    # Every value is (N, size). onnxruntime's Scan needs the body outputs'
    # shapes, which it cannot always infer from the outer graph (behind a
    # StandardScaler in a pipeline, for one).
    n = model.n_hidden
    sizes = {"h": model.n_state, "c": n, "y": n, "feedback": model.n_outputs}
    step_size = n if hidden else model.n_outputs
    n_features = 1 if model.input_kind == "2d" else model.n_inputs

    def value(name, size, elem_type=b.onnx_type):
        return helper.make_tensor_value_info(name, elem_type, [None, size])

    inputs = [value(old[name], sizes[name]) for name in names]
    inputs.append(value(x, n_features))
    if mask is not None:
        inputs.append(value(mask, 1, TensorProto.BOOL))
    body_outputs = [
        value(name, size)
        for name, size in zip(outputs, [sizes[name] for name in names] + [step_size])
    ]
    return helper.make_graph(b.nodes, b.unique("rtrl_step"), inputs, body_outputs)
