# Exact RTRL and SnAp-1, written once for every cell of ``_cells.pxd``.
#
# Two drivers carry the influence P_t = d s_t / d theta (S x W, W = R*q;
# ``_cells.pxd`` has the notation and the recursion P_t = J_t P_{t-1} +
# I_t):
#
# * dense (exact RTRL of the Elman, GRU and LSTM cells): two S x W buffers
#   per sequence, one GEMM per step (``influence_step``), in column blocks
#   (``_blocks.pyx``); each block gets its immediate term, and its share of
#   the gradient P_t[:n]^T g, right after the GEMM wrote it, while it is in
#   cache. Folding the nonlinearity into the small left factor J_t leaves
#   one S x n (or S x S) by n x W product. For cells whose state has more
#   than h (the LSTM's [h, c]), the columns of J_t beyond h are diagonal
#   (the direct part D_t), so only J_t[:, :n] goes into the GEMM, over the
#   h rows of P_{t-1}: the block of P_t is first written from the other
#   state rows of P_{t-1} through D_t, and the GEMM accumulates onto it
#   (beta = 1, which also spares BLAS its zeroing pass). That halves the
#   LSTM's flops against the dense 2n x 2n product (which ``dense`` keeps,
#   for tests and benchmarks; an earlier version added the diagonal terms
#   in a separate pass over P after one whole GEMM: 1.09x slower at n = 64,
#   one thread). Per step and sequence the GEMM costs 2 S n W flops:
#   2 n^2 (n (m + n + 1)) for the Elman cell, about 3x and 8x that for the
#   GRU and LSTM.
#
#   P_0 = 0, so a sequence's first two steps need no GEMM: P_1 = I_1 has
#   only the entries of each unit's own rows, kept in the per-unit layout
#   below (no S x W buffer to zero), and P_2 = J_2 P_1 + I_2 is a sum of
#   outer products, written in one pass (``second_step``), its gradient
#   (g^T J_2) P_1 + g^T I_2 in closed form. A stream cannot skip the
#   buffer: its P_t goes on to the next call.
#
# * per unit (``unit_influence_step``): the entries of P_t that relate unit
#   i's state to unit i's own rows of theta, ns blocks of R x q in theta's
#   layout (block sigma, row rho = g*n + i: d s_t[sigma, i] / d theta[rho]).
#   For the element-wise cell, whose J_t is diagonal, these are all the
#   nonzeros and this is exact RTRL in O(n q) per step. For the other cells
#   it is SnAp-1 (Menick et al., 2020, "Practical Real Time Recurrent
#   Learning with a Sparse Approximation"): the pattern of I_t, which is
#   where one step from P = 0 puts nonzeros. Under that pattern,
#   (J_t P_{t-1}) only involves the diagonal block of each unit, so each
#   unit's block evolves on its own, P_t[i] = J_t[i, i] P_{t-1}[i] + I_t[i]
#   (J_t[i, i] is ns x ns: ``cell_unit_jacobian``), O(number of parameters)
#   per step; with n = 1 it is exact RTRL. (For the LSTM, d c_i / d theta[o_i]
#   is zero after one step but kept with the rest of unit i's block: it
#   fills in at the second step through h_i, and keeping the block whole
#   costs nothing.) One buffer per sequence, updated in place; a loss with
#   dL/ds_t = g (``cell_readout``: nonzero on h only, but for the LRU,
#   whose output map reads [Re h, Im h]) adds sum_sigma g[sigma, i]
#   P_t[sigma][rho] to row rho of the gradient (``unit_gradient``; the
#   online driver takes it in the same pass as each number of P_t is
#   written, ``RowGradient`` in ``_cells.pxd``).
#
# Minibatch: threads take the sequences one at a time (dynamic schedule, so
# a thread slowed by other load holds up at most one sequence) and run each
# through time with the thread's own buffers: the influence GEMM cannot be
# shared across sequences (J_t differs), while one sequence at a time keeps
# two buffers per thread hot in cache. Each sequence's gradient is
# accumulated in the thread's scratch and copied to its own row at the end,
# so the caller's sum over rows has a fixed order and results do not depend
# on which thread ran what. Online (Williams & Zipser's real-time RTRL):
# sequences run one after the other, the influence carried on under the
# changing weights, an update after every step with a target. There the
# per-unit step writes its gradient as it writes P_t, rather than adding it
# to a zeroed one in a second pass, and, for the cells with neither a
# separate bias_hh nor an output map in theta, the L2 penalty with it: with
# nothing to multiply but per-unit scalars, passes over memory are the
# step's cost (an element-wise stream of 1,024 units spends most of its
# step there and in the optimizer's).
#
# Pooled readouts (``Packed.pooling``): a sequence's one target read from
# z = (1/T) sum_t y_t (mean) or from each unit's maximum of y over time
# (max), y_t = h_t but for the cells with an output map. dL/dz is known at
# the end only. Where y = h, the driver carries beside P_t the running
# A_t = sum_{tau <= t} d h_tau / d theta (mean) or, for each unit i, row i
# of d h / d theta at the step of its running maximum (max), the size of
# the h rows of the influence (n x W dense, W per unit), and at the end
# adds A_T^T (dL/dz) (/ T for the mean) to the gradient: exact. An output
# map mixes the units, so its row i of d y_t / d theta reaches every unit's
# influence columns and A would take O(n^2 r) numbers and operations a
# step; there the driver runs the sequence twice instead
# (``pooled_map_sequence``): forward to dL/dz, then with the influence and
# the now known dL/dy_t of every step. (``pool_output_influence`` and
# ``output_map_gradient`` keep the accumulator for a stack's LRU top, whose
# rows of d y / d theta the stack forms for its lower layers anyway.) The
# mean beside the last y (POOL_MEAN_LAST: the readout reads 2n numbers)
# folds the mean as above and takes the last part's dL/dy_T as a target at
# the last step would: from the last step's influence, or, in the two
# passes, added to that step's error.

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memset, memcpy

