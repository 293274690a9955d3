# Every cell of skrtrl, defined once: sizes, forward step, linearisations.
#
# Every driver (exact RTRL, SnAp-1, BPTT, UORO, output feedback, the forward
# pass) reaches a cell only through the functions of this file, by the cell's
# code ``kind`` (the one numbering of cells: ELMAN, DIAGONAL, GRU, LSTM,
# EGRU, ELSTM, LRU, GLRU).
#
# Notation: n hidden units, m inputs (for output feedback, m counts the fed
# back outputs too), o outputs. The recurrent parameters of a cell are one
# row-major matrix theta (R x q): each row belongs to one unit i and one
# "gate" g (row rho = g*n + i, G rows per unit), and the pre-activation of
# row rho is theta[rho] . v_rho, v_rho the row's inputs. The state s_t has
# S = ns * n numbers (ns per unit: h, or [h, c] for the LSTM). The
# influence P_t = d s_t / d theta (S x R*q, column rho*q + j for theta[rho,
# j]) obeys the RTRL recursion
#
#     P_t = J_t P_{t-1} + I_t,   J_t = d s_t / d s_{t-1},
#
# I_t = d s_t / d theta at fixed s_{t-1} (the immediate term). Each row's
# pre-activation depends on theta through that row only, so I_t has entries
# only in the state rows of unit i, at the columns of unit i's rows:
#
#     I_t[(sigma, i), rho] = a_{sigma, rho} v_rho        (rho = g*n + i),
#
# a_{sigma, rho} = d s_t[sigma, i] / d(pre-activation of rho) (``row_coef``).
# The inputs of a row are v_rho = [x, lam_rho h_{t-1}, 1, lam_rho]: the
# input side [x, 1] (W_ih, b_ih) and the hidden side [h, 1] (W_hh, b_hh,
# when the cell keeps b_hh in theta), the latter scaled by lam_rho
# (``row_scale``: the GRU's reset gate on its candidate row, 1 elsewhere;
# the element-wise cell's hidden side is h_i alone). The state Jacobian is
#
#     J_t[(sigma, i), (0, l)] = sum_g a_{sigma, g*n+i} lam W_hh[g*n+i, l]
#                               + D_t[(sigma, i), (0, l)],
#     J_t[(sigma, i), (s, l)] = D_t[(sigma, i), (s, l)]   for s >= 1,
#
# D_t the direct part (``direct``, diagonal in the units: s_t[., i]
# depending on s_{t-1}[., i] other than through a pre-activation). A cell is
# therefore given by its sizes, its forward step (which keeps, per unit, the
# coefficients the a, lam and D are made of) and the three small functions
# ``row_coef``, ``row_scale`` and ``direct``; the immediate term, the
# Jacobian in every form (dense, its h columns, the per-unit diagonal block,
# J v, v^T J) and the vector-Jacobian product of I_t all follow from those.
#
# The cells (flat layouts of skrtrl._cells; K coefficient vectors of n
# numbers per step):
#
#   ELMAN     a = theta [x, h, 1] + bias_hh, h' = phi(a); R = n,
#             q = m + n + 1, S = n, K = 1: phi'(a).
#             a_{0, i} = phi'(a_i); no direct part. bias_hh is kept apart
#             from theta so that both torch biases stay parameters; its
#             gradient is b_ih's (``copy_bias_gradient``).
#   DIAGONAL  a_i = W_ih[i] x + w_i h_i + b_ih_i + bias_hh_i, h' = phi(a);
#             R = n, q = m + 2, S = n, K = 1. Row i's hidden side is h_i:
#             J_t is diagonal, and exact RTRL keeps one block per unit.
#   GRU       torch's GRU (sigma the logistic function; element-wise)
#                 r = sigma(a_r),  a_r = W_ir x + b_ir + W_hr h + b_hr
#                 z = sigma(a_z),  a_z = W_iz x + b_iz + W_hz h + b_hz
#                 u = W_hn h + b_hn
#                 e = tanh(a_n),   a_n = W_in x + b_in + r u
#                 h' = (1 - z) e + z h
#             R = 3n (gates r, z, n), q = m + n + 2, S = n, K = 5:
#                 cn = d h'/d a_n = (1 - z)(1 - e^2),
#                 cz = d h'/d a_z = (h - e) z (1 - z),
#                 cr = d h'/d a_r = cn u r (1 - r),
#             kept as r, z, cr, cz, cn. a_{0, (r, z, n)} = (cr, cz, cn),
#             lam = r on the n row (u enters a_n as r u), direct part z:
#                 J = diag(z) + diag(cr) W_hr + diag(cz) W_hz
#                     + diag(cn r) W_hn,
#                 I[i, n_i] = cn_i [x, r_i h, 1, r_i].
#   LSTM      torch's LSTM (c' first, then h')
#                 i, f, o = sigma(a_i), sigma(a_f), sigma(a_o),  g = tanh(a_g)
#                 c' = f c + i g,   h' = o tanh(c')
#             R = 4n (gates i, f, g, o), q = m + n + 2, S = 2n ([h, c]),
#             K = 6: f, gi = g i (1 - i), gf = c f (1 - f),
#             gg = i (1 - g^2) (d c'/d a_{i,f,g}), do = tanh(c') o (1 - o)
#             (d h'/d a_o) and k = o (1 - tanh(c')^2) (d h'/d c').
#             a_{c, (i, f, g, o)} = (gi, gf, gg, 0), a_{h, .} = k a_{c, .}
#             + (0, 0, 0, do); direct part c -> c' f and c -> h' k f:
#                 Jc = diag(gi) W_hi + diag(gf) W_hf + diag(gg) W_hg
#                 J  = [[diag(k) Jc + diag(do) W_ho,  diag(k f)],   rows h'
#                       [Jc,                          diag(f)  ]]   rows c'
#   EGRU      the element-wise GRU: torch's GRU with each recurrent matrix
#             W_h* replaced by a vector u_* (3n numbers): unit i's gates
#             see h_i only, a_r = W_ir x + b_ir + u_r h_i + b_hr, and so on,
#             u = u_n h_i + b_hn. R = 3n, q = m + 3 ([W_ih row | u | b_ih
#             | b_hh]), S = n, K = 5 as for the GRU; J_t is diagonal,
#                 J_i = z + cr u_r + cz u_z + cn r u_n,
#             and exact RTRL keeps one block per unit: O(number of
#             parameters) per step, the cost of the forward pass.
#   ELSTM     the element-wise LSTM: torch's LSTM with W_h* replaced by
#             vectors u_* (4n numbers), state [h, c] per unit (ns = 2):
#             R = 4n, q = m + 3, S = 2n, K = 6 as for the LSTM; J_t is made
#             of 2 x 2 blocks, one per unit,
#                 jc = gi u_i + gf u_f + gg u_g,
#                 J_i = [[k jc + do u_o, k f], [jc, f]],
#             and exact RTRL keeps one block per unit (Irie et al., 2023,
#             route the recurrence through c instead; this is torch's
#             LSTM with diagonal recurrent matrices).
#   LRU       the linear recurrent unit (Orvieto et al., 2023): per unit a
#             complex h_i, state [Re h, Im h] (ns = 2),
#                 h' = lam h + gamma (B x),   B = B_re + i B_im,
#                 lam = exp(-exp(nu) + i exp(th)),   gamma = exp(lg),
#             and a nonlinear output map that mixes the units,
#                 y = f(C_re Re h' - C_im Im h' + D x + b_y),
#             f the estimator's activation. R = n, one row per unit:
#             [B_re[i] | B_im[i] | nu_i | th_i | lg_i | C_re[i] | C_im[i] |
#             D[i] | b_y[i]], q = 3m + 2n + 4. The state depends on the
#             first 2m + 3 columns only (``cell_influence_columns``); the
#             others are the output map's, whose gradient is direct
#             (``cell_output_vjp``). J_t is made of the 2 x 2 blocks
#             J_i = [[a, -b], [b, a]] (lam = a + i b), and the immediate
#             term of unit i is gamma x on Re h (B_re) and Im h (B_im),
#             -exp(nu) lam h (nu), i exp(th) lam h (th) and gamma (B x)
#             (lg), complex numbers as (Re, Im) pairs; nu, th and lg are
#             read clipped to [-20, 20] (``LRU_LOG_BOUND``). The LRU does
#             not follow the row form above: every function below has its
#             own LRU branch, and its record is [x | h_{t-1} (2n) | 1 |
#             K = 17 coefficient vectors (``LRU_*``) | spare n].
#   GLRU      the gated LRU: the LRU with an input gate on what it stores,
#                 h' = lam h + gamma i (B x),   i = sigma(W_g x + b_g),
#             one real gate per unit that depends on the input only, so
#             that J_t stays the LRU's (the recurrence is linear in h) while
#             the cell can store B x when the input says so and nothing
#             otherwise (a product of inputs, which no linear recurrence
#             forms). Its rows are the LRU's with [W_g[i] | b_g[i]] after
#             gamma_log: q = 4m + 2n + 5, influence on the first 3m + 4
#             columns. With U = i (B x), the immediate term is gamma i x on
#             B, -exp(nu) lam h (nu), i exp(th) lam h (th), gamma U (lg) and
#             d h'/d a_g = gamma (1 - i) U times [x, 1] (W_g, b_g); the
#             record keeps gamma i, U and the LRU's other vectors, then i
#             and gamma (1 - i) U: K = 20 (the LRU's, with i = 1, are the
#             same numbers).
#
# The record of a step (``cell_forward``) holds [x (m) | h_{t-1} (n) | ones
# (1 or 2) | coefficients (K n) | spare (n)]: its first q numbers (the
# element-wise cell: m + n + 1) are the inputs [x, h, 1(, 1)] that every
# row's v_rho is read from, and the spare n numbers hold dL/dh_t for full
# BPTT. A record and theta are all the linearisations of a step need.
#
# Every derivative here is checked against central finite differences and
# an independent BPTT (tests/test_gradients.py, test_gated.py,
# test_methods.py) and the numpy steps of skrtrl/inspection/_cell_steps.py.

