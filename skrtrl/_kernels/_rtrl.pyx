# cython: language_level=3
"""Exact RTRL and SnAp-1: the entry points of the Python cells.

Every cell of ``_cells.pxd`` is trained by the drivers of ``_rtrl.pxd``,
which hold the maths; this module checks the arguments and hands the
drivers their bundles:

* ``batch``: an ``skrtrl._sequences.TrainingBatch`` (the packed inputs and
  targets, their starts, lengths and weights), read by
  ``_common.pack_batch``;
* ``update``: an ``skrtrl._optim.OnlineUpdate`` (optimizer settings and
  state, L2 penalty, clipping, update count, whether to learn at all), read
  by ``_common.update_rule``; the update count goes back through
  ``update.count``;
* ``params``: the cell's flat parameter vector, [theta (R x q, row-major)
  | bias_hh (n, the Elman and diagonal cells only) | W_out (o x width) |
  b_out (o)] (``_cells.flat_size``; width n, or 2n for the readout of the
  mean beside the last h, ``_common.pooled_width``);
* ``workspace`` (minibatches): the per-sequence rows ``"grad"`` (>= B,
  R*q + o*width + o) and ``"loss"`` (>= B,), written, and the per-thread rows
  ``"influence"`` (``rtrl_influence_size``) and ``"scratch"``
  (``rtrl_scratch_size``); one thread per row;
* ``state`` (online): the stream state, ``"hidden"`` (S numbers),
  ``"influence"`` (the per-unit buffer, or the two dense ones) and
  ``"parity"`` (which dense buffer is current), read and written.

``kind``, ``n``, ``activation`` and ``loss_kind`` are the codes of the
cell, its size and the codes of ``_common.pxd``; ``per_unit`` selects the
per-unit influence (SnAp-1, and the exact influence of the element-wise
cells).
"""

# Bounds and wrap-around checks are set for the whole module by setup.py:
# off, or on with SKRTRL_DEBUG=1 to audit the kernels.
from cython cimport floating
from cpython.dict cimport PyDict_GetItem, PyDict_Size
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_CheckExact
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.ref cimport PyObject
from libc.math cimport fabsf, isfinite
from libc.string cimport memcpy

from ._cells cimport (
    N_CELLS, cell_columns, cell_output_blocks, cell_rows, cell_state, flat_size,
)
from ._common cimport (
    POOL_LAST, POOL_MEAN_LAST, Packed, UpdateRule, output_rows, pack_batch,
    pooled_width, set_pooling,
    _exp_nonpositive, sigmoid, tanh_of, update_rule,
)

import numpy as np

from ._blocks import _set_block_columns  # noqa: F401 (benchmarks, tests)


def _check_kind(int kind, bint per_unit=True):
    if kind < 0 or kind >= N_CELLS:
        raise ValueError("unknown cell kind")
    if cell_output_blocks(kind) != 1 and not per_unit:
        # The dense drivers read h alone: a cell with an output map of its
        # own (the LRU, element-wise) runs on its exact per-unit influence.
        raise ValueError("this cell's exact RTRL is its per-unit influence")


def rtrl_sizes(int kind, int n, int m):
    """(rows R, columns q, state S) of the cell ``kind``."""
    _check_kind(kind)
    return cell_rows(kind, n), cell_columns(kind, n, m), cell_state(kind, n)


def rtrl_influence_size(int kind, int n, int m, bint per_unit):
    """Influence numbers per sequence (per thread, or of a stream)."""
    _check_kind(kind)
    return influence_size(kind, n, m, per_unit)


def rtrl_pool_size(int kind, int n, int m, bint per_unit):
    """Numbers per sequence (per thread) of a pooled readout's accumulator,
    which ``rtrl_minibatch`` reads after ``rtrl_influence_size`` numbers of
    each ``"influence"`` row."""
    _check_kind(kind)
    return pool_size(kind, n, m, per_unit)


def rtrl_scratch_size(int kind, int n, int m, int o):
    """Numbers of scratch memory one thread of the training kernels needs."""
    _check_kind(kind)
    return scratch_layout(kind, n, m, o).size


cdef inline int _check_params(int kind, int n, int m, int o,
                              Py_ssize_t size, int width) except -1:
    """ValueError unless ``size`` fits the cell and a readout of
    ``width`` inputs."""
    if size != flat_size(kind, n, m, o, width):
        raise ValueError(f"params must have {flat_size(kind, n, m, o, width)} "
                         "entries for this cell")
    return 0


