# One time step of every cell, and its two linearisations.
#
# The gradient methods that are not RTRL (BPTT, UORO) need the same three
# things from a cell, whatever the cell is:
#
# * ``cell_forward``: advance the state s_{t-1} -> s_t and keep, in a
#   *record* of the step, what the derivatives need;
# * ``cell_vjp``: from a record and gbar = dL/ds_t, the vector-Jacobian
#   products gbar^T J_t = dL/ds_{t-1} and gbar^T I_t, added into the
#   gradient of theta (J_t = ds_t/ds_{t-1}, I_t = ds_t/dtheta at fixed
#   s_{t-1}: the two factors of the RTRL recursion P_t = J_t P_{t-1} + I_t);
# * ``cell_jvp``: the Jacobian-vector product J_t v.
#
# Cells (``kind``), in the flat layouts of skrtrl._cells (R rows of theta,
# q columns, state size S, K coefficient vectors of n numbers per step):
#
#   KIND_ELMAN     a = theta [x, h, 1] + bias_hh, h' = phi(a);
#                  R = n, q = m + n + 1, S = n, K = 1 (phi'(a)).
#   KIND_DIAGONAL  a_i = W_ih[i] x + w_i h_i + b_ih_i + bias_hh_i;
#                  R = n, q = m + 2, S = n, K = 1 (phi'(a)).
#   KIND_GRU       torch's GRU, gates r, z, n; R = 3n, q = m + n + 2,
#                  S = n, K = 5 (r, z, cr, cz, cn).
#   KIND_LSTM      torch's LSTM, gates i, f, g, o; R = 4n, q = m + n + 2,
#                  S = 2n ([h, c]), K = 6 (f, gi, gf, gg, do, k).
#
# The gated cells' coefficients are the derivatives written out in the
# docstring of ``_gated.pyx``: for the GRU, cn = (1 - z)(1 - e^2) =
# dh'/da_n, cz = (h - e) z (1 - z) = dh'/da_z, cr = cn u r (1 - r) =
# dh'/da_r; for the LSTM, gi, gf, gg = dc'/da_{i,f,g}, do = dh'/da_o and
# k = dh'/dc'. A record holds [x (m) | h_{t-1} (n) | coefficients (K n) |
# spare (n)]: the step's inputs and previous hidden state (v = [x, h_{t-1},
# 1(, 1)] are the inputs of every row of theta) and the local derivatives;
# the spare n numbers hold dL/dh_t for full BPTT. A record is all the
# backward pass of a step needs, together with theta.
#
# The linearisations are those of the forward step written here; the tests
# compare the resulting gradients with the independent RTRL kernels and with
# finite differences.

from cython cimport floating
from libc.math cimport tanh
from libc.string cimport memset, memcpy

from ._blas cimport gemv_rm, gemv_rm_t
from ._common cimport _sigmoid, activate

cdef enum:
    KIND_ELMAN = 0
    KIND_DIAGONAL = 1
    KIND_GRU = 2
    KIND_LSTM = 3


cdef inline int cell_rows(int kind, int n) noexcept nogil:
    """R: rows of theta (one per unit, or per gate and unit)."""
    if kind == KIND_GRU:
        return 3 * n
    if kind == KIND_LSTM:
        return 4 * n
    return n


cdef inline int cell_columns(int kind, int n, int m) noexcept nogil:
    """q: columns of theta."""
    if kind == KIND_ELMAN:
        return m + n + 1
    if kind == KIND_DIAGONAL:
        return m + 2
    return m + n + 2


cdef inline int cell_state(int kind, int n) noexcept nogil:
    """S: size of the state (h, or [h, c] for the LSTM)."""
    return 2 * n if kind == KIND_LSTM else n


cdef inline int cell_coefficients(int kind) noexcept nogil:
    """K: coefficient vectors of n numbers kept per step."""
    if kind == KIND_GRU:
        return 5
    if kind == KIND_LSTM:
        return 6
    return 1


cdef inline int record_size(int kind, int n, int m) noexcept nogil:
    """Numbers in the record of one step (see the header)."""
    return m + n + (cell_coefficients(kind) + 1) * n


cdef inline int step_work_size(int kind, int n) noexcept nogil:
    """Scratch numbers the three step functions need (2 R)."""
    return 2 * cell_rows(kind, n)


