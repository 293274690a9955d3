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

Training checks its losses against the divergence rule of
``skrtrl._divergence`` (the model's ``watch``) and raises ``Diverged``; the
caller restores a ``snapshot``. Kernels that a signal handler interrupted
(Ctrl-C) stop after a complete step and return; the exception is raised
here, once what they returned is stored (``_interrupt.raise_pending_signal``).
"""

import math

import numpy as np
from sklearn.utils import gen_batches

from ._cells import CELLS
from ._divergence import STREAM_SEGMENT, Diverged, LossWatch
from ._kernels._interrupt import raise_pending_signal
from ._optim import NoLearning, OnlineUpdate, clip_gradient
from ._sequences import TrainingBatch

__all__ = ["Diverged", "Model"]

#: The entries of a stream state that a forward pass reads.
FORWARD_STATE = ("hidden", "feedback")


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
    watch : LossWatch
        The divergence rule's record of the training run.
    """

    def __init__(self, cell, params, optimizer):
        self.cell = cell
        self.params = params
        self.optimizer = optimizer
        self.stream = None
        self.watch = LossWatch()

    def __setstate__(self, state):
        # Models saved before the divergence rule had no watch.
        state.setdefault("watch", LossWatch())
        self.__dict__.update(state)
        if self.stream is not None and "ring" in self.stream:
            _widen_lru_ring(self.stream, getattr(self.cell, "inner", self.cell))

    def snapshot(self):
        """The parameters and the optimizer state, for ``restore``."""
        return self.params.copy(), self.optimizer.snapshot()

    def restore(self, snapshot):
        """Go back to a ``snapshot`` (in place: ``params_`` stay valid)."""
        self.params[:] = snapshot[0]
        self.optimizer = snapshot[1].snapshot()

    def stream_snapshot(self):
        """Copies of the stream entries a forward pass reads, or None.

        The hidden state and (with output feedback) the value fed back next:
        enough to predict from where the stream stands, at a fraction of a
        full copy, which would also hold the influence and whatever the
        gradient method carries. ``outputs`` and ``sequence_outputs`` take
        it as ``state``.
        """
        if self.stream is None:
            return None
        return {
            key: self.stream[key].copy() for key in FORWARD_STATE if key in self.stream
        }

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
        # Non-finite values are the divergence check's to report.
        with np.errstate(all="ignore"):
            value = self.cell.train_minibatch(
                self.params, grad, batch, 1.0 / total_weight, loss, workspace
            )
            raise_pending_signal()
            if alpha:
                scale = float(alpha / total_weight)
                penalized = self.params * workspace["penalty"]
                value += 0.5 * scale * float(np.dot(penalized, penalized))
                grad += scale * penalized
        return float(value), grad

    def workspace(self, batch_size, n_threads):
        """The buffers of minibatch training, the L2 mask included."""
        workspace = self.cell.workspace(batch_size, n_threads, self.dtype)
        workspace["penalty"] = self.cell.penalty_mask(self.dtype)
        return workspace

    def apply_gradient(self, loss, grad, clip_norm):
        """Clip ``grad`` and take one optimizer step.

        Raises :class:`Diverged` when the loss, the gradient or the new
        parameters are not finite (the caller restores a ``snapshot``).
        """
        if not (np.isfinite(loss) and np.isfinite(grad).all()):
            raise Diverged
        with np.errstate(all="ignore"):
            clip_gradient(grad, clip_norm)
            self.optimizer.step(self.params, grad)
        if not np.isfinite(self.params).all():
            raise Diverged

    def minibatch_epoch(self, data, order, batch_size, settings, workspace):
        """One pass over the sequences ``order`` of a :class:`TrainingSet`.

        One kernel call and one optimizer step per minibatch. ``settings``
        holds the ``loss`` name, ``alpha`` and ``clip_norm``. Returns the
        mean loss per sequence. Each minibatch's loss is checked by the
        divergence rule before its step.
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
            self.watch.check(loss)
            self.apply_gradient(loss, grad, settings["clip_norm"])
            accumulated += loss * idx.shape[0]
        return accumulated / max(order.shape[0], 1)

    def online_epoch(self, data, order, settings, *, stream, outputs=None):
        """One pass with an update after every step that has a target.

        ``outputs`` (stream only): an array of one row per step that receives
        each step's readout pre-activation, computed before the update of
        that step (see ``train_online``). Returns the loss per unit of
        target weight. The losses of independent sequences are checked by
        the divergence rule here, those of a stream in ``train_online``.
        """
        penalty = settings["alpha"] * self.cell.penalty_mask(self.dtype)
        update = OnlineUpdate(self.optimizer, penalty, settings["clip_norm"])
        loss_rows = self.train_online(
            data.batch(order), update, settings["loss"], stream=stream,
            outputs=outputs,
        )  # fmt: skip
        if not stream:
            weights = data.weights[order]
            kept = weights > 0
            self.watch.check(loss_rows[kept] / weights[kept])
        total = data.weights[order].sum()
        return float(loss_rows.sum() / total) if total > 0 else 0.0

    def train_online(self, batch, update, loss, *, stream, outputs=None):
        """Update after every step with a target; the loss of each sequence.

        With ``stream``, the sequences continue the stream state; otherwise
        each starts from zero. ``update`` is an ``OnlineUpdate`` over this
        model's optimizer. Raises :class:`Diverged` after restoring the
        parameters and optimizer of before the call when anything became
        non-finite (updates happen inside the compiled loop; those are the
        last finite values known here) or, for a stream, when a loss broke
        the divergence rule: a stream call runs in segments of at most
        ``STREAM_SEGMENT`` rows (the same arithmetic), and the loss of each
        is checked.

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
        pieces = batch
        if stream and batch.lengths.shape[0] == 1:
            pieces = segmented(batch, STREAM_SEGMENT)
        before = (self.params.copy(), self.optimizer.snapshot())
        with np.errstate(all="ignore"):
            loss_rows = self.cell.train_online(
                self.params, update, pieces, loss, state, reset, outputs
            )
        raise_pending_signal()
        try:
            if not (_all_finite(loss_rows) and np.isfinite(self.params).all()):
                raise Diverged
            if stream:
                self.watch.check_stream(
                    loss_rows, _segment_weights(pieces), pieces.lengths.tolist()
                )
        except Diverged:
            self.params[:] = before[0]
            self.optimizer = before[1]
            raise
        if pieces is not batch:
            loss_rows = np.array([loss_rows.sum()])
        return loss_rows

    def advance(self, batch, loss):
        """Move the stream over ``batch`` exactly as training would, not learning.

        The hidden state, the influence and (with output feedback) the value
        fed back next move on; parameters and optimizer stay as they are.
        """
        if self.stream is None:
            self.reset_stream()
        no_learning = NoLearning(self.cell.n_params, self.dtype)
        with np.errstate(all="ignore"):
            self.cell.train_online(
                self.params, no_learning, batch, loss, self.stream, False
            )
        raise_pending_signal()

    # -- prediction ------------------------------------------------------------
    def outputs(self, packed, loss, every_step, *, stream, state=None):
        """Readout pre-activations: one row per sequence, or per step.

        With ``stream`` the rows run on from the stream state, which is left
        unchanged; ``state`` (a ``stream_snapshot``) replaces that state.
        With output feedback the loop is closed: each step's output is fed
        into the next.
        """
        starts = np.ascontiguousarray(packed.starts)
        lengths = np.ascontiguousarray(packed.lengths)
        return self.sequence_outputs(
            packed.values, starts, lengths, loss, every_step, stream=stream,
            state=state,
        )  # fmt: skip

    def sequence_outputs(
        self, values, starts, lengths, loss, every_step, *, stream, state=None
    ):
        """As ``outputs``, over packed ``values`` with the sequences' ``starts``
        and ``lengths`` given (contiguous intp arrays)."""
        if state is None and stream:
            state = self.stream
        if hasattr(self.cell, "closed_loop_outputs"):
            return self.cell.closed_loop_outputs(
                self.params, values, starts, lengths, loss, every_step, state
            )
        h0 = None if state is None else state["hidden"]
        H = self.cell.forward(self.params, values, starts, lengths, every_step, h0)
        return self.cell.readout(self.params, H)


def segmented(batch, size):
    """``batch`` with each sequence cut into consecutive pieces of ``size`` rows.

    For a stream (targets at every step, each piece continuing the state of
    the one before) training is the same; the kernel then reports a loss
    per piece, which the divergence rule checks.
    """
    lengths = batch.lengths
    if lengths.shape[0] == 0 or lengths.max() <= size:
        return batch
    pieces = np.maximum((lengths + size - 1) // size, 1)
    owner = np.repeat(np.arange(lengths.shape[0]), pieces)
    within = np.arange(owner.shape[0]) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    offset = within * size
    new_lengths = np.minimum(lengths[owner] - offset, size)
    return TrainingBatch(
        batch.values,
        batch.targets,
        np.ascontiguousarray(batch.x_start[owner] + offset),
        np.ascontiguousarray(batch.y_start[owner] + offset),
        np.ascontiguousarray(new_lengths),
        batch.target_weight,
        batch.every_step,
    )


def _segment_weights(batch):
    """Target weight of each sequence of a stream ``batch`` (every step has
    a target)."""
    if batch.lengths.shape[0] == 1:
        start, length = int(batch.y_start[0]), int(batch.lengths[0])
        return [float(batch.target_weight[start : start + length].sum())]
    ends = np.concatenate(([0.0], np.cumsum(batch.target_weight)))
    return (ends[batch.y_start + batch.lengths] - ends[batch.y_start]).tolist()


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


def _widen_lru_ring(stream, method_cell):
    """The LRUs' step records gained three coefficient vectors on 4 Dec 2026.

    They follow the first 14 (``LRU_DNU``, ``LRU_DTH`` and ``LRU_GAM`` in
    ``_kernels/_cells.pxd``: lambda's and gamma's numbers of theta alone,
    read back by the next step where theta stays fixed). A BPTT stream's
    ring saved before gets them as zeros, which BPTT never reads (its steps
    compute them afresh), and the gated LRU's gate vectors move to their new
    place, so the stream continues exactly.
    """
    ring = stream["ring"]
    n = method_cell.n
    lru_kinds = (CELLS["lru"].kind, CELLS["glru"].kind)
    if (
        method_cell.kind not in lru_kinds
        or ring.shape[1] != method_cell._record - 3 * n
    ):
        return
    at = method_cell.m + 2 * n + 1 + 14 * n
    zeros = np.zeros((ring.shape[0], 3 * n), dtype=ring.dtype)
    stream["ring"] = np.concatenate([ring[:, :at], zeros, ring[:, at:]], axis=1)


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
