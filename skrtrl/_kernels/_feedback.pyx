# cython: language_level=3
"""Output feedback: the closed-loop forward pass and free-running exact RTRL.

With output feedback the recurrent layer sees, besides x_t (m features), the
previous output f_{t-1} (o numbers) through its own weights ``W_fb``: the
cell's inputs are u_t = [x_t, f_{t-1}], so its parameter matrix ``theta``
(R x q) has m + o input columns, the feedback ones at m .. m + o - 1. The
cells are those of ``_cells.pxd``, with the inputs [x_t, f_{t-1}] in place
of x_t: ``theta`` rows [W_ih | W_fb | W_hh | b_ih] (Elman, R = n),
[W_ih | W_fb | w | b_ih] (element-wise, R = n) and [W_ih | W_fb | W_hh |
b_ih | b_hh] (GRU and LSTM, R = 3n or 4n). f_t = sigma(z_t) is the model's output after its link function,
z_t = W_out h_t + b_out: identity (regression), logistic (two classes),
softmax (several), so a classifier feeds back its probabilities.

Teacher forcing needs no kernel of its own: f_{t-1} is then the previous
target, data, and the cells' own kernels run on the augmented inputs. This
module holds what does need one:

* ``feedback_forward``: the closed loop, each step's output fed into the
  next (prediction and forecasting);
* ``feedback_rtrl_minibatch`` / ``feedback_rtrl_online``: exact RTRL when the
  model's own previous output is fed back during training
  (``teacher_forcing=False``).

Free-running RTRL. Let Phi be all parameters in the influence column layout
[theta (R*q) | W_out (o*n) | b_out (o)] (C = R*q + o*n + o columns; the
Elman and diagonal cells' bias_hh shares the b_ih column), s_t the cell state
(S = n, or 2n for the LSTM's [h, c]) and P_t = d s_t / d Phi (S x C). Then

    f_{t-1} = sigma(z_{t-1}),
    dF_{t-1} = d f_{t-1} / d Phi = Sigma'_{t-1} (W_out P_{t-1}[:n] + R_{t-1}),
    P_t = J_t P_{t-1} + B_t dF_{t-1} + I_t,

with J_t = d s_t / d s_{t-1} and I_t the immediate term (the cells' own
RTRL, see ``_cells.pxd``), B_t = d s_t / d f_{t-1} (S x o: the derivative of
the step with respect to its feedback inputs), R_{t-1}[c, :] the direct
derivative of z_{t-1}[c] with respect to the readout (h_{t-1} in the columns
of W_out[c, :], 1 in that of b_out[c]) and Sigma' the Jacobian of the link
(1, p (1 - p), or diag(p) - p p^T). So the readout weights get an influence
of their own: they shape the dynamics. A loss with dL/dz_t = dz adds
P_t[:n]^T W_out^T dz to the gradient, besides the direct readout term.
f_0 = 0 and P_0 = 0, dF_0 = 0 from the zero state.

Cost per step: the cell's J_t P_{t-1} product (for the diagonal cell J_t is
diagonal, but the feedback makes P dense: every unit depends on f, which
depends on every unit), plus two rank-o products (B_t dF_{t-1} and
W_out P_t), O(S o C). The LSTM uses the dense 2n x 2n state Jacobian.
"""

# Bounds and wrap-around checks are set for the whole module by setup.py:
# off, or on with SKRTRL_DEBUG=1 to audit the kernels.
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport exp
from libc.string cimport memcpy, memset

from ._blas cimport gemm_rm, gemv_rm, gemv_rm_t
from ._cells cimport (
    cell_per_unit,
    N_CELLS, cell_columns, cell_diagonal, cell_forward, cell_immediate,
    cell_output, cell_output_blocks,
    cell_input_jacobian, cell_jacobian, cell_rows, cell_separate_bias,
    cell_state, cell_unit_jacobian, copy_bias_gradient, flat_size,
    record_size, step_work_size,
)
from ._common cimport (
    InterruptCheck, LOSS_LOGISTIC, LOSS_SQUARED, Packed, UpdateRule, _sigmoid,
    interrupt_check, interrupt_due, online_update, output_rows, pack_batch,
    readout_gradient, sequence, stopping, update_rule,
)

