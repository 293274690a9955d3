"""Gradient methods beside RTRL: (truncated) BPTT and UORO, for every cell.

``make_cell`` is what the estimators call: for ``gradient="rtrl"`` and
``"snap1"`` it returns the cell itself (its own kernels carry the
influence); for ``"bptt"`` and ``"uoro"`` it wraps the cell in a
:class:`MethodCell`, which keeps the cell's flat parameter layout, views,
initialisation and forward pass, and trains through the kernels of
``skrtrl/_kernels/_bptt.pyx`` and ``_uoro.pyx``. Those kernels share one
definition per cell (``_kernels/_cells.pxd``), so every cell gets both
methods, in minibatch, ``update="step"`` and stream mode.
"""

import numpy as np
from sklearn.utils import check_random_state

from ._cells import CELLS, POOLINGS, allocate, kernel_codes
from ._kernels._bptt import (
    bptt_minibatch,
    bptt_online,
    bptt_scratch_size,
    bptt_sizes,
)
from ._kernels._uoro import uoro_minibatch, uoro_online, uoro_scratch_size
from ._parallel import blas_single_threaded

#: Methods served by MethodCell.
METHODS = ("bptt", "uoro")


def make_cell(
    name, n_hidden, n_inputs, n_outputs, *, activation="tanh", gradient="rtrl",
    truncation=None, random_state=None, n_feedback=0, pooling="last",
):  # fmt: skip
    """The cell ``name`` trained by ``gradient``.

    ``truncation`` only applies to ``"bptt"`` and ``random_state`` (the
    estimator's RandomState, the source of UORO's random signs) only to
    ``"uoro"``; ``n_feedback`` inputs are fed-back outputs; ``pooling`` is
    what a target per sequence reads (``skrtrl._cells.POOLINGS``).
    """
    cls = CELLS[name]
    if gradient not in cls.gradients:
        raise ValueError(
            f"cell={name!r} supports gradient in {cls.gradients}; got "
            f"gradient={gradient!r}."
        )
    sizes = dict(activation=activation, n_feedback=n_feedback, pooling=pooling)
    if gradient in cls.own_gradients:
        return cls(n_hidden, n_inputs, n_outputs, gradient=gradient, **sizes)
    cell = cls(n_hidden, n_inputs, n_outputs, **sizes)
    return MethodCell(cell, gradient, truncation, random_state)