from ._blas cimport gemm_rm, gemv_rm_t
from ._blocks cimport block_columns
from ._cells cimport (
    ELMAN, DIAGONAL, GRU, LSTM, EGRU, ELSTM, LRU, CellType, _Diagonal,
    _Egru, _Elman, _Elstm, _Glru, _Gru, _Lru, _Lstm, cell_code, cell_columns,
    cell_forward,
    cell_gates, cell_immediate, cell_influence_columns, cell_jacobian,
    cell_output, cell_output_blocks, cell_output_influence,
    cell_output_influence_size, cell_output_vjp, cell_per_unit,
    cell_readout, cell_rows,
    cell_separate_bias, cell_state,
    cell_unit_jacobian, cell_vjp, cell_whole_product_without_target,
    copy_bias_gradient, direct, input_update, record_coefficients,
    record_size, row_coef, step_work_size, unit_row_gradient, RowGradient,
    Taking, _Gradient, _NoGradient, _Penalised, no_gradient,
)
from ._common cimport (
    InterruptCheck, POOL_LAST, POOL_MAX, POOL_MEAN, POOL_MEAN_LAST, Packed,
    UpdateRule, add_penalty, averaged_width, has_target, interrupt_check,
    interrupt_due, online_step, online_update, pool_step, pooled_width,
    readout_gradient, record_output, running_pooling, sequence, stopping,
    target_index,
)

# Numbers left unused at each end of a thread's scratch row (one cache line
# of float64), so that threads running side by side never write to the same
# cache line (false sharing halved the two-thread speed-up at n = 8).
cdef enum:
    PAD = 8


# Offsets of the parts of a thread's scratch row.
ctypedef struct Scratch:
    int J       # S x S
    int s       # S
    int rec     # a step's record
    int work    # step_work_size
    int gbar    # S
    int gprev   # S
    int g       # 2n: dL/dh, or dL/d(pooled h) (``pooled_width``)
    int zout    # o
    int dz      # o
    int pool    # 2n: the pooled h so far (``pool_step``)
    int err     # n: dL/dy_t in a pooled readout's second pass
    int grad    # R*q + o*width + o, width n or 2n (``pooled_width``)
    int size


cdef inline Scratch scratch_layout(int kind, int n, int m, int o) noexcept nogil:
    cdef Scratch at
    cdef int S = cell_state(kind, n)
    at.J = PAD
    at.s = at.J + S * S
    at.rec = at.s + S
    at.work = at.rec + record_size(kind, n, m)
    at.gbar = at.work + step_work_size(kind, n)
    at.gprev = at.gbar + S
    at.g = at.gprev + S
    at.zout = at.g + 2 * n
    at.dz = at.zout + o
    at.pool = at.dz + o
    at.err = at.pool + 2 * n
    at.grad = at.err + n
    at.size = (at.grad + cell_rows(kind, n) * cell_columns(kind, n, m)
               + 2 * o * n + o + PAD)
    return at


cdef inline Py_ssize_t influence_size(int kind, int n, int m,
                                      bint per_unit) noexcept nogil:
    """Influence numbers per sequence: ns blocks of R x q per unit, or two
    S x R*q buffers."""
    cdef Py_ssize_t W = cell_rows(kind, n) * cell_columns(kind, n, m)
    if per_unit:
        return cell_per_unit(kind) * W
    return 2 * cell_state(kind, n) * W


cdef inline Py_ssize_t pool_size(int kind, int n, int m,
                                 bint per_unit) noexcept nogil:
    """Numbers of the pooled readout's accumulator A per sequence (see the
    header): the h rows of the influence; none for a cell with an output
    map (``pooled_map_sequence``)."""
    cdef Py_ssize_t W = cell_rows(kind, n) * cell_columns(kind, n, m)
    if cell_output_influence_size(kind, n, m) > 0:
        return 0
    return W if per_unit else n * W


# -- the influence updates ---------------------------------------------------

cdef inline void _direct_columns(
    int kind, int n, const floating* rec, int m, const floating* P_old,
    floating* P_new, int W, int c0, int c1,
) noexcept nogil:
    """P_new[:, c0:c1] = D_t[:, n:] P_old[n:, c0:c1]: the state columns of
    J_t beyond h, which are diagonal in the units. Written for ns = 2 (the
    LSTM's c): each row of P_old is read once for both rows it feeds (with
    a pass per row written, the LSTM's minibatch kernel at n = 16 was about
    1.15x slower than before the cells were unified)."""
    cdef:
        int i, j
        floating d0, d1, p
        const floating* src
        floating* r0
        floating* r1
        const floating* coef = record_coefficients(kind, n, m, rec)
    for i in range(n):
        d0 = direct(kind, n, coef, 0, 1, i)
        d1 = direct(kind, n, coef, 1, 1, i)
        src = P_old + (n + i) * W
        r0 = P_new + i * W
        r1 = P_new + (n + i) * W
        for j in range(c0, c1):
            p = src[j]
            r0[j] = d0 * p
            r1[j] = d1 * p


cdef inline void pool_dense_influence(
    int pooling, int n, Py_ssize_t W, const floating* h,
    const floating* pool, const floating* P, floating* A, Py_ssize_t c0,
    Py_ssize_t c1,
) noexcept nogil:
    """Fold columns c0:c1 of a dense P_t (t >= 1) into the pooled readout's
    accumulator A (n x W, see the header): A += P_t[:n] (mean), or row i of
    P_t into A for each unit i at a new maximum of h (max). Call before
    ``pool_step`` moves ``pool``."""
    cdef Py_ssize_t j
    cdef int i
    cdef floating* a
    cdef const floating* p
    for i in range(n):
        a = A + i * W
        p = P + i * W
        if pooling == POOL_MEAN:
            for j in range(c0, c1):
                a[j] += p[j]
        elif h[i] > pool[i]:
            memcpy(a + c0, p + c0, (c1 - c0) * sizeof(floating))