import numpy as np


def feedback_sizes(int kind, int n, int m, int o):
    """(theta rows R, columns q, state size S, influence columns C).

    ``m`` is the number of input features, without the o feedback columns.
    """
    if kind < 0 or kind >= N_CELLS:
        raise ValueError("unknown cell kind")
    cdef int R = cell_rows(kind, n)
    cdef int q = cell_columns(kind, n, m + o)
    return R, q, cell_state(kind, n), R * q + o * n + o


def _check_free_running(int kind):
    """Free-running RTRL follows the fed-back output through h only: a cell
    with an output map of its own parameters (the LRUs) is refused."""
    if cell_output_blocks(kind) != 1:
        raise ValueError("free-running output feedback does not support "
                         "cells with an output map (cell='lru' or 'glru')")


cdef inline int _step_size(int kind, int n, int m, int o) noexcept nogil:
    """Scratch of one step: the record (inputs [x, f]), the cell's work,
    J (S x S), B (S x o), zout, dz and g."""
    cdef int S = cell_state(kind, n)
    return (record_size(kind, n, m + o) + step_work_size(kind, n) + S * S
            + S * o + 2 * o + n)


def feedback_scratch_size(int kind, int n, int m, int o):
    """Numbers of scratch memory one thread of the kernels needs."""
    return cell_state(kind, n) + o + _step_size(kind, n, m, o)


def feedback_influence_size(int kind, int n, int m, int o):
    """Numbers per thread (or stream) for P_{t-1}, P_t and dF."""
    R, q, S, C = feedback_sizes(kind, n, m, o)
    return 2 * S * C + o * C


cdef inline void _cell_step(
    int kind, int activation, const floating* x, int m, const floating* f,
    int o, int n, int q, const floating* theta, const floating* bias_hh,
    floating* s, floating* rec, floating* work,
) noexcept nogil:
    """Advance the state ``s`` one step on the inputs [x, f], in place;
    the record (``_cells.pxd``) goes into ``rec``."""
    memcpy(rec, x, m * sizeof(floating))
    memcpy(rec + m, f, o * sizeof(floating))
    cell_forward(kind, activation, n, m + o, q, theta, bias_hh, rec, s, rec,
                 work, False)


cdef inline void _readout(
    int o, int n, const floating* W_out, const floating* b_out,
    const floating* h, floating* zout,
) noexcept nogil:
    memcpy(zout, b_out, o * sizeof(floating))
    gemv_rm(o, n, <floating> 1, W_out, n, h, <floating> 1, zout)


cdef inline void _link(int loss_kind, int o, const floating* zout,
                       floating* p) noexcept nogil:
    """p = sigma(z): identity, logistic or softmax (the loss's link)."""
    cdef int c
    cdef double zmax, total
    if loss_kind == LOSS_SQUARED:
        memcpy(p, zout, o * sizeof(floating))
    elif loss_kind == LOSS_LOGISTIC:
        p[0] = <floating> _sigmoid(zout[0])
    else:
        zmax = zout[0]
        for c in range(1, o):
            if zout[c] > zmax:
                zmax = zout[c]
        total = 0.0
        for c in range(o):
            total += exp(zout[c] - zmax)
        for c in range(o):
            p[c] = <floating> (exp(zout[c] - zmax) / total)


