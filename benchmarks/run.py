"""Every performance target of skrtrl in one run, as ratios against targets.

One command measures the seven targets of the performance issue on this
machine and prints one table (measured value, target, met or missed), then
optionally writes everything to JSON::

    python benchmarks/run.py --quick            # < 1 minute
    python benchmarks/run.py --json perf.json   # full run, < 10 minutes

The targets:

1. influence-update throughput of the exact Elman kernel, minibatch of 32
   on one kernel thread per core, as a fraction of the same run's numpy
   1024 x 1024 dgemm rate (n = 64, 128; target 0.8), taken as the best of
   the threaded dgemm and the cores times the single-thread dgemm;
2. speed-up per step over the plain numpy RTRL of ``_numpy_rtrl.py``
   (batch 1, one matmul per step; n = 8, 16, 32, 128; targets 20, 8, 3, 1);
3. time per step of small networks against the flop-bound time at batch 32
   (n = 8, 16, 32; target: within 3x);
4. speed-up of two kernel threads over one at n = 16, batch 64 (target 1.6),
   and no oversubscription at n = 128 (two threads not slower than one, one
   BLAS thread inside each);
5. float32 against float64 throughput at n = 64 (target 1.6), with the
   float32 gradient checked against the float64 numpy reference;
6. the GRU and LSTM influence updates (through the estimators' cell
   objects) as a fraction of dgemm peak at n = 64, against the Elman cell's
   fraction in the same run (target: at least 0.95 of it);
7. Japanese Vowels: seconds of training until 0.95 test accuracy, for
   ``RTRLClassifier`` and for a torch GRU of the same size trained with
   BPTT on the CPU (skipped without torch).

Timing follows ``bench_rtrl_step.py`` (its pieces are reused): the items
compared in one ratio are timed interleaved, one sample each in turn, best
of several rounds, so that both sides of a ratio see the same load on a
shared machine. See ``benchmarks/README.md`` and ``doc/performance.rst``.
"""

import argparse
import json
import os
import platform
import sys
import time
import warnings

import bench_rtrl_step
import numpy as np
from _numpy_rtrl import KernelCall, check_against_kernel, rtrl_sequence
from bench_rtrl_step import (
    PEAK_SIZE,
    Timed,
    influence_flops,
    kernel_item,
    library_summary,
    make_problem,
    numpy_item,
    product_item,
    time_interleaved,
)
from skrtrl._kernels._threads import openmp_max_threads
from threadpoolctl import threadpool_info, threadpool_limits

from skrtrl._cells import CELLS
from skrtrl._sequences import TrainingBatch

N_CORES = max(1, openmp_max_threads())
START = time.perf_counter()

#: Sequence length per hidden size, full and quick runs.
STEPS = {8: 50, 16: 50, 32: 50, 64: 20, 128: 6}
QUICK_STEPS = {8: 20, 16: 20, 32: 10, 64: 4, 128: 4}


def progress(what):
    """Print which measurement starts, and the seconds since the start."""
    print(
        f"  {what} ... ({time.perf_counter() - START:.0f} s)",
        file=sys.stderr,
        flush=True,
    )


class Row:
    """One line of the result table: a target, what was measured, the verdict.

    Parameters
    ----------
    target : str
        Target number and what it measures.
    value : float or None
        The measured figure (None: not measured).
    goal : float or None
        The target value; None for a figure reported without a target.
    higher_is_better : bool
        Whether ``value`` must be at least (True) or at most (False) ``goal``.
    detail : str
        The raw measurements behind ``value``.
    """

    def __init__(self, target, value, goal, higher_is_better=True, detail=""):
        self.target = target
        self.value = value
        self.goal = goal
        self.higher_is_better = higher_is_better
        self.detail = detail

    @property
    def status(self):
        """ "met", "MISSED", "report" (no target) or "skipped"."""
        if self.value is None:
            return "skipped"
        if self.goal is None:
            return "report"
        if self.higher_is_better:
            return "met" if self.value >= self.goal else "MISSED"
        return "met" if self.value <= self.goal else "MISSED"

    def as_dict(self):
        """The row as a JSON-ready dict."""
        return {
            "target": self.target,
            "value": self.value,
            "goal": self.goal,
            "higher_is_better": self.higher_is_better,
            "status": self.status,
            "detail": self.detail,
        }


