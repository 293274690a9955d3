# cython: language_level=3
"""Exact RTRL and SnAp-1 for the gated cells: the entry points of the
Python GRU and LSTM cells.

The cells (torch's equations, their derivatives) are defined in
``_cells.pxd`` (GRU, LSTM, and their element-wise forms EGRU, ELSTM, whose
rows have one hidden column, q = m + 3, and whose exact influence is the
per-unit one) and trained by the drivers of ``_rtrl.pxd``.
Notation: n hidden units, m inputs, o outputs, G gates (3 for the GRU, 4 for
the LSTM), q = m + n + 2. The recurrent parameters are one row-major matrix
``theta`` (G*n x q); row g*n + i belongs to gate g of unit i and holds

    [W_ih[g*n + i, :] | W_hh[g*n + i, :] | b_ih[g*n + i] | b_hh[g*n + i]],

so ``theta[:, :m]`` is torch's ``weight_ih``, ``theta[:, m:m+n]`` its
``weight_hh`` and the last two columns its ``bias_ih`` and ``bias_hh``, in
torch's gate order (GRU: r, z, n; LSTM: i, f, g, o). The two bias columns
stay separate because the GRU's b_in and b_hn have different derivatives.
The flat parameter vector is [theta | W_out (o x n) | b_out (o)] and
gradients are laid out the same way. State: h (S = n) for the GRU, [h, c]
(S = 2n) for the LSTM.

Memory: two influence buffers of S * G*n*q numbers per kernel thread (and
per stream) for exact RTRL, e.g. 6.6 MB (GRU) and 17.6 MB (LSTM) each at
n = 64, m = 1 in float64; SnAp-1 keeps (S / n) * G*n*q numbers, in theta's
layout, updated in place.
"""

# Bounds and wrap-around checks are set for the whole module by setup.py:
# off, or on with SKRTRL_DEBUG=1 to audit the kernels.
from cython cimport floating

from ._cells cimport (
    LRU, N_CELLS, cell_columns, cell_gates, cell_rows, cell_state,
)
from ._common cimport (
    Packed, UpdateRule, check_online_arrays, output_rows, pack, update_rule,
)
from ._rtrl cimport (
    forward_scratch_size, influence_size, rtrl_minibatch, rtrl_online,
    run_forward, scratch_layout,
)

import numpy as np

from ._blocks import _set_block_columns  # noqa: F401 (benchmarks, tests)


def _check_kind(int kind, bint per_unit=True):
    if kind < 0 or kind >= N_CELLS or (cell_gates(kind) < 2 and kind != LRU):
        raise ValueError("unknown gated cell kind")
    if kind == LRU and not per_unit:
        # Its output map is read through the per-unit influence only.
        raise ValueError("the LRU's exact RTRL is its per-unit influence")


def gated_sizes(int kind, int n, int m):
    """(gates G, state size S, columns q, influence columns G*n*q)."""
    _check_kind(kind)
    cdef int q = cell_columns(kind, n, m)
    return cell_gates(kind), cell_state(kind, n), q, cell_rows(kind, n) * q


def gated_influence_size(int kind, int n, int m, bint snap1):
    """Numbers of influence memory per sequence (per kernel thread): two
    S x G*n*q buffers for exact RTRL, one (S / n) x G*n*q for SnAp-1."""
    _check_kind(kind)
    return influence_size(kind, n, m, snap1)