from cython cimport floating
from libc.math cimport cos, exp, sin, tanh
from libc.string cimport memset, memcpy

from ._blas cimport gemm_rm, gemv_rm, gemv_rm_t
from ._common cimport activate, penalty_term, readout_gradient, sigmoid, tanh_of

# The one numbering of the cells (skrtrl._cells mirrors it).
cdef enum:
    ELMAN = 0
    DIAGONAL = 1
    GRU = 2
    LSTM = 3
    EGRU = 4
    ELSTM = 5
    LRU = 6
    GLRU = 7
    N_CELLS = 8


# The cells as types, for a kernel that must be compiled once per cell
# whatever the compiler makes of its callers (``unit_influence_step`` of
# ``_rtrl.pxd``): a function of a ``const CellType*`` (passed NULL, cast to
# the cell's type) is a copy per cell, in which ``cell_code`` is a constant
# that resolves every branch on the cell. Cells passed as codes instead
# rely on the compiler to copy the function for a constant code, which GCC
# 12 does only where the call looks frequent to it (not in the cases of a
# dispatcher).
cdef struct _Elman:
    char unused
cdef struct _Diagonal:
    char unused
cdef struct _Gru:
    char unused
cdef struct _Lstm:
    char unused
cdef struct _Egru:
    char unused
cdef struct _Elstm:
    char unused
cdef struct _Lru:
    char unused
cdef struct _Glru:
    char unused

ctypedef fused CellType:
    _Elman
    _Diagonal
    _Gru
    _Lstm
    _Egru
    _Elstm
    _Lru
    _Glru


cdef inline int cell_code(const CellType* cell) noexcept nogil:
    """The code of the cell type ``CellType`` (``cell`` is not read)."""
    if CellType is _Elman:
        return ELMAN
    elif CellType is _Diagonal:
        return DIAGONAL
    elif CellType is _Gru:
        return GRU
    elif CellType is _Lstm:
        return LSTM
    elif CellType is _Egru:
        return EGRU
    elif CellType is _Elstm:
        return ELSTM
    elif CellType is _Lru:
        return LRU
    else:
        return GLRU


cdef inline bint _gru_gates(int kind) noexcept nogil:
    """The GRU's gates (r, z, n), fully connected or element-wise."""
    return kind == GRU or kind == EGRU


cdef inline bint _lstm_gates(int kind) noexcept nogil:
    """The LSTM's gates (i, f, g, o) and state [h, c]."""
    return kind == LSTM or kind == ELSTM


cdef inline bint cell_diagonal(int kind) noexcept nogil:
    """Whether J_t is diagonal in the units (each unit feeds only itself):
    the hidden side of a row is its own unit's state, one number."""
    return kind == DIAGONAL or kind == EGRU or kind == ELSTM


cdef inline bint lru_cell(int kind) noexcept nogil:
    """The LRU and the gated LRU (a complex state and an output map)."""
    return kind == LRU or kind == GLRU


# -- sizes -------------------------------------------------------------------

cdef inline int _lru_gate(int m) noexcept nogil:
    """Column of the gated LRU's W_g[i, 0] in its row; b_g[i] follows W_g."""
    return 2 * m + 3


cdef inline int _lru_recurrent(int kind, int m) noexcept nogil:
    """Columns of an LRU row that carry influence: [B_re | B_im | nu_log |
    theta_log | gamma_log], and the gated LRU's [W_g | b_g]."""
    return _lru_gate(m) + m + 1 if kind == GLRU else _lru_gate(m)


cdef inline int cell_gates(int kind) noexcept nogil:
    """G: rows of theta per unit."""
    if _gru_gates(kind):
        return 3
    if _lstm_gates(kind):
        return 4
    return 1


cdef inline int cell_rows(int kind, int n) noexcept nogil:
    """R: rows of theta."""
    return cell_gates(kind) * n


cdef inline int cell_ones(int kind) noexcept nogil:
    """Bias columns of theta: b_ih, and b_hh for the gated cells."""
    return 2 if _gru_gates(kind) or _lstm_gates(kind) else 1


cdef inline int cell_columns(int kind, int n, int m) noexcept nogil:
    """q: columns of theta (the hidden side of an element-wise cell's rows
    is one number; the LRU's rows hold its output map too)."""
    if lru_cell(kind):
        return _lru_recurrent(kind, m) + 2 * n + m + 1
    if cell_diagonal(kind):
        return m + 1 + cell_ones(kind)
    return m + n + cell_ones(kind)


cdef inline int cell_per_unit(int kind) noexcept nogil:
    """ns: numbers of state per unit."""
    return 2 if _lstm_gates(kind) or lru_cell(kind) else 1


cdef inline int cell_state(int kind, int n) noexcept nogil:
    """S: size of the state (h, or [h, c] for the LSTM)."""
    return cell_per_unit(kind) * n


cdef inline int cell_coefficients(int kind) noexcept nogil:
    """K: coefficient vectors of n numbers kept per step."""
    if _gru_gates(kind):
        return 5
    if _lstm_gates(kind):
        return 6
    if kind == LRU:
        return 17
    if kind == GLRU:
        return 20
    return 1


cdef inline int cell_influence_columns(int kind, int n, int m) noexcept nogil:
    """Columns of each theta row that the state depends on (the LRU's
    output map, C, D and its bias, has none: its gradient is direct)."""
    if lru_cell(kind):
        return _lru_recurrent(kind, m)
    return cell_columns(kind, n, m)


cdef inline int cell_output_blocks(int kind) noexcept nogil:
    """Blocks of n state numbers the output map reads (h; the LRU's Re h
    and Im h)."""
    return 2 if lru_cell(kind) else 1


cdef inline bint cell_separate_bias(int kind) noexcept nogil:
    """Whether bias_hh is a block of its own after theta (its gradient is
    b_ih's) rather than a column of theta."""
    return kind == ELMAN or kind == DIAGONAL


cdef inline Py_ssize_t flat_size(int kind, int n, int m, int o,
                                 int width) noexcept nogil:
    """Numbers in the flat parameter vector of the kernels' entry points,
    [theta (R*q) | bias_hh (n, if kept apart) | W_out (o*width) | b_out
    (o)]; the readout reads ``width`` numbers (n, or ``pooled_width``)."""
    return (<Py_ssize_t> cell_rows(kind, n) * cell_columns(kind, n, m)
            + (n if cell_separate_bias(kind) else 0) + o * width + o)


cdef inline bint cell_has_direct(int kind) noexcept nogil:
    """Whether J_t has a part not through the rows (``direct``)."""
    return _gru_gates(kind) or _lstm_gates(kind)


cdef inline bint cell_whole_product_without_target(int kind) noexcept nogil:
    """Whether the influence GEMM of a step without a target runs as one
    product above the small-matrix range (``_blocks.pyx``): measured faster
    for the gated cells, not measured otherwise."""
    return kind == GRU or kind == LSTM


cdef inline int record_inputs(int kind, int n, int m) noexcept nogil:
    """Numbers of [x, h, ones] at the start of a record (the LRU: [x, Re
    h, Im h, 1])."""
    if lru_cell(kind):
        return m + 2 * n + 1
    return m + n + cell_ones(kind)


cdef inline int record_size(int kind, int n, int m) noexcept nogil:
    """Numbers in the record of one step (see the header)."""
    return record_inputs(kind, n, m) + (cell_coefficients(kind) + 1) * n


cdef inline int step_work_size(int kind, int n) noexcept nogil:
    """Scratch numbers the step functions need (2 R)."""
    return 2 * cell_rows(kind, n)


# -- the forward step --------------------------------------------------------

# The LRU's coefficient vectors in its record (n numbers each).
cdef enum:
    LRU_A = 0        # Re lambda
    LRU_B = 1        # Im lambda
    LRU_GAMMA = 2    # gamma
    LRU_U = 3        # B x, Re then Im (gamma B x: d h_t / d log gamma)
    LRU_NU = 5       # d h_t / d nu_log at fixed h_{t-1}, Re then Im
    LRU_TH = 7       # d h_t / d theta_log at fixed h_{t-1}, Re then Im
    LRU_DF = 9       # f'(pre-activation of y)
    LRU_Y = 10       # y_t
    LRU_H = 11       # h_t, Re then Im
    LRU_DG = 13      # d gamma / d gamma_log (gamma; 0 where it is clipped)
    # Of theta alone, for the next step under the same theta (``reuse``):
    LRU_DNU = 14     # d exp(nu_log) / d nu_log (0 where it is clipped)
    LRU_DTH = 15     # d exp(theta_log) / d theta_log (0 where it is clipped)
    LRU_GAM = 16     # gamma
    # The gated LRU's (``LRU_GAMMA`` then holds gamma i, ``LRU_U`` i B x):
    LRU_GATE = 17    # i, its input gate
    LRU_GW = 18      # d h_t / d (pre-activation of i) = gamma (1 - i) U, Re then Im
    # nu_log, theta_log and gamma_log are read clipped to [-LRU_LOG_BOUND,
    # LRU_LOG_BOUND] (derivative 0 beyond): exp would overflow there, into
    # NaN through cos(inf) and inf * 0, long after |lambda|, the phase and
    # gamma stopped meaning anything.
    LRU_LOG_BOUND = 20


cdef inline double _lru_exp(double v, double* slope) noexcept nogil:
    """exp of v clipped to the bound; ``slope``: its derivative in v."""
    cdef double e
    if v > LRU_LOG_BOUND:
        slope[0] = 0
        return exp(<double> LRU_LOG_BOUND)
    if v < -LRU_LOG_BOUND:
        slope[0] = 0
        return exp(-<double> LRU_LOG_BOUND)
    e = exp(v)
    slope[0] = e
    return e


