# Activations and output losses shared by every cell kernel.

from libc.math cimport exp, log, log1p, tanh, fabs, sqrt, pow
from libc.string cimport memcpy
from cython cimport floating

from ._blas cimport gemv_rm, gemv_rm_t

# Codes must match skrtrl._base.ACTIVATIONS and LOSSES.
cdef enum:
    ACT_IDENTITY = 0
    ACT_TANH = 1
    ACT_LOGISTIC = 2
    ACT_RELU = 3

cdef enum:
    SOLVER_SGD = 0
    SOLVER_ADAM = 1

cdef enum:
    LOSS_SQUARED = 0
    LOSS_LOGISTIC = 1
    LOSS_SOFTMAX = 2


cdef inline double _sigmoid(double a) noexcept nogil:
    cdef double e
    if a >= 0:
        return 1.0 / (1.0 + exp(-a))
    e = exp(a)
    return e / (1.0 + e)


cdef inline void activate(int kind, int n, floating* a,
                          floating* deriv) noexcept nogil:
    """Replace a by phi(a) in place and write phi'(a) into deriv."""
    cdef int k
    cdef double v
    if kind == ACT_TANH:
        for k in range(n):
            v = tanh(a[k])
            a[k] = <floating> v
            deriv[k] = <floating> (1.0 - v * v)
    elif kind == ACT_LOGISTIC:
        for k in range(n):
            v = _sigmoid(a[k])
            a[k] = <floating> v
            deriv[k] = <floating> (v * (1.0 - v))
    elif kind == ACT_RELU:
        for k in range(n):
            if a[k] > 0:
                deriv[k] = 1
            else:
                a[k] = 0
                deriv[k] = 0
    else:
        for k in range(n):
            deriv[k] = 1


cdef inline double output_loss(int kind, int o, const floating* zout,
                               const floating* y, double weight,
                               floating* dz) noexcept nogil:
    """Weighted loss of one target and its gradient w.r.t. the readout.

    The three losses use their canonical output link (identity, logistic,
    softmax), so the gradient w.r.t. the pre-activation is always
    weight * (prediction - target), scaled by 1 / o for the squared loss
    (which is averaged over outputs, as in sklearn's MLP).
    """
    cdef int c
    cdef double loss = 0.0, diff, zmax, lse, p
    if kind == LOSS_SQUARED:
        for c in range(o):
            diff = zout[c] - y[c]
            loss += 0.5 * diff * diff
            dz[c] = <floating> (weight * diff / o)
        return weight * loss / o
    elif kind == LOSS_LOGISTIC:
        # log(1 + e^z) - y z, written to never overflow.
        p = zout[0]
        if p > 0:
            loss = p + log1p(exp(-p)) - y[0] * p
        else:
            loss = log1p(exp(p)) - y[0] * p
        dz[0] = <floating> (weight * (_sigmoid(p) - y[0]))
        return weight * loss
    else:
        zmax = zout[0]
        for c in range(1, o):
            if zout[c] > zmax:
                zmax = zout[c]
        lse = 0.0
        for c in range(o):
            lse += exp(zout[c] - zmax)
        lse = zmax + log(lse)
        for c in range(o):
            loss -= y[c] * (zout[c] - lse)
            dz[c] = <floating> (weight * (exp(zout[c] - lse) - y[c]))
        return weight * loss


cdef inline double readout_gradient(
    const floating* y, int o, int n, double weight, int loss_kind,
    const floating* W_out, const floating* b_out, const floating* h,
    floating* grad_out, floating* g, floating* zout, floating* dz,
) noexcept nogil:
    """Readout, loss and gradients of one target.

    Adds the readout gradient into ``grad_out`` = [W_out (o*n) | b_out (o)]
    and writes g = dL/dh_t (n), which each cell turns into its recurrent
    gradient through its influence matrices. Returns the weighted loss.
    """
    cdef:
        int k, l
        double loss
        floating* grad_b_out = grad_out + o * n
    memcpy(zout, b_out, o * sizeof(floating))
    gemv_rm(o, n, <floating> 1, W_out, n, h, <floating> 1, zout)
    loss = output_loss(loss_kind, o, zout, y, weight, dz)
    gemv_rm_t(o, n, <floating> 1, W_out, n, dz, <floating> 0, g)
    for k in range(o):
        grad_b_out[k] += dz[k]
        for l in range(n):
            grad_out[k * n + l] += dz[k] * h[l]
    return loss


cdef inline void penalize_and_clip(
    floating* grad, const floating* params, const floating* penalty,
    double weight, Py_ssize_t size, double clip_norm,
) noexcept nogil:
    """grad += weight * penalty * params, then clip to ``clip_norm``
    (``clip_norm`` <= 0: no clipping)."""
    cdef Py_ssize_t i
    cdef double norm = 0.0, scale
    for i in range(size):
        grad[i] += <floating> (weight * penalty[i] * params[i])
        norm += grad[i] * grad[i]
    norm = sqrt(norm)
    if clip_norm > 0 and norm > clip_norm:
        scale = clip_norm / norm
        for i in range(size):
            grad[i] *= <floating> scale


cdef inline void optimizer_step(
    floating* params, floating* grad, Py_ssize_t size, int solver,
    double learning_rate, double beta_1, double beta_2, double epsilon,
    double momentum, bint nesterov, floating* state_a, floating* state_b,
    long long t,
) noexcept nogil:
    """One optimizer update, the same arithmetic as ``skrtrl._optim``.

    ``t`` is the update's number (from 1). Adam keeps its moments in
    ``state_a``/``state_b``, SGD its velocity in ``state_a``.
    """
    cdef Py_ssize_t i
    cdef double lr_t, gi
    if solver == SOLVER_ADAM:
        lr_t = learning_rate * sqrt(1 - pow(beta_2, t)) / (1 - pow(beta_1, t))
        for i in range(size):
            gi = grad[i]
            state_a[i] = <floating> (beta_1 * state_a[i] + (1 - beta_1) * gi)
            state_b[i] = <floating> (beta_2 * state_b[i] + (1 - beta_2) * gi * gi)
            params[i] -= <floating> (lr_t * state_a[i] / (sqrt(state_b[i]) + epsilon))
    else:
        for i in range(size):
            gi = grad[i]
            state_a[i] = <floating> (momentum * state_a[i] - learning_rate * gi)
            if nesterov:
                params[i] += <floating> (momentum * state_a[i] - learning_rate * gi)
            else:
                params[i] += state_a[i]


cdef inline long long online_update(
    floating* params, floating* grad, Py_ssize_t size, const floating* penalty,
    double weight, double clip_norm, int solver, double learning_rate,
    double beta_1, double beta_2, double epsilon, double momentum,
    bint nesterov, floating* state_a, floating* state_b, long long t,
) noexcept nogil:
    """The per-step update of the online kernels: L2 penalty, clipping and
    one optimizer step on ``params``. ``t`` counts the updates so far;
    returns the new count."""
    penalize_and_clip(grad, params, penalty, weight, size, clip_norm)
    optimizer_step(
        params, grad, size, solver, learning_rate, beta_1, beta_2, epsilon,
        momentum, nesterov, state_a,
        state_b if solver == SOLVER_ADAM else state_a, t + 1)
    return t + 1
