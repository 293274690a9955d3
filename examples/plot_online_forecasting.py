"""
============================================
Online forecasting of a chaotic time series
============================================

A :class:`~skrtrl.RTRLRegressor` with ``stateful=True`` learns from a stream
as it arrives: each call to ``partial_fit`` updates the weights after every
time step and keeps the hidden state and the RTRL influence matrices for the
next call, while ``predict`` runs on from the current state without changing
it. That is all *prequential* (test-then-train) evaluation needs: predict the
next value, then learn from it.

The stream is the Mackey-Glass series with delay ``tau=17``, a standard
chaotic benchmark. The network sees only the current value and must predict
the next one, so whatever it knows about the past it has to keep in its
hidden state. Two online baselines run on the same stream: persistence (the
next value equals the current one) and a linear autoregressive model on the
last five values, fitted by recursive least squares.
"""

# %%
# The stream
# ----------
# The series is scaled with the mean and standard deviation of its first 500
# steps, a warm-up, so that nothing from the future leaks into the scaling.
# Row ``t`` of ``X`` holds the value at step ``t``; ``y[t]`` is the value at
# step ``t + 1``.
import time

import matplotlib.pyplot as plt
import numpy as np

from skrtrl import RTRLRegressor
from skrtrl.datasets import make_mackey_glass

n_steps = 10_000
series = make_mackey_glass(n_steps + 1, tau=17, random_state=0)
warm_up = series[:500]
z = (series - warm_up.mean()) / warm_up.std()
X, y = z[:-1, np.newaxis], z[1:]

# %%
# Prequential learning with RTRL
# ------------------------------
# The loop goes through the stream in chunks of a few rows: ``predict`` on a
# chunk first (from the current state, with the current weights), then
# ``partial_fit`` on it. The learning does not depend on the chunk size at
# all: ``partial_fit`` updates after every row inside its compiled loop,
# whether it is handed one row or a thousand. Only the predictions do: within
# a chunk they are made with the weights of the chunk's start, a few updates
# old. Chunks of one row give the exact prequential error, here nearly the
# same, at about five times the run time (each call has a fixed Python
# cost).
#
# A gradient from a single step is noisy. SGD with a high momentum moves the
# weights along an average of the gradients of roughly the last
# ``1 / (1 - momentum) = 100`` steps, with an effective step size of
# ``learning_rate_init / (1 - momentum)``; here that gives a lower error than
# Adam or a lower momentum. Twice this learning rate makes learning unstable.
model = RTRLRegressor(
    n_hidden=16,
    cell="elman",
    clip_norm=5.0,
    solver="sgd",
    learning_rate_init=5e-4,
    momentum=0.99,
    stateful=True,
    random_state=0,
)
chunk = 5
y_rtrl = np.zeros(n_steps)  # no prediction before the first update
start = time.perf_counter()
for begin in range(0, n_steps, chunk):
    rows = slice(begin, begin + chunk)
    if begin > 0:
        y_rtrl[rows] = model.predict(X[rows])
    model.partial_fit(X[rows], y[rows])
print(f"RTRL: {n_steps} steps in {time.perf_counter() - start:.1f} s")

# %%
# Baselines
# ---------
# Persistence needs no learning. The autoregressive model predicts
# ``y[t]`` from ``x[t], ..., x[t-4]`` and a constant; recursive least squares
# updates its exact least-squares solution after every step (a forgetting
# factor of 0.999 lets it follow slow changes).
y_persistence = X[:, 0]

n_lags, forgetting = 5, 0.999
padded = np.concatenate([np.zeros(n_lags - 1), X[:, 0]])
weights = np.zeros(n_lags + 1)
inverse_gram = 100.0 * np.eye(n_lags + 1)
y_ar = np.zeros(n_steps)
for t in range(n_steps):
    features = np.append(padded[t : t + n_lags][::-1], 1.0)
    y_ar[t] = features @ weights
    gain = inverse_gram @ features
    gain /= forgetting + features @ gain
    weights += gain * (y[t] - y_ar[t])
    inverse_gram -= np.outer(gain, features @ inverse_gram)
    inverse_gram /= forgetting

# %%
# Error over the second half of the stream
# ----------------------------------------
# NRMSE is the root mean squared error divided by the standard deviation of
# the target: 1 is no better than predicting the mean.
second_half = slice(n_steps // 2, None)
predictions = {
    "RTRL, 16 hidden units": y_rtrl,
    "persistence": y_persistence,
    "linear AR(5), RLS": y_ar,
}
target_std = y[second_half].std()
print(f"{'model':<24}NRMSE")
for name, y_hat in predictions.items():
    rmse = np.sqrt(np.mean((y_hat[second_half] - y[second_half]) ** 2))
    print(f"{name:<24}{rmse / target_std:.4f}")

# %%
# The network ends up well below persistence: it has learnt from the stream
# alone to carry the recent history in its state. On this smooth series,
# sampled finely, a linear extrapolation from five past values is hard to
# beat one step ahead, and the RLS model, which solves its least-squares
# problem exactly at every step, stays ahead of the network's stochastic
# gradient steps.
#
# Predictions and running error
# -----------------------------
# Above, the last 300 steps of the stream; below, the root mean squared error
# over a sliding window of 250 steps, normalised like the NRMSE.
window = 250
kernel = np.ones(window) / window
steps = np.arange(window - 1, n_steps)
last = slice(n_steps - 300, n_steps)

fig, (ax_pred, ax_err) = plt.subplots(2, 1, figsize=(8, 7))
ax_pred.plot(np.arange(n_steps)[last], y[last], color="black", lw=2, label="truth")
ax_pred.plot(np.arange(n_steps)[last], y_rtrl[last], "--", label="RTRL prediction")
ax_pred.set(xlabel="step", ylabel="scaled value", title="One step ahead")
ax_pred.legend(loc="upper left")
for name, y_hat in predictions.items():
    running = np.sqrt(np.convolve((y_hat - y) ** 2, kernel, mode="valid"))
    ax_err.plot(steps, running / target_std, label=name)
ax_err.set(
    xlabel="step",
    ylabel=f"NRMSE over {window} steps",
    yscale="log",
    title="Prequential error",
)
ax_err.legend(loc="upper right")
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
