"""skrtrl at its defaults against a GRU trained by BPTT on the development suite.

The measurement behind issue 14's "Done when": on every set of the
development suite, ``RTRLClassifier(random_state=s)`` or
``RTRLRegressor(random_state=s)`` with no tuning argument (only what the
task itself requires: ``output="sequence"`` for per-step labelling,
``stateful=True`` for the stream) against torch's ``nn.GRU(32)`` trained by
backpropagation through time with the settings the issue fixes (Adam at
learning rate 3e-3, minibatches of 16, 100 epochs, gradient norm clipped at
1, the last hidden state to a linear layer, or the linear layer at every
step for per-step labelling; cross-entropy for classes, squared error for
values). The script measures whatever defaults the skrtrl on the path has;
``--params`` applies settings on top of them (``set_params``) to measure
candidate defaults before they are changed.

Development suite (:func:`load_suite`; held-out test data everywhere):

- ``japanese_vowels``: the bundled set, official split (270 / 370), every
  channel standardised by the statistics of the training frames.
- ``arrowhead``, ``pickup``: the UCR sets ArrowHead (36 / 175 series of
  251 steps, 3 classes) and PickupGestureWiimoteZ (50 / 50 series of 29 to
  361 steps, 10 classes), read from the copies shipped inside aeon,
  official splits, each series z-normalised on its own steps (the UCR
  archive's convention); Pickup's series stay variable-length.
- ``reber``: embedded Reber grammar, per-step labelling of the legal next
  symbols (multi-hot, squared error). 500 training strings (seed 0); test
  on the strings of 1,000 fresh ones (seed 1) that do not occur in the
  training set. Score: fraction of test strings solved (every step's legal
  set predicted exactly, threshold 0.5), as in the gallery examples.
- ``adding``: the adding problem, 500 training sequences of 50 steps
  (the generator's default length; seed 0), 1,000 test sequences (seed 1).
  Score: NRMSE (predicting the mean gives 1).
- ``xor``: delayed XOR of the last bit and the bit ``delay`` steps before
  it, 1,000 training sequences (seed 0), 1,000 test sequences (seed 1).
- ``mackey_glass``: a Mackey-Glass series (tau 17, 2,000 steps, seed 0)
  standardised by the statistics of its first 1,500 steps; windows of 50
  steps predict the next value. Training windows lie in the first 1,500
  steps (stride 5), test windows in the last 500 (stride 1). Score: NRMSE.

The task sizes (see ``TASK_SIZES``) were chosen from the generators'
docstrings and one fit of the torch GRU each (seed 0), never from skrtrl's
results: Reber and adding as in the gallery examples, at the adding
generator's default length (the GRU solved every unseen Reber string and
reached NRMSE 0.036 on adding with 1,000 training sequences; 500 halve the
run); for the XOR the generator's default (10 steps, delay 2) was solved
outright (accuracy 1.000) and 30 steps with delay 10 barely learnt
(0.654), so 20 steps with delay 5 (0.938) was taken; Mackey-Glass as the
usual one-step forecast (GRU NRMSE 0.017).

Stream (:func:`run_stream`): prequential one-step-ahead forecasting of a
Mackey-Glass series (tau 17, 3,000 steps, seed 0), standardised by the
statistics of its first half. ``RTRLRegressor(stateful=True)`` reads the
current value and predicts the next, test-then-train through
``predict_partial_fit`` (one call per block of 100 rows: the predictions
are those of ``predict`` then ``partial_fit`` row by row), against a linear
AR(10) model, ``SGDRegressor()`` at its defaults, that predicts each next
value from the last 10 and then learns it (``partial_fit`` on one sample).
Score: NRMSE of the predictions of the second half.

For each seed and set, skrtrl and torch are fitted one after the other
(which goes first alternates with the seed) so that both see the same
machine load; the table gives mean scores and median fit seconds
(wall-clock; CPU seconds are in the JSON). skrtrl trains on one kernel
thread at its default ``n_jobs``; torch runs with ``--torch-threads``
(default 1). A row is marked ``yes`` when skrtrl is at least as accurate
(mean score) and fits faster (median seconds).

Run from the repository root, with the extension built in place::

    PYTHONPATH=. python benchmarks/bench_defaults.py               # 3 seeds
    PYTHONPATH=. python benchmarks/bench_defaults.py --quick  # smoke run, less data
    PYTHONPATH=. python benchmarks/bench_defaults.py --sets xor reber --seeds 0 1
    PYTHONPATH=. python benchmarks/bench_defaults.py --params \
        '{"cell": "egru", "n_hidden": 128, "pooling": "max"}' --json out.json

torch (and aeon for the UCR sets) come with the ``bench`` extra; without
torch only the skrtrl side is measured.
"""

