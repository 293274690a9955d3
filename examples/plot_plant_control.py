"""
=====================================================================
Identifying and controlling a nonlinear plant online
=====================================================================

Real-time recurrent learning was made for systems that run while they are
learnt. Here a stateful :class:`~skrtrl.RTRLRegressor` learns a nonlinear
dynamical plant from a stream of its inputs and outputs, one step at a
time, and is then used to control it.

The plant is the fourth example of Narendra & Parthasarathy (1990),
:func:`~skrtrl.datasets.make_narendra_plant`:

.. math::

    y(k + 1) = \\frac{y(k)\\, y(k - 1)\\, y(k - 2)\\, u(k - 1)\\,
    (y(k - 2) - 1) + u(k)}{1 + y(k - 1)^2 + y(k - 2)^2}.

1. **Identification.** The network reads the plant's input :math:`u(k)`
   and, through output feedback with teacher forcing, the measured output
   :math:`y(k)`, and learns to predict :math:`y(k + 1)` (Narendra &
   Parthasarathy's series-parallel model), updating its weights after every
   step. It is scored in *free run* on fresh input sequences: started at
   rest with the plant, it sees the inputs only and feeds back its own
   predictions (``predict`` runs this closed loop), so its errors compound
   as a simulator's would. The baselines are a linear ARX model fitted by
   least squares on the same stream, and persistence.
2. **Control.** The learned model drives the plant to follow a reference:
   at every step a one-step model-predictive controller tries a grid of
   candidate inputs through ``predict`` and applies the one whose predicted
   output is closest to the next reference value. The same controller with
   the ARX model (whose one-step prediction is linear in :math:`u(k)`, so
   it is inverted exactly) is the linear baseline.
"""

# %%
# The identification stream
# -------------------------
# 200,000 steps of the plant driven by independent inputs drawn uniformly
# from ``[-1, 1]``, the identification signal of the paper. Row ``k`` of
# ``X`` is :math:`u(k)`, ``y[k]`` is :math:`y(k + 1)`.
import copy
import time

import matplotlib.pyplot as plt
import numpy as np

from skrtrl import RTRLRegressor
from skrtrl.datasets import make_narendra_plant

n_stream = 200_000
X, y = make_narendra_plant(n_stream, u="random", random_state=0)

# %%
# The network
# -----------
# A full GRU of 16 units with output feedback and teacher forcing: the
# previous measured output is an input of the recurrent layer, and the
# weights change after every step (``update="step"``) by exact RTRL. The
# settings were chosen on other realisations of the plant (a stream of
# 100,000 steps with seed 1; the mean free-run NRMSE on two fresh sequences
# of 1,000 steps, seeds 11 and 12), never on the data shown here: the
# element-wise GRU (``cell="egru"``, 64 to 256 units) did no better than
# the ARX model (0.17 to 0.21 against 0.20); the Elman cell, the LSTM and
# the GRU of 16 units reached 0.09 (the GRU of 24 units as well), and the
# GRU 0.056 without the L2 penalty (``alpha=0``; the learning rate 1e-3
# beat 3e-4 and 3e-3); 200,000 steps instead of 100,000 brought it to 0.038.
model = RTRLRegressor(
    cell="gru",
    gradient="rtrl",
    n_hidden=16,
    output_feedback=True,
    teacher_forcing=True,
    solver="adam",
    learning_rate_init=1e-3,
    alpha=0.0,
    clip_norm=5.0,
    stateful=True,
    update="step",
    random_state=0,
)

# %%
# Learning in real time
# ---------------------
# The stream is read in blocks of 1,000 steps with
# :meth:`~skrtrl.RTRLRegressor.predict_partial_fit`: each output is
# predicted one step ahead before the network learns from it, so the
# prequential error shows the learning as it happens.
one_step = np.empty(n_stream)
start = time.process_time()
for begin in range(0, n_stream, 1000):
    rows = slice(begin, begin + 1000)
    one_step[rows] = model.predict_partial_fit(X[rows], y[rows])
print(
    f"learning: {(time.process_time() - start) / n_stream * 1e6:.0f} us "
    "of CPU time per step"
)


