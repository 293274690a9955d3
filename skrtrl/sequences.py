"""Sequence data sets in the layouts of other time-series libraries.

skrtrl reads a 3D array as ``(n_sequences, n_timesteps, n_features)``, time
before features, as torch and tslearn do, and sequences of different lengths
as a list of ``(n_timesteps_i, n_features)`` arrays. Neighbouring libraries
store the same data otherwise:

* aeon and sktime put the channels first: ``(n_cases, n_channels,
  n_timepoints)`` arrays and lists of ``(n_channels, n_timepoints_i)``
  arrays (:func:`from_channels_first`, :func:`to_channels_first`);
* tslearn pads sequences of different lengths with trailing NaN into one
  3D array (:func:`from_nan_padded`, :func:`to_nan_padded`);
* pandas holds them as a long table, one row per time step, with a column
  naming the sequence and a column ordering its steps; sktime's
  ``pd-multiindex`` tables keep the two in index levels
  (:func:`from_long_table`, :func:`to_long_table`).

Each ``from_*`` function returns the data in skrtrl's layout, ready for
``fit`` and ``predict``; each ``to_*`` function gives per-step outputs
(``output="sequence"``) the other library's layout. They are plain functions
rather than an estimator parameter or a transformer: the estimators keep one
input contract (so ``n_features_in_``, pipelines and scikit-learn's checks
see one meaning of each shape), the conversion is visible where the data is
loaded, and the way back applies to predictions, which a transformer in a
pipeline never sees. The estimators never transpose by themselves; a 3D
array whose shape suggests channels first draws a warning instead.
"""

import numpy as np

__all__ = [
    "from_channels_first",
    "from_long_table",
    "from_nan_padded",
    "to_channels_first",
    "to_long_table",
    "to_nan_padded",
]


# -- aeon and sktime: channels first -------------------------------------------


def from_channels_first(X):
    """Turn channel-first sequences (aeon, sktime) into skrtrl's layout.

    Parameters
    ----------
    X : array-like of shape (n_cases, n_channels, n_timepoints) or list of \
array-like of shape (n_channels, n_timepoints_i)
        Equal-length collections as one 3D array, unequal-length ones as a
        list of 2D arrays, as aeon and sktime hand them out. A 2D array
        ``(n_cases, n_timepoints)`` (aeon's univariate layout) is already
        skrtrl's and comes back unchanged.

    Returns
    -------
    X_skrtrl : ndarray of shape (n_cases, n_timepoints, n_channels) or list \
of ndarray of shape (n_timepoints_i, n_channels)
        The same values with the time axis before the channel axis
        (C-contiguous copies, dtype kept); a list stays a list.

    See Also
    --------
    to_channels_first : The way back, for per-step outputs.

    Examples
    --------
    >>> import numpy as np
    >>> from skrtrl.sequences import from_channels_first
    >>> X_aeon = np.arange(12.0).reshape(2, 3, 2)   # 2 cases, 3 channels, 2 steps
    >>> X = from_channels_first(X_aeon)
    >>> X.shape
    (2, 2, 3)
    >>> X[0]                      # one row per time step, one column per channel
    array([[0., 2., 4.],
           [1., 3., 5.]])
    >>> [x.shape for x in from_channels_first([np.ones((3, 5)), np.ones((3, 7))])]
    [(5, 3), (7, 3)]
    """
    if _is_list(X, "X"):
        arrays = [np.asarray(x) for x in X]
        for i, x in enumerate(arrays):
            if x.ndim not in (1, 2):
                raise ValueError(
                    f"X[{i}] must be a 2D array (n_channels, n_timepoints) or a "
                    f"1D array (n_timepoints,); got shape {x.shape}."
                )
        return [np.ascontiguousarray(x.T) for x in arrays]
    X = _as_array(X, "X")
    if X.ndim == 2:
        return X
    if X.ndim != 3:
        raise ValueError(
            "X must be a 3D array (n_cases, n_channels, n_timepoints), a 2D array "
            "(n_cases, n_timepoints) or a list of 2D arrays (n_channels, "
            f"n_timepoints); got an array of shape {X.shape}."
        )
    return np.ascontiguousarray(X.transpose(0, 2, 1))


