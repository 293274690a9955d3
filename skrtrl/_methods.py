"""Gradient methods beside RTRL: (truncated) BPTT and UORO, for every cell.

``make_cell`` is what the estimators call: for ``gradient="rtrl"`` and
``"snap1"`` it returns the cell itself (its own kernels carry the
influence); for ``"bptt"`` and ``"uoro"`` it wraps the cell in a
:class:`MethodCell`, which keeps the cell's flat parameter layout, views,
initialisation and forward pass, and trains through the kernels of
``skrtrl/_kernels/_bptt.pyx`` and ``_uoro.pyx``. Those kernels share one
step primitive per cell (``_kernels/_steps.pxd``), so every cell gets both
methods, in minibatch, ``update="step"`` and stream mode.
"""

import numpy as np
from sklearn.utils import check_random_state

from ._cells import ACTIVATIONS, CELLS, LOSSES
from ._kernels._bptt import (
    bptt_minibatch,
    bptt_online,
    bptt_scratch_size,
    bptt_sizes,
)
from ._kernels._uoro import uoro_minibatch, uoro_online, uoro_scratch_size
from ._optim import online_kernel_args
from ._parallel import blas_single_threaded

#: Cell codes of ``_kernels/_steps.pxd``.
KINDS = {"elman": 0, "diagonal": 1, "gru": 2, "lstm": 3}
#: Methods served by MethodCell.
METHODS = ("bptt", "uoro")


def make_cell(
    name, n_hidden, n_inputs, n_outputs, gradient="rtrl", truncation=None,
    random_state=None,
):  # fmt: skip
    """The cell ``name`` trained by ``gradient``.

    ``truncation`` only applies to ``"bptt"`` and ``random_state`` (the
    estimator's RandomState, the source of UORO's random signs) only to
    ``"uoro"``.
    """
    if gradient not in METHODS:
        return CELLS[name](n_hidden, n_inputs, n_outputs, gradient=gradient)
    cell = CELLS[name](n_hidden, n_inputs, n_outputs)
    return MethodCell(cell, gradient, truncation, random_state)