# %%
# The linear ARX model
# --------------------
# :math:`\hat y(k + 1) = a_1 y(k) + a_2 y(k - 1) + a_3 y(k - 2) + b_0 u(k)
# + b_1 u(k - 1) + c`, the plant's own orders, fitted by least squares on
# the whole stream (it sees the same data, all at once).
def arx_regressors(u, y_measured):
    """Rows [y(k), y(k-1), y(k-2), u(k), u(k-1), 1] for k = 0..len(u)-1."""
    past_y = np.concatenate([np.zeros(3), y_measured])
    past_u = np.concatenate([[0.0], u])
    n = len(u)
    return np.column_stack(
        [past_y[2 : 2 + n], past_y[1 : 1 + n], past_y[:n], u, past_u[:n], np.ones(n)]
    )


arx = np.linalg.lstsq(arx_regressors(X[:, 0], y), y, rcond=None)[0]
print("ARX coefficients a1, a2, a3, b0, b1, c:", np.round(arx, 3))


def arx_free_run(u):
    """The ARX model simulated from rest, feeding back its own outputs."""
    out = np.zeros(len(u) + 3)  # three zeros of rest, then y(1), y(2), ...
    for k in range(len(u)):
        u_prev = u[k - 1] if k else 0.0
        out[k + 3] = arx @ [out[k + 2], out[k + 1], out[k], u[k], u_prev, 1.0]
    return out[3:]


# %%
# Free-run identification error
# -----------------------------
# Five fresh random input sequences of 1,000 steps, and the paper's test
# signal (a sum of two sinusoids, 800 steps). Every model starts at rest,
# as the plant does, and sees the inputs only. The error is the root mean
# squared error divided by the standard deviation of the plant's output
# (NRMSE; 1 is no better than predicting the mean). Persistence,
# :math:`\hat y(k + 1) = y(k)`, is given the *measured* output at every
# step, an advantage the two simulators do not have.
def nrmse(prediction, target):
    return np.sqrt(np.mean((prediction - target) ** 2)) / target.std()


tests = [make_narendra_plant(1000, random_state=seed) for seed in range(100, 105)]
tests.append(make_narendra_plant(800, u="sinusoid"))
scores = {"RTRL (GRU, 16 units)": [], "ARX": [], "persistence": []}
for X_test, y_test in tests:
    simulator = copy.deepcopy(model).reset_state()
    scores["RTRL (GRU, 16 units)"].append(nrmse(simulator.predict(X_test), y_test))
    scores["ARX"].append(nrmse(arx_free_run(X_test[:, 0]), y_test))
    scores["persistence"].append(nrmse(np.r_[0.0, y_test[:-1]], y_test))
for name, values in scores.items():
    print(
        f"{name:22s} NRMSE: random inputs {np.mean(values[:5]):.3f}, "
        f"test signal {values[5]:.3f}"
    )

fig, axes = plt.subplots(2, 1, figsize=(8, 6))
window = 1000
running = np.sqrt(np.convolve((one_step - y) ** 2, np.ones(window) / window, "valid"))
axes[0].plot(np.arange(window - 1, n_stream), running / y.std())
axes[0].set(
    xlabel="step of the identification stream",
    ylabel=f"NRMSE over {window} steps",
    yscale="log",
    title="Prequential one-step error while learning",
)
X_test, y_test = tests[5]
simulator = copy.deepcopy(model).reset_state()
axes[1].plot(y_test, color="black", lw=2, label="plant")
axes[1].plot(simulator.predict(X_test), label="RTRL, free run")
axes[1].plot(arx_free_run(X_test[:, 0]), "--", label="ARX, free run")
axes[1].set(xlabel="step", ylabel="y", title="Free run on the test signal")
axes[1].legend(loc="lower left", ncols=3)
fig.tight_layout()

