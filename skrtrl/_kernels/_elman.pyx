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
The training kernel expects the minibatch sorted by decreasing length, so
that the sequences still running at step t are a prefix of the batch.
"""

cimport cython
from cython cimport floating
from libc.string cimport memset, memcpy

from ._blas cimport gemm_rm, gemv_rm, gemv_rm_t
from ._common cimport activate, output_loss


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
    floating[:, ::1] grad_theta,
    floating[:, ::1] grad_W_out,
    floating[::1] grad_b_out,
    floating[:, ::1] influence,
    floating[:, ::1] hidden,
    floating[::1] scratch,
):
    """Run a minibatch forward with exact RTRL and accumulate gradients.

    Parameters
    ----------
    X : (n_steps_total, m) packed inputs.
    Y : (n_targets_total, o) packed targets (one-hot for classifiers).
    x_start, y_start : (B,) first row of each sequence in X and Y.
    lengths : (B,) sequence lengths, sorted in decreasing order.
    target_weight : (B,) weight of each of the sequence's loss terms.
    every_step : targets at every step (True) or only at the last (False).
    theta, bias_hh, W_out, b_out : parameters.
    activation, loss_kind : codes of ``skrtrl._kernels._common``.
    grad_theta, grad_W_out, grad_b_out : gradients, accumulated into.
    influence : (2 * B, n * n * q) workspace for the influence matrices.
    hidden : (B, n) workspace for the hidden states.
    scratch : workspace of at least n*n + 3*n + q + 2*o numbers.

    Returns
    -------
    loss : float, the weighted sum of the loss terms.
    """
    cdef:
        int B = lengths.shape[0]
        int n = theta.shape[0]
        int q = theta.shape[1]
        int m = X.shape[1]
        int o = W_out.shape[0]
        int nq = n * q
        int b, k, l, j, t, t_max, n_active, cur, prev
        double loss = 0.0
        floating* A = &scratch[0]
        floating* a = A + n * n
        floating* d = a + n
        floating* g = d + n
        floating* z = g + n
        floating* zout = z + q
        floating* dz = zout + o
        floating* P_new
        floating* P_old
        floating* h
        floating* row
        floating dk
    if B == 0:
        return 0.0
    if scratch.shape[0] < n * n + 3 * n + q + 2 * o:
        raise ValueError("scratch workspace too small")
    if influence.shape[0] < 2 * B or influence.shape[1] < n * nq:
        raise ValueError("influence workspace too small")
    with nogil:
        memset(&hidden[0, 0], 0, B * n * sizeof(floating))
        t_max = lengths[0]
        n_active = B
        for t in range(t_max):
            while n_active > 0 and lengths[n_active - 1] <= t:
                n_active -= 1
            cur = t & 1
            prev = 1 - cur
            for b in range(n_active):
                h = &hidden[b, 0]
                memcpy(z, &X[x_start[b] + t, 0], m * sizeof(floating))
                memcpy(z + m, h, n * sizeof(floating))
                z[m + n] = 1
                memcpy(a, &bias_hh[0], n * sizeof(floating))
                gemv_rm(n, q, <floating> 1, &theta[0, 0], q, z, <floating> 1, a)
                activate(activation, n, a, d)
                memcpy(h, a, n * sizeof(floating))

                P_new = &influence[2 * b + cur, 0]
                P_old = &influence[2 * b + prev, 0]
                if t == 0:
                    memset(P_new, 0, n * nq * sizeof(floating))
                else:
                    for k in range(n):
                        dk = d[k]
                        row = &A[k * n]
                        for l in range(n):
                            row[l] = dk * theta[k, m + l]
                    gemm_rm(n, nq, n, <floating> 1, A, n, P_old, nq,
                            <floating> 0, P_new, nq)
                for k in range(n):
                    dk = d[k]
                    row = P_new + k * nq + k * q
                    for j in range(q):
                        row[j] += dk * z[j]

                if every_step or t == lengths[b] - 1:
                    memcpy(zout, &b_out[0], o * sizeof(floating))
                    gemv_rm(o, n, <floating> 1, &W_out[0, 0], n, h,
                            <floating> 1, zout)
                    loss += output_loss(
                        loss_kind, o, zout,
                        &Y[y_start[b] + (t if every_step else 0), 0],
                        target_weight[b], dz)
                    # g = dL/dh_t, then dL/dtheta += P_t^T g.
                    gemv_rm_t(o, n, <floating> 1, &W_out[0, 0], n, dz,
                              <floating> 0, g)
                    gemv_rm_t(n, nq, <floating> 1, P_new, nq, g,
                              <floating> 1, &grad_theta[0, 0])
                    for k in range(o):
                        grad_b_out[k] += dz[k]
                        for l in range(n):
                            grad_W_out[k, l] += dz[k] * h[l]
    return loss


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