import argparse
import datetime
import json
import os
import platform
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDRegressor
from sklearn.preprocessing import StandardScaler

import skrtrl
from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl.datasets import (
    load_japanese_vowels,
    make_adding_problem,
    make_delayed_xor,
    make_embedded_reber,
    make_mackey_glass,
)

#: Every set of the development suite, in table order.
SETS = (
    "japanese_vowels",
    "arrowhead",
    "pickup",
    "reber",
    "adding",
    "xor",
    "mackey_glass",
)
#: The sets of ``--quick``, with less training data (``QUICK_TASK_SIZES``).
QUICK_SETS = ("reber", "mackey_glass")

#: Sizes of the generated tasks (see the module docstring for why).
TASK_SIZES = {
    "reber": dict(n_train=500, n_test=1000),
    "adding": dict(n_train=500, n_test=1000, n_steps=50),
    "xor": dict(n_train=1000, n_test=1000, n_steps=20, delay=5),
    "mackey_glass": dict(
        n_series=2000, n_train_steps=1500, window=50, train_stride=5, test_stride=1
    ),
}

#: ``--quick``: a smoke run, not a measurement of the suite.
QUICK_TASK_SIZES = {
    "reber": dict(n_train=100, n_test=300),
    "mackey_glass": dict(
        n_series=2000, n_train_steps=1500, window=50, train_stride=20, test_stride=1
    ),
}

#: The stream comparison: series, standardisation, AR order, block size.
STREAM = dict(n_steps=3000, tau=17.0, order=10, block=100)

#: The baseline of issue 14: torch ``nn.GRU(32)`` trained by BPTT.
TORCH_SETTINGS = dict(
    n_hidden=32, epochs=100, learning_rate=3e-3, batch_size=16, clip_norm=1.0
)

#: UCR names of the sets read from aeon.
UCR_NAMES = {"arrowhead": "ArrowHead", "pickup": "PickupGestureWiimoteZ"}


@dataclass
class Task:
    """One set of the development suite, split into training and test data.

    Attributes
    ----------
    name : str
        Key in :data:`SETS`.
    X_train, X_test : ndarray of shape (n_sequences, n_steps, n_features) \
or list of ndarray of shape (n_steps_i, n_features)
        Input sequences, as the skrtrl estimators take them.
    y_train, y_test : ndarray or list of ndarray
        One target per sequence (``output == "last"``), or per step
        (``output == "sequence"``: a list of arrays of shape
        ``(n_steps_i, n_outputs)``).
    estimator : {"classifier", "regressor"}
        Which skrtrl estimator the task takes.
    output : {"last", "sequence"}
        One target per sequence or one per step.
    metric : {"accuracy", "solved", "nrmse"}
        Test score; see :func:`score`.
    description : str
        One line on the data and the split.
    """

    name: str
    X_train: object
    y_train: object
    X_test: object
    y_test: object
    estimator: str
    output: str = "last"
    metric: str = "accuracy"
    description: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def higher_is_better(self):
        """bool : Whether a larger score is better (False for NRMSE)."""
        return self.metric != "nrmse"


# --------------------------------------------------------------------------
# data


def standardise_channels(X_fit, *Xs):
    """Scale every channel by the statistics of the frames of ``X_fit``.

    Parameters
    ----------
    X_fit : list of ndarray of shape (n_steps_i, n_features)
        Sequences whose frames give the mean and standard deviation.
    *Xs : list of ndarray of shape (n_steps_i, n_features)
        Further sets of sequences scaled with the same statistics.

    Returns
    -------
    scaled : list of list of ndarray
        ``X_fit`` and each of ``Xs``, scaled.
    """
    scaler = StandardScaler().fit(np.concatenate(X_fit))
    return [[scaler.transform(x) for x in X] for X in (X_fit, *Xs)]


