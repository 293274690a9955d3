# cython: language_level=3
"""Backpropagation through time, full or truncated, for every cell.

A baseline beside RTRL in the same code: the forward step and its
vector-Jacobian product are the per-cell primitives of ``_cells.pxd``; each
step leaves a record (inputs, previous hidden state, local derivatives) in
a buffer, and the backward pass walks the records in reverse.

Truncation (``truncation`` = k >= 1; 0 means none): the forward pass runs
over the whole sequence, the state carried from step to step; the gradient
of each loss term L_t flows back through the transitions of steps t, t-1,
..., t-k+1 only (k steps), s_{t-k} being taken as a constant. Hence a ring
buffer of the last k records suffices, memory does not grow with the
length, and L_t costs min(k, t+1) vector-Jacobian products: O(k P) per
target, P the number of recurrent parameters. With k >= the sequence length
(or none) the gradient is exact. Full BPTT with targets at every step is
one backward pass that picks up each step's dL/dh_t on the way, O(T P) per
sequence, with the records of the whole sequence kept.

The minibatch kernel runs threads over the sequences (dynamic schedule) and
writes one gradient row per sequence, as the RTRL kernels do, so the sum
over rows is independent of the number of threads. The online kernel
updates the parameters after every step with a target, from the gradient of
that step's loss backpropagated through the records in the ring (at most k
steps back, or to the sequence start without truncation), using the current
weights and the activations stored when each step ran; in a stream, the
state and the ring are carried from call to call.

A pooled readout (the mean or per-unit maximum of y over the sequence, one
target per sequence, full BPTT only; y = h but for the cells with an output
map) injects its error at every step: dL/dz / T into each step's dL/dy_t
for the mean, and dL/dz[i] into unit i's at the step of its maximum (the
first, on ties) for the maximum.
"""

# Bounds and wrap-around checks are set for the whole module by setup.py:
# off, or on with SKRTRL_DEBUG=1 to audit the kernels.
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memset, memcpy

from ._cells cimport (
    N_CELLS, cell_columns, cell_forward, cell_output, cell_output_vjp,
    cell_readout, cell_rows, cell_separate_bias, cell_state, cell_vjp,
    copy_bias_gradient, flat_size, record_size, step_work_size,
)
from ._common cimport (
    InterruptCheck, POOL_LAST, POOL_MEAN, POOL_MEAN_LAST, Packed, UpdateRule,
    has_target, pooled_width, running_pooling,
    interrupt_check, interrupt_due, online_update, output_rows, pack_batch,
    pool_step, record_output, sequence, set_pooling,
    stopping, target_index, update_rule,
)
from ._rtrl cimport pooled_readout

import numpy as np


def bptt_sizes(int kind, int n, int m):
    """(rows R, columns q, state S, record size) of the cell ``kind``."""
    if kind < 0 or kind >= N_CELLS:
        raise ValueError("unknown cell kind")
    return (cell_rows(kind, n), cell_columns(kind, n, m), cell_state(kind, n),
            record_size(kind, n, m))


def bptt_scratch_size(int kind, int n, int o):
    """Numbers of scratch memory one thread of the BPTT kernels needs."""
    return 3 * cell_state(kind, n) + step_work_size(kind, n) + 5 * n + 2 * o


cdef inline void _backprop(
    int kind, int n, int m, int q, const floating* theta,
    const floating* ring, Py_ssize_t cap, int rs, Py_ssize_t newest,
    Py_ssize_t depth, floating* grad_theta, floating* gbar,
    floating* gprev, floating* work,
) noexcept nogil:
    """Add the gradient of a loss with dL/ds = gbar (overwritten) at the
    step of record ``newest`` (a slot of the ring), backpropagated through
    ``depth`` records, into grad_theta."""
    cdef:
        Py_ssize_t j, slot = newest
        floating* tmp
    for j in range(depth):
        cell_vjp(kind, n, m, q, theta, ring + slot * rs, gbar,
                 gprev if j < depth - 1 else NULL, grad_theta, work)
        tmp = gbar
        gbar = gprev
        gprev = tmp
        slot = slot - 1 if slot > 0 else cap - 1