def rtrl_minibatch(
    int kind, int n, int activation, int loss_kind, batch,
    double weight_scale, const floating[::1] params, dict workspace,
    bint per_unit=False, bint dense=False, int pooling=0,
):
    """Run a minibatch forward with exact RTRL; gradients per sequence.

    Threads take the sequences one at a time and write one gradient row and
    loss per sequence into the ``workspace`` (see the module docstring);
    each target's weight is multiplied by ``weight_scale``. ``dense`` uses
    the dense (2n x 2n) state Jacobian of the LSTM in the GEMM instead of
    splitting off its diagonal half (for tests and benchmarks).
    ``pooling``: what each sequence's one target reads (``_common.pxd``'s
    POOL_*: its last h, their mean or maximum over time, or the mean beside
    the last h, read by a readout of 2n inputs); a pooled readout needs
    ``rtrl_pool_size`` more numbers in each ``"influence"`` row.
    """
    _check_kind(kind, per_unit)
    cdef:
        Packed data = pack_batch(batch, weight_scale, <floating*> NULL)
        int m = data.m
        int o = data.o
        int q = cell_columns(kind, n, m)
        int W = cell_rows(kind, n) * q
        int width = pooled_width(pooling, n)
        Py_ssize_t size = W + o * width + o
        floating[:, ::1] grad_rows = workspace["grad"]
        double[::1] loss_rows = workspace["loss"]
        floating[:, ::1] influence = workspace["influence"]
        floating[:, ::1] scratch = workspace["scratch"]
        const floating* theta
    set_pooling(&data, pooling)
    _check_params(kind, n, m, o, params.shape[0], width)
    if grad_rows.shape[0] < data.count or grad_rows.shape[1] != size:
        raise ValueError("grad_rows has the wrong size")
    if influence.shape[1] < (influence_size(kind, n, m, per_unit)
                             + (pool_size(kind, n, m, per_unit) if pooling
                                else 0)):
        raise ValueError("influence workspace too small")
    if scratch.shape[1] < scratch_layout(kind, n, m, o).size:
        raise ValueError("scratch workspace too small")
    if loss_rows.shape[0] < data.count:
        raise ValueError("loss_rows too small")
    if data.count == 0:
        return
    theta = &params[0]
    with nogil:
        run_minibatch(
            kind, activation, loss_kind, &data, n, q, theta, theta + W,
            theta + params.shape[0] - o * width - o, theta + params.shape[0] - o,
            per_unit, dense, &grad_rows[0, 0], grad_rows.shape[1],
            &influence[0, 0], influence.shape[1], &scratch[0, 0],
            scratch.shape[1], min(influence.shape[0], scratch.shape[0]),
            &loss_rows[0])


def rtrl_online(
    int kind, int n, int activation, int loss_kind, batch, update,
    dict state, bint reset_state, floating[::1] params, bint per_unit=False,
    floating[:, ::1] outputs=None,
):
    """Real-time RTRL: update the parameters after every step with a target.

    Williams & Zipser's algorithm: the influence is carried on under the
    changing weights. Sequences run one after the other, in the given
    order, each from a zero state when ``reset_state``; otherwise the first
    one continues from ``state`` (a stream) and the final state is left
    there. ``params`` is updated in place by the rule of ``update`` (with
    ``update.learn`` false, the state and influence advance only: no
    gradient, no update). ``outputs``: None, or an array shaped like the
    targets whose row k receives target k's readout pre-activation,
    computed before its update: the prediction of that step by the model of
    the moment.

    Returns
    -------
    loss_rows : ndarray of shape (B,)
        The weighted loss of each sequence.
    """
    _check_kind(kind, per_unit)
    cdef:
        Packed data = pack_batch(batch, 1.0, <floating*> NULL)
        UpdateRule rule = update_rule(update, params.shape[0],
                                      <floating*> NULL)
        int m = data.m
        int o = data.o
        floating[::1] hidden = state["hidden"]
        floating[::1] influence = np.asarray(state["influence"]).reshape(-1)
        int parity = state.get("parity", 0)
        floating[::1] grad = np.empty_like(params)
        floating[::1] scratch = np.empty_like(
            params, shape=scratch_layout(kind, n, m, o).size)
        double[::1] loss_rows = np.empty(data.count, dtype=np.float64)
        floating* out = output_rows(outputs, batch.targets)
    _check_params(kind, n, m, o, params.shape[0], n)
    if influence.shape[0] != influence_size(kind, n, m, per_unit):
        raise ValueError("the stream's influence has the wrong size")
    if hidden.shape[0] != cell_state(kind, n):
        raise ValueError("the stream's hidden state has the wrong size")
    with nogil:
        run_online(
            kind, activation, loss_kind, &data, reset_state, &params[0], n,
            &rule, &hidden[0], &influence[0], &parity, per_unit, &grad[0],
            &scratch[0], &loss_rows[0] if data.count else NULL, out)
    state["parity"] = parity
    update.count(rule.t)
    return np.asarray(loss_rows)


