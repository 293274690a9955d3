"""Stacked layers: ``n_hidden`` as a tuple of layer sizes, bottom to top.

Layer l is one cell (the estimator's ``cell``: one name for every layer, or
a tuple of names, one per layer, bottom to top) with ``n_hidden[l]`` units;
it reads layer l-1's output y (h, or an LRU layer's output map; the bottom
layer reads the data) and the readout reads the top layer's.
:class:`StackCell` offers the interface of :class:`skrtrl._cells.Cell` over
one flat parameter vector::

    [theta^0 | theta^1 | ... | theta^{L-1} | weight_out | bias_out],

each theta^l laid out as its layer's cell lays out its own (the kernels'
row-major matrix, then ``bias_hh`` for the cells that keep it apart), so
that ``params_`` shows every layer under torch's names with torch's
``_l<k>`` suffix for multi-layer recurrent modules
(``weight_ih_l0``, ``weight_hh_l1`` ...), then ``weight_out`` and
``bias_out``.

Three gradient methods have kernels (``skrtrl/_kernels/_stack.pyx``, where
the maths and the costs are): exact RTRL through the stack
(``gradient="rtrl"``), which also carries the influence of each layer's
parameters on the layers above (and on the output maps of LRU layers),
the layer-local online approximation (``gradient="local"``), which keeps
each layer's own influence and sends the error down through the current
step only, and full BPTT over
minibatches. Element-wise layers keep their own influence per unit; the
fully connected ones keep it dense (in a mixed stack each layer as its
cell asks), at exact RTRL's usual O(n^4) per
step, and the resource check refuses what cannot fit.

A pooled readout (``pooling="mean"`` or ``"max"``) reads the mean or each
unit's maximum of the top layer's y over the sequence: exact RTRL carries
the running sum (or the per-unit argmax copy) of the top layer's influence
rows on every layer's parameters, BPTT injects the pooled error at every
step of the top layer. The layer-local approximation has no pooled form
(``LOCAL_POOLING``, which ``skrtrl._settings.pooling_refusal`` gives).
"""

import numpy as np

from ._cells import ACTIVATIONS, CELLS, LOSSES, POOLINGS, allocate
from ._kernels._stack import (
    stack_bptt_minibatch,
    stack_bptt_sizes,
    stack_pool_size,
    stack_rtrl_minibatch,
    stack_rtrl_online,
    stack_sizes,
)
from ._parallel import blas_single_threaded

#: The cells that stack: each layer's output y (h, or the LRUs' output
#: map) is read by the layer above.
STACK_CELLS = ("elman", "diagonal", "gru", "lstm", "egru", "elstm", "lru", "glru")
#: Gradient methods of stacks, and the training modes of each (output
#: feedback is not supported yet; BPTT through a stack is full BPTT over
#: minibatches of sequences).
STACK_GRADIENTS = ("rtrl", "local", "bptt")
#: The poolings a stack's readout reads (the mean beside the last state,
#: a readout of 2n inputs, is for one layer).
STACK_POOLINGS = ("last", "mean", "max")
STACK_MODES = {
    "rtrl": ("minibatch", "step", "stream"),
    "local": ("minibatch", "step", "stream"),
    "bptt": ("minibatch",),
}
#: Layers a stack may have (the kernels' fixed bound).
MAX_LAYERS = 16
#: Why the layer-local approximation refuses a pooled readout.
LOCAL_POOLING = (
    "the layer-local approximation sends each step's error down through "
    "that step only, but a pooled readout's error arrives at the sequence "
    "end, for every step at once; sending it down would take, for every "
    "lower layer, the running sum of its influence on the top layer, which "
    "is exact RTRL's memory. Use gradient='rtrl' (exact) or 'bptt' with "
    "pooling, or pooling='last' with gradient='local'"
)


def layer_sizes(n_hidden):
    """``n_hidden`` (an int or a sequence of ints) as a tuple of sizes.

    Raises ValueError for an empty sequence, sizes that are not positive
    integers, or more than ``MAX_LAYERS`` layers.
    """
    if isinstance(n_hidden, (int, np.integer)) and not isinstance(n_hidden, bool):
        sizes = (int(n_hidden),)
    else:
        try:
            sizes = tuple(n_hidden)
        except TypeError:
            sizes = ()
        if not sizes:
            raise ValueError(
                "n_hidden must be a positive int (one layer) or a non-empty "
                f"tuple of positive ints (layer sizes, bottom to top); got "
                f"{n_hidden!r}."
            )
    for size in sizes:
        if (
            isinstance(size, bool)
            or not isinstance(size, (int, np.integer))
            or size < 1
        ):
            raise ValueError(
                "n_hidden must be a positive int or a tuple of positive ints "
                f"(layer sizes, bottom to top); got {n_hidden!r}."
            )
    if len(sizes) > MAX_LAYERS:
        raise ValueError(
            f"n_hidden has {len(sizes)} layers; a stack has at most {MAX_LAYERS}."
        )
    return tuple(int(size) for size in sizes)


