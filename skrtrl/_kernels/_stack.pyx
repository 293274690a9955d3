# cython: language_level=3
"""Stacks of layers: exact RTRL through the stack, the layer-local online
approximation, and BPTT.

Layer l (l = 0 .. L-1, bottom to top) is one cell of ``_cells.pxd`` (the
same for all layers, or one per layer: a mixed stack) with n_l units and
m_l inputs: m_0 the data's,
m_l = n_{l-1} above (layer l reads layer l-1's output y, ``cell_output``:
h, but for the LRUs, whose output map is y = f(C_re Re h - C_im Im h + D x
+ b); see "Layers with an output map" below). Its parameters theta^l
(R_l x q_l, W_l = R_l q_l numbers; then bias_hh, n_l numbers, for the cells
that keep it apart) are laid out one after the other in the flat vector,
then the readout of the top layer:

    [theta^0 (| bias_hh^0) | ... | theta^{L-1} (| ...) | W_out | b_out].

Exact RTRL (Irie et al., 2023, discuss the cost of the multi-layer case)
carries, for every layer l, its own influence M^(l,l) = d s^l / d theta^l
(for the element-wise cells per unit as for one layer,
``unit_influence_step``: ns blocks of R_l x q_l; dense, S_l x W_l, for the
fully connected cells), and, for every lower layer k < l, the dense
M^(l,k) = d s^l / d theta^k (S_l x W_k), updated after the forward step as

    M^(l,k)_t = J^l_t M^(l,k)_{t-1} + B^l_t (d x^l_t / d theta^k),

J^l_t block-diagonal for the element-wise cells (one ns x ns block per
unit, ``cell_unit_jacobian``; dense otherwise, ``cell_jacobian``, applied
through a temporary),
B^l_t = d s^l_t / d x^l_t (S_l x m_l, ``cell_input_jacobian``) and
d x^l_t / d theta^k the h rows of M^(l-1,k)_t, already updated at step t
(layers are updated bottom-up): per unit when k = l-1 and the cell is
element-wise (its own influence), dense otherwise (one GEMM). Per step and sequence this costs
O(S_l n_{l-1} W_k) for k < l-1 and O(S_l W_{l-1}) for k = l-1, and its
memory is sum over k < l of S_l W_k numbers: for two layers of n units
of an element-wise cell with G gates and m inputs below, ns G n^2 (m + 3)
numbers, ns n times the parameters of the bottom layer. A target's error g = dL/dh^top gives
the gradient g^T M^(top,k)[h rows] for every k.

Mixed stacks: each layer keeps its own influence as its cell asks (per unit
or dense), J^l is layer l's (per unit or dense), and the h rows of the
source are per unit when layer l-1 is element-wise, whatever layer l is (a
fully connected layer over an element-wise one adds B^l's column of each
row's unit, ``_add_from_units``). With ns_l state entries per unit,
S_l = ns_l n_l, W_l the parameters of layer l and e_l = 1 for an
element-wise cell, one step of one sequence costs, in multiply-adds,

    sum_l  (e_l ? (ns_l + 2) ns_l W_l : S_l^2 W_l)            own influences
  + sum_l sum_{k<l}  (e_l ? ns_l : S_l) S_l W_k              J^l M^(l,k)
  + sum_l sum_{k<l}  (k = l-1 and e_k ? 1 : n_{l-1}) S_l W_k  B^l M^(l-1,k)

(about: the element-wise own term is ``unit_influence_step``'s), plus the
forward pass, and (e_top ? W_top : n_top W_top) + n_top sum_{k<top} W_k
more at a step with a target (the gradient); it holds
sum_l (e_l ? ns_l : S_l) W_l + sum_l sum_{k<l} S_l W_k numbers of
influence. For a small fully connected layer (n_0 units, S_0 = ns_0 n_0,
P_0 = W_0 parameters) under a wide element-wise one (n_1 units, ns_1 = 1)
that is S_0^2 P_0 + 3 W_1 + n_1 P_0 + n_1 n_0 P_0 per step: what grows is
the fully connected layer's influence on the layer above, n_1 n_0 P_0 per
step in n_1 P_0 numbers, linear in the wide layer. At n_hidden=(8, 128), a
GRU (P_0 = 24 (m + 10)) under an element-wise GRU (W_1 = 384 (8 + 3)), and
m = 1 input, that is 3.3e5 multiply-adds per step (4.0e4 influence
numbers), against 4.6e3 for the element-wise GRU of 128 units alone and
3.3e6 for exact RTRL in a GRU of 32 units.

Layers with an output map (the LRU and the gated LRU, ``lru_cell``): the
layer above reads y^l, not s^l, so d x^(l+1) / d theta^k is

    Y^(l,k)_t = d y^l_t / d theta^k
              = E^l_t ([C_re, -C_im] M^(l,k)_t + D^l d x^l_t / d theta^k)

(E = diag(f'), ``cell_output_jvp``) for k < l: n_l x W_k numbers after the
M^(l,k) they are made of, O(n_l (2 n_l + m_l) W_k) per step; when the
source below is an element-wise layer's own per-unit influence it is
spread densely first (``spread_unit_influence``). For k = l the map's own
parameters (C, D, b: columns of theta^l with no influence through the
recurrence) join, and y mixes the units, so d y^l / d theta^l is dense
although the own influence U^l is per unit (J^l is made of 2 x 2 blocks,
ns = 2, as for an element-wise cell). The layer above takes its input
term B^(l+1) d y^l / d theta^l without forming it
(``cell_output_influence_product``: K = B^(l+1) E^l [C_re, -C_im] applied
to U^l, and B^(l+1) E^l to the map's columns), O(S_(l+1) n_l (n_l + q_l))
against the O(S_(l+1) n_l^2 q_l) of the product with the dense rows; only
a map layer above, whose D reads them, needs the dense Y^(l,l) (row i
from ``cell_output_influence``, O(n_l (r_l + q_l)) per row, r_l = 2 m_l +
3, or 3 m_l + 4 with the gate). The top layer keeps no Y: a target's g =
dL/dy^top gives gs = (d y / d s)^T g and the map's own gradient
(``cell_readout``), then gs^T U^top, gs^T M^(top,k) and gx^T d x^top /
d theta^k with gx = D^T E g (``cell_output_input_vjp``; through the map of
an LRU layer below, ``cell_output_vjp`` again), all O(S W) products. A
pooled readout of an LRU top reads every step's rows instead: its own
through ``pool_output_influence`` (``_rtrl.pxd``; a single layer takes
two passes instead) and Y^(top,k) for k < top (kept after the
accumulators). Per step the
maps add, in multiply-adds,

    sum_(l map, l < top, or pooled)  sum_{k<l} n_l (2 n_l + m_l) W_k
  + sum_(l map, l+1 map, l+1 < top or pooled)  n_l (r_l + q_l) n_l
  + sum_(l map, l < top)  S_(l+1) n_l (2 n_l + q_l)     (replacing the
                                                          term k = l of
                                                          B^(l+1) M)

and sum_(l map, l < top) (sum_{k<l} n_l W_k + (l+1 map, l+1 < top) n_l
W_l) numbers of influence (with a pooled readout, after its accumulators,
the top's n_top sum_{k<top} W_k and, under an LRU top, n_(top-1)
W_(top-1)). At n_hidden=(32, 32) of gated LRUs with 12 inputs, one
thread, targets at every step, exact RTRL took 171 us per sequence-step,
against 32 us for element-wise GRUs of the same sizes and 6 us for one
gated LRU of 32 units (``benchmarks/bench_stack_cost.py --cell glru
--inputs 12``); a pooled readout, which needs Y^(1,0), 5.7 (mean) and 5.3
(maximum) times the last step's (``bench_pooling.py --cost``).

The layer-local approximation (Zucchet et al., 2023) keeps only M^(l,l) and
sends the error down through the current step only:

    delta^(l-1)_t = (d x^l_t / d s^(l-1)_t)^T (d s^l_t / d x^l_t)^T delta^l_t,

delta^top = g; layer l's gradient is delta^(l)T M^(l,l). With one layer it
is exact RTRL. For element-wise cells its cost is the forward pass's. With
output maps, delta^l is the error of y^l, x^l = y^(l-1): it reaches the
state through (d y^l / d s^l)^T (``cell_output_vjp``, which also gives
the map's own parameters their gradient), and the input through B^l and
the map's direct path D^T E delta^l (``cell_output_input_vjp``).

Pooled readouts (one target per sequence read from z, the mean of the top
layer's y over the T steps or each top unit's maximum over them; exact
RTRL and BPTT only). dL/dz is known at the end only, so exact RTRL carries
beside the influences an accumulator A^k (n_top x W_k; W_top numbers for
the per-unit own influence of an element-wise top layer) for every layer
k: for the mean the running sum of the top layer's influence rows,

    A^k_t = sum_{tau <= t} M^(top,k)_tau[h rows]     (M^(top,top): own),

and at the end dL/dtheta^k = (1/T) A^kT dL/dz, since dz/dtheta^k is
(1/T) sum_t d h^top_t / d theta^k; for the maximum, row i of A^k is row i
of M^(top,k) at the step of unit i's maximum (the first, on ties):
d z_i / d theta^k = d h^top_{t_i,i} / d theta^k with t_i fixed (z is
differentiable wherever the maximum is unique). Either way one pass over
the h rows of the top layer's influences per step (sum or copy), n_top
(sum over k of W_k) numbers more memory, and one matrix-vector product at
the end. The layer-local approximation has no pooled form: its error goes
down through the current step only, and a pooled error arrives at the end,
for every step at once. BPTT injects the pooled error at every step
instead: dL/dz / T into each step's dL/dh^top_t (mean), dL/dz_i into unit
i's at the step of its maximum (max).
"""

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memset, memcpy

