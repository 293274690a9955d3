"""Validation score after every epoch of ``partial_fit`` (one pass per call).

Ad hoc: how many epochs a regressor candidate needs on the validation
draws of ``choose_defaults.VALIDATION_SIZES`` (test draws never read).
Prints the score every ``--every`` epochs, the training loss and the
cumulative fit seconds.

    PYTHONPATH=. python benchmarks/reg_curves.py mackey_glass \
        '{"cell": "glru", "n_hidden": 128, "learning_rate_init": 0.003}'
"""

import argparse
import json
import time
import warnings

import bench_defaults
import choose_defaults


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("task")
    parser.add_argument("params", nargs="+")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    task = bench_defaults.load_task(
        args.task, choose_defaults.VALIDATION_SIZES[args.task]
    )
    for text in args.params:
        est = bench_defaults.make_skrtrl(task, args.seed, json.loads(text))
        seconds, row = 0.0, []
        for epoch in range(1, args.epochs + 1):
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est.partial_fit(task.X_train, task.y_train)
            seconds += time.perf_counter() - start
            if epoch % args.every == 0:
                s = bench_defaults.score(task, est.predict(task.X_test))
                row.append(f"{epoch}:{s:.4f}/{est.loss_curve_[-1]:.2e}/{seconds:.0f}s")
        print(f"{args.task} seed {args.seed} {text}", flush=True)
        print("  " + "  ".join(row), flush=True)


if __name__ == "__main__":
    main()