cdef inline void _feedback_influence(
    int loss_kind, int o, int n, int C, int T, const floating* W_out,
    const floating* P, const floating* h, const floating* p, floating* dF,
) noexcept nogil:
    """dF = Sigma' (W_out P[:n] + R): the influence of the fed-back f_t."""
    cdef:
        int c, l, j
        double w, scale
        floating* row
    gemm_rm(o, C, n, <floating> 1, W_out, n, P, C, <floating> 0, dF, C)
    for c in range(o):
        row = dF + c * C + T + c * n
        for l in range(n):
            row[l] += h[l]
        dF[c * C + T + o * n + c] += 1
    if loss_kind == LOSS_LOGISTIC:
        scale = p[0] * (1 - p[0])
        for j in range(C):
            dF[j] *= <floating> scale
    elif loss_kind != LOSS_SQUARED:
        # (diag(p) - p p^T) M, column by column, in place.
        for j in range(C):
            w = 0.0
            for c in range(o):
                w += p[c] * dF[c * C + j]
            for c in range(o):
                dF[c * C + j] = <floating> (p[c] * (dF[c * C + j] - w))


cdef double _free_step(
    int kind, int activation, int loss_kind,
    const floating* x, int m, const floating* y, double weight,
    int n, int o, int q, int C,
    const floating* theta, const floating* bias_hh,
    const floating* W_out, const floating* b_out,
    floating* s, floating* f, const floating* P_old, floating* P_new,
    floating* dF, bint first, bint learn, floating* grad, floating* work,
    floating* out,
) noexcept nogil:
    """One free-running training step with exact RTRL.

    On entry ``f`` and ``dF`` hold f_{t-1} and its influence, ``s`` and
    ``P_old`` the state and its influence; on exit f_t, dF_t, s_t and P_t
    (in ``P_new``). ``first``: from the zero state (P_{t-1} = dF = 0, not
    read). With ``learn``, the loss's gradient is added into ``grad`` (C
    numbers, the influence column layout). ``out``: NULL, or where the
    readout pre-activation goes (o numbers). Returns the weighted loss.
    """
    cdef:
        int mi = m + o
        int S = cell_state(kind, n)
        int T = cell_rows(kind, n) * q
        int k
        double loss
        floating d
        floating* rec = work
        floating* cw = rec + record_size(kind, n, mi)
        floating* J = cw + step_work_size(kind, n)
        floating* Bm = J + S * S
        floating* zout = Bm + S * o
        floating* dz = zout + o
        floating* g = dz + o
    _cell_step(kind, activation, x, m, f, o, n, q, theta, bias_hh, s, rec, cw)
    if first:
        memset(P_new, 0, S * C * sizeof(floating))
    else:
        # J_t P_{t-1}: for the diagonal cell J_t is diagonal, but the
        # feedback makes P dense (every unit depends on f, which depends on
        # every unit).
        if cell_diagonal(kind) and cell_per_unit(kind) == 1:
            for k in range(n):
                cell_unit_jacobian(kind, n, mi, q, theta, rec, k, &d)
                _scaled_copy(C, d, P_old + k * C, P_new + k * C)
        else:
            cell_jacobian(kind, n, mi, q, theta, rec, S, J)
            gemm_rm(S, C, S, <floating> 1, J, S, P_old, C, <floating> 0,
                    P_new, C)
        cell_input_jacobian(kind, n, mi, q, theta, rec, m, o, Bm)
        gemm_rm(S, C, o, <floating> 1, Bm, o, dF, C, <floating> 1, P_new, C)
    cell_immediate(kind, n, mi, q, rec, P_new, C, 0, T)
    loss = readout_gradient(y, o, n, weight, loss_kind, W_out, b_out, s,
                            grad + T, g, zout, dz)
    if out != NULL:
        memcpy(out, zout, o * sizeof(floating))
    if learn:
        gemv_rm_t(n, C, <floating> 1, P_new, C, g, <floating> 1, grad)
    _link(loss_kind, o, zout, f)
    _feedback_influence(loss_kind, o, n, C, T, W_out, P_new, s, f, dF)
    return loss


