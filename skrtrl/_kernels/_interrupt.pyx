# cython: language_level=3
"""Signals (Ctrl-C) that arrive while a kernel runs without the GIL.

Python runs signal handlers in the main thread, between bytecodes; a kernel
that runs for minutes without the GIL would hold Ctrl-C back until it ends.
The step loops therefore call ``interrupt_due`` (``_common.pxd``) after
every few steps; at most every ``INTERRUPT_SECONDS`` of work it calls
``signal_raised``, which takes the GIL and runs the pending handlers
(``PyErr_CheckSignals``). When a handler raises (``KeyboardInterrupt`` for
Ctrl-C), the exception is kept here and the kernel stops after its last
complete step, then returns as usual, so that the Python side can store
what the kernel returns (update count, which influence buffer is current)
before ``raise_pending_signal`` raises the exception: the model is left
with the parameters of its last update and a consistent stream state.
"""

import threading

from cpython.exc cimport PyErr_CheckSignals


cdef extern from "pythread.h":
    # Safe without the GIL: it reads the calling thread's id.
    unsigned long PyThread_get_thread_ident() nogil

# Handlers only ever run in the main thread: other threads never take the
# GIL here.
cdef unsigned long _main_thread = threading.main_thread().ident
cdef object _pending = None


cdef bint _run_handlers() noexcept with gil:
    global _pending
    try:
        PyErr_CheckSignals()
    except BaseException as error:
        _pending = error
        return True
    return False


cdef bint signal_raised() noexcept nogil:
    """Whether a signal handler raised (the exception is kept)."""
    if PyThread_get_thread_ident() != _main_thread:
        return False
    return _run_handlers()


def raise_pending_signal():
    """Raise the exception a signal handler raised during a kernel call.

    Does nothing when there is none; the exception is raised once.
    """
    global _pending
    error, _pending = _pending, None
    if error is not None:
        raise error
