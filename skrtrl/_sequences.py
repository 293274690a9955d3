"""Sequence data sets: validation, packing and unpacking.

A *sequence data set* reaches the estimators in one of three forms:

* a 2D array ``(n_sequences, n_timesteps)``: fixed-length univariate
  sequences, one per row (the view scikit-learn's tools use: the columns are
  the time steps);
* a 3D array ``(n_sequences, n_timesteps, n_features)``;
* a list of 2D arrays ``(n_timesteps_i, n_features)`` of varying lengths
  (1D arrays are read as univariate sequences).

Other libraries' layouts (aeon's and sktime's channels first, tslearn's NaN
padding, long pandas tables) are converted by the public functions of
``skrtrl.sequences``, never here: this layer only warns when a 3D array's
shape suggests channels first, and names the conversion in its errors.

All of them are packed into one layout, the only one the kernels know:

``values``
    C-contiguous ``(n_steps_total, n_features)`` array holding the steps of
    every sequence, each sequence's steps contiguous and in time order.
``offsets``
    ``(n_sequences + 1,)`` int array; sequence ``s`` occupies rows
    ``offsets[s]:offsets[s + 1]``.

Sequence-major packing keeps each sequence's inputs contiguous for the
kernel's per-sequence loops and makes per-step outputs come back in the same
layout, so unpacking is a split at ``offsets``.
"""

import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np
import sklearn
from sklearn.utils import check_array
from sklearn.utils.validation import _check_sample_weight, validate_data

FLOAT_DTYPES = (np.float64, np.float32)


@dataclass(frozen=True)
class PackedSequences:
    """Sequences packed into one contiguous buffer.

    Attributes
    ----------
    values : ndarray of shape (n_steps_total, n_features)
        The time steps of all sequences, sequence after sequence.
    offsets : ndarray of shape (n_sequences + 1,), dtype intp
        Start row of each sequence in ``values``, plus the total at the end.
    kind : {"2d", "3d", "list", "stream"}
        The form the data came in, used to give outputs the same form.
    """

    values: np.ndarray
    offsets: np.ndarray
    kind: str

    @property
    def n_sequences(self):
        return self.offsets.shape[0] - 1

    @property
    def lengths(self):
        return np.diff(self.offsets)

    @property
    def n_features(self):
        return self.values.shape[1]

    @property
    def starts(self):
        return self.offsets[:-1]

    def take(self, indices):
        """The sequences at ``indices``, packed anew in that order."""
        indices = np.asarray(indices, dtype=np.intp)
        lengths = self.lengths[indices]
        offsets = np.zeros(indices.shape[0] + 1, dtype=np.intp)
        np.cumsum(lengths, out=offsets[1:])
        rows = _gather_rows(self.offsets, indices, lengths)
        return PackedSequences(self.values[rows], offsets, self.kind)


@dataclass(frozen=True)
class TrainingBatch:
    """The sequences of one kernel call and their targets, travelling together.

    Attributes
    ----------
    values : ndarray of shape (n_steps_total, n_features)
        Packed inputs (``PackedSequences.values``).
    targets : ndarray of shape (n_targets_total, n_outputs)
        Packed targets (one-hot for classifiers).
    x_start, y_start : ndarray of shape (n_sequences,), dtype intp
        First row of each sequence in ``values`` and in ``targets``.
    lengths : ndarray of shape (n_sequences,), dtype intp
        Sequence lengths.
    target_weight : ndarray of shape (n_targets_total,)
        Weight of each row of ``targets``.
    every_step : bool
        Targets at every step (True) or only at the last (False).
    """

    values: np.ndarray
    targets: np.ndarray
    x_start: np.ndarray
    y_start: np.ndarray
    lengths: np.ndarray
    target_weight: np.ndarray
    every_step: bool

    def kernel_args(self):
        """The fields in the order the kernels take them."""
        return (
            self.values,
            self.targets,
            self.x_start,
            self.y_start,
            self.lengths,
            self.target_weight,
        )

    def with_values(self, values, x_start):
        """The same batch over other inputs (output feedback augments them)."""
        return TrainingBatch(
            values,
            self.targets,
            x_start,
            self.y_start,
            self.lengths,
            self.target_weight,
            self.every_step,
        )


