"""What a stack of element-wise layers costs per sequence-step.

Two layers of n units (``n_hidden=(n, n)``, ``cell="egru"`` or
``--cell``), one input (``--inputs``), one output, targets at every step,
a minibatch of 32 sequences of 50 steps, one kernel thread, float64: the
time per sequence-step of exact RTRL through the stack, of the layer-local
approximation and of full BPTT through the stack, and, for scale, of exact
RTRL of one layer of n units.
Ratios within one run (the machine may be shared); the minimum of
``--repeat`` timings of one ``loss_gradient`` each.

Run from the repository root::

    python benchmarks/bench_stack_cost.py [--sizes 64 128 256] [--repeat 3]
        [--cell egru] [--inputs 1]
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skrtrl import RTRLRegressor

N_SEQ, LENGTH = 32, 50


def seconds(est, X, y, repeat):
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        est.loss_gradient(X, y)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cell", default="egru", help="the cell of each layer")
    parser.add_argument("--inputs", type=int, default=1, help="input columns")
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    rng = np.random.RandomState(0)
    X = rng.normal(size=(N_SEQ, LENGTH, args.inputs))
    y = rng.normal(size=(N_SEQ, LENGTH))
    steps = N_SEQ * LENGTH
    print(
        f"{args.cell}, {args.inputs} input(s), {N_SEQ} sequences of {LENGTH} "
        "steps, one thread, float64"
    )
    print("n      stack rtrl   stack local  stack bptt   one layer rtrl  (µs/step)")
    for n in args.sizes:
        times = []
        for sizes, gradient in (
            ((n, n), "rtrl"),
            ((n, n), "local"),
            ((n, n), "bptt"),
            (n, "rtrl"),
        ):
            est = RTRLRegressor(sizes, cell=args.cell, gradient=gradient,
                                output="sequence", n_jobs=1, max_iter=1,
                                random_state=0)  # fmt: skip
            est.fit(X[:2], y[:2])
            times.append(seconds(est, X, y, args.repeat) / steps * 1e6)
        print(f"{n:<6} " + "  ".join(f"{t:11.1f}" for t in times)
              + f"   rtrl/local {times[0] / times[1]:.1f}x, "
              f"rtrl/bptt {times[0] / times[2]:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