def to_channels_first(Y):
    """Give per-step outputs the channel-first layout of aeon and sktime.

    Parameters
    ----------
    Y : ndarray of shape (n_sequences, n_timesteps) or (n_sequences, \
n_timesteps, n_outputs), or list of ndarray
        Per-step outputs as skrtrl's ``predict`` (or ``predict_proba``)
        returns them with ``output="sequence"``: an array for array input, a
        list of ``(n_timesteps_i,)`` or ``(n_timesteps_i, n_outputs)`` arrays
        for list input.

    Returns
    -------
    Y_channels_first : ndarray of shape (n_sequences, n_outputs, n_timesteps) \
or list of ndarray of shape (n_outputs, n_timesteps_i)
        The outputs as channels (one channel for single outputs); a list
        stays a list.

    See Also
    --------
    from_channels_first : The way in.

    Examples
    --------
    >>> import numpy as np
    >>> from skrtrl.sequences import to_channels_first
    >>> to_channels_first(np.zeros((4, 10))).shape   # 4 sequences, 10 steps
    (4, 1, 10)
    >>> [y.shape for y in to_channels_first([np.zeros(5), np.zeros(7)])]
    [(1, 5), (1, 7)]
    """
    if _is_list(Y, "Y"):
        return [
            np.ascontiguousarray(y.reshape(y.shape[0], -1).T)
            for y in _step_output_list(Y)
        ]
    Y = _as_array(Y, "Y")
    if Y.ndim == 2:
        return Y[:, np.newaxis, :].copy()
    if Y.ndim != 3:
        raise ValueError(
            "Y must hold per-step outputs: a 2D array (n_sequences, n_timesteps), "
            "a 3D array (n_sequences, n_timesteps, n_outputs) or a list of "
            f"arrays; got an array of shape {Y.shape}."
        )
    return np.ascontiguousarray(Y.transpose(0, 2, 1))


# -- tslearn: trailing NaN as padding ----------------------------------------------


def from_nan_padded(X):
    """Cut NaN-padded sequences (tslearn) into a list of sequences.

    tslearn stores sequences of different lengths in one array padded with
    NaN at the end (its ``to_time_series_dataset``). A sequence here ends at
    its last time step with any value that is not NaN; every later step
    must be NaN in every feature, and a NaN before that end is an error,
    since skrtrl has no notion of a missing value inside a sequence.

    Parameters
    ----------
    X : array-like of shape (n_sequences, max_timesteps, n_features) or \
(n_sequences, max_timesteps)
        The padded sequences; a 2D array holds univariate ones.

    Returns
    -------
    sequences : list of ndarray of shape (n_timesteps_i, n_features) or \
(n_timesteps_i,)
        Each sequence without its padding (C-contiguous copies, dtype kept),
        ready for ``fit`` and ``predict`` as a list of sequences.

    See Also
    --------
    to_nan_padded : The way back, for per-step outputs.

    Examples
    --------
    >>> import numpy as np
    >>> from skrtrl.sequences import from_nan_padded
    >>> X_tslearn = np.array([[[1.0], [2.0], [3.0]],
    ...                       [[4.0], [5.0], [np.nan]]])
    >>> [x.ravel().tolist() for x in from_nan_padded(X_tslearn)]
    [[1.0, 2.0, 3.0], [4.0, 5.0]]
    """
    X = _as_array(X, "X")
    if X.ndim not in (2, 3):
        raise ValueError(
            "X must be a 3D array (n_sequences, max_timesteps, n_features) or a "
            f"2D array (n_sequences, max_timesteps); got shape {X.shape}."
        )
    if X.shape[0] == 0:
        raise ValueError("X holds no sequence (its first axis has length 0).")
    if not np.issubdtype(X.dtype, np.number):
        raise TypeError(f"X must hold numbers, padded with NaN; got dtype {X.dtype}.")
    missing = np.isnan(X) if np.issubdtype(X.dtype, np.inexact) else None
    if missing is None:
        return [np.ascontiguousarray(x) for x in X]
    step_missing = missing if X.ndim == 2 else missing.any(axis=2)
    step_observed = ~(missing if X.ndim == 2 else missing.all(axis=2))
    sequences = []
    for i in range(X.shape[0]):
        observed = np.flatnonzero(step_observed[i])
        if observed.size == 0:
            raise ValueError(
                f"Sequence {i} is NaN at every step: it has no time steps."
            )
        length = int(observed[-1]) + 1
        inner = np.flatnonzero(step_missing[i, :length])
        if inner.size:
            raise ValueError(
                f"Sequence {i} has NaN at step {inner[0]}, inside the sequence "
                f"(it has values up to step {length - 1}). NaN may only pad the "
                "end of a sequence (every feature NaN from some step on); fill "
                "or drop missing values inside sequences first."
            )
        sequences.append(np.ascontiguousarray(X[i, :length]))
    return sequences