cdef double _bptt_sequence(
    int kind, int activation, int loss_kind, const Packed* data,
    Py_ssize_t b, int n, int q, const floating* theta,
    const floating* bias_hh, const floating* W_out, const floating* b_out,
    Py_ssize_t truncation, floating* grad, floating* ring, floating* scratch,
    InterruptCheck* check, bint* stop,
) noexcept nogil:
    """Sequence b from the zero state; gradient added into ``grad``, laid
    out [theta (R*q) | W_out (o*width) | b_out (o)] (width: ``pooled_width``).
    ``ring`` holds
    ``truncation`` records (or, without truncation, the sequence's
    length).

    Stops early once ``stop[0]`` is set, which it does itself when
    ``check`` is not NULL (the main thread's) and a signal handler raised
    (Ctrl-C); the gradient is then incomplete and dropped by the caller
    (``_interrupt.raise_pending_signal``), as for exact RTRL."""
    cdef:
        int m = data.m
        int o = data.o
        int R = cell_rows(kind, n)
        int S = cell_state(kind, n)
        int rs = record_size(kind, n, m)
        int spare = rs - n
        Py_ssize_t length = data.lengths[b]
        Py_ssize_t cap = truncation if truncation > 0 else length
        Py_ssize_t t, slot, i, k
        double loss = 0.0
        const floating* X
        const floating* Y
        const floating* weights
        floating* s = scratch
        floating* gbar = s + S
        floating* gprev = gbar + S
        floating* work = gprev + S
        floating* g = work + step_work_size(kind, n)   # up to 2n
        floating* zout = g + 2 * n
        floating* dz = zout + o
        floating* pool = dz + o         # up to 2n (``pool_step``)
        floating* arg_max = pool + 2 * n    # step numbers, exact below 2^24
        floating* rec
        const floating* y
        floating* grad_out = grad + R * q
        floating* tmp
        bint pooled = data.pooling != POOL_LAST
        bint mean = running_pooling(data.pooling) == POOL_MEAN
    sequence(data, b, &X, &Y, &weights)
    memset(s, 0, S * sizeof(floating))
    for t in range(length):
        if stopping(check, stop):
            return loss
        slot = t % cap
        rec = ring + slot * rs
        cell_forward(kind, activation, n, m, q, theta, bias_hh, X + t * m, s,
                     rec, work, False)
        if pooled:
            y = cell_output(kind, n, m, s, rec)
            for i in range(n):
                if t == 0 or y[i] > pool[i]:
                    arg_max[i] = <floating> t
            pool_step(data.pooling, n, t, y, pool)
        if not has_target(data, b, t):
            continue
        k = target_index(data, t)
        if pooled:
            # The one target, at the last step; the ring holds every step.
            # g comes back as each step's share (the averaged parts / T).
            loss += pooled_readout(
                data.pooling, o, length, Y + k * o,
                data.weight_scale * weights[k], loss_kind, n, W_out, b_out,
                pool, grad_out, g, zout, dz)
            for slot in range(length):
                rec = ring + slot * rs + spare
                for i in range(n):
                    if mean or <Py_ssize_t> arg_max[i] == slot:
                        rec[i] = g[i]
                    else:
                        rec[i] = 0
            if data.pooling == POOL_MEAN_LAST:
                # The last h's part: a target at the last step.
                rec = ring + (length - 1) * rs + spare
                for i in range(n):
                    rec[i] += g[n + i]
            break
        # Without truncation dL/dy_t waits in the record for the backward
        # pass, which takes it to the state.
        loss += cell_readout(
            kind, n, m, q, theta, s, rec, Y + k * o, o,
            data.weight_scale * weights[k], loss_kind, W_out, b_out,
            grad_out, grad, g, gbar if truncation > 0 else NULL, zout, dz,
            work)
        if truncation > 0:
            _backprop(kind, n, m, q, theta, ring, cap, rs, slot,
                      min(truncation, t + 1), grad, gbar, gprev, work)
        else:
            memcpy(rec + spare, g, n * sizeof(floating))
    if truncation > 0:
        return loss
    # One backward pass, picking up each target's dL/dh_t on the way.
    memset(gbar, 0, S * sizeof(floating))
    for t in range(length - 1, -1, -1):
        if stopping(check, stop):
            break
        rec = ring + t * rs
        if pooled or has_target(data, b, t):
            # dL/dy_t (or the pooled readout's share), back to the state;
            # the output map's own gradient was taken at the readout, but
            # for a pooled readout, whose share of it is taken here.
            cell_output_vjp(kind, n, m, q, theta, rec, rec + spare, gbar,
                            True, grad if pooled else NULL, work)
        cell_vjp(kind, n, m, q, theta, rec, gbar, gprev if t > 0 else NULL,
                 grad, work)
        tmp = gbar
        gbar = gprev
        gprev = tmp
    return loss