cdef inline void _lru_forward(
    int kind, int activation, int n, int m, int q, const floating* theta,
    const floating* x, floating* s, floating* rec, bint reuse,
) noexcept nogil:
    """The (gated) LRU's step (see the header): s = [Re h, Im h] <- h_t,
    and the output map's y_t, into the record.

    lambda, gamma and their slopes depend on theta alone, and cost four
    exponentials, a sine and a cosine per unit: with ``reuse`` (the record
    holds the step before's, under the same theta) they are read from it.
    In float64 only, where the record keeps them exactly; a float32 record
    would round them, so float32 computes them at every step."""
    cdef:
        int r = _lru_recurrent(kind, m)
        int i, j
        double mod, ang, enu, eth, a, b, gam, ur, ui, hr, hi, lr, li
        double dnu, dth, dgam, ag, ig
        floating* hprev = rec + m
        floating* coef = rec + record_inputs(kind, n, m)
        floating* y = coef + LRU_Y * n
        const floating* th
    if x != rec:
        memcpy(rec, x, m * sizeof(floating))
    memcpy(hprev, s, 2 * n * sizeof(floating))
    rec[m + 2 * n] = 1
    for i in range(n):
        th = theta + i * q
        if floating is double and reuse:
            a = coef[LRU_A * n + i]
            b = coef[LRU_B * n + i]
            dnu = coef[LRU_DNU * n + i]
            dth = coef[LRU_DTH * n + i]
            gam = coef[LRU_GAM * n + i]
            dgam = coef[LRU_DG * n + i]
        else:
            enu = _lru_exp(th[2 * m], &dnu)
            eth = _lru_exp(th[2 * m + 1], &dth)
            mod = exp(-enu)
            ang = eth
            a = mod * cos(ang)
            b = mod * sin(ang)
            gam = _lru_exp(th[2 * m + 2], &dgam)
            if floating is double:
                coef[LRU_DNU * n + i] = dnu
                coef[LRU_DTH * n + i] = dth
                coef[LRU_GAM * n + i] = gam
        ur = 0.0
        ui = 0.0
        for j in range(m):
            ur += th[j] * rec[j]
            ui += th[m + j] * rec[j]
        if kind == GLRU:
            ag = th[_lru_gate(m) + m]
            for j in range(m):
                ag += th[_lru_gate(m) + j] * rec[j]
            ig = sigmoid(ag)
            ur = ig * ur
            ui = ig * ui
            coef[LRU_GATE * n + i] = <floating> ig
            coef[LRU_GW * n + i] = <floating> (gam * (1.0 - ig) * ur)
            coef[(LRU_GW + 1) * n + i] = <floating> (gam * (1.0 - ig) * ui)
            coef[LRU_GAMMA * n + i] = <floating> (gam * ig)
        else:
            coef[LRU_GAMMA * n + i] = <floating> gam
        hr = hprev[i]
        hi = hprev[n + i]
        # lambda h_{t-1}, which d lambda / d nu = -e^nu lambda and
        # d lambda / d theta = i e^theta lambda scale.
        lr = a * hr - b * hi
        li = b * hr + a * hi
        s[i] = <floating> (lr + gam * ur)
        s[n + i] = <floating> (li + gam * ui)
        coef[LRU_A * n + i] = <floating> a
        coef[LRU_B * n + i] = <floating> b
        coef[LRU_U * n + i] = <floating> ur
        coef[(LRU_U + 1) * n + i] = <floating> ui
        coef[LRU_NU * n + i] = <floating> (-dnu * lr)
        coef[(LRU_NU + 1) * n + i] = <floating> (-dnu * li)
        coef[LRU_TH * n + i] = <floating> (-dth * li)
        coef[(LRU_TH + 1) * n + i] = <floating> (dth * lr)
        coef[LRU_DG * n + i] = <floating> dgam
        # y's pre-activation: bias + D x.
        y[i] = th[q - 1]
        for j in range(m):
            y[i] += th[r + 2 * n + j] * rec[j]
    memcpy(coef + LRU_H * n, s, 2 * n * sizeof(floating))
    # + Re(C h) = C_re Re h - C_im Im h.
    gemv_rm(n, n, <floating> 1, theta + r, q, s, <floating> 1, y)
    gemv_rm(n, n, <floating> -1, theta + r + n, q, s + n, <floating> 1, y)
    activate(activation, n, y, coef + LRU_DF * n)