from ._blas cimport gemm_rm, gemv_rm_t
from ._cells cimport (
    N_CELLS, cell_columns, cell_diagonal, cell_forward, cell_immediate,
    cell_influence_columns, cell_input_jacobian, cell_jacobian, cell_output,
    cell_output_influence, cell_output_influence_product,
    cell_output_influence_size, cell_output_input_vjp,
    cell_output_jvp, cell_output_vjp, cell_per_unit, cell_readout, cell_rows,
    cell_separate_bias, cell_unit_jacobian, cell_vjp, copy_bias_gradient,
    lru_cell, record_size, step_work_size,
)
from ._common cimport (
    InterruptCheck, POOL_LAST, POOL_MEAN, POOL_MEAN_LAST, Packed, UpdateRule,
    has_target,
    interrupt_check, interrupt_due, online_update, output_rows, pack_batch,
    pool_step, readout_gradient, record_output, sequence, set_pooling,
    stopping, target_index, update_rule,
)
from ._rtrl cimport (
    h_block_gradient, output_map_gradient, pool_dense_influence,
    pool_output_influence, pool_unit_influence, pooled_readout,
    spread_unit_influence, unit_gradient, unit_influence_step,
)

import numpy as np

cdef enum:
    MAX_LAYERS = 16
    PAD = 8


# Geometry of a stack: sizes per layer and the offsets of every buffer.
ctypedef struct Stack:
    int kind[MAX_LAYERS]                # each layer's cell
    int activation
    int L
    int o
    int ns[MAX_LAYERS]                  # state entries per unit
    bint local
    bint full[MAX_LAYERS]               # J_t not diagonal: dense influences
    bint map[MAX_LAYERS]                # an output map (the LRUs): y is not h
    int n[MAX_LAYERS]
    int m[MAX_LAYERS]
    int q[MAX_LAYERS]
    Py_ssize_t W[MAX_LAYERS]
    Py_ssize_t S[MAX_LAYERS]
    Py_ssize_t theta[MAX_LAYERS]        # in the parameters
    Py_ssize_t bias[MAX_LAYERS]         # bias_hh kept apart (-1: in theta)
    Py_ssize_t state[MAX_LAYERS]        # in the state
    Py_ssize_t own[MAX_LAYERS]          # M^(l,l) in the influence
    Py_ssize_t cross[MAX_LAYERS * MAX_LAYERS]  # M^(l,k), [l * L + k]
    Py_ssize_t out[MAX_LAYERS * MAX_LAYERS]    # Y^(l,k) of a map layer
    Py_ssize_t pooled[MAX_LAYERS]       # A^k, after the influences
    Py_ssize_t rec[MAX_LAYERS]          # in the scratch
    Py_ssize_t B[MAX_LAYERS]            # in the scratch
    Py_ssize_t work
    Py_ssize_t J                        # S x S (fully connected cells)
    Py_ssize_t tmp                      # J M before the input term
    Py_ssize_t g
    Py_ssize_t delta
    Py_ssize_t gs                       # dL/ds of a map layer (2 widest)
    Py_ssize_t row                      # a row of cell_output_influence
    Py_ssize_t expand                   # a per-unit h block, dense
    Py_ssize_t kwork                    # cell_output_influence_product's
    int widest
    Py_ssize_t zout
    Py_ssize_t dz
    Py_ssize_t grad
    Py_ssize_t pool                     # the pooled y of the top layer
    Py_ssize_t arg_max                  # its step of each maximum (BPTT)
    Py_ssize_t n_theta
    Py_ssize_t n_params
    Py_ssize_t state_size
    Py_ssize_t influence_size
    Py_ssize_t pool_size                # all A^k (a pooled readout's)
    Py_ssize_t scratch_size


cdef inline void set_stack_pooling(Packed* data, int pooling) except *:
    """``set_pooling``, and ValueError for the mean beside the last h: a
    stack's readout reads n numbers of its top layer."""
    set_pooling(data, pooling)
    if pooling == POOL_MEAN_LAST:
        raise ValueError("a stack's readout reads the last, mean or maximum "
                         "of its top layer")


def layer_kinds(kind, sizes):
    """Each layer's cell kind: ``kind`` an int (every layer's) or one per
    layer, bottom to top."""
    if isinstance(kind, (tuple, list)):
        kinds = tuple(int(k) for k in kind)
        if len(kinds) != len(sizes):
            raise ValueError("one cell kind per layer")
        return kinds
    return (int(kind),) * len(sizes)


