# Activations and output losses shared by every cell kernel.

from libc.math cimport exp, log, log1p, tanh, fabs
from cython cimport floating

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