def z_normalise(X):
    """Z-normalise every series and channel over its own steps (UCR style).

    Parameters
    ----------
    X : list of ndarray of shape (n_steps_i, n_features)
        Sequences.

    Returns
    -------
    X : list of ndarray of shape (n_steps_i, n_features)
        Each with mean 0 and standard deviation 1 per channel (a constant
        channel becomes 0).
    """
    out = []
    for x in X:
        std = x.std(axis=0)
        out.append((x - x.mean(axis=0)) / np.where(std > 0, std, 1.0))
    return out


def load_japanese_vowels_task():
    """Japanese Vowels, official split, channels standardised on training.

    Returns
    -------
    task : Task
    """
    X_train, X_test, y_train, y_test = load_japanese_vowels(return_X_y=True)
    X_train, X_test = standardise_channels(X_train, X_test)
    return Task(
        "japanese_vowels",
        X_train,
        y_train,
        X_test,
        y_test,
        "classifier",
        description="270/370 utterances, 7-29 frames x 12, 9 speakers",
    )


def load_ucr_task(name):
    """A UCR set shipped inside aeon, official split, z-normalised per series.

    Parameters
    ----------
    name : {"arrowhead", "pickup"}
        Key of :data:`UCR_NAMES`.

    Returns
    -------
    task : Task
        Equal-length sets as 3D arrays, variable-length ones as lists of 2D
        arrays ``(n_steps_i, n_channels)``; labels as aeon gives them
        (strings).
    """
    from aeon.datasets import load_classification

    splits = {}
    for split in ("train", "test"):
        X, y = load_classification(UCR_NAMES[name], split=split)
        # aeon: (n_channels, n_steps) per series -> (n_steps, n_channels)
        X = z_normalise([np.asarray(x, dtype=np.float64).T for x in X])
        if len({len(x) for x in X}) == 1:
            X = np.stack(X)
        splits[split] = X, np.asarray(y)
    (X_train, y_train), (X_test, y_test) = splits["train"], splits["test"]
    lengths = [len(x) for x in (*X_train, *X_test)]
    return Task(
        name,
        X_train,
        y_train,
        X_test,
        y_test,
        "classifier",
        description=(
            f"{len(X_train)}/{len(X_test)} series, {min(lengths)}-{max(lengths)} "
            f"steps, {len(np.unique(y_train))} classes"
        ),
    )


def _drop_last_step(X, y):
    """The row after a Reber string's final E has no legal successor."""
    return [x[:-1] for x in X], [t[:-1] for t in y]


def make_reber_task(n_train=500, n_test=1000, test_seed=1):
    """Embedded Reber grammar, per-step labelling of the legal next symbols.

    Parameters
    ----------
    n_train : int, default=500
        Training strings (``random_state=0``).
    n_test : int, default=1000
        Fresh strings (``random_state=test_seed``); those that also occur
        in the training set are dropped.
    test_seed : int, default=1
        Seed of the test strings (``choose_defaults.py`` validates on
        seed 2).

    Returns
    -------
    task : Task
        Multi-hot targets at every step, scored by the fraction of test
        strings solved.
    """
    X_train, y_train = _drop_last_step(*make_embedded_reber(n_train, random_state=0))
    X_all, y_all = _drop_last_step(*make_embedded_reber(n_test, random_state=test_seed))
    seen = {x.argmax(axis=1).tobytes() for x in X_train}
    keep = [i for i, x in enumerate(X_all) if x.argmax(axis=1).tobytes() not in seen]
    X_test, y_test = [X_all[i] for i in keep], [y_all[i] for i in keep]
    return Task(
        "reber",
        X_train,
        y_train,
        X_test,
        y_test,
        "regressor",
        output="sequence",
        metric="solved",
        description=f"{n_train}/{len(X_test)} strings (unseen), next-symbol sets",
    )


def make_adding_task(n_train=500, n_test=1000, n_steps=50, test_seed=1):
    """The adding problem: sum of the two marked values, read at the end.

    Parameters
    ----------
    n_train, n_test : int
        Training (``random_state=0``) and test (``random_state=test_seed``)
        sequences.
    n_steps : int, default=50
        Length of every sequence.
    test_seed : int, default=1
        Seed of the test sequences.

    Returns
    -------
    task : Task
    """
    X_train, y_train = make_adding_problem(n_train, n_steps, random_state=0)
    X_test, y_test = make_adding_problem(n_test, n_steps, random_state=test_seed)
    return Task(
        "adding",
        X_train,
        y_train,
        X_test,
        y_test,
        "regressor",
        metric="nrmse",
        description=f"{n_train}/{n_test} sequences of {n_steps} steps",
    )