cdef inline void influence_step(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, const floating* P_old, floating* P_new, bint first,
    bint dense, floating* J, const floating* g, floating* grad,
    int pooling, const floating* h, const floating* pool, floating* A,
) noexcept nogil:
    """P_new = J_t P_old + I_t (``first``: P_old = 0 and not read).

    When ``g`` is not NULL, also adds P_new[:n]^T g into ``grad`` (R*q),
    block by block. ``dense`` keeps the whole S x S Jacobian in the GEMM.
    When ``A`` is not NULL, folds each block of P_new into the pooled
    readout's accumulator while the block is in cache
    (``pool_dense_influence``): only A itself then comes from memory.
    """
    cdef:
        int S = cell_state(kind, n)
        int W = cell_rows(kind, n) * q
        bint split = cell_per_unit(kind) == 2 and not dense
        int K = S if dense else n
        int c0 = 0, c1, width
    if first:
        memset(P_new, 0, S * W * sizeof(floating))
        cell_immediate(kind, n, m, q, rec, P_new, W, 0, W)
        if g != NULL:
            gemv_rm_t(n, W, <floating> 1, P_new, W, g, <floating> 1, grad)
        return
    cell_jacobian(kind, n, m, q, theta, rec, K, J)
    # A pass over each block after the GEMM (a gradient, the pooled
    # accumulator) wants blocks that stay in cache.
    width = block_columns(S, n, W, g != NULL or A != NULL,
                          cell_whole_product_without_target(kind))
    while c0 < W:
        c1 = c0 + width
        if c1 > W:
            c1 = W
        if split:
            _direct_columns(kind, n, rec, m, P_old, P_new, W, c0, c1)
        gemm_rm(S, c1 - c0, K, <floating> 1, J, K, P_old + c0, W,
                <floating> (1 if split else 0), P_new + c0, W)
        cell_immediate(kind, n, m, q, rec, P_new, W, c0, c1)
        if g != NULL:
            gemv_rm_t(n, c1 - c0, <floating> 1, P_new + c0, W, g,
                      <floating> 1, grad + c0)
        if A != NULL:
            pool_dense_influence(pooling, n, W, h, pool, P_new, A, c0, c1)
        c0 = c1


cdef inline void _unit_rows(
    const CellType* cell, const Taking* how, int n, int m, int q,
    const floating* theta, const floating* rec, floating* P,
    const floating* gs, floating* grad, const floating* penalty,
    double weight,
) noexcept nogil:
    """``_unit_influence_step`` past the zeroing of P, taking the gradient
    as ``Taking`` says (``_NoGradient``: ``gs``, ``grad`` and ``penalty``
    are not read; ``_Gradient``: ``penalty`` is not)."""
    cdef:
        int kind = cell_code(cell)
        int ns = cell_per_unit(kind)
        int W = cell_rows(kind, n) * q
        int i, gate, rho
        floating Jd[4]
        const floating* coef = record_coefficients(kind, n, m, rec)
        RowGradient row = no_gradient()
    if Taking is not _NoGradient:
        row.weight = weight
        row.blocks = cell_output_blocks(kind)
        row.g1 = 0
    for i in range(n):
        cell_unit_jacobian(kind, n, m, q, theta, rec, i, Jd)
        if Taking is not _NoGradient:
            row.g0 = gs[i]
            if row.blocks > 1:
                row.g1 = gs[n + i]
        for gate in range(cell_gates(kind)):
            rho = gate * n + i
            if Taking is not _NoGradient:
                row.out = grad + rho * q
            if Taking is _Penalised:
                row.theta = theta + rho * q
                row.penalty = penalty + rho * q
            input_update(
                kind, n, m, q, rec, gate, i, ns, P + rho * q,
                P + W + rho * q if ns > 1 else NULL, Jd,
                row_coef(kind, n, coef, 0, gate, i),
                row_coef(kind, n, coef, 1, gate, i) if ns > 1 else 0, 0, q,
                how, row)


cdef inline void _unit_influence_step(
    const CellType* cell, int n, int m, int q, const floating* theta,
    const floating* rec, floating* P, bint first, const floating* gs,
    floating* grad, const floating* penalty, double weight,
) noexcept nogil:
    """The per-unit influence (see the header) of the cell ``CellType``, in
    place (``first``: P_{t-1} = 0; the buffer may hold anything, even NaN,
    and is not read).

    When ``gs`` (dL/ds_t, S numbers) is not NULL, also the gradient of each
    row rho = g*n + i, sum_sigma gs[sigma, i] P_t[sigma][rho] over the
    blocks the output reads (``cell_output_blocks``), at the columns that
    carry influence (``cell_influence_columns``), written into ``grad``
    (R x q, theta's layout) with the L2 penalty's weight * penalty * theta
    added unless ``penalty`` is NULL. Each number is taken as it is written
    (``RowGradient``), by a copy of the step for what it takes
    (``_unit_rows``); the other columns of ``grad`` (the LRU's output map)
    are left alone. (``unit_gradient`` adds the same sums to a gradient
    that accumulates over a sequence.)
    """
    cdef int kind = cell_code(cell)
    if first:
        memset(P, 0, cell_per_unit(kind) * cell_rows(kind, n) * q
               * sizeof(floating))
    if gs == NULL:
        _unit_rows(cell, <_NoGradient*> NULL, n, m, q, theta, rec, P, gs,
                   grad, penalty, weight)
    elif penalty == NULL:
        _unit_rows(cell, <_Gradient*> NULL, n, m, q, theta, rec, P, gs, grad,
                   penalty, weight)
    else:
        _unit_rows(cell, <_Penalised*> NULL, n, m, q, theta, rec, P, gs,
                   grad, penalty, weight)


