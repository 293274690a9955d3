cdef int block_columns(int S, int n, int W, bint target,
                       bint whole_without_target) noexcept nogil