cdef Stack stack_layout(kind, int activation, sizes, int m, int o,
                        bint local) except *:
    cdef Stack st
    cdef int l, k, top, c
    cdef Py_ssize_t pos, at, widest = 0, work = 0, big = 0, block = 0
    cdef Py_ssize_t row = 0, expand = 0, kwork = 0
    if len(sizes) < 1 or len(sizes) > MAX_LAYERS:
        raise ValueError(f"a stack has 1 to {MAX_LAYERS} layers")
    kinds = layer_kinds(kind, sizes)
    for c in kinds:
        if c < 0 or c >= N_CELLS:
            raise ValueError("unknown cell kind")
    st.activation = activation
    st.L = len(sizes)
    st.o = o
    st.local = local
    pos = 0
    for l in range(st.L):
        c = kinds[l]
        st.kind[l] = c
        st.ns[l] = cell_per_unit(c)
        # The LRUs' J_t is made of 2 x 2 blocks, one per unit: their own
        # influence is per unit, as the element-wise cells'.
        st.map[l] = lru_cell(c)
        st.full[l] = not cell_diagonal(c) and not st.map[l]
        st.n[l] = sizes[l]
        st.m[l] = m if l == 0 else st.n[l - 1]
        st.q[l] = cell_columns(c, st.n[l], st.m[l])
        st.W[l] = <Py_ssize_t> cell_rows(c, st.n[l]) * st.q[l]
        st.S[l] = <Py_ssize_t> st.ns[l] * st.n[l]
        st.theta[l] = pos
        pos += st.W[l]
        st.bias[l] = -1
        if cell_separate_bias(c):
            st.bias[l] = pos
            pos += st.n[l]
    st.n_theta = pos
    st.n_params = pos + <Py_ssize_t> o * st.n[st.L - 1] + o
    pos = 0
    for l in range(st.L):
        st.state[l] = pos
        pos += st.S[l]
    st.state_size = pos
    # Each layer's own influence: per unit (ns blocks of R x q) for the
    # element-wise cells, dense (S x W) otherwise; then M^(l,k), k < l.
    # (The temporary of J M, ``block``, is for the fully connected layers'
    # products only.)
    # A layer with an output map (exact RTRL) then keeps Y^(l,k) = d y^l /
    # d theta^k (n_l x W_k) for k < l below the top, and for k = l when the
    # layer above has a map too (whose D reads it; the input term of the
    # layer above takes it without forming it,
    # ``cell_output_influence_product``). The top's are needed by a pooled
    # readout only (a target's gradient goes through ``cell_output_vjp``
    # instead): they follow its accumulators, and so does Y^(top-1,top-1),
    # which only the top's Y^(top,top-1) reads.
    top = st.L - 1
    pos = 0
    for l in range(st.L):
        st.own[l] = pos
        pos += st.S[l] * st.W[l] if st.full[l] else st.ns[l] * st.W[l]
        if st.full[l] and st.S[l] * st.W[l] > block:
            block = st.S[l] * st.W[l]
        for k in range(l):
            st.cross[l * st.L + k] = pos
            if not local:
                pos += st.S[l] * st.W[k]
                if st.full[l] and st.S[l] * st.W[k] > block:
                    block = st.S[l] * st.W[k]
        if not st.map[l] or local:
            continue
        if l < top:
            for k in range(l):
                st.out[l * st.L + k] = pos
                pos += <Py_ssize_t> st.n[l] * st.W[k]
        if l + 1 < top and st.map[l + 1]:
            st.out[l * st.L + l] = pos
            pos += <Py_ssize_t> st.n[l] * st.W[l]
        if cell_output_influence_size(st.kind[l], st.n[l], st.m[l]) > row:
            row = cell_output_influence_size(st.kind[l], st.n[l], st.m[l])
        if (l > 0 and not st.full[l - 1] and not st.map[l - 1]
                and st.n[l - 1] * st.W[l - 1] > expand):
            expand = st.n[l - 1] * st.W[l - 1]
    for l in range(1, st.L):
        if st.map[l - 1] and not local and 3 * st.S[l] * st.n[l - 1] > kwork:
            kwork = 3 * st.S[l] * st.n[l - 1]
    st.influence_size = pos
    # A pooled readout's accumulators (see the module docstring): the h rows
    # of the top layer's influences, per unit for an element-wise own one,
    # the rows of d y / d theta (``cell_output_influence``) for a map's.
    st.pooled[top] = pos
    if st.map[top]:
        pos += st.n[top] * cell_output_influence_size(
            st.kind[top], st.n[top], st.m[top])
    else:
        pos += st.W[top] if not st.full[top] else st.n[top] * st.W[top]
    for k in range(top):
        st.pooled[k] = pos
        if not local:
            pos += st.n[top] * st.W[k]
    if st.map[top] and not local:
        for k in range(top):
            st.out[top * st.L + k] = pos
            pos += <Py_ssize_t> st.n[top] * st.W[k]
        if top > 0 and st.map[top - 1]:
            st.out[(top - 1) * st.L + top - 1] = pos
            pos += <Py_ssize_t> st.n[top - 1] * st.W[top - 1]
    st.pool_size = pos - st.influence_size
    at = PAD
    for l in range(st.L):
        st.rec[l] = at
        at += record_size(st.kind[l], st.n[l], st.m[l])
        st.B[l] = at
        at += st.S[l] * st.m[l] if l > 0 else 0
        if step_work_size(st.kind[l], st.n[l]) > work:
            work = step_work_size(st.kind[l], st.n[l])
        if st.n[l] > widest:
            widest = st.n[l]
        if st.full[l] and st.S[l] > big:
            big = st.S[l]
    st.widest = widest
    st.work = at
    at += work
    st.J = at
    at += big * big
    st.tmp = at
    at += block
    st.g = at
    at += widest
    st.delta = at
    at += 2 * widest
    st.gs = at
    at += 2 * widest
    st.row = at
    at += row
    st.expand = at
    at += expand
    st.kwork = at
    at += kwork
    st.zout = at
    at += o
    st.dz = at
    at += o
    st.grad = at
    at += st.n_params
    st.pool = at
    at += st.n[top]
    st.arg_max = at                     # step numbers, exact below 2^24
    at += st.n[top]
    st.scratch_size = at + PAD
    return st


def stack_sizes(kind, sizes, int m, int o, bint local):
    """(parameters, state, influence per sequence, scratch per thread) of a
    stack (see the module docstring), in numbers."""
    cdef Stack st = stack_layout(kind, 0, sizes, m, o, local)
    return st.n_params, st.state_size, st.influence_size, st.scratch_size


def stack_pool_size(kind, sizes, int m, int o, bint local):
    """Numbers per sequence (per thread) of a pooled readout's accumulators
    (see the module docstring), which ``stack_rtrl_minibatch`` reads after
    the influence's numbers in each ``"influence"`` row."""
    cdef Stack st = stack_layout(kind, 0, sizes, m, o, local)
    return st.pool_size


cdef inline void _apply_unit_jacobians(
    const Stack* st, int l, const floating* theta, const floating* rec,
    floating* M, Py_ssize_t width,
) noexcept nogil:
    """M (S_l x width) <- J^l_t M, one ns x ns block per unit, in place."""
    cdef:
        int n = st.n[l]
        int i
        Py_ssize_t j
        floating Jd[4]
        floating a, b
        floating* r0
        floating* r1
    for i in range(n):
        cell_unit_jacobian(st.kind[l], n, st.m[l], st.q[l], theta, rec, i, Jd)
        r0 = M + i * width
        if st.ns[l] == 1:
            a = Jd[0]
            for j in range(width):
                r0[j] = a * r0[j]
        else:
            r1 = M + (n + i) * width
            for j in range(width):
                a = r0[j]
                b = r1[j]
                r0[j] = Jd[0] * a + Jd[1] * b
                r1[j] = Jd[2] * a + Jd[3] * b


