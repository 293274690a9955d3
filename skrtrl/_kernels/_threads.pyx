# cython: language_level=3
"""How many OpenMP threads the kernels may use."""

cimport openmp


def openmp_max_threads():
    """``omp_get_max_threads()``: honours OMP_NUM_THREADS (set by joblib in
    its workers to avoid oversubscription)."""
    return openmp.omp_get_max_threads()