def peak_items():
    """numpy dgemm at default BLAS threads and on one thread (CPU time of
    the calling thread, see ``single_thread``)."""
    return {
        "dgemm": product_item(PEAK_SIZE, PEAK_SIZE, PEAK_SIZE),
        "dgemm1": single_thread(
            product_item(PEAK_SIZE, PEAK_SIZE, PEAK_SIZE, threads=1)
        ),
    }


def single_thread(item):
    """Time ``item`` by the CPU time of the calling thread.

    For calls that run wholly in the calling thread (BLAS on one thread, one
    kernel thread): time lost while another process holds the core is not
    counted, which keeps single-thread rates steady on a shared machine.
    """
    item.clock = time.thread_time
    return item


def rate(item):
    """GFLOP/s of a product item (timed per flop)."""
    return 1e-9 / item.best


def machine_peak(peaks):
    """The machine's dgemm rate: the threaded dgemm, or the single-thread
    one times the cores if that is higher. On a shared machine the threaded
    product is the first to suffer when another process takes a core; the
    single-thread rate scaled up keeps the peak (and so the fractions of
    it) from being flattered by such a disturbance."""
    return max(rate(peaks["dgemm"]), N_CORES * rate(peaks["dgemm1"]))


def step_flops(n_hidden, n_steps):
    """Flops of the influence products per sequence-step, averaged over a
    sequence: the Elman kernel does none on the first two steps (P_1 and
    P_2 are written directly), so only T - 2 products count."""
    return influence_flops(n_hidden) * (n_steps - 2) / n_steps


def total_step_flops(n_hidden):
    """All flops of one training step of one sequence (m = o = 1): the
    influence product, the gradient contraction P^T g, the diagonal blocks,
    the forward product and the readout."""
    q = n_hidden + 2
    nq = n_hidden * q
    return influence_flops(n_hidden) + 2 * n_hidden * nq + 2 * nq + 2 * nq + 8 * q


def measure_elman(steps, repeat, min_time, record):
    """Targets 1 to 3: the Elman kernel against numpy and dgemm, per size.

    Returns
    -------
    dict of int to dict
        Per hidden size: the timed items and derived rates.
    """
    results = {}
    two = min(2, N_CORES)
    for n_hidden, n_steps in steps.items():
        progress(f"Elman n = {n_hidden}")
        peaks = peak_items()
        time_interleaved(peaks, repeat, min_time)
        items = {
            "numpy": numpy_item(n_hidden, n_steps),
            "b1": kernel_item(n_hidden, n_steps, 1, 1, True),
            "b32_2": kernel_item(n_hidden, n_steps, 32, two, True),
        }
        items["b32_1"] = single_thread(kernel_item(n_hidden, n_steps, 32, 1, True))
        if n_hidden >= 128:
            # Per core: one kernel thread with BLAS held to one thread too
            # (the estimators let BLAS thread here), robust to a busy core.
            items["b32_1"].context = lambda: threadpool_limits(1, user_api="blas")
            items["b32_1"].blas_threads = 1
        time_interleaved(items, repeat, min_time)
        flops = step_flops(n_hidden, n_steps)
        results[n_hidden] = {
            "T": n_steps,
            "dgemm_gflops": rate(peaks["dgemm"]),
            "peak_gflops": machine_peak(peaks),
            "dgemm1_gflops": rate(peaks["dgemm1"]),
            "numpy_us": items["numpy"].best * 1e6,
            "us": {k: items[k].best * 1e6 for k in items if k != "numpy"},
            "gflops": {k: flops / items[k].best / 1e9 for k in items if k != "numpy"},
        }
        record.setdefault("elman", {})[n_hidden] = results[n_hidden]
    return results