def to_nan_padded(Y):
    """Pad per-step outputs with NaN into one 3D array, as tslearn does.

    Parameters
    ----------
    Y : list of ndarray of shape (n_timesteps_i,) or (n_timesteps_i, \
n_outputs), or ndarray of shape (n_sequences, n_timesteps[, n_outputs])
        Per-step outputs as skrtrl's ``predict`` (or ``predict_proba``)
        returns them with ``output="sequence"``.

    Returns
    -------
    Y_padded : ndarray of shape (n_sequences, max_timesteps, n_outputs)
        Floating point (float32 if every output is float32, float64
        otherwise), NaN after the end of each sequence.

    See Also
    --------
    from_nan_padded : The way in.

    Examples
    --------
    >>> import numpy as np
    >>> from skrtrl.sequences import to_nan_padded
    >>> to_nan_padded([np.array([1.0, 2.0, 3.0]), np.array([4.0])])[..., 0]
    array([[ 1.,  2.,  3.],
           [ 4., nan, nan]])
    """
    parts = _step_output_list(Y)
    for i, part in enumerate(parts):
        if not np.issubdtype(part.dtype, np.number) or np.issubdtype(
            part.dtype, np.complexfloating
        ):
            raise TypeError(
                f"Y[{i}] has dtype {part.dtype}; only real numbers can be padded "
                "with NaN. Encode labels as numbers first (for instance with "
                "the classifier's classes_)."
            )
    dtype = np.float32 if all(p.dtype == np.float32 for p in parts) else np.float64
    parts = [p.reshape(p.shape[0], -1) for p in parts]
    n_outputs = parts[0].shape[1]
    max_steps = max(p.shape[0] for p in parts)
    padded = np.full((len(parts), max_steps, n_outputs), np.nan, dtype=dtype)
    for i, part in enumerate(parts):
        padded[i, : part.shape[0]] = part
    return padded


# -- pandas: long tables -----------------------------------------------------------


