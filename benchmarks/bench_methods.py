"""Per-step cost of every cell and gradient method against n_hidden.

For each cell (elman, diagonal, gru, lstm) and gradient method (rtrl, snap1,
bptt, bptt with truncation 8, uoro), times one minibatch
kernel call (``train_minibatch`` of the estimators' cell objects, one
kernel thread, float64) on 8 sequences of 32 steps, 1 input, 1 output,
targets at every step, and reports microseconds per sequence-step for
n_hidden from 8 up to 256, with the log-log slope over the last three sizes
measured: about 4 is expected for exact RTRL of the Elman cell (one
n x n times n x n*q product per step), about 2 for the methods whose cost
is proportional to the number of parameters (snap1, bptt, uoro, and exact
RTRL of the element-wise cell, whose parameters grow like n only: slope 1).
Truncated BPTT pays k vector-Jacobian products per target, so its cost is
about k times full BPTT's with targets at every step.

Exact RTRL is measured while one call stays under ``--budget`` seconds
(its O(n^4) cost makes n = 256 take minutes). Every figure is the best of
``--repeat`` interleaved rounds (the machine may be shared).

Run from the repository root::

    python benchmarks/bench_methods.py [--quick] [--json PATH]
"""

import argparse
import json
import os
import time

import numpy as np

from skrtrl._methods import make_cell
from skrtrl._sequences import TrainingBatch

CELLS = ["elman", "diagonal", "gru", "lstm"]
METHODS = [("rtrl", None), ("snap1", None), ("bptt", None), ("bptt", 8), ("uoro", None)]
N_SEQ, LENGTH = 8, 32


def problem(rng):
    values = rng.normal(size=(N_SEQ * LENGTH, 1))
    targets = rng.normal(size=(N_SEQ * LENGTH, 1))
    x_start = np.arange(N_SEQ, dtype=np.intp) * LENGTH
    lengths = np.full(N_SEQ, LENGTH, dtype=np.intp)
    weights = np.full(N_SEQ * LENGTH, 1.0 / LENGTH)
    batch = TrainingBatch(values, targets, x_start, x_start, lengths, weights, True)
    return batch, 1.0 / N_SEQ


def time_call(cell_obj, flat, data, workspace):
    grad = np.zeros_like(flat)
    start = time.perf_counter()
    cell_obj.train_minibatch(flat, grad, *data, "squared_error", workspace)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n up to 64")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    sizes = [8, 16, 32, 64] if args.quick else [8, 16, 32, 64, 128, 256]
    rng = np.random.RandomState(0)
    data = problem(rng)
    results = {}
    for cell in CELLS:
        for gradient, truncation in METHODS:
            key = f"{cell}/{gradient}" + (f"(k={truncation})" if truncation else "")
            results[key] = {}
            for n in sizes:
                obj = make_cell(
                    cell, n, 1, 1, gradient=gradient, truncation=truncation,
                    random_state=np.random.RandomState(0),
                )  # fmt: skip
                flat = np.empty(obj.n_params)
                obj.initialize(flat, np.random.RandomState(0))
                workspace = obj.workspace(N_SEQ, 1, np.float64)
                time_call(obj, flat, data, workspace)  # warm-up, buffers
                best = min(
                    time_call(obj, flat, data, workspace) for _ in range(args.repeat)
                )
                results[key][n] = 1e6 * best / (N_SEQ * LENGTH)
                if best > args.budget:
                    break
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(f"microseconds per sequence-step ({N_SEQ} x {LENGTH} steps, 1 thread)")
    print(f"{'cell/method':24}" + "".join(f"{n:>10}" for n in sizes) + "  slope")
    for key, row in results.items():
        ns = sorted(row)
        slope = float("nan")
        if len(ns) >= 3:
            x, y = np.log(ns[-3:]), np.log([row[n] for n in ns[-3:]])
            slope = float(np.polyfit(x, y, 1)[0])
        cells = "".join(f"{row[n]:>10.2f}" if n in row else f"{'-':>10}" for n in sizes)
        print(f"{key:24}{cells}  {slope:5.2f}")
        row["slope"] = slope
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
