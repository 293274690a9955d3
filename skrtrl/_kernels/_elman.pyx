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
the first step needs no GEMM at all, and the second none either: P_2 is an
outer product written in one pass (``_train_sequence``).

A target at step t with dL/dh_t = g adds P_t^T g to the gradient of theta.
The GEMM runs over column blocks of P sized for the BLAS and the cache (see
BLOCK_BYTES below), and each block's share of P_t^T g is taken right after
the block is written, while it is still in cache.

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
from libc.string cimport memset, memcpy
from cython.parallel cimport prange, threadid

from ._blas cimport gemm_rm, gemv_rm, gemv_rm_t
from ._common cimport (
    activate, online_update, output_loss, SOLVER_ADAM,
)

# Numbers left unused at each end of a thread's scratch row (one cache line
# of float64), so that threads running side by side never write to the same
# cache line (false sharing halved the two-thread speed-up at n = 8).
cdef enum:
    PAD = 8

# The influence GEMM is done in column blocks. OpenBLAS (0.3.x, x86-64)
# routes products of up to 100^3 multiply-adds to its "small matrix"
# kernels, which read the operands in place; larger ones go through its
# general path, which first zeroes C when beta = 0 and packs P_{t-1} into a
# buffer: two extra passes over n x n*q numbers per step (9 % and 13 % of
# the step at n = 32 in a perf profile). Up to SMALL_BLOCK_N hidden units,
# blocks of at most SMALL_BLOCK_MADDS multiply-adds stay on the small path
# (measured 1.28x faster per step at n = 32, single thread). Above, the
# small kernels were measured slower than the general path (n = 64: 5 %),
# and the blocks hold at most BLOCK_BYTES of P: few BLAS calls per step,
# since with one kernel thread and n >= 128 BLAS runs threaded and pays a
# synchronisation per call (blocks of 512 columns were 1.25x slower than
# whole products at n = 128 on a busy machine), while the gradient contraction still
# reads a block that was just written. Blocks are balanced (equal widths,
# multiples of 8 columns) so that no block is a sliver.
cdef enum:
    SMALL_BLOCK_N = 48
    SMALL_BLOCK_MADDS = 1000000
    BLOCK_BYTES = 2097152

# Override of the block width in columns (0: automatic, as above), for
# benchmarks and tests; see ``_set_block_columns``.
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


cdef inline int _block_columns(int n, int nq) noexcept nogil:
    """Column width of the blocks of the influence GEMM: balanced blocks no
    wider than the limits above, in multiples of 8 columns (whole cache
    lines), unless one block covers every column."""
    cdef int width, n_blocks
    if _block_columns_override > 0:
        return min(_block_columns_override, nq)
    if n <= SMALL_BLOCK_N:
        width = SMALL_BLOCK_MADDS // (n * n)
    else:
        width = BLOCK_BYTES // (8 * n)
    width -= width % 8
    if width < 8:
        width = 8
    if width >= nq:
        return nq
    n_blocks = (nq + width - 1) // width
    width = (nq + n_blocks - 1) // n_blocks
    width += (8 - width % 8) % 8
    return width


cdef inline void _pre_activation(
    const floating* x, int m, int n, int q, const floating* theta,
    const floating* bias_hh, const floating* h, floating* z, floating* a,
) noexcept nogil:
    """z <- [x, h, 1] and a <- theta z + bias_hh."""
    memcpy(z, x, m * sizeof(floating))
    memcpy(z + m, h, n * sizeof(floating))
    z[m + n] = 1
    memcpy(a, bias_hh, n * sizeof(floating))
    gemv_rm(n, q, <floating> 1, theta, q, z, <floating> 1, a)


cdef inline double _readout(
    const floating* y, int o, int n, double weight, int loss_kind,
    const floating* W_out, const floating* b_out, const floating* h,
    floating* grad_out, floating* g, floating* zout, floating* dz,
) noexcept nogil:
    """Readout, loss and gradients of one target (plain loops: o is small).

    Adds the readout gradient into ``grad_out`` = [W_out (o*n) | b_out (o)]
    and writes g = dL/dh_t (n). Returns the weighted loss.
    """
    cdef int c, l
    cdef floating s, dc
    cdef double loss
    cdef const floating* w
    for c in range(o):
        w = W_out + c * n
        s = b_out[c]
        for l in range(n):
            s = s + w[l] * h[l]
        zout[c] = s
    loss = output_loss(loss_kind, o, zout, y, weight, dz)
    memset(g, 0, n * sizeof(floating))
    for c in range(o):
        w = W_out + c * n
        dc = dz[c]
        grad_out[o * n + c] += dc
        for l in range(n):
            g[l] += dc * w[l]
            grad_out[c * n + l] += dc * h[l]
    return loss


