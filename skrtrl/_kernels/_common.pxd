# Activations and output losses shared by every cell kernel.

from libc.math cimport (
    copysignf, exp, fabs, fabsf, log, log1p, pow, sqrt, tanh,
)
from libc.string cimport memcpy, memset
from cython cimport floating
from openmp cimport omp_get_wtime

from ._interrupt cimport signal_raised


# Two loops of the online update over every parameter, written in C so that
# they can be compiled twice: for the default x86-64 target (SSE2: four
# float32 or two float64 numbers per instruction) and for AVX (eight or
# four), the copy chosen at run time by the CPU. On the EGRU stream of
# 1,024 units, Adam's square root and division were about a quarter of the
# kernel's time (``perf``) at four numbers per instruction. Each number goes
# through the same IEEE operations in the same order in both copies
# (the AVX target has no fused multiply-add to contract them into), so the
# results of an x86-64 build for the default target do not depend on the
# CPU. Elsewhere (another compiler, another architecture, or a build for
# AVX already) there is one copy; a target with fused multiply-adds (other
# architectures, -march builds) may contract these loops, as the rest of
# the kernels.
cdef extern from *:
    """
    #if defined(__GNUC__) && defined(__x86_64__) && !defined(__AVX__)
    #define SKRTRL_AVX_COPY 1
    #define SKRTRL_AVX __attribute__((target("avx")))
    #endif
    #if defined(__GNUC__)
    #define SKRTRL_INLINE static inline __attribute__((always_inline))
    #else
    #define SKRTRL_INLINE static inline
    #endif

    /* One Adam step of each of the n numbers; see optimizer_step. */
    #define SKRTRL_ADAM(T, SQRT) \\
        SKRTRL_INLINE void \\
        skrtrl_adam_##T##_body(T *params, const T *grad, T *m, T *v, \\
                               Py_ssize_t n, T lr_t, T b1, T c1, T b2, \\
                               T c2, T eps) \\
        { \\
            Py_ssize_t i; \\
            T gi, a, b; \\
            for (i = 0; i < n; i++) { \\
                gi = grad[i]; \\
                a = b1 * m[i] + c1 * gi; \\
                b = b2 * v[i] + c2 * gi * gi; \\
                m[i] = a; \\
                v[i] = b; \\
                params[i] -= lr_t * a / (SQRT(b) + eps); \\
            } \\
        }
    SKRTRL_ADAM(float, sqrtf)
    SKRTRL_ADAM(double, sqrt)

    /* The float64 sum_of_squares_fast: sixteen partial sums, enough
       chains of additions to keep the adder busy at four doubles per
       instruction. */
    #define SKRTRL_SQUARES(T) \\
        SKRTRL_INLINE double \\
        skrtrl_squares_##T##_body(const T *x, Py_ssize_t n) \\
        { \\
            Py_ssize_t i = 0; \\
            int k; \\
            double part[16], rest = 0.0; \\
            for (k = 0; k < 16; k++) \\
                part[k] = 0.0; \\
            for (; i + 16 <= n; i += 16) \\
                for (k = 0; k < 16; k++) \\
                    part[k] += x[i + k] * x[i + k]; \\
            for (; i < n; i++) \\
                rest += x[i] * x[i]; \\
            for (k = 0; k < 8; k++) \\
                part[k] += part[k + 8]; \\
            return (((part[0] + part[1]) + (part[2] + part[3])) \\
                    + ((part[4] + part[5]) + (part[6] + part[7]))) + rest; \\
        }
    SKRTRL_SQUARES(double)

    /* The float32 sum_of_squares_fast: 32 partial sums in float (the
       squares are floats already), each over at most 64 squares before it
       is added into one of 32 in double; the conversions cost more than
       the sums in double. */
    SKRTRL_INLINE double
    skrtrl_squares_float_body(const float *x, Py_ssize_t n)
    {
        Py_ssize_t i = 0, end;
        int k;
        float part[32];
        double total[32], sum = 0.0;
        for (k = 0; k < 32; k++)
            total[k] = 0.0;
        while (i + 32 <= n) {
            end = i + 32 * 64;
            if (end > n)
                end = n - (n - i) % 32;
            for (k = 0; k < 32; k++)
                part[k] = 0.0f;
            for (; i < end; i += 32)
                for (k = 0; k < 32; k++)
                    part[k] += x[i + k] * x[i + k];
            for (k = 0; k < 32; k++)
                total[k] += part[k];
        }
        for (k = 0; k < 32; k++)
            sum += total[k];
        for (; i < n; i++)
            sum += x[i] * x[i];
        return sum;
    }

    /* The entry points: the AVX copy when the CPU (and the OS) has it.
       RETURN is "return", or nothing for a function of no value. */
    #ifdef SKRTRL_AVX_COPY
    #define SKRTRL_TWICE(RET, RETURN, NAME, PARAMS, ARGS) \\
        static SKRTRL_AVX RET NAME##_avx PARAMS { RETURN NAME##_body ARGS; } \\
        static RET NAME##_plain PARAMS { RETURN NAME##_body ARGS; } \\
        static inline RET NAME PARAMS { \\
            if (__builtin_cpu_supports("avx")) { \\
                RETURN NAME##_avx ARGS; \\
            } else { \\
                RETURN NAME##_plain ARGS; \\
            } \\
        }
    #else
    #define SKRTRL_TWICE(RET, RETURN, NAME, PARAMS, ARGS) \\
        static inline RET NAME PARAMS { RETURN NAME##_body ARGS; }
    #endif
    #define SKRTRL_ADAM_PARAMS(T) (T *params, const T *grad, T *m, T *v, \\
        Py_ssize_t n, T lr_t, T b1, T c1, T b2, T c2, T eps)
    #define SKRTRL_ADAM_ARGS (params, grad, m, v, n, lr_t, b1, c1, b2, c2, eps)
    SKRTRL_TWICE(void, , skrtrl_adam_float, SKRTRL_ADAM_PARAMS(float),
                 SKRTRL_ADAM_ARGS)
    SKRTRL_TWICE(void, , skrtrl_adam_double, SKRTRL_ADAM_PARAMS(double),
                 SKRTRL_ADAM_ARGS)
    SKRTRL_TWICE(double, return, skrtrl_squares_float,
                 (const float *x, Py_ssize_t n), (x, n))
    SKRTRL_TWICE(double, return, skrtrl_squares_double,
                 (const double *x, Py_ssize_t n), (x, n))
    """
    void skrtrl_adam_float(
        float* params, const float* grad, float* m, float* v, Py_ssize_t n,
        float lr_t, float b1, float c1, float b2, float c2, float eps,
    ) noexcept nogil
    void skrtrl_adam_double(
        double* params, const double* grad, double* m, double* v,
        Py_ssize_t n, double lr_t, double b1, double c1, double b2,
        double c2, double eps,
    ) noexcept nogil
    double skrtrl_squares_float(const float* x, Py_ssize_t n) noexcept nogil
    double skrtrl_squares_double(const double* x, Py_ssize_t n) noexcept nogil


