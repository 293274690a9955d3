"""Valid prediction horizon of closed-loop Mackey-Glass forecasts, per cell.

Each cell learns the standardised Mackey-Glass series (tau=17) as a
teacher-forced stream on a constant input column (``output_feedback=True``,
20 passes over 3,000 steps), then walks over the next 3,000 steps: at an
origin every 100 steps it forecasts 150 steps ahead in closed loop
(``predict``) and learns from the observed rows up to the next origin
(``partial_fit``). The valid horizon is the number of steps ahead until the
NRMSE over the origins first exceeds 0.1, as in
``examples/plot_closed_loop_forecasting.py``.

Run: ``python benchmarks/bench_closed_loop_horizon.py``
"""

import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skrtrl import RTRLRegressor
from skrtrl.datasets import make_mackey_glass

CONFIGS = [
    # cell, n_hidden, learning_rate_init
    ("elman", 16, 3e-4),
    ("diagonal", 64, 1e-3),
    ("gru", 16, 1e-3),
    ("lstm", 16, 1e-3),
]
HORIZON = 150


def main():
    warnings.simplefilter("ignore", ConvergenceWarning)
    series = make_mackey_glass(6000, tau=17, random_state=0)
    z = (series - series[:3000].mean()) / series[:3000].std()
    ones = np.ones((z.shape[0], 1))
    origins = np.arange(3200, z.shape[0] - HORIZON, 100)
    print(
        f"{'cell':>9} {'n':>3} {'lr':>7} {'fit s':>6} {'NRMSE h=1':>10} "
        f"{'h=10':>7} {'h=100':>7} {'valid horizon':>14}"
    )
    for cell, n_hidden, lr in CONFIGS:
        model = RTRLRegressor(
            n_hidden=n_hidden,
            cell=cell,
            stateful=True,
            output_feedback=True,
            learning_rate_init=lr,
            alpha=0.0,
            max_iter=20,
            tol=0.0,
            n_iter_no_change=20,
            random_state=0,
        )
        start = time.perf_counter()
        model.fit(ones[:3000], z[:3000])
        fit_time = time.perf_counter() - start
        errors, position = [], 3000
        for origin in origins:
            model.partial_fit(ones[position:origin], z[position:origin])
            position = origin
            forecast = model.predict(ones[origin : origin + HORIZON])
            errors.append(forecast - z[origin : origin + HORIZON])
        nrmse = np.sqrt(np.mean(np.square(errors), axis=0)) / z.std()
        above = np.flatnonzero(nrmse > 0.1)
        valid = int(above[0]) if above.size else HORIZON
        print(
            f"{cell:>9} {n_hidden:>3} {lr:>7.0e} {fit_time:>6.1f} "
            f"{nrmse[0]:>10.3f} {nrmse[9]:>7.3f} {nrmse[99]:>7.3f} {valid:>14}"
        )


if __name__ == "__main__":
    main()
