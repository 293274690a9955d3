# cython: language_level=3
"""Unbiased Online Recurrent Optimization (Tallec & Ollivier, 2017).

UORO replaces the influence matrix P_t = d s_t / d theta (S x P) by a
rank-one estimate s~_t theta~_t^T whose expectation is P_t. With the RTRL
recursion P_t = J_t P_{t-1} + I_t, one step draws a vector nu of S
independent random signs and sets (Algorithm 1 of the paper)

    s~_t     = rho0 J_t s~_{t-1} + rho1 nu,
    theta~_t = theta~_{t-1} / rho0 + (nu^T I_t) / rho1,

so that s~_t theta~_t^T = J_t s~ theta~^T + nu nu^T I_t + cross terms
linear in nu. E[nu nu^T] = Id and the cross terms have zero mean (the
scalings depend on nu only through norms that are the same for nu and -nu),
hence E[s~_t theta~_t^T] = J_t E[s~_{t-1} theta~_{t-1}^T] + I_t = P_t by
induction from s~_0 = theta~_0 = 0. The variance-reducing scalings are

    rho0 = sqrt((||theta~_{t-1}|| + eps) / (||J_t s~_{t-1}|| + eps)),
    rho1 = sqrt((||nu^T I_t|| + eps) / (||nu|| + eps)),

eps = 1e-7, which balance the norms of the two factors of each term. A
loss with dL/dh_t = g adds (g . s~_t[:n]) theta~_t to the gradient of the
recurrent parameters theta (R x q); the readout gradient is exact. Per step
this costs one Jacobian-vector and one vector-Jacobian product of the cell
(``_cells.pxd``): O(P) time and memory, P = R*q.

Random signs come from a splitmix64 generator (Steele, Lea & Flood, 2014)
seeded per sequence from a seed the caller draws (from the estimator's
``random_state``) and the sequence's position in the call, so the estimate
does not depend on which thread ran which sequence.
"""

# Bounds and wrap-around checks are set for the whole module by setup.py:
# off, or on with SKRTRL_DEBUG=1 to audit the kernels.
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport sqrt
from libc.stdint cimport uint64_t
from libc.string cimport memset

from ._cells cimport (
    N_CELLS, cell_columns, cell_forward, cell_jvp, cell_readout, cell_rows,
    cell_separate_bias, cell_state, cell_vjp, copy_bias_gradient, flat_size,
    record_size, step_work_size,
)
from ._common cimport (
    InterruptCheck, Packed, UpdateRule, has_target, interrupt_check,
    interrupt_due, online_update, output_rows, pack_batch, readout_gradient,
    record_output, sequence, stopping, target_index, update_rule,
)

import numpy as np

cdef double EPS = 1e-7


cdef inline uint64_t _mix64(uint64_t z) noexcept nogil:
    """The splitmix64 output function (a bijective bit mixer)."""
    z = (z ^ (z >> 30)) * <uint64_t> 0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t> 0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline uint64_t _next(uint64_t* state) noexcept nogil:
    """Next 64 random bits of a splitmix64 stream."""
    state[0] += <uint64_t> 0x9E3779B97F4A7C15
    return _mix64(state[0])


cdef inline uint64_t sequence_stream(uint64_t seed, Py_ssize_t b) noexcept nogil:
    """Start of the stream of sequence ``b``: far from the others' starts."""
    return _mix64(seed ^ _mix64(<uint64_t> b + <uint64_t> 0x632BE59BD9B4E019))


cdef inline void _signs(uint64_t* rng, int S, floating* nu) noexcept nogil:
    """S independent random signs, one bit each."""
    cdef int i
    cdef uint64_t word = 0
    for i in range(S):
        if i % 64 == 0:
            word = _next(rng)
        nu[i] = 1 if (word >> (i % 64)) & 1 else -1