def bptt_minibatch(
    int kind, int n, int activation, int loss_kind, batch,
    double weight_scale, const floating[::1] params, dict workspace,
    Py_ssize_t truncation,
    int pooling=0,
):
    """BPTT over a minibatch; one gradient row and loss per sequence.

    The arguments are the bundles of ``skrtrl._kernels._rtrl.rtrl_minibatch``
    (``batch``, ``params``, ``workspace``), with ``truncation`` k >= 1, or 0
    for full BPTT. The ``workspace`` holds ``"grad"`` (>= B, R*q + o*width + o,
    width n or, for POOL_MEAN_LAST, 2n)
    and ``"loss"`` (>= B,), written, and per thread ``"ring"`` (cap *
    record size numbers, cap = truncation, or the longest sequence without
    truncation) and ``"scratch"`` (``bptt_scratch_size``). ``pooling``: what
    each sequence's one target reads (``_common.pxd``'s POOL_*: the last h,
    their mean or maximum over time, or the mean beside the last h divided
    by the length); full BPTT only.
    """
    if kind < 0 or kind >= N_CELLS:
        raise ValueError("unknown cell kind")
    cdef:
        Packed data = pack_batch(batch, weight_scale, <floating*> NULL)
        Py_ssize_t B = data.count
        int m = data.m
        int o = data.o
        int R, q, rs, width
        floating[:, ::1] grad_rows = workspace["grad"]
        double[::1] loss_rows = workspace["loss"]
        floating[:, ::1] ring = workspace["ring"]
        floating[:, ::1] scratch = workspace["scratch"]
        int n_threads = min(ring.shape[0], scratch.shape[0])
        int size
        const floating* theta = &params[0] if params.shape[0] else NULL
        const floating* bias_hh
        const floating* W_out
        const floating* b_out
        Py_ssize_t b, longest = 0
        int tid
        InterruptCheck check = interrupt_check()
        bint stopped = False
        bint* stop = &stopped   # shared by the threads
    R, q, _, rs = bptt_sizes(kind, n, m)
    set_pooling(&data, pooling)
    width = pooled_width(pooling, n)
    size = R * q + o * width + o
    if pooling and truncation:
        raise ValueError("a pooled readout needs full BPTT (truncation 0)")
    if params.shape[0] != flat_size(kind, n, m, o, width):
        raise ValueError("params has the wrong size for this cell")
    bias_hh = theta + R * q
    W_out = theta + params.shape[0] - o * width - o
    b_out = W_out + o * width
    if grad_rows.shape[0] < B or grad_rows.shape[1] != size:
        raise ValueError("grad_rows has the wrong size")
    if truncation < 0:
        raise ValueError("truncation must be >= 0")
    for b in range(B):
        longest = max(longest, data.lengths[b])
    if ring.shape[1] < (truncation if truncation > 0 else longest) * rs:
        raise ValueError("ring workspace too small")
    if scratch.shape[1] < bptt_scratch_size(kind, n, o):
        raise ValueError("scratch workspace too small")
    if loss_rows.shape[0] < B:
        raise ValueError("loss_rows too small")
    if B == 0:
        return
    if n_threads <= 1:
        with nogil:
            for b in range(B):
                memset(&grad_rows[b, 0], 0, size * sizeof(floating))
                loss_rows[b] = _bptt_sequence(
                    kind, activation, loss_kind, &data, b, n, q, theta,
                    bias_hh, W_out, b_out, truncation,
                    &grad_rows[b, 0], &ring[0, 0], &scratch[0, 0], &check,
                    stop)
        return
    for b in prange(B, nogil=True, schedule="dynamic", num_threads=n_threads):
        tid = threadid()
        memset(&grad_rows[b, 0], 0, size * sizeof(floating))
        # Only the main thread (thread 0) runs signal handlers.
        loss_rows[b] = _bptt_sequence(
            kind, activation, loss_kind, &data, b, n, q, theta, bias_hh,
            W_out, b_out, truncation,
            &grad_rows[b, 0], &ring[tid, 0], &scratch[tid, 0],
            &check if tid == 0 else NULL, stop)


