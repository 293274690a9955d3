"""What training will take, estimated before anything is allocated.

Exact RTRL carries an influence matrix of n x (number of parameters)
numbers per sequence, O(n^3) memory and O(n^4) work per step for the fully
connected cells: ``n_hidden=2048`` would need about 128 GiB. So before a
fit allocates anything, the estimators ask the cell what its buffers will
be (``workspace_shapes``, ``state_shapes``, ``online_shapes``: the shapes
the cell itself allocates from) and how much work a step is
(``step_flops``), and

* refuse, with a ValueError that gives the estimate and the cheaper
  options, what cannot fit in the memory the machine has available now;
* warn when the fit would take longer than ``LONG_FIT_SECONDS`` even at
  ``ASSUMED_FLOPS`` floating-point operations per second per thread (a rate
  these small products rarely reach, so the estimate is a lower bound).

``doc/performance.rst`` documents the estimates.
"""

import os
import warnings

import numpy as np

from ._cells import CELLS, nbytes
from ._stack import is_stack

#: Floating-point operations per second and kernel thread assumed by the
#: time estimate: more than one core sustains on RTRL's products, so the
#: estimate errs on the short side.
ASSUMED_FLOPS = 1e10
#: A fit estimated to take longer than this (seconds) gets a warning.
LONG_FIT_SECONDS = 3600.0
#: Buffers of the size of the parameter vector that training keeps besides
#: the cell's (parameters, gradients, optimizer moments, the snapshots
#: restored on divergence, the L2 mask).
PARAMETER_COPIES = 10


def available_memory():
    """Bytes of memory available now (MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def training_bytes(cell, dtype, *, online, batch_size, n_threads, longest):
    """Bytes the training buffers of ``cell`` take (see the module docstring).

    ``online``: updates after every step (``update="step"`` or a stream),
    which keep one state and influence; otherwise minibatches of
    ``batch_size`` sequences on ``n_threads`` kernel threads.
    """
    if online:
        total = nbytes(cell.state_shapes(), dtype)
        total += nbytes(cell.online_shapes(longest), dtype)
    else:
        total = nbytes(cell.workspace_shapes(batch_size, n_threads, longest), dtype)
    return total + PARAMETER_COPIES * cell.n_params * np.dtype(dtype).itemsize


def format_bytes(size):
    """``size`` in the largest binary unit below it: '128.0 GiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{size} B"
        size /= 1024


def format_seconds(seconds):
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 60:.0f} minutes"


def cheaper_options(params):
    """What to change for less memory and work, for the error messages."""
    elementwise = sorted(
        name for name, cls in CELLS.items() if getattr(cls, "elementwise", False)
    )
    named = ", ".join(f"cell={name!r}" for name in elementwise)
    options = []
    if is_stack(params):
        # Stacks: exact RTRL's cross-layer influences are what grows.
        if params.gradient == "rtrl":
            options.append(
                "gradient='local' (the layer-local approximation: each "
                "layer's own influence only, memory of the size of the "
                "parameters)"
            )
        options.append(f"fewer or smaller layers (now n_hidden={params.n_hidden!r})")
        if not params.stateful and params.update != "step":
            options.append(f"a smaller batch_size (now {params.batch_size!r})")
        return "; ".join(options)
    if params.cell not in elementwise:
        options.append(
            f"an element-wise cell ({named}): exact RTRL in memory of the "
            "size of the parameters"
        )
        if params.gradient == "rtrl":
            options.append(
                "gradient='snap1' (the SnAp-1 approximation, memory of the "
                "size of the parameters)"
            )
    if params.gradient != "bptt":
        options.append(
            "gradient='bptt' (memory of the states of the steps backpropagated through)"
        )
    options.append(f"a smaller n_hidden (now {params.n_hidden})")
    if not params.stateful and params.update != "step":
        options.append(f"a smaller batch_size (now {params.batch_size!r})")
    return "; ".join(options)


def check_training_resources(params, cell, dtype, *, online, batch_size,
                             n_threads, longest, steps, epochs):  # fmt: skip
    """Refuse training that cannot fit in memory; warn when it would be long.

    ``params`` is the estimator, ``cell`` the cell it will train, ``steps``
    the time steps of one epoch and ``epochs`` the fewest epochs the call
    runs.
    """
    try:
        needed = training_bytes(
            cell, dtype, online=online, batch_size=batch_size,
            n_threads=n_threads, longest=longest,
        )  # fmt: skip
    except OverflowError:
        needed = np.inf
    available = available_memory()
    if online:
        layout = "one sequence or stream at a time, updated after every step"
    else:
        layout = f"minibatches of {batch_size} on {n_threads} kernel thread(s)"
    if available is not None and needed > available:
        raise ValueError(
            f"Training cell={params.cell!r} with gradient={params.gradient!r}, "
            f"n_hidden={params.n_hidden} would need about "
            f"{format_bytes(needed)} of memory for its influence matrices and "
            f"buffers ({layout}), but "
            f"{format_bytes(available)} is available. Cheaper options: "
            f"{cheaper_options(params)}."
        )
    threads = 1 if online else max(1, min(n_threads, batch_size))
    flops = float(cell.step_flops(online, longest))
    seconds = flops * steps * epochs / (ASSUMED_FLOPS * threads)
    if seconds > LONG_FIT_SECONDS:
        warnings.warn(
            f"This fit is estimated to take at least {format_seconds(seconds)}: "
            f"{flops:.2g} floating-point operations per step and sequence x "
            f"{steps} steps x {epochs} epoch(s), at {ASSUMED_FLOPS:.0e} "
            f"operations per second on {threads} thread(s). Cheaper options: "
            f"{cheaper_options(params)}.",
            UserWarning,
            stacklevel=4,
        )