cdef inline void _scaled_copy(int size, floating a, const floating* src,
                              floating* dst) noexcept nogil:
    cdef int j
    for j in range(size):
        dst[j] = a * src[j]


cdef double _free_sequence(
    int kind, int activation, int loss_kind, const Packed* data,
    Py_ssize_t b, int n, int q, int C, const floating* theta,
    const floating* bias_hh, const floating* W_out, const floating* b_out,
    floating* grad, floating* P_work, floating* scratch,
    InterruptCheck* check, bint* stop,
) noexcept nogil:
    """Sequence b from the zero state, a target at every step. Stops early
    at a signal as ``_rtrl.rtrl_sequence`` does."""
    cdef:
        int m = data.m
        int o = data.o
        int S = cell_state(kind, n)
        Py_ssize_t t
        double loss = 0.0
        const floating* X
        const floating* Y
        const floating* weights
        floating* s = scratch
        floating* f = s + S
        floating* work = f + o
        floating* dF = P_work + 2 * S * C
    sequence(data, b, &X, &Y, &weights)
    memset(s, 0, S * sizeof(floating))
    memset(f, 0, o * sizeof(floating))
    for t in range(data.lengths[b]):
        if stopping(check, stop):
            break
        loss += _free_step(
            kind, activation, loss_kind, X + t * m, m, Y + t * o,
            data.weight_scale * weights[t], n, o, q, C, theta, bias_hh, W_out,
            b_out, s, f, P_work + (1 - (t & 1)) * S * C,
            P_work + (t & 1) * S * C, dF, t == 0, True, grad, work, NULL)
    return loss


def feedback_rtrl_minibatch(
    int kind, int n, int activation, int loss_kind, batch,
    double weight_scale, const floating[::1] params, dict workspace,
):
    """Free-running exact RTRL over a minibatch; gradients per sequence.

    As ``skrtrl._kernels._rtrl.rtrl_minibatch`` (the same bundles; threads
    over the sequences, one gradient row per sequence), with a target at
    every step and the model's own outputs fed back: the batch's values
    hold the m input features only. ``workspace["grad"]`` (>= B, C) is in
    the influence column layout [theta | W_out | b_out];
    ``workspace["influence"]`` (n_threads, >= feedback_influence_size);
    ``workspace["scratch"]`` (n_threads, >= feedback_scratch_size).
    """
    cdef:
        Packed data = pack_batch(batch, weight_scale, <floating*> NULL)
        Py_ssize_t B = data.count
        int m = data.m
        int o = data.o
        int R, q, S, C
        floating[:, ::1] grad_rows = workspace["grad"]
        double[::1] loss_rows = workspace["loss"]
        floating[:, ::1] influence = workspace["influence"]
        floating[:, ::1] scratch = workspace["scratch"]
        int n_threads = min(influence.shape[0], scratch.shape[0])
        const floating* theta = &params[0] if params.shape[0] else NULL
        const floating* bias_hh
        const floating* W_out
        const floating* b_out
        Py_ssize_t b
        int tid
        InterruptCheck check = interrupt_check()
        bint stopped = False
        bint* stop = &stopped   # shared by the threads
    _check_free_running(kind)
    R, q, S, C = feedback_sizes(kind, n, m, o)
    if not data.every_step:
        raise ValueError("output feedback needs a target at every step")
    if params.shape[0] != flat_size(kind, n, m + o, o, n):
        raise ValueError("params has the wrong size for this cell")
    bias_hh = theta + R * q
    W_out = theta + params.shape[0] - o * n - o
    b_out = W_out + o * n
    if grad_rows.shape[0] < B or grad_rows.shape[1] != C:
        raise ValueError("grad_rows has the wrong size")
    if influence.shape[1] < feedback_influence_size(kind, n, m, o):
        raise ValueError("influence workspace too small")
    if scratch.shape[1] < feedback_scratch_size(kind, n, m, o):
        raise ValueError("scratch workspace too small")
    if loss_rows.shape[0] < B:
        raise ValueError("loss_rows too small")
    if B == 0:
        return
    for b in prange(B, nogil=True, schedule="dynamic", num_threads=n_threads):
        tid = threadid()
        memset(&grad_rows[b, 0], 0, C * sizeof(floating))
        # Only the main thread (thread 0) runs signal handlers.
        loss_rows[b] = _free_sequence(
            kind, activation, loss_kind, &data, b, n, q, C, theta, bias_hh,
            W_out, b_out, &grad_rows[b, 0],
            &influence[tid, 0], &scratch[tid, 0],
            &check if tid == 0 else NULL, stop)