cdef inline void _add_own_hidden(
    int R, int n, int m, int q, const floating* theta, const floating* h,
    floating* a,
) noexcept nogil:
    """a[rho] += w_rho h[rho mod n] for the R rows of an element-wise cell,
    gate by gate (an integer division per row cost a fifth of the EGRU's
    forward step)."""
    cdef int rho = 0, gate, k
    for gate in range(R // n):
        for k in range(n):
            a[rho] += theta[rho * q + m] * h[k]
            rho += 1


cdef inline void _own_hidden_rows(
    int R, int n, int m, int q, const floating* theta, const floating* h,
    floating* ax, floating* ah,
) noexcept nogil:
    """The biases of an element-wise cell's gated rows, and the own h's
    part beside them, from theta's row rho = [w_x (m), w_h, b, b'] read
    once: ax[rho] = b and ah[rho] = b' + w_h h[rho mod n] (the sum of
    ``_add_own_hidden`` from b'). In two passes, the rows read twice, they
    were a quarter of the EGRU's forward step on one input (``perf``, 1,024
    units, float32); in one, a sixth. (The input's part stays with
    ``gemv_rm``: on one input, BLAS forms b + w_x x in its own way, fused
    or not, and a loop here changed the results.)"""
    cdef int rho = 0, gate, k
    cdef const floating* th
    for gate in range(R // n):
        for k in range(n):
            th = theta + rho * q + m
            ax[rho] = th[1]
            ah[rho] = th[2] + th[0] * h[k]
            rho += 1


cdef inline void cell_forward(
    int kind, int activation, int n, int m, int q,
    const floating* theta, const floating* bias_hh,
    const floating* x, floating* s, floating* rec, floating* work,
    bint reuse,
) noexcept nogil:
    """s <- s_t from s = s_{t-1} and the input x; writes the step's record.

    ``x`` may be the record itself (the caller wrote the inputs there).
    ``bias_hh`` is read by the cells with a separate bias only. ``work``:
    step_work_size numbers. ``reuse``: ``rec`` holds the record of the
    step before, made under the same theta, whose numbers of theta alone
    the step may read instead of computing them (the LRUs'; the same
    results either way).
    """
    cdef:
        int R = cell_rows(kind, n)
        # The hidden side of a row: all of h, or its own unit's h_i.
        int nh = 1 if cell_diagonal(kind) else n
        int i, j
        double acc
        # The gates in the precision of the floating type (``sigmoid``).
        floating r, zg, e, ig, fg, gg, og, c, cnew, tc, cn
        floating one = 1
        floating* hprev = rec + m
        floating* coef = rec + record_inputs(kind, n, m)
        floating* ax = work
        floating* ah = work + R
        const floating* th
    if lru_cell(kind):
        _lru_forward(kind, activation, n, m, q, theta, x, s, rec, reuse)
        return
    if x != rec:
        memcpy(rec, x, m * sizeof(floating))
    memcpy(hprev, s, n * sizeof(floating))
    rec[m + n] = 1
    if cell_ones(kind) == 2:
        rec[m + n + 1] = 1
    if kind == ELMAN:
        memcpy(s, bias_hh, n * sizeof(floating))
        gemv_rm(n, q, <floating> 1, theta, q, rec, <floating> 1, s)
        activate(activation, n, s, coef)
    elif kind == DIAGONAL:
        for i in range(n):
            th = theta + i * q
            acc = bias_hh[i] + th[m] * hprev[i] + th[m + 1]
            for j in range(m):
                acc += th[j] * x[j]
            s[i] = <floating> acc
        activate(activation, n, s, coef)
    elif _gru_gates(kind):
        # The n gate needs W_hn h + b_hn apart from its input part.
        if cell_diagonal(kind):
            _own_hidden_rows(R, n, m, q, theta, hprev, ax, ah)
        else:
            for i in range(R):
                ax[i] = theta[i * q + m + nh]
                ah[i] = theta[i * q + m + nh + 1]
            gemv_rm(R, n, <floating> 1, theta + m, q, hprev, <floating> 1,
                    ah)
        gemv_rm(R, m, <floating> 1, theta, q, rec, <floating> 1, ax)
        # The gates in passes over a few arrays each, which the compiler runs
        # four units at a time (float32); one pass over all the arrays needs
        # more run-time checks that they do not overlap than it makes, and
        # stayed one unit at a time. r and z go to the record first, the
        # candidate e into ax[:n] (r's input part, used by then).
        for i in range(2 * n):
            coef[i] = sigmoid(ax[i] + ah[i])
        for i in range(n):
            ax[i] = tanh_of(ax[2 * n + i] + coef[i] * ah[2 * n + i])
        # In the floating type (``one``; a literal 1 is a double in C): a
        # float32 step converted each number to double and back here. Three
        # passes, for the same reason as the gates': one pass ran one unit
        # at a time, about a sixth of the EGRU's forward step (``perf``,
        # 1,024 units, float32), the three run four at a time in under half
        # that.
        for i in range(n):
            zg = coef[n + i]
            s[i] = (one - zg) * ax[i] + zg * hprev[i]
        for i in range(n):
            r = coef[i]
            e = ax[i]
            cn = (one - coef[n + i]) * (one - e * e)
            coef[2 * n + i] = cn * ah[2 * n + i] * r * (one - r)
            coef[4 * n + i] = cn
        for i in range(n):
            zg = coef[n + i]
            coef[3 * n + i] = (hprev[i] - ax[i]) * zg * (one - zg)
    else:
        for i in range(R):
            ax[i] = theta[i * q + m + nh] + theta[i * q + m + nh + 1]
        if cell_diagonal(kind):
            gemv_rm(R, m, <floating> 1, theta, q, rec, <floating> 1, ax)
            _add_own_hidden(R, n, m, q, theta, hprev, ax)
        else:
            gemv_rm(R, m + n, <floating> 1, theta, q, rec, <floating> 1, ax)
        for i in range(n):
            ig = sigmoid(ax[i])
            fg = sigmoid(ax[n + i])
            gg = tanh_of(ax[2 * n + i])
            og = sigmoid(ax[3 * n + i])
            c = s[n + i]
            cnew = fg * c + ig * gg
            tc = tanh_of(cnew)
            s[n + i] = <floating> cnew
            s[i] = <floating> (og * tc)
            coef[i] = <floating> fg
            coef[n + i] = gg * ig * (one - ig)
            coef[2 * n + i] = c * fg * (one - fg)
            coef[3 * n + i] = ig * (one - gg * gg)
            coef[4 * n + i] = tc * og * (one - og)
            coef[5 * n + i] = og * (one - tc * tc)


cdef inline const floating* record_coefficients(
    int kind, int n, int m, const floating* rec,
) noexcept nogil:
    return rec + record_inputs(kind, n, m)


# -- the output map ------------------------------------------------------------
#
# What the readout (and output feedback) reads from a step: y_t = s_t[:n],
# the identity, for every cell but the LRU, whose y_t = f(Re(C h_t) + D x_t
# + b) the forward step left in its record. A loss with dL/dy_t = g reaches
# the state through dL/ds_t = (d y_t / d s_t)^T g (``cell_output_vjp``, an
# O(n^2) product for the LRU, as its forward map) and the map's own
# parameters (C, D, b: columns of theta that carry no influence) directly.
# Every driver goes through ``cell_readout``.

cdef inline const floating* cell_output(
    int kind, int n, int m, const floating* s, const floating* rec,
) noexcept nogil:
    """y_t (n numbers) of the step whose state is ``s`` and record ``rec``."""
    if lru_cell(kind):
        return rec + record_inputs(kind, n, m) + LRU_Y * n
    return s


cdef inline void cell_output_vjp(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, const floating* g, floating* gs, bint add,
    floating* grad_theta, floating* work,
) noexcept nogil:
    """gs = (or, with ``add``, +=) (d y_t / d s_t)^T g (S numbers; skipped
    when NULL); grad_theta += g^T d y_t / d theta, the map's own parameters
    (skipped when NULL). ``work``: n numbers (the LRU's)."""
    cdef:
        int S = cell_state(kind, n)
        int r = _lru_recurrent(kind, m)
        int i
        floating* e = work
        const floating* coef
    if not lru_cell(kind):
        if gs == NULL:
            return
        if not add:
            memset(gs + n, 0, (S - n) * sizeof(floating))
            memcpy(gs, g, n * sizeof(floating))
            return
        for i in range(n):
            gs[i] += g[i]
        return
    coef = record_coefficients(kind, n, m, rec)
    for i in range(n):
        e[i] = g[i] * coef[LRU_DF * n + i]
    if gs != NULL:
        # [C_re^T e, -C_im^T e], in BLAS: the map's O(n^2) products.
        gemv_rm_t(n, n, <floating> 1, theta + r, q, e,
                  <floating> (1 if add else 0), gs)
        gemv_rm_t(n, n, <floating> -1, theta + r + n, q, e,
                  <floating> (1 if add else 0), gs + n)
    if grad_theta == NULL:
        return
    # The outer products e Re(h)^T, -e Im(h)^T and e x^T, and e.
    gemm_rm(n, n, 1, <floating> 1, e, 1, coef + LRU_H * n, n, <floating> 1,
            grad_theta + r, q)
    gemm_rm(n, n, 1, <floating> -1, e, 1, coef + (LRU_H + 1) * n, n,
            <floating> 1, grad_theta + r + n, q)
    gemm_rm(n, m, 1, <floating> 1, e, 1, rec, m, <floating> 1,
            grad_theta + r + 2 * n, q)
    for i in range(n):
        grad_theta[i * q + q - 1] += e[i]


cdef inline void cell_output_input_vjp(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, const floating* g, floating* gx,
) noexcept nogil:
    """gx += (d y_t / d x_t)^T g at fixed s_t (m numbers): the output
    map's direct path from the step's input, D^T (f' g) for the LRU (a
    layer of a stack that reads it sends this down); nothing for the cells
    whose y is h."""
    cdef:
        int r = _lru_recurrent(kind, m)
        int i, j
        floating e
        const floating* coef
        const floating* d_row
    if not lru_cell(kind):
        return
    coef = record_coefficients(kind, n, m, rec)
    for i in range(n):
        e = g[i] * coef[LRU_DF * n + i]
        d_row = theta + i * q + r + 2 * n
        for j in range(m):
            gx[j] += e * d_row[j]


cdef inline void cell_output_jvp(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, const floating* P, const floating* X, floating* Y,
    Py_ssize_t width,
) noexcept nogil:
    """Y (n x width) = (d y_t / d s_t) P + (d y_t / d x_t) X: the output
    map's Jacobian times the state's (P, S x width) and the input's (X, m x
    width; NULL: none) derivatives in some direction, the forward twin of
    ``cell_output_vjp`` (a stack's layer reads y, so its influence on the
    layer above is this product with the influences below). For the LRU,
    Y = f' (C_re P_re - C_im P_im + D X), O(n (2n + m) width); for the
    cells whose y is h, Y = P[:n]."""
    cdef:
        int r = _lru_recurrent(kind, m)
        int i
        Py_ssize_t c
        floating e
        const floating* coef
        floating* row
    if not lru_cell(kind):
        memcpy(Y, P, n * width * sizeof(floating))
        return
    gemm_rm(n, width, n, <floating> 1, theta + r, q, P, width, <floating> 0,
            Y, width)
    gemm_rm(n, width, n, <floating> -1, theta + r + n, q, P + n * width,
            width, <floating> 1, Y, width)
    if X != NULL:
        gemm_rm(n, width, m, <floating> 1, theta + r + 2 * n, q, X, width,
                <floating> 1, Y, width)
    coef = record_coefficients(kind, n, m, rec)
    for i in range(n):
        e = coef[LRU_DF * n + i]
        row = Y + i * width
        for c in range(width):
            row[c] *= e


cdef inline Py_ssize_t cell_output_influence_size(
    int kind, int n, int m,
) noexcept nogil:
    """Numbers of one row of d y_t / d theta that ``cell_output_influence``
    writes: n r through the state (r = ``cell_influence_columns``), then
    the q - r of the map's own columns; 0 for the cells whose y is h."""
    cdef int q = cell_columns(kind, n, m)
    cdef int r = cell_influence_columns(kind, n, m)
    if r == q:
        return 0
    return <Py_ssize_t> n * r + q - r


cdef inline void _add_map_row(
    floating* t, floating e, int n, int m, const floating* h_re,
    const floating* h_im, const floating* x,
) noexcept nogil:
    """t += e [Re h_t | -Im h_t | x_t | 1]: e times the derivative of the
    map's argument on one unit's own map columns (C_re, C_im, D, b)."""
    cdef int c
    for c in range(n):
        t[c] += e * h_re[c]
        t[n + c] -= e * h_im[c]
    for c in range(m):
        t[2 * n + c] += e * x[c]
    t[2 * n + m] += e


cdef inline void cell_output_influence(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, const floating* U, int i, floating* V, bint add,
) noexcept nogil:
    """Row i of d y_t / d theta of a cell with an output map (the LRU's),
    from the per-unit influence ``U`` of the step whose record is ``rec``,
    written into (``add``: added to) ``V`` (``cell_output_influence_size``
    numbers). With e = f'(pre-activation of y_i),

        d y_i / d theta[j, c] = e (C_re[i, j] dRe h_j / d theta[j, c]
                                   - C_im[i, j] dIm h_j / d theta[j, c])

    for every unit j and column c < r of j's row, at V[j r + c] (the state
    of unit j depends on its own row only), and, for the map's columns of
    row i, d y_i / d [C_re[i] | C_im[i] | D[i] | bias_y[i]] = e [Re h_t |
    -Im h_t | x_t | 1] at V[n r:]. (A pooled readout of y needs them all:
    O(n r) per unit and step, against the O(r) of the influence itself.)"""
    cdef:
        int r = cell_influence_columns(kind, n, m)
        int W = n * q
        int j, c
        const floating* coef = record_coefficients(kind, n, m, rec)
        floating e = coef[LRU_DF * n + i]
        floating a, b
        const floating* c_row = theta + i * q + r
        const floating* h_re = coef + LRU_H * n
        const floating* h_im = coef + (LRU_H + 1) * n
        const floating* p_re
        const floating* p_im
        floating* v
    if not add:
        # A pass to clear rather than a copy of each loop below that writes.
        memset(V, 0, (n * r + q - r) * sizeof(floating))
    for j in range(n):
        a = e * c_row[j]
        b = -e * c_row[n + j]
        p_re = U + j * q
        p_im = U + W + j * q
        v = V + j * r
        for c in range(r):
            v[c] += a * p_re[c] + b * p_im[c]
    _add_map_row(V + n * r, e, n, m, h_re, h_im, rec)


cdef inline void cell_output_influence_product(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, const floating* U, const floating* K, int rows,
    int ldk, floating* T, Py_ssize_t ldt, floating* work,
) noexcept nogil:
    """T (rows x n q, row stride ``ldt``) += K (d y_t / d theta) for K
    (rows x n, row stride ``ldk``), from the per-unit influence ``U``: the
    rows of ``cell_output_influence`` combined without forming them (the
    LRUs). With
    KE = K diag(f') and [Kr, Ki] = KE [C_re, -C_im],

        T[a, j q + c] += Kr[a, j] dRe h_j / d theta[j, c]
                         + Ki[a, j] dIm h_j / d theta[j, c]     (c < r),
        T[a, i q + r:(i + 1) q] += KE[a, i] [Re h_t | -Im h_t | x_t | 1],

    O(rows n (n + q)) against the O(rows n^2 q) of K times the n dense
    rows (a stack's layer over an LRU layer: K = its input Jacobian).
    ``work``: 3 rows n numbers."""
    cdef:
        int r = cell_influence_columns(kind, n, m)
        int W = n * q
        int a, i, j, c
        floating kr, ki
        floating* KE = work
        floating* Kc = work + rows * n
        const floating* coef = record_coefficients(kind, n, m, rec)
        const floating* h_re = coef + LRU_H * n
        const floating* h_im = coef + (LRU_H + 1) * n
        const floating* p_re
        const floating* p_im
        floating* t
    for a in range(rows):
        for i in range(n):
            KE[a * n + i] = K[a * ldk + i] * coef[LRU_DF * n + i]
    # [Kr, Ki]: C_re and C_im are the n x n blocks at column r of theta.
    gemm_rm(rows, n, n, <floating> 1, KE, n, theta + r, q, <floating> 0, Kc,
            2 * n)
    gemm_rm(rows, n, n, <floating> -1, KE, n, theta + r + n, q, <floating> 0,
            Kc + n, 2 * n)
    for a in range(rows):
        for j in range(n):
            kr = Kc[a * 2 * n + j]
            ki = Kc[a * 2 * n + n + j]
            p_re = U + j * q
            p_im = U + W + j * q
            t = T + a * ldt + j * q
            for c in range(r):
                t[c] += kr * p_re[c] + ki * p_im[c]
            _add_map_row(t + r, KE[a * n + j], n, m, h_re, h_im, rec)


cdef inline double cell_readout(
    int kind, int n, int m, int q, const floating* theta,
    const floating* s, const floating* rec, const floating* y, int o,
    double weight, int loss_kind, const floating* W_out,
    const floating* b_out, floating* grad_out, floating* grad_theta,
    floating* g, floating* gs, floating* zout, floating* dz, floating* work,
) noexcept nogil:
    """Readout of y_t, loss of the target ``y`` and its gradients: the
    readout's into grad_out ([W_out | b_out]), the output map's into
    grad_theta (NULL: skipped), g = dL/dy_t (n) and gs = dL/ds_t (S; NULL:
    not computed). ``work``: n numbers. Returns the weighted loss."""
    cdef double loss = readout_gradient(
        y, o, n, weight, loss_kind, W_out, b_out,
        cell_output(kind, n, m, s, rec), grad_out, g, zout, dz)
    cell_output_vjp(kind, n, m, q, theta, rec, g, gs, False, grad_theta, work)
    return loss


# -- the three functions a cell's linearisations are made of -----------------

cdef inline floating row_coef(
    int kind, int n, const floating* coef, int sigma, int gate, int i,
) noexcept nogil:
    """a_{sigma, rho}: d s_t[sigma, i] / d pre-activation of row gate*n + i."""
    if _gru_gates(kind):
        return coef[(2 + gate) * n + i]
    if _lstm_gates(kind):
        if gate == 3:
            return coef[4 * n + i] if sigma == 0 else 0
        if sigma == 1:
            return coef[(1 + gate) * n + i]
        return coef[5 * n + i] * coef[(1 + gate) * n + i]
    return coef[i]


cdef inline bint row_feeds(int kind, int sigma, int gate) noexcept nogil:
    """Whether a_{sigma, rho} can be nonzero (the LSTM's c does not see its
    output gate)."""
    return not (_lstm_gates(kind) and sigma == 1 and gate == 3)


cdef inline floating row_scale(
    int kind, int n, const floating* coef, int gate, int i,
) noexcept nogil:
    """lam_rho: factor on the hidden side of row gate*n + i's inputs."""
    if _gru_gates(kind) and gate == 2:
        return coef[i]
    return 1


cdef inline floating direct(
    int kind, int n, const floating* coef, int sigma, int sigma2, int i,
) noexcept nogil:
    """D_t[(sigma, i), (sigma2, i)]: the part of J_t not through the rows."""
    if _gru_gates(kind):
        return coef[n + i]
    if _lstm_gates(kind) and sigma2 == 1:
        return coef[i] if sigma == 1 else coef[5 * n + i] * coef[i]
    return 0


cdef inline const floating* row_hidden(
    int kind, int n, int m, const floating* rec, int i, int* width,
) noexcept nogil:
    """The hidden side of unit i's rows in a record, and its width."""
    if cell_diagonal(kind):
        width[0] = 1
        return rec + m + i
    width[0] = n
    return rec + m


cdef inline floating hidden_weight(
    int kind, int n, int m, int q, const floating* theta, int rho, int l,
) noexcept nogil:
    """W_hh[rho, l] (element-wise cells: w_rho on row rho's own unit)."""
    if cell_diagonal(kind):
        return theta[rho * q + m] if rho % n == l else 0
    return theta[rho * q + m + l]


cdef inline floating own_hidden_weight(
    int kind, int n, int m, int q, const floating* theta, int gate, int i,
) noexcept nogil:
    """W_hh[rho, i], rho = gate*n + i: ``hidden_weight`` of a row on its own
    unit, without the test of the unit (an integer division per row)."""
    if cell_diagonal(kind):
        return theta[(gate * n + i) * q + m]
    return theta[(gate * n + i) * q + m + i]


# -- derived: the immediate term ---------------------------------------------

# The gradient of the per-unit influence (``_rtrl.pxd``): a loss with
# dL/ds_t = gs adds to each column j of row rho = g*n + i
#
#     sum_sigma gs[sigma, i] P_t[sigma][rho, j]      (``unit_row_gradient``),
#
# sigma over the blocks the output reads (``cell_output_blocks``). The
# minibatch driver adds it to a gradient that accumulates over a sequence
# (``unit_gradient``); the online one takes it as the influence update
# writes each number (``_unit_influence_step``), from the numbers while they
# are in registers (reading a row back after it was stored was a pass over
# memory per step, and stalled on store forwarding), and writes
#
#     out[j] = sum_sigma gs[sigma, i] P_t[sigma][rho, j]
#              (+ weight * penalty[j] * theta[j]).
#
# Whether the gradient is taken, and with the penalty, is a type
# (``Taking``, passed NULL like a ``CellType``): a step's copy for what it
# takes has no test of it at each number (with the tests, an EGRU stream of
# 1,024 units ran about 1.1-1.2x slower). Untyped pointers (like
# ``UpdateRule``'s), cast back to the kernel's type.
ctypedef struct RowGradient:
    void* out            # the row's gradient (theta's layout)
    const void* penalty  # the row's L2 weights (``_Penalised``)
    const void* theta    # the row of theta
    double weight        # the penalty's weight
    double g0            # gs[0, i]: dL/dh_i
    double g1            # gs[1, i] (two output blocks: the LRU's Im h)
    int blocks           # cell_output_blocks


cdef struct _NoGradient:
    char unused
cdef struct _Gradient:
    char unused
cdef struct _Penalised:
    char unused

ctypedef fused Taking:
    _NoGradient   # nothing (``rg`` is not read)
    _Gradient     # the sum alone
    _Penalised    # the sum and the penalty's gradient


cdef inline RowGradient no_gradient() noexcept nogil:
    """A ``RowGradient`` for ``_NoGradient`` (no field is read)."""
    cdef RowGradient rg
    rg.out = NULL
    return rg


cdef inline floating unit_row_gradient(
    floating acc, double g0, floating v0, double g1, floating v1, int blocks,
) noexcept nogil:
    """acc + sum_sigma gs[sigma, i] P_t[sigma][rho, j] (see
    ``RowGradient``), g0 and g1 = gs[0, i] and gs[1, i], v0 and v1 =
    P_t[0][rho, j] and P_t[1][rho, j] (g1 and v1 unused with one block):
    the terms added to acc one at a time, in the order of sigma (acc is
    the gradient so far in ``unit_gradient``, -0.0 in ``_take``)."""
    acc = acc + <floating> g0 * v0
    if blocks > 1:
        acc = acc + <floating> g1 * v1
    return acc


cdef inline void _take(
    const Taking* how, RowGradient rg, int j, floating v0, floating v1,
) noexcept nogil:
    """The gradient of column j (see ``RowGradient``), v0 and v1 the new
    P_t[0][rho, j] and P_t[1][rho, j], as ``Taking`` says."""
    cdef floating acc
    if Taking is not _NoGradient:
        # From -0.0, which adds nothing: the sum alone, as if acc were not
        # there (from +0.0, a sum of -0.0 would turn into +0.0).
        acc = unit_row_gradient(<floating> -0.0, rg.g0, v0, rg.g1, v1,
                                rg.blocks)
        if Taking is _Penalised:
            acc = acc + penalty_term(<const floating*> rg.penalty,
                                     <const floating*> rg.theta, rg.weight, j)
        (<floating*> rg.out)[j] = acc


cdef inline void _update_range(
    int ns, floating* r0, floating* r1, const floating* Jd, floating a0,
    floating a1, const floating* src, int j0, int j1, int shift,
    const Taking* how, RowGradient rg,
) noexcept nogil:
    """r <- Jd r + a src[j - shift] on columns j0 .. j1 of one row r0 (ns 1)
    or of the two rows r0, r1 mixed by the 2 x 2 Jd (ns 2); Jd NULL: the
    identity (r += a src). With Jd, ``_take`` the gradient of each column.

    Every operand is read once into a local before the row is written: the
    compiler cannot tell that the rows do not alias ``src`` or ``Jd`` and
    would read them again after each store.
    """
    cdef int j
    cdef floating p0, p1, v, j00, j01, j10, j11
    cdef const floating* s = src - shift
    if Jd == NULL:
        for j in range(j0, j1):
            r0[j] += a0 * s[j]
        if ns > 1:
            for j in range(j0, j1):
                r1[j] += a1 * s[j]
    elif ns == 1:
        j00 = Jd[0]
        for j in range(j0, j1):
            v = s[j]
            p0 = j00 * r0[j] + a0 * v
            r0[j] = p0
            _take(how, rg, j, p0, p0)
    else:
        j00, j01, j10, j11 = Jd[0], Jd[1], Jd[2], Jd[3]
        for j in range(j0, j1):
            p0 = r0[j]
            p1 = r1[j]
            v = s[j]
            p0, p1 = j00 * p0 + j01 * p1 + a0 * v, j10 * p0 + j11 * p1 + a1 * v
            r0[j] = p0
            r1[j] = p1
            _take(how, rg, j, p0, p1)


cdef inline void _update_one(
    int ns, floating* r0, floating* r1, const floating* Jd, floating a0,
    floating a1, floating v, int j, const Taking* how,
    RowGradient rg,
) noexcept nogil:
    """``_update_range`` on the single column j with src[j] = v."""
    cdef floating p0, p1
    if Jd == NULL:
        r0[j] += a0 * v
        if ns > 1:
            r1[j] += a1 * v
    elif ns == 1:
        p0 = Jd[0] * r0[j] + a0 * v
        r0[j] = p0
        _take(how, rg, j, p0, p0)
    else:
        p0 = r0[j]
        p1 = r1[j]
        p0, p1 = Jd[0] * p0 + Jd[1] * p1 + a0 * v, Jd[2] * p0 + Jd[3] * p1 + a1 * v
        r0[j] = p0
        r1[j] = p1
        _take(how, rg, j, p0, p1)


cdef inline void _update_four(
    floating* r, floating j00, const floating* t, int j, const Taking* how,
    RowGradient rg,
) noexcept nogil:
    """r <- j00 r + t on the four columns j .. j + 3 of one row (ns 1), t
    the four products a v formed by the caller, with ``_take``'s gradient
    of each. Every number is read before any is written, so that the
    compiler, free of the question whether the row aliases theta or the
    penalty, does the four columns at once in vector registers: each lane
    does the scalar operations in the same order (the same bits)."""
    cdef floating p0, p1, p2, p3, c0 = 0, c1 = 0, c2 = 0, c3 = 0
    cdef floating* out
    p0 = j00 * r[j] + t[0]
    p1 = j00 * r[j + 1] + t[1]
    p2 = j00 * r[j + 2] + t[2]
    p3 = j00 * r[j + 3] + t[3]
    if Taking is _Penalised:
        c0 = penalty_term(<const floating*> rg.penalty,
                          <const floating*> rg.theta, rg.weight, j)
        c1 = penalty_term(<const floating*> rg.penalty,
                          <const floating*> rg.theta, rg.weight, j + 1)
        c2 = penalty_term(<const floating*> rg.penalty,
                          <const floating*> rg.theta, rg.weight, j + 2)
        c3 = penalty_term(<const floating*> rg.penalty,
                          <const floating*> rg.theta, rg.weight, j + 3)
    r[j] = p0
    r[j + 1] = p1
    r[j + 2] = p2
    r[j + 3] = p3
    if Taking is not _NoGradient:
        # As ``_take``: from -0.0, then the penalty's term (ns 1: the one
        # block of the output).
        out = <floating*> rg.out
        p0 = unit_row_gradient(<floating> -0.0, rg.g0, p0, rg.g1, p0, 1)
        p1 = unit_row_gradient(<floating> -0.0, rg.g0, p1, rg.g1, p1, 1)
        p2 = unit_row_gradient(<floating> -0.0, rg.g0, p2, rg.g1, p2, 1)
        p3 = unit_row_gradient(<floating> -0.0, rg.g0, p3, rg.g1, p3, 1)
        if Taking is _Penalised:
            p0 = p0 + c0
            p1 = p1 + c1
            p2 = p2 + c2
            p3 = p3 + c3
        out[j] = p0
        out[j + 1] = p1
        out[j + 2] = p2
        out[j + 3] = p3


cdef inline void _lru_input_update(
    int kind, int n, int m, const floating* rec, int i, floating* r0,
    floating* r1, const floating* Jd, int j0, int j1, const Taking* how,
    RowGradient rg,
) noexcept nogil:
    """The (gated) LRU's ``input_update``: r <- Jd r + I_t on columns j0
    .. j1 of unit i's rows [Re, Im], I_t's columns being d h_t / d [B_re[i]
    | B_im[i] | nu_log[i] | theta_log[i] | gamma_log[i] (| W_g[i] |
    b_g[i])] at fixed h_{t-1}: gamma (i) x on Re h (B_re) or Im h (B_im),
    then the three recorded complex numbers (and the gate's, times [x, 1]).
    The output map's columns (from ``_lru_recurrent`` on) are left alone."""
    cdef:
        const floating* coef = record_coefficients(kind, n, m, rec)
        floating gam = coef[LRU_GAMMA * n + i]
        int lo, hi, g0 = _lru_gate(m)
    hi = m if j1 > m else j1
    if j0 < hi:
        _update_range(2, r0, r1, Jd, gam, 0, rec, j0, hi, 0, how, rg)
    lo = m if j0 < m else j0
    hi = 2 * m if j1 > 2 * m else j1
    if lo < hi:
        _update_range(2, r0, r1, Jd, 0, gam, rec, lo, hi, m, how, rg)
    if j0 <= 2 * m < j1:
        _update_one(2, r0, r1, Jd, coef[LRU_NU * n + i],
                    coef[(LRU_NU + 1) * n + i], 1, 2 * m, how, rg)
    if j0 <= 2 * m + 1 < j1:
        _update_one(2, r0, r1, Jd, coef[LRU_TH * n + i],
                    coef[(LRU_TH + 1) * n + i], 1, 2 * m + 1, how, rg)
    if j0 <= 2 * m + 2 < j1:
        _update_one(2, r0, r1, Jd, coef[LRU_DG * n + i] * coef[LRU_U * n + i],
                    coef[LRU_DG * n + i] * coef[(LRU_U + 1) * n + i], 1,
                    2 * m + 2, how, rg)
    if kind != GLRU:
        return
    lo = g0 if j0 < g0 else j0
    hi = g0 + m if j1 > g0 + m else j1
    if lo < hi:
        _update_range(2, r0, r1, Jd, coef[LRU_GW * n + i],
                      coef[(LRU_GW + 1) * n + i], rec, lo, hi, g0, how, rg)
    if j0 <= g0 + m < j1:
        _update_one(2, r0, r1, Jd, coef[LRU_GW * n + i],
                    coef[(LRU_GW + 1) * n + i], 1, g0 + m, how, rg)


cdef inline void input_update(
    int kind, int n, int m, int q, const floating* rec, int gate, int i,
    int ns, floating* r0, floating* r1, const floating* Jd, floating a0,
    floating a1, int j0, int j1, const Taking* how,
    RowGradient rg,
) noexcept nogil:
    """r <- Jd r + a v_rho on columns j0 .. j1 of row rho = gate*n + i of
    one or two influence rows (see ``_update_range``; Jd NULL: r += a v_rho),
    v_rho = [x, lam h, 1, lam] read from the record; with Jd, the gradient
    of each column written, as ``how`` says (``RowGradient``)."""
    cdef:
        floating lam = row_scale(kind, n, record_coefficients(kind, n, m, rec),
                                 gate, i)
        floating b0 = a0 * lam, b1 = a1 * lam, v
        floating t[4]
        int nh, e, lo, j, k
        const floating* h = row_hidden(kind, n, m, rec, i, &nh)
    if lru_cell(kind):
        _lru_input_update(kind, n, m, rec, i, r0, r1, Jd, j0, j1, how, rg)
        return
    if lam == 1 and nh == n:
        # The record holds [x, h, 1(, 1)]: the row's inputs as they are.
        _update_range(ns, r0, r1, Jd, a0, a1, rec, j0, j1, 0, how, rg)
        return
    if nh == 1 and ns == 1 and Jd != NULL and m == 1 and j0 == 0 and j1 >= 4:
        # The element-wise cell's per-unit step on one input: the row's
        # first four columns (x, h, 1 and 1, the products a v as below) at
        # once (``_update_four``), the rest below. (A loop over blocks of
        # four for any m made the step too large for the compiler to
        # inline for the diagonal cell, which then ran 2x slower.)
        t[0] = a0 * rec[0]
        t[1] = b0 * h[0]
        t[2] = a0 * <floating> 1
        t[3] = b0 * <floating> 1
        _update_four(r0, Jd[0], t, 0, how, rg)
        j0 = 4
    e = m if j1 > m else j1
    if j0 < e:
        _update_range(ns, r0, r1, Jd, a0, a1, rec, j0, e, 0, how, rg)
    lo = j0 if j0 > m else m
    if nh > 1:
        e = m + nh if j1 > m + nh else j1
        if lo < e:
            _update_range(ns, r0, r1, Jd, b0, b1, h, lo, e, m, how, rg)
        lo = lo if lo > m + nh else m + nh
    # The columns left one at a time, k = j - m - nh: the element-wise
    # cell's one hidden input (k = -1: lam h), then the biases (k = 0: 1,
    # k = 1: lam). One loop rather than a call per column: with the calls,
    # the compiler stopped inlining the per-unit step (an EGRU stream of
    # 1,024 units ran 1.6x slower).
    for j in range(lo, j1):
        k = j - m - nh
        v = h[0] if k < 0 else 1
        _update_one(ns, r0, r1, Jd, a0 if k == 0 else b0,
                    a1 if k == 0 else b1, v, j, how, rg)


cdef inline void _cell_immediate(
    int kind, int n, int m, int q, const floating* rec, floating* P, int ld,
    int c0, int c1,
) noexcept nogil:
    """Add I_t to the columns c0 .. c1 of the influence P (S rows, row
    stride ``ld``, theta's columns first)."""
    cdef:
        int ns = cell_per_unit(kind)
        int rho, gate, i, j0, j1, rows
        const floating* coef = record_coefficients(kind, n, m, rec)
    if c1 <= c0:
        return
    # gate and i of row rho, kept by counting: a division per row cost more
    # than the row's update at n = 8.
    rho = c0 // q
    gate = rho // n
    i = rho - gate * n - 1
    for rho in range(rho, (c1 - 1) // q + 1):
        i += 1
        if i == n:
            i = 0
            gate += 1
        j0 = c0 - rho * q if c0 > rho * q else 0
        j1 = c1 - rho * q if c1 < rho * q + q else q
        rows = ns if ns == 1 or row_feeds(kind, 1, gate) else 1
        input_update(
            kind, n, m, q, rec, gate, i, rows, P + i * ld + rho * q,
            P + (n + i) * ld + rho * q if rows > 1 else NULL, NULL,
            row_coef(kind, n, coef, 0, gate, i),
            row_coef(kind, n, coef, 1, gate, i) if rows > 1 else 0, j0, j1,
            <_NoGradient*> NULL, no_gradient())


cdef inline void cell_immediate(
    int kind, int n, int m, int q, const floating* rec, floating* P, int ld,
    int c0, int c1,
) noexcept nogil:
    """See ``_cell_immediate``; called with the cell as a constant, so that each cell
    gets a copy with its branches resolved by the compiler. The entry
    points refuse codes of no cell, so the last branch is the LSTM's."""
    if kind == ELMAN:
        _cell_immediate(ELMAN, n, m, q, rec, P, ld, c0, c1)
    elif kind == DIAGONAL:
        _cell_immediate(DIAGONAL, n, m, q, rec, P, ld, c0, c1)
    elif kind == GRU:
        _cell_immediate(GRU, n, m, q, rec, P, ld, c0, c1)
    elif kind == LSTM:
        _cell_immediate(LSTM, n, m, q, rec, P, ld, c0, c1)
    elif kind == EGRU:
        _cell_immediate(EGRU, n, m, q, rec, P, ld, c0, c1)
    elif kind == ELSTM:
        _cell_immediate(ELSTM, n, m, q, rec, P, ld, c0, c1)
    elif kind == LRU:
        _cell_immediate(LRU, n, m, q, rec, P, ld, c0, c1)
    elif kind == GLRU:
        _cell_immediate(GLRU, n, m, q, rec, P, ld, c0, c1)
    else:
        _cell_immediate(kind, n, m, q, rec, P, ld, c0, c1)


# -- derived: the state Jacobian ---------------------------------------------

cdef inline void _unit_rows(
    int kind, int n, const floating* coef, int i, bint hidden,
    floating* a, int* rows,
) noexcept nogil:
    """a[sigma * G + g] = a_{sigma, g*n+i} (times lam on the hidden side);
    rows[g] = g*n + i."""
    cdef int G = cell_gates(kind)
    cdef int sigma, gate
    for gate in range(G):
        rows[gate] = gate * n + i
        for sigma in range(cell_per_unit(kind)):
            a[sigma * G + gate] = row_coef(kind, n, coef, sigma, gate, i)
            if hidden:
                a[sigma * G + gate] *= row_scale(kind, n, coef, gate, i)


cdef inline void _mix_rows(
    int G, const floating* a, const floating* theta, const int* rows, int q,
    int col, int width, floating* out,
) noexcept nogil:
    """out = sum_g a[g] theta[rows[g], col:col + width], gate by gate."""
    cdef int gate, l
    cdef floating ag = a[0]
    cdef const floating* w = theta + rows[0] * q + col
    for l in range(width):
        out[l] = ag * w[l]
    for gate in range(1, G):
        ag = a[gate]
        w = theta + rows[gate] * q + col
        for l in range(width):
            out[l] = out[l] + ag * w[l]


cdef inline void _cell_jacobian(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, int columns, floating* J,
) noexcept nogil:
    """J_t's first ``columns`` columns (n: the h columns; S: all of it),
    written into J (S x columns, row-major)."""
    cdef:
        int G = cell_gates(kind)
        int ns = cell_per_unit(kind)
        int i, sigma, s2
        floating a[8]
        int rows[4]
        floating* row
        const floating* coef = record_coefficients(kind, n, m, rec)
    if lru_cell(kind):
        # [[diag(a), -diag(b)], [diag(b), diag(a)]]: unit i's lambda.
        memset(J, 0, 2 * n * columns * sizeof(floating))
        for i in range(n):
            J[i * columns + i] = coef[LRU_A * n + i]
            J[(n + i) * columns + i] = coef[LRU_B * n + i]
            if columns > n:
                J[i * columns + n + i] = -coef[LRU_B * n + i]
                J[(n + i) * columns + n + i] = coef[LRU_A * n + i]
        return
    for i in range(n):
        _unit_rows(kind, n, coef, i, True, a, rows)
        for sigma in range(ns):
            row = J + (sigma * n + i) * columns
            if cell_diagonal(kind):
                memset(row, 0, columns * sizeof(floating))
                # Each row's own hidden weight, in column m.
                _mix_rows(G, a + sigma * G, theta, rows, q, m, 1, row + i)
            else:
                _mix_rows(G, a + sigma * G, theta, rows, q, m, n, row)
            for s2 in range(1, ns):
                if s2 * n < columns:
                    memset(row + s2 * n, 0, n * sizeof(floating))
            if not cell_has_direct(kind):
                continue
            for s2 in range(ns):
                if s2 * n < columns:
                    row[s2 * n + i] += direct(kind, n, coef, sigma, s2, i)


cdef inline void cell_jacobian(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, int columns, floating* J,
) noexcept nogil:
    """See ``_cell_jacobian``; called with the cell as a constant, so that each cell
    gets a copy with its branches resolved by the compiler. The entry
    points refuse codes of no cell, so the last branch is the LSTM's."""
    if kind == ELMAN:
        _cell_jacobian(ELMAN, n, m, q, theta, rec, columns, J)
    elif kind == DIAGONAL:
        _cell_jacobian(DIAGONAL, n, m, q, theta, rec, columns, J)
    elif kind == GRU:
        _cell_jacobian(GRU, n, m, q, theta, rec, columns, J)
    elif kind == LSTM:
        _cell_jacobian(LSTM, n, m, q, theta, rec, columns, J)
    elif kind == EGRU:
        _cell_jacobian(EGRU, n, m, q, theta, rec, columns, J)
    elif kind == ELSTM:
        _cell_jacobian(ELSTM, n, m, q, theta, rec, columns, J)
    elif kind == LRU:
        _cell_jacobian(LRU, n, m, q, theta, rec, columns, J)
    elif kind == GLRU:
        _cell_jacobian(GLRU, n, m, q, theta, rec, columns, J)
    else:
        _cell_jacobian(kind, n, m, q, theta, rec, columns, J)


cdef inline void _cell_input_jacobian(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, int col, int width, floating* B,
) noexcept nogil:
    """B = d s_t / d x_t[col .. col + width] (S x width): the inputs, not
    the state (for fed-back outputs)."""
    cdef:
        int G = cell_gates(kind)
        int i, sigma
        floating a[8]
        int rows[4]
        const floating* coef = record_coefficients(kind, n, m, rec)
        int l
    if lru_cell(kind):
        # gamma B_re and gamma B_im (the gated LRU: gamma i B, plus its
        # gate's gamma (1 - i) U W_g).
        for i in range(n):
            for l in range(width):
                B[i * width + l] = (coef[LRU_GAMMA * n + i]
                                    * theta[i * q + col + l])
                B[(n + i) * width + l] = (coef[LRU_GAMMA * n + i]
                                          * theta[i * q + m + col + l])
                if kind == GLRU:
                    B[i * width + l] += (coef[LRU_GW * n + i]
                                         * theta[i * q + _lru_gate(m) + col + l])
                    B[(n + i) * width + l] += (
                        coef[(LRU_GW + 1) * n + i]
                        * theta[i * q + _lru_gate(m) + col + l])
        return
    for i in range(n):
        _unit_rows(kind, n, coef, i, False, a, rows)
        for sigma in range(cell_per_unit(kind)):
            _mix_rows(G, a + sigma * G, theta, rows, q, col, width,
                      B + (sigma * n + i) * width)


cdef inline void cell_input_jacobian(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, int col, int width, floating* B,
) noexcept nogil:
    """See ``_cell_input_jacobian``; called with the cell as a constant, so that each cell
    gets a copy with its branches resolved by the compiler. The entry
    points refuse codes of no cell, so the last branch is the LSTM's."""
    if kind == ELMAN:
        _cell_input_jacobian(ELMAN, n, m, q, theta, rec, col, width, B)
    elif kind == DIAGONAL:
        _cell_input_jacobian(DIAGONAL, n, m, q, theta, rec, col, width, B)
    elif kind == GRU:
        _cell_input_jacobian(GRU, n, m, q, theta, rec, col, width, B)
    elif kind == LSTM:
        _cell_input_jacobian(LSTM, n, m, q, theta, rec, col, width, B)
    elif kind == EGRU:
        _cell_input_jacobian(EGRU, n, m, q, theta, rec, col, width, B)
    elif kind == ELSTM:
        _cell_input_jacobian(ELSTM, n, m, q, theta, rec, col, width, B)
    elif kind == LRU:
        _cell_input_jacobian(LRU, n, m, q, theta, rec, col, width, B)
    elif kind == GLRU:
        _cell_input_jacobian(GLRU, n, m, q, theta, rec, col, width, B)
    else:
        _cell_input_jacobian(kind, n, m, q, theta, rec, col, width, B)


cdef inline void _cell_unit_jacobian(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, int i, floating* Jd,
) noexcept nogil:
    """Unit i's diagonal block of J_t (ns x ns, row-major): all of J_t for
    the element-wise cell; what SnAp-1 keeps for the others."""
    cdef:
        int ns = cell_per_unit(kind)
        int G = cell_gates(kind)
        int sigma, s2, gate
        floating acc
        const floating* coef = record_coefficients(kind, n, m, rec)
    if lru_cell(kind):
        Jd[0] = coef[LRU_A * n + i]
        Jd[1] = -coef[LRU_B * n + i]
        Jd[2] = coef[LRU_B * n + i]
        Jd[3] = coef[LRU_A * n + i]
        return
    for sigma in range(ns):
        for s2 in range(ns):
            Jd[sigma * ns + s2] = direct(kind, n, coef, sigma, s2, i)
        acc = Jd[sigma * ns]
        for gate in range(G):
            if row_feeds(kind, sigma, gate):
                acc = acc + (row_coef(kind, n, coef, sigma, gate, i)
                             * row_scale(kind, n, coef, gate, i)
                             * own_hidden_weight(kind, n, m, q, theta, gate, i))
        Jd[sigma * ns] = acc


cdef inline void cell_unit_jacobian(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, int i, floating* Jd,
) noexcept nogil:
    """See ``_cell_unit_jacobian``; called with the cell as a constant, so that each cell
    gets a copy with its branches resolved by the compiler. The entry
    points refuse codes of no cell, so the last branch is the LSTM's."""
    if kind == ELMAN:
        _cell_unit_jacobian(ELMAN, n, m, q, theta, rec, i, Jd)
    elif kind == DIAGONAL:
        _cell_unit_jacobian(DIAGONAL, n, m, q, theta, rec, i, Jd)
    elif kind == GRU:
        _cell_unit_jacobian(GRU, n, m, q, theta, rec, i, Jd)
    elif kind == LSTM:
        _cell_unit_jacobian(LSTM, n, m, q, theta, rec, i, Jd)
    elif kind == EGRU:
        _cell_unit_jacobian(EGRU, n, m, q, theta, rec, i, Jd)
    elif kind == ELSTM:
        _cell_unit_jacobian(ELSTM, n, m, q, theta, rec, i, Jd)
    elif kind == LRU:
        _cell_unit_jacobian(LRU, n, m, q, theta, rec, i, Jd)
    elif kind == GLRU:
        _cell_unit_jacobian(GLRU, n, m, q, theta, rec, i, Jd)
    else:
        _cell_unit_jacobian(kind, n, m, q, theta, rec, i, Jd)


# -- derived: products with the Jacobians ------------------------------------

cdef inline void _lru_vjp(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, const floating* gbar, floating* gprev,
    floating* grad_theta,
) noexcept nogil:
    """The (gated) LRU's ``cell_vjp``: gprev = J_t^T gbar (J_t's block of
    unit i is the rotation-scaling of lambda_i), grad_theta += gbar^T I_t.

    lambda and gamma are read from ``theta``, the record giving h_{t-1},
    x, the gate i and (i) B x: as every cell's vjp takes its weights from
    the current theta and its activations from the record (BPTT with
    updates after every step backpropagates through records of earlier
    weights)."""
    cdef:
        int i, j
        double enu, eth, mod, a, b, ga, gb, gr, gi, hr, hi, lr, li
        double dnu, dth, dga, ig, eg
        floating* row
        const floating* th
        const floating* coef = record_coefficients(kind, n, m, rec)
    for i in range(n):
        th = theta + i * q
        enu = _lru_exp(th[2 * m], &dnu)
        eth = _lru_exp(th[2 * m + 1], &dth)
        mod = exp(-enu)
        a = mod * cos(eth)
        b = mod * sin(eth)
        ga = _lru_exp(th[2 * m + 2], &dga)
        hr = rec[m + i]
        hi = rec[m + n + i]
        lr = a * hr - b * hi
        li = b * hr + a * hi
        gr = gbar[i]
        gi = gbar[n + i]
        row = grad_theta + i * q
        # gamma's factor on B x: gamma, or gamma i behind the gate.
        gb = ga
        if kind == GLRU:
            ig = coef[LRU_GATE * n + i]
            gb = ga * ig
            # dL/d(pre-activation of i) = gamma (1 - i) (gr Re U + gi Im U).
            eg = ga * (1.0 - ig) * (gr * coef[LRU_U * n + i]
                                    + gi * coef[(LRU_U + 1) * n + i])
            for j in range(m):
                row[_lru_gate(m) + j] += <floating> (eg * rec[j])
            row[_lru_gate(m) + m] += <floating> eg
        for j in range(m):
            row[j] += <floating> (gr * gb * rec[j])
            row[m + j] += <floating> (gi * gb * rec[j])
        row[2 * m] += <floating> (-dnu * (gr * lr + gi * li))
        row[2 * m + 1] += <floating> (dth * (gi * lr - gr * li))
        row[2 * m + 2] += <floating> (dga * (gr * coef[LRU_U * n + i]
                                             + gi * coef[(LRU_U + 1) * n + i]))
        if gprev != NULL:
            gprev[i] = <floating> (a * gr + b * gi)
            gprev[n + i] = <floating> (a * gi - b * gr)


cdef inline void _cell_vjp(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, const floating* gbar, floating* gprev,
    floating* grad_theta, floating* work,
) noexcept nogil:
    """gprev = gbar^T J_t (skipped when NULL); grad_theta += gbar^T I_t.

    ``gbar`` and ``gprev`` have S numbers and must not overlap;
    ``grad_theta`` is laid out like theta (R x q). ``work``: R numbers.
    """
    cdef:
        int G = cell_gates(kind)
        int ns = cell_per_unit(kind)
        int R = G * n
        int i, gate, sigma, s2
        floating acc
        floating* e = work
        const floating* coef = record_coefficients(kind, n, m, rec)
    if lru_cell(kind):
        _lru_vjp(kind, n, m, q, theta, rec, gbar, gprev, grad_theta)
        return
    for i in range(n):
        for gate in range(G):
            acc = 0
            for sigma in range(ns):
                if row_feeds(kind, sigma, gate):
                    acc = acc + gbar[sigma * n + i] * row_coef(
                        kind, n, coef, sigma, gate, i)
            input_update(kind, n, m, q, rec, gate, i, 1,
                         grad_theta + (gate * n + i) * q, NULL, NULL, acc, 0,
                         0, q, <_NoGradient*> NULL, no_gradient())
            # dL/d(hidden side of the row), what W_hh passes back.
            e[gate * n + i] = acc * row_scale(kind, n, coef, gate, i)
    if gprev == NULL:
        return
    if cell_diagonal(kind):
        for i in range(n):
            acc = 0
            for gate in range(G):
                acc = acc + e[gate * n + i] * theta[(gate * n + i) * q + m]
            gprev[i] = acc
    else:
        gemv_rm_t(R, n, <floating> 1, theta + m, q, e, <floating> 0, gprev)
    if ns > 1:
        memset(gprev + n, 0, (ns - 1) * n * sizeof(floating))
    if not cell_has_direct(kind):
        return
    for i in range(n):
        for s2 in range(ns):
            for sigma in range(ns):
                gprev[s2 * n + i] += gbar[sigma * n + i] * direct(
                    kind, n, coef, sigma, s2, i)


cdef inline void cell_vjp(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, const floating* gbar, floating* gprev,
    floating* grad_theta, floating* work,
) noexcept nogil:
    """See ``_cell_vjp``; called with the cell as a constant, so that each cell
    gets a copy with its branches resolved by the compiler. The entry
    points refuse codes of no cell, so the last branch is the LSTM's."""
    if kind == ELMAN:
        _cell_vjp(ELMAN, n, m, q, theta, rec, gbar, gprev, grad_theta, work)
    elif kind == DIAGONAL:
        _cell_vjp(DIAGONAL, n, m, q, theta, rec, gbar, gprev, grad_theta, work)
    elif kind == GRU:
        _cell_vjp(GRU, n, m, q, theta, rec, gbar, gprev, grad_theta, work)
    elif kind == LSTM:
        _cell_vjp(LSTM, n, m, q, theta, rec, gbar, gprev, grad_theta, work)
    elif kind == EGRU:
        _cell_vjp(EGRU, n, m, q, theta, rec, gbar, gprev, grad_theta, work)
    elif kind == ELSTM:
        _cell_vjp(ELSTM, n, m, q, theta, rec, gbar, gprev, grad_theta, work)
    elif kind == LRU:
        _cell_vjp(LRU, n, m, q, theta, rec, gbar, gprev, grad_theta, work)
    elif kind == GLRU:
        _cell_vjp(GLRU, n, m, q, theta, rec, gbar, gprev, grad_theta, work)
    else:
        _cell_vjp(kind, n, m, q, theta, rec, gbar, gprev, grad_theta, work)


cdef inline void _cell_jvp(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, const floating* v, floating* out, floating* work,
) noexcept nogil:
    """out = J_t v (S numbers each, not overlapping). ``work``: R numbers."""
    cdef:
        int G = cell_gates(kind)
        int ns = cell_per_unit(kind)
        int i, gate, sigma, s2
        floating acc
        floating* y = work
        const floating* coef = record_coefficients(kind, n, m, rec)
    if lru_cell(kind):
        for i in range(n):
            out[i] = coef[LRU_A * n + i] * v[i] - coef[LRU_B * n + i] * v[n + i]
            out[n + i] = (coef[LRU_B * n + i] * v[i]
                          + coef[LRU_A * n + i] * v[n + i])
        return
    if cell_diagonal(kind):
        for i in range(G * n):
            y[i] = theta[i * q + m] * v[i % n]
    else:
        gemv_rm(G * n, n, <floating> 1, theta + m, q, v, <floating> 0, y)
    for i in range(n):
        for sigma in range(ns):
            acc = 0
            for gate in range(G):
                if row_feeds(kind, sigma, gate):
                    acc = acc + (row_coef(kind, n, coef, sigma, gate, i)
                                 * row_scale(kind, n, coef, gate, i)
                                 * y[gate * n + i])
            if cell_has_direct(kind):
                for s2 in range(ns):
                    acc = acc + direct(kind, n, coef, sigma, s2, i) * v[s2 * n + i]
            out[sigma * n + i] = acc


cdef inline void cell_jvp(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, const floating* v, floating* out, floating* work,
) noexcept nogil:
    """See ``_cell_jvp``; called with the cell as a constant, so that each cell
    gets a copy with its branches resolved by the compiler. The entry
    points refuse codes of no cell, so the last branch is the LSTM's."""
    if kind == ELMAN:
        _cell_jvp(ELMAN, n, m, q, theta, rec, v, out, work)
    elif kind == DIAGONAL:
        _cell_jvp(DIAGONAL, n, m, q, theta, rec, v, out, work)
    elif kind == GRU:
        _cell_jvp(GRU, n, m, q, theta, rec, v, out, work)
    elif kind == LSTM:
        _cell_jvp(LSTM, n, m, q, theta, rec, v, out, work)
    elif kind == EGRU:
        _cell_jvp(EGRU, n, m, q, theta, rec, v, out, work)
    elif kind == ELSTM:
        _cell_jvp(ELSTM, n, m, q, theta, rec, v, out, work)
    elif kind == LRU:
        _cell_jvp(LRU, n, m, q, theta, rec, v, out, work)
    elif kind == GLRU:
        _cell_jvp(GLRU, n, m, q, theta, rec, v, out, work)
    else:
        _cell_jvp(kind, n, m, q, theta, rec, v, out, work)


cdef inline void copy_bias_gradient(
    int kind, int n, int q, const floating* grad_theta, floating* grad_bias_hh,
) noexcept nogil:
    """bias_hh enters a_t as b_ih does (the cells that keep it apart): the
    same gradient."""
    cdef int i
    if cell_separate_bias(kind):
        for i in range(n):
            grad_bias_hh[i] = grad_theta[i * q + q - 1]