# Codes must match skrtrl._cells.ACTIVATIONS and LOSSES.
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

# What a per-sequence readout reads (skrtrl._cells.POOLINGS): the last h,
# the mean or per-unit maximum of h over the sequence's steps, or the mean
# and the last h side by side (2n numbers: the mean cannot tell when
# something happened, the last h alone forgets what it did not keep), the
# last h divided by the length as the mean's sum is (``averaged_width``).
cdef enum:
    POOL_LAST = 0
    POOL_MEAN = 1
    POOL_MAX = 2
    POOL_MEAN_LAST = 3


cdef inline int pooled_width(int pooling, int n) noexcept nogil:
    """Numbers the readout reads: n, or 2n for the mean beside the last."""
    return 2 * n if pooling == POOL_MEAN_LAST else n


cdef inline int averaged_width(int pooling, int n) noexcept nogil:
    """How many of the pooled numbers are divided by the sequence's length
    at its end: the mean's n, and for POOL_MEAN_LAST the last h's n too.
    The last h then enters with the weight 1/T it has in the mean, its own
    weights read it on top, and its share of dL/dz is a step's share, as
    each step's in the mean: read undivided, on the training folds of the
    short UCR sets the readout fitted the last step and left the mean
    unlearnt (``doc/user_guide.rst``, the choice of the defaults)."""
    if pooling == POOL_MEAN:
        return n
    return 2 * n if pooling == POOL_MEAN_LAST else 0


cdef inline int running_pooling(int pooling) noexcept nogil:
    """The pooling of the first n numbers the readout reads, which the
    drivers fold step by step (POOL_MEAN_LAST: the mean; its last part is
    the last step's, read at the end)."""
    return POOL_MEAN if pooling == POOL_MEAN_LAST else pooling


