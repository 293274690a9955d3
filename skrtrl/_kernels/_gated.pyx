# cython: language_level=3
"""Exact RTRL for the gated cells: GRU and LSTM (torch's equations).

Notation: n hidden units, m inputs, o outputs, G gates (3 for the GRU, 4 for
the LSTM), q = m + n + 2. The recurrent parameters are one row-major matrix
``theta`` (G*n x q); row g*n + i belongs to gate g of unit i and holds

    [W_ih[g*n + i, :] | W_hh[g*n + i, :] | b_ih[g*n + i] | b_hh[g*n + i]],

so ``theta[:, :m]`` is torch's ``weight_ih``, ``theta[:, m:m+n]`` its
``weight_hh`` and the last two columns its ``bias_ih`` and ``bias_hh``, in
torch's gate order (GRU: r, z, n; LSTM: i, f, g, o). The two bias columns
stay separate because the GRU's b_in and b_hn have different derivatives
(for the LSTM, and the GRU's r and z gates, the two columns are equal). The
flat parameter vector is [theta | W_out (o x n) | b_out (o)] and gradients
are laid out the same way.

State s_t: h_t (S = n) for the GRU, [h_t, c_t] (S = 2n) for the LSTM. The
influence P_t = d s_t / d theta is S x (G*n*q), row-major, column
(g*n + i)*q + j for theta[g*n + i, j]. Each gate pre-activation of unit i
depends on theta only through row g*n + i, with the derivative of
``theta[g*n + i] . v`` being v = [x_t, h_{t-1}, 1, 1]. Hence

    P_t = J_t P_{t-1} + I_t,    J_t = d s_t / d s_{t-1} (S x S, dense),

where the immediate term I_t (the derivative at fixed s_{t-1}) only has
entries in the rows of unit i's state at the columns of unit i's G gate
rows: G (GRU) or 2 x G (LSTM) short row segments per unit, added with
loops. P_0 = 0, so the first step from the zero state is I_1 alone (no
GEMM). A loss with dL/dh_t = g adds P_t[:n]^T g to the gradient of theta.

GRU (sigma the logistic function; products element-wise)::

    r = sigma(a_r),  a_r = W_ir x + b_ir + W_hr h + b_hr
    z = sigma(a_z),  a_z = W_iz x + b_iz + W_hz h + b_hz
    u = W_hn h + b_hn
    e = tanh(a_n),   a_n = W_in x + b_in + r u
    h' = (1 - z) e + z h

    d h'/d a_n = (1 - z)(1 - e^2)           =: cn
    d h'/d a_z = (h - e) z (1 - z)          =: cz
    d h'/d a_r = cn u r (1 - r)             =: cr
    d h'/d u   = cn r

    J = diag(z) + diag(cr) W_hr + diag(cz) W_hz + diag(cn r) W_hn

    I[i, row r_i] = cr_i v,  I[i, row z_i] = cz_i v,
    I[i, row n_i] = cn_i [x, r_i h, 1, r_i]    (b_in: cn_i, b_hn: cn_i r_i)

LSTM (c' first, then h')::

    i, f, o = sigma(a_i), sigma(a_f), sigma(a_o),  g = tanh(a_g),
    a_* = W_i* x + b_i* + W_h* h + b_h*
    c' = f c + i g,   h' = o tanh(c')

    d c'/d a_i = g i (1 - i)       =: gi      d c'/d a_f = c f (1 - f)  =: gf
    d c'/d a_g = i (1 - g^2)       =: gg      d h'/d a_o = tanh(c') o (1 - o)
                                                                        =: do
    d h'/d c'  = o (1 - tanh(c')^2) =: k

    Jc = diag(gi) W_hi + diag(gf) W_hf + diag(gg) W_hg        (n x n)
    J  = [[diag(k) Jc + diag(do) W_ho,  diag(k f)],           rows h'
          [Jc,                          diag(f)  ]]           rows c'

    I[c_i, row i_i] = gi_i v, I[c_i, row f_i] = gf_i v, I[c_i, row g_i] = gg_i v,
    I[h_i, rows i_i, f_i, g_i] = k_i I[c_i, same rows],  I[h_i, row o_i] = do_i v.

The LSTM's right half of J is diagonal, which the kernel exploits: one GEMM
(2n x n) J[:, :n] times P_{t-1}[:n] (the h rows) accumulates (beta = 1)
onto a block of P_t first written from the c rows of P_{t-1}: f_i P_{t-1}[c_i]
into row c_i, k_i f_i P_{t-1}[c_i] into row h_i. That halves the flops of
the dense (2n x 2n) product, and the write takes the place of the pass in
which BLAS would zero the output for beta = 0, so the only extra traffic
against the GRU's update is the read of the c rows (an earlier version added
the diagonal terms in a separate pass over P after one whole GEMM: 1.09x
slower at n = 64, one thread). Per step and sequence the GEMM costs
2 n^2 (3 n q) flops for the GRU and 2 (2n) n (4 n q) for the LSTM, against
2 n^2 (n (m + n + 1)) for the Elman cell: about 3x and 8x. As for the Elman cell, the update runs
in column blocks (``_block_columns``), and each block gets its immediate term
and its share of the gradient right after the GEMM wrote it.
``lstm_dense=True`` (minibatch kernel only) keeps the dense product, for
tests and benchmarks. All derivatives above are checked against central
finite differences and an independent BPTT, through the estimators, in
tests/test_gated.py.

SnAp-1 (``snap1=True``; Menick et al., 2020, "Practical Real Time Recurrent
Learning with a Sparse Approximation") keeps, of P_t, only the entries that
relate unit i's state (h_i; h_i and c_i for the LSTM) to unit i's own G gate
rows of theta: the pattern of the immediate term I_t, which is where one
step from P = 0 puts nonzeros. (For the LSTM, d c_i / d theta[o_i] is zero
after one step but is kept with the rest of unit i's block: it fills in at
the second step through h_i, and keeping the block whole costs nothing.)
Under that pattern, (J_t P_{t-1})[state of i, columns of i] only involves
the diagonal of each block of J_t, so each unit's block evolves on its own:

    GRU:   p_t = d_i p_{t-1} + I_t[i, unit i's rows],
           d_i = J[i, i] = z_i + cr_i W_hr[i, i] + cz_i W_hz[i, i]
                 + cn_i r_i W_hn[i, i]
    LSTM:  [p^h_t; p^c_t] = [[jhh, k_i f_i], [jc, f_i]] [p^h_{t-1}; p^c_{t-1}]
                            + I_t[(h_i, c_i), unit i's rows],
           jc = gi_i W_hi[i, i] + gf_i W_hf[i, i] + gg_i W_hg[i, i],
           jhh = k_i jc + do_i W_ho[i, i].

The kept entries are stored in theta's own layout: p^h (and p^c) is a
(G*n x q) matrix whose row g*n + i holds d h_i / d theta[g*n + i, :], so the
influence is S / n times the size of theta (G*n*q or 2 G*n*q numbers), one
buffer per sequence updated in place, and a loss with dL/dh_t = g adds
g[i] p^h[g*n + i, :] to row g*n + i of the gradient. O(number of parameters)
per step, like the forward pass; with n = 1 it is exact RTRL.

The kernels mirror those of the Elman cell (``_elman.pyx``): a minibatch
kernel that runs each sequence through time on its own thread with two
influence buffers per thread and writes one gradient row per sequence; an
online kernel (update after every step, state and influence carried in and
out for streams); and a forward kernel for predictions. Memory: two
influence buffers of S * G*n*q numbers per kernel thread (and per stream),
e.g. 6.6 MB (GRU) and 17.6 MB (LSTM) each at n = 64, m = 1 in float64.
"""