cdef inline void unit_influence_step(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, floating* P, bint first, const floating* gs,
    floating* grad, const floating* penalty, double weight,
) noexcept nogil:
    """See ``_unit_influence_step``: its copy for the cell of code
    ``kind`` (a type, ``CellType``, so that each cell's copy has its branches
    resolved by the compiler: an EGRU stream of 1,024 units took 1.4x as
    long in a copy for any cell). The entry points refuse codes of no
    cell, so the last branch is the gated LRU's."""
    if kind == ELMAN:
        _unit_influence_step(<_Elman*> NULL, n, m, q, theta, rec, P, first,
                             gs, grad, penalty, weight)
    elif kind == DIAGONAL:
        _unit_influence_step(<_Diagonal*> NULL, n, m, q, theta, rec, P,
                             first, gs, grad, penalty, weight)
    elif kind == GRU:
        _unit_influence_step(<_Gru*> NULL, n, m, q, theta, rec, P, first, gs,
                             grad, penalty, weight)
    elif kind == LSTM:
        _unit_influence_step(<_Lstm*> NULL, n, m, q, theta, rec, P, first,
                             gs, grad, penalty, weight)
    elif kind == EGRU:
        _unit_influence_step(<_Egru*> NULL, n, m, q, theta, rec, P, first,
                             gs, grad, penalty, weight)
    elif kind == ELSTM:
        _unit_influence_step(<_Elstm*> NULL, n, m, q, theta, rec, P, first,
                             gs, grad, penalty, weight)
    elif kind == LRU:
        _unit_influence_step(<_Lru*> NULL, n, m, q, theta, rec, P, first, gs,
                             grad, penalty, weight)
    else:
        _unit_influence_step(<_Glru*> NULL, n, m, q, theta, rec, P, first,
                             gs, grad, penalty, weight)


cdef inline void h_block_gradient(
    int n, int R, int q, const floating* P, const floating* g, floating* grad,
) noexcept nogil:
    """grad[rho] += g[unit of rho] * P[rho] over the R rows of an h block
    (the pooled influence of the cells whose y is h)."""
    cdef int rho, j, i = 0
    cdef floating gk
    cdef const floating* p
    cdef floating* out
    for rho in range(R):
        gk = g[i]
        i = i + 1 if i + 1 < n else 0
        p = P + rho * q
        out = grad + rho * q
        for j in range(q):
            out[j] += gk * p[j]


cdef inline void unit_gradient(
    int kind, int n, int m, int q, const floating* P, const floating* gs,
    floating* grad,
) noexcept nogil:
    """grad[rho] += sum_sigma gs[(sigma, unit of rho)] P[sigma][rho] over
    the state blocks the output reads (``cell_output_blocks``: h alone for
    every cell but the LRU) and the columns that carry influence
    (``unit_row_gradient``): the gradient of ``_unit_influence_step``,
    added to one that accumulates over a sequence (the minibatch
    driver)."""
    cdef int R = cell_rows(kind, n)
    cdef int blocks = cell_output_blocks(kind)
    cdef int width = cell_influence_columns(kind, n, m)
    cdef int rho, j, i = 0
    cdef floating g0, g1 = 0
    cdef const floating* p0
    cdef const floating* p1
    cdef floating* out
    for rho in range(R):
        g0 = gs[i]
        p0 = P + rho * q
        # One block: p1 = p0, numbers the sum leaves alone.
        p1 = p0
        if blocks > 1:
            g1 = gs[n + i]
            p1 = P + R * q + rho * q
        i = i + 1 if i + 1 < n else 0
        out = grad + rho * q
        for j in range(width):
            out[j] = unit_row_gradient(out[j], g0, p0[j], g1, p1[j], blocks)


cdef inline void second_step(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, const floating* U, floating* P_new, floating* J,
    const floating* g, floating* grad, floating* gbar, floating* gprev,
    floating* work,
) noexcept nogil:
    """P_new = J_t P_1 + I_t from P_1 = I_1 in the per-unit layout ``U``
    (as ``unit_influence_step`` leaves it from the zero state), without a
    GEMM: column block rho of P_1 is nonzero in unit i's state rows only,
    so P_new[:, rho] = sum_sigma J_t[:, (sigma, i)] U[sigma][rho] + I_t.
    With ``g``, grad += P_new[:n]^T g in closed form: (g^T J_t) P_1 +
    g^T I_t (``cell_vjp``)."""
    cdef:
        int S = cell_state(kind, n)
        int ns = cell_per_unit(kind)
        int R = cell_rows(kind, n)
        int W = R * q
        int r, rho, i, s2, j
        floating c
        floating* row
        const floating* src
    cell_jacobian(kind, n, m, q, theta, rec, S, J)
    for r in range(S):
        i = -1
        for rho in range(R):
            i = i + 1 if i + 1 < n else 0
            row = P_new + r * W + rho * q
            c = J[r * S + i]
            src = U + rho * q
            for j in range(q):
                row[j] = c * src[j]
            for s2 in range(1, ns):
                c = J[r * S + s2 * n + i]
                src = U + s2 * W + rho * q
                for j in range(q):
                    row[j] += c * src[j]
    cell_immediate(kind, n, m, q, rec, P_new, W, 0, W)
    if g == NULL:
        return
    memset(gbar, 0, S * sizeof(floating))
    memcpy(gbar, g, n * sizeof(floating))
    cell_vjp(kind, n, m, q, theta, rec, gbar, gprev, grad, work)
    i = -1
    for rho in range(R):
        i = i + 1 if i + 1 < n else 0
        row = grad + rho * q
        for s2 in range(ns):
            c = gprev[s2 * n + i]
            src = U + s2 * W + rho * q
            for j in range(q):
                row[j] += c * src[j]


# -- pooled readouts ---------------------------------------------------------

cdef inline void spread_unit_influence(
    int kind, int n, int q, const floating* U, floating* A,
) noexcept nogil:
    """A (n x W, dense) = the h rows of the per-unit influence ``U``: unit
    i's row holds the entries of theta's rows of unit i, zeros elsewhere."""
    cdef:
        int G = cell_gates(kind)
        Py_ssize_t W = cell_rows(kind, n) * q
        int i, gate
        Py_ssize_t at
    memset(A, 0, n * W * sizeof(floating))
    for gate in range(G):
        for i in range(n):
            at = (gate * n + i) * q
            memcpy(A + i * W + at, U + at, q * sizeof(floating))