def layer_cells(cell, n_hidden):
    """``cell`` as one name per layer of ``n_hidden``, bottom to top.

    A str names every layer's cell; a tuple (or list) names each layer's and
    needs a tuple (or list) ``n_hidden`` of as many layers. Raises
    ValueError otherwise, or for a name of a cell that does not stack.
    """
    sizes = layer_sizes(n_hidden)
    if isinstance(cell, str):
        return (cell,) * len(sizes)
    names = tuple(cell)
    if isinstance(n_hidden, (int, np.integer)) or len(names) != len(sizes):
        raise ValueError(
            "A tuple cell names the cell of each stacked layer, bottom to top, "
            "and needs a tuple n_hidden of the same length (one size per "
            f"layer); got cell={cell!r} and n_hidden={n_hidden!r}."
        )
    unknown = [name for name in names if name not in STACK_CELLS]
    if unknown:
        raise ValueError(
            f"cell={cell!r}: every layer's cell must be one of the cells that "
            f"stack, {STACK_CELLS}; got {', '.join(map(repr, unknown))}."
        )
    return names


def is_mixed(cell):
    """Whether ``cell`` (an estimator's) names a cell per layer."""
    return not isinstance(cell, str)


def is_stack(params):
    """Whether the estimator ``params`` train a :class:`StackCell`: more than
    one layer, the layer-local gradient (which only stacks have), or a cell
    named per layer (a tuple ``cell``)."""
    return (
        len(layer_sizes(params.n_hidden)) > 1
        or params.gradient == "local"
        or is_mixed(params.cell)
    )


def check_stack_settings(params, modes):
    """ValueError, naming what works, for a stack that cannot train so."""
    sizes = layer_sizes(params.n_hidden)
    what = (
        f"n_hidden={params.n_hidden!r}"
        if len(sizes) > 1
        else f"gradient={params.gradient!r}"
    )
    if is_mixed(params.cell):
        layer_cells(params.cell, params.n_hidden)
    elif params.cell not in STACK_CELLS:
        raise ValueError(
            f"{what} (stacked layers) supports cell in {STACK_CELLS}; got "
            f"cell={params.cell!r}."
        )
    if params.gradient not in STACK_GRADIENTS:
        raise ValueError(
            f"{what} (stacked layers) supports gradient in {STACK_GRADIENTS}; "
            f"got gradient={params.gradient!r}."
        )
    if params.gradient == "bptt" and params.truncation is not None:
        raise ValueError(
            f"{what} (stacked layers) with gradient='bptt' backpropagates "
            "through whole sequences; truncation must be None (got "
            f"truncation={params.truncation!r})."
        )
    for mode in modes:
        if mode in ("feedback", "free_running"):
            raise ValueError(
                f"{what} (stacked layers) does not support output feedback "
                f"yet (training mode {mode!r}). Use output_feedback=False, or "
                "one layer (an int n_hidden)."
            )
        if mode not in STACK_MODES[params.gradient]:
            supported = [g for g in STACK_GRADIENTS if mode in STACK_MODES[g]]
            raise ValueError(
                f"{what} (stacked layers) with gradient={params.gradient!r} "
                f"does not support training mode {mode!r}; the gradient "
                f"methods of stacks that support it are {supported}."
            )


