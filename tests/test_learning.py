"""The estimators learn tasks that need memory, judged on held-out data.

Each task is out of reach of a model that sees only the current input: the
target depends on an input several steps back. The thresholds are on fresh
sequences from another seed. The hyperparameters were checked on several
random states; one is fixed here.
"""

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.metrics import accuracy_score, r2_score

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl.datasets import make_delayed_sum, make_delayed_xor

# max_iter is set to what the tasks need, not to convergence of the loss.
pytestmark = pytest.mark.usefixtures("quiet_convergence")


XOR = {"n_steps": 10, "delay": 2}
SUM = {"n_steps": 12, "delay": 4}


def test_delayed_xor_of_the_last_step():
    X, y = make_delayed_xor(400, **XOR, random_state=0)
    X_test, y_test = make_delayed_xor(500, **XOR, random_state=1)
    # Any function of the last bit alone is right half of the time.
    assert accuracy_score(y_test, X_test[:, -1]) < 0.6

    # The Elman cell read at the last step: a maximum over time (the
    # classifier's default readout) cannot tell when a bit came.
    clf = RTRLClassifier(
        8,
        cell="elman",
        pooling="last",
        learning_rate_init=0.03,
        max_iter=40,
        batch_size=16,
        random_state=0,
    ).fit(X, y)
    assert clf.score(X_test, y_test) >= 0.95


def test_delayed_xor_at_every_step():
    X, y = make_delayed_xor(400, **XOR, output="sequence", random_state=0)
    X_test, y_test = make_delayed_xor(500, **XOR, output="sequence", random_state=1)
    # The element-wise GRU, the classifier's default cell when written.
    clf = RTRLClassifier(
        8,
        cell="egru",
        output="sequence",
        learning_rate_init=0.03,
        max_iter=40,
        batch_size=16,
        random_state=0,
    ).fit(X, y)
    assert clf.score(X_test, y_test) >= 0.95
    # Also on the steps that have a partner bit, not only the leading zeros.
    delay = XOR["delay"]
    pred = clf.predict(X_test)
    assert accuracy_score(y_test[:, delay:].ravel(), pred[:, delay:].ravel()) >= 0.95


def test_delayed_sum_of_the_last_step():
    X, y = make_delayed_sum(400, **SUM, random_state=0)
    X_test, y_test = make_delayed_sum(500, **SUM, random_state=1)
    # The last input alone explains about half of the variance.
    memoryless = LinearRegression().fit(X[:, -1:], y)
    assert memoryless.score(X_test[:, -1:], y_test) < 0.6

    reg = RTRLRegressor(
        8, learning_rate_init=0.02, max_iter=40, batch_size=16, random_state=0
    ).fit(X, y)
    assert reg.score(X_test, y_test) >= 0.9


def test_delayed_sum_at_every_step():
    X, y = make_delayed_sum(400, **SUM, output="sequence", random_state=0)
    X_test, y_test = make_delayed_sum(500, **SUM, output="sequence", random_state=1)
    reg = RTRLRegressor(
        8,
        output="sequence",
        learning_rate_init=0.02,
        max_iter=40,
        batch_size=16,
        random_state=0,
    ).fit(X, y)
    assert reg.score(X_test, y_test) >= 0.9
    delay = SUM["delay"]
    pred = reg.predict(X_test)
    assert r2_score(y_test[:, delay:].ravel(), pred[:, delay:].ravel()) >= 0.9


def test_delayed_sum_of_sequences_of_different_lengths():
    # The list form: each sequence has its own length, and the target is
    # read where that sequence ends.
    rng = np.random.RandomState(0)
    delay = SUM["delay"]

    def make(n_sequences, random_state):
        X, _ = make_delayed_sum(n_sequences, **SUM, random_state=random_state)
        lengths = rng.randint(delay + 2, X.shape[1] + 1, size=n_sequences)
        X = [x[:n] for x, n in zip(X, lengths)]
        y = np.array([x[-1] + x[-1 - delay] for x in X])
        return X, y

    X, y = make(400, 0)
    X_test, y_test = make(500, 1)
    reg = RTRLRegressor(
        8, learning_rate_init=0.02, max_iter=40, batch_size=16, random_state=0
    ).fit(X, y)
    assert reg.score(X_test, y_test) >= 0.9
