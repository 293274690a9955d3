"""
=================================
Adapting to concept drift online
=================================

A model that learns at every step keeps following a stream whose dynamics
change. :func:`~skrtrl.datasets.make_concept_drift_stream` makes a noisy
sinusoid whose period switches abruptly from 20 to 8 steps half-way through.
A :class:`~skrtrl.RTRLRegressor` with ``stateful=True`` predicts each next
value from the current one (test), then learns from it (train): the
prequential error jumps at the drift and falls back as RTRL re-fits the
weights. A copy of the model frozen at the drift point shows what happens
without learning.
"""

# %%
# The stream
# ----------
# ``X[t, 0]`` is the observed value at step ``t`` and ``y[t]`` the one at
# step ``t + 1``. The observation noise (standard deviation 0.05) sets a
# floor of about ``0.05 ** 2`` under any squared error.
import copy

import matplotlib.pyplot as plt
import numpy as np

from skrtrl import RTRLRegressor
from skrtrl.datasets import make_concept_drift_stream

n_steps, drift = 4000, 2000
X, y = make_concept_drift_stream(n_steps, drift_at=drift, noise=0.05, random_state=0)

# %%
# Prequential learning
# --------------------
# The stream goes by in chunks of five rows: ``predict`` on the chunk (from
# the current state, without changing it), then ``partial_fit`` on it, which
# updates the weights after every row. The chunks only save Python calls:
# learning is the same for any chunk size, and predictions within a chunk use
# weights at most four updates old.
#
# At the drift point a copy of the model is put aside. ``predict`` on the rest
# of the stream runs it on from the state at the drift with its weights of
# that moment: the same network, never updated again.
model = RTRLRegressor(
    n_hidden=8,
    cell="elman",
    clip_norm=5.0,
    solver="sgd",
    learning_rate_init=3e-3,
    momentum=0.9,
    stateful=True,
    random_state=0,
)
chunk = 5
y_online = np.zeros(n_steps)  # no prediction before the first update
for begin in range(0, n_steps, chunk):
    rows = slice(begin, begin + chunk)
    if begin == drift:
        frozen = copy.deepcopy(model)
    if begin > 0:
        y_online[rows] = model.predict(X[rows])
    model.partial_fit(X[rows], y[rows])
y_frozen = frozen.predict(X[drift:])

# %%
# Error around the drift
# ----------------------
squared_error = (y_online - y) ** 2
# The frozen copy exists from the drift on; NaN before.
frozen_error = np.full(n_steps, np.nan)
frozen_error[drift:] = (y_frozen - y[drift:]) ** 2
periods = {
    "just before (200 steps)": slice(drift - 200, drift),
    "right after (100 steps)": slice(drift, drift + 100),
    "well after (last 500 steps)": slice(n_steps - 500, n_steps),
}
print(f"{'mean squared error':<30}{'learning':>10}{'frozen':>10}")
for name, rows in periods.items():
    frozen_mse = f"{frozen_error[rows].mean():10.4f}" if rows.start >= drift else ""
    print(f"{name:<30}{squared_error[rows].mean():10.4f}{frozen_mse}")

# %%
# The error rises by an order of magnitude at the drift: the network still
# predicts the slow oscillation. Within about a hundred steps it has adapted
# and the error is back near the noise floor, while the frozen copy keeps
# predicting the old dynamics.
#
# The running error below is the mean squared error over the last 50 steps.
window = 50
kernel = np.ones(window) / window
steps = np.arange(window - 1, n_steps)

fig, (ax_stream, ax_err) = plt.subplots(2, 1, figsize=(8, 7))
around = slice(drift - 60, drift + 60)
ax_stream.plot(np.arange(n_steps)[around], y[around], "k.-", label="observed")
ax_stream.plot(np.arange(n_steps)[around], y_online[around], label="prediction")
ax_stream.axvline(drift, color="red", ls=":", label="drift")
ax_stream.set(xlabel="step", ylabel="value", title="Around the drift")
ax_stream.legend(loc="lower left")

ax_err.plot(steps, np.convolve(squared_error, kernel, "valid"), label="learning")
ax_err.plot(
    steps, np.convolve(frozen_error, kernel, "valid"), label="frozen at the drift"
)
ax_err.axvline(drift, color="red", ls=":", label="drift")
ax_err.axhline(0.05**2, color="gray", ls="--", label="noise variance")
ax_err.set(
    xlabel="step",
    ylabel=f"squared error, mean over {window} steps",
    yscale="log",
    title="Prequential error",
)
ax_err.legend(loc="upper left")
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