cdef inline void cell_forward(
    int kind, int activation, int n, int m, int q,
    const floating* theta, const floating* bias_hh,
    const floating* x, floating* s, floating* rec, floating* work,
) noexcept nogil:
    """s <- s_t from s = s_{t-1} and the input x; writes the step's record.

    ``bias_hh`` is read by the Elman and element-wise cells only (the gated
    cells keep both biases in theta). ``work``: step_work_size numbers.
    """
    cdef:
        int R = cell_rows(kind, n)
        int i, j
        double r, zg, u, e, hk, ig, fg, gg, og, c, cnew, tc, cn, acc
        floating* hprev = rec + m
        floating* coef = rec + m + n
        floating* ax = work
        floating* ah = work + R
        const floating* th
    memcpy(rec, x, m * sizeof(floating))
    memcpy(hprev, s, n * sizeof(floating))
    if kind == KIND_ELMAN:
        for i in range(n):
            s[i] = bias_hh[i] + theta[i * q + m + n]
        # [x, h_{t-1}] is contiguous in the record: one product.
        gemv_rm(n, m + n, <floating> 1, theta, q, rec, <floating> 1, s)
        activate(activation, n, s, coef)
    elif kind == KIND_DIAGONAL:
        for i in range(n):
            th = theta + i * q
            acc = bias_hh[i] + th[m] * hprev[i] + th[m + 1]
            for j in range(m):
                acc += th[j] * x[j]
            s[i] = <floating> acc
        activate(activation, n, s, coef)
    elif kind == KIND_GRU:
        # The n gate needs W_hn h + b_hn apart from its input part.
        for i in range(R):
            ax[i] = theta[i * q + m + n]
            ah[i] = theta[i * q + m + n + 1]
        gemv_rm(R, m, <floating> 1, theta, q, x, <floating> 1, ax)
        gemv_rm(R, n, <floating> 1, theta + m, q, hprev, <floating> 1, ah)
        for i in range(n):
            r = _sigmoid(ax[i] + ah[i])
            zg = _sigmoid(ax[n + i] + ah[n + i])
            u = ah[2 * n + i]
            e = tanh(ax[2 * n + i] + r * u)
            hk = hprev[i]
            s[i] = <floating> ((1 - zg) * e + zg * hk)
            cn = (1 - zg) * (1 - e * e)
            coef[i] = <floating> r
            coef[n + i] = <floating> zg
            coef[2 * n + i] = <floating> (cn * u * r * (1 - r))
            coef[3 * n + i] = <floating> ((hk - e) * zg * (1 - zg))
            coef[4 * n + i] = <floating> cn
    else:
        for i in range(R):
            ax[i] = theta[i * q + m + n] + theta[i * q + m + n + 1]
        gemv_rm(R, m + n, <floating> 1, theta, q, rec, <floating> 1, ax)
        for i in range(n):
            ig = _sigmoid(ax[i])
            fg = _sigmoid(ax[n + i])
            gg = tanh(ax[2 * n + i])
            og = _sigmoid(ax[3 * n + i])
            c = s[n + i]
            cnew = fg * c + ig * gg
            tc = tanh(cnew)
            s[n + i] = <floating> cnew
            s[i] = <floating> (og * tc)
            coef[i] = <floating> fg
            coef[n + i] = <floating> (gg * ig * (1 - ig))
            coef[2 * n + i] = <floating> (c * fg * (1 - fg))
            coef[3 * n + i] = <floating> (ig * (1 - gg * gg))
            coef[4 * n + i] = <floating> (tc * og * (1 - og))
            coef[5 * n + i] = <floating> (og * (1 - tc * tc))


cdef inline void _add_row(floating* row, floating scale, const floating* x,
                          int m, const floating* h, int n,
                          int n_ones) noexcept nogil:
    """row += scale * [x, h, 1 (n_ones times)]."""
    cdef int j
    for j in range(m):
        row[j] += scale * x[j]
    for j in range(n):
        row[m + j] += scale * h[j]
    for j in range(n_ones):
        row[m + n + j] += scale


