# cython: language_level=3
"""Exact RTRL for the Elman cell.

Notation (see the user guide): n hidden units, m input features, o outputs,
q = m + n + 1. The recurrent parameters are held as one row-major matrix
``theta`` (n x q) = [W_ih | W_hh | b_ih]; ``bias_hh`` is kept apart so that
both torch biases stay separate parameters, yet they share one influence
column (their derivatives are identical).

With z_t = [x_t, h_{t-1}, 1] and a_t = theta z_t + bias_hh, the influence
matrix P_t[k, i*q + j] = d h_t[k] / d theta[i, j] (n x n*q, row-major) obeys

    P_t = (D_t W_hh) P_{t-1} + D_t E_t,   D_t = diag(phi'(a_t)),
    E_t[k, i*q + j] = delta_ki z_t[j].

Folding D_t into the small n x n left factor leaves one GEMM per sequence and
step, and the D_t E_t term touches only the n diagonal blocks. P_0 = 0, so
the first step needs no GEMM at all.

Packed sequences: ``X`` holds the time steps of all sequences, each
sequence's steps contiguous; ``x_start[b]`` is the first row of sequence b.
The training kernel runs each sequence through time on its own: the
influence GEMM cannot be shared across sequences (D_t differs), so there is
nothing to gain from advancing them in lockstep, while one sequence at a time
needs only two influence buffers per thread and keeps them hot in cache.
"""

cimport cython
from cython cimport floating
from libc.string cimport memset, memcpy
from cython.parallel cimport prange, threadid

from ._blas cimport gemm_rm, gemv_rm, gemv_rm_t
from ._common cimport activate, output_loss


cdef double _train_sequence(
    const floating* X, int m, const floating* Y, int o, Py_ssize_t length,
    double weight, bint every_step,
    const floating* theta, int n, int q, const floating* bias_hh,
    const floating* W_out, const floating* b_out,
    int activation, int loss_kind,
    floating* grad, floating* P_work, floating* scratch,
) noexcept nogil:
    """Run one sequence from a zero state; accumulate its gradient.

    ``grad`` is laid out [theta (n*q) | W_out (o*n) | b_out (o)];
    ``P_work`` holds two influence matrices (2 * n * n*q numbers).
    """
    cdef:
        int nq = n * q
        int k, l, j
        Py_ssize_t t
        double loss = 0.0
        floating* A = scratch
        floating* a = A + n * n
        floating* d = a + n
        floating* g = d + n
        floating* z = g + n
        floating* zout = z + q
        floating* dz = zout + o
        floating* h = dz + o
        floating* P_new
        floating* P_old
        floating* row
        floating* grad_theta = grad
        floating* grad_W_out = grad + nq
        floating* grad_b_out = grad_W_out + o * n
        floating dk
    memset(h, 0, n * sizeof(floating))
    for t in range(length):
        memcpy(z, X + t * m, m * sizeof(floating))
        memcpy(z + m, h, n * sizeof(floating))
        z[m + n] = 1
        memcpy(a, bias_hh, n * sizeof(floating))
        gemv_rm(n, q, <floating> 1, theta, q, z, <floating> 1, a)
        activate(activation, n, a, d)
        memcpy(h, a, n * sizeof(floating))

        P_new = P_work + (t & 1) * n * nq
        P_old = P_work + (1 - (t & 1)) * n * nq
        if t == 0:
            memset(P_new, 0, n * nq * sizeof(floating))
        else:
            for k in range(n):
                dk = d[k]
                row = A + k * n
                for l in range(n):
                    row[l] = dk * theta[k * q + m + l]
            gemm_rm(n, nq, n, <floating> 1, A, n, P_old, nq,
                    <floating> 0, P_new, nq)
        for k in range(n):
            dk = d[k]
            row = P_new + k * nq + k * q
            for j in range(q):
                row[j] += dk * z[j]

        if every_step or t == length - 1:
            memcpy(zout, b_out, o * sizeof(floating))
            gemv_rm(o, n, <floating> 1, W_out, n, h, <floating> 1, zout)
            loss += output_loss(loss_kind, o, zout,
                                Y + (t * o if every_step else 0),
                                weight, dz)
            # g = dL/dh_t, then dL/dtheta += P_t^T g.
            gemv_rm_t(o, n, <floating> 1, W_out, n, dz, <floating> 0, g)
            gemv_rm_t(n, nq, <floating> 1, P_new, nq, g, <floating> 1,
                      grad_theta)
            for k in range(o):
                grad_b_out[k] += dz[k]
                for l in range(n):
                    grad_W_out[k * n + l] += dz[k] * h[l]
    return loss


def train_scratch_size(int n, int m, int o):
    """Numbers of scratch memory one thread of the training kernel needs."""
    return n * n + 4 * n + (m + n + 1) + 2 * o