def make_xor_task(n_train=1000, n_test=1000, n_steps=20, delay=5, test_seed=1):
    """Delayed XOR of the last bit and the bit ``delay`` steps before it.

    Parameters
    ----------
    n_train, n_test : int
        Training (``random_state=0``) and test (``random_state=test_seed``)
        sequences.
    n_steps, delay : int
        Sequence length and delay of the second operand.
    test_seed : int, default=1
        Seed of the test sequences.

    Returns
    -------
    task : Task
        Univariate sequences as arrays of shape ``(n, n_steps, 1)``.
    """
    X_train, y_train = make_delayed_xor(n_train, n_steps, delay=delay, random_state=0)
    X_test, y_test = make_delayed_xor(
        n_test, n_steps, delay=delay, random_state=test_seed
    )
    return Task(
        "xor",
        X_train[:, :, None],
        y_train,
        X_test[:, :, None],
        y_test,
        "classifier",
        description=f"{n_train}/{n_test} sequences of {n_steps} bits, delay {delay}",
    )


def make_mackey_glass_task(
    n_series=2000, n_train_steps=1500, window=50, train_stride=5, test_stride=1
):
    """Mackey-Glass windows: the next value from the last ``window`` values.

    Parameters
    ----------
    n_series : int, default=2000
        Length of the series (tau 17, ``random_state=0``).
    n_train_steps : int, default=1500
        The first steps, whose windows (inputs and target) train; the test
        windows read and predict only later steps.
    window : int, default=50
        Steps read per prediction.
    train_stride, test_stride : int
        Steps between the starts of consecutive windows.

    Returns
    -------
    task : Task
        The series standardised by the statistics of its training part.
    """
    x = make_mackey_glass(n_series, tau=17.0, random_state=0)
    x = (x - x[:n_train_steps].mean()) / x[:n_train_steps].std()

    def windows(part, stride):
        starts = np.arange(0, len(part) - window, stride)
        X = np.stack([part[s : s + window] for s in starts])[:, :, None]
        return X, part[starts + window]

    X_train, y_train = windows(x[:n_train_steps], train_stride)
    X_test, y_test = windows(x[n_train_steps:], test_stride)
    return Task(
        "mackey_glass",
        X_train,
        y_train,
        X_test,
        y_test,
        "regressor",
        metric="nrmse",
        description=(
            f"{len(X_train)}/{len(X_test)} windows of {window} steps -> next value"
        ),
    )


def load_task(name, sizes=None):
    """Load one set of the development suite.

    Parameters
    ----------
    name : str
        Key in :data:`SETS`.
    sizes : dict or None, default=None
        Keyword arguments of a generated task's maker; None takes
        ``TASK_SIZES[name]``.

    Returns
    -------
    task : Task
    """
    if name == "japanese_vowels":
        return load_japanese_vowels_task()
    if name in UCR_NAMES:
        return load_ucr_task(name)
    makers = {
        "reber": make_reber_task,
        "adding": make_adding_task,
        "xor": make_xor_task,
        "mackey_glass": make_mackey_glass_task,
    }
    if name not in makers:
        raise ValueError(f"unknown set {name!r}; choose from {SETS}")
    return makers[name](**(TASK_SIZES[name] if sizes is None else sizes))


def load_suite(sets=SETS, sizes=None):
    """Load the development suite.

    Parameters
    ----------
    sets : sequence of str, default=SETS
        Which sets; the UCR ones need aeon.
    sizes : dict of str to dict or None, default=None
        Sizes of generated tasks that replace ``TASK_SIZES`` (for example
        ``QUICK_TASK_SIZES``).

    Returns
    -------
    suite : dict of str to Task
    """
    sizes = sizes or {}
    return {name: load_task(name, sizes.get(name)) for name in sets}


def load_stream(n_steps=3000, tau=17.0, random_state=0):
    """The Mackey-Glass stream, standardised by the statistics of its first half.

    Parameters
    ----------
    n_steps : int, default=3000
        Length of the series.
    tau : float, default=17.0
        Delay of the equation.
    random_state : int, default=0
        Seed of the series' initial history.

    Returns
    -------
    x : ndarray of shape (n_steps,)
    """
    x = make_mackey_glass(n_steps, tau=tau, random_state=random_state)
    first = x[: n_steps // 2]
    return (x - first.mean()) / first.std()


# --------------------------------------------------------------------------
# scores


def nrmse(y_true, y_pred):
    """Root mean squared error over the standard deviation of ``y_true``.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)

    Returns
    -------
    nrmse : float
        1 for a constant prediction at the mean of ``y_true``.
    """
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)) / y_true.std())


