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


def _thread_setters(library):
    """``(get, set)`` of the thread count of one BLAS library.

    For OpenBLAS on its own thread pool, the library's C functions are
    bound once (a ctypes call costs well under a microsecond, the
    controller's methods several: they look the symbol up on every call);
    any other library goes through its threadpoolctl controller.
    """
    if library.internal_api == "openblas" and library.threading_layer != "openmp":
        dynlib = getattr(library, "dynlib", None)
        for prefix in ("", "scipy_"):
            for suffix in ("", "64_", "_64"):
                get = getattr(dynlib, f"{prefix}openblas_get_num_threads{suffix}", None)
                put = getattr(dynlib, f"{prefix}openblas_set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    return get, put
    return library.get_num_threads, library.set_num_threads


def _blas_libraries():
    """``(get, set)`` thread-count functions of the BLAS the kernels may call."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        # Scanning the loaded libraries is slow: do it once per process.
        libraries = ThreadpoolController().select(user_api="blas").lib_controllers
        _controller = [_thread_setters(lib) for lib in libraries if _kernel_blas(lib)]
    return _controller


def blas_thread_functions():
    """Addresses of the BLAS thread-count C functions, for compiled callers.

    A tuple of ``(get, set)`` addresses (``int (*)(void)`` and
    ``void (*)(int)``), one pair per BLAS library the kernels may call, for
    code that holds BLAS to one thread without returning to Python
    (``_kernels._rtrl.RowStream``); None when a library is not reachable
    that way (its threadpoolctl controller is then the only way).
    """
    import ctypes

    pairs = []
    for get, put in _blas_libraries():
        if not isinstance(get, ctypes._CFuncPtr):
            return None
        pairs.append(
            (
                ctypes.cast(get, ctypes.c_void_p).value,
                ctypes.cast(put, ctypes.c_void_p).value,
            )
        )
    return tuple(pairs)


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
        for get, put in _blas_libraries():
            threads = get()
            if threads is not None and threads != 1:
                put(1)
                changed.append((put, threads))
        yield
    finally:
        for put, threads in changed:
            put(threads)
