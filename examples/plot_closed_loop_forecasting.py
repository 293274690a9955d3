"""
============================================
Closed-loop forecasting with output feedback
============================================

With ``output_feedback=True`` the network's previous output is an input of
its recurrent layer, and ``predict`` runs the *closed loop*: every step's
output is fed into the next step. A model that has only ever seen a constant
input column then generates the series by itself, and in stream mode
``predict`` over k future rows is a k-step forecast from the current state.

The series is Mackey-Glass (``tau=17``, one sample per time unit). A GRU
learns it as a teacher-forced stream (the observed previous value is fed
back during training), then forecasts 200 steps ahead in closed loop from
origins spread over a held-out stretch it never learned from. The same run
trains a second model with ``teacher_forcing=False``, which feeds back its
own outputs during training as well.

Teacher forcing alone fits the one-step map closely, but its closed loop
leaves the series within a few steps: the network never saw its own errors
fed back, and small ones grow (the *exposure bias* of teacher-forced
training). Two things make the closed loop follow the series here:

* **noise on the fed-back values**: every pass over the training stretch
  sees the series plus fresh Gaussian noise (a tenth of its standard
  deviation). With teacher forcing the noisy previous value is what is fed
  back, so the network learns to pull perturbed states back towards the
  attractor;
* **a decreasing learning rate**: updates after every step with a constant
  rate leave the weights jittering; the rate is lowered in stages, each
  stage a new estimator that takes over the weights through ``params_``.

Before each forecast, :meth:`~skrtrl.RTRLRegressor.update_state` runs the
stream over the 100 observed steps before the origin without learning: the
state must be synchronised with the series before the loop is closed.
"""

# %%
# The data and the idiom for an autonomous series
# ------------------------------------------------
# The series has no inputs of its own: ``X`` is a constant column of ones, and
# the target of row t is the value at step t. With output feedback, row t
# sees the value at step t - 1 through ``params_["weight_fb"]``.
import time

import matplotlib.pyplot as plt
import numpy as np

from skrtrl import RTRLRegressor
from skrtrl.datasets import make_mackey_glass

n_train, warm_up, horizon = 3000, 100, 200
series = make_mackey_glass(2 * n_train, tau=17, random_state=0)
z = (series - series[:n_train].mean()) / series[:n_train].std()
ones = np.ones((n_train, 1))
origins = np.arange(n_train + warm_up, z.shape[0] - horizon + 1, 100)


SCHEDULE = [(1e-3, 100), (3e-4, 100), (1e-4, 100), (3e-5, 100)]  # (rate, passes)


def train(teacher_forcing, schedule=SCHEDULE):
    """Stream training on the noisy series, the learning rate in stages."""
    rng = np.random.RandomState(0)
    weights = None
    for learning_rate, passes in schedule:
        model = RTRLRegressor(
            n_hidden=16,
            cell="gru",
            stateful=True,
            output_feedback=True,
            teacher_forcing=teacher_forcing,
            learning_rate_init=learning_rate,
            alpha=0.0,
            clip_norm=5.0,
            random_state=0,
        )
        model.partial_fit(ones[:1], z[:1])  # initialise, then take over
        if weights is not None:
            for name, value in weights.items():
                model.params_[name] = value
        for _ in range(passes):
            model.reset_state()  # each pass starts the stream over
            noisy = z[:n_train] + 0.1 * rng.standard_normal(n_train)
            model.partial_fit(ones, noisy)
        weights = {name: value.copy() for name, value in model.params_.items()}
    return model


def walk_forward(model):
    """Forecast ``horizon`` steps from every held-out origin.

    ``update_state`` on the observed steps before an origin synchronises
    the state (feeding back the observed values) without learning;
    ``predict`` then runs the closed loop from there.
    """
    # The free-running model fed back its own outputs while training; to
    # synchronise it on observed values, feed those back now.
    model.set_params(teacher_forcing=True)
    forecasts = []
    for origin in origins:
        model.reset_state()
        model.update_state(ones[:warm_up], z[origin - warm_up : origin])
        forecasts.append(model.predict(ones[:horizon]))
    errors = np.array(forecasts) - [z[o : o + horizon] for o in origins]
    return np.sqrt(np.mean(np.square(errors), axis=0)) / z.std(), forecasts