cdef inline void pool_unit_influence(
    int kind, int pooling, int n, int q, Py_ssize_t t, const floating* h,
    const floating* pool, const floating* U, floating* A, bint dense,
) noexcept nogil:
    """Fold the h block of the per-unit influence ``U`` (step t) into A:
    added (mean) or, for each unit at a new maximum of h, copied (max).
    ``dense``: A is n x W and U is the first step's (t = 0), whose entries
    A takes in unit i's row (``spread_unit_influence``). Call before
    ``pool_step`` moves ``pool``."""
    cdef:
        int G = cell_gates(kind)
        Py_ssize_t W = cell_rows(kind, n) * q
        int i, gate, j
        Py_ssize_t at
    if dense:
        spread_unit_influence(kind, n, q, U, A)
        return
    if pooling == POOL_MEAN and t > 0:
        for j in range(W):
            A[j] += U[j]
        return
    for i in range(n):
        if t == 0 or h[i] > pool[i]:
            for gate in range(G):
                at = (gate * n + i) * q
                memcpy(A + at, U + at, q * sizeof(floating))


cdef inline void pool_output_influence(
    int kind, int pooling, int n, int m, int q, Py_ssize_t t,
    const floating* theta, const floating* rec, const floating* y,
    const floating* pool, const floating* U, floating* A,
) noexcept nogil:
    """Fold step t's d y_t / d theta of a cell with an output map into A
    (n rows of ``cell_output_influence_size``), from the per-unit
    influence ``U``: added (mean) or, for each unit at a new maximum of y,
    written (max). Call before ``pool_step`` moves ``pool``."""
    cdef Py_ssize_t row = cell_output_influence_size(kind, n, m)
    cdef int i
    for i in range(n):
        if pooling == POOL_MEAN:
            cell_output_influence(kind, n, m, q, theta, rec, U, i,
                                  A + i * row, t > 0)
        elif t == 0 or y[i] > pool[i]:
            cell_output_influence(kind, n, m, q, theta, rec, U, i,
                                  A + i * row, False)


cdef inline void output_map_gradient(
    int n, int r, int q, const floating* A, const floating* g,
    floating* grad,
) noexcept nogil:
    """grad += A^T g for the accumulator of ``pool_output_influence``:
    row j's first r columns take sum_i g[i] A[i][j r:(j + 1) r], row i's
    map columns g[i] A[i][n r:]."""
    cdef Py_ssize_t row = <Py_ssize_t> n * r + q - r
    cdef int i, j, c
    cdef floating gi
    cdef const floating* a
    cdef floating* out
    for i in range(n):
        gi = g[i]
        for j in range(n):
            a = A + i * row + j * r
            out = grad + j * q
            for c in range(r):
                out[c] += gi * a[c]
        a = A + i * row + n * r
        out = grad + i * q + r
        for c in range(q - r):
            out[c] += gi * a[c]


cdef inline double pooled_readout(
    int pooling, int o, Py_ssize_t length, const floating* y, double weight,
    int loss_kind, int n, const floating* W_out, const floating* b_out,
    floating* pool, floating* grad_out, floating* g, floating* zout,
    floating* dz,
) noexcept nogil:
    """Readout of the pooled y (``pool``: the sum, made the mean here, or
    the maximum; for POOL_MEAN_LAST the sum, then the last y, both divided
    by T here), its loss, the readout's gradient into ``grad_out`` =
    [W_out | b_out], and g = dL/d(pooled y) (``pooled_width`` numbers; the
    parts divided by T times 1/T: each step's share); for one layer, a
    stack's top and full BPTT."""
    cdef int i
    cdef int averaged = averaged_width(pooling, n)
    cdef floating scale = 1
    cdef double loss
    if averaged:
        scale = <floating> (1.0 / length)
        for i in range(averaged):
            pool[i] *= scale
    loss = readout_gradient(y, o, pooled_width(pooling, n), weight,
                            loss_kind, W_out, b_out, pool, grad_out, g, zout,
                            dz)
    for i in range(averaged):
        g[i] *= scale
    return loss


cdef inline double pooled_gradient(
    const Packed* data, Py_ssize_t length, const floating* y, double weight,
    int loss_kind, int n, int R, int q, const floating* W_out,
    const floating* b_out, floating* pool, const floating* A, bint per_unit,
    floating* grad, floating* g, floating* zout, floating* dz,
) noexcept nogil:
    """Readout of the pooled h (``pool`` holds the sum, mean, or maximum),
    its loss, and its gradient: the readout's, and A^T dL/dz (/ T for the
    mean) into ``grad`` = [theta | W_out | b_out]. A cell with an output
    map pools in ``pooled_map_sequence`` instead. For POOL_MEAN_LAST, A is
    the mean's and ``g[n:]`` (dL/d of the last h) is left to the caller,
    which has the last step's influence."""
    cdef double loss = pooled_readout(data.pooling, data.o, length, y,
                                      weight, loss_kind, n, W_out, b_out,
                                      pool, grad + R * q, g, zout, dz)
    if per_unit:
        h_block_gradient(n, R, q, A, g, grad)
    else:
        gemv_rm_t(n, R * q, <floating> 1, A, R * q, g, <floating> 1, grad)
    return loss


