"""Japanese Vowels with pooled readouts: last step vs mean vs maximum.

One target per utterance, read from the last hidden state
(``pooling="last"``), from the mean of the hidden states over the
utterance (``"mean"``), or from each unit's maximum over it (``"max"``).
Cells: the element-wise GRU (``cell="egru"``, 32 units) and the GRU (16
units), both trained by exact RTRL, on the standard split of
:func:`skrtrl.datasets.load_japanese_vowels` (270 training, 370 test
utterances), every channel standardised by statistics of the training
frames.

For each cell and pooling, the learning rate is chosen among ``RATES`` by
3-fold stratified cross-validation on the training set only (one seed, the
scaler fitted inside each fold); the chosen setting is then fitted on the
whole training set once per seed and scored on the test set, which is used
for nothing else. Fits run one at a time on one kernel thread; the machine
may be shared, so times are indicative only.

``--cost`` instead times one exact-RTRL gradient of a minibatch (32
random sequences of 25 steps, 12 inputs) with each pooling, interleaved,
best of several rounds of thread CPU time, and prints the ratios to
``pooling="last"``: the cost of the pooled readout's accumulator (and,
for one layer, of ``"mean+last"``).

Run from the repository root, with the extension built in place::

    PYTHONPATH=. python benchmarks/bench_pooling.py
    PYTHONPATH=. python benchmarks/bench_pooling.py --cells egru --seeds 0 1 2
    PYTHONPATH=. python benchmarks/bench_pooling.py --cost
"""

import argparse
import os
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from skrtrl import RTRLClassifier
from skrtrl.datasets import load_japanese_vowels

POOLINGS = ("last", "mean", "max")
RATES = (0.003, 0.01, 0.03)
CELLS = {"egru": 32, "gru": 16}
COMMON = dict(
    batch_size=16,
    alpha=1e-3,
    clip_norm=1.0,
    max_iter=200,
    n_iter_no_change=15,
    n_jobs=1,
)


def standardise(X_fit, *Xs):
    """Scale every channel by the statistics of the frames of ``X_fit``."""
    scaler = StandardScaler().fit(np.concatenate(X_fit))
    return [[scaler.transform(x) for x in X] for X in (X_fit, *Xs)]


def make(cell, pooling, rate, seed):
    return RTRLClassifier(
        CELLS[cell],
        cell=cell,
        pooling=pooling,
        learning_rate_init=rate,
        random_state=seed,
        **COMMON,
    )


def fit(clf, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clf.fit(X, y)


def choose_rate(cell, pooling, X, y):
    """The rate of ``RATES`` with the best mean 3-fold CV accuracy (seed 0)."""
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    scores = {}
    for rate in RATES:
        fold_scores = []
        for train, val in folds:
            X_fit, X_val = standardise([X[i] for i in train], [X[i] for i in val])
            clf = fit(make(cell, pooling, rate, 0), X_fit, y[train])
            fold_scores.append(clf.score(X_val, y[val]))
        scores[rate] = float(np.mean(fold_scores))
    return max(scores, key=scores.get), scores


#: Cell and size of each row of the ``--cost`` table.
COST_CASES = (
    ("egru", 256),
    ("elstm", 256),
    ("gru", 32),
    ("lstm", 16),
    ("glru", 64),
    ("glru", 256),
    ("glru", (32, 32)),  # a stack: its top layer's rows of d y / d theta
)


def cost(rounds=9):
    """Seconds per minibatch gradient by pooling, and ratios to "last"."""
    rng = np.random.RandomState(0)
    X = [rng.normal(size=(25, 12)) for _ in range(32)]
    y = rng.randint(9, size=32)
    print(
        f"{'cell':6s} {'n':>8s} {'last ms':>8s} {'mean/last':>9s} {'max/last':>8s} "
        f"{'mean+last/last':>14s}"
    )
    for cell, n in COST_CASES:
        models = {}
        # A stack reads n numbers of its top layer: no "mean+last".
        poolings = POOLINGS + (("mean+last",) if isinstance(n, int) else ())
        for pooling in poolings:
            clf = RTRLClassifier(n, cell=cell, pooling=pooling, max_iter=1, n_jobs=1)
            models[pooling] = fit(clf, X[:9], np.arange(9))
        best = {pooling: np.inf for pooling in poolings}
        for _ in range(rounds):
            for pooling, clf in models.items():
                # CPU time of this thread (the kernel runs in it with
                # n_jobs=1): time lost to other processes is not counted.
                start = time.thread_time()
                clf.loss_gradient(X, y)
                best[pooling] = min(best[pooling], time.thread_time() - start)
        both = best.get("mean+last", np.nan) / best["last"]
        print(
            f"{cell:6s} {str(n):>8s} {1e3 * best['last']:8.2f} "
            f"{best['mean'] / best['last']:9.3f} {best['max'] / best['last']:8.3f} "
            f"{both:14.3f}",
            flush=True,
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", choices=list(CELLS), default=list(CELLS))
    parser.add_argument("--poolings", nargs="+", choices=POOLINGS, default=POOLINGS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--cost", action="store_true", help="time the accumulator")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    if args.cost:
        cost()
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
        return
    X_train, X_test, y_train, y_test = load_japanese_vowels(return_X_y=True)
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    X_fit, X_eval = standardise(X_train, X_test)
    table = []
    for cell in args.cells:
        for pooling in args.poolings:
            start = time.perf_counter()
            rate, scores = choose_rate(cell, pooling, X_train, y_train)
            cv = ", ".join(f"{r:g}: {s:.4f}" for r, s in scores.items())
            print(f"{cell} {pooling}: CV accuracy by rate {{{cv}}}", flush=True)
            tests, epochs = [], []
            for seed in args.seeds:
                clf = fit(make(cell, pooling, rate, seed), X_fit, y_train)
                tests.append(clf.score(X_eval, y_test))
                epochs.append(clf.n_iter_)
            seconds = time.perf_counter() - start
            table.append((cell, pooling, rate, scores[rate], tests, epochs, seconds))
            print(
                f"{cell} {pooling}: rate {rate:g}, test "
                + " ".join(f"{a:.4f}" for a in tests),
                flush=True,
            )
    print()
    header = (
        f"{'cell':5s} {'n':>3s} {'pooling':7s} {'rate':>6s} {'cv':>6s} "
        f"{'test mean':>9s} {'min':>6s} {'max':>6s} {'epochs':>6s} {'s':>6s}"
    )
    print(header)
    print("-" * len(header))
    for cell, pooling, rate, cv, tests, epochs, seconds in table:
        print(
            f"{cell:5s} {CELLS[cell]:3d} {pooling:7s} {rate:6g} {cv:6.4f} "
            f"{np.mean(tests):9.4f} {np.min(tests):6.4f} {np.max(tests):6.4f} "
            f"{np.mean(epochs):6.0f} {seconds:6.0f}"
        )
    print(f"seeds {args.seeds}; load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
