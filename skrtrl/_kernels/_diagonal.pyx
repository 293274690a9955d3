# cython: language_level=3
"""RTRL with per-unit influence: the entry points of the Python cells.

Two models share these kernels, because in both each hidden unit's
influence only involves that unit's own parameters (the per-unit driver of
``_rtrl.pxd``):

* the element-wise cell (``full=False``, DIAGONAL of ``_cells.pxd``),
  a_t = W_ih x_t + w * h_{t-1} + b, with theta (n x q, q = m + 2) =
  [W_ih | w | b_ih]: here this *is* exact RTRL, in O(n q) per step;
* SnAp-1 for the Elman cell (``full=True``), theta (n x q, q = m + n + 1) =
  [W_ih | W_hh | b_ih]: the forward pass uses the full W_hh, the influence
  keeps only the entries d h_i / d theta[i, :] that one step makes nonzero,
  propagated with J_t[i, i] = phi'(a_i) W_hh[i, i].
"""

# Bounds and wrap-around checks are set for the whole module by setup.py:
# off, or on with SKRTRL_DEBUG=1 to audit the kernels.
from cython cimport floating

from ._cells cimport DIAGONAL, ELMAN, cell_columns
from ._common cimport (
    Packed, UpdateRule, check_online_arrays, output_rows, pack, set_pooling,
    update_rule,
)
from ._rtrl cimport (
    forward_scratch_size, influence_size, pool_size, rtrl_minibatch, rtrl_online,
    run_forward, scratch_layout,
)

import numpy as np


def diagonal_scratch_size(int n, int m, int o):
    """Numbers of scratch memory one thread of the training kernels needs
    (either model)."""
    return max(scratch_layout(ELMAN, n, m, o).size,
               scratch_layout(DIAGONAL, n, m, o).size)


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
    int pooling=0,
):
    """Minibatch gradients with per-unit influence; arguments as for
    ``skrtrl._kernels._elman.elman_rtrl_minibatch``, plus ``full`` (SnAp-1
    on the Elman cell rather than the element-wise cell). ``influence`` has
    one row of n * q numbers per thread."""
    cdef:
        int kind = ELMAN if full else DIAGONAL
        Packed data = pack(X, Y, x_start, y_start, lengths, target_weight,
                           every_step, weight_scale)
        int n = theta.shape[0]
        int q = theta.shape[1]
        int o = W_out.shape[0]
        int size = n * q + o * n + o
    set_pooling(&data, pooling)
    if q != cell_columns(kind, n, X.shape[1]):
        raise ValueError("theta has the wrong number of columns")
    if grad_rows.shape[0] < data.count or grad_rows.shape[1] != size:
        raise ValueError("grad_rows has the wrong size")
    if (influence.shape[1] < (
                influence_size(kind, n, X.shape[1], True)
                + (pool_size(kind, n, X.shape[1], True) if pooling else 0))
            or scratch.shape[1] < diagonal_scratch_size(n, X.shape[1], o)):
        raise ValueError("workspace too small")
    if loss_rows.shape[0] < data.count:
        raise ValueError("loss_rows too small")
    if data.count == 0:
        return
    with nogil:
        rtrl_minibatch(
            kind, activation, loss_kind, &data, n, q, &theta[0, 0],
            &bias_hh[0], &W_out[0, 0], &b_out[0], True, False,
            &grad_rows[0, 0], grad_rows.shape[1], &influence[0, 0],
            influence.shape[1], &scratch[0, 0], scratch.shape[1],
            min(influence.shape[0], scratch.shape[0]), &loss_rows[0])


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
    bint learn=True,
    floating[:, ::1] outputs=None,
):
    """Update after every step with a target; per-unit influence.

    Arguments as for ``skrtrl._kernels._elman.elman_rtrl_online``, except
    that ``influence`` is one (n * q) buffer updated in place (no parity),
    ``outputs`` included.
    Returns the number of updates made so far.
    """
    cdef:
        int kind = ELMAN if full else DIAGONAL
        Packed data = pack(X, Y, x_start, y_start, lengths, target_weight,
                           every_step, 1.0)
        UpdateRule rule = update_rule(
            solver, learning_rate, beta_1, beta_2, epsilon, momentum,
            nesterov, clip_norm, t_update, learn)
        floating* out
        int q = cell_columns(kind, n, m)
        int parity = 0
    check_online_arrays(n * q + n + o * n + o, params, grad, penalty, state_a,
                        state_b, solver)
    if X.shape[1] != m or Y.shape[1] != o:
        raise ValueError("X must have m columns and Y o")
    if influence.shape[0] != n * q or hidden.shape[0] != n:
        raise ValueError("influence must have n * q entries, hidden n")
    if scratch.shape[0] < diagonal_scratch_size(n, m, o):
        raise ValueError("scratch too small")
    if loss_rows.shape[0] < data.count:
        raise ValueError("loss_rows too small")
    out = output_rows(outputs, Y)
    with nogil:
        rtrl_online(
            kind, activation, loss_kind, &data, reset_state, &params[0], n,
            &rule, &penalty[0], &state_a[0], &state_b[0], &hidden[0],
            &influence[0], &parity, True, &grad[0], &scratch[0],
            &loss_rows[0] if data.count else NULL, out)
    return rule.t


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
    int pooling=0,
):
    """Hidden states of the element-wise cell, each sequence from ``h0``;
    ``H`` as for ``skrtrl._kernels._elman.elman_forward``."""
    cdef:
        int n = theta.shape[0]
        int m = X.shape[1]
        floating[::1] scratch
    if theta.shape[1] != m + 2 or h0.shape[0] != n:
        raise ValueError("theta must have m + 2 columns and h0 n entries")
    if H.shape[1] != n:
        raise ValueError("H must have n columns")
    scratch = np.empty(forward_scratch_size(DIAGONAL, n, m),
                       dtype=np.asarray(h0).dtype)
    if lengths.shape[0] == 0:
        return
    with nogil:
        run_forward(DIAGONAL, activation, n, m, &X[0, 0], &x_start[0],
                    &lengths[0], lengths.shape[0], &theta[0, 0], &bias_hh[0],
                    every_step, &H[0, 0], &h0[0], &scratch[0],
                    pooling)