cdef inline void _apply_dense_jacobian(
    const Stack* st, int l, const floating* J, floating* M, Py_ssize_t width,
    floating* tmp,
) noexcept nogil:
    """M (S_l x width) <- J^l_t M through ``tmp`` (J: S_l x S_l, written by
    ``cell_jacobian``)."""
    cdef Py_ssize_t S = st.S[l]
    gemm_rm(S, width, S, <floating> 1, J, S, M, width, <floating> 0, tmp,
            width)
    memcpy(M, tmp, S * width * sizeof(floating))


cdef inline void _own_gradient(
    const Stack* st, int l, const floating* own, const floating* g,
    floating* grad,
) noexcept nogil:
    """grad += g^T (h rows of layer l's own influence)."""
    if st.full[l]:
        gemv_rm_t(st.n[l], st.W[l], <floating> 1, own, st.W[l], g,
                  <floating> 1, grad)
    else:
        h_block_gradient(st.n[l], cell_rows(st.kind[l], st.n[l]), st.q[l],
                         own, g, grad)


cdef inline void _step_from_units(
    const Stack* st, int l, const floating* theta, const floating* rec,
    const floating* B, const floating* U, floating* M, bint first,
) noexcept nogil:
    """M^(l,l-1) <- J^l_t M^(l,l-1) + B^l (h rows of M^(l-1,l-1)) in one
    pass over M (``first``: M = 0 before, not read), the latter per unit:
    unit j of layer l-1 depends on its own rows of theta^(l-1) only. (In two
    passes, J first, the stack at n_hidden=(256, 256) was slower.)"""
    cdef:
        int k = l - 1
        int n = st.n[l], nk = st.n[k], qk = st.q[k], ml = st.m[l]
        Py_ssize_t Wk = st.W[k]
        int R = cell_rows(st.kind[k], nk)
        int i, rho, j, c
        floating Jd[4]
        floating j00, j01, j10, j11, b0, b1, p0, p1, v
        const floating* src
        floating* r0
        floating* r1
    for i in range(n):
        if first:
            Jd[0] = Jd[1] = Jd[2] = Jd[3] = 0
        else:
            cell_unit_jacobian(st.kind[l], n, st.m[l], st.q[l], theta, rec, i,
                               Jd)
        j00 = Jd[0]
        j01, j10, j11 = Jd[1], Jd[2], Jd[3]
        j = -1
        for rho in range(R):
            j = j + 1 if j + 1 < nk else 0
            src = U + rho * qk
            r0 = M + i * Wk + rho * qk
            b0 = B[i * ml + j]
            if st.ns[l] == 1:
                if first:
                    for c in range(qk):
                        r0[c] = b0 * src[c]
                else:
                    for c in range(qk):
                        v = src[c]
                        r0[c] = j00 * r0[c] + b0 * v
                continue
            r1 = M + (n + i) * Wk + rho * qk
            b1 = B[(n + i) * ml + j]
            for c in range(qk):
                v = src[c]
                p0 = r0[c] if not first else 0
                p1 = r1[c] if not first else 0
                r0[c] = j00 * p0 + j01 * p1 + b0 * v
                r1[c] = j10 * p0 + j11 * p1 + b1 * v


cdef inline void _add_from_units(
    const Stack* st, int l, const floating* B, const floating* U, floating* M,
) noexcept nogil:
    """M^(l,l-1) += B^l (h rows of M^(l-1,l-1)) for a fully connected
    layer l over an element-wise one: row rho of theta^(l-1) moves unit
    rho mod n_(l-1) only, so each of its S_l x q entries is one product
    (S_l W_(l-1) in all, no GEMM over the mostly zero dense rows)."""
    cdef:
        int k = l - 1
        int nk = st.n[k], qk = st.q[k], ml = st.m[l]
        Py_ssize_t Wk = st.W[k], S = st.S[l], i
        int R = cell_rows(st.kind[k], nk)
        int rho, j, c
        floating b
        const floating* src
        floating* r
    for i in range(S):
        j = -1
        for rho in range(R):
            j = j + 1 if j + 1 < nk else 0
            b = B[i * ml + j]
            src = U + rho * qk
            r = M + i * Wk + rho * qk
            for c in range(qk):
                r[c] += b * src[c]


cdef inline floating* _rows_of(
    const Stack* st, int l, int k, floating* influence,
) noexcept nogil:
    """d y^l / d theta^k (n_l x W_k, dense), what layer l+1 reads: the h rows
    of M^(l,k) (of the own influence when k = l, a fully connected layer's),
    or Y^(l,k) for a layer with an output map. Not for k = l of an
    element-wise layer, whose own influence is per unit (the callers take
    it per unit)."""
    if st.map[l]:
        return influence + st.out[l * st.L + k]
    if k == l:
        return influence + st.own[l]
    return influence + st.cross[l * st.L + k]


cdef inline void _own_output_rows(
    const Stack* st, int l, const floating* theta, const floating* rec,
    const floating* U, floating* Y, floating* V,
) noexcept nogil:
    """Y^(l,l) (n x W, dense) of a map layer from its per-unit influence U:
    each row from ``cell_output_influence`` (through V), spread over
    theta^l's layout (unit j's first r columns, then row i's map columns)."""
    cdef:
        int n = st.n[l], q = st.q[l]
        int r = cell_influence_columns(st.kind[l], n, st.m[l])
        int i, j
        Py_ssize_t W = st.W[l]
        floating* y
    for i in range(n):
        cell_output_influence(st.kind[l], n, st.m[l], q, theta, rec, U, i, V,
                              False)
        y = Y + i * W
        for j in range(n):
            memcpy(y + j * q, V + j * r, r * sizeof(floating))
            memset(y + j * q + r, 0, (q - r) * sizeof(floating))
        memcpy(y + i * q + r, V + n * r, (q - r) * sizeof(floating))


cdef inline void _layer_gradient(
    const Stack* st, int l, const floating* own, const floating* g,
    const floating* gs, floating* grad,
) noexcept nogil:
    """grad += layer l's share of g^T d y^l / d theta^l through its own
    influence: g^T (h rows), or, with an output map, gs^T U (gs = (d y /
    d s)^T g, from ``cell_output_vjp``, which takes the map's own
    parameters)."""
    if st.map[l]:
        unit_gradient(st.kind[l], st.n[l], st.m[l], st.q[l], own, gs, grad)
    else:
        _own_gradient(st, l, own, g, grad)


cdef inline void _error_gradient(
    const Stack* st, int l, const floating* params,
    const floating* influence, floating* scratch, const floating* err,
    floating* gs, floating* grad,
) noexcept nogil:
    """grad += err^T d y^l / d theta^l through layer l's own influence, err
    = dL/dy^l at this step: for a layer with an output map through the map
    first (``cell_output_vjp``: its own parameters, and gs, overwritten)."""
    if st.map[l]:
        cell_output_vjp(st.kind[l], st.n[l], st.m[l], st.q[l],
                        params + st.theta[l], scratch + st.rec[l], err, gs,
                        False, grad + st.theta[l], scratch + st.work)
    _layer_gradient(st, l, influence + st.own[l], err, gs, grad + st.theta[l])


