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

# Bounds and wrap-around checks are set for the whole module by setup.py:
# off, or on with SKRTRL_DEBUG=1 to audit the kernels.
from cython cimport floating
from libc.math cimport sqrt, pow
from libc.string cimport memset, memcpy
from cython.parallel cimport prange, threadid

from ._blas cimport gemm_rm, gemv_rm, gemv_rm_t
from ._common cimport (
    activate, optimizer_step, penalize_and_clip, readout_gradient, SOLVER_ADAM,
)


cdef inline void _forward_influence_step(
    const floating* x, int m, int n, int q,
    const floating* theta, const floating* bias_hh, int activation,
    floating* h, const floating* P_old, floating* P_new, bint first,
    floating* A, floating* a, floating* d, floating* z,
) noexcept nogil:
    """One time step: h <- phi(theta [x, h, 1] + bias_hh) and the influence.

    ``first`` marks a step from the zero state, where P_{t-1} = 0 and the
    GEMM is skipped.
    """
    cdef:
        int nq = n * q
        int k, l, j
        floating dk
        floating* row
    memcpy(z, x, m * sizeof(floating))
    memcpy(z + m, h, n * sizeof(floating))
    z[m + n] = 1
    memcpy(a, bias_hh, n * sizeof(floating))
    gemv_rm(n, q, <floating> 1, theta, q, z, <floating> 1, a)
    activate(activation, n, a, d)
    memcpy(h, a, n * sizeof(floating))
    if first:
        memset(P_new, 0, n * nq * sizeof(floating))
    else:
        for k in range(n):
            dk = d[k]
            row = A + k * n
            for l in range(n):
                row[l] = dk * theta[k * q + m + l]
        gemm_rm(n, nq, n, <floating> 1, A, n, P_old, nq, <floating> 0, P_new, nq)
    for k in range(n):
        dk = d[k]
        row = P_new + k * nq + k * q
        for j in range(q):
            row[j] += dk * z[j]


cdef inline double _target_gradient(
    const floating* y, int o, int n, int q, double weight, int loss_kind,
    const floating* W_out, const floating* b_out, const floating* h,
    const floating* P, floating* grad_theta, floating* grad_out,
    floating* g, floating* zout, floating* dz,
) noexcept nogil:
    """Loss of one target; its gradient is added into the theta gradient
    (n*q, through the influence matrix P) and the readout gradient."""
    cdef double loss = readout_gradient(
        y, o, n, weight, loss_kind, W_out, b_out, h, grad_out, g, zout, dz)
    gemv_rm_t(n, n * q, <floating> 1, P, n * q, g, <floating> 1, grad_theta)
    return loss


