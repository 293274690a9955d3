"""How soon Ctrl-C ends a long training call inside the compiled loops.

For every cell, a stream call (``stateful=True``, ``update="step"``: exact
RTRL, SnAp-1, truncated BPTT, UORO and free-running output feedback) and an
exact-RTRL minibatch of two long sequences are started; a thread sends
SIGINT to the process once the call runs (for streams: once the parameters,
updated in place by the kernel, have changed; for the minibatch: after 0.5
s), and the time from the signal to the ``KeyboardInterrupt`` reaching the
caller is printed. The kernels check for pending signals every 0.1 s of
work (``skrtrl/_kernels/_interrupt.pyx``).

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
    print(f"{'cell':<10}{'mode':<22}{'signal -> KeyboardInterrupt (s)':>34}")
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
            print(f"{cell:<10}{'stream ' + name:<22}{latency:>34.3f}", flush=True)
        est = RTRLRegressor(n_hidden=16, cell=cell, random_state=0)
        Xs = X[:600_000].reshape(2, 300_000, 1)
        est.partial_fit(Xs[:, :20], Xs[:, -1, 0])
        begin = time.perf_counter()
        latency = interrupt_latency(
            est,
            Xs,
            Xs[:, -1, 0],
            lambda begin=begin: time.perf_counter() - begin > 0.5,
        )
        print(f"{cell:<10}{'minibatch':<22}{latency:>34.3f}", flush=True)


if __name__ == "__main__":
    main()
