"""Japanese Vowels with the Elman, GRU and LSTM cells: test accuracy and fit time.

Each cell is trained with the configuration chosen for it (see
``CONFIGS``) on the standard split of
:func:`skrtrl.datasets.load_japanese_vowels` (270 training and 370 test
utterances), with every channel standardised by statistics of the training
frames. Every configuration is fitted once per ``random_state`` and the
script prints, per cell, the test accuracy (mean, min, max over the seeds),
the training accuracy, the number of epochs, the fit time, and the test
accuracy of the seeds' models taken together (mean of their
``predict_proba``).

The configurations were chosen by 3-fold stratified cross-validation on the
training set only (see the benchmarks README); the test set was used for
nothing but this table. Fits run one at a time on one kernel thread
(``n_jobs=1``): on a shared machine the fit times are indicative only.

Run from the repository root, with the extension built in place::

    PYTHONPATH=. python benchmarks/bench_japanese_vowels_cells.py
    PYTHONPATH=. python benchmarks/bench_japanese_vowels_cells.py --seeds 0 1 2
    PYTHONPATH=. python benchmarks/bench_japanese_vowels_cells.py --configs gru lstm
"""

import argparse
import json
import os
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from skrtrl import RTRLClassifier
from skrtrl.datasets import load_japanese_vowels

#: Shared by every cell: stop once the training loss has not improved for 20
#: epochs, clip each update's gradient to norm 1.
COMMON = dict(clip_norm=1.0, n_iter_no_change=20, max_iter=300, n_jobs=1)

CONFIGS = {
    # examples/plot_japanese_vowels.py
    "elman": dict(
        cell="elman",
        n_hidden=32,
        activation="relu",
        learning_rate_init=0.01,
        batch_size=16,
        alpha=1e-3,
    ),
    "gru": dict(
        cell="gru",
        n_hidden=16,
        learning_rate_init=0.02,
        batch_size=16,
        alpha=1e-2,
    ),
    # SnAp-1 costs about as much per step as the forward pass, so twice the
    # units still fit faster than exact RTRL with 16.
    "gru-snap1": dict(
        cell="gru",
        gradient="snap1",
        n_hidden=32,
        learning_rate_init=0.02,
        batch_size=16,
        alpha=1e-2,
    ),
    "lstm": dict(
        cell="lstm",
        n_hidden=16,
        learning_rate_init=0.01,
        batch_size=16,
        alpha=1e-2,
    ),
}


def load_standardised():
    X_train, X_test, y_train, y_test = load_japanese_vowels(return_X_y=True)
    scaler = StandardScaler().fit(np.concatenate(X_train))
    X_train = [scaler.transform(x) for x in X_train]
    X_test = [scaler.transform(x) for x in X_test]
    return X_train, X_test, y_train, y_test


def run(cells, seeds):
    X_train, X_test, y_train, y_test = load_standardised()
    rows, ensembles = [], {}
    for cell in cells:
        proba = 0.0
        for seed in seeds:
            clf = RTRLClassifier(random_state=seed, **COMMON, **CONFIGS[cell])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                start = time.perf_counter()
                clf.fit(X_train, y_train)
                fit_time = time.perf_counter() - start
            proba = proba + clf.predict_proba(X_test)
            rows.append(
                dict(
                    cell=cell,
                    seed=seed,
                    epochs=clf.n_iter_,
                    fit_time=fit_time,
                    train_accuracy=clf.score(X_train, y_train),
                    test_accuracy=clf.score(X_test, y_test),
                )
            )
            print(
                f"  {cell:10s} seed {seed}: test {rows[-1]['test_accuracy']:.4f}, "
                f"{clf.n_iter_} epochs, {fit_time:.1f} s",
                flush=True,
            )
        # The seeds' models as one ensemble: mean of their probabilities.
        ensembles[cell] = float(np.mean(clf.classes_[proba.argmax(axis=1)] == y_test))
    return rows, ensembles


def summarise(rows, ensembles, cells):
    print()
    header = (
        f"{'config':10s} {'n_hidden':>8s} {'test mean':>9s} {'min':>6s} {'max':>6s} "
        f"{'train':>6s} {'epochs':>6s} {'fit s':>6s} {'ensemble':>8s}"
    )
    print(header)
    print("-" * len(header))
    for cell in cells:
        mine = [r for r in rows if r["cell"] == cell]
        test = np.array([r["test_accuracy"] for r in mine])
        print(
            f"{cell:10s} {CONFIGS[cell]['n_hidden']:8d} {test.mean():9.4f} "
            f"{test.min():6.4f} {test.max():6.4f} "
            f"{np.mean([r['train_accuracy'] for r in mine]):6.4f} "
            f"{np.mean([r['epochs'] for r in mine]):6.0f} "
            f"{np.mean([r['fit_time'] for r in mine]):6.1f} "
            f"{ensembles[cell]:8.4f}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--configs", nargs="+", choices=list(CONFIGS), default=None, dest="cells"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(5)))
    parser.add_argument("--json", help="write every fit's figures to this file")
    args = parser.parse_args()
    cells = args.cells or list(CONFIGS)
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    rows, ensembles = run(cells, args.seeds)
    summarise(rows, ensembles, cells)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                dict(configs=CONFIGS, common=COMMON, fits=rows, ensembles=ensembles),
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
