"""Stream learning: throughput, per-call overhead and memory of stateful RTRL.

Measures ``RTRLRegressor(stateful=True, update="step")``, which learns from a
stream at every time step and carries its hidden state and influence
matrices from one ``partial_fit`` call to the next:

(a) steps per second of ``partial_fit`` for n_hidden in {8, 16, 32, 64}
    (1 input, 1 output), with the stream handed over in chunks of 1, 100 and
    10,000 rows. The learning is the same for every chunk size; only the
    number of Python calls differs. The stream loop is sequential and its
    products are small (n x n times n x n*q), so BLAS is held to one thread
    there; one more column repeats the chunks of 100 with the BLAS threads
    left as they are (what a user gets without a thread limit);
(b) the fixed cost of one call: ``partial_fit`` on one row (n_hidden=8)
    against scikit-learn's ``SGDRegressor.partial_fit`` on one row, timed in
    interleaved rounds of the same run;
(c) peak resident memory (``ru_maxrss``) of a fresh process that streams
    10**4 and 10**6 steps (n_hidden=8, chunks of 10**4 rows generated on the
    fly), and their ratio: RTRL's memory does not grow with the length of
    the stream. For comparison, the activations that backpropagation through
    time (BPTT) over the whole stream would store: per step, the n hidden
    states, n pre-activations and the inputs, 8 bytes each.

The machine may be shared: every figure of (a) and (b) is the best of
several interleaved rounds, and the load average is printed.

Run from the repository root::

    python benchmarks/bench_stream.py [--quick] [--json PATH]

``--quick`` (under a minute) measures n_hidden up to 32 on fewer steps.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np
from sklearn.linear_model import SGDRegressor
from threadpoolctl import threadpool_info, threadpool_limits

from skrtrl import RTRLRegressor

CHUNKS = (1, 100, 10_000)
#: Steps timed per sample, by hidden size and chunk size (at least one chunk).
FULL_STEPS = {
    8: {1: 200, 100: 5_000, 10_000: 20_000},
    16: {1: 200, 100: 2_000, 10_000: 10_000},
    32: {1: 200, 100: 1_000, 10_000: 10_000},
    64: {1: 100, 100: 300, 10_000: 10_000},
}
QUICK_STEPS = {
    8: {1: 100, 100: 1_000, 10_000: 10_000},
    16: {1: 100, 100: 500, 10_000: 10_000},
    32: {1: 100, 100: 200, 10_000: 10_000},
}
#: Samples whose first one takes longer than this are not repeated.
SLOW_SAMPLE = 5.0
MEMORY_STEPS = (10_000, 1_000_000)
MEMORY_CHUNK = 10_000
MEMORY_HIDDEN = 8
BYTES_PER_FLOAT = 8


def make_stream(n_steps, seed):
    """Random inputs, and targets that need one step of memory."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n_steps + 1)
    return x[1:, np.newaxis], x[:-1] + 0.5 * x[1:]


def stream_model(n_hidden):
    """A stream learner, initialised on one row (outside any timing)."""
    model = RTRLRegressor(
        n_hidden=n_hidden, stateful=True, update="step", random_state=0
    )
    X, y = make_stream(1, seed=1)
    return model.partial_fit(X, y)


class StreamCell:
    """One cell of table (a): a model fed ``n_steps`` rows in chunks.

    Parameters
    ----------
    n_hidden : int
        Hidden units.
    chunk : int
        Rows per ``partial_fit`` call.
    n_steps : int
        Steps per sample, a multiple of ``chunk``.
    blas_threads : int or None
        BLAS thread limit during the sample; None leaves it alone.
    """

    def __init__(self, n_hidden, chunk, n_steps, blas_threads):
        self.model = stream_model(n_hidden)
        self.chunk = chunk
        self.X, self.y = make_stream(n_steps, seed=2)
        self.blas_threads = blas_threads
        self.samples = []

    def sample(self):
        """Run the steps once; keep the steps per second."""
        limits = threadpool_limits(limits=self.blas_threads, user_api="blas")
        with limits:
            start = time.perf_counter()
            for begin in range(0, self.X.shape[0], self.chunk):
                rows = slice(begin, begin + self.chunk)
                self.model.partial_fit(self.X[rows], self.y[rows])
            elapsed = time.perf_counter() - start
        self.samples.append(self.X.shape[0] / elapsed)
        return elapsed

    @property
    def best(self):
        """Highest steps per second seen."""
        return max(self.samples)