@dataclass(frozen=True)
class TrainingSet:
    """Validated training data in the kernels' layout; cuts it into batches.

    Attributes
    ----------
    packed : PackedSequences
        The inputs (a stream is one sequence).
    targets : ndarray of shape (n_targets_total, n_outputs)
        Encoded targets: one row per sequence, or per step.
    weights : ndarray of shape (n_sequences,)
        Weight of each sequence (of a stream: the sum of its row weights).
    row_weights : ndarray of shape (n_targets_total,)
        Weight of each target row.
    every_step : bool
        Targets at every step (True) or only at the last (False).
    """

    packed: PackedSequences
    targets: np.ndarray
    weights: np.ndarray
    row_weights: np.ndarray
    every_step: bool

    def batch(self, idx):
        """The :class:`TrainingBatch` of the sequences ``idx``, in that order."""
        idx = np.asarray(idx, dtype=np.intp)
        x_start = np.ascontiguousarray(self.packed.offsets[idx])
        y_start = x_start if self.every_step else np.ascontiguousarray(idx)
        return TrainingBatch(
            self.packed.values,
            self.targets,
            x_start,
            y_start,
            np.ascontiguousarray(self.packed.lengths[idx]),
            self.row_weights,
            self.every_step,
        )


def _gather_rows(offsets, indices, lengths):
    """Row numbers of the steps of the sequences ``indices``, in order."""
    total = int(lengths.sum())
    starts = np.repeat(offsets[indices], lengths)
    within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return starts + within


def _offsets_from_lengths(lengths):
    offsets = np.zeros(len(lengths) + 1, dtype=np.intp)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def _common_float_dtype(arrays):
    """float32 when every array is float32, float64 otherwise."""
    if arrays and all(getattr(a, "dtype", None) == np.float32 for a in arrays):
        return np.float32
    return np.float64


def _is_sequence_list(X):
    """True when X is a list of sequences rather than a nested-list array.

    A list of 2D arrays is always a list of sequences, so outputs come back
    as a list whatever the lengths. A list of equal-length 1D rows is a 2D
    array (the scikit-learn view); 1D rows of different lengths are
    univariate sequences.
    """
    if not isinstance(X, list | tuple):
        return False
    if len(X) == 0:
        return False
    if any(np.ndim(x) == 2 for x in X):
        return True
    shapes = {np.shape(x) for x in X}
    return len(shapes) > 1


def check_sequences(estimator, X, *, reset, dtype=FLOAT_DTYPES):
    """Validate X in any of the three forms and pack it.

    For 2D input this goes through ``validate_data`` so that
    ``n_features_in_`` and ``feature_names_in_`` follow scikit-learn's
    conventions (columns are time steps). For 3D and list input,
    ``n_features_in_`` is the number of features per time step.

    Parameters
    ----------
    estimator : estimator instance
        Receives ``n_features_in_`` (and ``_input_kind``) when ``reset``.
    X : array-like or list of array-like
        The sequences.
    reset : bool
        Whether this call defines the input layout (fit, first partial_fit).
    dtype : dtype or tuple of dtypes
        Accepted floating dtypes; float32 stays float32 when allowed.

    Returns
    -------
    packed : PackedSequences
    """
    if X is None:
        raise ValueError(
            f"{type(estimator).__name__} needs sequences X; got None instead."
        )
    # np.asarray([]) is a 1D array, which would be reported as a shape
    # problem; name the actual one.
    if isinstance(X, list | tuple) and len(X) == 0:
        raise ValueError(
            f"{type(estimator).__name__} needs at least one sequence; got an "
            f"empty {type(X).__name__}."
        )
    if _is_sequence_list(X):
        return _check_sequence_list(estimator, X, reset=reset, dtype=dtype)

    ndim = getattr(X, "ndim", None)
    if ndim is None:
        X = np.asarray(X)
        ndim = X.ndim
    if ndim == 3:
        return _check_3d(estimator, X, reset=reset, dtype=dtype)
    if ndim == 2 or ndim < 2 or ndim > 3:
        fitted_kind = getattr(estimator, "_input_kind", "2d")
        if ndim == 2 and not reset and fitted_kind != "2d":
            # A model trained on 3D or list data reads a 2D array as
            # univariate sequences: only the per-step feature count matters.
            arr = check_array(X, dtype=dtype, ensure_2d=True)
            _check_step_features(estimator, 1)
            return _pack_2d(arr)
        arr = validate_data(estimator, X, reset=reset, dtype=dtype, ensure_2d=True)
        if reset:
            estimator._input_kind = "2d"
        return _pack_2d(arr)


