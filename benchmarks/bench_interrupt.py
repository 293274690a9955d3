"""How soon Ctrl-C ends a long training call inside the compiled loops.

For every cell, a stream call (``stateful=True``, ``update="step"``: exact
RTRL, SnAp-1, truncated BPTT, UORO and free-running output feedback) and a
minibatch of two long sequences with each of the same settings (BPTT full
and truncated) are started; a thread sends SIGINT to the process once the
call runs (for streams: once the parameters, updated in place by the
kernel, have changed; for minibatches: after 0.1 s), and the time from the
signal to the ``KeyboardInterrupt`` reaching the caller is printed. The
kernels check for pending signals every 0.1 s of work
(``skrtrl/_kernels/_interrupt.pyx``). Full BPTT keeps a record of every
step: its minibatch is shorter and in float32, and may end before the
signal (printed as nan) for the cheapest cells.

Run from the repository root::

    python benchmarks/bench_interrupt.py
"""

import os
import signal
import threading
import time

import numpy as np

from skrtrl import RTRLRegressor
from skrtrl._cells import CELLS

STREAMS = {
    "rtrl": {},
    "snap1": {"gradient": "snap1"},
    "bptt": {"gradient": "bptt", "truncation": 4},
    "uoro": {"gradient": "uoro"},
    "free_running": {"output_feedback": True, "teacher_forcing": False},
}

#: Minibatch settings and the (sequences, steps) of one long minibatch.
MINIBATCHES = {
    "rtrl": ({}, (2, 300_000)),
    "snap1": ({"gradient": "snap1"}, (2, 300_000)),
    "bptt": ({"gradient": "bptt"}, (2, 150_000)),
    "bptt truncated": ({"gradient": "bptt", "truncation": 4}, (2, 300_000)),
    "uoro": ({"gradient": "uoro"}, (2, 300_000)),
    "free_running": (
        {"output": "sequence", "output_feedback": True, "teacher_forcing": False},
        (2, 300_000),
    ),
}


def interrupt_latency(est, X, y, started):
    """Seconds from SIGINT to KeyboardInterrupt; ``started()`` tells when."""
    sent = []
    ended = threading.Event()

    def press():
        while not started():
            if ended.wait(0.002):
                return
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=press)
    thread.start()
    try:
        est.partial_fit(X, y)
    except KeyboardInterrupt:
        return time.perf_counter() - sent[0]
    finally:
        ended.set()
        thread.join()
    return float("nan")  # the call ended before the signal


def main():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(3_000_000, 1))
    y = np.roll(X[:, 0], 1)
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'cell':<10}{'mode':<26}{'signal -> KeyboardInterrupt (s)':>34}")
    for cell in sorted(CELLS):
        for name, settings in STREAMS.items():
            est = RTRLRegressor(
                n_hidden=16, cell=cell, stateful=True, random_state=0, **settings
            )
            est.partial_fit(X[:20], y[:20])
            start = est._flat_params.copy()
            latency = interrupt_latency(
                est,
                X,
                y,
                lambda est=est, start=start: (
                    not np.array_equal(est._flat_params, start)
                ),
            )
            print(f"{cell:<10}{'stream ' + name:<26}{latency:>34.3f}", flush=True)
        for name, (settings, shape) in MINIBATCHES.items():
            est = RTRLRegressor(n_hidden=16, cell=cell, random_state=0, **settings)
            Xs = X[: shape[0] * shape[1]].reshape(*shape, 1)
            if name == "bptt":
                Xs = Xs.astype(np.float32)
            ys = Xs[:, :, 0] if "output" in settings else Xs[:, -1, 0]
            est.partial_fit(Xs[:, :20], ys[:, :20] if ys.ndim == 2 else ys)
            begin = time.perf_counter()
            latency = interrupt_latency(
                est,
                Xs,
                ys,
                lambda begin=begin: time.perf_counter() - begin > 0.1,
            )
            print(f"{cell:<10}{'minibatch ' + name:<26}{latency:>34.3f}", flush=True)


if __name__ == "__main__":
    main()
