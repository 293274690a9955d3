"""Valid prediction horizon of closed-loop Mackey-Glass forecasts, per cell.

The series is Mackey-Glass (tau=17, sampled every time unit), standardised
with the mean and deviation of its first 3,000 steps, which are the training
stretch. Each cell learns it as a teacher-forced stream on a constant input
column (``output_feedback=True``), with the recipe of
``examples/plot_closed_loop_forecasting.py``:

- every pass over the training stretch sees the series plus fresh Gaussian
  noise (standard deviation ``NOISE``); with teacher forcing the noisy
  previous value is what is fed back, so the network learns to pull
  perturbed states back to the attractor;
- the learning rate is lowered in stages (``SCHEDULE``): a new estimator
  per stage, taking over the weights through ``params_``.

It is then tested on the next 3,000 steps, which it never learned from: at
an origin every 100 steps, ``reset_state`` and ``update_state`` on the 100
observed steps before the origin synchronise the state without learning,
and ``predict`` forecasts ``HORIZON`` steps in closed loop. The valid
horizon is the number of steps ahead until the NRMSE over the origins first
exceeds 0.1 (steps equal time units here, as dt = 1).

A configuration may set its own first learning rate (the later stages keep
``SCHEDULE``'s ratios) and noise, and its ``n_hidden`` may be a tuple, a
stack of layers. Stacks do not take ``output_feedback`` yet, so for them the
script feeds the value back itself: training sees the inputs ``[1, previous
noisy value]``, which is what teacher-forced output feedback computes (the
feedback is then data), and the forecast closes the loop one step at a time
(``predict`` on a row, then ``update_state`` with it).

``--validate`` scores on a second realisation of the series
(``random_state=1``, standardised as the first), at origins over its first
3,000 steps, instead of the test stretch: the element-wise configurations
were chosen with it, never on the test steps.

Run: ``python benchmarks/bench_closed_loop_horizon.py [--quick] [--validate]``
(``--quick`` trains a third as long). A row of ``CONFIGS`` may set its own
passes per stage (the gated LRU's 400; printed after its size, as ``32
x400``). Options for searching configurations: ``--passes P`` sets the
passes per stage of every configuration run (``--quick`` divides it by 3
too), ``--extra-stage`` appends a fifth stage at a tenth of the fourth
stage's rate, ``--alpha A`` sets the L2 penalty (0 by default).
"""

import argparse
import time
import warnings

import numpy as np
from former_defaults import FORMER_REGRESSOR_DEFAULTS
from sklearn.exceptions import ConvergenceWarning

from skrtrl import RTRLRegressor
from skrtrl.datasets import make_mackey_glass

CONFIGS = [
    # cell, n_hidden, first learning rate, noise[, passes per stage if not
    # SCHEDULE's]
    ("elman", 16, 1e-3, 0.1),
    ("diagonal", 64, 1e-3, 0.1),
    ("gru", 16, 1e-3, 0.1),
    ("lstm", 16, 1e-3, 0.1),
    # The element-wise cells: one layer (16 to 256 units, first rate 1e-3 to
    # 1e-2, noise 0.03 or 0.1) kept at most 3 steps on --validate --quick;
    # two layers of 64 reached 27 (egru) and 5 (elstm, at 3e-3; 1 at 1e-3).
    ("egru", (64, 64), 1e-3, 0.1),
    ("elstm", (64, 64), 3e-3, 0.1),
    # The gated LRU, one layer: 108 steps on --validate --quick at 32 units
    # (48 at 16, 50 at 64, 25 at 128) with seed 0; over seeds 0 to 2, a
    # first rate of 3e-4 had the best mean (62.7 steps; 55.3 at 1e-3, 39.0
    # and 38.3 with noise 0.03 and 0.2). Two layers of 32: 6 steps. Then
    # over seeds 0 to 4 at full length on --validate (benchmarks/README.md):
    # 58.8 steps with 100 passes per stage and noise 0.1; other sizes,
    # rates and noises hardly moved it (48, 64 units; 1e-4; noise 0.05,
    # 0.15: 44.8-61.0), training longer did: the best mean, 143.2, with 400
    # passes per stage and noise 0.05 (131.6 at noise 0.1; 136.2 and 112.8
    # with 300 passes). The fifth entry is the passes per stage.
    ("glru", 32, 3e-4, 0.05, 400),
]
# (learning rate, passes over the training stretch) per stage
SCHEDULE = [(1e-3, 100), (3e-4, 100), (1e-4, 100), (3e-5, 100)]
NOISE = 0.1
N_TRAIN = 3000
WARM_UP = 100
HORIZON = 200