def elman_rows(results, peak, peak1):
    """Rows of targets 1, 2 and 3."""
    rows = []
    for n_hidden in (64, 128):
        if n_hidden not in results:
            continue
        r = results[n_hidden]
        rows.append(
            Row(
                f"1. Elman influence, n={n_hidden}, batch 32, "
                f"{min(2, N_CORES)} thr: of dgemm peak",
                r["gflops"]["b32_2"] / peak,
                0.8,
                detail=f"{r['gflops']['b32_2']:.1f} / {peak:.1f} GFLOP/s",
            )
        )
        rows.append(
            Row(
                f"1. (per core) n={n_hidden}, batch 32, 1 thr, 1 BLAS thr: "
                "of 1-thread dgemm",
                r["gflops"]["b32_1"] / peak1,
                0.8,
                detail=f"{r['gflops']['b32_1']:.1f} / {peak1:.1f} GFLOP/s",
            )
        )
    for n_hidden, goal in ((8, 20), (16, 8), (32, 3), (128, 1)):
        if n_hidden not in results:
            continue
        r = results[n_hidden]
        for key, label in (("b1", "batch 1, 1 thr"), ("b32_2", "batch 32, 2 thr")):
            rows.append(
                Row(
                    f"2. speed-up over numpy RTRL, n={n_hidden}, {label}",
                    r["numpy_us"] / r["us"][key],
                    goal,
                    detail=f"numpy {r['numpy_us']:.2f} us / skrtrl "
                    f"{r['us'][key]:.2f} us per step",
                )
            )
    for n_hidden in (8, 16, 32):
        if n_hidden not in results:
            continue
        r = results[n_hidden]
        flops = total_step_flops(n_hidden)
        # Flop-bound: all the step's flops at the dgemm rate of the cores
        # in use (one core per kernel thread).
        for key, label, cores in (
            ("b32_1", "1 thr", 1),
            ("b32_2", f"{min(2, N_CORES)} thr", min(2, N_CORES)),
        ):
            bound_us = flops / (peak1 * 1e9 * cores) * 1e6
            rows.append(
                Row(
                    f"3. n={n_hidden} batch 32, {label}: time / flop-bound time",
                    r["us"][key] / bound_us,
                    3.0,
                    higher_is_better=False,
                    detail=f"{r['us'][key] * 1e3:.0f} ns vs {bound_us * 1e3:.0f} ns "
                    f"per step (batch 1: {r['us']['b1'] * 1e3:.0f} ns vs "
                    f"{flops / (peak1 * 1e9) * 1e9:.0f} ns)",
                )
            )
    return rows


def measure_threads(steps, repeat, min_time, record, quick=False):
    """Target 4: two kernel threads against one (n = 16 batch 64; n = 128,
    batch 32, or 8 in quick runs)."""
    rows = []
    if N_CORES < 2:
        return [Row("4. two-thread speed-up", None, 1.6, detail="one core only")]
    # Quick runs check oversubscription on 8 sequences: threaded BLAS (one
    # kernel thread at n = 128) stalls badly when another process holds a
    # core, and 32 sequences of it took 20 s of a quick run on a busy machine.
    big_batch = 8 if quick else 32
    for n_hidden, batch, goal in ((16, 64, 1.6), (128, big_batch, 1.0)):
        if n_hidden not in steps:
            continue
        progress(f"threads n = {n_hidden}")
        n_steps = steps[n_hidden]
        items = {
            "1": kernel_item(n_hidden, n_steps, batch, 1, True),
            "2": kernel_item(n_hidden, n_steps, batch, 2, True),
        }
        time_interleaved(items, repeat, min_time)
        speedup = items["1"].best / items["2"].best
        blas = items["2"].blas_threads
        record.setdefault("threads", {})[n_hidden] = {
            "us_1": items["1"].best * 1e6,
            "us_2": items["2"].best * 1e6,
            "blas_threads_1": items["1"].blas_threads,
            "blas_threads_2": blas,
        }
        what = "speed-up" if goal > 1 else "no oversubscription"
        rows.append(
            Row(
                f"4. {what}: 2 thr vs 1, n={n_hidden}, batch {batch}",
                speedup if blas == 1 else 0.0,
                goal,
                detail=f"{items['1'].best * 1e6:.2f} / {items['2'].best * 1e6:.2f} "
                f"us per step; BLAS threads inside: {items['1'].blas_threads} "
                f"(1 kernel thread), {blas} (2)",
            )
        )
    return rows


