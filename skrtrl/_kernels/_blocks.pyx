# cython: language_level=3
"""Column blocks of the influence GEMM of exact RTRL (every cell).

The update P_t = J_t P_{t-1} + I_t (``_influence.pxd``) multiplies an
S x n (or S x S) left factor into the n x W influence P_{t-1}, in column
blocks. OpenBLAS (0.3.x, x86-64) routes products of up to 100^3
multiply-adds to its "small matrix" kernels, which read the operands in
place; larger ones go through its general path, which first zeroes C when
beta = 0 and packs P_{t-1} into a buffer: two extra passes over the
influence per step (9 % and 13 % of the Elman step at n = 32 in a perf
profile). Up to SMALL_BLOCK_N hidden units, blocks of at most
SMALL_BLOCK_MADDS multiply-adds stay on the small path (measured 1.28x
faster per Elman step and 1.23x per GRU step at n = 32, single thread).
Above, the small kernels were measured slower than the general path
(n = 64: 5 %), and the blocks hold at most BLOCK_BYTES of P: few BLAS calls
per step, since with one kernel thread and n >= 128 BLAS runs threaded and
pays a synchronisation per call (blocks of 512 columns were 1.25x slower
than whole products at n = 128 on a busy machine), while the gradient
contraction still reads a block that was just written. At steps without a
target there is no contraction, and for the gated cells a single product
over all columns was measured faster than blocks (n = 64 and 128, one
thread: 1.02 to 1.10x); the cell selects that
(``cell_whole_product_without_target``). Blocks are balanced (equal widths,
multiples of 8 columns) so that no block is a sliver.
"""

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


cdef int block_columns(int S, int n, int W, bint target,
                       bint whole_without_target) noexcept nogil:
    """Column width of the blocks of the (S x n) by (n x W) influence GEMM:
    balanced blocks no wider than the limits above, in multiples of 8
    columns (whole cache lines), unless one block covers every column.
    ``target``: the step contracts P_t with a gradient."""
    cdef int width, n_blocks
    if _block_columns_override > 0:
        return min(_block_columns_override, W)
    if n <= SMALL_BLOCK_N:
        width = SMALL_BLOCK_MADDS // (S * n)
    elif whole_without_target and not target:
        return W
    else:
        width = BLOCK_BYTES // (8 * S)
    width -= width % 8
    if width < 8:
        width = 8
    if width >= W:
        return W
    n_blocks = (W + width - 1) // width
    width = (W + n_blocks - 1) // n_blocks
    width += (8 - width % 8) % 8
    return width