def feedback_rtrl_online(
    int kind, int n, int activation, int loss_kind, batch, update,
    dict state, bint reset_state, floating[::1] params,
    floating[:, ::1] outputs=None,
):
    """Free-running real-time RTRL: an update after every step.

    As ``skrtrl._kernels._rtrl.rtrl_online`` (the same bundles) with a
    target at every step and the model's own outputs fed back. The stream
    ``state``, read and written: ``"hidden"`` (S), ``"influence"``
    (feedback_influence_size: two influence matrices, ``"parity"`` marking
    the current one, then dF) and ``"feedback"`` (o, the output to feed
    back next). f_t and dF_t are computed before the update that follows
    step t, and carried on under the changed weights, as the influence
    matrices are. ``update.learn`` false advances the stream state (state,
    influence, fed-back output and its influence) only. Returns the
    weighted loss of each sequence.
    """
    cdef:
        Packed data = pack_batch(batch, 1.0, <floating*> NULL)
        UpdateRule rule = update_rule(update, params.shape[0],
                                      <floating*> NULL)
        int m = data.m
        int o = data.o
        floating[::1] hidden = state["hidden"]
        floating[::1] influence = state["influence"]
        int parity = state["parity"]
        floating[::1] feedback = state["feedback"]
        floating[::1] grad = np.empty_like(params)
        floating[::1] scratch
        double[::1] loss_rows = np.empty(data.count, dtype=np.float64)
        int R, q, S, C, T, rest
        Py_ssize_t size
        Py_ssize_t b, t
        double weight, loss
        const floating* Xb
        const floating* Yb
        const floating* weights
        floating* theta = &params[0]
        floating* bias_hh
        floating* W_out
        floating* gc
        floating* work
        floating* dF
        floating* P_new
        floating* P_old
        InterruptCheck check = interrupt_check()
        bint stopped = False
        floating* out = output_rows(outputs, batch.targets)
    _check_free_running(kind)
    if not data.every_step:
        raise ValueError("output feedback needs a target at every step")
    R, q, S, C = feedback_sizes(kind, n, m, o)
    T = R * q
    rest = T + (n if cell_separate_bias(kind) else 0)
    size = rest + o * n + o
    bias_hh = theta + T
    W_out = theta + rest
    if params.shape[0] != size:
        raise ValueError("params has the wrong size for this cell")
    scratch = np.empty_like(params,
                            shape=feedback_scratch_size(kind, n, m, o) + C)
    if influence.shape[0] != feedback_influence_size(kind, n, m, o):
        raise ValueError("influence has the wrong size")
    if hidden.shape[0] != S or feedback.shape[0] != o:
        raise ValueError("hidden or feedback of the wrong size")
    gc = &scratch[0]
    work = gc + C
    dF = &influence[0] + 2 * S * C
    with nogil:
        for b in range(data.count):
            sequence(&data, b, &Xb, &Yb, &weights)
            loss = 0.0
            if reset_state:
                memset(&hidden[0], 0, S * sizeof(floating))
                memset(&feedback[0], 0, o * sizeof(floating))
            for t in range(data.lengths[b]):
                if interrupt_due(&check):  # Ctrl-C: see _interrupt.pyx
                    stopped = True
                    break
                P_old = &influence[0] + parity * S * C
                P_new = &influence[0] + (1 - parity) * S * C
                parity = 1 - parity
                weight = weights[t]
                memset(gc, 0, C * sizeof(floating))
                loss += _free_step(
                    kind, activation, loss_kind, Xb + t * m, m, Yb + t * o,
                    weight, n, o, q, C, theta, bias_hh, W_out, W_out + o * n,
                    &hidden[0], &feedback[0], P_old, P_new, dF,
                    reset_state and t == 0, rule.learn, gc, work,
                    out + (data.y_start[b] + t) * o if out != NULL else NULL)
                if not rule.learn:
                    continue
                # grad laid out like params (the influence columns of
                # W_out and b_out after bias_hh, when there is one).
                memcpy(&grad[0], gc, T * sizeof(floating))
                copy_bias_gradient(kind, n, q, gc, &grad[T])
                memcpy(&grad[rest], gc + T, (C - T) * sizeof(floating))
                online_update(&rule, theta, &grad[0], size, weight)
            loss_rows[b] = loss
            if stopped:
                break
    state["parity"] = parity
    update.count(rule.t)
    return np.asarray(loss_rows)


