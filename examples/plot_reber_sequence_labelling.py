"""
====================================================
Next-symbol prediction on the embedded Reber grammar
====================================================

The embedded Reber grammar (Hochreiter & Schmidhuber, 1997) is a classic
test of recurrent memory. Every string has the form ``B a <r> a E``: ``a`` is
``T`` or ``P``, and ``<r>`` is a string of the Reber grammar, itself of the
form ``B ... E``. At each step the net reads one symbol and must predict which
symbols may come next. Almost all of this is local: inside ``<r>`` the legal
successors depend only on the last symbol or two. The exception is the
penultimate symbol: once ``<r>`` has ended, the only legal successor is the
``a`` seen at the second position, many steps earlier.

We train an Elman net with ``output="sequence"``, one prediction per step,
and check both the local transitions and the long-range step.
"""

# %%
# Targets and scoring
# -------------------
# At a branching point two symbols are legal, so the target is a *set*, not
# a label. :func:`~skrtrl.datasets.make_embedded_reber` gives it as a
# multi-hot vector over the 7 symbols. The legal set is a deterministic
# function of the prefix, so a regressor on these vectors is well posed: with
# the squared error the best output is exactly 1 for legal symbols and 0 for
# the others. (A classifier of the actual next symbol would learn 0.5/0.5 at
# the branches instead.) A step is counted as correct when the symbols whose
# score exceeds 0.5 are exactly the legal set; a string is *solved* when
# every step is correct. This is a little stricter than the criterion of
# Hochreiter & Schmidhuber, who ask only that the legal symbols get the
# highest scores.
#
# The last row of each string, after the final ``E``, has no legal successor
# and is dropped. The grammar favours short strings, so many test strings
# also occur in the training set; we score only the test strings that do
# not.
import time

import matplotlib.pyplot as plt
import numpy as np

from skrtrl import RTRLRegressor
from skrtrl.datasets import REBER_SYMBOLS, make_embedded_reber


def drop_last_step(X, y):
    return [x[:-1] for x in X], [t[:-1] for t in y]


X_train, y_train = drop_last_step(*make_embedded_reber(500, random_state=0))
X_all, y_all = drop_last_step(*make_embedded_reber(1000, random_state=1))
seen = {x.argmax(axis=1).tobytes() for x in X_train}
unseen = [i for i, x in enumerate(X_all) if x.argmax(axis=1).tobytes() not in seen]
X_test = [X_all[i] for i in unseen]
y_test = [y_all[i] for i in unseen]
print(
    f"{len(X_train)} training strings ({len(seen)} distinct), "
    f"{len(X_test)} unseen test strings of length "
    f"{min(map(len, X_test))}-{max(map(len, X_test))}"
)

# %%
# Scoring by position in the grammar
# ----------------------------------
# Row ``t`` of a string holds the prediction made after reading symbol
# ``t``. We group the rows by their role: after the initial ``B``, after the
# second symbol, inside the inner string, after the inner ``E`` (the
# long-range step, which needs the second symbol) and after the final
# ``T``/``P``.
SEGMENTS = ["after B", "after 2nd", "inner string", "after inner E", "last"]


def segment_of_rows(n_rows):
    seg = np.full(n_rows, 2)
    seg[[0, 1, -2, -1]] = [0, 1, 3, 4]
    return seg


def step_correct(scores, targets):
    return [np.all((s > 0.5) == (t > 0.5), axis=1) for s, t in zip(scores, targets)]


def accuracy_by_segment(correct):
    ok = np.concatenate(correct)
    seg = np.concatenate([segment_of_rows(len(c)) for c in correct])
    return np.array([ok[seg == k].mean() for k in range(len(SEGMENTS))])


# %%
# Training
# --------
# Sixteen tanh units, Adam with minibatches of whole strings (exact RTRL
# gradients). We call ``partial_fit`` once per epoch to follow the test
# accuracy as training goes. This also sidesteps the stopping rule of
# ``fit``: the loss stays on a long plateau before the net finds the
# long-range dependency, and with the default ``tol`` and
# ``n_iter_no_change`` ``fit`` can stop there (raise ``n_iter_no_change``
# when using ``fit``). We keep a snapshot of the predictions in the middle
# of the plateau.
N_EPOCHS, SNAPSHOT = 60, 15
net = RTRLRegressor(
    n_hidden=16,
    cell="elman",
    output="sequence",
    learning_rate_init=0.01,
    batch_size=32,
    clip_norm=5.0,
    random_state=0,
)
history = []
start = time.perf_counter()
for epoch in range(1, N_EPOCHS + 1):
    net.partial_fit(X_train, y_train)
    scores = net.predict(X_test)
    correct = step_correct(scores, y_test)
    by_segment = accuracy_by_segment(correct)
    local = np.concatenate([c[np.arange(len(c)) != len(c) - 2] for c in correct])
    history.append((local.mean(), by_segment[3], np.mean([c.all() for c in correct])))
    if epoch == SNAPSHOT:
        plateau_scores, plateau_by_segment = scores, by_segment