def score(task, y_pred):
    """Test score of predictions for ``task.X_test``.

    Parameters
    ----------
    task : Task
    y_pred : array-like or list of ndarray
        Labels (classification), values, or per-step scores (``solved``).

    Returns
    -------
    score : float
        ``accuracy``: fraction of correct labels. ``solved``: fraction of
        sequences whose every step has exactly the legal targets above 0.5.
        ``nrmse``: see :func:`nrmse`.
    """
    if task.metric == "accuracy":
        return float(np.mean(np.asarray(y_pred) == np.asarray(task.y_test)))
    if task.metric == "solved":
        return float(
            np.mean(
                [np.all((s > 0.5) == (t > 0.5)) for s, t in zip(y_pred, task.y_test)]
            )
        )
    return nrmse(task.y_test, y_pred)


# --------------------------------------------------------------------------
# skrtrl


def make_skrtrl(task, seed, params=None):
    """The skrtrl estimator of a task at its defaults.

    Parameters
    ----------
    task : Task
    seed : int
        ``random_state``.
    params : dict or None, default=None
        Applied with ``set_params`` on top of the defaults. ``pooling`` is
        left out for per-step targets (it reads a target per sequence).

    Returns
    -------
    estimator : RTRLClassifier or RTRLRegressor
    """
    cls = RTRLClassifier if task.estimator == "classifier" else RTRLRegressor
    kwargs = {"random_state": seed}
    if task.output == "sequence":
        kwargs["output"] = "sequence"
    est = cls(**kwargs)
    params = dict(params or {})
    if task.output == "sequence":
        params.pop("pooling", None)
    return est.set_params(**params)


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def fit_skrtrl(task, seed, params=None):
    """Fit skrtrl on the training data and score it on the test data.

    Parameters
    ----------
    task : Task
    seed : int
    params : dict or None, default=None
        See :func:`make_skrtrl`.

    Returns
    -------
    result : dict
        ``score``, ``fit_seconds`` (wall), ``fit_cpu_seconds``, ``epochs``.
    """
    est = make_skrtrl(task, seed, params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        _, wall, cpu = _timed(lambda: est.fit(task.X_train, task.y_train))
    return dict(
        score=score(task, est.predict(task.X_test)),
        fit_seconds=wall,
        fit_cpu_seconds=cpu,
        epochs=int(est.n_iter_),
    )


# --------------------------------------------------------------------------
# torch GRU trained by BPTT


def _as_padded(X, torch):
    """Sequences -> zero-padded float32 tensor (n, T_max, d) and lengths."""
    seqs = [np.asarray(x, dtype=np.float32) for x in X]
    lengths = np.array([len(x) for x in seqs])
    padded = np.zeros((len(seqs), lengths.max(), seqs[0].shape[1]), np.float32)
    for i, x in enumerate(seqs):
        padded[i, : len(x)] = x
    return torch.from_numpy(padded), torch.from_numpy(lengths)


def _gru_net(n_features, n_outputs, n_hidden, every_step):
    """``nn.GRU`` then ``nn.Linear``, on the last valid step or every step."""
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    class GRUNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(n_features, n_hidden, batch_first=True)
            self.linear = nn.Linear(n_hidden, n_outputs)

        def forward(self, x, lengths):
            equal = bool((lengths == x.shape[1]).all())
            if equal:
                out, h = self.gru(x)
            else:
                packed = pack_padded_sequence(
                    x, lengths, batch_first=True, enforce_sorted=False
                )
                out, h = self.gru(packed)
                if every_step:
                    out, _ = pad_packed_sequence(
                        out, batch_first=True, total_length=x.shape[1]
                    )
            if every_step:
                return self.linear(out)
            # h[-1] is each sequence's state after its own last step.
            return self.linear(h[-1])

    return GRUNet()


def fit_torch_gru(
    task,
    seed,
    *,
    n_hidden=32,
    epochs=100,
    learning_rate=3e-3,
    batch_size=16,
    clip_norm=1.0,
    threads=1,
):
    """Train ``nn.GRU(n_hidden)`` + linear readout by BPTT and score it.

    Adam, shuffled minibatches, gradient norm clipped before every update,
    a fixed number of epochs. Cross-entropy for classification, mean
    squared error for regression (over the valid steps of every sequence
    for per-step targets). Variable-length sequences are zero-padded and
    packed, so every sequence's readout uses its own last step.

    Parameters
    ----------
    task : Task
    seed : int
        Seeds the initialisation and the shuffling.
    n_hidden, epochs, learning_rate, batch_size, clip_norm : number
        See :data:`TORCH_SETTINGS`.
    threads : int, default=1
        ``torch.set_num_threads``.

    Returns
    -------
    result : dict
        ``score``, ``fit_seconds`` (wall), ``fit_cpu_seconds``, ``epochs``.
    """
    import torch

    torch.set_num_threads(threads)
    every_step = task.output == "sequence"
    classify = task.estimator == "classifier"

    def train():
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        X, lengths = _as_padded(task.X_train, torch)
        if classify:
            classes = np.unique(task.y_train)
            y = torch.from_numpy(np.searchsorted(classes, task.y_train))
            n_out = len(classes)
        elif every_step:
            y, _ = _as_padded(task.y_train, torch)
            n_out = y.shape[2]
        else:
            y = torch.as_tensor(
                np.asarray(task.y_train, np.float32).reshape(len(X), -1)
            )
            n_out = y.shape[1]
        net = _gru_net(X.shape[2], n_out, n_hidden, every_step)
        optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
        for _ in range(epochs):
            order = torch.randperm(len(X), generator=generator)
            for start in range(0, len(X), batch_size):
                idx = order[start : start + batch_size]
                lb = lengths[idx]
                t_max = int(lb.max())
                out = net(X[idx, :t_max], lb)
                if classify:
                    loss = torch.nn.functional.cross_entropy(out, y[idx])
                elif every_step:
                    mask = (torch.arange(t_max)[None, :] < lb[:, None]).float()
                    err = ((out - y[idx, :t_max]) ** 2).mean(dim=2)
                    loss = (err * mask).sum() / mask.sum()
                else:
                    loss = torch.nn.functional.mse_loss(out, y[idx])
                optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), clip_norm)
                optimizer.step()
        return net, (classes if classify else None)

    (net, classes), wall, cpu = _timed(train)
    with torch.no_grad():
        X, lengths = _as_padded(task.X_test, torch)
        out = net(X, lengths).numpy()
    if classify:
        y_pred = classes[out.argmax(axis=1)]
    elif every_step:
        y_pred = [o[:n] for o, n in zip(out, lengths.numpy())]
    else:
        y_pred = out[:, 0]
    return dict(
        score=score(task, y_pred), fit_seconds=wall, fit_cpu_seconds=cpu, epochs=epochs
    )