def measure_throughput(steps, repeat):
    """Table (a): steps per second per hidden size and chunk size.

    Returns
    -------
    rows : list of dict
        One per hidden size: ``n_hidden``, ``chunk_{c}`` for every chunk
        size (BLAS on one thread), ``chunk_100_default_blas``, and the
        steps each was measured on.
    """
    rows = []
    for n_hidden, per_chunk in steps.items():
        cells = {f"chunk_{c}": StreamCell(n_hidden, c, per_chunk[c], 1) for c in CHUNKS}
        cells["chunk_100_default_blas"] = StreamCell(
            n_hidden, 100, per_chunk[100], None
        )
        # Interleaved rounds, so that the columns of a row see the same load;
        # a cell whose sample is slow is measured once.
        slow = set()
        for _ in range(repeat):
            for key, cell in cells.items():
                if key not in slow and cell.sample() > SLOW_SAMPLE:
                    slow.add(key)
        row = {"n_hidden": n_hidden}
        for key, cell in cells.items():
            row[key] = cell.best
            row[f"{key}_samples"] = len(cell.samples)
        row["steps"] = dict(per_chunk)
        rows.append(row)
        print(f"  measured n_hidden={n_hidden}", file=sys.stderr, flush=True)
    return rows


def measure_overhead(calls, repeat):
    """Table (b): seconds per one-row ``partial_fit``, skrtrl and SGDRegressor.

    Each sample makes ``calls`` calls; both are timed in interleaved rounds
    and the fastest sample is kept.
    """
    X, y = make_stream(1, seed=3)
    rtrl = stream_model(MEMORY_HIDDEN)
    sgd = SGDRegressor(random_state=0).partial_fit(X, y)
    times = {"rtrl": [], "sgd": []}
    for _ in range(repeat):
        for name, model in (("rtrl", rtrl), ("sgd", sgd)):
            start = time.perf_counter()
            for _ in range(calls):
                model.partial_fit(X, y)
            times[name].append((time.perf_counter() - start) / calls)
    return {name: min(t) for name, t in times.items()}


def memory_worker(n_steps):
    """Stream ``n_steps`` steps in chunks; print peak RSS in bytes as JSON."""
    model = RTRLRegressor(n_hidden=MEMORY_HIDDEN, stateful=True, random_state=0)
    for seed, begin in enumerate(range(0, n_steps, MEMORY_CHUNK)):
        X, y = make_stream(min(MEMORY_CHUNK, n_steps - begin), seed=seed)
        model.partial_fit(X, y)
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 if sys.platform == "darwin" else 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    print(json.dumps({"n_steps": n_steps, "peak_rss": peak, "t_": model.t_}))