cdef inline double _norm(const floating* v, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t i
    cdef double acc = 0.0
    for i in range(size):
        acc += v[i] * v[i]
    return sqrt(acc)


def uoro_scratch_size(int kind, int n, int m, int o):
    """Numbers of scratch memory one thread of the UORO kernels needs
    (theta~ and s~ are apart: they are the state of a stream)."""
    return (cell_rows(kind, n) * cell_columns(kind, n, m)
            + 2 * cell_state(kind, n) + step_work_size(kind, n)
            + record_size(kind, n, m) + 2 * n + 2 * o + cell_state(kind, n))


cdef inline void _uoro_step(
    int kind, int activation, int n, int m, int q,
    const floating* theta, const floating* bias_hh, const floating* x,
    floating* s, floating* hs, floating* ths, uint64_t* rng,
    floating* scratch,
) noexcept nogil:
    """Advance the state s and the estimate (hs = s~, ths = theta~)."""
    cdef:
        int S = cell_state(kind, n)
        Py_ssize_t P = cell_rows(kind, n) * q
        Py_ssize_t i
        double rho0, rho1
        floating* dth = scratch
        floating* nu = dth + P
        floating* js = nu + S
        floating* work = js + S
        floating* rec = work + step_work_size(kind, n)
    cell_forward(kind, activation, n, m, q, theta, bias_hh, x, s, rec, work,
                 False)
    cell_jvp(kind, n, m, q, theta, rec, hs, js, work)
    _signs(rng, S, nu)
    memset(dth, 0, P * sizeof(floating))
    cell_vjp(kind, n, m, q, theta, rec, nu, NULL, dth, work)
    rho0 = sqrt((_norm(ths, P) + EPS) / (_norm(js, S) + EPS))
    rho1 = sqrt((_norm(dth, P) + EPS) / (sqrt(<double> S) + EPS))
    for i in range(S):
        hs[i] = <floating> (rho0 * js[i] + rho1 * nu[i])
    for i in range(P):
        ths[i] = <floating> (ths[i] / rho0 + dth[i] / rho1)


cdef inline double _uoro_target(
    int kind, int n, int m, int q, const floating* theta, Py_ssize_t P,
    const floating* y, int o, double weight, int loss_kind,
    const floating* W_out, const floating* b_out, const floating* s,
    const floating* rec, const floating* hs, const floating* ths,
    floating* grad_theta, floating* grad_out, floating* rest,
) noexcept nogil:
    """Loss of one target: exact readout (and output map) gradient, the
    UORO estimate (dL/ds . s~) theta~ into grad_theta. ``rest``: 2 n + 2 o
    + S numbers (g, the readout, dL/dz, dL/ds, work)."""
    cdef:
        Py_ssize_t i
        double c = 0.0, loss
        floating* g = rest
        floating* gs = rest + n + 2 * o
    loss = cell_readout(kind, n, m, q, theta, s, rec, y, o, weight,
                        loss_kind, W_out, b_out, grad_out, grad_theta, g, gs,
                        g + n, g + n + o, gs + cell_state(kind, n))
    for i in range(cell_state(kind, n)):
        c += gs[i] * hs[i]
    for i in range(P):
        grad_theta[i] += <floating> (c * ths[i])
    return loss


cdef double _uoro_sequence(
    int kind, int activation, int loss_kind, const Packed* data,
    Py_ssize_t b, int n, int q, const floating* theta,
    const floating* bias_hh, const floating* W_out, const floating* b_out,
    uint64_t rng, floating* grad, floating* state, floating* scratch,
    InterruptCheck* check, bint* stop,
) noexcept nogil:
    """Sequence b from the zero state; gradient added into ``grad``, laid
    out [theta (R*q) | W_out | b_out]. ``state``: s, s~, theta~. Stops
    early at a signal as ``_bptt._bptt_sequence`` does."""
    cdef:
        int m = data.m
        int o = data.o
        int S = cell_state(kind, n)
        Py_ssize_t P = cell_rows(kind, n) * q
        Py_ssize_t t, k
        double loss = 0.0
        const floating* X
        const floating* Y
        const floating* weights
        floating* s = state
        floating* hs = s + S
        floating* ths = hs + S
        floating* rec = scratch + P + 2 * S + step_work_size(kind, n)
        floating* rest = rec + record_size(kind, n, m)
    sequence(data, b, &X, &Y, &weights)
    memset(state, 0, (2 * S + P) * sizeof(floating))
    for t in range(data.lengths[b]):
        if stopping(check, stop):
            break
        _uoro_step(kind, activation, n, m, q, theta, bias_hh, X + t * m, s,
                   hs, ths, &rng, scratch)
        if has_target(data, b, t):
            k = target_index(data, t)
            loss += _uoro_target(
                kind, n, m, q, theta, P, Y + k * o, o,
                data.weight_scale * weights[k], loss_kind, W_out, b_out, s,
                rec, hs, ths, grad, grad + P, rest)
    return loss


def uoro_minibatch(
    int kind, int n, int activation, int loss_kind, batch,
    double weight_scale, const floating[::1] params, dict workspace,
    unsigned long long seed,
):
    """UORO gradient estimate over a minibatch; one row per sequence.

    As ``skrtrl._kernels._bptt.bptt_minibatch``, with ``seed`` for the
    random signs (sequence b draws from the stream of (seed, b)) and
    ``workspace["states"]`` (n_threads, 2 S + R*q) in place of the ring.
    """
    if kind < 0 or kind >= N_CELLS:
        raise ValueError("unknown cell kind")
    cdef:
        Packed data = pack_batch(batch, weight_scale, <floating*> NULL)
        Py_ssize_t B = data.count
        int m = data.m
        int o = data.o
        floating[:, ::1] grad_rows = workspace["grad"]
        double[::1] loss_rows = workspace["loss"]
        floating[:, ::1] states = workspace["states"]
        floating[:, ::1] scratch = workspace["scratch"]
        const floating* theta = &params[0] if params.shape[0] else NULL
        const floating* bias_hh
        const floating* W_out
        const floating* b_out
        int R = cell_rows(kind, n)
        int q = cell_columns(kind, n, m)
        int S = cell_state(kind, n)
        int n_threads = min(states.shape[0], scratch.shape[0])
        int size = R * q + o * n + o
        Py_ssize_t b
        int tid
        InterruptCheck check = interrupt_check()
        bint stopped = False
        bint* stop = &stopped   # shared by the threads
    if params.shape[0] != flat_size(kind, n, m, o, n):
        raise ValueError("params has the wrong size for this cell")
    bias_hh = theta + R * q
    W_out = theta + params.shape[0] - o * n - o
    b_out = W_out + o * n
    if grad_rows.shape[0] < B or grad_rows.shape[1] != size:
        raise ValueError("grad_rows has the wrong size")
    if states.shape[1] < 2 * S + R * q:
        raise ValueError("states workspace too small")
    if scratch.shape[1] < uoro_scratch_size(kind, n, m, o):
        raise ValueError("scratch workspace too small")
    if loss_rows.shape[0] < B:
        raise ValueError("loss_rows too small")
    if B == 0:
        return
    if n_threads <= 1:
        with nogil:
            for b in range(B):
                memset(&grad_rows[b, 0], 0, size * sizeof(floating))
                loss_rows[b] = _uoro_sequence(
                    kind, activation, loss_kind, &data, b, n, q, theta,
                    bias_hh, W_out, b_out, sequence_stream(seed, b), &grad_rows[b, 0], &states[0, 0],
                    &scratch[0, 0], &check, stop)
        return
    for b in prange(B, nogil=True, schedule="dynamic", num_threads=n_threads):
        tid = threadid()
        memset(&grad_rows[b, 0], 0, size * sizeof(floating))
        # Only the main thread (thread 0) runs signal handlers.
        loss_rows[b] = _uoro_sequence(
            kind, activation, loss_kind, &data, b, n, q, theta, bias_hh,
            W_out, b_out, sequence_stream(seed, b),
            &grad_rows[b, 0], &states[tid, 0], &scratch[tid, 0],
            &check if tid == 0 else NULL, stop)


def uoro_online(
    int kind, int n, int activation, int loss_kind, batch, update,
    dict state, bint reset_state, floating[::1] params,
    unsigned long long seed, floating[:, ::1] outputs=None,
):
    """Online UORO: update the parameters after every step with a target.

    The bundles are those of ``skrtrl._kernels._rtrl.rtrl_online``; the
    ``state`` holds the cell state ``"hidden"`` (S), the estimate's factors
    ``"tilde_state"`` s~ (S) and ``"tilde_theta"`` theta~ (R*q), and
    ``"rng"``, the generator of a stream's random signs, read and written.
    A sequence started from the zero state draws its signs from the stream
    of (``seed``, its position b); one that continues a stream (no
    ``reset_state``) continues ``"rng"``, so that a stream's signs do not
    depend on how it is cut into calls. ``update.learn`` false advances the
    state and the factors only. Returns the weighted loss of each sequence.
    """
    cdef:
        InterruptCheck check = interrupt_check()
        bint stopped = False
        Packed data = pack_batch(batch, 1.0, <floating*> NULL)
        UpdateRule rule = update_rule(update, params.shape[0],
                                      <floating*> NULL)
        int m = data.m
        int o = data.o
        floating[::1] hidden = state["hidden"]
        floating[::1] tilde_state = state["tilde_state"]
        floating[::1] tilde_theta = state["tilde_theta"]
        floating[::1] grad = np.empty_like(params)
        floating[::1] scratch = np.empty_like(
            params, shape=uoro_scratch_size(kind, n, m, o))
        double[::1] loss_rows = np.empty(data.count, dtype=np.float64)
        int R = cell_rows(kind, n)
        int q = cell_columns(kind, n, m)
        int S = cell_state(kind, n)
        Py_ssize_t P = R * q
        Py_ssize_t rest = P + (n if cell_separate_bias(kind) else 0)
        Py_ssize_t size = rest + o * n + o
        Py_ssize_t b, t, k
        double weight, loss
        uint64_t rng = state["rng"]  # a continued stream goes on with it
        const floating* Xb
        const floating* Yb
        const floating* weights
        floating* theta = &params[0]
        floating* bias_hh = theta + P
        floating* W_out = theta + rest
        floating* b_out = W_out + o * n
        floating* s = &hidden[0]
        floating* hs = &tilde_state[0]
        floating* ths = &tilde_theta[0]
        floating* rec = &scratch[0] + P + 2 * S + step_work_size(kind, n)
        floating* scratch_rest = rec + record_size(kind, n, m)
        floating* out = output_rows(outputs, batch.targets)
    if kind < 0 or kind >= N_CELLS:
        raise ValueError("unknown cell kind")
    if params.shape[0] != size:
        raise ValueError("params has the wrong size for this cell")
    if (hidden.shape[0] != S or tilde_state.shape[0] != S
            or tilde_theta.shape[0] != P):
        raise ValueError("state and s~ need S numbers, theta~ R*q")
    with nogil:
        for b in range(data.count):
            sequence(&data, b, &Xb, &Yb, &weights)
            loss = 0.0
            if reset_state:
                rng = sequence_stream(seed, b)
                memset(s, 0, S * sizeof(floating))
                memset(hs, 0, S * sizeof(floating))
                memset(ths, 0, P * sizeof(floating))
            for t in range(data.lengths[b]):
                if interrupt_due(&check):  # Ctrl-C: see _interrupt.pyx
                    stopped = True
                    break
                _uoro_step(kind, activation, n, m, q, theta, bias_hh,
                           Xb + t * m, s, hs, ths, &rng, &scratch[0])
                if not has_target(&data, b, t):
                    continue
                k = target_index(&data, t)
                weight = weights[k]
                memset(&grad[0], 0, size * sizeof(floating))
                loss += _uoro_target(
                    kind, n, m, q, theta, P, Yb + k * o, o, weight,
                    loss_kind, W_out, b_out, s, rec, hs, ths, &grad[0],
                    &grad[rest], scratch_rest)
                # (_uoro_target leaves the readout after g, n numbers in.)
                record_output(out, &data, b, k, scratch_rest + n)
                if not rule.learn:
                    continue
                copy_bias_gradient(kind, n, q, &grad[0], &grad[P])
                online_update(&rule, theta, &grad[0], size, weight)
            loss_rows[b] = loss
            if stopped:
                break
    state["rng"] = rng
    update.count(rule.t)
    return np.asarray(loss_rows)