# Bounds and wrap-around checks are set for the whole module by setup.py:
# off, or on with SKRTRL_DEBUG=1 to audit the kernels.
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport tanh
from libc.string cimport memset, memcpy

from ._blas cimport gemm_rm, gemv_rm, gemv_rm_t
from ._common cimport (
    _sigmoid, online_update, readout_gradient, SOLVER_ADAM,
)

# Codes of the cells, as passed by skrtrl._cells.
cdef enum:
    KIND_GRU = 0
    KIND_LSTM = 1


cdef inline int _n_gates(int kind) noexcept nogil:
    return 3 if kind == KIND_GRU else 4


cdef inline int _n_state(int kind, int n) noexcept nogil:
    return n if kind == KIND_GRU else 2 * n


def gated_sizes(int kind, int n, int m):
    """(gates G, state size S, columns q, influence columns G*n*q)."""
    if kind != KIND_GRU and kind != KIND_LSTM:
        raise ValueError("unknown gated cell kind")
    cdef int q = m + n + 2
    return _n_gates(kind), _n_state(kind, n), q, _n_gates(kind) * n * q


def gated_influence_size(int kind, int n, int m, bint snap1):
    """Numbers of influence memory per sequence (per kernel thread): two
    S x G*n*q buffers for exact RTRL, one (S / n) x G*n*q for SnAp-1."""
    G, S, q, W = gated_sizes(kind, n, m)
    return (S // n) * W if snap1 else 2 * S * W


def gated_scratch_size(int kind, int n, int m, int o):
    """Numbers of scratch memory one thread of the training kernels needs."""
    cdef int G = _n_gates(kind)
    cdef int S = _n_state(kind, n)
    return S * S + 2 * G * n + 6 * n + 2 * S + (m + n + 2) + n + 2 * o


cdef inline void _gates(
    int kind, const floating* x, int m, int n, int q, const floating* theta,
    floating* s, floating* ax, floating* ah, floating* coef, floating* v,
) noexcept nogil:
    """Advance the state ``s`` by one step, in place.

    Writes v = [x, h_{t-1}, 1, 1] and the coefficient vectors the influence
    update needs, each of n numbers in ``coef``: GRU r, z, cr, cz, cn; LSTM
    f, gi, gf, gg, do, k (see the module docstring). ``ax`` and ``ah``
    (G*n each) are workspace.
    """
    cdef:
        int G = _n_gates(kind)
        int GN = G * n
        int k
        double r, zg, u, e, hk, ig, fg, gg, og, c, cnew, tc, cn
        floating* h = s
    memcpy(v, x, m * sizeof(floating))
    memcpy(v + m, h, n * sizeof(floating))
    v[m + n] = 1
    v[m + n + 1] = 1
    if kind == KIND_GRU:
        # The n gate needs W_hn h + b_hn apart from the input part.
        for k in range(GN):
            ax[k] = theta[k * q + m + n]
            ah[k] = theta[k * q + m + n + 1]
        gemv_rm(GN, m, <floating> 1, theta, q, x, <floating> 1, ax)
        gemv_rm(GN, n, <floating> 1, theta + m, q, v + m, <floating> 1, ah)
        for k in range(n):
            r = _sigmoid(ax[k] + ah[k])
            zg = _sigmoid(ax[n + k] + ah[n + k])
            u = ah[2 * n + k]
            e = tanh(ax[2 * n + k] + r * u)
            hk = h[k]
            h[k] = <floating> ((1 - zg) * e + zg * hk)
            cn = (1 - zg) * (1 - e * e)
            coef[k] = <floating> r
            coef[n + k] = <floating> zg
            coef[2 * n + k] = <floating> (cn * u * r * (1 - r))
            coef[3 * n + k] = <floating> ((hk - e) * zg * (1 - zg))
            coef[4 * n + k] = <floating> cn
    else:
        for k in range(GN):
            ax[k] = theta[k * q + m + n] + theta[k * q + m + n + 1]
        gemv_rm(GN, m + n, <floating> 1, theta, q, v, <floating> 1, ax)
        for k in range(n):
            ig = _sigmoid(ax[k])
            fg = _sigmoid(ax[n + k])
            gg = tanh(ax[2 * n + k])
            og = _sigmoid(ax[3 * n + k])
            c = s[n + k]
            cnew = fg * c + ig * gg
            tc = tanh(cnew)
            s[n + k] = <floating> cnew
            h[k] = <floating> (og * tc)
            coef[k] = <floating> fg
            coef[n + k] = <floating> (gg * ig * (1 - ig))
            coef[2 * n + k] = <floating> (c * fg * (1 - fg))
            coef[3 * n + k] = <floating> (ig * (1 - gg * gg))
            coef[4 * n + k] = <floating> (tc * og * (1 - og))
            coef[5 * n + k] = <floating> (og * (1 - tc * tc))


# The influence GEMM runs in column blocks, as the Elman cell's
# (``_elman.pyx`` explains the sizes): up to SMALL_BLOCK_N hidden units,
# blocks of at most SMALL_BLOCK_MADDS multiply-adds, which OpenBLAS routes to
# its small-matrix kernels (operands read in place: no packing, no zeroing of
# the output, 1.23x faster per GRU step at n = 32). Each block gets its
# immediate term, and its share of the gradient P_t^T g, right after the
# GEMM wrote it, while it is in cache. Above SMALL_BLOCK_N, blocks hold at
# most BLOCK_BYTES of P_t at steps with a target, for that contraction; at
# steps without one, a single product over all columns was measured faster
# than blocks (GRU and LSTM, n = 64 and 128, one thread: 1.02 to 1.10x).
cdef enum:
    SMALL_BLOCK_N = 48
    SMALL_BLOCK_MADDS = 1000000
    BLOCK_BYTES = 2097152

# Override of the block width in columns (0: automatic), for benchmarks and
# tests; see ``_set_block_columns``.
cdef int _block_columns_override = 0


def _set_block_columns(int columns):
    """Force the column width of the influence GEMM blocks (0: automatic).

    For benchmarking the blocking; results do not depend on it beyond
    rounding.
    """
    global _block_columns_override
    if columns < 0:
        raise ValueError("columns must be >= 0")
    _block_columns_override = columns


cdef inline int _block_columns(int S, int n, int W, bint target) noexcept nogil:
    """Column width of the blocks of the (S x n) by (n x W) influence GEMM:
    balanced blocks no wider than the limits above, in multiples of 8
    columns, unless one block covers every column. ``target``: the step
    contracts P_t with a gradient."""
    cdef int width, n_blocks
    if _block_columns_override > 0:
        return min(_block_columns_override, W)
    if n <= SMALL_BLOCK_N:
        width = SMALL_BLOCK_MADDS // (S * n)
    elif not target:
        return W
    else:
        width = BLOCK_BYTES // (8 * S)
    width -= width % 8
    if width < 8:
        width = 8
    if width >= W:
        return W
    n_blocks = (W + width - 1) // width
    width = (W + n_blocks - 1) // n_blocks
    width += (8 - width % 8) % 8
    return width


cdef inline void _immediate(
    int kind, int m, int n, int q, int W, const floating* coef,
    const floating* v, floating* P_new, int c0, int c1,
) noexcept nogil:
    """Add the immediate term I_t to the columns c0 .. c1 of P_new.

    Column (g*n + k)*q + j belongs to theta's row g*n + k, whose immediate
    term lies in unit k's state rows only (see the module docstring).
    """
    cdef:
        int rho, gate, k, j, j0, j1
        floating a, b, kf
        floating* row
        floating* row2
        const floating* r = coef
        const floating* cr = coef + 2 * n
        const floating* cn = coef + 4 * n
        const floating* gam = coef + n
        const floating* do_ = coef + 4 * n
        const floating* kap = coef + 5 * n
    if c1 <= c0:
        return
    for rho in range(c0 // q, (c1 - 1) // q + 1):
        gate = rho // n
        k = rho - gate * n
        j0 = c0 - rho * q if c0 > rho * q else 0
        j1 = c1 - rho * q if c1 < rho * q + q else q
        row = P_new + k * W + rho * q
        if kind == KIND_GRU:
            if gate < 2:
                # cr (gate r) or cz (gate z): cr + n*gate.
                a = cr[gate * n + k]
                for j in range(j0, j1):
                    row[j] += a * v[j]
            else:
                # [x, r h, 1, r] times cn (b_in: cn, b_hn: cn r).
                a = cn[k]
                b = a * r[k]
                for j in range(j0, j1):
                    if j < m or j == m + n:
                        row[j] += a * v[j]
                    else:
                        row[j] += b * v[j]
        else:
            row2 = row + n * W
            if gate < 3:
                a = gam[gate * n + k]
                kf = kap[k] * a
                for j in range(j0, j1):
                    row[j] += kf * v[j]
                    row2[j] += a * v[j]
            else:
                a = do_[k]
                for j in range(j0, j1):
                    row[j] += a * v[j]


cdef inline void _influence(
    int kind, int m, int n, int q, const floating* theta,
    const floating* coef, const floating* v,
    const floating* P_old, floating* P_new, bint first, bint lstm_dense,
    floating* J, const floating* g, floating* grad,
) noexcept nogil:
    """P_new = J_t P_old + I_t (``first``: P_old = 0, no GEMM).

    When ``g`` is not NULL, also adds P_new[:n]^T g into ``grad`` (G*n*q),
    block by block on the blocked paths.
    """
    cdef:
        int G = _n_gates(kind)
        int S = _n_state(kind, n)
        int W = G * n * q
        int k, l, j, c0, c1, width
        floating a, b, c, jc, kf, fk, p
        floating* row
        floating* row2
        floating* Jh
        floating* Jc
        const floating* wr
        const floating* wz
        const floating* wn
        const floating* wo
        const floating* pc
        const floating* r = coef
        const floating* zg = coef + n
        const floating* cr = coef + 2 * n
        const floating* cz = coef + 3 * n
        const floating* cn = coef + 4 * n
        const floating* f = coef
        const floating* gam = coef + n    # gi, gf, gg: gam[gate * n + k]
        const floating* do_ = coef + 4 * n
        const floating* kap = coef + 5 * n
    if first or lstm_dense:
        if first:
            memset(P_new, 0, S * W * sizeof(floating))
        else:
            for k in range(n):
                Jh = J + k * S
                Jc = J + (n + k) * S
                wr = theta + k * q + m
                wz = theta + (n + k) * q + m
                wn = theta + (2 * n + k) * q + m
                wo = theta + (3 * n + k) * q + m
                a = gam[k]
                b = gam[n + k]
                c = gam[2 * n + k]
                for l in range(n):
                    jc = a * wr[l] + b * wz[l] + c * wn[l]
                    Jc[l] = jc
                    Jh[l] = kap[k] * jc + do_[k] * wo[l]
                memset(Jc + n, 0, n * sizeof(floating))
                memset(Jh + n, 0, n * sizeof(floating))
                Jc[n + k] = f[k]
                Jh[n + k] = kap[k] * f[k]
            gemm_rm(S, W, S, <floating> 1, J, S, P_old, W, <floating> 0,
                    P_new, W)
        _immediate(kind, m, n, q, W, coef, v, P_new, 0, W)
        if g != NULL:
            gemv_rm_t(n, W, <floating> 1, P_new, W, g, <floating> 1, grad)
        return
    if kind == KIND_GRU:
        for k in range(n):
            row = J + k * n
            wr = theta + k * q + m
            wz = theta + (n + k) * q + m
            wn = theta + (2 * n + k) * q + m
            a = cr[k]
            b = cz[k]
            c = cn[k] * r[k]
            for l in range(n):
                row[l] = a * wr[l] + b * wz[l] + c * wn[l]
            row[k] += zg[k]
    else:
        # Only J[:, :n] goes into the GEMM (over the h rows of P_old); the
        # diagonal right half (c -> c' and c -> h') is applied by writing
        # the block of P_new first from the c rows of P_old, then letting
        # the GEMM accumulate onto it (beta = 1, which also spares BLAS its
        # zeroing pass): no separate pass over P.
        for k in range(n):
            Jh = J + k * n
            Jc = J + (n + k) * n
            wr = theta + k * q + m
            wz = theta + (n + k) * q + m
            wn = theta + (2 * n + k) * q + m
            wo = theta + (3 * n + k) * q + m
            a = gam[k]
            b = gam[n + k]
            c = gam[2 * n + k]
            for l in range(n):
                jc = a * wr[l] + b * wz[l] + c * wn[l]
                Jc[l] = jc
                Jh[l] = kap[k] * jc + do_[k] * wo[l]
    width = _block_columns(S, n, W, g != NULL)
    c0 = 0
    while c0 < W:
        c1 = c0 + width
        if c1 > W:
            c1 = W
        if kind == KIND_GRU:
            gemm_rm(n, c1 - c0, n, <floating> 1, J, n, P_old + c0, W,
                    <floating> 0, P_new + c0, W)
        else:
            for k in range(n):
                pc = P_old + (n + k) * W + c0
                row = P_new + k * W + c0
                row2 = P_new + (n + k) * W + c0
                fk = f[k]
                kf = kap[k] * fk
                for j in range(c1 - c0):
                    p = pc[j]
                    row[j] = kf * p
                    row2[j] = fk * p
            gemm_rm(S, c1 - c0, n, <floating> 1, J, n, P_old + c0, W,
                    <floating> 1, P_new + c0, W)
        _immediate(kind, m, n, q, W, coef, v, P_new, c0, c1)
        if g != NULL:
            gemv_rm_t(n, c1 - c0, <floating> 1, P_new + c0, W, g,
                      <floating> 1, grad + c0)
        c0 = c1


cdef inline void _snap1_influence(
    int kind, int m, int n, int q, const floating* theta,
    const floating* coef, const floating* v, floating* P, bint first,
) noexcept nogil:
    """SnAp-1: each unit's block of P, in place (``first``: P_{t-1} = 0).

    ``P`` is [p^h | p^c] (LSTM) or p^h (GRU), each G*n x q in theta's row
    order; ``coef`` and ``v`` as ``_gates`` leaves them.
    """
    cdef:
        int G = _n_gates(kind)
        int W = G * n * q
        int k, j, gate
        floating d, a, b, jc, jhh, jhc, fk, ph, pc
        floating* row
        floating* rh
        floating* rc
        const floating* r = coef
        const floating* zg = coef + n
        const floating* cr = coef + 2 * n
        const floating* cz = coef + 3 * n
        const floating* cn = coef + 4 * n
        const floating* f = coef
        const floating* gam = coef + n
        const floating* do_ = coef + 4 * n
        const floating* kap = coef + 5 * n
    if first:
        # The buffer may hold anything (even NaN): it must not be read.
        memset(P, 0, (W if kind == KIND_GRU else 2 * W) * sizeof(floating))
    if kind == KIND_GRU:
        for k in range(n):
            # J[k, k]; theta[(g*n + k)*q + m + k] is W_h*[k, k] of gate g.
            d = (zg[k] + cr[k] * theta[k * q + m + k]
                 + cz[k] * theta[(n + k) * q + m + k]
                 + cn[k] * r[k] * theta[(2 * n + k) * q + m + k])
            row = P + k * q
            a = cr[k]
            for j in range(q):
                row[j] = d * row[j] + a * v[j]
            row = P + (n + k) * q
            a = cz[k]
            for j in range(q):
                row[j] = d * row[j] + a * v[j]
            row = P + (2 * n + k) * q
            a = cn[k]
            b = a * r[k]
            for j in range(m):
                row[j] = d * row[j] + a * v[j]
            for j in range(m, m + n):
                row[j] = d * row[j] + b * v[j]
            row[m + n] = d * row[m + n] + a
            row[m + n + 1] = d * row[m + n + 1] + b
    else:
        for k in range(n):
            jc = (gam[k] * theta[k * q + m + k]
                  + gam[n + k] * theta[(n + k) * q + m + k]
                  + gam[2 * n + k] * theta[(2 * n + k) * q + m + k])
            jhh = kap[k] * jc + do_[k] * theta[(3 * n + k) * q + m + k]
            fk = f[k]
            jhc = kap[k] * fk
            for gate in range(4):
                # Immediate terms of row gate*n + k: a into c_k, b into h_k.
                if gate < 3:
                    a = gam[gate * n + k]
                    b = kap[k] * a
                else:
                    a = 0
                    b = do_[k]
                rh = P + (gate * n + k) * q
                rc = rh + W
                for j in range(q):
                    ph = rh[j]
                    pc = rc[j]
                    rh[j] = jhh * ph + jhc * pc + b * v[j]
                    rc[j] = jc * ph + fk * pc + a * v[j]


cdef inline void _snap1_gradient(
    int n, int rows, int q, const floating* Ph, const floating* g,
    floating* grad,
) noexcept nogil:
    """grad[row] += g[unit of row] * Ph[row] for the rows = G*n rows."""
    cdef int row, j
    cdef floating gk
    cdef const floating* p
    cdef floating* out
    for row in range(rows):
        gk = g[row % n]
        p = Ph + row * q
        out = grad + row * q
        for j in range(q):
            out[j] += gk * p[j]


cdef double _train_sequence(
    int kind, const floating* X, int m, const floating* Y, int o,
    Py_ssize_t length, const floating* weights, double weight_scale,
    bint every_step, const floating* theta, int n, int q,
    const floating* W_out, const floating* b_out, int loss_kind,
    bint lstm_dense, bint snap1, floating* grad, floating* P_work,
    floating* scratch,
) noexcept nogil:
    """Run one sequence from the zero state; accumulate its gradient.

    ``grad`` is laid out [theta (G*n*q) | W_out (o*n) | b_out (o)];
    ``P_work`` holds two influence matrices (2 * S * G*n*q numbers), or the
    SnAp-1 blocks (``gated_influence_size``).
    """
    cdef:
        int G = _n_gates(kind)
        int S = _n_state(kind, n)
        int W = G * n * q
        Py_ssize_t t
        double loss = 0.0
        bint target
        floating* J = scratch
        floating* ax = J + S * S
        floating* ah = ax + G * n
        floating* coef = ah + G * n
        floating* s = coef + 6 * n
        floating* v = s + 2 * S
        floating* g = v + q
        floating* zout = g + n
        floating* dz = zout + o
        floating* P_new
    memset(s, 0, S * sizeof(floating))
    for t in range(length):
        P_new = P_work + (t & 1) * S * W
        _gates(kind, X + t * m, m, n, q, theta, s, ax, ah, coef, v)
        # The readout needs only the new state: its g = dL/dh_t is ready
        # before the influence update, which contracts P_t with it block by
        # block.
        target = every_step or t == length - 1
        if target:
            loss += readout_gradient(
                Y + (t * o if every_step else 0), o, n,
                weight_scale * weights[t if every_step else 0], loss_kind,
                W_out, b_out, s, grad + W, g, zout, dz)
        if snap1:
            _snap1_influence(kind, m, n, q, theta, coef, v, P_work, t == 0)
            if target:
                _snap1_gradient(n, G * n, q, P_work, g, grad)
        else:
            _influence(kind, m, n, q, theta, coef, v,
                       P_work + (1 - (t & 1)) * S * W, P_new, t == 0,
                       lstm_dense, J, g if target else NULL, grad)
    return loss


def gated_rtrl_minibatch(
    int kind,
    const floating[:, ::1] X,
    const floating[:, ::1] Y,
    const Py_ssize_t[::1] x_start,
    const Py_ssize_t[::1] y_start,
    const Py_ssize_t[::1] lengths,
    const floating[::1] target_weight,
    double weight_scale,
    bint every_step,
    const floating[:, ::1] theta,
    const floating[:, ::1] W_out,
    const floating[::1] b_out,
    int loss_kind,
    floating[:, ::1] grad_rows,
    floating[:, ::1] influence,
    floating[:, ::1] scratch,
    double[::1] loss_rows,
    bint lstm_dense=False,
    bint snap1=False,
):
    """Run a minibatch forward with exact RTRL; gradients per sequence.

    As ``skrtrl._kernels._elman.elman_rtrl_minibatch`` (threads over the
    sequences, dynamic schedule, one gradient row per sequence), for the
    cell ``kind`` (0 GRU, 1 LSTM). ``theta`` is (G*n, m + n + 2);
    ``grad_rows`` (>= B, G*n*q + o*n + o); ``influence`` (n_threads,
    >= 2 * S * G*n*q); ``scratch`` (n_threads, >= gated_scratch_size).
    ``lstm_dense`` uses the dense (2n x 2n) state Jacobian of the LSTM in
    the GEMM instead of splitting off its diagonal half (for tests and
    benchmarks). ``snap1`` computes the SnAp-1 approximation instead;
    ``influence`` then needs ``gated_influence_size(kind, n, m, True)``
    numbers per thread.
    """
    cdef:
        Py_ssize_t B = lengths.shape[0]
        int m = X.shape[1]
        int o = W_out.shape[0]
        int n = W_out.shape[1]
        int q = theta.shape[1]
        int G, S, W
        int n_threads = min(influence.shape[0], scratch.shape[0])
        int size
        Py_ssize_t b
        int tid
    G, S, q_expected, W = gated_sizes(kind, n, m)
    size = W + o * n + o
    if theta.shape[0] != G * n or q != q_expected:
        raise ValueError("theta must have shape (G*n, m + n + 2)")
    if grad_rows.shape[0] < B or grad_rows.shape[1] != size:
        raise ValueError("grad_rows has the wrong size")
    if influence.shape[1] < gated_influence_size(kind, n, m, snap1):
        raise ValueError("influence workspace too small")
    if scratch.shape[1] < gated_scratch_size(kind, n, m, o):
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
                    kind, &X[x_start[b], 0], m, &Y[y_start[b], 0], o,
                    lengths[b], &target_weight[y_start[b]], weight_scale,
                    every_step, &theta[0, 0], n, q, &W_out[0, 0], &b_out[0],
                    loss_kind, lstm_dense, snap1, &grad_rows[b, 0],
                    &influence[0, 0], &scratch[0, 0])
        return
    for b in prange(B, nogil=True, schedule="dynamic", num_threads=n_threads):
        tid = threadid()
        memset(&grad_rows[b, 0], 0, size * sizeof(floating))
        loss_rows[b] = _train_sequence(
            kind, &X[x_start[b], 0], m, &Y[y_start[b], 0], o,
            lengths[b], &target_weight[y_start[b]], weight_scale,
            every_step, &theta[0, 0], n, q, &W_out[0, 0], &b_out[0],
            loss_kind, lstm_dense, snap1, &grad_rows[b, 0],
            &influence[tid, 0], &scratch[tid, 0])


def gated_rtrl_online(
    int kind,
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
    floating[::1] state,
    floating[:, ::1] influence,
    int parity,
    floating[::1] grad,
    floating[::1] scratch,
    double[::1] loss_rows,
    bint snap1=False,
):
    """Real-time RTRL: update the parameters after every step with a target.

    As ``skrtrl._kernels._elman.elman_rtrl_online``, for the cell ``kind``
    (0 GRU, 1 LSTM). ``params`` (and ``grad``, ``penalty``, the optimizer
    state) are laid out [theta (G*n*q) | W_out | b_out]; ``state`` is the
    cell state, S = n (h) for the GRU and 2n ([h, c]) for the LSTM, in and
    out; ``influence`` (2, S * G*n*q) with ``influence[parity]`` current.
    With ``snap1`` (SnAp-1), ``influence`` is (1, ``gated_influence_size(
    kind, n, m, True)``), updated in place, and ``parity`` is returned as
    given.

    Returns
    -------
    (t_update, parity) after the call.
    """
    cdef:
        Py_ssize_t B = lengths.shape[0]
        int G, S, q, W
        Py_ssize_t size = params.shape[0]
        Py_ssize_t b, t, i
        double weight, loss
        floating* theta = &params[0]
        floating* W_out
        floating* b_out
        floating* J
        floating* ax
        floating* ah
        floating* coef
        floating* v
        floating* g
        floating* zout
        floating* dz
        floating* P_new
        floating* P_old
        floating* s = &state[0]
        bint first, target
    G, S, q, W = gated_sizes(kind, n, m)
    W_out = theta + W
    b_out = W_out + o * n
    if size != W + o * n + o or grad.shape[0] != size:
        raise ValueError("params and grad must have G*n*q + o*n + o entries")
    if penalty.shape[0] != size or state_a.shape[0] != size:
        raise ValueError("penalty and optimizer state must match params")
    if solver == SOLVER_ADAM and state_b.shape[0] != size:
        raise ValueError("Adam needs a second moment of the size of params")
    if snap1:
        if influence.shape[0] != 1 or influence.shape[1] != (S // n) * W:
            raise ValueError("SnAp-1 influence must have shape (1, S/n * G*n*q)")
    elif influence.shape[0] != 2 or influence.shape[1] != S * W:
        raise ValueError("influence must have shape (2, S * G*n*q)")
    if state.shape[0] != S:
        raise ValueError("state must have n (GRU) or 2n (LSTM) entries")
    if scratch.shape[0] < gated_scratch_size(kind, n, m, o):
        raise ValueError("scratch too small")
    if loss_rows.shape[0] < B:
        raise ValueError("loss_rows too small")
    if target_weight.shape[0] != Y.shape[0]:
        raise ValueError("target_weight needs one weight per row of Y")
    J = &scratch[0]
    ax = J + S * S
    ah = ax + G * n
    coef = ah + G * n
    v = coef + 6 * n + 2 * S
    g = v + q
    zout = g + n
    dz = zout + o
    with nogil:
        for b in range(B):
            loss = 0.0
            if reset_state:
                memset(s, 0, S * sizeof(floating))
            for t in range(lengths[b]):
                first = reset_state and t == 0
                _gates(kind, &X[x_start[b] + t, 0], m, n, q, theta, s, ax, ah,
                       coef, v)
                target = every_step or t == lengths[b] - 1
                if target:
                    # The readout needs only the new state (see
                    # _train_sequence).
                    i = y_start[b] + (t if every_step else 0)
                    weight = target_weight[i]
                    memset(&grad[0], 0, size * sizeof(floating))
                    loss += readout_gradient(
                        &Y[i, 0], o, n, weight, loss_kind, W_out, b_out, s,
                        &grad[W], g, zout, dz)
                if snap1:
                    P_new = &influence[0, 0]
                    _snap1_influence(kind, m, n, q, theta, coef, v, P_new,
                                     first)
                    if target:
                        _snap1_gradient(n, G * n, q, P_new, g, &grad[0])
                else:
                    P_old = &influence[parity, 0]
                    P_new = &influence[1 - parity, 0]
                    parity = 1 - parity
                    _influence(kind, m, n, q, theta, coef, v, P_old, P_new,
                               first, False, J, g if target else NULL,
                               &grad[0])
                if not target:
                    continue
                t_update = online_update(
                    theta, &grad[0], size, &penalty[0], weight, clip_norm,
                    solver, learning_rate, beta_1, beta_2, epsilon, momentum,
                    nesterov, &state_a[0], &state_b[0], t_update)
            loss_rows[b] = loss
    return t_update, parity


def gated_forward(
    int kind,
    const floating[:, ::1] X,
    const Py_ssize_t[::1] x_start,
    const Py_ssize_t[::1] lengths,
    const floating[:, ::1] theta,
    bint every_step,
    floating[:, ::1] H,
    floating[::1] scratch,
    const floating[::1] s0,
):
    """Hidden states h of a gated cell, each sequence starting from ``s0``.

    ``s0`` is the full initial state (GRU: h, n numbers; LSTM: [h, c], 2n).
    ``H`` (n columns) receives h after every step (rows laid out like
    ``X``) when ``every_step``, otherwise the final h of sequence s in row
    s. ``scratch`` needs at least ``gated_scratch_size(kind, n, m, 0)``.
    """
    cdef:
        Py_ssize_t N = lengths.shape[0]
        int m = X.shape[1]
        int n = H.shape[1]
        int G, S, q, W
        Py_ssize_t i, t
        floating* ax
        floating* ah
        floating* coef
        floating* s
        floating* v
    G, S, q, W = gated_sizes(kind, n, m)
    if theta.shape[0] != G * n or theta.shape[1] != q:
        raise ValueError("theta must have shape (G*n, m + n + 2)")
    if s0.shape[0] != S or scratch.shape[0] < gated_scratch_size(kind, n, m, 0):
        raise ValueError("s0 of the wrong size or scratch too small")
    ax = &scratch[0] + S * S
    ah = ax + G * n
    coef = ah + G * n
    s = coef + 6 * n
    v = s + 2 * S
    with nogil:
        for i in range(N):
            memcpy(s, &s0[0], S * sizeof(floating))
            for t in range(lengths[i]):
                _gates(kind, &X[x_start[i] + t, 0], m, n, q, &theta[0, 0], s,
                       ax, ah, coef, v)
                if every_step:
                    memcpy(&H[x_start[i] + t, 0], s, n * sizeof(floating))
            if not every_step:
                memcpy(&H[i, 0], s, n * sizeof(floating))