@cython.boundscheck(False)
@cython.wraparound(False)
def elman_rtrl_minibatch(
    const floating[:, ::1] X,
    const floating[:, ::1] Y,
    const Py_ssize_t[::1] x_start,
    const Py_ssize_t[::1] y_start,
    const Py_ssize_t[::1] lengths,
    const floating[::1] target_weight,
    bint every_step,
    const floating[:, ::1] theta,
    const floating[::1] bias_hh,
    const floating[:, ::1] W_out,
    const floating[::1] b_out,
    int activation,
    int loss_kind,
    floating[:, ::1] grad_rows,
    floating[:, ::1] influence,
    floating[:, ::1] scratch,
    double[::1] loss_rows,
):
    """Run a minibatch forward with exact RTRL; gradients per sequence.

    The sequences are independent: threads take them one at a time
    (dynamic schedule, so a thread slowed by other load on the machine
    holds up at most one sequence) and run each through time with the
    thread's own influence buffers. Each sequence writes its own gradient
    row, so the caller's sum over rows has a fixed order and results do not
    depend on which thread ran what. The number of threads is the number of
    rows of ``influence``.

    Parameters
    ----------
    X : (n_steps_total, m) packed inputs.
    Y : (n_targets_total, o) packed targets (one-hot for classifiers).
    x_start, y_start : (B,) first row of each sequence in X and Y.
    lengths : (B,) sequence lengths (>= 1).
    target_weight : (B,) weight of each of the sequence's loss terms.
    every_step : targets at every step (True) or only at the last (False).
    theta, bias_hh, W_out, b_out : parameters.
    activation, loss_kind : codes of ``skrtrl._kernels._common``.
    grad_rows : (>= B, n*q + o*n + o) gradient of each sequence (written).
    influence : (n_threads, 2 * n * n * q) influence workspace.
    scratch : (n_threads, train_scratch_size(n, m, o)) workspace.
    loss_rows : (>= B,) loss of each sequence (written).
    """
    cdef:
        Py_ssize_t B = lengths.shape[0]
        int n = theta.shape[0]
        int q = theta.shape[1]
        int m = X.shape[1]
        int o = W_out.shape[0]
        int n_threads = min(influence.shape[0], scratch.shape[0])
        int size = n * q + o * n + o
        Py_ssize_t b
        int tid
    if grad_rows.shape[0] < B or grad_rows.shape[1] != size:
        raise ValueError("grad_rows has the wrong size")
    if influence.shape[1] < 2 * n * n * q:
        raise ValueError("influence workspace too small")
    if scratch.shape[1] < train_scratch_size(n, m, o):
        raise ValueError("scratch workspace too small")
    if loss_rows.shape[0] < B:
        raise ValueError("loss_rows too small")
    if B == 0:
        return
    if n_threads <= 1:
        with nogil:
            for b in range(B):
                memset(&grad_rows[b, 0], 0, size * sizeof(floating))
                loss_rows[b] = _train_sequence(
                    &X[x_start[b], 0], m, &Y[y_start[b], 0], o, lengths[b],
                    target_weight[b], every_step, &theta[0, 0], n, q,
                    &bias_hh[0], &W_out[0, 0], &b_out[0], activation,
                    loss_kind, &grad_rows[b, 0], &influence[0, 0],
                    &scratch[0, 0])
        return
    for b in prange(B, nogil=True, schedule="dynamic", num_threads=n_threads):
        tid = threadid()
        memset(&grad_rows[b, 0], 0, size * sizeof(floating))
        loss_rows[b] = _train_sequence(
            &X[x_start[b], 0], m, &Y[y_start[b], 0], o, lengths[b],
            target_weight[b], every_step, &theta[0, 0], n, q,
            &bias_hh[0], &W_out[0, 0], &b_out[0], activation,
            loss_kind, &grad_rows[b, 0], &influence[tid, 0],
            &scratch[tid, 0])


@cython.boundscheck(False)
@cython.wraparound(False)
def elman_forward(
    const floating[:, ::1] X,
    const Py_ssize_t[::1] x_start,
    const Py_ssize_t[::1] lengths,
    const floating[:, ::1] theta,
    const floating[::1] bias_hh,
    int activation,
    bint every_step,
    floating[:, ::1] H,
    floating[::1] scratch,
):
    """Hidden states of the Elman cell, each sequence from a zero state.

    ``H`` receives the state after every step (rows laid out like ``X``) when
    ``every_step``, otherwise the final state of sequence s in row s.
    ``scratch`` needs at least 2*n + q numbers.
    """
    cdef:
        Py_ssize_t S = lengths.shape[0]
        int n = theta.shape[0]
        int q = theta.shape[1]
        int m = X.shape[1]
        Py_ssize_t s, t
        floating* a = &scratch[0]
        floating* d = a + n
        floating* z = d + n
    if scratch.shape[0] < 2 * n + q:
        raise ValueError("scratch workspace too small")
    with nogil:
        for s in range(S):
            memset(z, 0, q * sizeof(floating))
            z[m + n] = 1
            for t in range(lengths[s]):
                memcpy(z, &X[x_start[s] + t, 0], m * sizeof(floating))
                memcpy(a, &bias_hh[0], n * sizeof(floating))
                gemv_rm(n, q, <floating> 1, &theta[0, 0], q, z, <floating> 1, a)
                activate(activation, n, a, d)
                memcpy(z + m, a, n * sizeof(floating))
                if every_step:
                    memcpy(&H[x_start[s] + t, 0], a, n * sizeof(floating))
            if not every_step:
                memcpy(&H[s, 0], z + m, n * sizeof(floating))