cdef inline void cell_vjp(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, const floating* gbar, floating* gprev,
    floating* grad_theta, floating* work,
) noexcept nogil:
    """gprev = gbar^T J_t (skipped when NULL); grad_theta += gbar^T I_t.

    ``gbar`` and ``gprev`` have S numbers and must not overlap;
    ``grad_theta`` is laid out like theta (R x q).
    """
    cdef:
        int R = cell_rows(kind, n)
        int i
        floating ec
        const floating* x = rec
        const floating* hprev = rec + m
        const floating* coef = rec + m + n
        floating* e = work
        floating* row
    if kind == KIND_ELMAN:
        for i in range(n):
            e[i] = gbar[i] * coef[i]
            _add_row(grad_theta + i * q, e[i], x, m, hprev, n, 1)
        if gprev != NULL:
            gemv_rm_t(n, n, <floating> 1, theta + m, q, e, <floating> 0, gprev)
    elif kind == KIND_DIAGONAL:
        for i in range(n):
            e[i] = gbar[i] * coef[i]
            row = grad_theta + i * q
            _add_row(row, e[i], x, m, hprev + i, 1, 1)
            if gprev != NULL:
                gprev[i] = e[i] * theta[i * q + m]
    elif kind == KIND_GRU:
        # coef: r, z, cr, cz, cn. Rows r and z see v = [x, h, 1, 1]; row n
        # sees [x, r h, 1, r] (W_hn h + b_hn is scaled by r).
        for i in range(n):
            e[i] = gbar[i] * coef[2 * n + i]
            e[n + i] = gbar[i] * coef[3 * n + i]
            ec = gbar[i] * coef[4 * n + i]
            e[2 * n + i] = ec * coef[i]
            _add_row(grad_theta + i * q, e[i], x, m, hprev, n, 2)
            _add_row(grad_theta + (n + i) * q, e[n + i], x, m, hprev, n, 2)
            row = grad_theta + (2 * n + i) * q
            _add_row(row, ec, x, m, hprev, 0, 0)
            _add_row(row + m, e[2 * n + i], x, 0, hprev, n, 0)
            row[m + n] += ec
            row[m + n + 1] += e[2 * n + i]
        if gprev != NULL:
            gemv_rm_t(R, n, <floating> 1, theta + m, q, e, <floating> 0, gprev)
            for i in range(n):
                gprev[i] += gbar[i] * coef[n + i]
    else:
        # coef: f, gi, gf, gg, do, k. dL/dc_t in full: gc + gh k.
        for i in range(n):
            ec = gbar[n + i] + gbar[i] * coef[5 * n + i]
            e[i] = ec * coef[n + i]
            e[n + i] = ec * coef[2 * n + i]
            e[2 * n + i] = ec * coef[3 * n + i]
            e[3 * n + i] = gbar[i] * coef[4 * n + i]
            if gprev != NULL:
                gprev[n + i] = ec * coef[i]
        for i in range(R):
            _add_row(grad_theta + i * q, e[i], x, m, hprev, n, 2)
        if gprev != NULL:
            gemv_rm_t(R, n, <floating> 1, theta + m, q, e, <floating> 0, gprev)


cdef inline void cell_jvp(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, const floating* v, floating* out, floating* work,
) noexcept nogil:
    """out = J_t v (S numbers each, not overlapping)."""
    cdef:
        int R = cell_rows(kind, n)
        int i
        floating jc
        const floating* coef = rec + m + n
        floating* y = work
    if kind == KIND_ELMAN:
        gemv_rm(n, n, <floating> 1, theta + m, q, v, <floating> 0, y)
        for i in range(n):
            out[i] = coef[i] * y[i]
    elif kind == KIND_DIAGONAL:
        for i in range(n):
            out[i] = coef[i] * theta[i * q + m] * v[i]
    elif kind == KIND_GRU:
        gemv_rm(R, n, <floating> 1, theta + m, q, v, <floating> 0, y)
        for i in range(n):
            out[i] = (coef[n + i] * v[i] + coef[2 * n + i] * y[i]
                      + coef[3 * n + i] * y[n + i]
                      + coef[4 * n + i] * coef[i] * y[2 * n + i])
    else:
        gemv_rm(R, n, <floating> 1, theta + m, q, v, <floating> 0, y)
        for i in range(n):
            jc = (coef[n + i] * y[i] + coef[2 * n + i] * y[n + i]
                  + coef[3 * n + i] * y[2 * n + i] + coef[i] * v[n + i])
            out[n + i] = jc
            out[i] = coef[5 * n + i] * jc + coef[4 * n + i] * y[3 * n + i]
