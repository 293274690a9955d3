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

Run: ``python benchmarks/bench_closed_loop_horizon.py [--quick]``
(``--quick`` trains a third as long).
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skrtrl import RTRLRegressor
from skrtrl.datasets import make_mackey_glass

CONFIGS = [
    # cell, n_hidden
    ("elman", 16),
    ("diagonal", 64),
    ("gru", 16),
    ("lstm", 16),
    # Element-wise cells, not tuned: 64 units hold about as many parameters
    # as the GRU of 16 (12 n against 3 n (n + 3) for one input).
    ("egru", 64),
    ("elstm", 64),
]
# (learning rate, passes over the training stretch) per stage
SCHEDULE = [(1e-3, 100), (3e-4, 100), (1e-4, 100), (3e-5, 100)]
NOISE = 0.1
N_TRAIN = 3000
WARM_UP = 100
HORIZON = 200


def train(cell, n_hidden, z, schedule, seed=0):
    """Teacher-forced stream training on the noisy series, lr in stages."""
    rng = np.random.RandomState(seed)
    ones = np.ones((N_TRAIN, 1))
    weights = None
    for lr, passes in schedule:
        model = RTRLRegressor(
            n_hidden=n_hidden,
            cell=cell,
            stateful=True,
            output_feedback=True,
            learning_rate_init=lr,
            alpha=0.0,
            random_state=seed,
        )
        model.partial_fit(ones[:1], z[:1])  # initialise, then take over
        if weights is not None:
            for name, value in weights.items():
                model.params_[name] = value
        for _ in range(passes):
            model.reset_state()
            noisy = z[:N_TRAIN] + NOISE * rng.standard_normal(N_TRAIN)
            model.partial_fit(ones, noisy)
        weights = {name: value.copy() for name, value in model.params_.items()}
    return model


def forecast_nrmse(model, z, origins):
    """NRMSE over the origins at each step ahead of the closed loop."""
    ones = np.ones((max(WARM_UP, HORIZON), 1))
    errors = []
    for origin in origins:
        model.reset_state()
        model.update_state(ones[:WARM_UP], z[origin - WARM_UP : origin])
        forecast = model.predict(ones[:HORIZON])
        errors.append(forecast - z[origin : origin + HORIZON])
    return np.sqrt(np.mean(np.square(errors), axis=0)) / z.std()


def valid_horizon(nrmse, threshold=0.1):
    above = np.flatnonzero(nrmse > threshold)
    return int(above[0]) if above.size else nrmse.shape[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0, help="noise and weights")
    parser.add_argument("--cells", nargs="+", default=[c for c, _ in CONFIGS])
    args = parser.parse_args()
    schedule = SCHEDULE
    if args.quick:
        schedule = [(lr, passes // 3) for lr, passes in SCHEDULE]
    warnings.simplefilter("ignore", ConvergenceWarning)
    series = make_mackey_glass(2 * N_TRAIN, tau=17, random_state=0)
    z = (series - series[:N_TRAIN].mean()) / series[:N_TRAIN].std()
    origins = np.arange(N_TRAIN + WARM_UP, z.shape[0] - HORIZON + 1, 100)
    print(
        f"schedule (lr, passes) {schedule}, noise {NOISE}, "
        f"{origins.size} held-out origins, {HORIZON} steps ahead"
    )
    print(
        f"{'cell':>9} {'n':>3} {'fit s':>6} {'NRMSE h=1':>10} {'h=10':>7} "
        f"{'h=50':>7} {'h=100':>7} {'h=200':>7} {'valid horizon':>14}"
    )
    for cell, n_hidden in CONFIGS:
        if cell not in args.cells:
            continue
        start = time.perf_counter()
        model = train(cell, n_hidden, z, schedule, seed=args.seed)
        fit_time = time.perf_counter() - start
        nrmse = forecast_nrmse(model, z, origins)
        print(
            f"{cell:>9} {n_hidden:>3} {fit_time:>6.1f} {nrmse[0]:>10.3f} "
            f"{nrmse[9]:>7.3f} {nrmse[49]:>7.3f} {nrmse[99]:>7.3f} "
            f"{nrmse[-1]:>7.3f} {valid_horizon(nrmse):>14}",
            flush=True,
        )


if __name__ == "__main__":
    main()
