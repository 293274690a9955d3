"""Output feedback: the previous output as an extra input of the recurrent layer.

With ``output_feedback=True`` the cell's inputs at step t are
``[x_t, f_{t-1}]``, where ``f_{t-1}`` is the previous output after the link
function (the regressor's prediction, the classifier's probability of
``classes_[1]`` or its probability vector) and ``f_0 = 0``. The feedback
enters through its own weights, ``params_["weight_fb"]``, which are the
extra input columns of the cell's ``weight_ih`` matrix: :class:`FeedbackCell`
wraps an ordinary cell built with ``n_features + n_outputs`` inputs and
splits those columns off in ``views``.

Training (Williams & Zipser, 1989, section 4):

* ``teacher_forcing=True``: the fed-back value is the previous *target*.
  It is data, so training is the wrapped cell's own exact RTRL (or whatever
  gradient method it has) on inputs augmented with the previous targets.
* ``teacher_forcing=False``: the model's own previous output is fed back,
  and exact RTRL carries the influence through the feedback path, the
  readout weights included (``skrtrl/_kernels/_feedback.pyx``). Only
  ``gradient="rtrl"`` supports it.

Prediction always runs the closed loop (``feedback_forward``): every step
feeds back the model's own previous output. In stream mode the stream state
also holds the value the next step feeds back: the last observed target with
teacher forcing, the model's last output without; ``predict`` starts from
it, so over k future rows it is a k-step closed-loop forecast.
"""

import numpy as np

from ._cells import allocate, kernel_codes
from ._kernels._feedback import (
    feedback_forward,
    feedback_influence_size,
    feedback_rtrl_minibatch,
    feedback_rtrl_online,
    feedback_scratch_size,
    feedback_sizes,
)
from ._methods import make_cell
from ._parallel import blas_single_threaded


