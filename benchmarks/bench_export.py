"""Exported models: file size and onnxruntime's per-step latency.

For each cell at n_hidden=32 (4 input features, 1 output), a stateful
``RTRLRegressor`` is fitted briefly on a stream, then exported with
``skrtrl.export``:

(a) the size in bytes of the serialized ONNX files: the whole-sequence
    graph (``to_onnx``) and the one-step model (``onnx_step_model``), both
    float32, beside the number of parameters (float32 bytes = 4 x that);
(b) the time of one step of the stream: onnxruntime running the one-step
    model on one row with the state passed in and out (one intra-op thread,
    the Python call included), against skrtrl's own one-row
    ``predict(x[None])`` on the stateful estimator (which runs from the
    stream state and leaves it unchanged), and, when torch is installed,
    one step of ``to_torch``'s layer and readout in float32 (one thread;
    "no layer" for the cells that ``to_torch`` refuses, which have no
    ``torch.nn`` layer).
    The items are timed interleaved in rounds, each figure the best round's
    median microseconds per call, so that they share the machine's load.

Run from the repository root::

    PYTHONPATH=. python benchmarks/bench_export.py [--quick] [--json PATH]
"""

import argparse
import json
import os
import platform
import time

import numpy as np
import onnxruntime as ort

from skrtrl import RTRLRegressor
from skrtrl.export import initial_step_state, onnx_step_model, to_onnx

CELLS = ("elman", "diagonal", "gru", "lstm", "lru", "glru")
#: The cells that ``to_torch`` refuses: no torch.nn layer runs their step.
NO_TORCH_LAYER = frozenset({"diagonal", "lru", "glru"})
N_HIDDEN = 32
N_FEATURES = 4


def fitted_stream_model(cell):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, N_FEATURES))
    y = np.convolve(X[:, 0], [0.5, 0.3, 0.2])[: len(X)]
    model = RTRLRegressor(
        n_hidden=N_HIDDEN, cell=cell, stateful=True, max_iter=1, random_state=0
    )
    return model.fit(X, y), X


def session(onx):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        onx.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def step_runners(model, X):
    """name -> function running one step; each keeps its own state."""
    sess = session(onnx_step_model(model))
    names = [o.name for o in sess.get_outputs()]
    state = initial_step_state(model)
    rows32 = X.astype(np.float32)
    counter = {"onnx": 0, "skrtrl": 0, "torch": 0}

    def onnx_step():
        i = counter["onnx"] = (counter["onnx"] + 1) % len(X)
        result = sess.run(None, {"X": rows32[i : i + 1], **state})
        for name, value in zip(names[1:], result[1:]):
            state[name[: -len("_next")]] = value

    def skrtrl_step():
        i = counter["skrtrl"] = (counter["skrtrl"] + 1) % len(X)
        model.predict(X[i : i + 1])

    runners = {"onnxruntime step": onnx_step, "skrtrl predict(1 row)": skrtrl_step}
    torch_step = _torch_runner(model, rows32, counter)
    if torch_step is not None:
        runners["torch step"] = torch_step
    return runners


def _torch_runner(model, rows32, counter):
    if model.cell in NO_TORCH_LAYER:
        return None
    try:
        import torch
    except ImportError:
        return None
    from skrtrl.export import to_torch

    torch.set_num_threads(1)
    recurrent, readout = to_torch(model, dtype=torch.float32)
    rows = torch.from_numpy(rows32)[:, None, None, :]
    state = {"value": None}

    def torch_step():
        i = counter["torch"] = (counter["torch"] + 1) % len(rows32)
        with torch.no_grad():
            h, state["value"] = recurrent(rows[i], state["value"])
            readout(h)

    return torch_step


def time_interleaved(runners, calls, rounds):
    """Best (lowest) round median of microseconds per call, per runner."""
    best = {name: np.inf for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            times = np.empty(calls)
            for k in range(calls):
                start = time.perf_counter()
                run()
                times[k] = time.perf_counter() - start
            best[name] = min(best[name], float(np.median(times)) * 1e6)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    calls, rounds = (300, 3) if args.quick else (2000, 7)
    print(
        f"onnxruntime {ort.__version__}, {platform.processor() or platform.machine()},"
        f" load average {os.getloadavg()[0]:.1f}; n_hidden={N_HIDDEN}, "
        f"{N_FEATURES} features, 1 output; {rounds} rounds of {calls} calls"
    )
    header = (
        f"{'cell':9} {'params':>7} {'seq .onnx B':>12} {'step .onnx B':>13} "
        f"{'ort us/step':>12} {'skrtrl us':>10} {'torch us':>9} {'skrtrl/ort':>11}"
    )
    print(header)
    results = {}
    for cell in CELLS:
        model, X = fitted_stream_model(cell)
        n_params = sum(v.size for v in model.params_.values())
        sizes = {
            "sequence_bytes": len(to_onnx(model).SerializeToString()),
            "step_bytes": len(onnx_step_model(model).SerializeToString()),
        }
        times = time_interleaved(step_runners(model, X), calls, rounds)
        ort_us = times["onnxruntime step"]
        skrtrl_us = times["skrtrl predict(1 row)"]
        if "torch step" in times:
            torch_text = f"{times['torch step']:9.1f}"
        else:
            torch_text = f"{'no layer' if cell in NO_TORCH_LAYER else 'no torch':>9}"
        results[cell] = dict(n_params=int(n_params), **sizes, us_per_call=times)
        print(
            f"{cell:9} {n_params:7d} {sizes['sequence_bytes']:12d} "
            f"{sizes['step_bytes']:13d} {ort_us:12.1f} {skrtrl_us:10.1f} "
            f"{torch_text} {skrtrl_us / ort_us:11.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