def float32_gradient_error(n_hidden=16, n_steps=20, seed=1):
    """Largest gradient error of the float32 kernel against the float64
    numpy reference, relative to the largest gradient entry."""
    params, X, Y = make_problem(n_hidden, n_steps, 2, seed=seed)
    weight = 1.0 / n_steps
    ref = None
    for b in range(2):
        _, grads = rtrl_sequence(X[b], Y[b], params, weight)
        ref = grads if ref is None else {k: ref[k] + grads[k] for k in ref}
    params32 = {k: v.astype(np.float32) for k, v in params.items()}
    call = KernelCall(X.astype(np.float32), Y.astype(np.float32), params32, weight)
    with call.blas_limits():
        call()
    _, grads = call.result()
    return max(
        float(np.max(np.abs(grads[k] - ref[k])) / np.max(np.abs(ref[k]))) for k in ref
    )


def measure_float32(steps, repeat, min_time, record):
    """Target 5: float32 against float64 at n = 64, batch 32."""
    n_hidden = 64
    n_steps = steps[n_hidden]
    threads = min(2, N_CORES)
    progress("float32 n = 64")
    items = {
        "float64": kernel_item(n_hidden, n_steps, 32, threads, True),
        "float32": kernel_item(n_hidden, n_steps, 32, threads, True, np.float32),
    }
    time_interleaved(items, repeat, min_time)
    error = float32_gradient_error()
    ratio = items["float64"].best / items["float32"].best
    record["float32"] = {
        "us_float64": items["float64"].best * 1e6,
        "us_float32": items["float32"].best * 1e6,
        "gradient_relative_error": error,
    }
    return [
        Row(
            f"5. float32 / float64 throughput, n=64, batch 32, {threads} thr",
            ratio,
            1.6,
            detail=f"{items['float64'].best * 1e6:.1f} / "
            f"{items['float32'].best * 1e6:.1f} us per step",
        ),
        Row(
            "5. float32 gradient vs float64 numpy: max error / max |grad|",
            error,
            1e-4,
            higher_is_better=False,
            detail="n=16, T=20, 2 sequences",
        ),
    ]


