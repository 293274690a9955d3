"""Time per step of the RTRL training kernel against a plain numpy reference.

For each hidden size n (m = 1 input, o = 1 output, squared loss, tanh) this
times one training step per sequence and time step:

* the skrtrl kernel ``elman_rtrl_minibatch``, called directly on
  preallocated workspace, for a minibatch of 1 and of 32 equal-length
  sequences, with targets at every step and only at the last step; the
  minibatch of 32 runs once on one kernel thread and once on one kernel
  thread per core; BLAS threads are limited as the estimators limit them;
* the numpy reference of ``_numpy_rtrl.py`` (one sequence, targets at every
  step), which the kernel is first checked against;
* numpy's dgemm on a 1024 x 1024 product, the machine's peak;
* the bare influence product (n x n) @ (n x n*q) with BLAS on 1 and on 2
  threads, the ceiling the kernel's product can reach at that shape.

The influence update costs 2 * n**2 * (n * q) flops per sequence and step
(q = m + n + 1). The kernel does no product on the first two steps of a
sequence (P_0 = 0 makes P_1 diagonal blocks and P_2 an outer product), so
rates count the T - 2 products actually done.

The machine may be shared, so the measurements of one hidden size are
interleaved (one sample of each in turn, best of several kept): ratios
between them see the same load. (The plain products form a group of their
own, see ``measure_size``.) The peak is the best dgemm rate of the whole
run; the dgemm rate of each size's own rounds is printed too, as a sign of
how disturbed those rounds were.

Run from the repository root::

    python benchmarks/bench_rtrl_step.py [--quick] [--json PATH]
"""

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time

import numpy as np
from _numpy_rtrl import KernelCall, check_against_kernel, init_params, rtrl_sequence
from skrtrl._kernels._threads import openmp_max_threads
from threadpoolctl import threadpool_info, threadpool_limits

from skrtrl._parallel import _blas_libraries

#: Sequence length per hidden size (shorter where one step is expensive).
FULL_SIZES = {8: 50, 16: 50, 32: 50, 64: 50, 128: 10}
QUICK_SIZES = {8: 50, 32: 50, 64: 20}
#: (batch size, kernel threads); None is one thread per core.
KERNEL_CASES = ((1, 1), (32, 1), (32, None))
N_INPUTS = 1
N_OUTPUTS = 1
PEAK_SIZE = 1024
#: Seconds of busy waiting before a sample whose threads differ from the
#: previous sample's. Idle OpenBLAS worker threads keep spinning for about
#: 0.1 s after a threaded call; numpy and scipy each load their own
#: OpenBLAS, so without the wait the spinning workers of one take a core
#: from the next item (measured: up to 2x slower at n = 128).
SETTLE = 0.2
#: Calls shorter than this (seconds) get an untimed warm-up call before each
#: sample; longer ones amortise their cold start themselves.
WARM_CALL_MAX = 0.2


class Timed:
    """Something to time: a call, the context to call it in, its unit count.

    Parameters
    ----------
    fn : callable
        Called without arguments.
    units : float, default=1
        Units of work per call (e.g. sequence-steps); times are per unit.
    context : callable, default=None
        Returns the context manager to enter around each sample (outside
        the timed region); none if None.
    threads : str, default="numpy"
        Which thread pool the call runs on: samples that follow a sample on
        another pool wait ``SETTLE`` seconds first.
    clock : callable, default=time.perf_counter
        The clock. ``time.thread_time`` (CPU time of the calling thread)
        suits calls that run entirely in the calling thread: it does not
        count the time the thread waits for a core another process took.
    """

    def __init__(
        self, fn, units=1, context=None, threads="numpy", clock=time.perf_counter
    ):
        self.fn = fn
        self.clock = clock
        self.units = units
        self.context = context or contextlib.nullcontext
        self.threads = threads
        self.number = 1
        self.warm = True
        self.samples = []

    def calibrate(self, min_time):
        """Warm up, then fix the calls per sample to fill ``min_time``."""
        with self.context():
            start = self.clock()
            self.fn()
            first = self.clock() - start
        self.number = max(1, int(np.ceil(min_time / max(first, 1e-9))))
        self.warm = first < WARM_CALL_MAX

    def sample(self):
        """Time one sample; keep its seconds per unit.

        Calls shorter than ``WARM_CALL_MAX`` are preceded by one untimed
        call, which brings the item's buffers back into cache after the
        other items ran.
        """
        with self.context():
            if self.warm:
                self.fn()
            start = self.clock()
            for _ in range(self.number):
                self.fn()
            elapsed = self.clock() - start
        self.samples.append(elapsed / self.number / self.units)

    @property
    def best(self):
        """Fastest sample, in seconds per unit."""
        return min(self.samples)

    @property
    def median(self):
        """Median sample, in seconds per unit."""
        return statistics.median(self.samples)