cdef inline double stack_step(
    const Stack* st, const floating* params, const floating* x,
    floating* state, floating* influence, bint first, bint target,
    const floating* y, double weight, int loss_kind, floating* scratch,
    floating* grad, bint pooled,
) noexcept nogil:
    """One step of the stack from ``state`` (in place) and its influence;
    with a target, its loss, and its gradient added into ``grad`` (laid out
    as the parameters). ``first``: the influence is zero before the step
    (the buffer is not read). ``pooled``: a pooled readout follows, which
    reads the top layer's Y^(top,k) (its buffers after the accumulators)."""
    cdef:
        int L = st.L, top = st.L - 1, l, k
        int kind
        bint units
        double loss = 0.0
        const floating* inp
        const floating* theta
        const floating* X
        floating* rec
        floating* M
        floating* own
        floating* g = scratch + st.g
        floating* gs = scratch + st.gs
        floating* gx
        floating* cur
        floating* nxt
        floating* tmp
        Py_ssize_t Wtop = st.n_theta
    # Forward, bottom-up: layer l reads layer l-1's output y at the same
    # step (h, but for the layers with an output map).
    for l in range(L):
        kind = st.kind[l]
        inp = x if l == 0 else cell_output(
            st.kind[l - 1], st.n[l - 1], st.m[l - 1], state + st.state[l - 1],
            scratch + st.rec[l - 1])
        cell_forward(kind, st.activation, st.n[l], st.m[l], st.q[l],
                     params + st.theta[l],
                     params + st.bias[l] if st.bias[l] >= 0 else NULL, inp,
                     state + st.state[l], scratch + st.rec[l],
                     scratch + st.work, False)
        if l > 0:
            cell_input_jacobian(kind, st.n[l], st.m[l], st.q[l],
                                params + st.theta[l], scratch + st.rec[l], 0,
                                st.m[l], scratch + st.B[l])
    if target:
        # g = dL/dy^top; with an output map also gs = dL/ds^top and the
        # map's own gradient.
        loss = cell_readout(
            st.kind[top], st.n[top], st.m[top], st.q[top],
            params + st.theta[top], state + st.state[top],
            scratch + st.rec[top], y, st.o, weight, loss_kind, params + Wtop,
            params + Wtop + st.o * st.n[top], grad + Wtop,
            grad + st.theta[top], g, gs if st.map[top] else NULL,
            scratch + st.zout, scratch + st.dz, scratch + st.work)
    # The influences, bottom-up: M^(l,k)_t needs d y^(l-1) / d theta^k at t.
    for l in range(L):
        kind = st.kind[l]
        theta = params + st.theta[l]
        rec = scratch + st.rec[l]
        own = influence + st.own[l]
        if not st.full[l]:
            unit_influence_step(kind, st.n[l], st.m[l], st.q[l], theta, rec,
                                own, first, NULL, NULL, NULL, 0)
        else:
            cell_jacobian(kind, st.n[l], st.m[l], st.q[l], theta, rec,
                          st.S[l], scratch + st.J)
            if first:
                memset(own, 0, st.S[l] * st.W[l] * sizeof(floating))
            else:
                _apply_dense_jacobian(st, l, scratch + st.J, own, st.W[l],
                                      scratch + st.tmp)
            cell_immediate(kind, st.n[l], st.m[l], st.q[l], rec, own,
                           st.W[l], 0, st.W[l])
        if st.local:
            continue
        if (st.map[l] and l < top and st.map[l + 1]
                and (l + 1 < top or pooled)):
            _own_output_rows(st, l, theta, rec, own,
                             influence + st.out[l * L + l], scratch + st.row)
        for k in range(l):
            M = influence + st.cross[l * L + k]
            # The source per unit: layer l-1's own influence, h its output.
            units = k == l - 1 and not st.full[k] and not st.map[k]
            if units and not st.full[l]:
                _step_from_units(st, l, theta, rec, scratch + st.B[l],
                                 influence + st.own[k], M, first)
            else:
                if first:
                    memset(M, 0, st.S[l] * st.W[k] * sizeof(floating))
                elif st.full[l]:
                    _apply_dense_jacobian(st, l, scratch + st.J, M, st.W[k],
                                          scratch + st.tmp)
                else:
                    _apply_unit_jacobians(st, l, theta, rec, M, st.W[k])
                if units:
                    # A fully connected layer over an element-wise one.
                    _add_from_units(st, l, scratch + st.B[l],
                                    influence + st.own[k], M)
                elif k == l - 1 and st.map[k]:
                    # B^l (d y^k / d theta^k), from the per-unit own one.
                    cell_output_influence_product(
                        st.kind[k], st.n[k], st.m[k], st.q[k],
                        params + st.theta[k], scratch + st.rec[k],
                        influence + st.own[k], scratch + st.B[l], st.S[l],
                        st.m[l], M, st.W[k], scratch + st.kwork)
                else:
                    gemm_rm(st.S[l], st.W[k], st.n[l - 1], <floating> 1,
                            scratch + st.B[l], st.m[l],
                            _rows_of(st, l - 1, k, influence), st.W[k],
                            <floating> 1, M, st.W[k])
            if not st.map[l] or (l == top and not pooled):
                continue
            # Y^(l,k) = (d y / d s) M^(l,k) + (d y / d x) d x^l / d theta^k.
            if units:
                spread_unit_influence(st.kind[k], st.n[k], st.q[k],
                                      influence + st.own[k],
                                      scratch + st.expand)
                X = scratch + st.expand
            else:
                X = _rows_of(st, l - 1, k, influence)
            cell_output_jvp(kind, st.n[l], st.m[l], st.q[l], theta, rec, M, X,
                            influence + st.out[l * L + k], st.W[k])
    if not target:
        return loss
    _layer_gradient(st, top, influence + st.own[top], g, gs,
                    grad + st.theta[top])
    if top == 0:
        return loss
    if not st.local and not st.map[top]:
        for k in range(top):
            gemv_rm_t(st.n[top], st.W[k], <floating> 1,
                      _rows_of(st, top, k, influence), st.W[k], g,
                      <floating> 1, grad + st.theta[k])
        return loss
    if not st.local:
        # g^T Y^(top,k) without Y: gs^T M^(top,k) + gx^T d x^top / d theta^k,
        # gx = (d y / d x)^T g the map's direct path.
        gx = scratch + st.delta
        memset(gx, 0, st.m[top] * sizeof(floating))
        cell_output_input_vjp(st.kind[top], st.n[top], st.m[top], st.q[top],
                              params + st.theta[top], scratch + st.rec[top],
                              g, gx)
        for k in range(top):
            gemv_rm_t(st.S[top], st.W[k], <floating> 1,
                      influence + st.cross[top * L + k], st.W[k], gs,
                      <floating> 1, grad + st.theta[k])
            if k == top - 1 and not st.full[k]:
                # gx^T d y^k / d theta^k from layer k's own influence (gs
                # is free: this is the last k).
                _error_gradient(st, k, params, influence, scratch, gx, gs,
                                grad)
            else:
                gemv_rm_t(st.n[top - 1], st.W[k], <floating> 1,
                          _rows_of(st, top - 1, k, influence), st.W[k], gx,
                          <floating> 1, grad + st.theta[k])
        return loss
    # The error down through the current step: only the h rows of the
    # error are nonzero (the layer above reads h), so B's h rows suffice;
    # a layer with an output map sends gs (all its state) through B and
    # the map's direct path from its input.
    cur = scratch + st.delta
    nxt = cur + st.widest
    memcpy(cur, g, st.n[top] * sizeof(floating))
    for l in range(top, 0, -1):
        if st.map[l]:
            gemv_rm_t(st.S[l], st.m[l], <floating> 1, scratch + st.B[l],
                      st.m[l], gs, <floating> 0, nxt)
            cell_output_input_vjp(st.kind[l], st.n[l], st.m[l], st.q[l],
                                  params + st.theta[l], scratch + st.rec[l],
                                  cur, nxt)
        else:
            gemv_rm_t(st.n[l], st.m[l], <floating> 1, scratch + st.B[l],
                      st.m[l], cur, <floating> 0, nxt)
        _error_gradient(st, l - 1, params, influence, scratch, nxt, gs, grad)
        tmp = cur
        cur = nxt
        nxt = tmp
    return loss