def rtrl_forward(
    int kind, int n, int activation, const floating[:, ::1] X,
    const Py_ssize_t[::1] x_start, const Py_ssize_t[::1] lengths,
    const floating[::1] params, bint every_step, floating[:, ::1] H,
    const floating[::1] s0, int pooling=0,
):
    """Hidden states of the cell, each sequence starting from ``s0``.

    ``X`` holds the steps of all sequences, each sequence's contiguous from
    row ``x_start[b]``. ``params``: the flat vector (the readout is not
    read). ``H`` (n columns) receives h after every step (rows laid out like
    ``X``) when ``every_step``, otherwise the final h of sequence b (or,
    with ``pooling``, their mean or maximum over its steps, or the mean
    beside the final h: 2n columns) in row b.
    ``s0`` is the full initial state (S numbers: h, or [h, c] for the
    LSTMs).
    """
    _check_kind(kind)
    cdef:
        int m = X.shape[1]
        int W = cell_rows(kind, n) * cell_columns(kind, n, m)
        floating[::1] scratch = np.empty_like(
            s0, shape=forward_scratch_size(kind, n, m))
    if params.shape[0] < W + n or s0.shape[0] != cell_state(kind, n):
        raise ValueError("params or s0 of the wrong size")
    if pooling < POOL_LAST or pooling > POOL_MEAN_LAST:
        raise ValueError("unknown pooling code")
    if H.shape[1] != (n if every_step else pooled_width(pooling, n)):
        raise ValueError("H must have n columns (2n for the mean beside "
                         "the last h)")
    if lengths.shape[0] == 0:
        return
    with nogil:
        run_forward(kind, activation, n, m, &X[0, 0], &x_start[0],
                    &lengths[0], lengths.shape[0], &params[0],
                    &params[0] + W, every_step, &H[0, 0], &s0[0],
                    &scratch[0], pooling)


ctypedef int (*get_threads_t)() noexcept nogil
ctypedef void (*set_threads_t)(int) noexcept nogil

#: A key ``RowStream.watch`` requires absent.
GUARD_ABSENT = object()

#: BLAS libraries a RowStream holds to one thread around its steps.
DEF MAX_BLAS = 4


cdef struct GuardEntry:
    PyObject* mapping
    PyObject* key
    PyObject* value
    Py_ssize_t size