cdef inline const floating* pooled_step_error(
    int pooling, int n, Py_ssize_t t, Py_ssize_t length, const floating* y,
    const floating* pool, floating* g, floating* err,
) noexcept nogil:
    """dL/dy_t of a pooled readout's second pass at step t of ``length``,
    from g (the pooled gradient, ``pooled_readout``'s): g itself at every
    step (mean), and for the mean beside the last y, g[:n] + g[n:] (in
    ``err``) at the last step; for the max, ``err`` with g[i] at the first
    step where y_t[i] equals unit i's maximum (the step whose row the
    running maximum keeps: it moves on a strict rise only), zero
    elsewhere, or NULL where no unit peaks. The max clears g[i] once
    used."""
    cdef int i
    cdef bint any_error = False
    if pooling == POOL_MEAN_LAST and t == length - 1:
        for i in range(n):
            err[i] = g[i] + g[n + i]
        return err
    if running_pooling(pooling) == POOL_MEAN:
        return g
    for i in range(n):
        err[i] = 0
        if g[i] != 0 and y[i] == pool[i]:
            err[i] = g[i]
            g[i] = 0
            any_error = True
    return err if any_error else NULL


# -- the drivers -------------------------------------------------------------

cdef inline double pooled_map_sequence(
    int kind, int activation, int loss_kind, const Packed* data,
    Py_ssize_t b, int n, int q, const floating* theta,
    const floating* bias_hh, const floating* W_out, const floating* b_out,
    floating* P_work, floating* scratch, InterruptCheck* check, bint* stop,
) noexcept nogil:
    """``rtrl_sequence`` for a pooled readout of a cell with an output map
    (the LRUs): exact RTRL in two passes over sequence b.

    The target reads z = W_out pool(y_1, ..., y_T) + b_out, so once z is
    known, so is every step's dL/dy_t = e_t: the first pass runs the
    sequence forward to the pooled y and g = dL/dpool (``pooled_readout``),
    giving e_t = g / T (mean) or, for the maximum, e_t[i] = g[i] at the
    step whose y_t[i] is unit i's maximum, zero elsewhere. The second pass
    runs it again with the per-unit influence P_t and adds

        sum_t e_t^T d y_t / d theta
            = sum_t [(d y_t / d s_t)^T e_t]^T P_t + e_t^T (d y_t / d theta)|_s

    as a target at every step would (``cell_output_vjp``, then
    ``unit_gradient``): O(n^2 + n r) a step, the forward's order, where
    forming the n rows of d y_t / d theta (the map mixes the units: row i
    reaches every unit's r influence columns) would cost O(n^2 r) numbers
    and operations. The maximum takes the product only at the steps some
    unit peaks. Memory stays the influence's; each step is computed twice,
    in the same operations, so y_t is the same in both passes."""
    cdef:
        int m = data.m
        int o = data.o
        int R = cell_rows(kind, n)
        int S = cell_state(kind, n)
        Scratch at = scratch_layout(kind, n, m, o)
        Py_ssize_t t, length = data.lengths[b]
        int pass_
        double loss = 0.0
        const floating* X
        const floating* Y
        const floating* weights
        floating* s = scratch + at.s
        floating* rec = scratch + at.rec
        floating* work = scratch + at.work
        floating* g = scratch + at.g
        floating* grad = scratch + at.grad
        floating* pool = scratch + at.pool
        floating* err = scratch + at.err
        const floating* e
        const floating* y
    if length == 0:
        return 0.0
    sequence(data, b, &X, &Y, &weights)
    for pass_ in range(2):
        memset(s, 0, S * sizeof(floating))
        for t in range(length):
            if stopping(check, stop):
                return loss
            cell_forward(kind, activation, n, m, q, theta, bias_hh,
                         X + t * m, s, rec, work, t > 0)
            y = cell_output(kind, n, m, s, rec)
            if pass_ == 0:
                pool_step(data.pooling, n, t, y, pool)
                continue
            unit_influence_step(kind, n, m, q, theta, rec, P_work, t == 0,
                                NULL, NULL, NULL, 0)
            e = pooled_step_error(data.pooling, n, t, length, y, pool, g,
                                  err)
            if e != NULL:
                cell_output_vjp(kind, n, m, q, theta, rec, e,
                                scratch + at.gbar, False, grad, work)
                unit_gradient(kind, n, m, q, P_work, scratch + at.gbar, grad)
        if pass_ == 0:
            loss = pooled_readout(
                data.pooling, o, length, Y, data.weight_scale * weights[0],
                loss_kind, n, W_out, b_out, pool, grad + R * q, g,
                scratch + at.zout, scratch + at.dz)
    return loss