print(f"trained {N_EPOCHS} epochs in {time.perf_counter() - start:.1f} s")
history = np.array(history)
for epoch in (SNAPSHOT, N_EPOCHS):
    local_acc, long_acc, solved = history[epoch - 1]
    print(
        f"epoch {epoch:2d}: local steps {local_acc:.1%} correct, "
        f"after inner E {long_acc:.1%}, strings solved {solved:.1%}"
    )

# %%
# The local transitions are learned within about ten epochs. From then on
# the step after the inner ``E`` is the only one that fails (its curve and
# the fraction of strings solved coincide), and it stays near chance: the
# net gives ``T`` and ``P`` similar scores, and whether a string passes
# depends on which side of 0.5 they fall. About thirty epochs later the net
# learns to carry the second symbol through the inner string, and every
# unseen test string is solved.
#
# Hochreiter & Schmidhuber (1997) report that fully recurrent nets trained
# with RTRL solve this task in only some fraction of trials. Exact minibatch
# gradients with Adam and gradient clipping do better here, given enough
# units, but not always. We trained for 100 epochs with learning rates
# 0.003, 0.01 and 0.03 and several seeds (eleven runs per size). The test
# set was solved in 0 of 11 runs with 8 units, 1 of 11 with 12 units, 7 of
# 11 with 16 units and 10 of 11 with 24 units. Every failed run learned all
# the local transitions and stayed on the plateau, at or below chance after
# the inner ``E`` (one run at learning rate 0.03 solved it and then lost it
# again). The lags are short, as the strings have at most about 30 symbols:
# this tests memory, but not very long-range memory.

# %%
# Predictions for one string
# --------------------------
# The heatmaps show the scores for one unseen string, on the plateau and
# after training, with the legal successors marked by white dots. The bar
# chart gives the accuracy by position over all unseen test strings.
i = int(np.argmin([abs(len(x) - 14) for x in X_test]))
string = [REBER_SYMBOLS[k] for k in X_test[i].argmax(axis=1)]
legal_steps, legal_symbols = np.nonzero(y_test[i])

fig = plt.figure(figsize=(11, 7.5), layout="constrained")
top, bottom = fig.subfigures(2, 1)
ax_curve, ax_bar = top.subplots(1, 2)
epochs = np.arange(1, N_EPOCHS + 1)
ax_curve.plot(epochs, history[:, 0], marker=".", label="local steps")
ax_curve.plot(epochs, history[:, 1], marker=".", label="after inner E")
# Dashed, as it lies on the previous curve once the local steps are learned.
ax_curve.plot(epochs, history[:, 2], "k--", label="strings solved")
ax_curve.axvline(SNAPSHOT, color="grey", ls=":")
ax_curve.legend()
ax_curve.set(
    xlabel="epoch",
    ylabel="accuracy on unseen test strings",
    title="Test accuracy during training",
)

width = 0.4
positions = np.arange(len(SEGMENTS))
ax_bar.bar(positions - width / 2, plateau_by_segment, width, label=f"epoch {SNAPSHOT}")
ax_bar.bar(positions + width / 2, by_segment, width, label=f"epoch {N_EPOCHS}")
ax_bar.set_xticks(positions, SEGMENTS)
ax_bar.set(ylim=(0, 1.2), ylabel="steps correct", title="Accuracy by position")
ax_bar.legend(loc="upper center", ncols=2)

for ax, s, title in zip(
    bottom.subplots(1, 2, sharey=True),
    (plateau_scores[i], scores[i]),
    (f"epoch {SNAPSHOT}", f"epoch {N_EPOCHS}"),
):
    image = ax.imshow(s.T, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.scatter(legal_steps, legal_symbols, color="white", s=12)
    ax.set_xticks(np.arange(len(string)), string)
    ax.set_yticks(np.arange(len(REBER_SYMBOLS)), REBER_SYMBOLS)
    ax.set(xlabel="symbol read", title=f"Scores of the next symbol, {title}")
ax.figure.colorbar(image, ax=ax, label="score")
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
