"""Threads for the kernels, without oversubscription.

The kernels parallelise over the sequences of a minibatch with OpenMP; each
thread then calls BLAS on its own small products, so BLAS itself must run
single-threaded meanwhile (two layers of threads on two cores only fight).
BLAS threads are left on only for large networks in a single kernel thread.
"""

import contextlib

from ._kernels._threads import openmp_max_threads

_controller = None


def kernel_threads(n_sequences, n_jobs=None):
    """Kernel threads for a minibatch of ``n_sequences``.

    ``n_jobs`` follows joblib (None: 1, -1: all cores), capped by the OpenMP
    limit (``OMP_NUM_THREADS``, which joblib sets in its workers) and by one
    thread per sequence.
    """
    from joblib import effective_n_jobs

    wanted = effective_n_jobs(n_jobs)
    return max(1, min(wanted, openmp_max_threads(), n_sequences))


#: Below this many hidden units the kernels' BLAS products are too small to
#: gain from BLAS threads, and on a busy machine threaded BLAS was measured
#: 10 to 36 times slower on them (OpenBLAS threads wait on each other).
BLAS_THREADS_MIN_HIDDEN = 128


@contextlib.contextmanager
def blas_single_threaded(n_threads, n_hidden=0):
    """Hold BLAS to one thread around a kernel call.

    Needed while ``n_threads`` > 1 kernel threads run (each calls BLAS on
    its own products), and whenever the products are small
    (``n_hidden < BLAS_THREADS_MIN_HIDDEN``).
    """
    global _controller
    if n_threads <= 1 and n_hidden >= BLAS_THREADS_MIN_HIDDEN:
        yield
        return
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        # Scanning the loaded libraries is slow: do it once per process.
        _controller = ThreadpoolController()
    with _controller.limit(limits=1, user_api="blas"):
        yield