cdef inline double rtrl_sequence(
    int kind, int activation, int loss_kind, const Packed* data,
    Py_ssize_t b, int n, int q, const floating* theta,
    const floating* bias_hh, const floating* W_out, const floating* b_out,
    bint per_unit, bint dense, floating* P_work, floating* scratch,
    InterruptCheck* check, bint* stop,
) noexcept nogil:
    """Run sequence b from the zero state; add its gradient, laid out
    [theta (R*q) | W_out (o*width) | b_out (o)] (width: ``pooled_width``),
    into the thread's ``scratch``
    (zeroed by the caller). ``P_work``: ``influence_size`` numbers, then
    ``pool_size`` more for a pooled readout.

    Stops early once ``stop[0]`` is set, which it does itself when
    ``check`` is not NULL (the main thread's) and a signal handler raised
    (Ctrl-C); the results are then incomplete and dropped by the caller
    (``_interrupt.raise_pending_signal``)."""
    cdef:
        int m = data.m
        int o = data.o
        int R = cell_rows(kind, n)
        int S = cell_state(kind, n)
        int W = R * q
        int r = cell_influence_columns(kind, n, m)
        Scratch at = scratch_layout(kind, n, m, o)
        Py_ssize_t t, k
        double loss = 0.0
        bint target, contract
        bint pooled = data.pooling != POOL_LAST
        # What A accumulates: the mean, for the mean beside the last h.
        int running = running_pooling(data.pooling)
        const floating* X
        const floating* Y
        const floating* weights
        floating* s = scratch + at.s
        floating* rec = scratch + at.rec
        floating* work = scratch + at.work
        floating* g = scratch + at.g
        floating* grad = scratch + at.grad
        floating* pool = scratch + at.pool
        floating* A = P_work + influence_size(kind, n, m, per_unit)
        floating* P_new
        const floating* y
    if pooled and r < q:
        return pooled_map_sequence(kind, activation, loss_kind, data, b, n, q,
                                   theta, bias_hh, W_out, b_out, P_work,
                                   scratch, check, stop)
    sequence(data, b, &X, &Y, &weights)
    memset(s, 0, S * sizeof(floating))
    for t in range(data.lengths[b]):
        if stopping(check, stop):
            break
        cell_forward(kind, activation, n, m, q, theta, bias_hh, X + t * m, s,
                     rec, work, t > 0)
        y = cell_output(kind, n, m, s, rec)
        # A pooled readout's dL/dz comes at the end; otherwise the readout
        # needs only the new state: g = dL/dh_t is ready before the
        # influence update, which contracts P_t with it.
        target = has_target(data, b, t)
        contract = target and not pooled
        if contract:
            k = target_index(data, t)
            loss += cell_readout(
                kind, n, m, q, theta, s, rec, Y + k * o, o,
                data.weight_scale * weights[k], loss_kind, W_out, b_out,
                grad + W, grad, g, scratch + at.gbar, scratch + at.zout,
                scratch + at.dz, work)
        if per_unit or t == 0:
            unit_influence_step(kind, n, m, q, theta, rec, P_work, t == 0,
                                NULL, NULL, NULL, 0)
            if contract:
                unit_gradient(kind, n, m, q, P_work, scratch + at.gbar, grad)
            if pooled:
                pool_unit_influence(kind, running, n, q, t, y, pool,
                                    P_work, A, not per_unit)
        else:
            P_new = P_work + (t & 1) * S * W
            if t == 1:
                second_step(kind, n, m, q, theta, rec, P_work, P_new,
                            scratch + at.J, g if contract else NULL, grad,
                            scratch + at.gbar, scratch + at.gprev, work)
                if pooled:
                    pool_dense_influence(running, n, W, s, pool, P_new,
                                         A, 0, W)
            else:
                influence_step(kind, n, m, q, theta, rec,
                               P_work + (1 - (t & 1)) * S * W, P_new, False,
                               dense, scratch + at.J,
                               g if contract else NULL, grad, running, s,
                               pool, A if pooled else NULL)
        if not pooled:
            continue
        pool_step(data.pooling, n, t, y, pool)
        if target:
            k = target_index(data, t)
            loss += pooled_gradient(
                data, t + 1, Y + k * o, data.weight_scale * weights[k],
                loss_kind, n, R, q, W_out, b_out, pool, A, per_unit, grad, g,
                scratch + at.zout, scratch + at.dz)
            if data.pooling == POOL_MEAN_LAST:
                # The last h's part, as the last step's target would take
                # it: P_t^T dL/dh_t.
                if per_unit or t == 0:
                    cell_output_vjp(kind, n, m, q, theta, rec, g + n,
                                    scratch + at.gbar, False, NULL, work)
                    unit_gradient(kind, n, m, q, P_work, scratch + at.gbar,
                                  grad)
                else:
                    gemv_rm_t(n, W, <floating> 1, P_work + (t & 1) * S * W, W,
                              g + n, <floating> 1, grad)
    return loss


cdef inline void run_minibatch(
    int kind, int activation, int loss_kind, const Packed* data, int n,
    int q, const floating* theta, const floating* bias_hh,
    const floating* W_out, const floating* b_out, bint per_unit, bint dense,
    floating* grad_rows, Py_ssize_t grad_stride, floating* influence,
    Py_ssize_t influence_stride, floating* scratch, Py_ssize_t scratch_stride,
    int n_threads, double* loss_rows,
) noexcept nogil:
    """Every sequence of ``data``, one gradient row and loss each (see the
    header); one influence and scratch row per thread. A signal handler
    that raises (Ctrl-C) ends the call early with incomplete rows
    (``rtrl_sequence``)."""
    cdef:
        Scratch at = scratch_layout(kind, n, data.m, data.o)
        Py_ssize_t size = (cell_rows(kind, n) * q
                           + data.o * pooled_width(data.pooling, n) + data.o)
        Py_ssize_t b
        int tid = 0
        floating* mine
        InterruptCheck check = interrupt_check()
        bint stopped = False
        bint* stop = &stopped   # shared by the threads
    if n_threads <= 1:
        for b in range(data.count):
            memset(scratch + at.grad, 0, size * sizeof(floating))
            loss_rows[b] = rtrl_sequence(
                kind, activation, loss_kind, data, b, n, q, theta, bias_hh,
                W_out, b_out, per_unit, dense, influence, scratch, &check,
                stop)
            memcpy(grad_rows + b * grad_stride, scratch + at.grad,
                   size * sizeof(floating))
        return
    for b in prange(data.count, schedule="dynamic", num_threads=n_threads):
        tid = threadid()
        mine = scratch + tid * scratch_stride
        memset(mine + at.grad, 0, size * sizeof(floating))
        # Only the main thread (thread 0) runs signal handlers.
        loss_rows[b] = rtrl_sequence(
            kind, activation, loss_kind, data, b, n, q, theta, bias_hh,
            W_out, b_out, per_unit, dense, influence + tid * influence_stride,
            mine, &check if tid == 0 else NULL, stop)
        memcpy(grad_rows + b * grad_stride, mine + at.grad,
               size * sizeof(floating))


