"""Fit a fixed set of models and save what they learned, to compare two builds.

A refactoring that must not change results is checked by running this script
on the tree before and on the tree after (``PYTHONPATH`` pointing at each
built tree), then comparing the two files::

    PYTHONPATH=/path/to/before python benchmarks/check_equivalence.py before.npz
    PYTHONPATH=/path/to/after  python benchmarks/check_equivalence.py after.npz
    python benchmarks/check_equivalence.py --compare before.npz after.npz

Every cell is trained with every gradient method in every mode it has
(minibatches of sequences for a regressor and a classifier, per-step
updates, a stream, a teacher-forced feedback stream with a closed-loop
forecast, free-running feedback), in float64 and, for one case each, in
float32; then streams of every per-unit influence in both types without,
with idle and with active clipping, pooled readouts, and stacked layers.
Only the public API is used, so both trees run the same code here. The
comparison prints the largest relative difference of each entry, and how
many entries differ in any bit.
"""

import argparse
import functools
import sys
import warnings

import numpy as np
from former_defaults import FORMER_REGRESSOR_DEFAULTS

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._cells import CELLS

#: The regressor at its defaults of before 4 Dec 2026, with which every
#: entry was first recorded: a change of the estimator's defaults must not
#: move the entries, which compare builds. (A minibatch of 32 is clipped to
#: the 12 sequences, as "auto" was, to min(32, 12).)
Regressor = functools.partial(RTRLRegressor, **FORMER_REGRESSOR_DEFAULTS)
CELL_NAMES = tuple(CELLS)
METHODS = (("rtrl", None), ("snap1", None), ("bptt", None), ("bptt", 3), ("uoro", None))


def sequences(rng, n_seq=12, length=7, m=2, dtype=np.float64):
    X = rng.normal(size=(n_seq, length, m)).astype(dtype)
    return X, X.sum(axis=2).cumsum(axis=1) * 0.2


def record(out, key, est, *predictions):
    for name, value in est.params_.items():
        out[f"{key}/params/{name}"] = np.array(value)
    out[f"{key}/loss_curve"] = np.array(est.loss_curve_)
    for i, value in enumerate(predictions):
        out[f"{key}/predict{i}"] = np.asarray(value)


def run():
    out = {}
    warnings.simplefilter("ignore")
    for cell in CELL_NAMES:
        for gradient, truncation in METHODS:
            if gradient not in CELLS[cell].gradients:
                continue
            tag = f"{cell}/{gradient}{truncation or ''}"
            common = dict(
                n_hidden=4, cell=cell, gradient=gradient, truncation=truncation,
                random_state=0, learning_rate_init=0.01,
            )  # fmt: skip
            rng = np.random.RandomState(1)
            X, Y = sequences(rng)
            # Minibatches: regression on the last step, classes per step.
            est = Regressor(max_iter=4, batch_size=5, alpha=1e-3, **common)
            record(out, f"{tag}/minibatch", est.fit(X, Y[:, -1]), est.predict(X))
            labels = (Y > 0).astype(int) + (Y > 0.5)
            clf = RTRLClassifier(output="sequence", max_iter=3, **common)
            clf.fit(X, labels)
            record(out, f"{tag}/classifier", clf, clf.predict_proba(X))
            # Updates after every step of independent sequences.
            est = Regressor(update="step", max_iter=2, **common)
            record(out, f"{tag}/step", est.fit(X, Y[:, -1]), est.predict(X))
            if gradient == "bptt" and truncation is None:
                continue  # streams need a truncation
            # A stream, in two chunks, then predictions from its state.
            stream = rng.normal(size=(80, 1))
            target = np.roll(stream[:, 0], 2)
            est = Regressor(stateful=True, **common)
            est.partial_fit(stream[:40], target[:40])
            est.partial_fit(stream[40:], target[40:])
            record(out, f"{tag}/stream", est, est.predict(stream[:10]))
            # Teacher-forced feedback stream, warm-up, closed-loop forecast.
            series = np.sin(np.arange(120) * 0.3)
            zeros = np.zeros((120, 1))
            est = Regressor(stateful=True, output_feedback=True, **common)
            est.partial_fit(zeros[:100], series[:100])
            est.update_state(zeros[100:110], series[100:110])
            record(out, f"{tag}/feedback", est, est.predict(zeros[:20]))
            if gradient == "rtrl" and "free_running" in CELLS[cell].modes(gradient):
                est = Regressor(
                    output="sequence", output_feedback=True,
                    teacher_forcing=False, max_iter=3, **common,
                )  # fmt: skip
                record(out, f"{tag}/free_running", est.fit(X, Y), est.predict(X))
        # float32, one case per cell.
        rng = np.random.RandomState(2)
        X, Y = sequences(rng, dtype=np.float32)
        est = Regressor(n_hidden=4, cell=cell, max_iter=3, random_state=0)
        record(out, f"{cell}/float32", est.fit(X, Y[:, -1]), est.predict(X))
    streams(out)
    stacks(out)
    return out