cdef inline void _add_transposed_product(
    int rows, int cols, const floating* P, int ld, const floating* g,
    floating* out,
) noexcept nogil:
    """out (cols) += P (rows x cols, row stride ld).T @ g.

    BLAS even for n = 8: plain loops, compiled for the baseline x86-64
    instruction set (two doubles per instruction), measured slower than
    OpenBLAS's AVX-512 kernel despite the call overhead.
    """
    gemv_rm_t(rows, cols, <floating> 1, P, ld, g, <floating> 1, out)


cdef inline void _scale_rows(
    int n, int m, int q, const floating* theta, const floating* d, floating* A,
) noexcept nogil:
    """A <- D W_hh (n x n), with W_hh = theta[:, m:m+n]."""
    cdef int k, l
    cdef floating dk
    cdef const floating* w
    for k in range(n):
        dk = d[k]
        w = theta + k * q + m
        for l in range(n):
            A[k * n + l] = dk * w[l]


cdef inline void _influence_product(
    int n, int q, const floating* A, const floating* P_old, floating* P_new,
    const floating* d, const floating* z, const floating* g,
    floating* grad_theta,
) noexcept nogil:
    """P_new = A P_old + D E (see the module notes), by column blocks.

    When ``g`` is not NULL, also adds P_new^T g into ``grad_theta`` (n*q),
    block by block while each block is still in cache.
    """
    cdef:
        int nq = n * q
        int width = _block_columns(n, nq)
        int c0 = 0, c1, k, j, j0, j1
        floating dk
        floating* row
    while c0 < nq:
        c1 = c0 + width
        if c1 > nq:
            c1 = nq
        gemm_rm(n, c1 - c0, n, <floating> 1, A, n, P_old + c0, nq,
                <floating> 0, P_new + c0, nq)
        # The diagonal blocks (row k, columns k*q .. k*q + q) that meet
        # this column block get d[k] z.
        k = c0 // q
        while k < n and k * q < c1:
            j0 = k * q if k * q > c0 else c0
            j1 = k * q + q if k * q + q < c1 else c1
            row = P_new + k * nq + k * q
            dk = d[k]
            for j in range(j0 - k * q, j1 - k * q):
                row[j] += dk * z[j]
            k += 1
        if g != NULL:
            _add_transposed_product(n, c1 - c0, P_new + c0, nq, g,
                                    grad_theta + c0)
        c0 = c1


cdef double _train_sequence(
    const floating* X, int m, const floating* Y, int o, Py_ssize_t length,
    const floating* weights, double weight_scale, bint every_step,
    const floating* theta, int n, int q, const floating* bias_hh,
    const floating* W_out, const floating* b_out,
    int activation, int loss_kind,
    floating* P_work, floating* scratch,
) noexcept nogil:
    """Run one sequence from a zero state; accumulate its gradient.

    The gradient, laid out [theta (n*q) | W_out (o*n) | b_out (o)], is
    added into the thread's own block of ``scratch`` (see ``_Scratch``),
    which the caller zeroes first. ``P_work`` holds two influence matrices
    (2 * n * n*q numbers).

    The first two steps are written out: P_0 = 0 makes P_1 = D_1 E_1 (only
    the diagonal blocks, never stored) and P_2 = A_2 D_1 E_1 + D_2 E_2 an
    outer product written in one pass, which saves zeroing P and one GEMM.
    """
    cdef:
        int nq = n * q
        Py_ssize_t t
        double loss = 0.0
        bint target
        int k, r, j
        floating c
        floating* A = scratch + PAD
        floating* a = A + n * n
        floating* d = a + n
        floating* d0 = d + n
        floating* g = d0 + n
        floating* gA = g + n
        floating* z = gA + n
        floating* z0 = z + q
        floating* zout = z0 + q
        floating* dz = zout + o
        floating* h = dz + o
        floating* grad = h + n
        floating* P_new
        floating* row
    memset(h, 0, n * sizeof(floating))
    for t in range(length):
        _pre_activation(X + t * m, m, n, q, theta, bias_hh, h, z, a)
        activate(activation, n, a, d)
        memcpy(h, a, n * sizeof(floating))
        target = every_step or t == length - 1
        if target:
            loss += _readout(
                Y + (t * o if every_step else 0), o, n,
                weight_scale * weights[t if every_step else 0], loss_kind,
                W_out, b_out, h, grad + nq, g, zout, dz)
        P_new = P_work + (t & 1) * n * nq
        if t == 0:
            # P_1 = D_1 E_1, kept as d0 and z0.
            memcpy(d0, d, n * sizeof(floating))
            memcpy(z0, z, q * sizeof(floating))
            if target:
                for k in range(n):
                    c = g[k] * d[k]
                    row = grad + k * q
                    for j in range(q):
                        row[j] += c * z[j]
            continue
        _scale_rows(n, m, q, theta, d, A)
        if t == 1:
            # P[r, k*q + j] = A[r, k] d0[k] z0[j] + delta_rk d[r] z[j].
            for r in range(n):
                for k in range(n):
                    c = A[r * n + k] * d0[k]
                    row = P_new + r * nq + k * q
                    for j in range(q):
                        row[j] = c * z0[j]
                row = P_new + r * nq + r * q
                c = d[r]
                for j in range(q):
                    row[j] += c * z[j]
            if target:
                # g^T P in closed form: (g^T A)[k] d0[k] z0 + g[k] d[k] z.
                memset(gA, 0, n * sizeof(floating))
                for r in range(n):
                    c = g[r]
                    for k in range(n):
                        gA[k] += c * A[r * n + k]
                for k in range(n):
                    row = grad + k * q
                    for j in range(q):
                        row[j] += gA[k] * d0[k] * z0[j] + g[k] * d[k] * z[j]
            continue
        _influence_product(
            n, q, A, P_work + (1 - (t & 1)) * n * nq, P_new, d, z,
            g if target else NULL, grad)
    return loss


