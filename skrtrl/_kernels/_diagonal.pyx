# cython: language_level=3
"""RTRL with per-unit (diagonal) influence matrices.

Two models share this kernel, because in both each hidden unit's influence
only involves that unit's own parameters:

* the element-wise cell (``full=False``), a_t = W_ih x_t + w * h_{t-1} + b,
  with theta (n x q, q = m + 2) = [W_ih | w | b_ih]: here this *is* exact
  RTRL, in O(n q) per step;
* SnAp-1 for the Elman cell (``full=True``, Menick et al., 2020), theta
  (n x q, q = m + n + 1) = [W_ih | W_hh | b_ih]: the forward pass uses the
  full W_hh, the influence keeps only the entries d h_i / d theta[i, :] that
  one step makes nonzero, propagated with W_hh[i, i].

Per unit i and column j:

    p_t[i, j] = phi'(a_t[i]) (r_i p_{t-1}[i, j] + z_t^i[j])

with r_i = w_i (element-wise) or W_hh[i, i] (SnAp-1), and z_t^i the inputs
of row i of theta: [x_t, h_{t-1}[i], 1] or [x_t, h_{t-1}, 1]. The gradient
of a loss with dL/dh_t = g is g[i] p_t[i, j]. The update is element-wise, so
one buffer per sequence suffices.
"""

# Bounds and wrap-around checks are set for the whole module by setup.py:
# off, or on with SKRTRL_DEBUG=1 to audit the kernels.
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memset, memcpy

from ._blas cimport gemv_rm
from ._common cimport (
    activate, online_update, readout_gradient, SOLVER_ADAM,
)


def diagonal_scratch_size(int n, int m, int o):
    """Numbers of scratch memory one thread of the training kernels needs."""
    return 5 * n + (m + n + 1) + 2 * o


cdef inline void _diagonal_step(
    const floating* x, int m, int n, int q, bint full,
    const floating* theta, const floating* bias_hh, int activation,
    floating* h, floating* p, bint first,
    floating* a, floating* d, floating* z,
) noexcept nogil:
    """h <- phi(a_t) and the per-unit influence p (n x q), in place."""
    cdef:
        int i, j
        floating di, r
        floating* row
        const floating* th
    memcpy(z, x, m * sizeof(floating))
    if full:
        memcpy(z + m, h, n * sizeof(floating))
        z[m + n] = 1
        memcpy(a, bias_hh, n * sizeof(floating))
        gemv_rm(n, q, <floating> 1, theta, q, z, <floating> 1, a)
    else:
        for i in range(n):
            th = theta + i * q
            a[i] = bias_hh[i] + th[m] * h[i] + th[m + 1]
            for j in range(m):
                a[i] += th[j] * x[j]
    activate(activation, n, a, d)
    # h still holds h_{t-1} here, as the element-wise immediate term needs.
    if first:
        # p_{t-1} = 0; the buffer may hold anything (even NaN), so it must
        # not be read, not even multiplied by zero.
        memset(p, 0, n * q * sizeof(floating))
    for i in range(n):
        di = d[i]
        row = p + i * q
        r = 0 if first else theta[i * q + (m + i if full else m)]
        if full:
            for j in range(q):
                row[j] = di * (r * row[j] + z[j])
        else:
            for j in range(m):
                row[j] = di * (r * row[j] + x[j])
            row[m] = di * (r * row[m] + h[i])
            row[m + 1] = di * (r * row[m + 1] + 1)
    memcpy(h, a, n * sizeof(floating))


cdef inline double _diagonal_target(
    const floating* y, int o, int n, int q, double weight, int loss_kind,
    const floating* W_out, const floating* b_out, const floating* h,
    const floating* p, floating* grad_theta, floating* grad_out,
    floating* g, floating* zout, floating* dz,
) noexcept nogil:
    """Loss of one target; gradients added into grad_theta and grad_out."""
    cdef int i, j
    cdef double loss = readout_gradient(
        y, o, n, weight, loss_kind, W_out, b_out, h, grad_out, g, zout, dz)
    for i in range(n):
        for j in range(q):
            grad_theta[i * q + j] += g[i] * p[i * q + j]
    return loss


