"""Soak: one long stream per cell, watching throughput, memory and finiteness.

Each cell of the registry (``skrtrl._cells.CELLS``) learns from one stream of
``--steps`` rows (default 10**7), ``RTRLRegressor(n_hidden=16,
stateful=True, update="step", clip_norm=5.0)`` (the clipping of the
regressor's defaults before 4 Dec 2026), handed over in chunks of ``--chunk`` rows
(default 10**4) that are generated on the fly (random inputs; the target
needs one step of memory). Every cell runs in a fresh process, so that its
peak resident memory is its own. Reported per cell:

* the throughput of the soaked model over that of a fresh one, timed in
  alternation under the same load at the end of the run (the median ratio
  of their CPU times per chunk; see ``interleaved_ratio``);
* throughput (steps per second) over the first and the last ``--window``
  fraction of the chunks (the very first chunk, which allocates, left out),
  by the main thread's CPU time (``time.thread_time``: the stream loop runs
  on that thread, and CPU time does not count time lost to other processes
  on a shared machine) and by wall-clock time, and the ratio end / start;
* memory: resident set size (``/proc/self/statm``) after the first window
  and at the end, the peak (``ru_maxrss``), and the Python allocations
  traced by ``tracemalloc`` (numpy's included) after the first window, at
  the end and at their peak;
* the number of chunks after which the loss, the parameters or any array of
  the stream state held a non-finite value, and the number of warnings
  raised (a divergence warning would show there);
* the mean loss per step over the first and the last window.

Run from the repository root::

    python benchmarks/bench_soak.py                      # 10**7 steps per cell
    python benchmarks/bench_soak.py --steps 200000       # a short run
    python benchmarks/bench_soak.py --cells lstm --json soak-lstm.json

No assertion: the figures are printed (and written with ``--json``).
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
import warnings

import numpy as np
from former_defaults import FORMER_REGRESSOR_DEFAULTS

N_HIDDEN = 16
#: The clipping of the regressor's defaults before 4 Dec 2026, with which
#: the soak figures were measured.
SOAK_CLIP_NORM = FORMER_REGRESSOR_DEFAULTS["clip_norm"]
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def rss_bytes():
    """Resident set size of this process now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE_BYTES


def chunk(index, size, previous):
    """Rows ``index * size ...`` of the stream; ``previous`` is the last input.

    The target of step t is ``x_{t-1} + 0.5 x_t``, so learning it needs
    one step of memory. Each chunk has its own seed: the stream is the same
    whatever the chunk size of an earlier run.
    """
    rng = np.random.default_rng([index, size])
    x = rng.standard_normal(size)
    before = np.concatenate(([previous], x[:-1]))
    return x[:, np.newaxis], before + 0.5 * x, x[-1]


def all_finite(model):
    """Whether the loss, the parameters and the stream state are finite."""
    arrays = [np.asarray(model.loss_), model._model.params]
    state = model._model.stream or {}
    arrays += [v for v in state.values() if isinstance(v, np.ndarray)]
    return all(np.isfinite(a).all() for a in arrays)


def stream_model(cell):
    """A fresh stream learner of ``cell``, updated at every step."""
    from skrtrl import RTRLRegressor

    return RTRLRegressor(
        n_hidden=N_HIDDEN,
        cell=cell,
        stateful=True,
        update="step",
        clip_norm=SOAK_CLIP_NORM,
        random_state=0,
    )


