"""Threads for the kernels, without oversubscription.

The kernels parallelise over the sequences of a minibatch with OpenMP; each
thread then calls BLAS on its own small products, so BLAS itself must run
single-threaded meanwhile (two layers of threads on two cores only fight).
BLAS threads are left on only for large networks in a single kernel thread.
"""

import contextlib
import os

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


def _kernel_blas(library):
    """Whether the kernels may run on ``library`` (a threadpoolctl controller).

    The kernels call BLAS through ``scipy.linalg.cython_blas``, whose
    integers are 32-bit: an OpenBLAS built for 64-bit integers (named
    ``libopenblas64_``, ``libscipy_openblas64_``: numpy's wheels bundle
    one) never runs them, and setting its threads would only cost time.
    """
    name = os.path.basename(library.filepath)[len(library.prefix) :]
    return not (library.internal_api == "openblas" and name.startswith("64_"))


def _blas_libraries():
    """The BLAS libraries the kernels may call (threadpoolctl controllers)."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        # Scanning the loaded libraries is slow: do it once per process.
        libraries = ThreadpoolController().select(user_api="blas").lib_controllers
        _controller = [lib for lib in libraries if _kernel_blas(lib)]
    return _controller


@contextlib.contextmanager
def blas_single_threaded(n_threads, n_hidden=0):
    """Hold BLAS to one thread around a kernel call.

    Needed while ``n_threads`` > 1 kernel threads run (each calls BLAS on
    its own products), and whenever the products are small
    (``n_hidden < BLAS_THREADS_MIN_HIDDEN``).

    The libraries' own setters are called directly, and only for libraries
    not on one thread already: a one-row call of a stream model costs a few
    microseconds in all, and a threadpoolctl limit object costs far more.
    """
    if n_threads <= 1 and n_hidden >= BLAS_THREADS_MIN_HIDDEN:
        yield
        return
    changed = []
    try:
        for library in _blas_libraries():
            threads = library.get_num_threads()
            if threads is not None and threads != 1:
                library.set_num_threads(1)
                changed.append((library, threads))
        yield
    finally:
        for library, threads in changed:
            library.set_num_threads(threads)