def from_long_table(table, *, id_column, time_column, columns=None):
    """Group a long table (pandas) into sequences, one per id, in time order.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per time step. ``id_column`` and ``time_column`` may be
        columns or index levels (as in sktime's ``pd-multiindex`` tables);
        the rows may come in any order.
    id_column : hashable
        Names the sequence a row belongs to.
    time_column : hashable
        Orders the rows of a sequence (numbers, timestamps or anything
        pandas can sort). Each ``(id, time)`` pair must occur once.
    columns : hashable or list of hashable, default=None
        The values to take. A list (the default: every column but
        ``id_column`` and ``time_column``) gives 2D sequences
        ``(n_timesteps_i, n_columns)``; a single name gives 1D sequences, as
        ``table[name]`` gives a Series, for per-step targets for instance.

    Returns
    -------
    sequences : list of ndarray
        One array per id, its rows ordered by ``time_column``.
    ids : pandas.Index
        The id of each sequence, in the order of ``sequences`` (sorted).
        ``labels.loc[ids]`` lines up one target per sequence.

    See Also
    --------
    to_long_table : The way back, for per-step outputs.

    Examples
    --------
    >>> import pandas as pd
    >>> from skrtrl.sequences import from_long_table
    >>> table = pd.DataFrame({"id": ["b", "a", "a", "b", "a"],
    ...                       "t": [1, 2, 1, 0, 0],
    ...                       "x": [5.0, 3.0, 2.0, 4.0, 1.0]})
    >>> X, ids = from_long_table(table, id_column="id", time_column="t")
    >>> list(ids), [x.ravel().tolist() for x in X]
    (['a', 'b'], [[1.0, 2.0, 3.0], [4.0, 5.0]])
    """
    order, bounds, ids = _long_table_layout(table, id_column, time_column)
    if columns is None:
        columns = [c for c in table.columns if c not in (id_column, time_column)]
        if not columns:
            raise ValueError(
                "The table has no column besides id_column and time_column; "
                "name the columns to take with columns=."
            )
    # As in pandas' table[key]: a list names several columns, anything else
    # (a tuple too, the label of a MultiIndex column) one.
    single = not isinstance(columns, list | np.ndarray) and not hasattr(
        columns, "to_list"
    )
    missing = [c for c in ([columns] if single else columns) if c not in table]
    if missing:
        raise KeyError(f"Columns not in the table: {missing}.")
    values = table[columns if single else list(columns)].to_numpy()[order]
    return np.split(values, bounds[1:-1]), ids


def to_long_table(Y, table, *, id_column, time_column, columns=None):
    """Put per-step outputs back on the rows of a long table (pandas).

    Parameters
    ----------
    Y : list of ndarray of shape (n_timesteps_i,) or (n_timesteps_i, \
n_outputs)
        Per-step outputs (``output="sequence"``) of the sequences that
        :func:`from_long_table` made from ``table``, in the same order.
    table : pandas.DataFrame
        The table the sequences came from.
    id_column, time_column : hashable
        As given to :func:`from_long_table`.
    columns : hashable or list of hashable, default=None
        The name of the output (1D outputs) or of each output column (2D
        outputs); default: no name, or ``0, 1, ...``.

    Returns
    -------
    outputs : pandas.Series or pandas.DataFrame
        One row per row of ``table``, with its index and in its row order, so
        ``table["prediction"] = to_long_table(...)`` puts each output on the
        step it belongs to. A Series for 1D outputs, a DataFrame otherwise.

    See Also
    --------
    from_long_table : The way in.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from skrtrl.sequences import from_long_table, to_long_table
    >>> table = pd.DataFrame({"id": [7, 7, 3, 3, 3], "t": [1, 0, 0, 1, 2],
    ...                       "x": [0.5, 0.25, 1.0, 2.0, 3.0]})
    >>> X, ids = from_long_table(table, id_column="id", time_column="t")
    >>> steps = [np.arange(len(x)) for x in X]     # any per-step output
    >>> table["step"] = to_long_table(steps, table, id_column="id", time_column="t")
    >>> table["step"].tolist()
    [1, 0, 0, 1, 2]
    """
    import pandas as pd

    order, bounds, ids = _long_table_layout(table, id_column, time_column)
    parts = _step_output_list(Y)
    lengths = np.diff(bounds)
    if len(parts) != len(lengths):
        raise ValueError(
            f"Y has {len(parts)} sequences but the table has {len(lengths)} ids."
        )
    for i, (part, length) in enumerate(zip(parts, lengths)):
        if part.shape[0] != length:
            raise ValueError(
                f"Y[{i}] has {part.shape[0]} steps but id {_show(ids[i])} has "
                f"{length} rows in the table."
            )
    values = np.concatenate(parts, axis=0)
    rows = np.empty_like(values)
    rows[order] = values
    if rows.ndim == 1:
        return pd.Series(rows, index=table.index, name=columns)
    return pd.DataFrame(rows, index=table.index, columns=columns)