# --------------------------------------------------------------------------
# stream


def prequential_skrtrl(x, seed, params=None, block=100):
    """Test-then-train one-step forecasts of ``x`` by a stateful regressor.

    Parameters
    ----------
    x : ndarray of shape (n_steps,)
        The stream; row t reads ``x[t]`` and predicts ``x[t + 1]``.
    seed : int
        ``random_state``.
    params : dict or None, default=None
        Applied with ``set_params``, except ``pooling``.
    block : int, default=100
        Rows per ``predict_partial_fit`` call (the predictions do not
        depend on it).

    Returns
    -------
    y_pred : ndarray of shape (n_steps - 1,)
        ``y_pred[t]`` forecasts ``x[t + 1]``, made before learning from it.
    seconds : float
        Wall-clock time of the whole pass.
    """
    params = {k: v for k, v in (params or {}).items() if k != "pooling"}
    est = RTRLRegressor(stateful=True, random_state=seed).set_params(**params)
    X, y = x[:-1, None], x[1:]
    start = time.perf_counter()
    preds = [
        est.predict_partial_fit(X[i : i + block], y[i : i + block])
        for i in range(0, len(X), block)
    ]
    return np.concatenate(preds), time.perf_counter() - start


def prequential_sgd_ar(x, order=10, seed=0):
    """Test-then-train one-step forecasts by a linear AR model on ``SGDRegressor``.

    Parameters
    ----------
    x : ndarray of shape (n_steps,)
        The stream.
    order : int, default=10
        Lagged values per prediction: ``x[t - order + 1 : t + 1]`` forecast
        ``x[t + 1]``.
    seed : int, default=0
        ``random_state`` of ``SGDRegressor`` (otherwise at its defaults).

    Returns
    -------
    y_pred : ndarray of shape (n_steps - 1,)
        ``y_pred[t]`` forecasts ``x[t + 1]``; NaN for ``t < order - 1``
        (too few lags), 0 for the first forecast (no model yet).
    seconds : float
        Wall-clock time of the whole pass.
    """
    model = SGDRegressor(random_state=seed)
    y_pred = np.full(len(x) - 1, np.nan)
    start = time.perf_counter()
    for t in range(order - 1, len(x) - 1):
        lags = x[t - order + 1 : t + 1][None, :]
        y_pred[t] = model.predict(lags)[0] if t > order - 1 else 0.0
        model.partial_fit(lags, x[t + 1 : t + 2])
    return y_pred, time.perf_counter() - start


