# cython: language_level=3
"""Exact RTRL for the Elman cell: the entry points of the Python cell.

The cell is defined in ``_cells.pxd`` (ELMAN) and trained by the drivers of
``_rtrl.pxd``, which hold the maths. The recurrent parameters are one
row-major matrix ``theta`` (n x q, q = m + n + 1) = [W_ih | W_hh | b_ih];
``bias_hh`` is kept apart so that both torch biases stay separate
parameters, yet they share one influence column (their derivatives are
identical).

Packed sequences: ``X`` holds the time steps of all sequences, each
sequence's steps contiguous; ``x_start[b]`` is the first row of sequence b.
"""

# Bounds and wrap-around checks are set for the whole module by setup.py:
# off, or on with SKRTRL_DEBUG=1 to audit the kernels.
from cython cimport floating

from ._cells cimport ELMAN, cell_state
from ._common cimport (
    Packed, UpdateRule, check_online_arrays, output_rows, pack, set_pooling,
    update_rule,
)
from ._rtrl cimport (
    forward_scratch_size, influence_size, pool_size, rtrl_minibatch, rtrl_online,
    run_forward, scratch_layout,
)

import numpy as np

from ._blocks import _set_block_columns  # noqa: F401 (benchmarks, tests)


def train_scratch_size(int n, int m, int o):
    """Numbers of scratch memory one thread of the training kernels needs."""
    return scratch_layout(ELMAN, n, m, o).size


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
    int pooling=0,
):
    """Run a minibatch forward with exact RTRL; gradients per sequence.

    Threads take the sequences one at a time and write one gradient row per
    sequence (``_rtrl.pxd``). The number of threads is the number of rows
    of ``influence``.

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
    pooling : what each sequence's one target reads (``_common.pxd``'s
        POOL_*: its last h, their mean or maximum over time); a pooled
        readout needs ``pool_size`` more influence numbers per thread.
    """
    cdef:
        Packed data = pack(X, Y, x_start, y_start, lengths, target_weight,
                           every_step, weight_scale)
        int n = theta.shape[0]
        int q = theta.shape[1]
        int o = W_out.shape[0]
        int size = n * q + o * n + o
    set_pooling(&data, pooling)
    if q != X.shape[1] + n + 1:
        raise ValueError("theta must have m + n + 1 columns")
    if grad_rows.shape[0] < data.count or grad_rows.shape[1] != size:
        raise ValueError("grad_rows has the wrong size")
    if influence.shape[1] < (
            influence_size(ELMAN, n, X.shape[1], False)
            + (pool_size(ELMAN, n, X.shape[1], False) if pooling else 0)):
        raise ValueError("influence workspace too small")
    if scratch.shape[1] < train_scratch_size(n, X.shape[1], o):
        raise ValueError("scratch workspace too small")
    if loss_rows.shape[0] < data.count:
        raise ValueError("loss_rows too small")
    if data.count == 0:
        return
    with nogil:
        rtrl_minibatch(
            ELMAN, activation, loss_kind, &data, n, q, &theta[0, 0],
            &bias_hh[0], &W_out[0, 0], &b_out[0], False, False,
            &grad_rows[0, 0], grad_rows.shape[1], &influence[0, 0],
            influence.shape[1], &scratch[0, 0], scratch.shape[1],
            min(influence.shape[0], scratch.shape[0]), &loss_rows[0])


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
    bint learn=True,
    floating[:, ::1] outputs=None,
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
    learn : False to advance the state and influence only: no gradient,
        no update, ``t_update`` unchanged.
    outputs : None, or an array shaped like Y whose row k receives target
        k's readout pre-activation, computed before its update: the
        prediction of that step by the model of the moment.

    Returns
    -------
    (t_update, parity) after the call.
    """
    cdef:
        Packed data = pack(X, Y, x_start, y_start, lengths, target_weight,
                           every_step, 1.0)
        UpdateRule rule = update_rule(
            solver, learning_rate, beta_1, beta_2, epsilon, momentum,
            nesterov, clip_norm, t_update, learn)
        floating* out
        int q = m + n + 1
    check_online_arrays(n * q + n + o * n + o, params, grad, penalty, state_a,
                        state_b, solver)
    if X.shape[1] != m or Y.shape[1] != o:
        raise ValueError("X must have m columns and Y o")
    if influence.shape[0] != 2 or influence.shape[1] != n * n * q:
        raise ValueError("influence must have shape (2, n * n * q)")
    if hidden.shape[0] != n or scratch.shape[0] < train_scratch_size(n, m, o):
        raise ValueError("hidden or scratch too small")
    if loss_rows.shape[0] < data.count:
        raise ValueError("loss_rows too small")
    out = output_rows(outputs, Y)
    with nogil:
        rtrl_online(
            ELMAN, activation, loss_kind, &data, reset_state, &params[0], n,
            &rule, &penalty[0], &state_a[0], &state_b[0], &hidden[0],
            &influence[0, 0], &parity, False, &grad[0], &scratch[0],
            &loss_rows[0] if data.count else NULL, out)
    return rule.t, parity


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
    int pooling=0,
):
    """Hidden states of the Elman cell, each sequence starting from ``h0``.

    ``H`` receives the state after every step (rows laid out like ``X``) when
    ``every_step``, otherwise the final state of sequence s (or, with
    ``pooling``, its mean or maximum over the steps) in row s.
    ``scratch`` is workspace (replaced when too small); ``h0`` is the
    initial state (zeros for independent sequences, the stream state
    otherwise).
    """
    cdef:
        int n = theta.shape[0]
        int m = X.shape[1]
    if theta.shape[1] != m + n + 1 or h0.shape[0] != n or H.shape[1] != n:
        raise ValueError("theta, h0 or H of the wrong size")
    if scratch.shape[0] < forward_scratch_size(ELMAN, n, m):
        scratch = np.empty(forward_scratch_size(ELMAN, n, m),
                           dtype=np.asarray(h0).dtype)
    if lengths.shape[0] == 0:
        return
    with nogil:
        run_forward(ELMAN, activation, n, m, &X[0, 0], &x_start[0],
                    &lengths[0], lengths.shape[0], &theta[0, 0], &bias_hh[0],
                    every_step, &H[0, 0], &h0[0], &scratch[0],
                    pooling)