cdef inline void copy_bias_gradients(const Stack* st,
                                     floating* grad) noexcept nogil:
    """bias_hh's gradient is b_ih's, in the cells that keep it apart."""
    cdef int l
    for l in range(st.L):
        if st.bias[l] >= 0:
            copy_bias_gradient(st.kind[l], st.n[l], st.q[l], grad + st.theta[l],
                               grad + st.bias[l])


cdef inline void _pool_rows(
    int pooling, int n, Py_ssize_t W, Py_ssize_t t, const floating* h,
    const floating* pool, const floating* M, floating* A,
) noexcept nogil:
    """Fold the h rows of a dense influence M (n x W first) into A: a copy
    at t = 0, then added (mean) or copied per unit at a new maximum (max).
    Call before ``pool_step`` moves ``pool``."""
    if t == 0:
        memcpy(A, M, n * W * sizeof(floating))
    else:
        pool_dense_influence(pooling, n, W, h, pool, M, A, 0, W)


cdef inline void _pool_influences(
    const Stack* st, int pooling, Py_ssize_t t, const floating* params,
    const floating* state, floating* influence, floating* scratch,
) noexcept nogil:
    """Step t's top-layer influences into the accumulators A^k (after the
    influences in the same row), then y^top_t into the pooled y."""
    cdef:
        int top = st.L - 1, k
        int n = st.n[top]
        const floating* h = cell_output(st.kind[top], n, st.m[top],
                                        state + st.state[top],
                                        scratch + st.rec[top])
        floating* pool = scratch + st.pool
        floating* A = influence + st.influence_size
    if st.map[top]:
        pool_output_influence(st.kind[top], pooling, n, st.m[top], st.q[top],
                              t, params + st.theta[top],
                              scratch + st.rec[top], h, pool,
                              influence + st.own[top],
                              A + st.pooled[top] - st.influence_size)
    elif st.full[top]:
        _pool_rows(pooling, n, st.W[top], t, h, pool, influence + st.own[top],
                   A + st.pooled[top] - st.influence_size)
    else:
        pool_unit_influence(st.kind[top], pooling, n, st.q[top], t, h, pool,
                            influence + st.own[top],
                            A + st.pooled[top] - st.influence_size, False)
    for k in range(top):
        _pool_rows(pooling, n, st.W[k], t, h, pool,
                   _rows_of(st, top, k, influence),
                   A + st.pooled[k] - st.influence_size)
    pool_step(pooling, n, t, h, pool)


cdef inline double _pooled_gradient(
    const Stack* st, int pooling, Py_ssize_t length, const floating* y,
    double weight, int loss_kind, const floating* params,
    const floating* influence, floating* scratch, floating* grad,
) noexcept nogil:
    """The readout of the pooled y (h but for an LRU top), its loss, and its
    gradient: the readout's, and A^kT dL/dz (/ T for the mean) for every
    layer k."""
    cdef:
        int top = st.L - 1, k
        int n = st.n[top]
        floating* g = scratch + st.g
        const floating* A = influence + st.influence_size
        double loss = pooled_readout(
            pooling, st.o, length, y, weight, loss_kind, n,
            params + st.n_theta, params + st.n_theta + st.o * n,
            scratch + st.pool, grad + st.n_theta, g, scratch + st.zout,
            scratch + st.dz)
    if st.map[top]:
        output_map_gradient(n, cell_influence_columns(st.kind[top], n,
                                                      st.m[top]),
                            st.q[top], A + st.pooled[top] - st.influence_size,
                            g, grad + st.theta[top])
    else:
        _own_gradient(st, top, A + st.pooled[top] - st.influence_size, g,
                      grad + st.theta[top])
    for k in range(top):
        gemv_rm_t(n, st.W[k], <floating> 1,
                  A + st.pooled[k] - st.influence_size, st.W[k], g,
                  <floating> 1, grad + st.theta[k])
    return loss


cdef inline double stack_sequence(
    const Stack* st, int loss_kind, const Packed* data, Py_ssize_t b,
    const floating* params, floating* state, floating* influence,
    floating* scratch, InterruptCheck* check, bint* stop,
) noexcept nogil:
    """Sequence b from the zero state; its gradient into the scratch's
    gradient row (zeroed by the caller). A pooled readout (``data.pooling``)
    reads its accumulators after the influence in ``influence``."""
    cdef:
        Py_ssize_t t, k, T = data.lengths[b]
        double loss = 0.0
        bint target
        bint pooled = data.pooling != POOL_LAST
        const floating* X
        const floating* Y
        const floating* weights
    sequence(data, b, &X, &Y, &weights)
    memset(state, 0, st.state_size * sizeof(floating))
    for t in range(T):
        if stopping(check, stop):
            break
        # A pooled readout's error comes at the end (below).
        target = has_target(data, b, t) and not pooled
        k = target_index(data, t)
        loss += stack_step(
            st, params, X + t * data.m, state, influence, t == 0, target,
            Y + k * data.o, data.weight_scale * weights[k] if target else 0,
            loss_kind, scratch, scratch + st.grad, pooled)
        if not pooled:
            continue
        _pool_influences(st, data.pooling, t, params, state, influence,
                         scratch)
        if has_target(data, b, t):
            k = target_index(data, t)
            loss += _pooled_gradient(
                st, data.pooling, T, Y + k * data.o,
                data.weight_scale * weights[k], loss_kind, params, influence,
                scratch, scratch + st.grad)
    copy_bias_gradients(st, scratch + st.grad)
    return loss