cdef double _diagonal_sequence(
    const floating* X, int m, const floating* Y, int o, Py_ssize_t length,
    const floating* weights, double weight_scale, bint every_step, bint full,
    const floating* theta, int n, int q, const floating* bias_hh,
    const floating* W_out, const floating* b_out, int activation,
    int loss_kind, floating* grad, floating* p, floating* scratch,
) noexcept nogil:
    """One sequence from the zero state; gradient laid out
    [theta (n*q) | W_out (o*n) | b_out (o)]."""
    cdef:
        Py_ssize_t t
        double loss = 0.0
        floating* h = scratch
        floating* a = h + n
        floating* d = a + n
        floating* g = d + n
        floating* z = g + n
        floating* zout = z + (m + n + 1)
        floating* dz = zout + o
    memset(h, 0, n * sizeof(floating))
    for t in range(length):
        _diagonal_step(X + t * m, m, n, q, full, theta, bias_hh, activation,
                       h, p, t == 0, a, d, z)
        if every_step or t == length - 1:
            loss += _diagonal_target(
                Y + (t * o if every_step else 0), o, n, q,
                weight_scale * weights[t if every_step else 0], loss_kind,
                W_out, b_out, h, p, grad, grad + n * q, g, zout, dz)
    return loss


def diagonal_rtrl_minibatch(
    const floating[:, ::1] X,
    const floating[:, ::1] Y,
    const Py_ssize_t[::1] x_start,
    const Py_ssize_t[::1] y_start,
    const Py_ssize_t[::1] lengths,
    const floating[::1] target_weight,
    double weight_scale,
    bint every_step,
    bint full,
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
    """Minibatch gradients with per-unit influence; arguments as for
    ``skrtrl._kernels._elman.elman_rtrl_minibatch``, plus ``full`` (SnAp-1
    on the Elman cell rather than the element-wise cell). ``influence`` has
    one row of n * q numbers per thread."""
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
    if q != (m + n + 1 if full else m + 2):
        raise ValueError("theta has the wrong number of columns")
    if grad_rows.shape[0] < B or grad_rows.shape[1] != size:
        raise ValueError("grad_rows has the wrong size")
    if influence.shape[1] < n * q or scratch.shape[1] < diagonal_scratch_size(n, m, o):
        raise ValueError("workspace too small")
    if loss_rows.shape[0] < B or target_weight.shape[0] != Y.shape[0]:
        raise ValueError("loss_rows too small or target_weight of wrong size")
    if B == 0:
        return
    for b in prange(B, nogil=True, schedule="dynamic", num_threads=n_threads):
        tid = threadid()
        memset(&grad_rows[b, 0], 0, size * sizeof(floating))
        loss_rows[b] = _diagonal_sequence(
            &X[x_start[b], 0], m, &Y[y_start[b], 0], o, lengths[b],
            &target_weight[y_start[b]], weight_scale, every_step, full,
            &theta[0, 0], n, q, &bias_hh[0], &W_out[0, 0], &b_out[0],
            activation, loss_kind, &grad_rows[b, 0], &influence[tid, 0],
            &scratch[tid, 0])


def diagonal_rtrl_online(
    const floating[:, ::1] X,
    const floating[:, ::1] Y,
    const Py_ssize_t[::1] x_start,
    const Py_ssize_t[::1] y_start,
    const Py_ssize_t[::1] lengths,
    const floating[::1] target_weight,
    bint every_step,
    bint reset_state,
    bint full,
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
    floating[::1] influence,
    floating[::1] grad,
    floating[::1] scratch,
    double[::1] loss_rows,
):
    """Update after every step with a target; per-unit influence.

    Arguments as for ``skrtrl._kernels._elman.elman_rtrl_online``, except
    that ``influence`` is one (n * q) buffer updated in place (no parity).
    Returns the number of updates made so far.
    """
    cdef:
        Py_ssize_t B = lengths.shape[0]
        int q = m + n + 1 if full else m + 2
        int nq = n * q
        Py_ssize_t size = params.shape[0]
        Py_ssize_t b, t, i
        double weight, loss
        floating* theta = &params[0]
        floating* bias_hh = theta + nq
        floating* W_out = bias_hh + n
        floating* b_out = W_out + o * n
        floating* g_theta = &grad[0]
        floating* g_bias_hh = g_theta + nq
        floating* g_rest = g_bias_hh + n
        floating* h = &hidden[0]
        floating* a = &scratch[0] + n
        floating* d = a + n
        floating* g = d + n
        floating* z = g + n
        floating* zout = z + (m + n + 1)
        floating* dz = zout + o
        int k
    if size != nq + n + o * n + o or grad.shape[0] != size:
        raise ValueError("params and grad must have n*q + n + o*n + o entries")
    if penalty.shape[0] != size or state_a.shape[0] != size:
        raise ValueError("penalty and optimizer state must match params")
    if solver == SOLVER_ADAM and state_b.shape[0] != size:
        raise ValueError("Adam needs a second moment of the size of params")
    if influence.shape[0] != nq or hidden.shape[0] != n:
        raise ValueError("influence must have n * q entries, hidden n")
    if scratch.shape[0] < diagonal_scratch_size(n, m, o):
        raise ValueError("scratch too small")
    if loss_rows.shape[0] < B or target_weight.shape[0] != Y.shape[0]:
        raise ValueError("loss_rows too small or target_weight of wrong size")
    with nogil:
        for b in range(B):
            loss = 0.0
            if reset_state:
                memset(h, 0, n * sizeof(floating))
            for t in range(lengths[b]):
                _diagonal_step(&X[x_start[b] + t, 0], m, n, q, full, theta,
                               bias_hh, activation, h, &influence[0],
                               reset_state and t == 0, a, d, z)
                if not (every_step or t == lengths[b] - 1):
                    continue
                i = y_start[b] + (t if every_step else 0)
                weight = target_weight[i]
                memset(&grad[0], 0, size * sizeof(floating))
                loss += _diagonal_target(
                    &Y[i, 0], o, n, q, weight, loss_kind, W_out, b_out, h,
                    &influence[0], g_theta, g_rest, g, zout, dz)
                for k in range(n):
                    g_bias_hh[k] = g_theta[k * q + q - 1]
                t_update = online_update(
                    theta, &grad[0], size, &penalty[0], weight, clip_norm,
                    solver, learning_rate, beta_1, beta_2, epsilon, momentum,
                    nesterov, &state_a[0], &state_b[0], t_update)
            loss_rows[b] = loss
    return t_update


def diagonal_forward(
    const floating[:, ::1] X,
    const Py_ssize_t[::1] x_start,
    const Py_ssize_t[::1] lengths,
    const floating[:, ::1] theta,
    const floating[::1] bias_hh,
    int activation,
    bint every_step,
    floating[:, ::1] H,
    const floating[::1] h0,
):
    """Hidden states of the element-wise cell, each sequence from ``h0``;
    ``H`` as for ``skrtrl._kernels._elman.elman_forward``."""
    cdef:
        Py_ssize_t S = lengths.shape[0]
        int n = theta.shape[0]
        int q = theta.shape[1]
        int m = X.shape[1]
        Py_ssize_t s, t
        int i, j
        double ai
        const floating* th
        const floating* x
        floating* h
    if q != m + 2 or h0.shape[0] != n:
        raise ValueError("theta must have m + 2 columns and h0 n entries")
    if H.shape[1] != n:
        raise ValueError("H must have n columns")
    with nogil:
        for s in range(S):
            for t in range(lengths[s]):
                x = &X[x_start[s] + t, 0]
                h = &H[x_start[s] + t, 0] if every_step else &H[s, 0]
                for i in range(n):
                    if t == 0:
                        ai = h0[i]
                    elif every_step:
                        ai = H[x_start[s] + t - 1, i]
                    else:
                        ai = h[i]
                    th = &theta[i, 0]
                    ai = bias_hh[i] + th[m] * ai + th[m + 1]
                    for j in range(m):
                        ai += th[j] * x[j]
                    h[i] = <floating> ai
                _activate_only(activation, n, h)


cdef inline void _activate_only(int kind, int n, floating* a) noexcept nogil:
    """phi applied in place (derivatives are not needed for prediction)."""
    cdef floating dummy[1]
    cdef int k
    for k in range(n):
        activate(kind, 1, a + k, dummy)