class MethodCell:
    """A cell trained by full or truncated BPTT, or by UORO.

    Offers the interface of the cells of ``skrtrl._cells`` (``views``,
    ``workspace``, ``train_minibatch``, ``new_state``, ``train_online``,
    ``hidden_states`` ...) over the same flat parameter vector, so that
    ``params_`` and gradients line up whatever the method.

    Parameters
    ----------
    cell : cell object of ``skrtrl._cells``
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
        self._kind = KINDS[cell.name]
        self.R, self.q, self.S, self._record = bptt_sizes(self._kind, self.n, self.m)
        # The Elman and element-wise cells keep bias_hh apart from theta.
        self._separate_bias = self._kind in (KINDS["elman"], KINDS["diagonal"])

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

    def hidden_states(
        self, flat, values, x_start, lengths, activation, every_step, h0=None
    ):
        """Hidden states after every step, or after the last, from ``h0``."""
        return self.cell.hidden_states(
            flat, values, x_start, lengths, activation, every_step, h0
        )

    # -- layout ---------------------------------------------------------------
    def _split(self, flat):
        """theta (R x q), bias_hh (n; zeros for gated cells), W_out, b_out."""
        R, q, n, o = self.R, self.q, self.n, self.o
        pos = R * q
        theta = flat[:pos].reshape(R, q)
        if self._separate_bias:
            bias_hh = flat[pos : pos + n]
            pos += n
        else:
            # Not read by the kernels: the gated cells' biases are in theta.
            bias_hh = np.zeros(n, dtype=flat.dtype)
        weight_out = flat[pos : pos + o * n].reshape(o, n)
        bias_out = flat[pos + o * n : pos + o * n + o]
        return theta, bias_hh, weight_out, bias_out

    def _add_kernel_gradient(self, total, grad):
        """Add a kernel gradient [theta | W_out | b_out] into the flat ``grad``."""
        size = self.R * self.q
        grad[:size] += total[:size]
        if self._separate_bias:
            # Both biases enter a_t identically, so their gradients are equal.
            grad[size : size + self.n] += total[:size].reshape(self.R, self.q)[:, -1]
            size_flat = size + self.n
        else:
            size_flat = size
        grad[size_flat:] += total[size:]

    def _seed(self):
        """A seed for one kernel call, drawn from the estimator's generator."""
        return int(self.random_state.randint(np.iinfo(np.int64).max, dtype=np.int64))

    # -- kernels ----------------------------------------------------------------
    def workspace(self, batch_size, n_threads, dtype):
        """Buffers of the training kernel: per thread, and per sequence.

        The BPTT record buffer depends on the longest sequence of a
        minibatch (without truncation); it is sized on first use.
        """
        n, o = self.n, self.o
        kernel_size = self.R * self.q + o * n + o
        workspace = {
            "grad": np.empty((batch_size, kernel_size), dtype=dtype),
            "loss": np.empty(batch_size, dtype=np.float64),
            "n_threads": n_threads,
        }
        if self.gradient == "bptt":
            workspace["scratch"] = np.empty(
                (n_threads, bptt_scratch_size(self._kind, n, o)), dtype=dtype
            )
            workspace["ring"] = np.empty((n_threads, 0), dtype=dtype)
        else:
            workspace["scratch"] = np.empty(
                (n_threads, uoro_scratch_size(self._kind, n, self.m, o)), dtype=dtype
            )
            workspace["states"] = np.empty(
                (n_threads, 2 * self.S + self.R * self.q), dtype=dtype
            )
        return workspace

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

    def train_minibatch(
        self,
        flat,
        grad,
        values,
        targets,
        x_start,
        y_start,
        lengths,
        target_weight,
        weight_scale,
        every_step,
        activation,
        loss,
        workspace,
    ):
        """Loss of the minibatch; its gradient (estimate) is added into ``grad``.

        ``target_weight`` has one weight per row of ``targets``, each
        multiplied by ``weight_scale``.
        """
        B = lengths.shape[0]
        grad_rows, loss_rows = workspace["grad"], workspace["loss"]
        data = (self._kind, values, targets, x_start, y_start, lengths)
        data += (target_weight, weight_scale, every_step, *self._split(flat))
        codes = (ACTIVATIONS[activation], LOSSES[loss])
        with blas_single_threaded(workspace["n_threads"], self.n):
            if self.gradient == "bptt":
                bptt_minibatch(
                    *data, *codes, self.truncation or 0, grad_rows,
                    self._ring(workspace, lengths), workspace["scratch"], loss_rows,
                )  # fmt: skip
            else:
                uoro_minibatch(
                    *data, *codes, self._seed(), grad_rows, workspace["states"],
                    workspace["scratch"], loss_rows,
                )  # fmt: skip
        self._add_kernel_gradient(grad_rows[:B].sum(axis=0), grad)
        return float(loss_rows[:B].sum())

    def new_state(self, dtype):
        """Zero state of a stream.

        ``"hidden"`` is the cell state (see the cell's ``new_state``). BPTT
        adds the ring of the last ``truncation`` step records, how many of
        them are filled and the slot of the next one; UORO the factors s~
        and theta~ of its influence estimate, and the state of the generator
        of its random signs (seeded from the estimator's generator).
        """
        state = {"hidden": np.zeros(self.S, dtype=dtype)}
        if self.gradient == "bptt":
            state.update(
                ring=np.zeros((self.truncation or 1, self._record), dtype=dtype),
                filled=0,
                pos=0,
            )
        else:
            state.update(
                tilde_state=np.zeros(self.S, dtype=dtype),
                tilde_theta=np.zeros(self.R * self.q, dtype=dtype),
                rng=self._seed(),
            )
        return state

    def train_online(
        self,
        flat,
        optimizer,
        penalty,
        clip_norm,
        values,
        targets,
        x_start,
        y_start,
        lengths,
        target_weight,
        every_step,
        activation,
        loss,
        state,
        reset_state,
    ):
        """Update ``flat`` after every step with a target.

        Sequences run in the given order, each from a zero state when
        ``reset_state``; otherwise from (and back into) the stream ``state``.
        BPTT without truncation needs ``reset_state`` (its records would
        grow with a stream). Returns the weighted loss of each sequence.
        """
        dtype = flat.dtype
        loss_rows = np.empty(lengths.shape[0], dtype=np.float64)
        data = (self._kind, values, targets, x_start, y_start, lengths)
        data += (target_weight, every_step, reset_state)
        model = (flat, self.n, self.m, self.o, ACTIVATIONS[activation], LOSSES[loss])
        opt = online_kernel_args(optimizer, penalty, clip_norm)
        with blas_single_threaded(1, self.n):
            if self.gradient == "bptt":
                if self.truncation is None:
                    if not reset_state:
                        raise ValueError(
                            "gradient='bptt' on a stream needs an integer truncation."
                        )
                    longest = int(lengths.max()) if lengths.shape[0] else 1
                    ring, filled, pos = np.empty((longest, self._record), dtype), 0, 0
                else:
                    ring, filled, pos = state["ring"], state["filled"], state["pos"]
                optimizer.t, filled, pos = bptt_online(
                    *data, *model, *opt, state["hidden"], ring, filled, pos,
                    np.empty_like(flat),
                    np.empty(bptt_scratch_size(self._kind, self.n, self.o), dtype),
                    loss_rows,
                )  # fmt: skip
                if self.truncation is not None:
                    state["filled"], state["pos"] = filled, pos
            else:
                optimizer.t, state["rng"] = uoro_online(
                    *data, *model, *opt, self._seed(), state["rng"],
                    state["hidden"],
                    state["tilde_state"], state["tilde_theta"], np.empty_like(flat),
                    np.empty(
                        uoro_scratch_size(self._kind, self.n, self.m, self.o), dtype
                    ),
                    loss_rows,
                )  # fmt: skip
        return loss_rows