class FeedbackCell:
    """A cell whose inputs are ``[x_t, f_{t-1}]``: features and fed-back output.

    Wraps the cell ``name`` of ``n_inputs + n_outputs`` inputs, trained by
    ``gradient`` (``skrtrl._methods.make_cell``); the flat parameter vector
    and its layout are the wrapped cell's, whose ``weight_ih`` columns of the
    fed-back outputs ``params_`` shows as ``weight_fb``.

    Parameters
    ----------
    name : str
        Key of the wrapped cell in ``CELLS``.
    n_hidden, n_inputs, n_outputs : int
        Hidden units, input features (without the feedback), outputs.
    activation : str
        Hidden activation of the wrapped cell.
    gradient : str
        Gradient method of the wrapped cell.
    truncation : int or None
        Truncation of ``gradient="bptt"``.
    random_state : RandomState or None
        Source of UORO's random signs.
    teacher_forcing : bool
        Feed back the previous targets during training (True) or the
        model's own outputs (False).
    """

    def __init__(
        self, name, n_hidden, n_inputs, n_outputs, *, activation="tanh",
        gradient="rtrl", truncation=None, random_state=None, teacher_forcing,
    ):  # fmt: skip
        self.inner = make_cell(
            name, n_hidden, n_inputs + n_outputs, n_outputs,
            activation=activation, gradient=gradient, truncation=truncation,
            random_state=random_state, n_feedback=n_outputs,
        )  # fmt: skip
        self.m = n_inputs
        self.teacher_forcing = bool(teacher_forcing)

    # -- what the estimators read from any cell ----------------------------
    name = property(lambda self: self.inner.name)
    kind = property(lambda self: self.inner.kind)
    n = property(lambda self: self.inner.n)
    o = property(lambda self: self.inner.o)
    activation = property(lambda self: self.inner.activation)
    gradient = property(lambda self: self.inner.gradient)
    truncation = property(lambda self: getattr(self.inner, "truncation", None))
    layout = property(lambda self: self.inner.layout)
    n_params = property(lambda self: self.inner.n_params)

    def _sizes(self):
        """(theta rows, columns, state size, influence columns)."""
        return feedback_sizes(self.kind, self.n, self.m, self.o)

    def views(self, flat):
        """The wrapped cell's views, with ``weight_fb`` split off ``weight_ih``."""
        return self.inner.views(flat)

    def penalty_mask(self, dtype):
        return self.inner.penalty_mask(dtype)

    def initialize(self, flat, random_state):
        self.inner.initialize(flat, random_state)

    def readout(self, flat, H):
        return self.inner.readout(flat, H)

    # -- training ----------------------------------------------------------
    def workspace_shapes(self, batch_size, n_threads, longest=0):
        """Shapes of the ``workspace`` arrays (see ``skrtrl._cells.allocate``)."""
        if self.teacher_forcing:
            return self.inner.workspace_shapes(batch_size, n_threads, longest)
        kind, n, m, o = self.kind, self.n, self.m, self.o
        _, _, _, C = self._sizes()
        return {
            "grad": ((batch_size, C), None),
            "loss": ((batch_size,), np.float64),
            "influence": (
                (n_threads, feedback_influence_size(kind, n, m, o)),
                None,
            ),
            "scratch": ((n_threads, feedback_scratch_size(kind, n, m, o)), None),
        }

    def workspace(self, batch_size, n_threads, dtype):
        """Buffers of the training kernel: per thread, and per sequence."""
        if self.teacher_forcing:
            return self.inner.workspace(batch_size, n_threads, dtype)
        return allocate(self.workspace_shapes(batch_size, n_threads), dtype)

    def state_shapes(self):
        """Shapes of the arrays of ``new_state``."""
        if self.teacher_forcing:
            shapes = dict(self.inner.state_shapes())
        else:
            kind, n, m, o = self.kind, self.n, self.m, self.o
            _, _, S, _ = self._sizes()
            shapes = {
                "hidden": ((S,), None),
                "influence": ((feedback_influence_size(kind, n, m, o),), None),
            }
        shapes["feedback"] = ((self.o,), None)
        return shapes

    def online_shapes(self, longest=0):
        """Shapes of the buffers of one ``train_online`` call."""
        if self.teacher_forcing:
            return self.inner.online_shapes(longest)
        _, _, _, C = self._sizes()
        size = feedback_scratch_size(self.kind, self.n, self.m, self.o) + C
        return {"scratch": ((size,), None)}

    def step_flops(self, online, longest=1):
        """Floating-point operations of one training step of one sequence."""
        if self.teacher_forcing:
            return self.inner.step_flops(online, longest)
        # The dense influence of every parameter (S x C) through the state
        # Jacobian, and the rank-o products of the feedback path.
        _, _, S, C = self._sizes()
        return 2 * S * S * C + 4 * S * self.o * C

    def train_minibatch(self, flat, grad, batch, weight_scale, loss, workspace):
        """As ``Cell.train_minibatch``; ``batch.values`` holds the features only,
        and ``batch.every_step`` must be true."""
        _check_every_step(batch.every_step)
        if self.teacher_forcing:
            inputs, starts = teacher_inputs(
                batch.values, batch.targets, batch.x_start, batch.y_start,
                batch.lengths,
            )  # fmt: skip
            return self.inner.train_minibatch(
                flat, grad, batch.with_values(inputs, starts), weight_scale, loss,
                workspace,
            )  # fmt: skip
        B = batch.lengths.shape[0]
        with blas_single_threaded(workspace["influence"].shape[0], self.n):
            feedback_rtrl_minibatch(
                *kernel_codes(self, loss), batch, weight_scale, flat, workspace
            )
        self.layout.add_kernel_gradient(grad, workspace["grad"][:B].sum(axis=0))
        return float(workspace["loss"][:B].sum())

    def new_state(self, dtype):
        """Zero stream state, with ``"feedback"``: the next fed-back value."""
        if self.teacher_forcing:
            state = self.inner.new_state(dtype)
            state["feedback"] = np.zeros(self.o, dtype=dtype)
            return state
        return {**allocate(self.state_shapes(), dtype, fill=0), "parity": 0}

    def train_online(self, flat, update, batch, loss, state, reset_state, outputs=None):
        """As ``Cell.train_online``.

        Without ``reset_state`` the first sequence feeds back
        ``state["feedback"]`` at its first step, and the value the next step
        would feed back is left there.
        """
        _check_every_step(batch.every_step)
        lengths, targets, y_start = batch.lengths, batch.targets, batch.y_start
        if self.teacher_forcing:
            first = None if reset_state else state["feedback"]
            inputs, starts = teacher_inputs(
                batch.values, targets, batch.x_start, y_start, lengths, first=first
            )
            loss_rows = self.inner.train_online(
                flat, update, batch.with_values(inputs, starts), loss, state,
                reset_state, outputs,
            )  # fmt: skip
            if lengths.shape[0] and lengths[-1] > 0:
                last = y_start[-1] + lengths[-1] - 1
                state["feedback"][:] = targets[last]
            return loss_rows
        with blas_single_threaded(1, self.n):
            return feedback_rtrl_online(
                *kernel_codes(self, loss), batch, update, state, reset_state, flat,
                outputs=outputs,
            )  # fmt: skip

    # -- prediction --------------------------------------------------------
    def closed_loop_outputs(self, flat, values, x_start, lengths, loss, every_step,
                            state=None):  # fmt: skip
        """Readout pre-activations of the closed loop, one row per step.

        Each sequence starts from the zero state feeding back zeros, or from
        the stream ``state`` (its hidden state and ``"feedback"``), which is
        not changed.
        """
        n, o = self.n, self.o
        _, _, S, _ = self._sizes()
        dtype = flat.dtype
        if state is None:
            s0, f0 = np.zeros(S, dtype=dtype), np.zeros(o, dtype=dtype)
        else:
            s0, f0 = state["hidden"], state["feedback"]
        rows = values.shape[0] if every_step else lengths.shape[0]
        Z = np.empty((rows, o), dtype=dtype)
        with blas_single_threaded(1, n):
            feedback_forward(
                *kernel_codes(self, loss), values, x_start, lengths, flat,
                every_step, Z, np.ascontiguousarray(s0, dtype=dtype),
                np.ascontiguousarray(f0, dtype=dtype),
            )  # fmt: skip
        return Z