def run_stream(seeds, params=None, n_steps=3000, tau=17.0, order=10, block=100):
    """The prequential stream comparison, skrtrl and the AR(10) model per seed.

    Parameters
    ----------
    seeds : sequence of int
    params : dict or None, default=None
        See :func:`prequential_skrtrl`.
    n_steps, tau, order, block : number
        See :data:`STREAM`.

    Returns
    -------
    rows : list of dict
        Per seed and model: NRMSE over the second half, and seconds.
    """
    x = load_stream(n_steps, tau)
    scored = slice(n_steps // 2 - 1, None)  # forecasts of x[n_steps // 2:]
    target = x[1:][scored]
    rows = [
        dict(
            model="persistence",
            seed=None,
            nrmse=nrmse(target, x[:-1][scored]),
            seconds=0.0,
        )
    ]
    for seed in seeds:
        pred, seconds = prequential_skrtrl(x, seed, params, block)
        rows.append(
            dict(
                model="skrtrl",
                seed=seed,
                nrmse=nrmse(target, pred[scored]),
                seconds=seconds,
            )
        )
        pred, seconds = prequential_sgd_ar(x, order, seed)
        rows.append(
            dict(
                model=f"SGD AR({order})",
                seed=seed,
                nrmse=nrmse(target, pred[scored]),
                seconds=seconds,
            )
        )
        print(
            f"  stream seed {seed}: skrtrl {rows[-2]['nrmse']:.4f} "
            f"({rows[-2]['seconds']:.1f} s), {rows[-1]['model']} "
            f"{rows[-1]['nrmse']:.4f} ({rows[-1]['seconds']:.1f} s)",
            flush=True,
        )
    return rows


# --------------------------------------------------------------------------
# the comparison


def compare(suite, seeds, params=None, torch_threads=1):
    """Fit skrtrl and the torch GRU on every set, seed by seed, interleaved.

    Parameters
    ----------
    suite : dict of str to Task
    seeds : sequence of int
    params : dict or None, default=None
        See :func:`make_skrtrl`.
    torch_threads : int or None, default=1
        Threads of torch; None leaves torch out.

    Returns
    -------
    fits : list of dict
        One per set, seed and model.
    """
    fits = []
    for name, task in suite.items():
        for k, seed in enumerate(seeds):
            sides = ["skrtrl", "torch"] if torch_threads is not None else ["skrtrl"]
            if k % 2:
                sides.reverse()
            for side in sides:
                if side == "skrtrl":
                    result = fit_skrtrl(task, seed, params)
                else:
                    result = fit_torch_gru(
                        task, seed, threads=torch_threads, **TORCH_SETTINGS
                    )
                fits.append(dict(set=name, seed=seed, model=side, **result))
                print(
                    f"  {name:16s} seed {seed} {side:6s}: {task.metric} "
                    f"{result['score']:.4f}, {result['epochs']} epochs, "
                    f"{result['fit_seconds']:.1f} s",
                    flush=True,
                )
    return fits


def summarise(suite, fits):
    """Mean score and median fit seconds per set and model.

    Parameters
    ----------
    suite : dict of str to Task
    fits : list of dict
        From :func:`compare`.

    Returns
    -------
    rows : list of dict
        One per set: both models' figures and ``ok`` (skrtrl at least as
        accurate and faster; None without torch).
    """
    rows = []
    for name, task in suite.items():
        row = dict(set=name, metric=task.metric, description=task.description)
        for side in ("skrtrl", "torch"):
            mine = [f for f in fits if f["set"] == name and f["model"] == side]
            if not mine:
                row[side] = None
                continue
            row[side] = dict(
                score=float(np.mean([f["score"] for f in mine])),
                fit_seconds=float(np.median([f["fit_seconds"] for f in mine])),
                epochs=float(np.mean([f["epochs"] for f in mine])),
            )
        ours, theirs = row["skrtrl"], row["torch"]
        row["ok"] = None
        if theirs is not None:
            sign = 1 if task.higher_is_better else -1
            row["ok"] = bool(
                sign * (ours["score"] - theirs["score"]) >= 0
                and ours["fit_seconds"] < theirs["fit_seconds"]
            )
        rows.append(row)
    return rows


def print_table(rows, stream_rows):
    """Print the comparison table (Markdown) and the stream lines."""
    print()
    print(
        "| set | score | skrtrl | GRU BPTT | skrtrl s | GRU s | GRU s / skrtrl s "
        "| skrtrl epochs | at least as accurate and faster |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for row in rows:
        ours, theirs = row["skrtrl"], row["torch"]
        if theirs is None:
            t_score = t_sec = ratio = "-"
        else:
            t_score = f"{theirs['score']:.4f}"
            t_sec = f"{theirs['fit_seconds']:.1f}"
            ratio = f"{theirs['fit_seconds'] / ours['fit_seconds']:.2f}"
        ok = {True: "yes", False: "no", None: "-"}[row["ok"]]
        print(
            f"| {row['set']} | {row['metric']} | {ours['score']:.4f} | {t_score} "
            f"| {ours['fit_seconds']:.1f} | {t_sec} | {ratio} "
            f"| {ours['epochs']:.0f} | {ok} |"
        )
    if stream_rows:
        print()
        print("| stream model | NRMSE, second half (mean) | seconds (median) |")
        print("| --- | ---: | ---: |")
        for model in dict.fromkeys(r["model"] for r in stream_rows):
            mine = [r for r in stream_rows if r["model"] == model]
            print(
                f"| {model} | {np.mean([r['nrmse'] for r in mine]):.4f} "
                f"| {np.median([r['seconds'] for r in mine]):.1f} |"
            )


def _torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv=None):
    """Command line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", choices=SETS, default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"seed 0, sets {' '.join(QUICK_SETS)} (less data) and the stream",
    )
    parser.add_argument(
        "--params",
        type=json.loads,
        default=None,
        help="JSON dict applied to the skrtrl estimators with set_params",
    )
    parser.add_argument("--no-stream", action="store_true")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--json", help="write every fit's figures to this file")
    args = parser.parse_args(argv)
    sets = args.sets or (QUICK_SETS if args.quick else SETS)
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    torch_threads = args.torch_threads if _torch_available() else None

    started = datetime.datetime.now(datetime.timezone.utc)
    load_start = os.getloadavg()
    print(f"{started:%Y-%m-%d %H:%M} UTC, skrtrl from {skrtrl.__file__}")
    print(f"load average at start: {load_start[0]:.2f} {load_start[1]:.2f}")
    print(f"skrtrl params on top of the defaults: {args.params or {}}")
    if torch_threads is None:
        print("torch not installed: skrtrl only")
    wall = time.perf_counter()
    suite = load_suite(sets, QUICK_TASK_SIZES if args.quick else None)
    fits = compare(suite, seeds, args.params, torch_threads)
    rows = summarise(suite, fits)
    stream_rows = [] if args.no_stream else run_stream(seeds, args.params, **STREAM)
    print_table(rows, stream_rows)
    load_end = os.getloadavg()
    total = time.perf_counter() - wall
    print(f"\nload average at end: {load_end[0]:.2f} {load_end[1]:.2f}")
    print(f"total {total:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                dict(
                    started=f"{started:%Y-%m-%dT%H:%M}Z",
                    load_average=dict(start=load_start, end=load_end),
                    total_seconds=total,
                    params=args.params,
                    seeds=seeds,
                    torch_settings=TORCH_SETTINGS,
                    torch_threads=torch_threads,
                    task_sizes=TASK_SIZES,
                    stream_settings=STREAM,
                    python=platform.python_version(),
                    skrtrl=skrtrl.__version__,
                    summary=rows,
                    fits=fits,
                    stream=stream_rows,
                ),
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