def check_stream(estimator, X, *, reset, dtype=FLOAT_DTYPES):
    """Validate the rows of a stream: X of shape (n_steps, n_features).

    The rows are consecutive time steps of one sequence, so this is the
    ordinary scikit-learn view (rows are samples, columns features) and goes
    through ``validate_data``.

    Returns
    -------
    packed : PackedSequences
        One sequence holding all the rows, ``kind="stream"``.
    """
    arr = validate_data(estimator, X, reset=reset, dtype=dtype, ensure_2d=True)
    if reset:
        estimator._input_kind = "stream"
    offsets = np.array([0, arr.shape[0]], dtype=np.intp)
    return PackedSequences(np.ascontiguousarray(arr), offsets, "stream")


def _rows_as_sequences(packed):
    """The same steps seen as one-step sequences (for per-row weights)."""
    n_rows = packed.values.shape[0]
    return PackedSequences(
        packed.values, np.arange(n_rows + 1, dtype=np.intp), packed.kind
    )


def _pack_2d(arr):
    n_seq, n_steps = arr.shape
    values = np.ascontiguousarray(arr.reshape(n_seq * n_steps, 1))
    offsets = np.arange(0, n_seq * n_steps + 1, n_steps, dtype=np.intp)
    return PackedSequences(values, offsets, "2d")


def _check_3d(estimator, X, *, reset, dtype):
    try:
        arr = check_array(X, dtype=dtype, allow_nd=True, ensure_2d=False)
    except ValueError as exc:
        if "NaN" not in str(exc):
            raise
        raise ValueError(
            f"{exc} If NaN pads the end of shorter sequences (as in tslearn's "
            "datasets), pass skrtrl.sequences.from_nan_padded(X) instead."
        ) from exc
    n_seq, n_steps, n_features = arr.shape
    if n_steps == 0:
        raise ValueError(
            f"Found array with 0 time steps (shape={arr.shape}) while a "
            "minimum of 1 is required."
        )
    if n_features == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={arr.shape}) while a "
            "minimum of 1 is required."
        )
    if reset:
        _warn_if_channel_first(
            n_steps,
            n_features,
            f"its shape {arr.shape} reads as {n_seq} sequences of {n_steps} time "
            f"step(s) with {n_features} features each",
        )
    try:
        _set_or_check_step_features(estimator, n_features, reset, kind="3d")
    except ValueError as exc:
        if n_steps != _expected_step_features(estimator):
            raise
        raise ValueError(
            f"{exc} Its {n_steps} time steps match that count: if X is "
            "channel-first (n_cases, n_channels, n_timepoints), pass "
            "skrtrl.sequences.from_channels_first(X)."
        ) from exc
    values = np.ascontiguousarray(arr.reshape(n_seq * n_steps, n_features))
    offsets = np.arange(0, n_seq * n_steps + 1, n_steps, dtype=np.intp)
    return PackedSequences(values, offsets, "3d")


def _check_sequence_list(estimator, X, *, reset, dtype):
    if isinstance(dtype, tuple | list):
        target = _common_float_dtype(
            [x for x in X if hasattr(x, "dtype")]
            if all(hasattr(x, "dtype") for x in X)
            else []
        )
        if target not in dtype:
            target = dtype[0]
    else:
        target = dtype
    arrays = []
    n_features = None
    for i, x in enumerate(X):
        if np.ndim(x) not in (1, 2):
            raise ValueError(
                f"Sequence {i} must be a 2D array (n_timesteps, n_features) "
                f"or a 1D array (n_timesteps,); got {np.ndim(x)} dimensions."
            )
        arr = check_array(
            x,
            dtype=target,
            ensure_2d=False,
            ensure_min_samples=0,
            input_name=f"sequence {i}",
        )
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        if arr.shape[0] == 0:
            raise ValueError(f"Sequence {i} has no time steps; each needs >= 1.")
        if arr.shape[1] == 0:
            raise ValueError(f"Sequence {i} has 0 features; each needs >= 1.")
        if n_features is None:
            n_features = arr.shape[1]
        elif arr.shape[1] != n_features:
            hint = ""
            if arr.shape[0] == arrays[0].shape[0]:
                hint = (
                    " Both have the same number of time steps: if these are "
                    "(n_channels, n_timepoints) arrays, as aeon and sktime use, "
                    "pass skrtrl.sequences.from_channels_first(X) instead."
                )
            raise ValueError(
                f"All sequences must have the same number of features: "
                f"sequence 0 has {n_features}, sequence {i} has {arr.shape[1]}." + hint
            )
        arrays.append(arr)
    shapes = {a.shape for a in arrays}
    if reset and len(shapes) == 1 and np.ndim(X[0]) == 2:
        (n_steps, _) = shapes.pop()
        _warn_if_channel_first(
            n_steps,
            n_features,
            f"each of its {len(arrays)} arrays reads as {n_steps} time step(s) "
            f"with {n_features} features",
        )
    _set_or_check_step_features(estimator, n_features, reset, kind="list")
    lengths = np.array([a.shape[0] for a in arrays], dtype=np.intp)
    values = np.ascontiguousarray(np.concatenate(arrays, axis=0))
    return PackedSequences(values, _offsets_from_lengths(lengths), "list")