cdef inline void run_online(
    int kind, int activation, int loss_kind, const Packed* data,
    bint reset_state, floating* params, int n, UpdateRule* rule,
    floating* state, floating* influence, int* parity, bint per_unit,
    floating* grad, floating* scratch, double* loss_rows, floating* outputs,
) noexcept nogil:
    """Real-time RTRL over the sequences of ``data`` in order (see the
    header), from the zero state each when ``reset_state``, else carrying
    ``state`` and the influence on. ``params`` and ``grad`` are the cell's
    flat vector ([theta | bias_hh (cells that keep it apart) | W_out |
    b_out]); ``influence`` is the per-unit buffer, or the two dense buffers,
    ``influence + parity * S*W`` the current one (``parity`` in and out).
    With ``rule.learn`` false, the state and influence advance as they
    would, but no gradient is taken and nothing is updated. ``outputs``:
    see ``output_rows`` (NULL: not recorded). A signal handler that raises
    (Ctrl-C) stops the loop between two steps (``_interrupt.pyx``);
    ``loss_rows`` then covers the steps run."""
    cdef:
        int m = data.m
        int o = data.o
        int R = cell_rows(kind, n)
        int S = cell_state(kind, n)
        int q = cell_columns(kind, n, m)
        int W = R * q
        int rest = W + (n if cell_separate_bias(kind) else 0)
        Py_ssize_t size = rest + o * n + o
        Scratch at = scratch_layout(kind, n, m, o)
        Py_ssize_t b, t, k
        double weight = 0.0, loss
        bint first, learn_now
        const floating* X
        const floating* Y
        const floating* weights
        floating* theta = params
        floating* bias_hh = params + W
        floating* rec = scratch + at.rec
        floating* work = scratch + at.work
        floating* g = scratch + at.g
        floating* P_old
        floating* P_new
        InterruptCheck check = interrupt_check()
        bint stopped = False
        # The per-unit step writes theta's gradient (``unit_influence_step``)
        # where it carries influence: all of theta but the LRU's output
        # map, to which the readout adds. With it the L2 penalty, but for
        # the cells that keep bias_hh apart, whose gradient is b_ih's
        # without the penalty (``copy_bias_gradient``).
        bint whole = cell_influence_columns(kind, n, m) == q
        Py_ssize_t cleared = rest if per_unit and whole else 0
        bint fused = per_unit and whole and not cell_separate_bias(kind)
        const floating* penalty = <const floating*> rule.penalty
    for b in range(data.count):
        sequence(data, b, &X, &Y, &weights)
        loss = 0.0
        if reset_state:
            memset(state, 0, S * sizeof(floating))
        for t in range(data.lengths[b]):
            if interrupt_due(&check):
                stopped = True
                break
            first = reset_state and t == 0
            cell_forward(kind, activation, n, m, q, theta, bias_hh, X + t * m,
                         state, rec, work, False)
            learn_now = False
            if has_target(data, b, t):
                k = target_index(data, t)
                weight = weights[k]
                memset(grad + cleared, 0, (size - cleared) * sizeof(floating))
                loss += cell_readout(
                    kind, n, m, q, theta, state, rec, Y + k * o, o, weight,
                    loss_kind, params + rest, params + rest + o * n,
                    grad + rest, grad, g, scratch + at.gbar,
                    scratch + at.zout, scratch + at.dz, work)
                record_output(outputs, data, b, k, scratch + at.zout)
                learn_now = rule.learn
            if per_unit:
                unit_influence_step(
                    kind, n, m, q, theta, rec, influence, first,
                    scratch + at.gbar if learn_now else NULL, grad,
                    penalty if fused else NULL, weight)
            else:
                P_old = influence + parity[0] * S * W
                P_new = influence + (1 - parity[0]) * S * W
                parity[0] = 1 - parity[0]
                influence_step(kind, n, m, q, theta, rec, P_old, P_new, first,
                               False, scratch + at.J,
                               g if learn_now else NULL, grad, POOL_LAST,
                               NULL, NULL, NULL)
            if not learn_now:
                continue
            copy_bias_gradient(kind, n, q, grad, grad + W)
            if fused:
                add_penalty(grad + rest, params + rest, penalty + rest,
                            weight, size - rest)
                online_step(rule, params, grad, size)
            else:
                online_update(rule, params, grad, size, weight)
        loss_rows[b] = loss
        if stopped:
            break


cdef inline void run_forward(
    int kind, int activation, int n, int m, const floating* X,
    const Py_ssize_t* x_start, const Py_ssize_t* lengths, Py_ssize_t count,
    const floating* theta, const floating* bias_hh, bint every_step,
    floating* H, const floating* s0, floating* scratch, int pooling,
) noexcept nogil:
    """y (``cell_output``: h for every cell but the LRU) after every step
    (rows of H laid out like those of X) or, pooled over each sequence
    (POOL_*: its last y, mean or maximum, or the mean beside the last y),
    in row b (``pooled_width`` numbers), each sequence from the state
    ``s0`` (a sequence of no steps: s0's first n numbers, for every part).
    ``scratch``: ``forward_scratch_size`` numbers."""
    cdef:
        int S = cell_state(kind, n)
        int q = cell_columns(kind, n, m)
        int width = pooled_width(pooling, n) if not every_step else n
        int i
        Py_ssize_t b, t
        floating* s = scratch
        floating* rec = s + S
        floating* work = rec + record_size(kind, n, m)
        bint pooled = pooling != POOL_LAST and not every_step
    for b in range(count):
        memcpy(s, s0, S * sizeof(floating))
        for t in range(lengths[b]):
            cell_forward(kind, activation, n, m, q, theta, bias_hh,
                         X + (x_start[b] + t) * m, s, rec, work, t > 0)
            if every_step:
                memcpy(H + (x_start[b] + t) * n, cell_output(kind, n, m, s, rec),
                       n * sizeof(floating))
            elif pooled:
                pool_step(pooling, n, t, cell_output(kind, n, m, s, rec),
                          H + b * width)
        if not pooled and not every_step and lengths[b] > 0:
            memcpy(H + b * n, cell_output(kind, n, m, s, rec),
                   n * sizeof(floating))
        elif not every_step and lengths[b] == 0:
            memcpy(H + b * width, s, n * sizeof(floating))
            if width > n:
                memcpy(H + b * width + n, s, n * sizeof(floating))
        elif pooled:
            for i in range(averaged_width(pooling, n)):
                H[b * width + i] /= lengths[b]


cdef inline int forward_scratch_size(int kind, int n, int m) noexcept nogil:
    return cell_state(kind, n) + record_size(kind, n, m) + step_work_size(kind, n)