# %%
# Control
# -------
# The reference is a sum of a sinusoid and a square wave. At step ``k`` the
# controller knows the plant's past inputs and outputs and the next
# reference value :math:`r(k + 1)`, and chooses :math:`u(k)` in
# ``[-1, 1]``, the range the models were identified on:
#
# * **RTRL controller**: the network's state is kept in step with the plant
#   (it feeds back the measured outputs); candidate inputs are tried with
#   ``predict``, which runs one step from the current state without
#   changing it: 21 on an even grid over ``[-1, 1]``, then 21 more at a
#   tenth of the spacing around the best of them, and the candidate whose
#   predicted output is nearest :math:`r(k + 1)` is applied. Once the
#   plant has answered, :meth:`~skrtrl.RTRLRegressor.update_state` moves
#   the network's state on with the applied input and the measured output,
#   without learning from them. Learning on during control
#   (``partial_fit`` instead of ``update_state``) was the first version of
#   this example: it raised the tracking error here from 0.009 to 0.039,
#   and, on another identification stream (seed 1) and another reference
#   (a sinusoid of period 37 and a square wave of period 120), from 0.017
#   to 0.046, above the ARX controller's 0.037 there. A plausible
#   reason, not tested further: the slow, narrow signals of closed-loop
#   tracking excite the plant far less than the random identification
#   inputs, and the network adapts to them at the expense of the rest.
# * **ARX controller**: the ARX prediction solved for :math:`u(k)`, clipped
#   to ``[-1, 1]``.
n_control = 400
k = np.arange(1, n_control + 1)
reference = 0.3 * np.sin(2 * np.pi * k / 50) + 0.2 * np.sign(
    np.sin(2 * np.pi * k / 160)
)
coarse = np.linspace(-1.0, 1.0, 21)  # a step of 0.1
fine = np.linspace(-0.1, 0.1, 21)  # a step of 0.01 around the best


def plant_output(u_history):
    """The plant's next output after the inputs so far, from rest."""
    return make_narendra_plant(len(u_history), u=u_history)[1][-1]


def nearest(model, grid, target):
    """The input of ``grid`` whose one-step prediction is nearest ``target``."""
    predicted = np.array([model.predict([[c]])[0] for c in grid])
    return grid[np.argmin(np.abs(predicted - target))]


def rtrl_control(model):
    model = copy.deepcopy(model).reset_state()  # the plant starts at rest too
    u, out = np.zeros(n_control), np.zeros(n_control)
    for step in range(n_control):
        best = nearest(model, coarse, reference[step])
        u[step] = nearest(model, np.clip(best + fine, -1.0, 1.0), reference[step])
        out[step] = plant_output(u[: step + 1])
        model.update_state(u[step : step + 1, np.newaxis], out[step : step + 1])
    return u, out


def arx_control():
    u, out = np.zeros(n_control), np.zeros(n_control)
    past = np.zeros(3)  # y(k), y(k - 1), y(k - 2)
    for step in range(n_control):
        u_prev = u[step - 1] if step else 0.0
        free = arx @ [*past, 0.0, u_prev, 1.0]  # the prediction with u(k) = 0
        u[step] = np.clip((reference[step] - free) / arx[3], -1.0, 1.0)
        out[step] = plant_output(u[: step + 1])
        past = np.array([out[step], past[0], past[1]])
    return u, out


start = time.process_time()
controlled = {"RTRL controller": rtrl_control(model), "ARX controller": arx_control()}
print(f"control: {time.process_time() - start:.1f} s of CPU time")
for name, (_, out) in controlled.items():
    error = np.sqrt(np.mean((out - reference) ** 2))
    print(f"{name}: RMS tracking error {error:.3f}")

fig, axes = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
axes[0].plot(k, reference, color="black", lw=2, label="reference")
for name, (u, out) in controlled.items():
    axes[0].plot(k, out, label=f"plant output, {name}")
    axes[1].plot(k, u, label=name)
axes[0].set(ylabel="y", title="Tracking a reference")
axes[0].legend(loc="lower left", fontsize="small")
axes[1].set(xlabel="step", ylabel="control input u")
axes[1].legend(loc="lower left", fontsize="small")
fig.tight_layout()

# %%
# What the figures show
# ---------------------
# When this example was written (two shared cores, 2026-12-02), the network
# learnt the stream at about 25 microseconds of CPU time per step, and its
# free-run NRMSE on the five fresh random sequences was 0.030, against
# 0.202 for the ARX model; on the paper's test signal 0.099 against 0.172.
# Persistence scored 1.42 on the random sequences (the plant's output
# follows its white-noise input, so it does not persist) but 0.042 on the
# test signal, a slow sinusoid that changes little from one step to the
# next: given the measured output at every step, persistence is a one-step
# predictor, not a simulator, and beats both simulators there.
#
# The ARX model has one input gain, the plant's average (about 0.75), while
# the plant's gain falls as its past outputs grow (the denominator
# :math:`1 + y(k - 1)^2 + y(k - 2)^2`): in free run the linear model
# overshoots the peaks of the test signal. In control the same error makes
# the ARX controller fall short at every peak of the reference, as it
# expects more from its input than the plant gives; the network's
# controller reaches them, with an RMS tracking error of 0.009 against
# 0.035. Both jump at the steps of the square wave, which no input in
# ``[-1, 1]`` follows in one step.

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