#: A 3D array with at least this many features, and this many times more
#: features than time steps, is more likely aeon's or sktime's channel-first
#: (n_cases, n_channels, n_timepoints) than a sequence data set: recurrent
#: nets are used on sequences longer than their feature vectors are wide.
#: The thresholds stay conservative, since legitimate data can look alike
#: (one-hot codes of a large vocabulary over a few steps).
_CHANNEL_FIRST_MIN_FEATURES = 16
_CHANNEL_FIRST_RATIO = 4

#: The start of the warning's message, for ``warnings.filterwarnings``.
CHANNEL_FIRST_WARNING = "X may be channel-first"


def _warn_if_channel_first(n_steps, n_features, reading):
    if not (
        n_features >= _CHANNEL_FIRST_MIN_FEATURES
        and n_features >= _CHANNEL_FIRST_RATIO * n_steps
    ):
        return
    warnings.warn(
        f"{CHANNEL_FIRST_WARNING}: {reading}. skrtrl expects (n_sequences, "
        "n_timesteps, n_features), time before features; aeon and sktime "
        "hand out (n_cases, n_channels, n_timepoints). Convert such data with "
        "skrtrl.sequences.from_channels_first(X) (lists of (n_channels, "
        "n_timepoints) arrays too); skrtrl never transposes by itself. If the "
        "layout is right, silence this with warnings.filterwarnings('ignore', "
        f"message='{CHANNEL_FIRST_WARNING}').",
        UserWarning,
        stacklevel=_caller_stacklevel(),
    )


def _caller_stacklevel():
    """The ``stacklevel`` that points a warning at the user's call.

    Counted for a ``warnings.warn`` in the function that calls this one: the
    first frame outside skrtrl and scikit-learn (whose ``_fit_context``
    wraps ``fit``), however deep the call went inside.
    """
    internal = (
        os.path.dirname(os.path.abspath(__file__)),
        os.path.dirname(os.path.abspath(sklearn.__file__)),
    )
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(internal):
        frame = frame.f_back
        level += 1
    return level


def _set_or_check_step_features(estimator, n_features, reset, kind):
    if reset:
        estimator.n_features_in_ = n_features
        estimator._input_kind = kind
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
        return
    _check_step_features(estimator, n_features)


def _expected_step_features(estimator):
    fitted_kind = getattr(estimator, "_input_kind", None)
    return 1 if fitted_kind == "2d" else estimator.n_features_in_


def _check_step_features(estimator, n_features):
    expected = _expected_step_features(estimator)
    if n_features != expected:
        raise ValueError(
            f"X has {n_features} features per time step, but "
            f"{type(estimator).__name__} is expecting {expected} features per "
            "time step as input."
        )


#: Targets are checked against the sequences, so an empty y is reported as
#: a count mismatch that names y, not as an array with "0 sample(s)".
_ANY_LENGTH = {"ensure_min_samples": 0}