cdef class RowStream:
    """One row of a float64 stream per call, its arrays bound once.

    ``rtrl_online`` reads some twenty arrays out of its bundles on every
    call; for a stream that learns one row per call that costs far more
    than the step. A ``RowStream`` binds them when it is made: the
    parameters, the update rule of ``update`` (optimizer state, L2 penalty,
    clipping) and the stream ``state`` (whose arrays must stay the same
    objects: the caller drops the ``RowStream`` when any of them is
    replaced). ``learn`` is ``rtrl_online`` on one row, bit for bit;
    ``hidden_after`` the state ``rtrl_forward`` gives after one row.

    A step whose loss or parameters are not finite is undone before
    ``learn`` returns (the parameters and optimizer state of before it);
    ``undo`` does the same for the last step afterwards, for a caller whose
    own divergence rule refuses it.

    ``blas``: ``(get, set)`` addresses of the thread-count functions of the
    BLAS libraries to hold to one thread around each step (see
    ``skrtrl._parallel.blas_thread_functions``), as ``blas_single_threaded``
    does around the other kernel calls; a call from Python there costs more
    than the step.
    """

    cdef:
        int kind, n, activation, loss_kind, m, o
        bint per_unit, adam, can_undo
        Py_ssize_t size
        object update
        dict state
        object keep
        Packed data
        UpdateRule rule
        double* params
        double* hidden
        double* influence
        double* grad
        double* scratch
        double* forward_scratch
        double* saved
        Py_ssize_t zero
        Py_ssize_t one
        double unit_weight
        long t_before
        int n_blas
        get_threads_t blas_get[MAX_BLAS]
        set_threads_t blas_set[MAX_BLAS]
        int blas_threads[MAX_BLAS]
        double* row
        double* target
        double[::1] h_out
        list guard
        GuardEntry* entries
        Py_ssize_t n_entries
        readonly object hidden_out

    def __init__(self, int kind, int n, int activation, int loss_kind,
                 int m, int o, double[::1] params, update, dict state,
                 bint per_unit=False, tuple blas=()):
        _check_kind(kind)
        if len(blas) > MAX_BLAS:
            raise ValueError(f"at most {MAX_BLAS} BLAS libraries")
        _check_params(kind, n, m, o, params.shape[0], n)
        cdef:
            double[::1] hidden = state["hidden"]
            double[::1] influence = np.asarray(state["influence"]).reshape(-1)
            double[::1] buffers
            Py_ssize_t size = params.shape[0]
            Py_ssize_t scratch_size = scratch_layout(kind, n, m, o).size
            Py_ssize_t forward_size = forward_scratch_size(kind, n, m)
        if influence.shape[0] != influence_size(kind, n, m, per_unit):
            raise ValueError("the stream's influence has the wrong size")
        if hidden.shape[0] != cell_state(kind, n):
            raise ValueError("the stream's hidden state has the wrong size")
        self.rule = update_rule(update, size, <double*> NULL)
        self.kind, self.n, self.activation = kind, n, activation
        self.loss_kind, self.m, self.o = loss_kind, m, o
        self.per_unit, self.size = per_unit, size
        self.adam = self.rule.state_b != self.rule.state_a
        self.update, self.state = update, state
        # grad | scratch | forward scratch | saved params, state_a, state_b
        # | the row and target of ``set_row`` and ``learn_value``
        buffers = np.empty(size + scratch_size + forward_size + 3 * size
                           + m + o)
        self.keep = (params, hidden, influence, buffers)
        self.params, self.hidden = &params[0], &hidden[0]
        self.influence = &influence[0]
        self.grad = &buffers[0]
        self.scratch = self.grad + size
        self.forward_scratch = self.scratch + scratch_size
        self.saved = self.forward_scratch + forward_size
        self.row = self.saved + 3 * size
        self.target = self.row + m
        self.hidden_out = np.empty(n)
        self.h_out = self.hidden_out
        self.guard = []
        self.zero, self.one, self.unit_weight = 0, 1, 1.0
        self.data.x_start = self.data.y_start = &self.zero
        self.data.lengths = &self.one
        self.data.target_weight = &self.unit_weight
        self.data.count = 1
        self.data.m, self.data.o = m, o
        self.data.every_step = True
        self.data.weight_scale = 1.0
        self.can_undo = False
        self.n_blas = len(blas)
        for i, (get, put) in enumerate(blas):
            self.blas_get[i] = <get_threads_t> <size_t> get
            self.blas_set[i] = <set_threads_t> <size_t> put

    cdef void _blas_to_one(self) noexcept nogil:
        cdef int i
        for i in range(self.n_blas):
            self.blas_threads[i] = self.blas_get[i]()
            if self.blas_threads[i] != 1:
                self.blas_set[i](1)

    cdef void _blas_back(self) noexcept nogil:
        cdef int i
        for i in range(self.n_blas):
            if self.blas_threads[i] != 1:
                self.blas_set[i](self.blas_threads[i])

    def learn(self, const double[:, ::1] X, const double[:, ::1] Y):
        """Learn from one row (X: 1 x m, Y: 1 x o); its weighted loss.

        Returns NaN, with the step undone, when the loss or a parameter
        became non-finite.
        """
        if X.shape[0] != 1 or X.shape[1] != self.m:
            raise ValueError("X must be one row of the stream's features")
        if Y.shape[0] != 1 or Y.shape[1] != self.o:
            raise ValueError("Y must be one row of the stream's outputs")
        return self._learn(&X[0, 0], &Y[0, 0])

    def learn_value(self, double target):
        """``learn`` on the row of the last ``set_row`` and the target
        ``target`` (a stream of one output)."""
        if self.o != 1:
            raise ValueError("learn_value needs a stream of one output")
        self.target[0] = target
        return self._learn(self.row, self.target)

    def learn_target(self, const double[:, ::1] Y):
        """``learn`` on the row of the last ``set_row`` and ``Y`` (1 x o)."""
        if Y.shape[0] != 1 or Y.shape[1] != self.o:
            raise ValueError("Y must be one row of the stream's outputs")
        return self._learn(self.row, &Y[0, 0])

    cdef double _learn(self, const double* x, const double* y) except? -1:
        cdef:
            double loss = 0.0
            int parity = self.state.get("parity", 0)
            bint finite = True
            Py_ssize_t i, size = self.size
        self.data.values = x
        self.data.targets = y
        # The update count may have moved through another path since.
        self.rule.t = self.update.optimizer.t
        self.t_before = self.rule.t
        with nogil:
            self._blas_to_one()
            memcpy(self.saved, self.params, size * sizeof(double))
            memcpy(self.saved + size, self.rule.state_a, size * sizeof(double))
            if self.adam:
                memcpy(self.saved + 2 * size, self.rule.state_b,
                       size * sizeof(double))
            run_online(
                self.kind, self.activation, self.loss_kind, &self.data, False,
                self.params, self.n, &self.rule, self.hidden, self.influence,
                &parity, self.per_unit, self.grad, self.scratch, &loss, NULL)
            self._blas_back()
            finite = isfinite(loss)
            for i in range(size):
                if not isfinite(self.params[i]):
                    finite = False
                    break
        self.state["parity"] = parity
        self.can_undo = True
        if not finite:
            self.undo()
            return float("nan")
        self.update.optimizer.t = self.rule.t
        return loss

    def undo(self):
        """Restore the parameters and optimizer state of before the last
        ``learn`` (the stream state is not restored: reset it)."""
        if not self.can_undo:
            raise RuntimeError("nothing to undo")
        cdef Py_ssize_t size = self.size
        memcpy(self.params, self.saved, size * sizeof(double))
        memcpy(<double*> self.rule.state_a, self.saved + size,
               size * sizeof(double))
        if self.adam:
            memcpy(<double*> self.rule.state_b, self.saved + 2 * size,
                   size * sizeof(double))
        self.update.optimizer.t = self.rule.t = self.t_before
        self.can_undo = False

    def hidden_after(self, const double[:, ::1] X, double[::1] h):
        """Write into ``h`` (n) the hidden output after one row ``X`` (1 x m)
        from the stream state, which is left unchanged."""
        if X.shape[0] != 1 or X.shape[1] != self.m or h.shape[0] != self.n:
            raise ValueError("X must be one row of the features, h of size n")
        cdef int W = cell_rows(self.kind, self.n) * cell_columns(
            self.kind, self.n, self.m)
        with nogil:
            self._blas_to_one()
            run_forward(self.kind, self.activation, self.n, self.m, &X[0, 0],
                        &self.zero, &self.one, 1, self.params,
                        self.params + W, False, &h[0], self.hidden,
                        self.forward_scratch, POOL_LAST)
            self._blas_back()

    def set_row(self, list values):
        """Take ``values`` (a list of m floats) as the row of the next
        ``predict_hidden``, ``learn_value`` or ``learn_target``.

        Returns False, taking nothing, unless every value is a finite
        Python ``float`` (a caller converts anything else itself).
        """
        cdef:
            Py_ssize_t j, m = self.m
            PyObject* v
            double value
        if PyList_GET_SIZE(values) != m:
            return False
        for j in range(m):
            v = PyList_GET_ITEM(values, j)
            if not PyFloat_CheckExact(<object> v):
                return False
            if not isfinite(PyFloat_AS_DOUBLE(<object> v)):
                return False
        for j in range(m):
            self.row[j] = PyFloat_AS_DOUBLE(<object> PyList_GET_ITEM(values, j))
        return True

    def predict_hidden(self):
        """``hidden_after`` the row of the last ``set_row``, into
        ``hidden_out`` (n)."""
        self._forward()

    def watch(self, list guard):
        """Remember what ``unchanged`` checks: ``(mapping, key, value)``
        entries, each a dict whose ``key`` must still hold that very object
        (``value`` ``GUARD_ABSENT``: must be absent), or
        ``(mapping, None, size)``, a dict that must still hold ``size``
        entries."""
        cdef Py_ssize_t i, count = len(guard)
        cdef GuardEntry* entries
        for mapping, key, value in guard:
            if type(mapping) is not dict:
                raise TypeError("the guard watches dicts")
            if key is None and type(value) is not int:
                raise TypeError("a size entry holds an int")
        entries = <GuardEntry*> PyMem_Malloc(max(count, 1) * sizeof(GuardEntry))
        if entries == NULL:
            raise MemoryError
        PyMem_Free(self.entries)
        self.entries, self.n_entries = entries, 0
        # The list holds the references the entries point to.
        self.guard = [tuple(entry) for entry in guard]
        for i in range(count):
            mapping, key, value = self.guard[i]
            entries[i].mapping = <PyObject*> mapping
            entries[i].key = NULL if key is None else <PyObject*> key
            entries[i].value = (
                NULL if value is GUARD_ABSENT or key is None else <PyObject*> value)
            entries[i].size = value if key is None else 0
        self.n_entries = count

    def unchanged(self):
        """Whether every entry of ``watch`` still holds (an identity check
        per entry: no comparison of values is made)."""
        return self._unchanged()

    cdef bint _unchanged(self) noexcept:
        cdef:
            Py_ssize_t i
            GuardEntry* entry
        for i in range(self.n_entries):
            entry = &self.entries[i]
            if entry.key == NULL:
                if PyDict_Size(<object> entry.mapping) != entry.size:
                    return False
            elif PyDict_GetItem(<object> entry.mapping,
                                <object> entry.key) != entry.value:
                return False
        return True

    cdef bint _take(self, object sample, tuple names) noexcept:
        """Read ``sample[name]`` for each of ``names`` into the row buffer,
        if ``sample`` is a dict and every one is a finite Python float;
        otherwise leave the buffer alone and return False."""
        cdef:
            Py_ssize_t j, m = self.m
            PyObject* v
        if type(sample) is not dict or len(names) != m:
            return False
        for j in range(m):
            v = PyDict_GetItem(sample, names[j])
            if v == NULL or not PyFloat_CheckExact(<object> v):
                return False
            if not isfinite(PyFloat_AS_DOUBLE(<object> v)):
                return False
        for j in range(m):
            self.row[j] = PyFloat_AS_DOUBLE(
                <object> PyDict_GetItem(sample, names[j]))
        return True

    cdef void _forward(self) noexcept:
        cdef int W = cell_rows(self.kind, self.n) * cell_columns(
            self.kind, self.n, self.m)
        with nogil:
            self._blas_to_one()
            run_forward(self.kind, self.activation, self.n, self.m, self.row,
                        &self.zero, &self.one, 1, self.params,
                        self.params + W, False, &self.h_out[0], self.hidden,
                        self.forward_scratch, POOL_LAST)
            self._blas_back()

    def predict_sample(self, sample, tuple names):
        """``unchanged``, then the values of the dict ``sample`` at
        ``names`` taken as the row (as ``set_row``), then
        ``predict_hidden``: all in one call. False, doing nothing, if the
        guard fails or the sample is not all finite Python floats."""
        if not self._unchanged() or not self._take(sample, names):
            return False
        self._forward()
        return True

    def learn_sample(self, sample, tuple names, double target):
        """``predict_sample``'s checks and row, then ``learn_value``; its
        loss, or None, doing nothing, if a check fails."""
        if self.o != 1:
            raise ValueError("learn_sample needs a stream of one output")
        if not self._unchanged() or not self._take(sample, names):
            return None
        self.target[0] = target
        return self._learn(self.row, self.target)

    def learn_sample_target(self, sample, tuple names,
                            const double[:, ::1] Y):
        """``learn_sample`` with the target row ``Y`` (1 x o)."""
        if Y.shape[0] != 1 or Y.shape[1] != self.o:
            raise ValueError("Y must be one row of the stream's outputs")
        if not self._unchanged() or not self._take(sample, names):
            return None
        return self._learn(self.row, &Y[0, 0])

    def __dealloc__(self):
        PyMem_Free(self.entries)


def _float32_gates(const float[::1] a):
    """sigmoid(a), tanh(a) and e^-|a| as the float32 kernels compute them
    (for the tests of their accuracy)."""
    cdef Py_ssize_t i
    out = np.empty((3, a.shape[0]), dtype=np.float32)
    cdef float[:, ::1] o = out
    for i in range(a.shape[0]):
        o[0, i] = sigmoid(a[i])
        o[1, i] = tanh_of(a[i])
        o[2, i] = _exp_nonpositive(-fabsf(a[i]))
    return out