class StackCell:
    """Layers of cells, each reading the h of the one below.

    Parameters
    ----------
    name : str or tuple of str
        The cell of every layer, or of each layer, bottom to top (names in
        ``STACK_CELLS``).
    sizes : tuple of int
        Units per layer, bottom to top.
    n_inputs, n_outputs : int
        Inputs per step and outputs.
    gradient : {"rtrl", "local", "bptt"}
        Exact RTRL through the stack, the layer-local approximation, or
        full BPTT (minibatches only).
    activation : str
        Key of ``ACTIVATIONS``, every layer's (the gated cells ignore it).
    pooling : str, default="last"
        Key of ``POOLINGS``: what the readout of a target per sequence reads
        of the top layer's output y (its last value, the mean over the
        sequence, or each unit's maximum); pooled readouts train by minibatches with
        ``gradient="rtrl"`` or ``"bptt"``.
    """

    gradients = STACK_GRADIENTS
    own_gradients = STACK_GRADIENTS
    #: Key of ``POOLINGS`` (a class default for stacks pickled before it).
    pooling = "last"
    #: What ``pooling="auto"`` reads of the top layer for a classifier
    #: (``Cell.auto_pooling``): each unit's maximum.
    auto_pooling = "max"
    #: Numbers of the pooled readout's accumulators per thread (likewise).
    _pool = 0

    def __init__(
        self, name, sizes, n_inputs, n_outputs, *, gradient="rtrl",
        activation="tanh", pooling="last",
    ):  # fmt: skip
        sizes = tuple(sizes)
        if is_mixed(name):
            cells = layer_cells(name, sizes)
            name = tuple(name)
        elif name not in STACK_CELLS:
            raise ValueError(f"cells that stack: {STACK_CELLS}; got {name!r}.")
        else:
            cells = (name,) * len(sizes)
        if gradient not in STACK_GRADIENTS:
            raise ValueError(
                f"stacks support gradient in {STACK_GRADIENTS}; got {gradient!r}."
            )
        if pooling not in STACK_POOLINGS:
            raise ValueError(f"pooling in {STACK_POOLINGS}; got {pooling!r}.")
        if pooling != "last" and gradient == "local":
            raise ValueError(f"pooling={pooling!r}: {LOCAL_POOLING}.")
        self.name = name
        #: Each layer's cell, bottom to top.
        self.cells = cells
        self.sizes = sizes
        self.n = self.sizes[-1]
        self.m = n_inputs
        self.o = n_outputs
        self.gradient = gradient
        self.activation = activation
        self.pooling = pooling
        classes = [CELLS[cell] for cell in cells]
        #: Each layer's kernel code, bottom to top.
        self.kind = tuple(cls.kind for cls in classes)
        self.elementwise = all(cls.elementwise for cls in classes)
        # BLAS threads help the dense influence products of fully connected
        # layers only: on an element-wise stack's matrix-vector products
        # they cost far more than they save (at n_hidden=(224, 224), one
        # kernel thread, 12 ms per sequence-step with them, most of it in
        # BLAS's thread server).
        full = [size for size, cls in zip(sizes, classes) if not cls.elementwise]
        self._blas_width = max(full, default=0)
        # Each layer's own cell gives its parameters' layout (theta, and
        # bias_hh where the cell keeps it apart) and its forward pass (no
        # readout of its own: n_outputs=0); the top layer's pools its h.
        self.layers = []
        below = n_inputs
        for k, (cls, size) in enumerate(zip(classes, self.sizes)):
            top = k == len(self.sizes) - 1
            self.layers.append(
                cls(size, below, 0, activation=activation,
                    pooling=pooling if top else "last")
            )  # fmt: skip
            below = size
        self._n_params, self._state, self._influence, self._scratch = stack_sizes(
            self.kind, self.sizes, n_inputs, n_outputs, gradient != "rtrl"
        )
        # A pooled readout's accumulators follow the influence in its rows
        # (minibatches only: streams and per-step updates are not pooled).
        self._pool = 0
        if pooling != "last" and gradient == "rtrl":
            self._pool = stack_pool_size(
                self.kind, self.sizes, n_inputs, n_outputs, False
            )
        self._theta = []
        pos = 0
        for layer in self.layers:
            size = layer.layout.size
            self._theta.append(slice(pos, pos + size))
            pos += size
        self._readout = pos
        self._states = []
        pos = 0
        for layer in self.layers:
            size = getattr(layer, "n_state", layer.n)
            self._states.append(slice(pos, pos + size))
            pos += size

    @property
    def n_hidden(self):
        """The ``n_hidden`` this cell was built for (an int for one layer)."""
        return self.sizes[0] if len(self.sizes) == 1 else self.sizes

    @classmethod
    def modes(cls, gradient):
        return STACK_MODES.get(gradient, ())

    # -- parameters ----------------------------------------------------------
    @property
    def n_params(self):
        return self._n_params

    def _readout_blocks(self, flat):
        pos, n, o = self._readout, self.n, self.o
        weight_out = flat[pos : pos + o * n].reshape(o, n)
        return weight_out, flat[pos + o * n : pos + o * n + o]

    def views(self, flat):
        """``params_``: every layer's torch-named views with the suffix
        ``_l<k>`` (k = 0 at the bottom), then ``weight_out``, ``bias_out``."""
        views = {}
        for k, (layer, part) in enumerate(zip(self.layers, self._theta)):
            for name, view in layer.views(flat[part]).items():
                if name not in ("weight_out", "bias_out"):
                    views[f"{name}_l{k}"] = view
        views["weight_out"], views["bias_out"] = self._readout_blocks(flat)
        return views

    def penalty_mask(self, dtype):
        """1 for the weights that L2 regularisation acts on, 0 for biases."""
        mask = np.zeros(self.n_params, dtype=dtype)
        for layer, part in zip(self.layers, self._theta):
            mask[part] = layer.penalty_mask(dtype)
        weight_out, _ = self._readout_blocks(mask)
        weight_out[...] = 1
        return mask

    def initialize(self, flat, random_state):
        """Uniform(-1/sqrt(n_l), 1/sqrt(n_l)) for layer l's entries (torch's
        rule per layer), 1/sqrt(n_top) for the readout; one draw, so that one
        layer starts where the single cell does. Then each LRU layer, bottom
        to top, takes the draws of its ring initialisation
        (``LRUCell.initialize_own``), as the single cell does after its
        uniform draw."""
        bound = np.empty(flat.shape[0])
        for layer, part in zip(self.layers, self._theta):
            bound[part] = 1.0 / np.sqrt(layer.n)
        bound[self._readout :] = 1.0 / np.sqrt(self.n)
        flat[:] = random_state.uniform(-bound, bound)
        for layer, part in zip(self.layers, self._theta):
            if layer.output_map:
                layer.initialize_own(flat[part], random_state)

    def readout(self, flat, H):
        """Readout pre-activations of the top layer's ``H``."""
        weight_out, bias_out = self._readout_blocks(flat)
        return H @ weight_out.T + bias_out

    # -- kernels -------------------------------------------------------------
    def workspace_shapes(self, batch_size, n_threads, longest=0):
        if self.gradient == "bptt":
            records, scratch = stack_bptt_sizes(
                self.kind, self.sizes, self.m, self.o, longest
            )
            return {
                "grad": ((batch_size, self.n_params), None),
                "loss": ((batch_size,), np.float64),
                "records": ((n_threads, max(1, records)), None),
                "scratch": ((n_threads, scratch), None),
            }
        return {
            "grad": ((batch_size, self.n_params), None),
            "loss": ((batch_size,), np.float64),
            "state": ((n_threads, self._state), None),
            "influence": ((n_threads, max(1, self._influence + self._pool)), None),
            "scratch": ((n_threads, self._scratch), None),
        }

    def workspace(self, batch_size, n_threads, dtype):
        return allocate(self.workspace_shapes(batch_size, n_threads), dtype)

    def state_shapes(self):
        return {
            "hidden": ((self._state,), None),
            "influence": ((max(1, self._influence),), None),
        }

    def online_shapes(self, longest=0):
        # What one train_online call allocates (the kernel's scratch and
        # gradient), for the resource estimate.
        return {
            "scratch": ((self._scratch,), None),
            "grad": ((self.n_params,), None),
        }

    def step_flops(self, online, longest=1):
        # The cost model of doc/performance.rst (stacks).
        W = [layer.layout.kernel_size for layer in self.layers]
        if self.gradient == "bptt":
            return 6 * sum(W)
        S = [getattr(layer, "n_state", layer.n) for layer in self.layers]
        ns = [s // n for s, n in zip(S, self.sizes)]
        unit = [layer.elementwise for layer in self.layers]
        # J^l times an influence: per unit (ns x ns blocks) or dense.
        mix = [k if e else s for k, s, e in zip(ns, S, unit)]
        flops = sum(
            2 * (k + 2) * k * w if e else 2 * s * s * w + 2 * s * w
            for k, s, w, e in zip(ns, S, W, unit)
        )
        if self.pooling != "last":
            # The pooled readout's pass over the top layer's influence rows.
            flops += self.n * (sum(W) if self.gradient == "rtrl" else 1)
        if self.gradient == "local":
            return flops
        # The LRUs' output maps (``_kernels/_stack.pyx``): y's rows of the
        # influences, Y^(l,k) = f' (C [Re; Im] M^(l,k) + D X), n_l (2 n_l +
        # m_l) multiply-adds per column, below the top (the top's for a
        # pooled readout only); the dense rows of an LRU layer's own under
        # another LRU layer's; and the layer above an LRU layer takes its
        # input term from the per-unit own influence, S n (2 n + q).
        maps = [layer.output_map for layer in self.layers]
        top = len(W) - 1
        pooled = self.pooling != "last"
        for upper in range(1, len(W)):
            for k in range(upper):
                # From an element-wise layer's own influence: one product
                # per entry (its rows move one unit each).
                per_unit = k == upper - 1 and unit[k] and not maps[k]
                inner = 1 if per_unit else self.sizes[upper - 1]
                if k == upper - 1 and maps[k]:
                    n, q = self.sizes[k], W[k] // self.sizes[k]
                    flops += 2 * S[upper] * (W[k] * mix[upper] + n * (2 * n + q))
                else:
                    flops += 2 * S[upper] * W[k] * (inner + mix[upper])
                if maps[upper] and (upper < top or pooled):
                    n, m = self.sizes[upper], self.layers[upper].m
                    flops += 2 * n * (2 * n + m) * W[k]
        for k in range(top):
            if maps[k] and maps[k + 1] and (k + 1 < top or pooled):
                flops += 4 * self.layers[k].n * W[k]
        # A target's gradient on the lower layers: g^T (h rows), or, under
        # an output map, gs^T M^(top,k) over all S_top rows.
        rows = S[top] if maps[top] else self.n
        return flops + 2 * rows * sum(W[:-1])

    def new_state(self, dtype):
        """Zero state of a stream: every layer's state (``"hidden"``, layer 0
        first) and the influence."""
        return allocate(self.state_shapes(), dtype, fill=0)

    def train_minibatch(self, flat, grad, batch, weight_scale, loss, workspace):
        B = batch.lengths.shape[0]
        codes = (self.kind, ACTIVATIONS[self.activation], LOSSES[loss], self.sizes)
        if self.gradient == "bptt":
            longest = int(batch.lengths.max()) if B else 0
            records, _ = stack_bptt_sizes(
                self.kind, self.sizes, self.m, self.o, longest
            )
            if workspace["records"].shape[1] < records:
                # The records grow with the longest sequence, on first use.
                workspace["records"] = np.empty(
                    (workspace["records"].shape[0], records), dtype=flat.dtype
                )
        threads = workspace["scratch"].shape[0]
        pooling = POOLINGS[self.pooling]
        with blas_single_threaded(threads, self._blas_width):
            if self.gradient == "bptt":
                stack_bptt_minibatch(
                    *codes, batch, weight_scale, flat, workspace, pooling
                )
            else:
                stack_rtrl_minibatch(
                    *codes,
                    self.gradient == "local",
                    batch,
                    weight_scale,
                    flat,
                    workspace,
                    pooling,
                )
        grad += workspace["grad"][:B].sum(axis=0)
        return float(workspace["loss"][:B].sum())

    def train_online(self, flat, update, batch, loss, state, reset_state, outputs=None):
        if self.pooling != "last":
            # The settings refuse this first (pooling_refusal): a pooled
            # readout has one target per sequence, read at its end.
            raise ValueError("a pooled readout trains by minibatches only")
        codes = (self.kind, ACTIVATIONS[self.activation], LOSSES[loss], self.sizes)
        with blas_single_threaded(1, self._blas_width):
            return stack_rtrl_online(
                *codes, self.gradient == "local", batch, update, state,
                reset_state, flat, outputs=outputs,
            )  # fmt: skip

    def forward(self, flat, values, x_start, lengths, every_step, h0=None):
        """The top layer's y after every step, or after the last (or, with a
        pooled readout, their mean or maximum over the sequence); ``h0`` is
        a stream's ``"hidden"`` (every layer's state)."""
        top = len(self.layers) - 1
        for k, (layer, part) in enumerate(zip(self.layers, self._theta)):
            s0 = None if h0 is None else h0[self._states[k]]
            # The layer's parameters come first; the forward kernel wants n
            # numbers after theta (bias_hh, read by the cells that keep it
            # apart), which the rest of the vector always has.
            values = layer.forward(
                flat[part.start :], values, x_start, lengths, every_step or k < top, s0
            )
        return values
