"""Recurrent cells: parameter layout, initialisation and kernel dispatch.

Every cell stores all of its parameters in one flat vector laid out as
``theta`` (n x q: one row of recurrent parameters per hidden unit, the bias
b_ih last), ``bias_hh`` (n), ``weight_out`` (o x n), ``bias_out`` (o).
``views`` cuts it into the named arrays users see in ``params_`` (views, so
in-place changes reach the kernels). Each recurrent unit's parameters form
one row because the influence matrices are indexed that way.
"""

import numpy as np

from ._kernels._diagonal import (
    diagonal_forward,
    diagonal_rtrl_minibatch,
    diagonal_rtrl_online,
    diagonal_scratch_size,
)
from ._kernels._elman import (
    elman_forward,
    elman_rtrl_minibatch,
    elman_rtrl_online,
    train_scratch_size,
)
from ._kernels._gated import (
    gated_forward,
    gated_influence_size,
    gated_rtrl_minibatch,
    gated_rtrl_online,
    gated_scratch_size,
    gated_sizes,
)
from ._optim import online_kernel_args
from ._parallel import blas_single_threaded

ACTIVATIONS = {"identity": 0, "tanh": 1, "logistic": 2, "relu": 3}
LOSSES = {"squared_error": 0, "log_loss_binary": 1, "log_loss": 2}
# "bptt" and "uoro" are served for every cell by skrtrl._methods.MethodCell,
# which wraps these cells; the cells' own kernels do "rtrl" and "snap1".
GRADIENTS = ("rtrl", "snap1", "bptt", "uoro")
#: The ways a model can be trained: minibatch gradients ("minibatch"),
#: updates after every step of independent sequences ("step"), a stateful
#: stream ("stream"), teacher-forced output feedback ("feedback") and
#: output feedback trained on the model's own outputs ("free_running").
MODES = ("minibatch", "step", "stream", "feedback", "free_running")


class _CellBase:
    """What every cell shares: L2 mask, initialisation and the readout.

    Subclasses define ``n``, ``n_params`` and ``views`` (torch-named views
    into the flat parameter vector, ``weight_out`` and ``bias_out`` last).
    ``gradients`` names the gradient methods the cell supports and
    ``modes(gradient)`` the training modes (``MODES``) each supports.
    """

    gradients = GRADIENTS

    @classmethod
    def modes(cls, gradient):
        """The training modes (of ``MODES``) that ``gradient`` supports."""
        if gradient not in cls.gradients:
            return ()
        if gradient == "rtrl":
            return MODES
        return MODES[:-1]

    def penalty_mask(self, dtype):
        """1 for the weights that L2 regularisation acts on, 0 for biases."""
        mask = np.zeros(self.n_params, dtype=dtype)
        views = self.views(mask)
        for name in ("weight_ih", "weight_hh", "weight_out"):
            views[name][...] = 1
        return mask

    def initialize(self, flat, random_state):
        """Uniform(-1/sqrt(n), 1/sqrt(n)) for every entry, as torch does."""
        bound = 1.0 / np.sqrt(self.n)
        flat[:] = random_state.uniform(-bound, bound, size=flat.shape[0])

    def readout(self, flat, H):
        """Readout pre-activations ``H @ weight_out.T + bias_out``."""
        views = self.views(flat)
        return H @ views["weight_out"].T + views["bias_out"]