class CellCall:
    """One minibatch training call through an estimator-level cell object.

    Parameters
    ----------
    name : str
        Key of ``skrtrl._cells.CELLS``.
    n_hidden, n_steps, n_seq, n_threads : int
        Sizes, and kernel threads over the sequences.
    """

    def __init__(self, name, n_hidden, n_steps, n_seq, n_threads, seed=0):
        rng = np.random.default_rng(seed)
        self.cell = CELLS[name](n_hidden, 1, 1)
        self.flat = np.empty(self.cell.n_params)
        self.cell.initialize(self.flat, rng)
        self.grad = np.zeros_like(self.flat)
        self.batch = TrainingBatch(
            values=rng.standard_normal((n_seq * n_steps, 1)),
            targets=rng.standard_normal((n_seq, 1)),
            x_start=np.arange(n_seq, dtype=np.intp) * n_steps,
            y_start=np.arange(n_seq, dtype=np.intp),
            lengths=np.full(n_seq, n_steps, dtype=np.intp),
            target_weight=np.ones(n_seq),
            every_step=False,
        )
        self.workspace = self.cell.workspace(n_seq, n_threads, np.float64)

    def __call__(self):
        self.cell.train_minibatch(
            self.flat,
            self.grad,
            self.batch,
            1.0 / self.batch.lengths.shape[0],
            "squared_error",
            self.workspace,
        )

    def gemm_steps(self, n_steps):
        """Steps of a sequence that run the influence GEMM: all but the
        first two (P_1 = I_1 and P_2 are written without one)."""
        return n_steps - 2

    def gemm_flops(self):
        """Flops of one step's influence GEMM (one sequence)."""
        cell, n = self.cell, self.cell.n
        columns = cell.layout.rows * cell.layout.columns
        if cell.name == "lstm":
            # The LSTM kernel multiplies the (2n x n) h-half of its Jacobian.
            return 2.0 * (2 * n) * n * columns
        return 2.0 * n * n * columns


def measure_gated(steps, repeat, min_time, record):
    """Target 6: GRU and LSTM against Elman, fraction of dgemm peak, n = 64."""
    n_hidden = 64
    # The LSTM step costs 8 Elman steps: shorter sequences in quick runs.
    n_steps = min(steps[n_hidden], 10)
    threads = min(2, N_CORES)
    progress("gated cells n = 64")
    peaks = peak_items()
    time_interleaved(peaks, repeat, min_time)
    calls = {
        name: CellCall(name, n_hidden, n_steps, 32, threads)
        for name in ("elman", "gru", "lstm")
    }
    items = {
        k: Timed(c, 32 * n_steps, threads=f"skrtrl-{threads}") for k, c in calls.items()
    }
    time_interleaved(items, repeat, min_time)
    peak = machine_peak(peaks)
    fractions = {
        k: calls[k].gemm_flops()
        * calls[k].gemm_steps(n_steps)
        / n_steps
        / items[k].best
        / 1e9
        / peak
        for k in items
    }
    record["gated"] = {
        "peak_gflops": peak,
        "us": {k: items[k].best * 1e6 for k in items},
        "fraction_of_peak": fractions,
    }
    return [
        Row(
            f"6. {k.upper()} influence n=64, batch 32, {threads} thr: "
            "of peak / Elman's",
            fractions[k] / fractions["elman"],
            0.95,
            detail=f"{fractions[k]:.0%} of peak vs Elman {fractions['elman']:.0%} "
            f"({items[k].best * 1e6:.0f} us per step)",
        )
        for k in ("gru", "lstm")
    ]


def _japanese_vowels():
    """Standardised Japanese Vowels (statistics of the training frames)."""
    from sklearn.preprocessing import StandardScaler

    from skrtrl.datasets import load_japanese_vowels

    X_train, X_test, y_train, y_test = load_japanese_vowels(return_X_y=True)
    scaler = StandardScaler().fit(np.concatenate(X_train))
    X_train = [scaler.transform(x) for x in X_train]
    X_test = [scaler.transform(x) for x in X_test]
    return X_train, X_test, np.asarray(y_train), np.asarray(y_test)


def time_to_accuracy(train_epoch, score, goal, budget, max_epochs):
    """Train epoch by epoch until the test accuracy reaches ``goal``.

    Only the training is timed (not the scoring).

    Returns
    -------
    seconds : float or None
        Training time until ``goal`` was reached, None if it was not.
    epochs : int
        Epochs run.
    accuracy : float
        Best test accuracy seen.
    elapsed : float
        Total training time.
    """
    elapsed, best = 0.0, 0.0
    for epoch in range(1, max_epochs + 1):
        start = time.perf_counter()
        train_epoch()
        elapsed += time.perf_counter() - start
        best = max(best, score())
        if best >= goal:
            return elapsed, epoch, best, elapsed
        if elapsed > budget:
            break
    return None, epoch, best, elapsed


