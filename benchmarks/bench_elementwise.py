"""Element-wise cells: exact RTRL at the cost of the forward pass.

Three measurements, as ratios within one run (the machine may be shared):

1. Per sequence-step cost of exact RTRL against full BPTT of the same cell,
   minibatch of 32 sequences of 50 steps, one input, one output, targets at
   every step, one kernel thread, float64, for n_hidden from 128 to 2048,
   with the log-log slope of each over n = 128 .. 2048 (1 is the cost of
   the forward pass: the parameters grow like n). A full GRU at n = 64 is
   timed beside them for scale.
2. A stream of 1,024 units with one input (``RTRLRegressor(cell="egru",
   stateful=True, clip_norm=5.0)``, the clipping of the regressor's former
   defaults that its figures were measured with) learning in real time:
   steps per second over chunks of 1,000 rows, one ``partial_fit`` per
   chunk, BLAS and kernel on one core.
3. The same per step through the estimator for ``"elstm"``.

``--dtype float32`` runs (2) and (3) on float32 data (the kernels then
compute in single precision), ``--solver sgd`` with plain SGD instead of
Adam (the default); each takes a comma-separated list, every combination
is timed. Issue 13's target (20,000 steps per second of one core for the
EGRU stream) is checked with::

    OMP_NUM_THREADS=1 python benchmarks/bench_elementwise.py --no-minibatch \\
        --dtype float64,float32 --solver adam,sgd

``"lru"`` is timed in (1) too: its output map (a dense n x n product, and
its gradient) makes its cost grow like n^2, with the recurrence's exact
influence O(n m) beside it.

Run from the repository root::

    python benchmarks/bench_elementwise.py [--quick] [--json PATH]
        [--cells egru,elstm,diagonal,lru] [--sizes 128,256] [--no-stream]
        [--no-minibatch] [--dtype float64,float32] [--solver adam,sgd]
"""

import argparse
import json
import os
import time

import numpy as np
from former_defaults import FORMER_REGRESSOR_DEFAULTS

from skrtrl import RTRLRegressor
from skrtrl._methods import make_cell
from skrtrl._sequences import TrainingBatch

N_SEQ, LENGTH = 32, 50


def batch(rng):
    values = rng.normal(size=(N_SEQ * LENGTH, 1))
    targets = rng.normal(size=(N_SEQ * LENGTH, 1))
    starts = np.arange(N_SEQ, dtype=np.intp) * LENGTH
    lengths = np.full(N_SEQ, LENGTH, dtype=np.intp)
    weights = np.full(N_SEQ * LENGTH, 1.0 / LENGTH)
    return TrainingBatch(values, targets, starts, starts, lengths, weights, True)


def per_step_us(cell, gradient, n, data, repeat):
    """Best of ``repeat`` kernel calls, microseconds per sequence-step."""
    obj = make_cell(cell, n, 1, 1, gradient=gradient)
    flat = np.empty(obj.n_params)
    obj.initialize(flat, np.random.RandomState(0))
    workspace = obj.workspace(N_SEQ, 1, np.float64)
    best = np.inf
    for _ in range(repeat + 1):  # the first call sizes buffers
        grad = np.zeros_like(flat)
        start = time.perf_counter()
        obj.train_minibatch(flat, grad, data, 1.0 / N_SEQ, "squared_error", workspace)
        best = min(best, time.perf_counter() - start)
    return 1e6 * best / (N_SEQ * LENGTH)


def slope(sizes, times):
    return float(np.polyfit(np.log(sizes), np.log(times), 1)[0])