def _stacked(n_hidden):
    return isinstance(n_hidden, tuple) and len(n_hidden) > 1


def _inputs(values):
    """The rows ``[1, previous value]`` of the fed-back-by-hand stacks; the
    first previous value is 0, as output feedback's ``f_0``."""
    previous = np.concatenate([[0.0], values[:-1]])
    return np.column_stack([np.ones_like(values), previous])


def train(cell, n_hidden, z, schedule, noise=NOISE, seed=0, alpha=0.0):
    """Teacher-forced stream training on the noisy series, lr in stages."""
    rng = np.random.RandomState(seed)
    stacked = _stacked(n_hidden)
    ones = np.ones((N_TRAIN, 1))
    weights = None
    for lr, passes in schedule:
        model = RTRLRegressor(
            n_hidden=n_hidden,
            cell=cell,
            stateful=True,
            output_feedback=not stacked,
            learning_rate_init=lr,
            alpha=alpha,
            # The clipping of the regressor's defaults before 4 Dec 2026,
            # with which every horizon here was measured.
            clip_norm=FORMER_REGRESSOR_DEFAULTS["clip_norm"],
            random_state=seed,
        )
        first = _inputs(z[:1]) if stacked else ones[:1]
        model.partial_fit(first, z[:1])  # initialise, then take over
        if weights is not None:
            for name, value in weights.items():
                model.params_[name] = value
        for _ in range(passes):
            model.reset_state()
            noisy = z[:N_TRAIN] + noise * rng.standard_normal(N_TRAIN)
            model.partial_fit(_inputs(noisy) if stacked else ones, noisy)
        weights = {name: value.copy() for name, value in model.params_.items()}
    return model


def _closed_loop(model, last, n_steps):
    """Forecast of a fed-back-by-hand stack: each output is the next row's
    previous value, and ``update_state`` moves the state over that row."""
    forecast = np.empty(n_steps)
    for t in range(n_steps):
        row = np.array([[1.0, last]])
        last = forecast[t] = model.predict(row)[0]
        model.update_state(row)
    return forecast


def forecast_nrmse(model, z, origins, scale):
    """NRMSE over the origins at each step ahead of the closed loop."""
    stacked = not model.output_feedback
    ones = np.ones((max(WARM_UP, HORIZON), 1))
    errors = []
    for origin in origins:
        observed = z[origin - WARM_UP : origin]
        model.reset_state()
        if stacked:
            model.update_state(_inputs(observed))
            forecast = _closed_loop(model, observed[-1], HORIZON)
        else:
            model.update_state(ones[:WARM_UP], observed)
            forecast = model.predict(ones[:HORIZON])
        errors.append(forecast - z[origin : origin + HORIZON])
    return np.sqrt(np.mean(np.square(errors), axis=0)) / scale