def teacher_inputs(values, targets, x_start, y_start, lengths, first=None):
    """Inputs ``[x_t, y_{t-1}]`` of the given sequences, packed anew.

    Row t of each sequence gets the target of its row t - 1. Each first row
    gets zeros when ``first`` is None (every sequence from a reset);
    otherwise the sequences continue one another as in a stream: the first
    row of all gets ``first``, the others the last target before them. Only
    the sequences asked for are gathered, so a minibatch costs its own rows.
    Sequences have at least one step.

    Returns
    -------
    inputs : ndarray of shape (sum(lengths), n_features + n_outputs)
    starts : ndarray of shape (n_sequences,), the first row of each sequence.
    """
    lengths = np.asarray(lengths, dtype=np.intp)
    starts = np.zeros(lengths.shape[0], dtype=np.intp)
    np.cumsum(lengths[:-1], out=starts[1:])
    total = int(lengths.sum())
    step = np.arange(total, dtype=np.intp) - np.repeat(starts, lengths)
    x_rows = np.repeat(np.asarray(x_start, dtype=np.intp), lengths) + step
    y_rows = np.repeat(np.asarray(y_start, dtype=np.intp), lengths) + step
    m, o = values.shape[1], targets.shape[1]
    inputs = np.empty((total, m + o), dtype=values.dtype)
    inputs[:, :m] = values[x_rows]
    inputs[:, m:] = targets[np.maximum(y_rows - 1, 0)]
    if first is None:
        inputs[starts, m:] = 0
    else:
        # The sequences continue one another (a stream): each first row
        # feeds back the last target of the sequence before it.
        inputs[starts[1:], m:] = targets[y_rows[starts[1:] - 1]]
        inputs[0, m:] = first
    return inputs, starts


def _check_every_step(every_step):
    if not every_step:
        raise ValueError("output feedback needs a target at every step")