def stream_rates(cell, n, n_rows, chunk, dtype=np.float64, solver="adam"):
    """Steps per second of a stateful regressor learning a stream, by the
    wall clock and by the process's CPU time (the latter hardly moved by
    other jobs on a shared machine); the data in ``dtype``."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(n_rows, 1)).astype(dtype)
    y = np.roll(X[:, 0], 3)
    est = RTRLRegressor(
        n_hidden=n,
        cell=cell,
        stateful=True,
        random_state=0,
        solver=solver,
        clip_norm=FORMER_REGRESSOR_DEFAULTS["clip_norm"],
    )
    est.partial_fit(X[:chunk], y[:chunk])  # initialisation and first chunk
    start, cpu = time.perf_counter(), time.process_time()
    for pos in range(chunk, n_rows, chunk):
        est.partial_fit(X[pos : pos + chunk], y[pos : pos + chunk])
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return (n_rows - chunk) / wall, (n_rows - chunk) / cpu


def stream_rate(cell, n, n_rows, chunk):
    """Steps per second of a stateful regressor learning a stream (wall)."""
    return stream_rates(cell, n, n_rows, chunk)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n up to 512")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--cells", default="egru,elstm,diagonal,lru")
    parser.add_argument("--sizes", help="comma-separated n_hidden values")
    parser.add_argument("--no-stream", action="store_true", help="skip (2), (3)")
    parser.add_argument("--no-minibatch", action="store_true", help="skip (1)")
    parser.add_argument("--dtype", default="float64", help="of (2), (3)")
    parser.add_argument("--solver", default="adam", help="of (2), (3)")
    args = parser.parse_args()
    if args.no_minibatch:
        args.cells = ""
    sizes = [128, 256, 512] if args.quick else [128, 256, 512, 1024, 2048]
    if args.sizes:
        sizes = [int(n) for n in args.sizes.split(",")]
    data = batch(np.random.RandomState(0))
    results = {"per_step_us": {}, "slope": {}, "rtrl_over_bptt": {}}
    if args.cells:
        print(f"µs per sequence-step (batch {N_SEQ}, {LENGTH} steps, 1 thread)")
        print(f"{'cell/method':<14}" + "".join(f"{n:>10}" for n in sizes) + "   slope")
    for cell in filter(None, args.cells.split(",")):
        for gradient in ("rtrl", "bptt"):
            times = [per_step_us(cell, gradient, n, data, args.repeat) for n in sizes]
            key = f"{cell}/{gradient}"
            results["per_step_us"][key] = dict(zip(sizes, times))
            results["slope"][key] = slope(sizes, times) if len(sizes) > 1 else 0.0
            row = "".join(f"{t:>10.2f}" for t in times)
            print(f"{key:<14}{row}   {results['slope'][key]:.2f}")
        ratios = [
            results["per_step_us"][f"{cell}/rtrl"][n]
            / results["per_step_us"][f"{cell}/bptt"][n]
            for n in sizes
        ]
        results["rtrl_over_bptt"][cell] = dict(zip(sizes, ratios))
        print(f"{cell + ' rtrl/bptt':<14}" + "".join(f"{r:>10.2f}" for r in ratios))
    if args.no_stream:
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(results, fh, indent=2)
        return
    if not args.no_minibatch:
        full = per_step_us("gru", "rtrl", 64, data, 1)
        results["gru_rtrl_n64_us"] = full
        print(f"for scale: full GRU exact RTRL at n = 64: {full:.1f} µs per step")

    n_rows = 11_000 if args.quick else 51_000
    for cell in ("egru", "elstm"):
        for dtype in args.dtype.split(","):
            for solver in args.solver.split(","):
                rate, cpu = stream_rates(cell, 1024, n_rows, 1000, dtype, solver)
                # The float64 Adam stream keeps its earlier keys.
                tag = f"_{dtype}_{solver}"
                if (dtype, solver) == ("float64", "adam"):
                    tag = ""
                results[f"{cell}_stream_steps_per_s{tag}"] = rate
                results[f"{cell}_stream_steps_per_cpu_s{tag}"] = cpu
                print(
                    f"{cell} stream, 1024 units, 1 input, {dtype}, {solver}:"
                    f" {rate:,.0f} steps per second"
                    f" ({cpu:,.0f} per second of CPU time)"
                )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