cdef inline double _sigmoid(double a) noexcept nogil:
    """1 / (1 + e^-a) for a >= 0, e^a / (1 + e^a) below (never overflows).

    Written without a branch (the numerator is selected): a gate's sign is
    a coin toss, and the mispredicted branch cost about a tenth of the step
    of an element-wise stream of 1,024 units; the same numbers either way.
    """
    cdef double e = exp(-fabs(a))
    return (1.0 if a >= 0 else e) / (1.0 + e)


cdef union _FloatBits:
    float f
    int i


cdef inline float _exp_nonpositive(float u) noexcept nogil:
    """e^u for u <= 0 (or NaN) in single precision, 0 below -104 (where e^u
    is below half the smallest subnormal); at most 1.12 ulp from e^u over
    the 440,000 inputs of ``test_float32_gates_are_within_three_ulp``.

    Written without a call or a branch, so that a loop over the units runs
    four numbers at a time: libm's expf is a call per number, which kept
    the float32 gates one unit at a time (about a third of a float32 EGRU
    stream's step went to the forward pass).

    e^u = 2^k e^r with k = round(u / ln 2) and r = u - k ln 2 in
    [-ln 2 / 2, ln 2 / 2], ln 2 taken in two parts (Cody and Waite, 1980,
    *Software Manual for the Elementary Functions*) so that k ln 2 is
    exact in the first; e^r by its Taylor series to r^7 (the first term
    left out is below 2^-27 there); 2^k as the product of two powers of
    two built from their bits, each a normal float for k >= -252, so that
    a subnormal result is rounded once. A NaN stays NaN (through r).
    """
    cdef _FloatBits lo, hi
    cdef float k, r, p
    cdef int ki, k1
    u = u if not u < <float> -104 else <float> -104
    # 1.5 * 2^23 added and taken away rounds to the nearest integer.
    k = (u * <float> 1.44269504088896341 + <float> 12582912) - <float> 12582912
    r = (u - k * <float> 0.693359375) - k * <float> -2.12194440e-4
    p = <float> 1 + r * (<float> 1 + r * (<float> 0.5 + r * (
        <float> (1.0 / 6) + r * (<float> (1.0 / 24) + r * (
            <float> (1.0 / 120) + r * (<float> (1.0 / 720)
                                       + r * <float> (1.0 / 5040)))))))
    # k is an integer in [-150, 0] but for a NaN, which a float-to-int
    # conversion may not take.
    ki = <int> (k if k > <float> -152 else <float> -152)
    k1 = ki >> 1
    lo.i = (k1 + 127) << 23
    hi.i = (ki - k1 + 127) << 23
    return (p * lo.f) * hi.f


cdef inline float _sigmoidf(float a) noexcept nogil:
    """``_sigmoid`` in single precision."""
    cdef float e = _exp_nonpositive(-fabsf(a))
    return (<float> 1 if a >= 0 else e) / (<float> 1 + e)


cdef inline float _tanhf(float a) noexcept nogil:
    """tanh in single precision from one exponential (glibc's tanhf goes
    through expm1f, which cost as much as the rest of a float32 EGRU's
    forward step): (1 - e) / (1 + e) with e = e^(-2|a|), and the sign of
    a. Below |a| = 1/4, where 1 - e would lose digits, the Taylor series
    up to a^9 instead (the first term left out is below 2^-26 of tanh
    there)."""
    cdef float x = fabsf(a)
    cdef float x2 = a * a
    cdef float e = _exp_nonpositive(<float> -2 * x)
    cdef float large = (<float> 1 - e) / (<float> 1 + e)
    cdef float small = x + x * x2 * (
        <float> (-1.0 / 3) + x2 * (<float> (2.0 / 15) + x2 * (
            <float> (-17.0 / 315) + x2 * <float> (62.0 / 2835))))
    return copysignf(small if x < <float> 0.25 else large, a)


# The gates and activations of a float32 kernel are computed in single
# precision (``_exp_nonpositive``, and tanh from it), those of a float64
# kernel in double: the double arithmetic of a float32 kernel made every
# step convert each number twice, which kept its loops from running four
# numbers at a time (a float32 stream ran at two thirds of the float64
# one's speed).
cdef inline floating sigmoid(floating a) noexcept nogil:
    """1 / (1 + e^-a) in the precision of the floating type."""
    if floating is float:
        return _sigmoidf(a)
    else:
        return _sigmoid(a)