cdef double _train_sequence(
    const floating* X, int m, const floating* Y, int o, Py_ssize_t length,
    const floating* weights, double weight_scale, bint every_step,
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
    memset(h, 0, n * sizeof(floating))
    for t in range(length):
        P_new = P_work + (t & 1) * n * nq
        _forward_influence_step(
            X + t * m, m, n, q, theta, bias_hh, activation, h,
            P_work + (1 - (t & 1)) * n * nq, P_new, t == 0, A, a, d, z)
        if every_step or t == length - 1:
            loss += _target_gradient(
                Y + (t * o if every_step else 0), o, n, q,
                weight_scale * weights[t if every_step else 0], loss_kind,
                W_out, b_out, h, P_new, grad, grad + nq, g, zout, dz)
    return loss


def train_scratch_size(int n, int m, int o):
    """Numbers of scratch memory one thread of the training kernel needs."""
    return n * n + 4 * n + (m + n + 1) + 2 * o


def elman_rtrl_minibatch(
    const floating[:, ::1] X,
    const floating[:, ::1] Y,
    const Py_ssize_t[::1] x_start,
    const Py_ssize_t[::1] y_start,
    const Py_ssize_t[::1] lengths,
    const floating[::1] target_weight,
    double weight_scale,
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
    target_weight : (n_targets_total,) weight of each target (row of Y).
    weight_scale : factor on every weight (1 / total weight of the batch).
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
    if target_weight.shape[0] != Y.shape[0]:
        raise ValueError("target_weight needs one weight per row of Y")
    if B == 0:
        return
    if n_threads <= 1:
        with nogil:
            for b in range(B):
                memset(&grad_rows[b, 0], 0, size * sizeof(floating))
                loss_rows[b] = _train_sequence(
                    &X[x_start[b], 0], m, &Y[y_start[b], 0], o, lengths[b],
                    &target_weight[y_start[b]], weight_scale, every_step,
                    &theta[0, 0], n, q,
                    &bias_hh[0], &W_out[0, 0], &b_out[0], activation,
                    loss_kind, &grad_rows[b, 0], &influence[0, 0],
                    &scratch[0, 0])
        return
    for b in prange(B, nogil=True, schedule="dynamic", num_threads=n_threads):
        tid = threadid()
        memset(&grad_rows[b, 0], 0, size * sizeof(floating))
        loss_rows[b] = _train_sequence(
            &X[x_start[b], 0], m, &Y[y_start[b], 0], o, lengths[b],
            &target_weight[y_start[b]], weight_scale, every_step,
            &theta[0, 0], n, q,
            &bias_hh[0], &W_out[0, 0], &b_out[0], activation,
            loss_kind, &grad_rows[b, 0], &influence[tid, 0],
            &scratch[tid, 0])


def elman_rtrl_online(
    const floating[:, ::1] X,
    const floating[:, ::1] Y,
    const Py_ssize_t[::1] x_start,
    const Py_ssize_t[::1] y_start,
    const Py_ssize_t[::1] lengths,
    const floating[::1] target_weight,
    bint every_step,
    bint reset_state,
    floating[::1] params,
    int n,
    int m,
    int o,
    int activation,
    int loss_kind,
    int solver,
    double learning_rate,
    double beta_1,
    double beta_2,
    double epsilon,
    double momentum,
    bint nesterov,
    floating[::1] state_a,
    floating[::1] state_b,
    long long t_update,
    const floating[::1] penalty,
    double clip_norm,
    floating[::1] hidden,
    floating[:, ::1] influence,
    int parity,
    floating[::1] grad,
    floating[::1] scratch,
    double[::1] loss_rows,
):
    """Real-time RTRL: update the parameters after every step with a target.

    Williams & Zipser's algorithm: the influence matrices are carried on
    under the changing weights. Sequences run one after the other, in the
    given order, each from a zero state when ``reset_state``; otherwise the
    first one continues from ``hidden`` and ``influence[parity]`` (a stream)
    and the final state is left there.

    Parameters
    ----------
    X, Y, x_start, y_start, lengths, target_weight, every_step
        As for :func:`elman_rtrl_minibatch`.
    reset_state : start each sequence from the zero state.
    params : flat parameter vector [theta | bias_hh | W_out | b_out],
        updated in place.
    n, m, o : hidden units, inputs, outputs.
    activation, loss_kind : codes of ``skrtrl._kernels._common``.
    solver : 0 for SGD, 1 for Adam; learning_rate ... nesterov: settings.
    state_a, state_b : optimizer state (Adam moments, or SGD velocity).
    t_update : number of updates made before this call.
    penalty : alpha on the weights, 0 on the biases; each update adds
        target_weight * penalty * params to the gradient.
    clip_norm : clip each update's gradient to this norm (<= 0: no clip).
    hidden : (n,) hidden state, in and out.
    influence : (2, n * n * q) influence matrices; ``influence[parity]`` is
        the current one, in and out.
    grad : (n_params,) workspace. scratch : train_scratch_size(n, m, o).
    loss_rows : (B,) weighted loss of each sequence (written).

    Returns
    -------
    (t_update, parity) after the call.
    """
    cdef:
        Py_ssize_t B = lengths.shape[0]
        int q = m + n + 1
        int nq = n * q
        Py_ssize_t size = params.shape[0]
        Py_ssize_t b, t, i
        int k
        double weight, loss
        floating* theta = &params[0]
        floating* bias_hh = theta + nq
        floating* W_out = bias_hh + n
        floating* b_out = W_out + o * n
        floating* g_theta = &grad[0]
        floating* g_bias_hh = g_theta + nq
        floating* g_rest = g_bias_hh + n
        floating* A = &scratch[0]
        floating* a = A + n * n
        floating* d = a + n
        floating* g = d + n
        floating* z = g + n
        floating* zout = z + q
        floating* dz = zout + o
        floating* P_new
        floating* P_old
        const floating* y
        bint first
    if size != nq + n + o * n + o or grad.shape[0] != size:
        raise ValueError("params and grad must have n*q + n + o*n + o entries")
    if penalty.shape[0] != size or state_a.shape[0] != size:
        raise ValueError("penalty and optimizer state must match params")
    if solver == SOLVER_ADAM and state_b.shape[0] != size:
        raise ValueError("Adam needs a second moment of the size of params")
    if influence.shape[0] != 2 or influence.shape[1] != n * nq:
        raise ValueError("influence must have shape (2, n * n * q)")
    if hidden.shape[0] != n or scratch.shape[0] < train_scratch_size(n, m, o):
        raise ValueError("hidden or scratch too small")
    if loss_rows.shape[0] < B:
        raise ValueError("loss_rows too small")
    if target_weight.shape[0] != Y.shape[0]:
        raise ValueError("target_weight needs one weight per row of Y")
    with nogil:
        for b in range(B):
            loss = 0.0
            if reset_state:
                memset(&hidden[0], 0, n * sizeof(floating))
            for t in range(lengths[b]):
                first = reset_state and t == 0
                P_old = &influence[parity, 0]
                P_new = &influence[1 - parity, 0]
                parity = 1 - parity
                _forward_influence_step(
                    &X[x_start[b] + t, 0], m, n, q, theta, bias_hh, activation,
                    &hidden[0], P_old, P_new, first, A, a, d, z)
                if not (every_step or t == lengths[b] - 1):
                    continue
                i = y_start[b] + (t if every_step else 0)
                weight = target_weight[i]
                y = &Y[i, 0]
                # The readout gradient goes past the bias_hh block, so that
                # grad is laid out like params.
                memset(&grad[0], 0, size * sizeof(floating))
                loss += _target_gradient(
                    y, o, n, q, weight, loss_kind, W_out, b_out, &hidden[0],
                    P_new, g_theta, g_rest, g, zout, dz)
                for k in range(n):
                    g_bias_hh[k] = g_theta[k * q + m + n]
                penalize_and_clip(&grad[0], theta, &penalty[0], weight, size,
                                  clip_norm)
                t_update += 1
                optimizer_step(
                    theta, &grad[0], size, solver, learning_rate, beta_1,
                    beta_2, epsilon, momentum, nesterov, &state_a[0],
                    &state_b[0] if solver == SOLVER_ADAM else &state_a[0],
                    t_update)
            loss_rows[b] = loss
    return t_update, parity


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
    const floating[::1] h0,
):
    """Hidden states of the Elman cell, each sequence starting from ``h0``.

    ``H`` receives the state after every step (rows laid out like ``X``) when
    ``every_step``, otherwise the final state of sequence s in row s.
    ``scratch`` needs at least 2*n + q numbers; ``h0`` is the initial
    state (zeros for independent sequences, the stream state otherwise).
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
    if scratch.shape[0] < 2 * n + q or h0.shape[0] != n:
        raise ValueError("scratch workspace too small or h0 of the wrong size")
    with nogil:
        for s in range(S):
            memcpy(z + m, &h0[0], n * sizeof(floating))
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
