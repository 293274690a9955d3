"""Fixed-input outputs of every kernel, to compare two builds of skrtrl.

Runs every cell with every gradient method through the cell objects (the
layer the estimators call): minibatch gradients (targets at every step and
at the last), online updates from a reset and continuing a stream (Adam,
L2, clipping), the forward pass, and output feedback without teacher
forcing (minibatch, online, closed loop); float64 and float32. UORO draws
its seeds from a fixed RandomState.

    PYTHONPATH=/path/to/tree python benchmarks/check_kernels_unchanged.py \
        save out.npz
    PYTHONPATH=/other/tree python benchmarks/check_kernels_unchanged.py \
        compare out.npz

``compare`` prints, per dtype, the largest relative difference
max|a - b| / max|b| over every array (norm-wise, so that entries near zero
do not dominate) and the array where it occurs.
"""

import sys

import numpy as np

from skrtrl._cells import CELLS
from skrtrl._feedback import FeedbackCell
from skrtrl._methods import make_cell
from skrtrl._optim import AdamOptimizer

N_HIDDEN, N_INPUTS, N_OUTPUTS = 5, 3, 2
LENGTHS = np.array([4, 7, 1, 5], dtype=np.intp)
METHODS = [
    ("rtrl", None),
    ("snap1", None),
    ("bptt", None),
    ("bptt", 3),
    ("uoro", None),
]


def packed(rng, dtype, every_step):
    values = rng.normal(size=(int(LENGTHS.sum()), N_INPUTS)).astype(dtype)
    x_start = np.zeros(LENGTHS.shape[0], dtype=np.intp)
    np.cumsum(LENGTHS[:-1], out=x_start[1:])
    if every_step:
        targets = rng.normal(size=(values.shape[0], N_OUTPUTS)).astype(dtype)
        y_start = x_start.copy()
    else:
        targets = rng.normal(size=(LENGTHS.shape[0], N_OUTPUTS)).astype(dtype)
        y_start = np.arange(LENGTHS.shape[0], dtype=np.intp)
    weights = rng.uniform(0.5, 1.5, size=targets.shape[0]).astype(dtype)
    return values, targets, x_start, y_start, weights


def run_cell(cell, dtype, tag, out, n_inputs):
    rng = np.random.RandomState(0)
    flat = np.empty(cell.n_params, dtype=dtype)
    cell.initialize(flat, rng)
    flat *= 2  # larger weights: the nonlinearities matter
    penalty = 1e-3 * cell.penalty_mask(dtype)
    for every_step in (True, False):
        if isinstance(cell, FeedbackCell) and not every_step:
            continue
        values, targets, x_start, y_start, weights = packed(rng, dtype, every_step)
        if isinstance(cell, FeedbackCell):
            values = values[:, :n_inputs].copy()
        key = f"{tag}/every{int(every_step)}"
        grad = np.zeros_like(flat)
        ws = cell.workspace(LENGTHS.shape[0], 2, dtype)
        loss = cell.train_minibatch(
            flat, grad, values, targets, x_start, y_start, LENGTHS, weights,
            0.3, every_step, "tanh", "squared_error", ws,
        )  # fmt: skip
        out[f"{key}/minibatch_grad"] = grad
        out[f"{key}/minibatch_loss"] = np.array([loss])
        online = flat.copy()
        opt = AdamOptimizer(cell.n_params, 0.01, dtype=dtype)
        state = cell.new_state(dtype)
        # BPTT without truncation cannot continue a stream.
        stream = getattr(cell, "truncation", 1) is not None
        for reset in (True, False) if stream else (True,):
            rows = cell.train_online(
                online, opt, penalty, 0.5, values, targets, x_start, y_start,
                LENGTHS, weights, every_step, "tanh", "squared_error", state,
                reset,
            )  # fmt: skip
            out[f"{key}/online{int(reset)}_params"] = online.copy()
            out[f"{key}/online{int(reset)}_loss"] = rows.copy()
            for name, value in state.items():
                if isinstance(value, np.ndarray):
                    out[f"{key}/online{int(reset)}_state_{name}"] = value.copy()
        if isinstance(cell, FeedbackCell):
            out[f"{key}/closed_loop"] = cell.closed_loop_outputs(
                online, values, x_start, LENGTHS, "tanh", "squared_error", True
            )
        else:
            out[f"{key}/forward"] = cell.hidden_states(
                online, values, x_start, LENGTHS, "tanh", True
            )


def collect():
    out = {}
    for dtype in (np.float64, np.float32):
        dname = np.dtype(dtype).name
        for name in CELLS:
            for gradient, truncation in METHODS:
                cell = make_cell(
                    name, N_HIDDEN, N_INPUTS, N_OUTPUTS, gradient=gradient,
                    truncation=truncation, random_state=np.random.RandomState(1),
                )  # fmt: skip
                run_cell(
                    cell, dtype, f"{dname}/{name}/{gradient}{truncation}", out, N_INPUTS
                )
            fb = FeedbackCell(
                name, N_HIDDEN, N_INPUTS - 1, N_OUTPUTS, teacher_forcing=False
            )
            run_cell(fb, dtype, f"{dname}/{name}/feedback", out, N_INPUTS - 1)
    return out


def main():
    mode, path = sys.argv[1], sys.argv[2]
    out = collect()
    if mode == "save":
        np.savez(path, **out)
        print(f"saved {len(out)} arrays to {path}")
        return
    ref = np.load(path)
    missing = sorted(set(ref.files) ^ set(out))
    if missing:
        print("arrays in one run only:", missing)
    worst = {}
    reshaped = []
    for key in sorted(set(ref.files) & set(out)):
        a, b = out[key], ref[key]
        if key.endswith("state_ring") and a.shape[1] > b.shape[1]:
            # Records now keep the constant inputs (ones) after [x, h].
            a = np.delete(
                a,
                np.s_[
                    N_INPUTS + N_HIDDEN : N_INPUTS + N_HIDDEN + a.shape[1] - b.shape[1]
                ],
                axis=1,
            )
        if a.shape != b.shape:
            # A changed internal layout (e.g. the BPTT records of a stream).
            reshaped.append(key)
            continue
        scale = np.max(np.abs(b)) if b.size else 0.0
        diff = np.max(np.abs(a - b)) if b.size else 0.0
        rel = diff / scale if scale > 0 else diff
        dname = key.split("/")[0]
        if rel > worst.get(dname, (-1, ""))[0]:
            worst[dname] = (rel, key)
    if reshaped:
        print(f"{len(reshaped)} arrays of another shape, not compared:", reshaped[:3])
    for dname, (rel, key) in worst.items():
        print(
            f"{dname}: {len(ref.files)} arrays, "
            f"max relative difference {rel:.3e} ({key})"
        )


if __name__ == "__main__":
    main()