class MethodCell:
    """A cell trained by full or truncated BPTT, or by UORO.

    Offers the interface of :class:`skrtrl._cells.Cell` (``layout``,
    ``views``, ``workspace``, ``train_minibatch``, ``new_state``,
    ``train_online``, ``forward`` ...) over the same flat parameter vector,
    so that ``params_`` and gradients line up whatever the method. It reads
    the wrapped cell through that interface only: its ``kind`` (the number
    of its definition in ``_kernels/_cells.pxd``) and its ``layout``.

    Parameters
    ----------
    cell : Cell
        Gives the parameter layout and the forward pass.
    gradient : {"bptt", "uoro"}
        The gradient method.
    truncation : int or None
        BPTT only: backpropagate each loss term through at most this many
        steps (None: to the start of the sequence).
    random_state : RandomState or None
        UORO only: each kernel call draws its seed from it.
    """

    def __init__(self, cell, gradient, truncation=None, random_state=None):
        if gradient not in METHODS:
            raise ValueError(f"MethodCell serves {METHODS}; got {gradient!r}.")
        self.cell = cell
        self.gradient = gradient
        self.truncation = truncation if gradient == "bptt" else None
        self.random_state = check_random_state(random_state)
        self.name, self.n, self.m, self.o = cell.name, cell.n, cell.m, cell.o
        self.kind = cell.kind
        self.activation = cell.activation
        self.pooling = cell.pooling
        if self.pooling != "last" and (gradient == "uoro" or self.truncation):
            # The running sum of UORO's rank-one estimates is not of rank
            # one, and truncated BPTT never reaches the early steps.
            raise ValueError(
                f"pooling={self.pooling!r} is trained by exact RTRL, SnAp-1 "
                "or full BPTT; not by UORO or truncated BPTT."
            )
        self.layout = cell.layout
        _, _, self.S, self._record = bptt_sizes(self.kind, self.n, self.m)

    # -- what the cell itself defines ---------------------------------------
    @property
    def n_params(self):
        return self.cell.n_params

    def views(self, flat):
        """Named views into ``flat``, as the cell's."""
        return self.cell.views(flat)

    def penalty_mask(self, dtype):
        """1 for the weights that L2 regularisation acts on, 0 for biases."""
        return self.cell.penalty_mask(dtype)

    def initialize(self, flat, random_state):
        """The cell's initialisation."""
        self.cell.initialize(flat, random_state)

    def readout(self, flat, H):
        """Readout pre-activations ``H @ weight_out.T + bias_out``."""
        return self.cell.readout(flat, H)

    def forward(self, flat, values, x_start, lengths, every_step, h0=None):
        """The cell's forward pass."""
        return self.cell.forward(flat, values, x_start, lengths, every_step, h0)

    def _seed(self):
        """A seed for one kernel call, drawn from the estimator's generator."""
        return int(self.random_state.randint(np.iinfo(np.int64).max, dtype=np.int64))

    # -- kernels ----------------------------------------------------------------
    def workspace_shapes(self, batch_size, n_threads, longest=0):
        """Shapes of the ``workspace`` arrays (see ``skrtrl._cells.allocate``).

        The BPTT record buffer holds ``truncation`` steps, or the
        ``longest`` sequence of a minibatch (it grows on first use).
        """
        kind, n, o = self.kind, self.n, self.o
        shapes = {
            "grad": ((batch_size, self.layout.kernel_size), None),
            "loss": ((batch_size,), np.float64),
        }
        if self.gradient == "bptt":
            steps = self.truncation or longest
            shapes["scratch"] = ((n_threads, bptt_scratch_size(kind, n, o)), None)
            shapes["ring"] = ((n_threads, steps * self._record), None)
        else:
            theta_size = self.layout.rows * self.layout.columns
            shapes["scratch"] = (
                (n_threads, uoro_scratch_size(kind, n, self.m, o)),
                None,
            )
            shapes["states"] = ((n_threads, 2 * self.S + theta_size), None)
        return shapes

    def workspace(self, batch_size, n_threads, dtype):
        """Buffers of the training kernel: per thread, and per sequence.

        The BPTT record buffer depends on the longest sequence of a
        minibatch (without truncation); it is sized on first use.
        """
        workspace = allocate(self.workspace_shapes(batch_size, n_threads), dtype)
        workspace["n_threads"] = n_threads
        return workspace

    def state_shapes(self):
        """Shapes of the arrays of ``new_state``."""
        shapes = {"hidden": ((self.S,), None)}
        if self.gradient == "bptt":
            shapes["ring"] = ((self.truncation or 1, self._record), None)
        else:
            theta_size = self.layout.rows * self.layout.columns
            shapes["tilde_state"] = ((self.S,), None)
            shapes["tilde_theta"] = ((theta_size,), None)
        return shapes

    def online_shapes(self, longest=0):
        """Shapes of the buffers of one ``train_online`` call.

        BPTT without truncation records the ``longest`` sequence.
        """
        kind, n, o = self.kind, self.n, self.o
        if self.gradient == "uoro":
            return {"scratch": ((uoro_scratch_size(kind, n, self.m, o),), None)}
        shapes = {"scratch": ((bptt_scratch_size(kind, n, o),), None)}
        if self.truncation is None:
            shapes["ring"] = ((max(longest, 1), self._record), None)
        return shapes

    def step_flops(self, online, longest=1):
        """Floating-point operations of one training step of one sequence."""
        W = self.layout.rows * self.layout.columns
        if self.gradient == "uoro":
            # Forward tangent, the step's immediate term and the factors.
            return 12 * W
        if not online:
            return 6 * W  # forward, then backward once per sequence
        # An update after every step backpropagates through the window.
        return 2 * W + 4 * W * (self.truncation or longest)

    def _ring(self, workspace, lengths):
        """Per-thread record buffers for the minibatch ``lengths``."""
        steps = self.truncation
        if steps is None:
            steps = int(lengths.max()) if lengths.shape[0] else 0
        needed = steps * self._record
        ring = workspace["ring"]
        if ring.shape[1] < needed:
            ring = np.empty((ring.shape[0], needed), dtype=ring.dtype)
            workspace["ring"] = ring
        return ring

    def train_minibatch(self, flat, grad, batch, weight_scale, loss, workspace):
        """As ``Cell.train_minibatch``; UORO adds an estimate of the gradient."""
        B = batch.lengths.shape[0]
        with blas_single_threaded(workspace["n_threads"], self.n):
            if self.gradient == "bptt":
                self._ring(workspace, batch.lengths)
                bptt_minibatch(
                    *kernel_codes(self, loss), batch, weight_scale, flat, workspace,
                    self.truncation or 0, pooling=POOLINGS[self.pooling],
                )  # fmt: skip
            else:
                uoro_minibatch(
                    *kernel_codes(self, loss), batch, weight_scale, flat, workspace,
                    self._seed(),
                )  # fmt: skip
        self.layout.add_kernel_gradient(grad, workspace["grad"][:B].sum(axis=0))
        return float(workspace["loss"][:B].sum())

    def new_state(self, dtype):
        """Zero state of a stream.

        ``"hidden"`` is the cell state (see the cell's ``new_state``). BPTT
        adds the ring of the last ``truncation`` step records, how many of
        them are filled and the slot of the next one; UORO the factors s~
        and theta~ of its influence estimate, and the state of the generator
        of its random signs (seeded from the estimator's generator).
        """
        state = allocate(self.state_shapes(), dtype, fill=0)
        if self.gradient == "bptt":
            state.update(filled=0, pos=0)
        else:
            state.update(rng=self._seed())
        return state

    def train_online(self, flat, update, batch, loss, state, reset_state, outputs=None):
        """As ``Cell.train_online``.

        BPTT without truncation needs ``reset_state`` (its records would
        grow with a stream).
        """
        if self.gradient == "bptt" and self.truncation is None and not reset_state:
            raise ValueError("gradient='bptt' on a stream needs an integer truncation.")
        codes = kernel_codes(self, loss)
        with blas_single_threaded(1, self.n):
            if self.gradient == "uoro":
                return uoro_online(
                    *codes, batch, update, state, reset_state, flat,
                    self._seed(), outputs=outputs,
                )  # fmt: skip
            if self.truncation is None:
                # Records of the longest sequence, for this call only.
                lengths = batch.lengths
                longest = int(lengths.max()) if lengths.shape[0] else 1
                ring = allocate(self.online_shapes(longest), flat.dtype)["ring"]
                state = {**state, "ring": ring, "filled": 0, "pos": 0}
            return bptt_online(
                *codes, batch, update, state, reset_state, flat, outputs=outputs
            )