def settle(seconds):
    """Busy-wait (keeping this core busy, unlike a sleep)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def time_interleaved(items, repeat, min_time):
    """Calibrate every item, then take ``repeat`` rounds of one sample each.

    Between items on different thread pools, wait ``SETTLE`` seconds.

    Parameters
    ----------
    items : dict of str to Timed
        What to time.
    repeat : int
        Number of rounds.
    min_time : float
        Minimum duration of one sample, in seconds.
    """
    previous = None
    for item in items.values():
        if item.threads != previous:
            settle(SETTLE)
        item.calibrate(min_time)
        previous = item.threads
    for _ in range(repeat):
        for item in items.values():
            if item.threads != previous:
                settle(SETTLE)
            item.sample()
            previous = item.threads


def influence_flops(n_hidden):
    """Flops of one influence product (one sequence, one step)."""
    q = N_INPUTS + n_hidden + 1
    return 2.0 * n_hidden**2 * (n_hidden * q)


def make_problem(n_hidden, n_steps, n_seq, seed=0, dtype=np.float64):
    """Random parameters, inputs and targets of one benchmark case.

    Returns
    -------
    params : dict of str to ndarray
        As returned by ``init_params``.
    X, Y : ndarray of shape (n_seq, n_steps, 1)
        Inputs and targets.
    """
    rng = np.random.default_rng(seed)
    params = init_params(n_hidden, N_INPUTS, N_OUTPUTS, rng, dtype)
    X = rng.standard_normal((n_seq, n_steps, N_INPUTS)).astype(dtype)
    Y = rng.standard_normal((n_seq, n_steps, N_OUTPUTS)).astype(dtype)
    return params, X, Y


def kernel_item(n_hidden, n_steps, n_seq, n_threads, every_step, dtype=np.float64):
    """The kernel on ``n_seq`` sequences, timed per sequence-step.

    The BLAS thread limit the estimators set around the kernel is entered
    around each sample, outside the timed calls. ``dtype`` is that of the
    parameters, inputs and workspace.
    """
    params, X, Y = make_problem(n_hidden, n_steps, n_seq, dtype=dtype)
    Y_used = Y if every_step else Y[:, :1]
    call = KernelCall(X, Y_used, params, 1.0 / n_steps, every_step, None, n_threads)
    item = Timed(call, n_steps * n_seq, call.blas_limits, f"skrtrl-{n_threads}")
    with call.blas_limits():
        # The libraries the kernels call (numpy's 64-bit OpenBLAS is not one).
        item.blas_threads = max(get() for get, _ in _blas_libraries())
    return item


def kernel_cases():
    """(key, batch size, kernel threads) of every kernel configuration."""
    cases = []
    for n_seq, n_threads in KERNEL_CASES:
        if n_threads is None:
            n_threads = max(1, min(openmp_max_threads(), n_seq))
        key = f"kernel_{n_seq}_{n_threads}"
        if key not in [c[0] for c in cases]:
            cases.append((key, n_seq, n_threads))
    return cases


def numpy_item(n_hidden, n_steps):
    """The numpy reference on one sequence, timed per step."""
    params, X, Y = make_problem(n_hidden, n_steps, 1)
    return Timed(lambda: rtrl_sequence(X[0], Y[0], params, 1.0 / n_steps), n_steps)


def product_item(rows, inner, cols, threads=None):
    """A numpy product (rows x inner) @ (inner x cols) into a preallocated output.

    Timed per flop, so that 1 / ``best`` is the rate in flop/s.
    """
    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, inner))
    b = rng.standard_normal((inner, cols))
    out = np.empty((rows, cols))
    context = None
    if threads is not None:

        def context():
            return threadpool_limits(limits=threads, user_api="blas")

    return Timed(lambda: np.matmul(a, b, out=out), 2.0 * rows * inner * cols, context)


def measure_size(n_hidden, n_steps, repeat, min_time):
    """Every measurement of one hidden size, in two interleaved groups.

    The plain products (dgemm and the bare influence product) run first, in
    rounds of their own: right after a long minibatch call that kept both
    cores busy (about a second at n >= 64), this machine runs them markedly
    slower. The numpy reference and the kernel configurations come next, in
    rounds of their own.

    Returns
    -------
    dict of str to Timed
        Keys ``numpy``, ``dgemm``, ``gemm1``, ``gemm2`` and
        ``kernel_{batch}_{threads}_{every|last}``.
    """
    q = N_INPUTS + n_hidden + 1
    products = {
        "dgemm": product_item(PEAK_SIZE, PEAK_SIZE, PEAK_SIZE),
        "gemm1": product_item(n_hidden, n_hidden, n_hidden * q, threads=1),
        "gemm2": product_item(n_hidden, n_hidden, n_hidden * q, threads=2),
    }
    time_interleaved(products, repeat, min_time)
    steps = {"numpy": numpy_item(n_hidden, n_steps)}
    for key, n_seq, n_threads in kernel_cases():
        for every_step in (True, False):
            mode = "every" if every_step else "last"
            steps[f"{key}_{mode}"] = kernel_item(
                n_hidden, n_steps, n_seq, n_threads, every_step
            )
    time_interleaved(steps, repeat, min_time)
    return {**products, **steps}


def size_rows(n_hidden, n_steps, items):
    """Table rows (dicts) of one hidden size, one per batch size."""
    flops = influence_flops(n_hidden) * (n_steps - 2) / n_steps
    numpy_step = items["numpy"]
    dgemm = 1e-9 / items["dgemm"].best
    rows = []
    for key, n_seq, n_threads in kernel_cases():
        every = items[f"{key}_every"]
        last = items[f"{key}_last"]
        rate = flops / every.best / 1e9
        rows.append(
            {
                "n": n_hidden,
                "batch": n_seq,
                "T": n_steps,
                "kernel_threads": n_threads,
                "blas_threads": every.blas_threads,
                "skrtrl_us_every": every.best * 1e6,
                "skrtrl_us_every_median": every.median * 1e6,
                "skrtrl_us_last": last.best * 1e6,
                "skrtrl_us_last_median": last.median * 1e6,
                "numpy_us": numpy_step.best * 1e6,
                "numpy_us_median": numpy_step.median * 1e6,
                "speedup": numpy_step.best / every.best,
                "skrtrl_gflops": rate,
                "skrtrl_gflops_last": flops / last.best / 1e9,
                "dgemm_gflops": dgemm,
                "gemm_shape_gflops_1thread": 1e-9 / items["gemm1"].best,
                "gemm_shape_gflops_2threads": 1e-9 / items["gemm2"].best,
            }
        )
    return rows


COLUMNS = [
    # (header, key, format)
    ("n", "n", "{:>4}"),
    ("batch", "batch", "{:>5}"),
    ("T", "T", "{:>3}"),
    ("thr", "kernel_threads", "{:>3}"),
    ("blas", "blas_threads", "{:>4}"),
    ("skrtrl us/step", "skrtrl_us_every", "{:>14.2f}"),
    ("(last only)", "skrtrl_us_last", "{:>11.2f}"),
    ("numpy us/step", "numpy_us", "{:>13.2f}"),
    ("speed-up", "speedup", "{:>7.1f}x"),
    ("skrtrl GFLOP/s", "skrtrl_gflops", "{:>14.1f}"),
    ("dgemm", "dgemm_gflops", "{:>5.0f}"),
    ("of peak", "fraction_of_peak", "{:>7.0%}"),
    ("gemm 1t", "gemm_shape_gflops_1thread", "{:>7.1f}"),
    ("gemm 2t", "gemm_shape_gflops_2threads", "{:>7.1f}"),
]


def header():
    """The table header line."""
    cells = []
    for title, _, fmt in COLUMNS:
        width = int(fmt.split(">")[1].split(".")[0].rstrip("}"))
        cells.append(title.rjust(width + fmt.endswith("x")))
    return " ".join(cells)


def format_row(row):
    """One table row."""
    return " ".join(fmt.format(row[key]) for _, key, fmt in COLUMNS)


def add_fraction_of_peak(rows):
    """Set each row's ``fraction_of_peak`` against the run's best dgemm rate.

    Returns
    -------
    peak : float
        The best dgemm rate of the run, in GFLOP/s.
    """
    peak = max(row["dgemm_gflops"] for row in rows)
    for row in rows:
        row["fraction_of_peak"] = row["skrtrl_gflops"] / peak
    return peak


def library_summary():
    """One line per BLAS / OpenMP library loaded, with its thread count."""
    lines = []
    for info in threadpool_info():
        name = info["filepath"].rsplit("/", 1)[-1]
        lines.append(
            f"  {info['internal_api']} {info.get('version') or ''} "
            f"{info.get('architecture', '')} threads={info['num_threads']} ({name})"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer sizes and rounds (< 1 minute)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    parser.add_argument(
        "--repeat", type=int, default=None, help="rounds of samples (best kept)"
    )
    return parser.parse_args(argv)


LEGEND = """\
us/step: microseconds per sequence and time step (batch 32: total / 32),
best of {repeat} interleaved rounds; skrtrl with targets at every step, and
only at the last step in "(last only)"; numpy: batch 1, targets at every
step, on every row. speed-up = numpy / skrtrl (targets at every step).
thr: kernel (OpenMP) threads over the sequences; blas: BLAS threads inside
the kernel, as the estimators set them. GFLOP/s: influence products
only. dgemm: numpy {size}x{size} GFLOP/s measured with this n (well below
the peak: disturbed rounds); of peak = GFLOP/s / best dgemm of the run.
gemm 1t / 2t: the bare (n x n) @ (n x n*q) product, BLAS on 1 / 2 threads.
"""


def main(argv=None):
    """Check the reference, measure every size, print the table."""
    args = parse_args(argv)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    repeat = args.repeat or (5 if args.quick else 10)
    min_time = 0.02 if args.quick else 0.05

    check_against_kernel()
    print("check: the numpy reference and the skrtrl kernel give the same gradients")
    print("libraries:\n" + library_summary())
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    start = time.perf_counter()
    rows = []
    for n_hidden, n_steps in sizes.items():
        print(f"measuring n = {n_hidden} ...", file=sys.stderr, flush=True)
        items = measure_size(n_hidden, n_steps, repeat, min_time)
        rows.extend(size_rows(n_hidden, n_steps, items))
    elapsed = time.perf_counter() - start
    peak = add_fraction_of_peak(rows)
    print(f"{elapsed:.0f} s, load average at end: {os.getloadavg()[0]:.2f}")
    print(f"peak (best numpy dgemm {PEAK_SIZE}x{PEAK_SIZE} of the run): ", end="")
    print(f"{peak:.1f} GFLOP/s\n")
    print(LEGEND.format(repeat=repeat, size=PEAK_SIZE))
    print(header())
    print("-" * len(header()))
    for row in rows:
        print(format_row(row))

    if args.json:
        result = {
            "command": " ".join(sys.argv),
            "machine": platform.platform(),
            "numpy": np.__version__,
            "libraries": threadpool_info(),
            "repeat": repeat,
            "seconds": elapsed,
            "peak_gflops": peak,
            "rows": rows,
        }
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