def measure_memory():
    """Table (c): peak RSS of fresh processes streaming each length."""
    peaks = {}
    for n_steps in MEMORY_STEPS:
        out = subprocess.run(
            [sys.executable, __file__, "--memory-worker", str(n_steps)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        if result["t_"] != n_steps:
            raise RuntimeError(f"the worker streamed {result['t_']} steps")
        peaks[n_steps] = result["peak_rss"]
    return peaks


def rtrl_state_bytes(n_hidden, n_inputs=1):
    """Bytes of the stream state: hidden units and two influence matrices."""
    q = n_inputs + n_hidden + 1
    return BYTES_PER_FLOAT * (n_hidden + 2 * n_hidden * n_hidden * q)


def bptt_bytes_per_step(n_hidden, n_inputs=1):
    """Bytes of activations BPTT stores per step: h_t, a_t and x_t."""
    return BYTES_PER_FLOAT * (2 * n_hidden + n_inputs)


def mib(n_bytes):
    """Bytes as MiB."""
    return n_bytes / 2**20


def print_table(throughput, overhead, peaks, repeat):
    """The one table of results."""
    width = 78
    print("=" * width)
    print("(a) stream learning, steps/s: partial_fit(stateful=True, update='step'),")
    print(f"    1 input, best of up to {repeat} interleaved rounds")
    head = "".join(f"{f'chunk {c}':>12}" for c in CHUNKS)
    print(f"{'n_hidden':>10}{head}{'chunk 100, BLAS default':>26}")
    for row in throughput:
        cells = "".join(f"{row[f'chunk_{c}']:12,.0f}" for c in CHUNKS)
        print(f"{row['n_hidden']:>10}{cells}{row['chunk_100_default_blas']:26,.0f}")
    print("    chunk columns: BLAS limited to 1 thread; last: BLAS threads unlimited")
    print("-" * width)
    ratio = overhead["rtrl"] / overhead["sgd"]
    print("(b) one call on one row (n_hidden=8, 1 feature), best of interleaved rounds")
    print(f"    RTRLRegressor.partial_fit  {overhead['rtrl'] * 1e6:10.1f} us")
    print(f"    SGDRegressor.partial_fit   {overhead['sgd'] * 1e6:10.1f} us")
    print(f"    ratio RTRL / SGD           {ratio:10.2f}")
    print("-" * width)
    short, long = MEMORY_STEPS
    per_step = bptt_bytes_per_step(MEMORY_HIDDEN)
    print(f"(c) memory, n_hidden={MEMORY_HIDDEN}, chunks of {MEMORY_CHUNK:,} rows")
    print(f"    peak RSS, {short:>9,} steps  {mib(peaks[short]):10.1f} MiB")
    print(f"    peak RSS, {long:>9,} steps  {mib(peaks[long]):10.1f} MiB")
    print(f"    ratio                      {peaks[long] / peaks[short]:10.3f}")
    print(
        f"    RTRL stream state          {rtrl_state_bytes(MEMORY_HIDDEN):10,d} bytes"
        " (any length)"
    )
    print(f"    BPTT activations per step  {per_step:10,d} bytes")
    print(f"    BPTT at {long:>9,} steps    {mib(per_step * long):10.1f} MiB")
    print("=" * width)


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="n_hidden <= 32, fewer steps (< 1 min)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    parser.add_argument("--memory-worker", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    """Measure (a), (b) and (c); print the table."""
    args = parse_args(argv)
    if args.memory_worker is not None:
        memory_worker(args.memory_worker)
        return
    steps = QUICK_STEPS if args.quick else FULL_STEPS
    repeat = 2 if args.quick else 3
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    throughput = measure_throughput(steps, repeat)
    overhead = measure_overhead(100 if args.quick else 300, 3 if args.quick else 5)
    peaks = measure_memory()
    elapsed = time.perf_counter() - start
    print(
        f"{platform.platform()}, {os.cpu_count()} CPUs, python "
        f"{platform.python_version()}, numpy {np.__version__}"
    )
    print_table(throughput, overhead, peaks, repeat)
    load_end = os.getloadavg()[0]
    print(
        f"{elapsed:.0f} s; load average {load_start:.2f} at start, "
        f"{load_end:.2f} at end"
    )

    if args.json:
        result = {
            "command": " ".join(sys.argv),
            "machine": platform.platform(),
            "numpy": np.__version__,
            "libraries": threadpool_info(),
            "seconds": elapsed,
            "load_average": [load_start, load_end],
            "throughput_steps_per_s": throughput,
            "one_row_partial_fit_s": overhead,
            "overhead_ratio": overhead["rtrl"] / overhead["sgd"],
            "memory": {
                "n_hidden": MEMORY_HIDDEN,
                "chunk": MEMORY_CHUNK,
                "peak_rss_bytes": {str(k): v for k, v in peaks.items()},
                "ratio": peaks[MEMORY_STEPS[1]] / peaks[MEMORY_STEPS[0]],
                "rtrl_state_bytes": rtrl_state_bytes(MEMORY_HIDDEN),
                "bptt_bytes_per_step": bptt_bytes_per_step(MEMORY_HIDDEN),
                "bptt_bytes_at_long": bptt_bytes_per_step(MEMORY_HIDDEN)
                * MEMORY_STEPS[1],
            },
        }
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