class ElmanCell(_CellBase):
    """Fully connected Elman cell, ``h_t = phi(W_ih x_t + W_hh h_{t-1} + b)``.

    ``theta`` rows are [W_ih | W_hh | b_ih], q = m + n + 1. With
    ``gradient="rtrl"`` the full influence (n x n*q per sequence) is carried;
    with ``"snap1"`` only its per-unit blocks (n x q), the SnAp-1
    approximation.
    """

    name = "elman"

    def __init__(self, n_hidden, n_inputs, n_outputs, gradient="rtrl"):
        self.n = n_hidden
        self.m = n_inputs
        self.o = n_outputs
        self.gradient = gradient
        self.q = self._n_columns()

    def _n_columns(self):
        return self.m + self.n + 1

    @property
    def _per_unit_influence(self):
        """Whether the influence is kept per unit (n x q) or in full."""
        return self.gradient == "snap1"

    @property
    def n_params(self):
        n, q, o = self.n, self.q, self.o
        return n * q + n + o * n + o

    def _blocks(self, flat):
        n, q, o = self.n, self.q, self.o
        theta = flat[: n * q].reshape(n, q)
        pos = n * q
        bias_hh = flat[pos : pos + n]
        pos += n
        weight_out = flat[pos : pos + o * n].reshape(o, n)
        pos += o * n
        bias_out = flat[pos : pos + o]
        return theta, bias_hh, weight_out, bias_out

    def _recurrent_views(self, theta):
        m, n = self.m, self.n
        return {"weight_ih": theta[:, :m], "weight_hh": theta[:, m : m + n]}

    def views(self, flat):
        """Named views into ``flat`` in the layout of ``torch.nn.RNN``."""
        theta, bias_hh, weight_out, bias_out = self._blocks(flat)
        views = self._recurrent_views(theta)
        views.update(
            bias_ih=theta[:, -1],
            bias_hh=bias_hh,
            weight_out=weight_out,
            bias_out=bias_out,
        )
        return views

    # -- kernels ---------------------------------------------------------
    def _influence_size(self):
        if self._per_unit_influence:
            return self.n * self.q
        return 2 * self.n * self.n * self.q

    def _scratch_size(self):
        if self._per_unit_influence:
            return diagonal_scratch_size(self.n, self.m, self.o)
        return train_scratch_size(self.n, self.m, self.o)

    def workspace(self, batch_size, n_threads, dtype):
        """Buffers of the training kernel: per thread, and per sequence."""
        n, q, o = self.n, self.q, self.o
        return {
            "grad": np.empty((batch_size, n * q + o * n + o), dtype=dtype),
            "loss": np.empty(batch_size, dtype=np.float64),
            "influence": np.empty((n_threads, self._influence_size()), dtype=dtype),
            "scratch": np.empty((n_threads, self._scratch_size()), dtype=dtype),
        }

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
        """Loss of the minibatch; its gradient is added into ``grad``.

        ``target_weight`` has one weight per row of ``targets``, each
        multiplied by ``weight_scale``.
        """
        theta, bias_hh, weight_out, bias_out = self._blocks(flat)
        g_theta, g_bias_hh, g_out, g_bias_out = self._blocks(grad)
        B = lengths.shape[0]
        grad_rows, loss_rows = workspace["grad"], workspace["loss"]
        data = (values, targets, x_start, y_start, lengths, target_weight)
        rest = (
            theta,
            bias_hh,
            weight_out,
            bias_out,
            ACTIVATIONS[activation],
            LOSSES[loss],
            grad_rows,
            workspace["influence"],
            workspace["scratch"],
            loss_rows,
        )
        with blas_single_threaded(workspace["influence"].shape[0], self.n):
            if self._per_unit_influence:
                diagonal_rtrl_minibatch(
                    *data, weight_scale, every_step, self._full_recurrence, *rest
                )
            else:
                elman_rtrl_minibatch(*data, weight_scale, every_step, *rest)
        total = grad_rows[:B].sum(axis=0)
        n, q, o = self.n, self.q, self.o
        g_theta += total[: n * q].reshape(n, q)
        g_out += total[n * q : n * q + o * n].reshape(o, n)
        g_bias_out += total[n * q + o * n :]
        # Both biases enter a_t identically, so their gradients are equal.
        g_bias_hh += g_theta[:, -1] - g_bias_hh
        return float(loss_rows[:B].sum())

    _full_recurrence = True

    def new_state(self, dtype):
        """Zero state of a stream: hidden units and influence matrices."""
        if self._per_unit_influence:
            influence = np.zeros(self.n * self.q, dtype=dtype)
        else:
            influence = np.zeros((2, self.n * self.n * self.q), dtype=dtype)
        return {
            "hidden": np.zeros(self.n, dtype=dtype),
            "influence": influence,
            "parity": 0,
        }

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
        """Update ``flat`` after every step with a target (real-time RTRL).

        Sequences run in the given order, each from a zero state when
        ``reset_state``; otherwise from (and back into) the stream ``state``.
        Returns the weighted loss of each sequence.
        """
        loss_rows = np.empty(lengths.shape[0], dtype=np.float64)
        scratch = np.empty(self._scratch_size(), dtype=flat.dtype)
        data = (values, targets, x_start, y_start, lengths, target_weight)
        model = (flat, self.n, self.m, self.o, ACTIVATIONS[activation], LOSSES[loss])
        opt = online_kernel_args(optimizer, penalty, clip_norm)
        with blas_single_threaded(1, self.n):
            if self._per_unit_influence:
                optimizer.t = diagonal_rtrl_online(
                    *data, every_step, reset_state, self._full_recurrence,
                    *model, *opt, state["hidden"], state["influence"],
                    np.empty_like(flat), scratch, loss_rows,
                )  # fmt: skip
            else:
                optimizer.t, state["parity"] = elman_rtrl_online(
                    *data, every_step, reset_state, *model, *opt,
                    state["hidden"], state["influence"], state["parity"],
                    np.empty_like(flat), scratch, loss_rows,
                )  # fmt: skip
        return loss_rows

    def hidden_states(
        self, flat, values, x_start, lengths, activation, every_step, h0=None
    ):
        """Hidden states after every step, or after the last, from ``h0``."""
        theta, bias_hh, _, _ = self._blocks(flat)
        if h0 is None:
            h0 = np.zeros(self.n, dtype=flat.dtype)
        rows = values.shape[0] if every_step else lengths.shape[0]
        H = np.empty((rows, self.n), dtype=flat.dtype)
        with blas_single_threaded(1, self.n):
            self._forward(values, x_start, lengths, theta, bias_hh, activation,
                          every_step, H, h0)  # fmt: skip
        return H

    def _forward(
        self, values, x_start, lengths, theta, bias_hh, activation, every_step, H, h0
    ):
        scratch = np.empty(2 * self.n + self.q, dtype=H.dtype)
        elman_forward(
            values, x_start, lengths, theta, bias_hh, ACTIVATIONS[activation],
            every_step, H, scratch, h0,
        )  # fmt: skip


