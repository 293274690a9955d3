"""Validation scores of regressor candidates and of the reference GRU.

The generated regression tasks and the Mackey-Glass windows of
``choose_defaults.py --generated`` (``VALIDATION_SIZES``: the training
draw, scored on a third draw, seed 2, or on windows of the training
stretch alone), fitted by ``bench_defaults.fit_skrtrl`` (candidates) or
``bench_defaults.fit_torch_gru`` at ``TORCH_SETTINGS`` (the reference
GRU of issue 14). Test draws are never read. One line per fit: score,
wall-clock fit seconds, epochs, load average; ``--log`` appends the lines
as a markdown table to a file.

Run from the repository root, with the extension built in place::

    PYTHONPATH=. python benchmarks/reg_validation.py --gru --seeds 0
    PYTHONPATH=. python benchmarks/reg_validation.py --candidates glru-128-last-0.01
    PYTHONPATH=. python benchmarks/reg_validation.py \
        --params '{"cell": "glru", "n_hidden": 128, "n_iter_no_change": 20}'
"""

import argparse
import json
import os
import sys
import warnings

import bench_defaults
import choose_defaults


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gru", action="store_true", help="fit the reference GRU")
    parser.add_argument("--candidates", nargs="*", default=[])
    parser.add_argument(
        "--params",
        action="append",
        default=[],
        help="a JSON dict of estimator parameters (on top of the defaults)",
    )
    parser.add_argument(
        "--tasks", nargs="+", default=["reber", "adding", "mackey_glass"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--log", help="append markdown rows to this file")
    args = parser.parse_args(argv)

    runs = []
    if args.gru:
        runs.append(("torch-gru-32", None))
    for name in args.candidates:
        if name in choose_defaults.GENERATED_CANDIDATES:
            runs.append((name, choose_defaults.GENERATED_CANDIDATES[name]))
        else:
            runs.append((name, choose_defaults._parse_candidate(name)))
    for text in args.params:
        runs.append((text, json.loads(text)))

    tasks = {
        s: bench_defaults.load_task(s, choose_defaults.VALIDATION_SIZES[s])
        for s in args.tasks
    }
    command = "PYTHONPATH=. python benchmarks/reg_validation.py " + " ".join(
        f"'{a}'" if " " in a else a for a in (argv or sys.argv[1:])
    )
    lines = []
    for name, params in runs:
        for seed in args.seeds:
            for key, task in tasks.items():
                load = os.getloadavg()[0]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if params is None:
                        fit = bench_defaults.fit_torch_gru(
                            task, seed, **bench_defaults.TORCH_SETTINGS
                        )
                    else:
                        fit = bench_defaults.fit_skrtrl(task, seed, params)
                line = (
                    f"| {name} | {seed} | {key} | {fit['score']:.4f} | "
                    f"{fit['fit_seconds']:.1f} | {fit['epochs']} | {load:.2f} |"
                )
                print(line, flush=True)
                lines.append(line)
                if args.log:
                    with open(args.log, "a") as f:
                        if len(lines) == 1:
                            f.write(f"\n`{command}`\n\n")
                            f.write(
                                "| candidate | seed | task | score | fit s | "
                                "epochs | load |\n|---|---|---|---|---|---|---|\n"
                            )
                        f.write(line + "\n")


if __name__ == "__main__":
    main()