def valid_horizon(nrmse, threshold=0.1):
    above = np.flatnonzero(nrmse > threshold)
    return int(above[0]) if above.size else nrmse.shape[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="noise and weights")
    parser.add_argument(
        "--cells", nargs="+", help="run only these cells' configurations"
    )
    parser.add_argument(
        "--validate",
        action="store_true",
        help="score on a second realisation of the series, not the test stretch",
    )
    parser.add_argument(
        "--config",
        nargs=4,
        action="append",
        metavar=("CELL", "N_HIDDEN", "LR", "NOISE"),
        help="run this configuration instead of CONFIGS (N_HIDDEN as 64 or "
        "64,64); may be repeated",
    )
    parser.add_argument(
        "--passes",
        type=int,
        help="passes over the training stretch per stage (default: SCHEDULE's "
        "100; --quick divides it by 3)",
    )
    parser.add_argument(
        "--extra-stage",
        action="store_true",
        help="a fifth stage at a tenth of the fourth stage's rate",
    )
    parser.add_argument(
        "--alpha", type=float, default=0.0, help="L2 penalty (default 0)"
    )
    args = parser.parse_args()
    if args.passes is not None and args.passes < 1:
        parser.error("--passes must be at least 1")
    configs = CONFIGS
    if args.config:
        configs = [
            (cell, tuple(int(k) for k in n.split(",")), float(lr), float(noise))
            for cell, n, lr, noise in args.config
        ]
    warnings.simplefilter("ignore", ConvergenceWarning)
    series = make_mackey_glass(2 * N_TRAIN, tau=17, random_state=0)
    mean, std = series[:N_TRAIN].mean(), series[:N_TRAIN].std()
    z = (series - mean) / std
    scale = z.std()
    if args.validate:
        other = make_mackey_glass(2 * N_TRAIN, tau=17, random_state=1)
        scored = (other - mean) / std
        origins = np.arange(WARM_UP, N_TRAIN - HORIZON + 1, 100)
        where = "validation (realisation 1)"
    else:
        scored = z
        origins = np.arange(N_TRAIN + WARM_UP, z.shape[0] - HORIZON + 1, 100)
        where = "held-out"
    print(
        f"SCHEDULE (lr, passes) {SCHEDULE}{', a third' if args.quick else ''}"
        f"{f', {args.passes} passes per stage' if args.passes is not None else ''}"
        f"{', a fifth stage' if args.extra_stage else ''}"
        f"{f', alpha {args.alpha}' if args.alpha else ''}, "
        f"{origins.size} {where} origins, {HORIZON} steps ahead"
    )
    print(
        f"{'cell':>9} {'n':>7} {'lr':>6} {'noise':>5} {'fit s':>6} "
        f"{'NRMSE h=1':>10} {'h=10':>7} {'h=50':>7} {'h=100':>7} {'h=200':>7} "
        f"{'valid horizon':>14}"
    )
    for cell, n_hidden, lr, noise, *own_passes in configs:
        if args.cells and cell not in args.cells:
            continue
        stages = SCHEDULE
        if args.extra_stage:
            stages = SCHEDULE + [(SCHEDULE[-1][0] / 10, SCHEDULE[-1][1])]
        schedule = []
        for rate, passes in stages:
            if args.passes is not None:
                passes = args.passes
            elif own_passes:
                passes = own_passes[0]
            schedule.append(
                (lr * rate / SCHEDULE[0][0], passes // 3 if args.quick else passes)
            )
        start = time.perf_counter()
        model = train(
            cell, n_hidden, z, schedule, noise=noise, seed=args.seed, alpha=args.alpha
        )
        fit_time = time.perf_counter() - start
        nrmse = forecast_nrmse(model, scored, origins, scale)
        size = ",".join(map(str, np.atleast_1d(n_hidden)))
        if own_passes and args.passes is None:
            size += f" x{schedule[0][1]}"
        print(
            f"{cell:>9} {size:>7} {lr:>6.0e} {noise:>5} {fit_time:>6.1f} "
            f"{nrmse[0]:>10.3f} "
            f"{nrmse[9]:>7.3f} {nrmse[49]:>7.3f} {nrmse[99]:>7.3f} "
            f"{nrmse[-1]:>7.3f} {valid_horizon(nrmse):>14}",
            flush=True,
        )


if __name__ == "__main__":
    main()