def check_sequence_targets(y, packed, *, every_step, name="y"):
    """Validate targets against packed sequences.

    Parameters
    ----------
    y : array-like or list of array-like
        With ``every_step=False``: one target per sequence, shape
        (n_sequences,) or (n_sequences, n_outputs). With ``every_step=True``:
        one target per time step, shaped like the time axes of X (2D/3D array
        for array input, a list of arrays for list input).
    packed : PackedSequences
        The validated inputs.
    every_step : bool
        Whether targets are given per step.

    Returns
    -------
    y_packed : ndarray of shape (n_targets_total,) or (n_targets_total, k)
        One row per sequence, or per step laid out like ``packed.values``.
        The dtype is left to the caller (labels may be strings).
    """
    if y is None:
        raise ValueError("requires y to be passed, but the target y is None")
    n_seq = packed.n_sequences
    if not every_step:
        if isinstance(y, list | tuple) and len(y) and np.ndim(y[0]) > 1:
            raise ValueError(
                f"{name} must hold one target per sequence (output='last'); "
                "got a list of arrays. Use output='sequence' for per-step "
                "targets."
            )
        arr = check_array(
            y, ensure_2d=False, dtype=None, input_name=name, **_ANY_LENGTH
        )
        if arr.ndim not in (1, 2):
            raise ValueError(
                f"{name} must be 1D or 2D with output='last'; got {arr.ndim}D."
            )
        if arr.shape[0] != n_seq:
            raise ValueError(
                f"Found input variables with inconsistent numbers of samples: "
                f"[{n_seq}, {arr.shape[0]}] (X has {n_seq} sequences, {name} "
                f"has {arr.shape[0]} targets)."
            )
        return arr

    if packed.kind == "stream":
        arr = check_array(
            y, ensure_2d=False, dtype=None, input_name=name, **_ANY_LENGTH
        )
        n_rows = packed.values.shape[0]
        if arr.ndim not in (1, 2) or arr.shape[0] != n_rows:
            raise ValueError(
                f"A stream needs one target per row: X has {n_rows} rows, "
                f"{name} has shape {arr.shape}."
            )
        return arr

    lengths = packed.lengths
    if _is_sequence_list(y) or (isinstance(y, list | tuple) and packed.kind == "list"):
        if len(y) != n_seq:
            raise ValueError(
                f"X has {n_seq} sequences but {name} has {len(y)}: with "
                "output='sequence' give one target array per sequence."
            )
        parts = []
        for i, yi in enumerate(y):
            arr = check_array(
                yi,
                ensure_2d=False,
                dtype=None,
                input_name=f"{name}[{i}]",
                **_ANY_LENGTH,
            )
            if arr.ndim == 0 or arr.ndim > 2 or arr.shape[0] != lengths[i]:
                raise ValueError(
                    f"{name}[{i}] must have one target per time step: sequence "
                    f"{i} has {lengths[i]} steps, {name}[{i}] has shape "
                    f"{arr.shape}."
                )
            parts.append(arr)
        ndims = {p.ndim for p in parts}
        if len(ndims) > 1:
            raise ValueError(f"The target arrays in {name} mix 1D and 2D shapes.")
        if parts[0].ndim == 2 and len({p.shape[1] for p in parts}) > 1:
            raise ValueError(
                f"All target arrays in {name} need the same number of outputs."
            )
        return np.concatenate(parts, axis=0)

    # The shape is checked against X below (y of shape (n, 0) has the wrong
    # number of steps, not "0 features").
    arr = check_array(
        y,
        ensure_2d=False,
        allow_nd=True,
        dtype=None,
        input_name=name,
        ensure_min_features=0,
        **_ANY_LENGTH,
    )
    if packed.kind == "list":
        raise ValueError(
            f"X is a list of sequences, so {name} must be a list of per-step "
            "target arrays with output='sequence'."
        )
    n_steps = lengths[0] if n_seq else 0
    if arr.ndim not in (2, 3) or arr.shape[:2] != (n_seq, n_steps):
        raise ValueError(
            f"With output='sequence', {name} needs one target per time step, "
            f"shape ({n_seq}, {n_steps}) or ({n_seq}, {n_steps}, n_outputs); "
            f"got {arr.shape}."
        )
    if arr.ndim == 2:
        return arr.reshape(n_seq * n_steps)
    if arr.shape[2] == 0:
        raise ValueError(
            f"{name} has 0 outputs per time step (shape {arr.shape}); at least "
            "1 is required."
        )
    return arr.reshape(n_seq * n_steps, arr.shape[2])


def check_sequence_weights(sample_weight, packed, dtype):
    """One non-negative weight per sequence (ones when None)."""
    fake_X = np.empty((packed.n_sequences, 0))
    return _check_sample_weight(
        sample_weight, fake_X, dtype=dtype, ensure_non_negative=True
    )


def unpack_steps(values, packed):
    """Give per-step outputs the form of the input sequences.

    ``values`` has one row per time step, laid out like ``packed.values``;
    2D/3D input gets an array (n_sequences, n_timesteps[, k]) back, list input
    a list of arrays.
    """
    if packed.kind == "list":
        return np.split(values, packed.offsets[1:-1])
    if packed.kind == "stream":
        return values
    n_seq = packed.n_sequences
    n_steps = int(packed.lengths[0]) if n_seq else 0
    return values.reshape((n_seq, n_steps) + values.shape[1:])
