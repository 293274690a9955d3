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
#   P_t[sigma][rho] to row rho of the gradient (``unit_gradient``).
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
# changing weights, an update after every step with a target.

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memset, memcpy

from ._blas cimport gemm_rm, gemv_rm_t
from ._blocks cimport block_columns
from ._cells cimport (
    ELMAN, DIAGONAL, GRU, LSTM, EGRU, ELSTM, LRU, cell_columns, cell_forward,
    cell_gates, cell_immediate, cell_influence_columns, cell_jacobian,
    cell_output, cell_output_blocks, cell_per_unit, cell_readout, cell_rows,
    cell_separate_bias, cell_state,
    cell_unit_jacobian, cell_vjp, cell_whole_product_without_target,
    copy_bias_gradient, direct, input_update, record_coefficients,
    record_size, row_coef, step_work_size,
)
from ._common cimport (
    InterruptCheck, Packed, UpdateRule, has_target, interrupt_check,
    interrupt_due, online_update, record_output, sequence,
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
    int g       # n
    int zout    # o
    int dz      # o
    int grad    # R*q + o*n + o
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
    at.zout = at.g + n
    at.dz = at.zout + o
    at.grad = at.dz + o
    at.size = (at.grad + cell_rows(kind, n) * cell_columns(kind, n, m)
               + o * n + o + PAD)
    return at


cdef inline Py_ssize_t influence_size(int kind, int n, int m,
                                      bint per_unit) noexcept nogil:
    """Influence numbers per sequence: ns blocks of R x q per unit, or two
    S x R*q buffers."""
    cdef Py_ssize_t W = cell_rows(kind, n) * cell_columns(kind, n, m)
    if per_unit:
        return cell_per_unit(kind) * W
    return 2 * cell_state(kind, n) * W


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


cdef inline void influence_step(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, const floating* P_old, floating* P_new, bint first,
    bint dense, floating* J, const floating* g, floating* grad,
) noexcept nogil:
    """P_new = J_t P_old + I_t (``first``: P_old = 0 and not read).

    When ``g`` is not NULL, also adds P_new[:n]^T g into ``grad`` (R*q),
    block by block. ``dense`` keeps the whole S x S Jacobian in the GEMM.
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
    width = block_columns(S, n, W, g != NULL,
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
        c0 = c1


cdef inline void _unit_influence_step(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, floating* P, bint first,
) noexcept nogil:
    """The per-unit influence (see the header), in place (``first``:
    P_{t-1} = 0; the buffer may hold anything, even NaN, and is not
    read)."""
    cdef:
        int ns = cell_per_unit(kind)
        int W = cell_rows(kind, n) * q
        int i, gate, rho
        floating Jd[4]
        const floating* coef = record_coefficients(kind, n, m, rec)
    if first:
        memset(P, 0, ns * W * sizeof(floating))
    for i in range(n):
        cell_unit_jacobian(kind, n, m, q, theta, rec, i, Jd)
        for gate in range(cell_gates(kind)):
            rho = gate * n + i
            input_update(
                kind, n, m, q, rec, gate, i, ns, P + rho * q,
                P + W + rho * q if ns > 1 else NULL, Jd,
                row_coef(kind, n, coef, 0, gate, i),
                row_coef(kind, n, coef, 1, gate, i) if ns > 1 else 0, 0, q)


cdef inline void unit_influence_step(
    int kind, int n, int m, int q, const floating* theta,
    const floating* rec, floating* P, bint first,
) noexcept nogil:
    """See ``_unit_influence_step``; called with the cell as a constant, so that each cell
    gets a copy with its branches resolved by the compiler. The entry
    points refuse codes of no cell, so the last branch is the LSTM's."""
    if kind == ELMAN:
        _unit_influence_step(ELMAN, n, m, q, theta, rec, P, first)
    elif kind == DIAGONAL:
        _unit_influence_step(DIAGONAL, n, m, q, theta, rec, P, first)
    elif kind == GRU:
        _unit_influence_step(GRU, n, m, q, theta, rec, P, first)
    elif kind == LSTM:
        _unit_influence_step(LSTM, n, m, q, theta, rec, P, first)
    elif kind == EGRU:
        _unit_influence_step(EGRU, n, m, q, theta, rec, P, first)
    elif kind == ELSTM:
        _unit_influence_step(ELSTM, n, m, q, theta, rec, P, first)
    elif kind == LRU:
        _unit_influence_step(LRU, n, m, q, theta, rec, P, first)
    else:
        _unit_influence_step(kind, n, m, q, theta, rec, P, first)


cdef inline void unit_gradient(
    int kind, int n, int m, int q, const floating* P, const floating* gs,
    floating* grad,
) noexcept nogil:
    """grad[rho] += sum_sigma gs[(sigma, unit of rho)] P[sigma][rho] over
    the state blocks the output reads (``cell_output_blocks``: h alone for
    every cell but the LRU) and the columns that carry influence."""
    cdef int R = cell_rows(kind, n)
    cdef int width = cell_influence_columns(kind, n, m)
    cdef int rho, j, sigma, i
    cdef floating gk
    cdef const floating* p
    cdef floating* out
    for sigma in range(cell_output_blocks(kind)):
        i = 0
        for rho in range(R):
            gk = gs[sigma * n + i]
            i = i + 1 if i + 1 < n else 0
            p = P + sigma * R * q + rho * q
            out = grad + rho * q
            for j in range(width):
                out[j] += gk * p[j]


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


# -- the drivers -------------------------------------------------------------

cdef inline double rtrl_sequence(
    int kind, int activation, int loss_kind, const Packed* data,
    Py_ssize_t b, int n, int q, const floating* theta,
    const floating* bias_hh, const floating* W_out, const floating* b_out,
    bint per_unit, bint dense, floating* P_work, floating* scratch,
    InterruptCheck* check, bint* stop,
) noexcept nogil:
    """Run sequence b from the zero state; add its gradient, laid out
    [theta (R*q) | W_out (o*n) | b_out (o)], into the thread's ``scratch``
    (zeroed by the caller). ``P_work``: ``influence_size`` numbers.

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
        Scratch at = scratch_layout(kind, n, m, o)
        Py_ssize_t t, k
        double loss = 0.0
        bint target
        const floating* X
        const floating* Y
        const floating* weights
        floating* s = scratch + at.s
        floating* rec = scratch + at.rec
        floating* work = scratch + at.work
        floating* g = scratch + at.g
        floating* grad = scratch + at.grad
        floating* P_new
    sequence(data, b, &X, &Y, &weights)
    memset(s, 0, S * sizeof(floating))
    for t in range(data.lengths[b]):
        if stop[0]:
            break
        if check != NULL and interrupt_due(check):
            stop[0] = True
            break
        cell_forward(kind, activation, n, m, q, theta, bias_hh, X + t * m, s,
                     rec, work)
        # The readout needs only the new state: g = dL/dh_t is ready before
        # the influence update, which contracts P_t with it.
        target = has_target(data, b, t)
        if target:
            k = target_index(data, t)
            loss += cell_readout(
                kind, n, m, q, theta, s, rec, Y + k * o, o,
                data.weight_scale * weights[k], loss_kind, W_out, b_out,
                grad + W, grad, g, scratch + at.gbar, scratch + at.zout,
                scratch + at.dz, work)
        if per_unit or t == 0:
            unit_influence_step(kind, n, m, q, theta, rec, P_work, t == 0)
            if target:
                unit_gradient(kind, n, m, q, P_work, scratch + at.gbar, grad)
            continue
        P_new = P_work + (t & 1) * S * W
        if t == 1:
            second_step(kind, n, m, q, theta, rec, P_work, P_new,
                        scratch + at.J, g if target else NULL, grad,
                        scratch + at.gbar, scratch + at.gprev, work)
        else:
            influence_step(kind, n, m, q, theta, rec,
                           P_work + (1 - (t & 1)) * S * W, P_new, False,
                           dense, scratch + at.J, g if target else NULL, grad)
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
        Py_ssize_t size = cell_rows(kind, n) * q + data.o * n + data.o
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
                         state, rec, work)
            learn_now = False
            if has_target(data, b, t):
                k = target_index(data, t)
                weight = weights[k]
                memset(grad, 0, size * sizeof(floating))
                loss += cell_readout(
                    kind, n, m, q, theta, state, rec, Y + k * o, o, weight,
                    loss_kind, params + rest, params + rest + o * n,
                    grad + rest, grad, g, scratch + at.gbar,
                    scratch + at.zout, scratch + at.dz, work)
                record_output(outputs, data, b, k, scratch + at.zout)
                learn_now = rule.learn
            if per_unit:
                unit_influence_step(kind, n, m, q, theta, rec, influence, first)
                if learn_now:
                    unit_gradient(kind, n, m, q, influence, scratch + at.gbar,
                                  grad)
            else:
                P_old = influence + parity[0] * S * W
                P_new = influence + (1 - parity[0]) * S * W
                parity[0] = 1 - parity[0]
                influence_step(kind, n, m, q, theta, rec, P_old, P_new, first,
                               False, scratch + at.J,
                               g if learn_now else NULL, grad)
            if not learn_now:
                continue
            copy_bias_gradient(kind, n, q, grad, grad + W)
            online_update(rule, params, grad, size, weight)
        loss_rows[b] = loss
        if stopped:
            break


cdef inline void run_forward(
    int kind, int activation, int n, int m, const floating* X,
    const Py_ssize_t* x_start, const Py_ssize_t* lengths, Py_ssize_t count,
    const floating* theta, const floating* bias_hh, bint every_step,
    floating* H, const floating* s0, floating* scratch,
) noexcept nogil:
    """y (``cell_output``: h for every cell but the LRU) after every step
    (rows of H laid out like those of X) or after the last of each sequence
    (row b), each sequence from the state ``s0`` (a sequence of no steps:
    s0's first n numbers).
    ``scratch``: ``forward_scratch_size`` numbers."""
    cdef:
        int S = cell_state(kind, n)
        int q = cell_columns(kind, n, m)
        Py_ssize_t b, t
        floating* s = scratch
        floating* rec = s + S
        floating* work = rec + record_size(kind, n, m)
    for b in range(count):
        memcpy(s, s0, S * sizeof(floating))
        for t in range(lengths[b]):
            cell_forward(kind, activation, n, m, q, theta, bias_hh,
                         X + (x_start[b] + t) * m, s, rec, work)
            if every_step:
                memcpy(H + (x_start[b] + t) * n, cell_output(kind, n, m, s, rec),
                       n * sizeof(floating))
        if not every_step and lengths[b] > 0:
            memcpy(H + b * n, cell_output(kind, n, m, s, rec),
                   n * sizeof(floating))
        elif not every_step:
            memcpy(H + b * n, s, n * sizeof(floating))


cdef inline int forward_scratch_size(int kind, int n, int m) noexcept nogil:
    return cell_state(kind, n) + record_size(kind, n, m) + step_work_size(kind, n)