def feedback_forward(
    int kind, int n, int activation, int loss_kind,
    const floating[:, ::1] X, const Py_ssize_t[::1] x_start,
    const Py_ssize_t[::1] lengths, const floating[::1] params,
    bint every_step, floating[:, ::1] Z, const floating[::1] s0,
    const floating[::1] f0,
):
    """The closed loop: each step's output is fed into the next step.

    Every sequence starts from the state ``s0`` (S numbers) with ``f0`` (o)
    as the first fed-back output; later steps feed back sigma(z_{t-1}), the
    model's own output. ``params``: the cell's flat vector (as for
    ``feedback_rtrl_online``). ``Z`` (o columns) receives the readout
    pre-activations z_t after every step (rows laid out like ``X``) when
    ``every_step``, otherwise the last of sequence s in row s.
    """
    cdef:
        Py_ssize_t N = lengths.shape[0]
        int m = X.shape[1]
        int o = Z.shape[1]
        int R, q, S, C
        floating[::1] scratch = np.empty_like(
            params, shape=feedback_scratch_size(kind, n, m, o))
        const floating* theta = &params[0] if params.shape[0] else NULL
        const floating* bias_hh
        const floating* W_out
        const floating* b_out
        Py_ssize_t i, t
        floating* s
        floating* f
        floating* rec
        floating* work
        floating* zout
    R, q, S, C = feedback_sizes(kind, n, m, o)
    if params.shape[0] != flat_size(kind, n, m + o, o, n):
        raise ValueError("params has the wrong size for this cell")
    bias_hh = theta + R * q
    W_out = theta + params.shape[0] - o * n - o
    b_out = W_out + o * n
    if s0.shape[0] != S or f0.shape[0] != o:
        raise ValueError("s0 or f0 of the wrong size")
    s = &scratch[0]
    f = s + S
    rec = f + o
    work = rec + record_size(kind, n, m + o)
    zout = work + step_work_size(kind, n)
    with nogil:
        for i in range(N):
            memcpy(s, &s0[0], S * sizeof(floating))
            memcpy(f, &f0[0], o * sizeof(floating))
            for t in range(lengths[i]):
                _cell_step(kind, activation, &X[x_start[i] + t, 0], m, f, o,
                           n, q, theta, bias_hh, s, rec, work)
                _readout(o, n, W_out, b_out,
                         cell_output(kind, n, m + o, s, rec), zout)
                _link(loss_kind, o, zout, f)
                if every_step:
                    memcpy(&Z[x_start[i] + t, 0], zout, o * sizeof(floating))
            if not every_step:
                memcpy(&Z[i, 0], zout, o * sizeof(floating))