def rtrl_vowels(data, n_hidden, goal, budget, max_epochs):
    """RTRLClassifier (Elman, the gallery example's settings), all cores."""
    from skrtrl import RTRLClassifier

    X_train, X_test, y_train, y_test = data
    clf = RTRLClassifier(
        n_hidden=n_hidden,
        cell="elman",
        pooling="last",
        activation="relu",
        learning_rate_init=0.01,
        batch_size=16,
        alpha=1e-3,
        clip_norm=1.0,
        random_state=0,
        n_jobs=-1,
    )
    classes = np.unique(y_train)

    def epoch():
        clf.partial_fit(X_train, y_train, classes=classes)

    return time_to_accuracy(
        epoch, lambda: clf.score(X_test, y_test), goal, budget, max_epochs
    )


def torch_vowels(data, n_hidden, goal, budget, max_epochs):
    """torch GRU + linear readout, BPTT, Adam, minibatches of 16, all cores."""
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_sequence

    torch.manual_seed(0)
    torch.set_num_threads(N_CORES)
    X_train, X_test, y_train, y_test = data
    classes = np.unique(y_train)

    def pack(X):
        tensors = [torch.as_tensor(x, dtype=torch.float32) for x in X]
        lengths = torch.as_tensor([len(x) for x in X])
        return pad_sequence(tensors, batch_first=True), lengths

    Xtr, Ltr = pack(X_train)
    Xte, Lte = pack(X_test)
    ytr = torch.as_tensor(np.searchsorted(classes, y_train))
    yte = np.searchsorted(classes, y_test)
    gru = nn.GRU(Xtr.shape[2], n_hidden, batch_first=True)
    readout = nn.Linear(n_hidden, len(classes))
    parameters = list(gru.parameters()) + list(readout.parameters())
    optimizer = torch.optim.Adam(parameters, lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)

    def forward(X, L):
        packed = pack_padded_sequence(X, L, batch_first=True, enforce_sorted=False)
        _, h = gru(packed)
        return readout(h[-1])

    def epoch():
        order = torch.randperm(len(ytr), generator=generator)
        for start in range(0, len(order), 16):
            idx = order[start : start + 16]
            optimizer.zero_grad()
            loss = loss_fn(forward(Xtr[idx], Ltr[idx]), ytr[idx])
            loss.backward()
            nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()

    def score():
        with torch.no_grad():
            return float(np.mean(forward(Xte, Lte).argmax(1).numpy() == yte))

    return time_to_accuracy(epoch, score, goal, budget, max_epochs)


def measure_vowels(quick, record):
    """Target 7: time to 0.95 test accuracy on Japanese Vowels."""
    goal, n_hidden = 0.95, 32
    budget = 20.0 if quick else 120.0
    max_epochs = 300
    progress("Japanese Vowels")
    data = _japanese_vowels()
    results = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results["skrtrl"] = rtrl_vowels(data, n_hidden, goal, budget, max_epochs)
        try:
            import torch  # noqa: F401
        except ImportError:
            results["torch"] = None
        else:
            results["torch"] = torch_vowels(data, n_hidden, goal, budget, max_epochs)
    record["japanese_vowels"] = {
        k: None if v is None else dict(zip(("seconds", "epochs", "best", "total"), v))
        for k, v in results.items()
    }

    def describe(result):
        seconds, epochs, best, total = result
        reached = f"{seconds:.1f} s" if seconds is not None else "not reached"
        return f"{reached} ({epochs} epochs, best {best:.3f}, {total:.1f} s)"

    rows = [
        Row(
            f"7. Japanese Vowels, n={n_hidden}: skrtrl seconds to 0.95",
            results["skrtrl"][0],
            None,
            detail="RTRLClassifier " + describe(results["skrtrl"]),
        )
    ]
    torch_result = results["torch"]
    value = None
    detail = "torch not installed"
    if torch_result is not None:
        detail = "torch GRU BPTT " + describe(torch_result)
        if torch_result[0] is not None and results["skrtrl"][0] is not None:
            value = torch_result[0] / results["skrtrl"][0]
    rows.append(
        Row(
            "7. Japanese Vowels: torch GRU seconds / skrtrl seconds",
            value,
            None,
            detail=detail,
        )
    )
    return rows


