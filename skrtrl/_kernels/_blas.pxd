# Row-major wrappers around the Fortran BLAS of scipy.
#
# The kernels keep every matrix C-contiguous (row-major). A row-major
# M x N matrix is the column-major N x M matrix of its transpose, so each
# wrapper swaps the operands or the transpose flag instead of copying.

from cython cimport floating
from scipy.linalg.cython_blas cimport dgemm, sgemm, dgemv, sgemv


cdef inline void gemm_rm(int M, int N, int K, floating alpha,
                         const floating* A, int lda,
                         const floating* B, int ldb, floating beta,
                         floating* C, int ldc) noexcept nogil:
    """C (M x N) = alpha * A (M x K) @ B (K x N) + beta * C, row-major."""
    cdef char no = b'N'
    if floating is double:
        dgemm(&no, &no, &N, &M, &K, &alpha, <double*> B, &ldb,
              <double*> A, &lda, &beta, C, &ldc)
    else:
        sgemm(&no, &no, &N, &M, &K, &alpha, <float*> B, &ldb,
              <float*> A, &lda, &beta, C, &ldc)


cdef inline void gemv_rm(int M, int N, floating alpha, const floating* A,
                         int lda, const floating* x, floating beta,
                         floating* y) noexcept nogil:
    """y (M) = alpha * A (M x N) @ x + beta * y, row-major A."""
    cdef char trans = b'T'
    cdef int one = 1
    if floating is double:
        dgemv(&trans, &N, &M, &alpha, <double*> A, &lda, <double*> x, &one,
              &beta, y, &one)
    else:
        sgemv(&trans, &N, &M, &alpha, <float*> A, &lda, <float*> x, &one,
              &beta, y, &one)


cdef inline void gemv_rm_t(int M, int N, floating alpha, const floating* A,
                           int lda, const floating* x, floating beta,
                           floating* y) noexcept nogil:
    """y (N) = alpha * A.T @ x + beta * y for a row-major A (M x N)."""
    cdef char no = b'N'
    cdef int one = 1
    if floating is double:
        dgemv(&no, &N, &M, &alpha, <double*> A, &lda, <double*> x, &one,
              &beta, y, &one)
    else:
        sgemv(&no, &N, &M, &alpha, <float*> A, &lda, <float*> x, &one,
              &beta, y, &one)