def streams(out):
    """Streams of every per-unit influence (exact RTRL of the element-wise
    cells and the LRU, SnAp-1 of the others) in both floating types, under
    what the per-step update reads: no clipping, clipping that stays idle,
    clipping that acts, the L2 penalty off and on, a pooled readout."""
    rng = np.random.RandomState(3)
    stream = rng.normal(size=(60, 2))
    target = np.roll(stream[:, 0], 2)
    settings = {
        "noclip": dict(clip_norm=None, alpha=1e-2),
        "idle": dict(clip_norm=1e6, alpha=0.0),
        "clipped": dict(clip_norm=1e-3, alpha=1e-2),
    }
    for cell in CELL_NAMES:
        for gradient in ("rtrl", "snap1"):
            if gradient not in CELLS[cell].gradients:
                continue
            for dtype in (np.float64, np.float32):
                for name, kw in settings.items():
                    tag = f"stream/{cell}/{gradient}/{np.dtype(dtype).name}/{name}"
                    est = Regressor(
                        n_hidden=5, cell=cell, gradient=gradient, stateful=True,
                        random_state=0, learning_rate_init=0.01, **kw,
                    )  # fmt: skip
                    X, y = stream.astype(dtype), target.astype(dtype)
                    est.partial_fit(X[:30], y[:30])
                    est.partial_fit(X[30:], y[30:])
                    record(out, tag, est, est.predict(X[:10]))
            X, Y = sequences(np.random.RandomState(4))
            est = Regressor(
                n_hidden=4, cell=cell, gradient=gradient, pooling="mean",
                max_iter=3, batch_size=5, random_state=0,
            )  # fmt: skip
            est.fit(X, Y[:, -1])
            record(out, f"pooled/{cell}/{gradient}", est, est.predict(X))


def stacks(out):
    """Stacked layers, whose kernels take the per-unit step too."""
    from skrtrl._stack import STACK_CELLS, STACK_MODES

    rng = np.random.RandomState(5)
    X, Y = sequences(rng)
    stream = rng.normal(size=(60, 2))
    target = np.roll(stream[:, 0], 2)
    for cell in STACK_CELLS:
        for gradient in ("rtrl", "local"):
            tag = f"stack/{cell}/{gradient}"
            common = dict(
                n_hidden=(3, 4), cell=cell, gradient=gradient, random_state=0,
                learning_rate_init=0.01,
            )  # fmt: skip
            if "minibatch" in STACK_MODES[gradient]:
                est = Regressor(max_iter=3, batch_size=5, **common)
                record(out, f"{tag}/minibatch", est.fit(X, Y[:, -1]), est.predict(X))
            if "stream" in STACK_MODES[gradient]:
                est = Regressor(stateful=True, **common)
                est.partial_fit(stream[:30], target[:30])
                est.partial_fit(stream[30:], target[30:])
                record(out, f"{tag}/stream", est, est.predict(stream[:10]))


def compare(before_path, after_path):
    before, after = np.load(before_path), np.load(after_path)
    missing = sorted(set(before.files) ^ set(after.files))
    worst = 0.0
    bits = 0
    for key in sorted(set(before.files) & set(after.files)):
        a, b = before[key], after[key]
        if a.shape != b.shape:
            print(f"{key}: shapes {a.shape} and {b.shape}")
            worst = np.inf
            continue
        # The same bits, signed zeros and NaN payloads included.
        bits += a.dtype != b.dtype or a.tobytes() != b.tobytes()
        scale = max(float(np.max(np.abs(a), initial=0.0)), 1e-300)
        diff = float(np.max(np.abs(a - b), initial=0.0)) / scale
        worst = max(worst, diff)
        if diff > 1e-12:
            print(f"{key}: relative difference {diff:.3e}")
    print(
        f"{len(before.files)} entries; largest relative difference {worst:.3e};"
        f" {bits} not bit for bit the same"
    )
    if missing:
        print(f"entries in only one file: {missing}")
    return 0 if worst <= 1e-12 and not missing else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    if args.compare:
        return compare(*args.files)
    np.savez(args.files[0], **run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