def train_scratch_size(int n, int m, int o):
    """Numbers of scratch memory one thread of the training kernels needs."""
    cdef int q = m + n + 1
    return 2 * PAD + n * n + 6 * n + 2 * q + 2 * o + n * q + o * n + o


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
    thread's own influence buffers. Each sequence's gradient is accumulated
    in the thread's scratch and written to its own gradient row at the end,
    so the caller's sum over rows has a fixed order and results do not
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
        # Offset of the gradient in a scratch row (see _train_sequence).
        int grad_at = PAD + n * n + 6 * n + 2 * q + 2 * o
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
                memset(&scratch[0, grad_at], 0, size * sizeof(floating))
                loss_rows[b] = _train_sequence(
                    &X[x_start[b], 0], m, &Y[y_start[b], 0], o, lengths[b],
                    &target_weight[y_start[b]], weight_scale, every_step,
                    &theta[0, 0], n, q,
                    &bias_hh[0], &W_out[0, 0], &b_out[0], activation,
                    loss_kind, &influence[0, 0], &scratch[0, 0])
                memcpy(&grad_rows[b, 0], &scratch[0, grad_at],
                       size * sizeof(floating))
        return
    for b in prange(B, nogil=True, schedule="dynamic", num_threads=n_threads):
        tid = threadid()
        memset(&scratch[tid, grad_at], 0, size * sizeof(floating))
        loss_rows[b] = _train_sequence(
            &X[x_start[b], 0], m, &Y[y_start[b], 0], o, lengths[b],
            &target_weight[y_start[b]], weight_scale, every_step,
            &theta[0, 0], n, q,
            &bias_hh[0], &W_out[0, 0], &b_out[0], activation,
            loss_kind, &influence[tid, 0], &scratch[tid, 0])
        memcpy(&grad_rows[b, 0], &scratch[tid, grad_at],
               size * sizeof(floating))


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
        int k, j
        double weight, loss
        bint target
        floating dk
        floating* theta = &params[0]
        floating* bias_hh = theta + nq
        floating* W_out = bias_hh + n
        floating* b_out = W_out + o * n
        floating* g_theta = &grad[0]
        floating* g_bias_hh = g_theta + nq
        floating* g_rest = g_bias_hh + n
        floating* A = &scratch[0] + PAD
        floating* a = A + n * n
        floating* d = a + n
        floating* g = d + 2 * n
        floating* z = g + 2 * n
        floating* zout = z + 2 * q
        floating* dz = zout + o
        floating* P_new
        floating* P_old
        floating* row
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
                P_old = &influence[parity, 0]
                P_new = &influence[1 - parity, 0]
                parity = 1 - parity
                _pre_activation(&X[x_start[b] + t, 0], m, n, q, theta,
                                bias_hh, &hidden[0], z, a)
                activate(activation, n, a, d)
                memcpy(&hidden[0], a, n * sizeof(floating))
                target = every_step or t == lengths[b] - 1
                if target:
                    i = y_start[b] + (t if every_step else 0)
                    weight = target_weight[i]
                    # The readout gradient goes past the bias_hh block, so
                    # that grad is laid out like params.
                    memset(&grad[0], 0, size * sizeof(floating))
                    loss += _readout(
                        &Y[i, 0], o, n, weight, loss_kind, W_out, b_out,
                        &hidden[0], g_rest, g, zout, dz)
                if reset_state and t == 0:
                    # From the zero state P_old = 0: P_new = D E.
                    memset(P_new, 0, n * nq * sizeof(floating))
                    for k in range(n):
                        dk = d[k]
                        row = P_new + k * nq + k * q
                        for j in range(q):
                            row[j] = dk * z[j]
                    if target:
                        _add_transposed_product(n, nq, P_new, nq, g, g_theta)
                else:
                    _scale_rows(n, m, q, theta, d, A)
                    _influence_product(n, q, A, P_old, P_new, d, z,
                                       g if target else NULL, g_theta)
                if not target:
                    continue
                for k in range(n):
                    g_bias_hh[k] = g_theta[k * q + m + n]
                t_update = online_update(
                    theta, &grad[0], size, &penalty[0], weight, clip_norm,
                    solver, learning_rate, beta_1, beta_2, epsilon, momentum,
                    nesterov, &state_a[0], &state_b[0], t_update)
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