def bptt_online(
    int kind, int n, int activation, int loss_kind, batch, update,
    dict state, bint reset_state, floating[::1] params,
    floating[:, ::1] outputs=None,
):
    """Online (truncated) BPTT: update the parameters after every target.

    The bundles are those of ``skrtrl._kernels._rtrl.rtrl_online``; the
    ``state`` holds ``"hidden"`` (S numbers), ``"ring"`` of step records
    (truncation x record size), ``"filled"`` (records in the ring) and
    ``"pos"`` (the slot of the next record). Each step's record goes into
    the ring; at a step with a target, that target's loss is backpropagated
    through the ``filled`` most recent records (at most the ring's size)
    and the optimizer steps. Sequences run in the given order, each from
    the zero state (and an empty ring) when ``reset_state``; otherwise the
    first continues from the state, and the final values are left there.
    ``update.learn`` false writes the records and advances the state only.
    Returns the weighted loss of each sequence.
    """
    cdef:
        InterruptCheck check = interrupt_check()
        bint stopped = False
        Packed data = pack_batch(batch, 1.0, <floating*> NULL)
        UpdateRule rule = update_rule(update, params.shape[0],
                                      <floating*> NULL)
        int m = data.m
        int o = data.o
        floating[::1] hidden = state["hidden"]
        floating[:, ::1] ring = state["ring"]
        Py_ssize_t filled = state["filled"]
        Py_ssize_t pos = state["pos"]
        floating[::1] grad = np.empty_like(params)
        floating[::1] scratch = np.empty_like(
            params, shape=bptt_scratch_size(kind, n, o))
        double[::1] loss_rows = np.empty(data.count, dtype=np.float64)
        int R = cell_rows(kind, n)
        int q = cell_columns(kind, n, m)
        int S = cell_state(kind, n)
        int rs = record_size(kind, n, m)
        int rq = R * q
        int rest = rq + (n if cell_separate_bias(kind) else 0)
        Py_ssize_t size = rest + o * n + o
        Py_ssize_t cap = ring.shape[0]
        Py_ssize_t b, t, k, newest
        double weight, loss
        const floating* Xb
        const floating* Yb
        const floating* weights
        floating* theta = &params[0]
        floating* bias_hh = theta + rq
        floating* W_out = theta + rest
        floating* b_out = W_out + o * n
        floating* s = &hidden[0]
        floating* gbar = &scratch[0] + S
        floating* gprev = gbar + S
        floating* work = gprev + S
        floating* g = work + step_work_size(kind, n)
        floating* zout = g + n
        floating* dz = zout + o
        floating* out = output_rows(outputs, batch.targets)
    if kind < 0 or kind >= N_CELLS:
        raise ValueError("unknown cell kind")
    if params.shape[0] != size:
        raise ValueError("params has the wrong size for this cell")
    if cap < 1 or ring.shape[1] != rs:
        raise ValueError("ring must have shape (truncation, record size)")
    if hidden.shape[0] != S:
        raise ValueError("the stream's hidden state has the wrong size")
    if not (0 <= filled <= cap and 0 <= pos < cap):
        raise ValueError("filled or pos out of range")
    with nogil:
        for b in range(data.count):
            sequence(&data, b, &Xb, &Yb, &weights)
            loss = 0.0
            if reset_state:
                memset(s, 0, S * sizeof(floating))
                filled = 0
                pos = 0
            for t in range(data.lengths[b]):
                if interrupt_due(&check):  # Ctrl-C: see _interrupt.pyx
                    stopped = True
                    break
                cell_forward(kind, activation, n, m, q, theta, bias_hh,
                             Xb + t * m, s, &ring[pos, 0], work, False)
                newest = pos
                pos = pos + 1 if pos + 1 < cap else 0
                if filled < cap:
                    filled += 1
                if not has_target(&data, b, t):
                    continue
                k = target_index(&data, t)
                weight = weights[k]
                memset(&grad[0], 0, size * sizeof(floating))
                loss += cell_readout(
                    kind, n, m, q, theta, s, &ring[newest, 0], Yb + k * o, o,
                    weight, loss_kind, W_out, b_out, &grad[rest], &grad[0],
                    g, gbar, zout, dz, work)
                record_output(out, &data, b, k, zout)
                if not rule.learn:
                    continue
                _backprop(kind, n, m, q, theta, &ring[0, 0], cap, rs, newest,
                          filled, &grad[0], gbar, gprev, work)
                copy_bias_gradient(kind, n, q, &grad[0], &grad[rq])
                online_update(&rule, theta, &grad[0], size, weight)
            loss_rows[b] = loss
            if stopped:
                break
    state["filled"], state["pos"] = filled, pos
    update.count(rule.t)
    return np.asarray(loss_rows)