def format_table(rows):
    """The result table as text."""
    width = max(len(r.target) for r in rows)
    lines = [f"{'target':<{width}}  {'measured':>9}  {'goal':>7}  status   detail"]
    lines.append("-" * (len(lines[0]) + 30))
    for r in rows:
        value = "-" if r.value is None else f"{r.value:9.3g}"
        sign = ">=" if r.higher_is_better else "<="
        goal = "" if r.goal is None else f"{sign}{r.goal:g}"
        lines.append(
            f"{r.target:<{width}}  {value:>9}  {goal:>7}  {r.status:<7}  {r.detail}"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="shorter sequences and rounds (< 1 min)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    parser.add_argument(
        "--repeat", type=int, default=None, help="rounds of samples (best kept)"
    )
    parser.add_argument(
        "--skip",
        default="",
        help="comma-separated targets to skip, e.g. 7 (or 1 for 1-3)",
    )
    return parser.parse_args(argv)


def main(argv=None):
    """Measure every target, print the table, write the JSON."""
    args = parse_args(argv)
    steps = QUICK_STEPS if args.quick else STEPS
    repeat = args.repeat or (3 if args.quick else 7)
    min_time = 0.01 if args.quick else 0.05
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.quick:
        # Shorter waits between thread pools: they are most of a quick run.
        bench_rtrl_step.SETTLE = 0.05
    check_against_kernel()
    print("check: the numpy reference and the skrtrl kernel give the same gradients")
    print("libraries:\n" + library_summary())
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    record = {}
    rows = []
    if "1" not in skip:
        results = measure_elman(steps, repeat, min_time, record)
        peak = max(r["peak_gflops"] for r in results.values())
        peak1 = max(r["dgemm1_gflops"] for r in results.values())
        record["peak_gflops"], record["peak1_gflops"] = peak, peak1
        rows += elman_rows(results, peak, peak1)
    if "4" not in skip:
        rows += measure_threads(steps, repeat, min_time, record, args.quick)
    if "5" not in skip:
        rows += measure_float32(steps, repeat, min_time, record)
    if "6" not in skip:
        rows += measure_gated(steps, repeat, min_time, record)
    if "7" not in skip:
        rows += measure_vowels(args.quick, record)
    elapsed = time.perf_counter() - start
    load_end = os.getloadavg()[0]

    print(
        f"\n{elapsed:.0f} s; load average {load_start:.2f} at start, "
        f"{load_end:.2f} at end; {N_CORES} cores"
    )
    if "peak_gflops" in record:
        print(
            f"dgemm {PEAK_SIZE}x{PEAK_SIZE} peak: {record['peak_gflops']:.1f} "
            f"GFLOP/s (the best of the threaded dgemm and {N_CORES} x the "
            f"single-thread one, {record['peak1_gflops']:.1f})"
        )
    print(f"best of {repeat} interleaved rounds; thr = kernel threads\n")
    print(format_table(rows))
    if args.json:
        result = {
            "command": " ".join(sys.argv),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "machine": platform.platform(),
            "processor": platform.processor(),
            "cores": N_CORES,
            "numpy": np.__version__,
            "libraries": threadpool_info(),
            "repeat": repeat,
            "quick": args.quick,
            "seconds": elapsed,
            "load_average": [load_start, load_end],
            "rows": [r.as_dict() for r in rows],
            "measurements": record,
        }
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