# -- helpers -------------------------------------------------------------------------


def _is_list(X, name):
    if isinstance(X, list | tuple):
        if len(X) == 0:
            raise ValueError(f"{name} is an empty {type(X).__name__}: no sequence.")
        return True
    return False


def _as_array(X, name):
    if hasattr(X, "columns") or hasattr(X, "iloc"):
        raise TypeError(
            f"{name} is a pandas object; for a long table use from_long_table, "
            "for an array take X.to_numpy() first."
        )
    return np.asarray(X)


def _step_output_list(Y):
    """Per-step outputs as a list of 1D or 2D arrays, one per sequence."""
    if isinstance(Y, list | tuple):
        parts = [np.asarray(y) for y in Y]
    else:
        Y = _as_array(Y, "Y")
        if Y.ndim not in (2, 3):
            raise ValueError(
                "Y must hold per-step outputs: a list of arrays, a 2D array "
                "(n_sequences, n_timesteps) or a 3D array (n_sequences, "
                f"n_timesteps, n_outputs); got an array of shape {Y.shape}."
            )
        parts = list(Y)
    if not parts:
        raise ValueError("Y holds no sequence.")
    ndims = {p.ndim for p in parts}
    if not ndims <= {1, 2} or len(ndims) > 1:
        raise ValueError(
            "The arrays in Y must all be 1D (n_timesteps,) or all 2D "
            f"(n_timesteps, n_outputs); got dimensions {sorted(ndims)}."
        )
    if ndims == {2} and len({p.shape[1] for p in parts}) > 1:
        raise ValueError("The arrays in Y must all have the same number of outputs.")
    return parts


def _show(value):
    """repr of a table value, without numpy's scalar wrapper."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _column_or_level(table, name, role):
    if name in table.columns:
        return table[name]
    if name in (table.index.names or []):
        return table.index.get_level_values(name)
    hint = ""
    if table.index.nlevels > 1 and None in table.index.names:
        hint = (
            " Its index has unnamed levels; name them first, for instance "
            "table.rename_axis(['case', 'time'])."
        )
    raise KeyError(
        f"{role}={name!r} is neither a column nor an index level of the table." + hint
    )


def _long_table_layout(table, id_column, time_column):
    """Row order, sequence bounds and ids of a long table.

    ``order`` lists the table's rows (positions) id by id, each id's rows in
    time order; sequence ``s`` is ``order[bounds[s]:bounds[s + 1]]``.
    """
    import pandas as pd

    if not isinstance(table, pd.DataFrame):
        raise TypeError(
            f"table must be a pandas DataFrame; got {type(table).__name__}."
        )
    if table.shape[0] == 0:
        raise ValueError("The table has no rows.")
    id_codes, ids = pd.factorize(
        _column_or_level(table, id_column, "id_column"), sort=True
    )
    time_codes, times = pd.factorize(
        _column_or_level(table, time_column, "time_column"), sort=True
    )
    for codes, name in ((id_codes, id_column), (time_codes, time_column)):
        if (codes < 0).any():
            row = int(np.flatnonzero(codes < 0)[0])
            raise ValueError(f"{name!r} is missing (NaN or None) in row {row}.")
    order = np.lexsort((time_codes, id_codes))
    sorted_ids, sorted_times = id_codes[order], time_codes[order]
    repeated = np.flatnonzero(
        (sorted_ids[1:] == sorted_ids[:-1]) & (sorted_times[1:] == sorted_times[:-1])
    )
    if repeated.size:
        k = repeated[0]
        raise ValueError(
            f"id {_show(ids[sorted_ids[k]])} has more than one row at "
            f"{time_column!r} = {_show(times[sorted_times[k]])}; each (id, time) pair "
            "must occur once."
        )
    bounds = np.zeros(len(ids) + 1, dtype=np.intp)
    np.cumsum(np.bincount(id_codes, minlength=len(ids)), out=bounds[1:])
    return order, bounds, pd.Index(ids, name=id_column)