def valid_horizon(nrmse, threshold=0.1):
    """Steps ahead until the NRMSE first exceeds ``threshold``."""
    above = np.flatnonzero(nrmse > threshold)
    return int(above[0]) if above.size else nrmse.shape[0]


# %%
# Teacher-forced and free-running training
# ----------------------------------------
results = {}
for teacher_forcing in (True, False):
    start = time.perf_counter()
    model = train(teacher_forcing)
    nrmse, forecasts = walk_forward(model)
    results[teacher_forcing] = nrmse, forecasts
    print(
        f"teacher_forcing={teacher_forcing!s:5}: NRMSE 1 / 10 / 50 / 100 "
        f"steps ahead {nrmse[0]:.3f} / {nrmse[9]:.3f} / {nrmse[49]:.3f} / "
        f"{nrmse[99]:.3f}, valid horizon (NRMSE <= 0.1) "
        f"{valid_horizon(nrmse)} steps, {time.perf_counter() - start:.0f} s"
    )

# %%
# Forecast against truth, and error growth with the horizon
# ---------------------------------------------------------
fig, (ax_series, ax_error) = plt.subplots(2, 1, figsize=(8, 7))
k = 3
origin = origins[k]
steps = np.arange(origin - warm_up, origin + horizon)
ax_series.plot(steps, z[steps], color="black", label="Mackey-Glass")
for teacher_forcing, style in ((True, "-"), (False, "--")):
    ax_series.plot(
        np.arange(origin, origin + horizon),
        np.clip(results[teacher_forcing][1][k], -4, 4),
        style,
        label=f"closed loop, teacher_forcing={teacher_forcing}",
    )
ax_series.axvline(origin, color="grey", lw=0.8)
ax_series.set_xlabel("step (time unit)")
ax_series.set_ylabel("standardised value")
ax_series.legend(loc="lower left", fontsize="small")
for teacher_forcing, style in ((True, "-"), (False, "--")):
    ax_error.plot(
        np.arange(1, horizon + 1),
        results[teacher_forcing][0],
        style,
        label=f"teacher_forcing={teacher_forcing}",
    )
ax_error.axhline(0.1, color="grey", lw=0.8, label="NRMSE 0.1")
ax_error.set_yscale("log")
ax_error.set_xlabel("steps ahead")
ax_error.set_ylabel(f"NRMSE over {origins.size} origins")
ax_error.legend(fontsize="small")
fig.tight_layout()
# sphinx_gallery_start_ignore
# Run as a script, the example saves its figures in the working directory; the
# gallery collects them by itself (and defines no __file__).
if "__file__" in globals():
    from pathlib import Path

    for number in plt.get_fignums():
        path = Path(f"{Path(__file__).stem}_{number}.png").resolve()
        plt.figure(number).savefig(path, dpi=100)
        print(f"Saved figure {number} to {path}")
# sphinx_gallery_end_ignore
plt.show()

# %%
# What the figures say
# --------------------
# Measured on this machine (seed 0): with teacher forcing, noise and the
# staged learning rate, the GRU's closed loop stays within an NRMSE of 0.1
# for 99 steps (99 time units; 0.05 one step ahead, 0.10 at 100 steps). The
# earlier recipe of this example (a constant learning rate, no noise, 20
# passes) left the series within 2 steps with every cell. The result
# depends on the run: with another seed for the noise and the weights
# (``benchmarks/bench_closed_loop_horizon.py --seed 1``) the GRU reaches 32
# steps and the LSTM 101; with seed 0 the LSTM reaches 157 steps.
#
# The free-running model (``teacher_forcing=False``) does not learn the
# series from a stream: its own fed-back outputs drift away from the data
# within a pass, so it is not trained to follow the series from a
# synchronised state, and its forecast fails from the first step (valid
# horizon 0). Free-running training would need the state synchronised on
# observed values before each stretch of free running; switching
# ``teacher_forcing`` resets the stream state, so the public API cannot do
# that yet.
