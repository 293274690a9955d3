"""
============================================
Closed-loop forecasting with output feedback
============================================

With ``output_feedback=True`` the network's previous output is an input of
its recurrent layer, and ``predict`` runs the *closed loop*: every step's
output is fed into the next step. A model that has only ever seen a constant
input column then generates the series by itself, and in stream mode
``predict`` over k future rows is a k-step forecast from the current state.

The series is Mackey-Glass (``tau=17``). The model learns it as a stream with
teacher forcing (the observed previous value is fed back during training),
then, at origins spread over a held-out stretch, forecasts 150 steps ahead
in closed loop and keeps learning from the observed values between origins.
The same run trains a second model with ``teacher_forcing=False``, which
feeds back its own outputs during training as well.

The figures printed by this script are the measured ones, and they are not
good: teacher forcing fits the one-step map very closely, but its closed loop
leaves the series within a few steps, the *exposure bias* of teacher-forced
training (the model never learned to correct its own errors). The
free-running model never sees the observed values at all (they only enter
the loss), so in an autonomous stream it cannot follow the series either.
Better closed-loop forecasting of this chaotic series (noise on the fed-back
values, curricula mixing the two, longer training) is left open.
"""

# %%
# The stream and the idiom for an autonomous series
# --------------------------------------------------
# The series has no inputs of its own: ``X`` is a constant column of ones, and
# the target of row t is the value at step t. With output feedback, row t
# sees the value at step t - 1 through ``params_["weight_fb"]``.
import time

import matplotlib.pyplot as plt
import numpy as np

from skrtrl import RTRLRegressor
from skrtrl.datasets import make_mackey_glass

series = make_mackey_glass(6000, tau=17, random_state=0)
train = slice(0, 3000)
z = (series - series[train].mean()) / series[train].std()
ones = np.ones((z.shape[0], 1))
horizon = 150
origins = np.arange(3200, z.shape[0] - horizon, 100)


def walk_forward(model):
    """Forecast ``horizon`` steps from every origin, learning in between.

    ``partial_fit`` on the observed rows up to an origin moves the stream
    there (learning at every step); ``predict`` then runs the closed loop
    from that state without changing it.
    """
    errors, forecasts, position = [], [], train.stop
    for origin in origins:
        model.partial_fit(ones[position:origin], z[position:origin])
        position = origin
        forecast = model.predict(ones[origin : origin + horizon])
        forecasts.append(forecast)
        errors.append(forecast - z[origin : origin + horizon])
    nrmse = np.sqrt(np.mean(np.square(errors), axis=0)) / z.std()
    return nrmse, forecasts


def valid_horizon(nrmse, threshold=0.1):
    """Steps ahead until the NRMSE first exceeds ``threshold``."""
    above = np.flatnonzero(nrmse > threshold)
    return int(above[0]) if above.size else nrmse.shape[0]


# %%
# Teacher-forced and free-running training
# ----------------------------------------
# ``fit`` in stream mode makes ``max_iter`` passes over the training stream,
# updating the weights after every step.
results = {}
for teacher_forcing in (True, False):
    model = RTRLRegressor(
        n_hidden=16,
        stateful=True,
        output_feedback=True,
        teacher_forcing=teacher_forcing,
        learning_rate_init=3e-4,
        alpha=0.0,
        max_iter=20,
        tol=0.0,
        n_iter_no_change=20,
        random_state=0,
    )
    start = time.perf_counter()
    model.fit(ones[train], z[train])
    nrmse, forecasts = walk_forward(model)
    results[teacher_forcing] = nrmse, forecasts
    print(
        f"teacher_forcing={teacher_forcing!s:5}: final training loss "
        f"{model.loss_:.2e}, NRMSE 1 / 10 / 100 steps ahead "
        f"{nrmse[0]:.3f} / {nrmse[9]:.3f} / {nrmse[99]:.3f}, valid horizon "
        f"(NRMSE <= 0.1) {valid_horizon(nrmse)} steps, "
        f"{time.perf_counter() - start:.1f} s"
    )

# %%
# Forecast against truth, and error growth with the horizon
# ---------------------------------------------------------
fig, (ax_series, ax_error) = plt.subplots(2, 1, figsize=(8, 7))
origin = origins[3]
steps = np.arange(origin - 100, origin + horizon)
ax_series.plot(steps, z[steps], color="black", label="Mackey-Glass")
for teacher_forcing, style in ((True, "-"), (False, "--")):
    forecast = results[teacher_forcing][1][3]
    ax_series.plot(
        np.arange(origin, origin + horizon),
        np.clip(forecast, -4, 4),
        style,
        label=f"closed loop, teacher_forcing={teacher_forcing}",
    )
ax_series.axvline(origin, color="grey", lw=0.8)
ax_series.set_xlabel("step")
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
ax_error.set_ylabel("NRMSE over origins")
ax_error.legend(fontsize="small")
fig.tight_layout()
plt.show()
