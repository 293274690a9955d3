"""Cost per training step of every cell and gradient method, against n.

For each (cell, gradient) pair that the estimators accept and each hidden
size n, one minibatch of B sequences of T steps (m = 4 inputs, one output,
a target per step, float64) goes through ``RTRLRegressor.partial_fit`` with
``batch_size=B``: one kernel call and one optimizer step. The figure is the
time of that call divided by the B * T steps, best of a few repetitions
after a warm-up call (which initialises the model). Validation and the
optimizer step are included; they are small against the kernel beyond the
smallest n.

Then, per pair, the log-log slope of time per step against n, fitted over
the sizes n >= 32 (where the leading term dominates). Expected from the
cost model (with q = m + n + 2 columns per unit):

* exact RTRL, Elman, GRU and LSTM: the influence (n x n q per gate) times
  the recurrent Jacobian, O(n^2 * n q) = O(n^4), slope about 4;
* SnAp-1 and the diagonal cell: O(n q) = O(n^2), slope about 2;
* UORO and BPTT: a few passes over the parameters, O(n q) = O(n^2),
  slope about 2 (BPTT: per unrolled step).

Sizes whose predicted time would exceed the budget of one point are
skipped (shown as ``-``): exact RTRL at n = 256 stores an influence of
n * n q numbers per sequence (0.5 GB for the Elman cell, 1.6 GB for the GRU)
and costs seconds per step.

Run from the repository root::

    python benchmarks/bench_methods.py [--quick] [--json PATH]

``--quick`` (about a minute) stops at n = 64 with fewer repetitions. The
machine may be shared: the load average is printed beside the table.
"""

import argparse
import json
import os
import platform
import time

import numpy as np

from skrtrl import RTRLRegressor

CELLS = ("elman", "diagonal", "gru", "lstm")
METHODS = ("rtrl", "snap1", "uoro", "bptt")
SIZES = (8, 16, 32, 64, 128, 256)
N_INPUTS = 4
#: Seconds one timed call may take; larger sizes of a pair are skipped.
BUDGET = 20.0
#: Shortest timed call, and the longest sequences used to reach it.
MIN_CALL = 0.1
MAX_STEPS = 4000


def accepted(cell, gradient):
    """Whether the estimators accept this pair (a ValueError says why not)."""
    try:
        make(cell, gradient, 4).partial_fit(*data(1, 2))
    except ValueError as exc:
        return str(exc)
    return None


def make(cell, gradient, n_hidden):
    return RTRLRegressor(
        n_hidden=n_hidden,
        cell=cell,
        gradient=gradient,
        output="sequence",
        batch_size=1,
        random_state=0,
    )


def data(n_sequences, n_steps, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_sequences, n_steps, N_INPUTS))
    return X, rng.normal(size=(n_sequences, n_steps))


def time_per_step(cell, gradient, n_hidden, n_sequences, n_steps, repeats):
    """Best seconds per sequence step of one minibatch ``partial_fit``.

    Short calls are lengthened (more steps per sequence, up to
    ``MAX_STEPS``) until one takes about ``MIN_CALL`` seconds, so that the
    fixed cost of a call (validation, one optimizer step) does not hide
    the cost per step.
    """
    est = make(cell, gradient, n_hidden).set_params(batch_size=n_sequences)
    X, y = data(n_sequences, n_steps)
    start = time.perf_counter()
    est.partial_fit(X, y)  # initialise; first touch of the buffers
    first = time.perf_counter() - start
    if first < MIN_CALL:
        n_steps = int(min(MAX_STEPS, n_steps * MIN_CALL / max(first, 1e-6)))
        X, y = data(n_sequences, n_steps)
        est.partial_fit(X, y)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        est.partial_fit(X, y)
        best = min(best, time.perf_counter() - start)
    return best / (n_sequences * n_steps), best


def slope(sizes, times):
    """Least-squares slope of log(time) against log(n) over n >= 32."""
    points = [(n, t) for n, t in zip(sizes, times) if n >= 32 and np.isfinite(t)]
    if len(points) < 2:
        return float("nan")
    n, t = np.log(np.array(points)).T
    return float(np.polyfit(n, t, 1)[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    sizes = tuple(n for n in SIZES if not args.quick or n <= 64)
    repeats = 2 if args.quick else 3
    n_sequences, n_steps = (4, 10) if args.quick else (8, 16)

    print(f"python {platform.python_version()}, numpy {np.__version__}")
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print(f"minibatch of {n_sequences} sequences x {n_steps} steps, m = {N_INPUTS}")
    print("time per sequence step (microseconds), best of", repeats)
    header = f"{'cell':>9} {'gradient':>8} " + "".join(f"{n:>10}" for n in sizes)
    print(header + f"{'slope':>8}")

    results = []
    for cell in CELLS:
        for gradient in METHODS:
            refused = accepted(cell, gradient)
            if refused is not None:
                print(f"{cell:>9} {gradient:>8}  not accepted: {refused[:70]}")
                results.append({"cell": cell, "gradient": gradient, "refused": refused})
                continue
            times, per_step = [], 0.0
            for n in sizes:
                # Exact RTRL grows ~16x per doubling; skip what would not fit,
                # and shorten the sequences of the largest sizes.
                growth = 16.0 if gradient == "rtrl" and cell != "diagonal" else 4.0
                predicted = per_step * growth * n_sequences
                if predicted * 4 > BUDGET:
                    times.append(float("nan"))
                    continue
                steps = n_steps
                if predicted * n_steps * repeats > BUDGET:
                    steps = 4
                per_step, _ = time_per_step(
                    cell, gradient, n, n_sequences, steps, repeats
                )
                times.append(per_step)
            s = slope(sizes, times)
            cells = "".join(
                f"{t * 1e6:>10.1f}" if np.isfinite(t) else f"{'-':>10}" for t in times
            )
            print(f"{cell:>9} {gradient:>8} {cells}{s:>8.2f}", flush=True)
            results.append(
                {
                    "cell": cell,
                    "gradient": gradient,
                    "sizes": list(sizes),
                    "seconds_per_step": [None if np.isnan(t) else t for t in times],
                    "slope_n_ge_32": s,
                }
            )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "methods", "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