class DiagonalCell(ElmanCell):
    """Element-wise cell, ``h_t = phi(W_ih x_t + w * h_{t-1} + b)``.

    ``theta`` rows are [W_ih | w | b_ih], q = m + 2, and ``params_`` has
    ``weight_hh`` of shape (n_hidden,): the diagonal recurrent weights. Each
    unit only feeds itself, so its influence is per unit and exact RTRL costs
    O(n (m + 2)) per step; SnAp-1 is the same computation.
    """

    name = "diagonal"
    _full_recurrence = False

    def _n_columns(self):
        return self.m + 2

    @property
    def _per_unit_influence(self):
        return True

    def _recurrent_views(self, theta):
        m = self.m
        return {"weight_ih": theta[:, :m], "weight_hh": theta[:, m]}

    def _forward(
        self, values, x_start, lengths, theta, bias_hh, activation, every_step, H, h0
    ):
        diagonal_forward(
            values, x_start, lengths, theta, bias_hh, ACTIVATIONS[activation],
            every_step, H, h0,
        )  # fmt: skip


class _GatedCell(_CellBase):
    """Gated cell in torch's layout, trained by RTRL through the gates.

    ``theta`` (G*n x q, q = m + n + 2) has one row per gate and unit, in
    torch's row order, holding [W_ih row | W_hh row | b_ih | b_hh]; the flat
    vector is [theta | weight_out | bias_out] (no separate bias_hh block:
    both biases are columns of theta). The cell state (GRU: h; LSTM:
    [h, c]) and its influence (S x G*n*q) are described in
    ``skrtrl/_kernels/_gated.pyx``. The readout reads h only.

    ``gradient="rtrl"`` carries the full influence; ``"snap1"`` only the
    block of each unit's state with respect to its own G gate rows (SnAp-1,
    S / n times the size of theta, O(number of parameters) per step).

    The estimators' ``activation`` does not apply to gated cells: their
    nonlinearities (logistic gates, tanh candidate and output) are fixed by
    the cell's equations, and ``activation`` is ignored.
    """

    name = None
    _kind = None
    _gradients = ("rtrl", "snap1")

    def __init__(self, n_hidden, n_inputs, n_outputs, gradient="rtrl"):
        if gradient not in self._gradients:
            raise ValueError(
                f"cell={self.name!r} supports gradient in {self._gradients}; "
                f"got gradient={gradient!r}."
            )
        self.n = n_hidden
        self.m = n_inputs
        self.o = n_outputs
        self.gradient = gradient
        self.n_gates, self.n_state, self.q, self._n_influence_columns = gated_sizes(
            self._kind, n_hidden, n_inputs
        )

    @property
    def n_params(self):
        return self._n_influence_columns + self.o * self.n + self.o

    def _blocks(self, flat):
        G, n, q, o = self.n_gates, self.n, self.q, self.o
        pos = G * n * q
        theta = flat[:pos].reshape(G * n, q)
        weight_out = flat[pos : pos + o * n].reshape(o, n)
        bias_out = flat[pos + o * n : pos + o * n + o]
        return theta, weight_out, bias_out

    def views(self, flat):
        """Named views into ``flat`` in the layout of torch's GRU / LSTM."""
        m, n = self.m, self.n
        theta, weight_out, bias_out = self._blocks(flat)
        return {
            "weight_ih": theta[:, :m],
            "weight_hh": theta[:, m : m + n],
            "bias_ih": theta[:, m + n],
            "bias_hh": theta[:, m + n + 1],
            "weight_out": weight_out,
            "bias_out": bias_out,
        }

    # -- kernels ---------------------------------------------------------
    def _scratch_size(self):
        return gated_scratch_size(self._kind, self.n, self.m, self.o)

    @property
    def _snap1(self):
        return self.gradient == "snap1"

    def _influence_size(self):
        return gated_influence_size(self._kind, self.n, self.m, self._snap1)

    def workspace(self, batch_size, n_threads, dtype):
        """Buffers of the training kernel: per thread, and per sequence."""
        influence = self._influence_size()
        return {
            "grad": np.empty((batch_size, self.n_params), dtype=dtype),
            "loss": np.empty(batch_size, dtype=np.float64),
            "influence": np.empty((n_threads, influence), dtype=dtype),
            "scratch": np.empty((n_threads, self._scratch_size()), dtype=dtype),
        }

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
        """Loss of the minibatch; its gradient is added into ``grad``.

        ``activation`` is ignored (see the class docstring).
        """
        theta, weight_out, bias_out = self._blocks(flat)
        B = lengths.shape[0]
        grad_rows, loss_rows = workspace["grad"], workspace["loss"]
        with blas_single_threaded(workspace["influence"].shape[0], self.n):
            gated_rtrl_minibatch(
                self._kind, values, targets, x_start, y_start, lengths,
                target_weight, weight_scale, every_step, theta, weight_out,
                bias_out, LOSSES[loss], grad_rows, workspace["influence"],
                workspace["scratch"], loss_rows, snap1=self._snap1,
            )  # fmt: skip
        # grad_rows are laid out like the flat vector.
        grad += grad_rows[:B].sum(axis=0)
        return float(loss_rows[:B].sum())

    def new_state(self, dtype):
        """Zero state of a stream: the cell state and influence matrices.

        ``"hidden"`` holds the full cell state (n numbers, h, for the GRU;
        2n, [h, c], for the LSTM), which ``hidden_states`` takes as ``h0``.
        Exact RTRL keeps two influence buffers (``"parity"`` marks the
        current one); SnAp-1 one, updated in place.
        """
        rows = 1 if self._snap1 else 2
        return {
            "hidden": np.zeros(self.n_state, dtype=dtype),
            "influence": np.zeros((rows, self._influence_size() // rows), dtype=dtype),
            "parity": 0,
        }

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
        """Update ``flat`` after every step with a target (real-time RTRL).

        As ``ElmanCell.train_online``; ``activation`` is ignored.
        """
        loss_rows = np.empty(lengths.shape[0], dtype=np.float64)
        scratch = np.empty(self._scratch_size(), dtype=flat.dtype)
        optimizer.t, state["parity"] = gated_rtrl_online(
            self._kind, values, targets, x_start, y_start, lengths,
            target_weight, every_step, reset_state, flat, self.n, self.m,
            self.o, LOSSES[loss],
            *online_kernel_args(optimizer, penalty, clip_norm),
            state["hidden"], state["influence"], state["parity"],
            np.empty_like(flat), scratch, loss_rows, snap1=self._snap1,
        )  # fmt: skip
        return loss_rows

    def hidden_states(
        self, flat, values, x_start, lengths, activation, every_step, h0=None
    ):
        """Hidden states h after every step, or after the last, from ``h0``.

        ``h0`` is the full cell state (see ``new_state``); for the LSTM an
        ``h0`` of n numbers is taken as h with c = 0. ``activation`` is
        ignored.
        """
        theta, _, _ = self._blocks(flat)
        s0 = np.zeros(self.n_state, dtype=flat.dtype)
        if h0 is not None:
            h0 = np.asarray(h0, dtype=flat.dtype)
            s0[: h0.shape[0]] = h0
        rows = values.shape[0] if every_step else lengths.shape[0]
        H = np.empty((rows, self.n), dtype=flat.dtype)
        scratch = np.empty(
            gated_scratch_size(self._kind, self.n, self.m, 0), dtype=flat.dtype
        )
        gated_forward(
            self._kind, values, x_start, lengths, theta, every_step, H, scratch, s0
        )
        return H


class GRUCell(_GatedCell):
    """Gated recurrent unit, torch's ``nn.GRU`` equations and layout.

    ``r = sigma(W_ir x + b_ir + W_hr h + b_hr)``,
    ``z = sigma(W_iz x + b_iz + W_hz h + b_hz)``,
    ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``,
    ``h' = (1 - z) * n + z * h``; ``params_`` holds ``weight_ih`` (3n, m),
    ``weight_hh`` (3n, n), ``bias_ih`` and ``bias_hh`` (3n,), gates in the
    order r, z, n. ``activation`` is ignored. SnAp-1 keeps d h_i / d theta
    for unit i's r, z and n rows (3 q numbers per unit).
    """

    name = "gru"
    _kind = 2


class LSTMCell(_GatedCell):
    """Long short-term memory, torch's ``nn.LSTM`` equations and layout.

    ``i, f, o = sigma(...)``, ``g = tanh(...)`` (each ``W_i* x + b_i* +
    W_h* h + b_h*``), ``c' = f * c + i * g``, ``h' = o * tanh(c')``;
    ``params_`` holds ``weight_ih`` (4n, m), ``weight_hh`` (4n, n),
    ``bias_ih`` and ``bias_hh`` (4n,), gates in the order i, f, g, o. The
    stream state is [h, c]. ``activation`` is ignored. SnAp-1 keeps d h_i /
    d theta and d c_i / d theta for unit i's i, f, g and o rows (8 q numbers
    per unit).
    """

    name = "lstm"
    _kind = 3


CELLS = {
    "elman": ElmanCell,
    "diagonal": DiagonalCell,
    "gru": GRUCell,
    "lstm": LSTMCell,
}