cdef inline floating tanh_of(floating a) noexcept nogil:
    """tanh(a) in the precision of the floating type."""
    if floating is float:
        return _tanhf(a)
    else:
        return tanh(a)


cdef inline void activate(int kind, int n, floating* a,
                          floating* deriv) noexcept nogil:
    """Replace a by phi(a) in place and write phi'(a) into deriv."""
    cdef int k
    cdef floating v
    if kind == ACT_TANH:
        for k in range(n):
            v = tanh_of(a[k])
            a[k] = v
            deriv[k] = 1 - v * v
    elif kind == ACT_LOGISTIC:
        for k in range(n):
            v = sigmoid(a[k])
            a[k] = v
            deriv[k] = v * (1 - v)
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
    and writes g = dL/dh_t (n), which each gradient method turns into the
    recurrent gradient. Returns the weighted loss. Plain loops: o is small,
    and a BLAS call per product cost more than the product at n = 8.
    """
    cdef int c, l
    cdef floating acc, dc
    cdef double loss
    cdef const floating* w
    for c in range(o):
        w = W_out + c * n
        acc = b_out[c]
        for l in range(n):
            acc = acc + w[l] * h[l]
        zout[c] = acc
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


cdef inline double sum_of_squares(const floating* x,
                                  Py_ssize_t size) noexcept nogil:
    """sum_i x_i^2 in index order, each square of the floating type."""
    cdef Py_ssize_t i
    cdef double total = 0.0
    for i in range(size):
        total += x[i] * x[i]
    return total


cdef inline double sum_of_squares_fast(const floating* x,
                                       Py_ssize_t size) noexcept nogil:
    """``sum_of_squares`` with partial sums (vectorised, see the C loops
    at the top): in float64, sixteen, within a relative (size - 1) 2^-53
    of the exact sum, as the serial one is (as is any order of the
    additions); in float32, 32 in float over at most 64 squares each,
    then in double, within 4e-6 + (size - 1) 2^-53 (63 2^-24 / (1 - 63
    2^-24) < 3.8e-6 for a float sum of 64 nonnegative numbers); NaN or
    infinite if a float partial sum overflows."""
    if floating is float:
        return skrtrl_squares_float(x, size)
    else:
        return skrtrl_squares_double(x, size)


cdef inline void clip_gradient(floating* grad, Py_ssize_t size,
                               double clip_norm) noexcept nogil:
    """Scale grad by clip_norm / ||grad|| when its norm is above
    ``clip_norm`` (<= 0: no clipping); ||grad||^2 is summed in index order.

    That serial sum is one chain of dependent additions (4 cycles a number,
    the longest part of the update of an element-wise stream of 1,024
    units after the optimizer). Its only use is the test against
    ``clip_norm`` and the scale, so it is first summed with partial sums
    (``sum_of_squares_fast``): the serial sum of the same nonnegative
    squares is within gamma = (size - 1) 2^-53 (relative) of the exact
    one, the fast sum within 4e-6 + gamma, and a fast sum below
    clip_norm^2 (1 - 1e-4) puts the serial one, and its square root, below
    the threshold (1e-4 > 4e-6 + 4 gamma while size < 10^8; clip_norm <
    10^100 keeps the double sums far from overflow). The serial sum is
    taken only otherwise (near the threshold, above it, or not finite), so
    the result is the serial rule's, bit for bit.
    """
    cdef Py_ssize_t i
    cdef double norm, scale
    if clip_norm <= 0:
        return
    if (size < 100_000_000 and clip_norm < 1e100
            and sum_of_squares_fast(grad, size)
            < clip_norm * clip_norm * (1.0 - 1e-4)):
        return
    norm = sqrt(sum_of_squares(grad, size))
    if norm > clip_norm:
        scale = clip_norm / norm
        for i in range(size):
            grad[i] *= <floating> scale


cdef inline floating penalty_term(
    const floating* penalty, const floating* params, double weight,
    Py_ssize_t i,
) noexcept nogil:
    """The L2 penalty's gradient on params[i], weight * penalty[i] *
    params[i], in the precision of the floating type."""
    if floating is float:
        return <float> weight * penalty[i] * params[i]
    else:
        return weight * penalty[i] * params[i]


cdef inline void add_penalty(
    floating* grad, const floating* params, const floating* penalty,
    double weight, Py_ssize_t size,
) noexcept nogil:
    """grad += weight * penalty * params (the L2 penalty's gradient)."""
    cdef Py_ssize_t i
    for i in range(size):
        grad[i] += penalty_term(penalty, params, weight, i)


cdef inline void optimizer_step(
    floating* params, floating* grad, Py_ssize_t size, int solver,
    double learning_rate, double beta_1, double beta_2, double epsilon,
    double momentum, bint nesterov, floating* state_a, floating* state_b,
    long long t,
) noexcept nogil:
    """One optimizer update, the same arithmetic as ``skrtrl._optim``.

    ``t`` is the update's number (from 1). Adam keeps its moments in
    ``state_a``/``state_b``, SGD its velocity in ``state_a``. The
    settings are rounded to the floating type, in which each number's
    update is computed (as numpy computes ``skrtrl._optim``'s on float32
    arrays); only Adam's step size lr_t is taken in double first.
    """
    cdef Py_ssize_t i
    cdef floating gi, a, lr_t, rate, mom
    cdef floating b1 = <floating> beta_1, c1 = <floating> (1 - beta_1)
    cdef floating b2 = <floating> beta_2, c2 = <floating> (1 - beta_2)
    cdef floating eps = <floating> epsilon
    if solver == SOLVER_ADAM:
        lr_t = <floating> (learning_rate * sqrt(1 - pow(beta_2, t))
                           / (1 - pow(beta_1, t)))
        # a = b1 m + c1 g, b = b2 v + c2 g g, params -= lr_t a / (sqrt(b)
        # + eps), number by number (the C loops at the top).
        if floating is float:
            skrtrl_adam_float(params, grad, state_a, state_b, size, lr_t,
                              b1, c1, b2, c2, eps)
        else:
            skrtrl_adam_double(params, grad, state_a, state_b, size, lr_t,
                               b1, c1, b2, c2, eps)
    else:
        rate = <floating> learning_rate
        mom = <floating> momentum
        for i in range(size):
            gi = grad[i]
            a = mom * state_a[i] - rate * gi
            state_a[i] = a
            if nesterov:
                params[i] += mom * a - rate * gi
            else:
                params[i] += a


# What the online kernels need to update the parameters after a step: the
# optimizer's settings, the L2 penalty and clipping, and the update count,
# with the arrays of the kernel's floating type (the L2 coefficient of every
# parameter, the optimizer's state: Adam's moments, or SGD's velocity in
# ``state_a``) as untyped pointers, which ``online_update`` casts back.
ctypedef struct UpdateRule:
    int solver
    double learning_rate
    double beta_1
    double beta_2
    double epsilon
    double momentum
    bint nesterov
    double clip_norm    # <= 0: no clipping
    long long t         # updates made so far
    bint learn          # False: advance the state only, no update
    const void* penalty
    void* state_a
    void* state_b


cdef inline UpdateRule update_rule(object update, Py_ssize_t size,
                                   floating* like) except *:
    """The UpdateRule of an ``skrtrl._optim.OnlineUpdate`` for a parameter
    vector of ``size`` numbers; ``like`` (not read) selects the floating
    type. The arrays stay owned by ``update``, which the caller holds for
    the kernel call; ValueError unless they match ``size`` and the type."""
    cdef:
        UpdateRule rule
        const floating[::1] penalty
        floating[::1] state_a
        floating[::1] state_b
    (rule.solver, rule.learning_rate, rule.beta_1, rule.beta_2, rule.epsilon,
     rule.momentum, rule.nesterov, state_a, state_b, rule.t, penalty,
     rule.clip_norm) = update.kernel_args()
    rule.learn = update.learn
    if penalty.shape[0] != size or state_a.shape[0] != size:
        raise ValueError("penalty and optimizer state must match params")
    if rule.solver == SOLVER_ADAM and state_b.shape[0] != size:
        raise ValueError("Adam needs a second moment of the size of params")
    rule.penalty = rule.state_a = rule.state_b = NULL
    if size > 0:
        rule.penalty = &penalty[0]
        rule.state_a = &state_a[0]
        rule.state_b = &state_b[0] if rule.solver == SOLVER_ADAM else &state_a[0]
    return rule


cdef inline void online_step(
    UpdateRule* rule, floating* params, floating* grad, Py_ssize_t size,
) noexcept nogil:
    """``online_update`` of a gradient that holds the L2 penalty already:
    clipping and the optimizer step."""
    clip_gradient(grad, size, rule.clip_norm)
    rule.t += 1
    optimizer_step(
        params, grad, size, rule.solver, rule.learning_rate, rule.beta_1,
        rule.beta_2, rule.epsilon, rule.momentum, rule.nesterov,
        <floating*> rule.state_a, <floating*> rule.state_b, rule.t)


cdef inline void online_update(
    UpdateRule* rule, floating* params, floating* grad, Py_ssize_t size,
    double weight,
) noexcept nogil:
    """The per-step update of the online kernels: L2 penalty, clipping and
    one optimizer step on ``params``; counts the update in ``rule.t``."""
    add_penalty(grad, params, <const floating*> rule.penalty, weight, size)
    online_step(rule, params, grad, size)


# The packed sequences of a kernel call: the steps of all sequences in the
# rows of ``values`` (each sequence's steps contiguous, from row x_start[b])
# and their targets in the rows of ``targets`` (from row y_start[b]: one per
# step when every_step, else one per sequence), each with its weight
# target_weight[row] times weight_scale. The three arrays are of the
# kernel's floating type (``sequence`` casts them back). ``pooling``: what
# the one target of a sequence reads (POOL_*; POOL_LAST with every_step).
ctypedef struct Packed:
    const void* values
    const void* targets
    const void* target_weight
    const Py_ssize_t* x_start
    const Py_ssize_t* y_start
    const Py_ssize_t* lengths
    Py_ssize_t count
    int m
    int o
    bint every_step
    double weight_scale
    int pooling


cdef inline Packed pack(
    const floating[:, ::1] X, const floating[:, ::1] Y,
    const Py_ssize_t[::1] x_start, const Py_ssize_t[::1] y_start,
    const Py_ssize_t[::1] lengths, const floating[::1] target_weight,
    bint every_step, double weight_scale,
) except *:
    """The Packed view of the arrays, checked for consistent sizes."""
    cdef Packed data
    if target_weight.shape[0] != Y.shape[0]:
        raise ValueError("target_weight needs one weight per row of Y")
    if x_start.shape[0] != lengths.shape[0] or y_start.shape[0] != lengths.shape[0]:
        raise ValueError("x_start, y_start and lengths differ in length")
    data.values = data.targets = data.target_weight = NULL
    data.x_start = data.y_start = data.lengths = NULL
    if X.shape[0] > 0:
        data.values = &X[0, 0]
    if Y.shape[0] > 0:
        data.targets = &Y[0, 0]
        data.target_weight = &target_weight[0]
    if lengths.shape[0] > 0:
        data.x_start = &x_start[0]
        data.y_start = &y_start[0]
        data.lengths = &lengths[0]
    data.count = lengths.shape[0]
    data.m = X.shape[1]
    data.o = Y.shape[1]
    data.every_step = every_step
    data.weight_scale = weight_scale
    data.pooling = POOL_LAST
    return data


cdef inline Packed pack_batch(object batch, double weight_scale,
                              floating* like) except *:
    """The Packed view of an ``skrtrl._sequences.TrainingBatch`` (values,
    targets, x_start, y_start, lengths, target_weight, every_step), each
    target's weight times ``weight_scale``; ``like`` (not read) selects the
    floating type. The arrays stay owned by ``batch``, which the caller
    holds for the kernel call."""
    cdef:
        const floating[:, ::1] X = batch.values
        const floating[:, ::1] Y = batch.targets
        const Py_ssize_t[::1] x_start = batch.x_start
        const Py_ssize_t[::1] y_start = batch.y_start
        const Py_ssize_t[::1] lengths = batch.lengths
        const floating[::1] target_weight = batch.target_weight
        bint every_step = batch.every_step
    return pack(X, Y, x_start, y_start, lengths, target_weight, every_step,
                weight_scale)


cdef inline void set_pooling(Packed* data, int pooling) except *:
    """ValueError unless ``pooling`` is a POOL_* code that ``data`` allows
    (a pooled readout needs one target per sequence)."""
    if pooling < POOL_LAST or pooling > POOL_MEAN_LAST:
        raise ValueError("unknown pooling code")
    if pooling != POOL_LAST and data.every_step:
        raise ValueError("pooling needs one target per sequence")
    data.pooling = pooling


cdef inline void pool_step(
    int pooling, int n, Py_ssize_t t, const floating* h, floating* pool,
) noexcept nogil:
    """Fold step t's h into ``pool``: the running sum (POOL_MEAN, divided
    by the length at the end) or maximum (POOL_MAX) of each unit; for
    POOL_MEAN_LAST the sum and, in ``pool[n:2n]``, h itself (both divided
    by the length at the end, ``averaged_width``)."""
    cdef int i
    if pooling == POOL_MEAN_LAST:
        memcpy(pool + n, h, n * sizeof(floating))
        pooling = POOL_MEAN
    if t == 0:
        memcpy(pool, h, n * sizeof(floating))
    elif pooling == POOL_MEAN:
        for i in range(n):
            pool[i] += h[i]
    else:
        for i in range(n):
            if h[i] > pool[i]:
                pool[i] = h[i]


cdef inline void sequence(
    const Packed* data, Py_ssize_t b, const floating** x, const floating** y,
    const floating** weights,
) noexcept nogil:
    """Inputs, targets and target weights of sequence b."""
    x[0] = <const floating*> data.values + data.x_start[b] * data.m
    y[0] = <const floating*> data.targets + data.y_start[b] * data.o
    weights[0] = <const floating*> data.target_weight + data.y_start[b]


cdef inline bint has_target(const Packed* data, Py_ssize_t b,
                            Py_ssize_t t) noexcept nogil:
    return data.every_step or t == data.lengths[b] - 1


cdef inline Py_ssize_t target_index(const Packed* data,
                                    Py_ssize_t t) noexcept nogil:
    """The row of step t's target within its sequence's targets."""
    return t if data.every_step else 0


# -- interrupts (Ctrl-C) inside the step loops --------------------------------
# The loops call interrupt_due once per step: it reads the clock every
# INTERRUPT_STEPS steps (a few ns each) and, at most every
# INTERRUPT_MILLISECONDS, takes the GIL to run pending signal handlers
# (``_interrupt.pyx``). A call shorter than that never takes the GIL.
cdef enum:
    INTERRUPT_STEPS = 8
    INTERRUPT_MILLISECONDS = 100

ctypedef struct InterruptCheck:
    int countdown
    double last         # omp_get_wtime() of the last check


cdef inline InterruptCheck interrupt_check() noexcept nogil:
    cdef InterruptCheck check
    check.countdown = INTERRUPT_STEPS
    check.last = omp_get_wtime()
    return check


cdef inline bint interrupt_due(InterruptCheck* check) noexcept nogil:
    """Whether a signal handler raised: the loop stops before its next step
    (``_interrupt.raise_pending_signal`` raises the exception later)."""
    cdef double now
    check.countdown -= 1
    if check.countdown > 0:
        return False
    check.countdown = INTERRUPT_STEPS
    now = omp_get_wtime()
    if now - check.last < INTERRUPT_MILLISECONDS * 1e-3:
        return False
    check.last = now
    return signal_raised()


cdef inline bint stopping(InterruptCheck* check, bint* stop) noexcept nogil:
    """Whether a sequence loop stops before its next step: ``stop`` (shared
    by the threads) is set, or ``check`` (the main thread's; NULL on the
    others) finds that a signal handler raised, and sets it."""
    if stop[0]:
        return True
    if check != NULL and interrupt_due(check):
        stop[0] = True
        return True
    return False


cdef inline floating* output_rows(
    floating[:, ::1] outputs, object targets,
) except? NULL:
    """Where the online kernels record outputs: NULL for ``outputs=None``.

    ``outputs`` is laid out like the array of ``targets``; row k receives
    the readout pre-activation of target k, computed before that target's
    update (what a prediction of its step gives at that moment).
    """
    if outputs is None or targets.shape[0] == 0:
        return NULL
    if (outputs.shape[0] != targets.shape[0]
            or outputs.shape[1] != targets.shape[1]):
        raise ValueError("outputs must have the shape of the targets")
    return &outputs[0, 0]


cdef inline void record_output(
    floating* outputs, const Packed* data, Py_ssize_t b, Py_ssize_t k,
    const floating* zout,
) noexcept nogil:
    """Copy target k of sequence b's readout pre-activation ``zout`` into
    its row of ``outputs`` (see ``output_rows``); NULL records nothing."""
    if outputs != NULL:
        memcpy(outputs + (data.y_start[b] + k) * data.o, zout,
               data.o * sizeof(floating))
