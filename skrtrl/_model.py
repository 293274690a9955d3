"""The trained model: cell, flat parameters, optimizer and stream state.

An estimator owns one :class:`Model` (``_model``) once fitted. Everything
that training changes lives here, as plain numpy arrays and small objects,
so that pickling, failed-call atomicity (copy, then commit) and
``reset_state`` each have one place to look. The estimator keeps the
scikit-learn surface: validation, the epoch loop, fitted attributes.

Training goes through the cell interface of ``skrtrl._cells`` only:

* ``loss_and_gradient``: one minibatch, one kernel call, the exact gradient
  (or the method's estimate) plus the L2 term;
* ``apply_gradient``: clipping and one optimizer step, refusing non-finite
  results;
* ``train_online``: updates after every step, over independent sequences
  or the stream;
* ``advance``: the stream moves over observed rows without learning.
"""

import math

import numpy as np
from sklearn.utils import gen_batches

from ._optim import NoLearning, OnlineUpdate, clip_gradient


class Diverged(Exception):
    """The loss, the gradient or the parameters became NaN or infinite."""


class Model:
    """What training produces and changes.

    Parameters
    ----------
    cell : Cell
        The cell (possibly wrapped by a gradient method or output feedback).
    params : ndarray of shape (cell.n_params,)
        The flat parameter vector; ``views()`` are the named views into it.
    optimizer : SGDOptimizer or AdamOptimizer
        The optimizer and its state.

    Attributes
    ----------
    stream : dict or None
        The state of a stream (hidden state, influence and whatever the
        gradient method carries), or None before a stream starts.
    """

    def __init__(self, cell, params, optimizer):
        self.cell = cell
        self.params = params
        self.optimizer = optimizer
        self.stream = None

    @property
    def dtype(self):
        return self.params.dtype

    def views(self):
        """Named views into the flat parameters (``params_``)."""
        return self.cell.views(self.params)

    def take_views(self, user_views):
        """Copy entries of ``user_views`` (``params_``) that were replaced.

        Users may assign a new array to ``params_[name]``; its values are
        copied into the flat vector (shapes checked first, so that an error
        changes nothing). Returns fresh views when anything was replaced,
        else None.
        """
        views = self.views()
        replaced = {}
        for name, view in views.items():
            current = user_views.get(name)
            if current is None:
                replaced[name] = None
            elif not _is_same_view(current, view):
                # Sharing memory is not enough: a transposed or reversed
                # view of the parameters is new content.
                current = np.asarray(current)
                if current.shape != view.shape:
                    raise ValueError(
                        f"params_[{name!r}] has shape {current.shape}, "
                        f"expected {view.shape}."
                    )
                replaced[name] = current
        for name, current in replaced.items():
            if current is not None:
                views[name][...] = current
        return views if replaced else None

    @classmethod
    def from_format_1(cls, attributes, cell):
        """The model of an estimator saved in format 1.

        Format 1 kept the cell, the flat parameters, the optimizer and the
        stream state as separate attributes of the estimator; they are taken
        out of ``attributes``. ``cell`` is built anew from the estimator's
        settings.
        """
        del attributes["_cell"]
        model = cls(cell, attributes.pop("_flat_params"), attributes.pop("_optimizer"))
        model.stream = attributes.pop("_stream_state", None)
        if model.stream is not None and "ring" in model.stream:
            _widen_bptt_ring(model.stream, getattr(cell, "inner", cell))
        return model

    def replace_cell(self, cell):
        """Train from now on through ``cell``, a cell of the same layout.

        Gradient methods and feedback modes keep stream states of different
        kinds, so a running stream starts over.
        """
        if cell.n_params != self.cell.n_params:
            raise ValueError("the new cell has another parameter layout")
        self.cell = cell
        if self.stream is not None:
            self.reset_stream()

    def reset_stream(self):
        """Start the stream over from the zero state."""
        self.stream = self.cell.new_state(self.dtype)

    # -- training --------------------------------------------------------------
    def loss_and_gradient(self, batch, total_weight, loss, alpha, workspace):
        """Loss and gradient over a :class:`TrainingBatch`.

        Each target's weight is divided by ``total_weight``, so the loss is
        a weighted mean. L2 adds ``alpha / (2 * total_weight) * ||W||^2`` on
        the weight matrices, as scikit-learn's MLP does per minibatch (so a
        zero weight equals leaving a sequence out and a weight of 2 equals
        repeating it). Returns ``(0.0, None)`` when the total weight is zero.
        """
        if total_weight <= 0:
            return 0.0, None
        grad = np.zeros_like(self.params)
        value = self.cell.train_minibatch(
            self.params, grad, batch, 1.0 / total_weight, loss, workspace
        )
        if alpha:
            scale = alpha / total_weight
            penalized = self.params * workspace["penalty"]
            with np.errstate(over="ignore"):  # divergence is caught later
                value += 0.5 * scale * float(np.dot(penalized, penalized))
            grad += scale * penalized
        return value, grad

    def workspace(self, batch_size, n_threads):
        """The buffers of minibatch training, the L2 mask included."""
        workspace = self.cell.workspace(batch_size, n_threads, self.dtype)
        workspace["penalty"] = self.cell.penalty_mask(self.dtype)
        return workspace

    def apply_gradient(self, loss, grad, clip_norm):
        """Clip ``grad`` and take one optimizer step.

        Raises :class:`Diverged`, leaving parameters and optimizer as they
        were, when the loss, the gradient or the new parameters are not
        finite.
        """
        if not (np.isfinite(loss) and np.isfinite(grad).all()):
            raise Diverged
        clip_gradient(grad, clip_norm)
        before = (self.params.copy(), self.optimizer.snapshot())
        self.optimizer.step(self.params, grad)
        if not np.isfinite(self.params).all():
            self.params[:] = before[0]
            self.optimizer = before[1]
            raise Diverged

    def minibatch_epoch(self, data, order, batch_size, settings, workspace):
        """One pass over the sequences ``order`` of a :class:`TrainingSet`.

        One kernel call and one optimizer step per minibatch. ``settings``
        holds the ``loss`` name, ``alpha`` and ``clip_norm``. Returns the
        mean loss per sequence.
        """
        accumulated = 0.0
        for batch in gen_batches(order.shape[0], batch_size):
            idx = order[batch]
            loss, grad = self.loss_and_gradient(
                data.batch(idx),
                data.weights[idx].sum(),
                settings["loss"],
                settings["alpha"],
                workspace,
            )
            if grad is None:
                continue
            self.apply_gradient(loss, grad, settings["clip_norm"])
            accumulated += loss * idx.shape[0]
        return accumulated / max(order.shape[0], 1)

    def online_epoch(self, data, order, settings, *, stream, outputs=None):
        """One pass with an update after every step that has a target.

        ``outputs`` (stream only): an array of one row per step that receives
        each step's readout pre-activation, computed before the update of
        that step (see ``train_online``). Returns the loss per unit of
        target weight.
        """
        penalty = settings["alpha"] * self.cell.penalty_mask(self.dtype)
        update = OnlineUpdate(self.optimizer, penalty, settings["clip_norm"])
        loss_rows = self.train_online(
            data.batch(order), update, settings["loss"], stream=stream,
            outputs=outputs,
        )  # fmt: skip
        total = data.weights[order].sum()
        return float(loss_rows.sum() / total) if total > 0 else 0.0

    def train_online(self, batch, update, loss, *, stream, outputs=None):
        """Update after every step with a target; the loss of each sequence.

        With ``stream``, the sequences continue the stream state; otherwise
        each starts from zero. ``update`` is an ``OnlineUpdate`` over this
        model's optimizer. Raises :class:`Diverged` after restoring the
        parameters and optimizer of before the call when anything became
        non-finite (updates happen inside the compiled loop; those are the
        last finite values known here).

        ``outputs``: None, or an array laid out like ``batch.targets`` that
        receives, for every target, the readout pre-activation the model
        gives before it learns from that target's step, in the same kernel
        call; in stream mode it is what ``outputs`` (prediction) returns
        for that row from the state and weights of the moment.
        """
        if stream:
            if self.stream is None:
                self.reset_stream()
            state, reset = self.stream, False
        else:
            state, reset = self.cell.new_state(self.dtype), True
        before = (self.params.copy(), self.optimizer.snapshot())
        loss_rows = self.cell.train_online(
            self.params, update, batch, loss, state, reset, outputs
        )
        if not (_all_finite(loss_rows) and np.isfinite(self.params).all()):
            self.params[:] = before[0]
            self.optimizer = before[1]
            raise Diverged
        return loss_rows

    def advance(self, batch, loss):
        """Move the stream over ``batch`` exactly as training would, not learning.

        The hidden state, the influence and (with output feedback) the value
        fed back next move on; parameters and optimizer stay as they are.
        """
        if self.stream is None:
            self.reset_stream()
        no_learning = NoLearning(self.cell.n_params, self.dtype)
        self.cell.train_online(
            self.params, no_learning, batch, loss, self.stream, False
        )

    # -- prediction ------------------------------------------------------------
    def outputs(self, packed, loss, every_step, *, stream):
        """Readout pre-activations: one row per sequence, or per step.

        With ``stream`` the rows run on from the stream state, which is left
        unchanged. With output feedback the loop is closed: each step's
        output is fed into the next.
        """
        starts = np.ascontiguousarray(packed.starts)
        lengths = np.ascontiguousarray(packed.lengths)
        return self.sequence_outputs(
            packed.values, starts, lengths, loss, every_step, stream=stream
        )

    def sequence_outputs(self, values, starts, lengths, loss, every_step, *, stream):
        """As ``outputs``, over packed ``values`` with the sequences' ``starts``
        and ``lengths`` given (contiguous intp arrays)."""
        state = self.stream if stream else None
        if hasattr(self.cell, "closed_loop_outputs"):
            return self.cell.closed_loop_outputs(
                self.params, values, starts, lengths, loss, every_step, state
            )
        h0 = None if state is None else state["hidden"]
        H = self.cell.forward(self.params, values, starts, lengths, every_step, h0)
        return self.cell.readout(self.params, H)


def _all_finite(values):
    """Whether the few values (one loss per sequence) are all finite."""
    return all(map(math.isfinite, values.tolist()))


def _is_same_view(array, view):
    """Whether ``array`` looks at exactly the memory of ``view``, as laid out."""
    return (
        isinstance(array, np.ndarray)
        and array.dtype == view.dtype
        and array.shape == view.shape
        and array.strides == view.strides
        and array.__array_interface__["data"][0] == view.__array_interface__["data"][0]
    )


def _widen_bptt_ring(stream, method_cell):
    """Format 1's BPTT step records lacked the constant inputs after [x, h].

    A record is [x (m) | h (n) | ones | coefficients | spare] since format 2;
    the ones are inserted where they belong, so a stream continues exactly.
    """
    ring = stream["ring"]
    missing = method_cell._record - ring.shape[1]
    if missing > 0:
        at = method_cell.m + method_cell.n
        ones = np.ones((ring.shape[0], missing), dtype=ring.dtype)
        stream["ring"] = np.concatenate([ring[:, :at], ones, ring[:, at:]], axis=1)