def gated_scratch_size(int kind, int n, int m, int o):
    """Numbers of scratch memory one thread of the training kernels (or the
    forward kernel) needs."""
    _check_kind(kind)
    return max(scratch_layout(kind, n, m, o).size,
               forward_scratch_size(kind, n, m))


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
    int activation=0,
):
    """Run a minibatch forward with exact RTRL; gradients per sequence.

    As ``skrtrl._kernels._elman.elman_rtrl_minibatch`` (threads over the
    sequences, dynamic schedule, one gradient row per sequence), for the
    cell ``kind`` (GRU 2, LSTM 3). ``theta`` is (G*n, m + n + 2);
    ``grad_rows`` (>= B, G*n*q + o*n + o); ``influence`` (n_threads,
    >= 2 * S * G*n*q); ``scratch`` (n_threads, >= gated_scratch_size).
    ``lstm_dense`` uses the dense (2n x 2n) state Jacobian of the LSTM in
    the GEMM instead of splitting off its diagonal half (for tests and
    benchmarks). ``snap1`` computes the SnAp-1 approximation instead;
    ``influence`` then needs ``gated_influence_size(kind, n, m, True)``
    numbers per thread. ``activation``: the LRU's output map (codes of
    ``skrtrl._cells.ACTIVATIONS``); the gated cells ignore it.
    """
    _check_kind(kind, snap1)
    cdef:
        Packed data = pack(X, Y, x_start, y_start, lengths, target_weight,
                           every_step, weight_scale)
        int m = X.shape[1]
        int o = W_out.shape[0]
        int n = W_out.shape[1]
        int q = cell_columns(kind, n, m)
        int size = cell_rows(kind, n) * q + o * n + o
    if theta.shape[0] != cell_rows(kind, n) or theta.shape[1] != q:
        raise ValueError("theta must have shape (G*n, m + n + 2)")
    if grad_rows.shape[0] < data.count or grad_rows.shape[1] != size:
        raise ValueError("grad_rows has the wrong size")
    if influence.shape[1] < influence_size(kind, n, m, snap1):
        raise ValueError("influence workspace too small")
    if scratch.shape[1] < scratch_layout(kind, n, m, o).size:
        raise ValueError("scratch workspace too small")
    if loss_rows.shape[0] < data.count:
        raise ValueError("loss_rows too small")
    if data.count == 0:
        return
    with nogil:
        rtrl_minibatch(
            kind, activation, loss_kind, &data, n, q, &theta[0, 0], NULL,
            &W_out[0, 0], &b_out[0], snap1, lstm_dense, &grad_rows[0, 0],
            grad_rows.shape[1], &influence[0, 0], influence.shape[1],
            &scratch[0, 0], scratch.shape[1],
            min(influence.shape[0], scratch.shape[0]), &loss_rows[0])


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
    bint learn=True,
    floating[:, ::1] outputs=None,
    int activation=0,
):
    """Real-time RTRL: update the parameters after every step with a target.

    As ``skrtrl._kernels._elman.elman_rtrl_online``, for the cell ``kind``
    (GRU 2, LSTM 3). ``params`` (and ``grad``, ``penalty``, the optimizer
    state) are laid out [theta (G*n*q) | W_out | b_out]; ``state`` is the
    cell state, S = n (h) for the GRU and 2n ([h, c]) for the LSTM, in and
    out; ``influence`` (2, S * G*n*q) with ``influence[parity]`` current.
    With ``snap1`` (SnAp-1), ``influence`` is (1, ``gated_influence_size(
    kind, n, m, True)``), updated in place, and ``parity`` is returned as
    given. ``learn=False`` advances the state and influence only.
    ``outputs``: as for ``elman_rtrl_online``.

    Returns
    -------
    (t_update, parity) after the call.
    """
    _check_kind(kind, snap1)
    cdef:
        Packed data = pack(X, Y, x_start, y_start, lengths, target_weight,
                           every_step, 1.0)
        UpdateRule rule = update_rule(
            solver, learning_rate, beta_1, beta_2, epsilon, momentum,
            nesterov, clip_norm, t_update, learn)
        floating* out
        int q = cell_columns(kind, n, m)
        int S = cell_state(kind, n)
        int W = cell_rows(kind, n) * q
    check_online_arrays(W + o * n + o, params, grad, penalty, state_a,
                        state_b, solver)
    if X.shape[1] != m or Y.shape[1] != o:
        raise ValueError("X must have m columns and Y o")
    if snap1:
        if influence.shape[0] != 1 or influence.shape[1] != (S // n) * W:
            raise ValueError("SnAp-1 influence must have shape (1, S/n * G*n*q)")
    elif influence.shape[0] != 2 or influence.shape[1] != S * W:
        raise ValueError("influence must have shape (2, S * G*n*q)")
    if state.shape[0] != S:
        raise ValueError("state must have n (GRU) or 2n (LSTM) entries")
    if scratch.shape[0] < scratch_layout(kind, n, m, o).size:
        raise ValueError("scratch too small")
    if loss_rows.shape[0] < data.count:
        raise ValueError("loss_rows too small")
    out = output_rows(outputs, Y)
    with nogil:
        rtrl_online(
            kind, activation, loss_kind, &data, reset_state, &params[0], n, &rule,
            &penalty[0], &state_a[0], &state_b[0], &state[0],
            &influence[0, 0], &parity, snap1, &grad[0], &scratch[0],
            &loss_rows[0] if data.count else NULL, out)
    return rule.t, parity


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
    int activation=0,
):
    """Hidden states h of a gated cell, each sequence starting from ``s0``.

    ``s0`` is the full initial state (GRU: h, n numbers; LSTM: [h, c], 2n).
    ``H`` (n columns) receives h after every step (rows laid out like
    ``X``) when ``every_step``, otherwise the final h of sequence s in row
    s. ``scratch`` needs at least ``gated_scratch_size(kind, n, m, 0)``.
    For the LRU, ``H`` receives its output map's y and ``activation`` is
    that map's.
    """
    _check_kind(kind)
    cdef:
        int m = X.shape[1]
        int n = H.shape[1]
    if theta.shape[0] != cell_rows(kind, n) or theta.shape[1] != cell_columns(kind, n, m):
        raise ValueError("theta must have shape (G*n, m + n + 2)")
    if s0.shape[0] != cell_state(kind, n) or scratch.shape[0] < forward_scratch_size(kind, n, m):
        raise ValueError("s0 of the wrong size or scratch too small")
    if lengths.shape[0] == 0:
        return
    with nogil:
        run_forward(kind, activation, n, m, &X[0, 0], &x_start[0], &lengths[0],
                    lengths.shape[0], &theta[0, 0], NULL, every_step,
                    &H[0, 0], &s0[0], &scratch[0])