def soak_one(cell, n_steps, chunk_size, window):
    """Stream ``n_steps`` rows through one cell; the figures as a dict."""
    n_chunks = max(n_steps // chunk_size, 3)
    n_window = max(1, int(round(window * n_chunks)))
    n_window = min(n_window, (n_chunks - 1) // 2)
    model = stream_model(cell)
    # (cpu seconds, wall seconds, loss) per chunk, allocated before tracing
    # starts so that the traced memory is the model's.
    samples = np.zeros((n_chunks, 3))
    tracemalloc.start()
    non_finite = 0
    previous = 0.0
    start_memory = None
    begin = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for index in range(n_chunks):
            X, y, previous = chunk(index, chunk_size, previous)
            cpu, wall = time.thread_time(), time.perf_counter()
            model.partial_fit(X, y)
            samples[index] = (
                time.thread_time() - cpu,
                time.perf_counter() - wall,
                model.loss_,
            )
            if not all_finite(model):
                non_finite += 1
            if index == n_window:
                start_memory = (rss_bytes(), tracemalloc.get_traced_memory()[0])
    total = time.perf_counter() - begin
    end_memory = (rss_bytes(), *tracemalloc.get_traced_memory())
    tracemalloc.stop()
    interleaved = interleaved_ratio(model, cell, n_chunks, chunk_size, n_window)
    first = samples[1 : 1 + n_window]
    last = samples[-n_window:]

    def rate(rows, column):
        return chunk_size * rows.shape[0] / rows[:, column].sum()

    return {
        "cell": cell,
        "steps": n_chunks * chunk_size,
        "chunk": chunk_size,
        "window_steps": n_window * chunk_size,
        "seconds": total,
        "cpu_steps_per_s_start": rate(first, 0),
        "cpu_steps_per_s_end": rate(last, 0),
        "wall_steps_per_s_start": rate(first, 1),
        "wall_steps_per_s_end": rate(last, 1),
        "interleaved_end_over_start": interleaved,
        "rss_mib_start": start_memory[0] / 2**20,
        "rss_mib_end": end_memory[0] / 2**20,
        "rss_mib_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10,
        "traced_mib_start": start_memory[1] / 2**20,
        "traced_mib_end": end_memory[1] / 2**20,
        "traced_mib_peak": end_memory[2] / 2**20,
        "non_finite_chunks": non_finite,
        "warnings": [f"{w.category.__name__}: {w.message}" for w in caught],
        "loss_start": float(first[:, 2].mean()),
        "loss_end": float(last[:, 2].mean()),
        "t_": int(model.t_),
    }


def interleaved_ratio(model, cell, n_chunks, chunk_size, rounds):
    """Throughput of the soaked model over that of a fresh one, side by side.

    On a shared machine the load changes over a long run, and with it the
    figures of the first and last chunks. Here the two run in alternation
    under the same load: a chunk of the soaked stream (continuing it), a
    chunk of a fresh model's stream from its start (the fresh model's first
    chunk, which allocates, untimed). The median over ``rounds`` pairs of
    the ratio of their CPU times.
    """
    fresh = stream_model(cell)
    X, y, fresh_previous = chunk(0, chunk_size, 0.0)
    fresh.partial_fit(X, y)
    previous = 0.0
    ratios = []
    for r in range(rounds):
        X, y, previous = chunk(n_chunks + r, chunk_size, previous)
        cpu = time.thread_time()
        model.partial_fit(X, y)
        soaked = time.thread_time() - cpu
        X, y, fresh_previous = chunk(1 + r, chunk_size, fresh_previous)
        cpu = time.thread_time()
        fresh.partial_fit(X, y)
        ratios.append((time.thread_time() - cpu) / soaked)
    return float(np.median(ratios))


def print_table(rows):
    header = (
        f"{'cell':<9}{'steps':>10}{'s':>8}{'cpu st/s start':>16}{'end':>10}"
        f"{'ratio':>7}{'wall ratio':>11}{'interleaved':>12}"
        f"{'RSS MiB start':>14}{'end':>7}"
        f"{'peak':>7}{'traced MiB start':>17}{'end':>7}{'peak':>7}"
        f"{'non-finite':>11}{'warnings':>9}{'loss start':>11}{'end':>8}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['cell']:<9}{r['steps']:>10}{r['seconds']:>8.0f}"
            f"{r['cpu_steps_per_s_start']:>16.0f}{r['cpu_steps_per_s_end']:>10.0f}"
            f"{r['cpu_steps_per_s_end'] / r['cpu_steps_per_s_start']:>7.3f}"
            f"{r['wall_steps_per_s_end'] / r['wall_steps_per_s_start']:>11.3f}"
            f"{r['interleaved_end_over_start']:>12.3f}"
            f"{r['rss_mib_start']:>14.1f}{r['rss_mib_end']:>7.1f}"
            f"{r['rss_mib_peak']:>7.1f}{r['traced_mib_start']:>17.2f}"
            f"{r['traced_mib_end']:>7.2f}{r['traced_mib_peak']:>7.2f}"
            f"{r['non_finite_chunks']:>11}{len(r['warnings']):>9}"
            f"{r['loss_start']:>11.4f}{r['loss_end']:>8.4f}"
        )


def main():
    from skrtrl._cells import CELLS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10**7, help="rows per cell")
    parser.add_argument("--chunk", type=int, default=10**4, help="rows per call")
    parser.add_argument(
        "--window",
        type=float,
        default=0.01,
        help="fraction of the chunks timed at the start and at the end",
    )
    parser.add_argument("--cells", nargs="*", default=sorted(CELLS))
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.one:
        result = soak_one(args.one, args.steps, args.chunk, args.window)
        print(json.dumps(result))
        return
    print(
        f"# {platform.node()}, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}, n_hidden={N_HIDDEN}, "
        f"{args.steps} steps per cell in chunks of {args.chunk}",
        flush=True,
    )
    rows = []
    for cell in args.cells:
        command = [
            sys.executable, __file__, "--one", cell, "--steps", str(args.steps),
            "--chunk", str(args.chunk), "--window", str(args.window),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(
            f"# {cell}: {rows[-1]['seconds']:.0f} s, load average "
            f"{os.getloadavg()[0]:.1f}",
            flush=True,
        )
    print_table(rows)
    for r in rows:
        for w in r["warnings"]:
            print(f"{r['cell']}: {w}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