def stack_rtrl_minibatch(
    kind, int activation, int loss_kind, sizes, bint local, batch,
    double weight_scale, const floating[::1] params, dict workspace,
    int pooling=0,
):
    """Gradients per sequence of a minibatch, threads over the sequences.

    As ``_rtrl.rtrl_minibatch`` (the bundles ``batch`` and ``workspace``),
    for a stack (``sizes``: units per layer, bottom to top) of the cell
    ``kind`` (an int: every layer's; a tuple: each layer's, a mixed stack)
    with the ``activation`` of the cells that have one; ``local``
    takes the layer-local approximation instead of exact RTRL. ``params``
    and the rows of ``workspace["grad"]`` are laid out as in the module
    docstring; ``workspace`` also holds one row of ``"state"``,
    ``"influence"`` and ``"scratch"`` per thread (``stack_sizes``).
    ``pooling``: what each sequence's one target reads (``_common.pxd``'s
    POOL_*: the top layer's last h, their mean or maximum over time), exact
    RTRL only; a pooled readout needs ``stack_pool_size`` more numbers in
    each ``"influence"`` row. Each sequence's cost is then one more pass
    over the h rows of the top layer's influences per step.
    """
    cdef:
        Packed data = pack_batch(batch, weight_scale, <floating*> NULL)
        Stack st = stack_layout(kind, activation, sizes, data.m, data.o,
                                local)
        floating[:, ::1] grad_rows = workspace["grad"]
        double[::1] loss_rows = workspace["loss"]
        floating[:, ::1] state = workspace["state"]
        floating[:, ::1] influence = workspace["influence"]
        floating[:, ::1] scratch = workspace["scratch"]
        Py_ssize_t b, size = st.n_params
        int tid = 0, n_threads
        floating* mine
        InterruptCheck check = interrupt_check()
        bint stopped = False
        bint* stop = &stopped
    set_stack_pooling(&data, pooling)
    if pooling != POOL_LAST and local:
        raise ValueError("the layer-local approximation has no pooled "
                         "readout (see the module docstring)")
    if params.shape[0] != size:
        raise ValueError("params has the wrong size")
    if grad_rows.shape[0] < data.count or grad_rows.shape[1] != size:
        raise ValueError("grad_rows has the wrong size")
    if (state.shape[1] < st.state_size
            or influence.shape[1] < max(1, st.influence_size
                                        + (st.pool_size if pooling else 0))
            or scratch.shape[1] < st.scratch_size):
        raise ValueError("workspace too small")
    if loss_rows.shape[0] < data.count:
        raise ValueError("loss_rows too small")
    n_threads = min(state.shape[0], influence.shape[0], scratch.shape[0])
    if data.count == 0:
        return
    with nogil:
        if n_threads <= 1:
            for b in range(data.count):
                memset(&scratch[0, 0] + st.grad, 0, size * sizeof(floating))
                loss_rows[b] = stack_sequence(
                    &st, loss_kind, &data, b, &params[0], &state[0, 0],
                    &influence[0, 0], &scratch[0, 0], &check, stop)
                memcpy(&grad_rows[b, 0], &scratch[0, 0] + st.grad,
                       size * sizeof(floating))
        else:
            for b in prange(data.count, schedule="dynamic",
                            num_threads=n_threads):
                tid = threadid()
                mine = &scratch[0, 0] + tid * scratch.shape[1]
                memset(mine + st.grad, 0, size * sizeof(floating))
                loss_rows[b] = stack_sequence(
                    &st, loss_kind, &data, b, &params[0],
                    &state[0, 0] + tid * state.shape[1],
                    &influence[0, 0] + tid * influence.shape[1], mine,
                    &check if tid == 0 else NULL, stop)
                memcpy(&grad_rows[0, 0] + b * grad_rows.shape[1],
                       mine + st.grad, size * sizeof(floating))


def stack_rtrl_online(
    kind, int activation, int loss_kind, sizes, bint local, batch,
    update, dict state, bint reset_state, floating[::1] params,
    floating[:, ::1] outputs=None,
):
    """Updates after every step with a target (real-time RTRL) for a stack.

    As ``_rtrl.rtrl_online`` (the bundles ``batch``, ``update`` and
    ``state``): sequences in order, each from the zero state when
    ``reset_state``, else carrying ``state["hidden"]`` (every layer's state,
    bottom first) and ``state["influence"]`` on (a new stream's are zero).
    Returns the weighted loss of each sequence.
    """
    cdef:
        Packed data = pack_batch(batch, 1.0, <floating*> NULL)
        Stack st = stack_layout(kind, activation, sizes, data.m, data.o,
                                local)
        UpdateRule rule = update_rule(update, params.shape[0],
                                      <floating*> NULL)
        floating[::1] hidden = state["hidden"]
        floating[::1] influence = state["influence"]
        floating[::1] grad = np.empty_like(params)
        floating[::1] scratch = np.empty_like(params, shape=st.scratch_size)
        double[::1] loss_rows = np.empty(data.count, dtype=np.float64)
        floating* out = output_rows(outputs, batch.targets)
        Py_ssize_t size = st.n_params, b, t, k
        double loss, weight
        bint target, first, stopped = False
        const floating* Xb
        const floating* Yb
        const floating* weights
        InterruptCheck check = interrupt_check()
    if params.shape[0] != size:
        raise ValueError("params has the wrong size")
    if (hidden.shape[0] != st.state_size
            or influence.shape[0] < max(1, st.influence_size)):
        raise ValueError("the stream's state or influence has the wrong size")
    with nogil:
        for b in range(data.count):
            sequence(&data, b, &Xb, &Yb, &weights)
            loss = 0.0
            if reset_state:
                memset(&hidden[0], 0, st.state_size * sizeof(floating))
            for t in range(data.lengths[b]):
                if interrupt_due(&check):
                    stopped = True
                    break
                first = reset_state and t == 0
                target = has_target(&data, b, t)
                k = target_index(&data, t)
                weight = weights[k] if target else 0
                if target:
                    memset(&grad[0], 0, size * sizeof(floating))
                # Without learning the gradient is taken all the same (its
                # cost is the forward pass's) and dropped.
                loss += stack_step(
                    &st, &params[0], Xb + t * data.m, &hidden[0],
                    &influence[0], first, target, Yb + k * data.o, weight,
                    loss_kind, &scratch[0], &grad[0], False)
                if not target:
                    continue
                record_output(out, &data, b, k, &scratch[0] + st.zout)
                if rule.learn:
                    copy_bias_gradients(&st, &grad[0])
                    online_update(&rule, &params[0], &grad[0], size, weight)
            loss_rows[b] = loss
            if stopped:
                break
    update.count(rule.t)
    return np.asarray(loss_rows)


# -- BPTT through the stack ----------------------------------------------------
#
# The records of every layer's steps (``cell_forward``) and each target's
# error g_t = dL_t/dy^top_t are kept for the whole sequence; the backward
# pass runs t = T-1 .. 0 and, within a step, from the top layer down: the
# error of layer l's output y at step t (the readout's, or from layer l+1
# through its input) reaches its state (the h rows, or through the LRUs'
# output map, ``cell_output_vjp``, which also takes the map's own
# parameters); with the error from step t+1 through J^l it gives, by
# ``cell_vjp``, layer l's parameter gradient and its error at step t-1, and
# by B^l_t (``cell_input_jacobian``) and the map's direct path
# (``cell_output_input_vjp``) the error of layer l-1's y at step t. A pooled readout's error is injected
# into the g_t of every step (the mean) or of each top unit's maximum.

cdef inline Py_ssize_t bptt_step_size(const Stack* st) noexcept nogil:
    """Numbers kept per step: every layer's record, then g_t."""
    cdef Py_ssize_t size = 0
    cdef int l
    for l in range(st.L):
        size += record_size(st.kind[l], st.n[l], st.m[l])
    return size + st.n[st.L - 1]


def stack_bptt_sizes(kind, sizes, int m, int o, Py_ssize_t longest):
    """(records per sequence, scratch per thread) of BPTT through a stack,
    in numbers."""
    cdef Stack st = stack_layout(kind, 0, sizes, m, o, True)
    return (bptt_step_size(&st) * longest,
            st.scratch_size + 2 * st.state_size + st.n_params)


cdef inline double stack_bptt_sequence(
    const Stack* st, int loss_kind, const Packed* data, Py_ssize_t b,
    const floating* params, floating* records, floating* scratch,
    InterruptCheck* check, bint* stop,
) noexcept nogil:
    cdef:
        int L = st.L, top = st.L - 1, l
        Py_ssize_t t, k, T = data.lengths[b]
        Py_ssize_t step = bptt_step_size(st)
        double loss = 0.0
        const floating* X
        const floating* Y
        const floating* weights
        const floating* inp
        floating* rec
        floating* rec_below
        floating* state = scratch + st.scratch_size
        floating* cur = state + st.state_size
        floating* grad = scratch + st.grad
        floating* g
        floating* B
        floating* dx = scratch + st.delta
        floating* gy
        floating* pool = scratch + st.pool
        floating* arg_max = scratch + st.arg_max
        floating* gz = scratch + st.g
        const floating* h
        bint pooled = data.pooling != POOL_LAST
        int i, n = st.n[top]
        Py_ssize_t offset[MAX_LAYERS]
    sequence(data, b, &X, &Y, &weights)
    memset(state, 0, st.state_size * sizeof(floating))
    offset[0] = 0
    for l in range(1, L):
        offset[l] = offset[l - 1] + record_size(st.kind[l - 1], st.n[l - 1],
                                                st.m[l - 1])
    for t in range(T):
        if stopping(check, stop):
            return loss
        for l in range(L):
            inp = X + t * data.m if l == 0 else cell_output(
                st.kind[l - 1], st.n[l - 1], st.m[l - 1],
                state + st.state[l - 1], records + t * step + offset[l - 1])
            cell_forward(st.kind[l], st.activation, st.n[l], st.m[l],
                         st.q[l], params + st.theta[l],
                         params + st.bias[l] if st.bias[l] >= 0 else NULL,
                         inp, state + st.state[l],
                         records + t * step + offset[l], scratch + st.work,
                         False)
        g = records + t * step + step - st.n[top]
        # What the readout reads: h, or the top layer's output map's y.
        h = cell_output(st.kind[top], n, st.m[top], state + st.state[top],
                        records + t * step + offset[top])
        if pooled:
            for i in range(n):
                if t == 0 or h[i] > pool[i]:
                    arg_max[i] = <floating> t
            pool_step(data.pooling, n, t, h, pool)
            memset(g, 0, n * sizeof(floating))
            if not has_target(data, b, t):
                continue
            # The one target, at the last step: its error to every step.
            k = target_index(data, t)
            if data.pooling == POOL_MEAN:
                for i in range(n):
                    pool[i] /= T
            loss += readout_gradient(
                Y + k * data.o, data.o, n, data.weight_scale * weights[k],
                loss_kind, params + st.n_theta,
                params + st.n_theta + data.o * n, pool, grad + st.n_theta,
                gz, scratch + st.zout, scratch + st.dz)
            for k in range(T):
                g = records + k * step + step - n
                for i in range(n):
                    if data.pooling == POOL_MEAN:
                        g[i] = gz[i] / T
                    elif <Py_ssize_t> arg_max[i] == k:
                        g[i] = gz[i]
            continue
        if has_target(data, b, t):
            k = target_index(data, t)
            loss += readout_gradient(
                Y + k * data.o, data.o, st.n[top],
                data.weight_scale * weights[k], loss_kind,
                params + st.n_theta, params + st.n_theta + data.o * st.n[top],
                h, grad + st.n_theta, g, scratch + st.zout, scratch + st.dz)
        else:
            memset(g, 0, st.n[top] * sizeof(floating))
    # cur: dL/ds^l_t of every layer; ``state`` now takes the errors of the
    # step before (cell_vjp's gprev).
    memset(cur, 0, st.state_size * sizeof(floating))
    for t in range(T - 1, -1, -1):
        # The backward pass is the longer half: Ctrl-C is checked here too
        # (the caller drops the incomplete gradient).
        if stopping(check, stop):
            return loss
        # gy: dL/dy^l_t of the layer at hand (the readout's for the top,
        # from the layer above otherwise), into its state through its output
        # map (h: added to the h rows), and into its input through B and
        # the map's direct path; the two halves of ``dx`` take turns.
        gy = records + t * step + step - st.n[top]
        for l in range(top, -1, -1):
            rec = records + t * step + offset[l]
            if st.map[l]:
                cell_output_vjp(st.kind[l], st.n[l], st.m[l], st.q[l],
                                params + st.theta[l], rec, gy,
                                cur + st.state[l], True, grad + st.theta[l],
                                scratch + st.work)
            else:
                for k in range(st.n[l]):
                    cur[st.state[l] + k] += gy[k]
            cell_vjp(st.kind[l], st.n[l], st.m[l], st.q[l], params + st.theta[l],
                     rec, cur + st.state[l], state + st.state[l],
                     grad + st.theta[l], scratch + st.work)
            if l == 0:
                continue
            B = scratch + st.B[l]
            cell_input_jacobian(st.kind[l], st.n[l], st.m[l], st.q[l],
                                params + st.theta[l], rec, 0, st.m[l], B)
            gemv_rm_t(st.S[l], st.m[l], <floating> 1, B, st.m[l],
                      cur + st.state[l], <floating> 0, dx)
            cell_output_input_vjp(st.kind[l], st.n[l], st.m[l], st.q[l],
                                  params + st.theta[l], rec, gy, dx)
            gy = dx
            dx = scratch + st.delta + (st.widest if gy == scratch + st.delta
                                       else 0)
        memcpy(cur, state, st.state_size * sizeof(floating))
    copy_bias_gradients(st, grad)
    return loss


def stack_bptt_minibatch(
    kind, int activation, int loss_kind, sizes, batch,
    double weight_scale, const floating[::1] params, dict workspace,
    int pooling=0,
):
    """Gradients per sequence of a minibatch by full BPTT through a stack
    (threads over the sequences): as ``stack_rtrl_minibatch``, with one row
    of ``workspace["records"]`` and ``["scratch"]`` per thread
    (``stack_bptt_sizes`` for the longest sequence). A pooled readout
    (``pooling``) costs one more pass over the steps' top-layer errors."""
    cdef:
        Packed data = pack_batch(batch, weight_scale, <floating*> NULL)
        Stack st = stack_layout(kind, activation, sizes, data.m, data.o, True)
        floating[:, ::1] grad_rows = workspace["grad"]
        double[::1] loss_rows = workspace["loss"]
        floating[:, ::1] records = workspace["records"]
        floating[:, ::1] scratch = workspace["scratch"]
        Py_ssize_t b, longest = 0, size = st.n_params
        int tid = 0, n_threads
        floating* mine
        InterruptCheck check = interrupt_check()
        bint stopped = False
        bint* stop = &stopped
    for b in range(data.count):
        if data.lengths[b] > longest:
            longest = data.lengths[b]
    records_size, scratch_size = stack_bptt_sizes(kind, sizes, data.m,
                                                  data.o, longest)
    set_stack_pooling(&data, pooling)
    if params.shape[0] != size:
        raise ValueError("params has the wrong size")
    if grad_rows.shape[0] < data.count or grad_rows.shape[1] != size:
        raise ValueError("grad_rows has the wrong size")
    if (records.shape[1] < max(1, records_size)
            or scratch.shape[1] < scratch_size):
        raise ValueError("workspace too small")
    if loss_rows.shape[0] < data.count:
        raise ValueError("loss_rows too small")
    n_threads = min(records.shape[0], scratch.shape[0])
    if data.count == 0:
        return
    with nogil:
        for b in prange(data.count, schedule="dynamic",
                        num_threads=n_threads if n_threads > 1 else 1):
            tid = threadid()
            mine = &scratch[0, 0] + tid * scratch.shape[1]
            memset(mine + st.grad, 0, size * sizeof(floating))
            loss_rows[b] = stack_bptt_sequence(
                &st, loss_kind, &data, b, &params[0],
                &records[0, 0] + tid * records.shape[1], mine,
                &check if tid == 0 else NULL, stop)
            memcpy(&grad_rows[0, 0] + b * grad_rows.shape[1],
                   mine + st.grad, size * sizeof(floating))
