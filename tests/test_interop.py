"""Data from aeon, sktime, tslearn and pandas, through skrtrl.sequences.

For each library the same sequences are given once in skrtrl's own layout
and once in the library's layout, made by the library's own converters (so
the tests do not check our reading of a layout against itself); both must
fit bit-identical parameters and give the same predictions, and per-step
outputs must come back in the library's layout. A channel-first array given
as it is draws a warning, and skrtrl's own data does not.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._sequences import check_sequences
from skrtrl.datasets import (
    load_japanese_vowels,
    make_adding_problem,
    make_copy_task,
    make_delayed_sum,
    make_embedded_reber,
)
from skrtrl.sequences import (
    from_channels_first,
    from_long_table,
    from_nan_padded,
    to_channels_first,
    to_long_table,
    to_nan_padded,
)

CHANNEL_FIRST = "X may be channel-first"


@pytest.fixture(autouse=True)
def _quiet_convergence():
    # The models train for a few epochs only: enough to move every weight.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def make_sequences(lengths, n_features=3, seed=0):
    """Sequences in skrtrl's layout and a per-step target for each."""
    rng = np.random.RandomState(seed)
    X = [rng.normal(size=(t, n_features)) for t in lengths]
    Y = [np.tanh(np.cumsum(x[:, 0] - 0.5 * x[:, -1])) for x in X]
    return X, Y


def regressor():
    return RTRLRegressor(
        n_hidden=4,
        output="sequence",
        max_iter=3,
        batch_size=2,
        learning_rate_init=0.05,
        random_state=0,
    )


def assert_same_model(a, b):
    assert a.params_.keys() == b.params_.keys()
    for name in a.params_:
        np.testing.assert_array_equal(a.params_[name], b.params_[name])
    assert a.loss_curve_ == b.loss_curve_
    assert a.n_features_in_ == b.n_features_in_


def assert_same_outputs(a, b):
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    else:
        np.testing.assert_array_equal(a, b)


def long_frame(sequences, *, case="case", time="timepoint"):
    """sequences (skrtrl layout) as a table: one row per (case, step)."""
    rows = [(i, t, *step) for i, x in enumerate(sequences) for t, step in enumerate(x)]
    n_features = sequences[0].shape[1]
    frame = pd.DataFrame(rows, columns=[case, time, *range(n_features)])
    return frame.set_index([case, time])


def fit_both(X_skrtrl, X_converted, Y, make=regressor):
    with warnings.catch_warnings():
        # Neither layout may look channel-first to the estimator.
        warnings.filterwarnings("error", message=CHANNEL_FIRST)
        a = make().fit(X_skrtrl, Y)
        b = make().fit(X_converted, Y)
    assert_same_model(a, b)
    return a, b


# -- aeon ----------------------------------------------------------------------


def test_aeon_equal_length_array_fits_like_skrtrl_layout():
    conversion = pytest.importorskip("aeon.utils.conversion")
    collection = pytest.importorskip("aeon.utils.validation.collection")
    X_list, Y_list = make_sequences([8] * 6)
    X, Y = np.stack(X_list), np.stack(Y_list)
    # aeon's multi-index table holds one row per (case, timepoint), one
    # column per channel; aeon turns it into its own 3D layout.
    X_aeon = conversion.convert_collection(long_frame(X_list), "numpy3D")
    assert X_aeon.shape == (6, 3, 8)
    assert collection.get_n_channels(X_aeon) == 3
    assert collection.get_n_timepoints(X_aeon) == 8

    X_converted = from_channels_first(X_aeon)
    np.testing.assert_array_equal(X_converted, X)
    a, b = fit_both(X, X_converted, Y)
    pred = b.predict(X_converted)
    assert_same_outputs(a.predict(X), pred)

    # Per-step outputs in aeon's layout: one channel, the time axis last.
    pred_aeon = to_channels_first(pred)
    assert pred_aeon.shape == (6, 1, 8)
    assert collection.get_n_timepoints(pred_aeon) == 8
    np.testing.assert_array_equal(pred_aeon[:, 0, :], pred)


def test_aeon_unequal_length_list_fits_like_skrtrl_layout():
    conversion = pytest.importorskip("aeon.utils.conversion")
    X, Y = make_sequences([5, 9, 7, 6, 8, 5])
    X_aeon = conversion.convert_collection(long_frame(X), "np-list")
    assert [x.shape for x in X_aeon] == [(3, len(x)) for x in X]

    # Given as it is, the list is refused with the way out in the message.
    with pytest.raises(ValueError, match="from_channels_first"):
        regressor().fit(X_aeon, Y)

    X_converted = from_channels_first(X_aeon)
    assert_same_outputs(X_converted, X)
    a, b = fit_both(X, X_converted, Y)
    pred = b.predict(X_converted)
    assert_same_outputs(a.predict(X), pred)
    pred_aeon = to_channels_first(pred)
    assert [p.shape for p in pred_aeon] == [(1, len(x)) for x in X]
    for p_aeon, p in zip(pred_aeon, pred):
        np.testing.assert_array_equal(p_aeon[0], p)


def test_aeon_data_set_as_it_is_draws_the_warning():
    datasets = pytest.importorskip("aeon.datasets")
    X_aeon, y = datasets.load_basic_motions(split="train")
    model = RTRLClassifier(n_hidden=2, max_iter=1, random_state=0)
    with pytest.warns(UserWarning, match=CHANNEL_FIRST) as record:
        model.fit(X_aeon[::5], y[::5])
    message = str(record[0].message)
    assert "(n_sequences, n_timesteps, n_features)" in message
    assert "skrtrl.sequences.from_channels_first(X)" in message
    # The warning points at the caller's line, not inside skrtrl.
    assert record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=CHANNEL_FIRST)
        model.fit(from_channels_first(X_aeon[::5]), y[::5])


# -- sktime --------------------------------------------------------------------


def test_sktime_numpy3d_and_multiindex_table_fit_like_skrtrl_layout():
    datatypes = pytest.importorskip("sktime.datatypes")
    X_list, Y_list = make_sequences([7] * 5, n_features=2)
    X, Y = np.stack(X_list), np.stack(Y_list)
    X_sktime = datatypes.convert_to(long_frame(X_list), to_type="numpy3D")
    assert X_sktime.shape == (5, 2, 7)
    X_converted = from_channels_first(X_sktime)
    a, b = fit_both(X, X_converted, Y)
    assert_same_outputs(a.predict(X), b.predict(X_converted))

    # sktime's pd-multiindex table, made by sktime from its 3D array: the
    # instances and time points are index levels.
    table = datatypes.convert_to(X_sktime, to_type="pd-multiindex")
    X_table, ids = from_long_table(
        table, id_column="instances", time_column="timepoints"
    )
    assert list(ids) == list(range(5))
    assert_same_outputs(X_table, X_list)
    a, b = fit_both(X_list, X_table, Y_list)
    pred = b.predict(X_table)
    out = to_long_table(pred, table, id_column="instances", time_column="timepoints")
    assert out.index.equals(table.index)
    for (instance, timepoint), value in out.items():
        assert value == pred[instance][timepoint]


# -- tslearn -------------------------------------------------------------------


def test_tslearn_nan_padded_array_fits_like_skrtrl_list():
    utils = pytest.importorskip("tslearn.utils")
    X, Y = make_sequences([5, 9, 7, 6, 8, 5])
    X_tslearn = utils.to_time_series_dataset(X)
    assert X_tslearn.shape == (6, 9, 3)
    assert [utils.ts_size(x) for x in X_tslearn] == [len(x) for x in X]

    with pytest.raises(ValueError, match="from_nan_padded"):
        regressor().fit(X_tslearn, Y)

    X_converted = from_nan_padded(X_tslearn)
    assert_same_outputs(X_converted, X)
    a, b = fit_both(X, X_converted, Y)
    pred = b.predict(X_converted)
    assert_same_outputs(a.predict(X), pred)
    # Back to tslearn's layout, as tslearn itself pads the outputs.
    np.testing.assert_array_equal(
        to_nan_padded(pred), utils.to_time_series_dataset(pred)
    )


def test_tslearn_univariate_and_multi_output_round_trip():
    utils = pytest.importorskip("tslearn.utils")
    X, _ = make_sequences([4, 6, 3], n_features=1)
    X_tslearn = utils.to_time_series_dataset([x[:, 0] for x in X])
    assert_same_outputs(from_nan_padded(X_tslearn), X)
    outputs = [np.column_stack([x[:, 0], -x[:, 0]]) for x in X]
    padded = to_nan_padded(outputs)
    np.testing.assert_array_equal(padded, utils.to_time_series_dataset(outputs))
    assert_same_outputs(from_nan_padded(padded), outputs)


def test_nan_inside_a_sequence_is_refused():
    X = np.ones((3, 5, 2))
    X[1, 3:] = np.nan  # padding: fine
    X[2, 1, 0] = np.nan  # missing value inside sequence 2
    with pytest.raises(ValueError, match="Sequence 2 has NaN at step 1"):
        from_nan_padded(X)
    X[2, 1, 0] = 1.0
    X[0, 4, 1] = np.nan  # the last step has one value, so it is not padding
    with pytest.raises(ValueError, match="Sequence 0 has NaN at step 4"):
        from_nan_padded(X)
    X[0] = np.nan
    with pytest.raises(ValueError, match="Sequence 0 is NaN at every step"):
        from_nan_padded(X)


def test_nan_padded_keeps_float32_and_needs_numbers():
    X = np.ones((2, 3, 1), dtype=np.float32)
    X[1, 2] = np.nan
    parts = from_nan_padded(X)
    assert [p.dtype for p in parts] == [np.float32, np.float32]
    assert to_nan_padded(parts).dtype == np.float32
    with pytest.raises(TypeError, match="only real numbers"):
        to_nan_padded([np.array(["a", "b"])])


# -- pandas --------------------------------------------------------------------


def shuffled_long_table(X, Y, seed=0):
    """X, Y (skrtrl lists) as a long table with string ids and timestamps."""
    names = [f"s{9 - i}" for i in range(len(X))]  # sorted ids reverse the list
    frames = []
    for name, x, y in zip(names, X, Y):
        frame = pd.DataFrame(x, columns=[f"f{k}" for k in range(x.shape[1])])
        frame.insert(0, "when", pd.date_range("2024-01-01", periods=len(x), freq="h"))
        frame.insert(0, "sensor", name)
        frame["target"] = y
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    return table.sample(frac=1.0, random_state=seed), names


def test_long_table_fits_like_skrtrl_list_and_outputs_land_on_their_rows():
    X, Y = make_sequences([5, 9, 7, 6])
    table, names = shuffled_long_table(X, Y)
    features = ["f0", "f1", "f2"]
    X_table, ids = from_long_table(
        table, id_column="sensor", time_column="when", columns=features
    )
    Y_table, ids_y = from_long_table(
        table, id_column="sensor", time_column="when", columns="target"
    )
    assert ids.equals(ids_y) and ids.name == "sensor"
    assert list(ids) == sorted(names)
    order = [names.index(i) for i in ids]
    assert_same_outputs(X_table, [X[k] for k in order])
    assert_same_outputs(Y_table, [Y[k] for k in order])

    a, b = fit_both([X[k] for k in order], X_table, Y_table)
    pred = b.predict(X_table)
    table["prediction"] = to_long_table(
        pred, table, id_column="sensor", time_column="when"
    )
    for k, name in enumerate(ids):
        rows = table[table["sensor"] == name].sort_values("when")
        np.testing.assert_array_equal(rows["prediction"].to_numpy(), pred[k])


def test_long_table_default_columns_and_one_target_per_sequence():
    X, Y = make_sequences([5, 8, 6, 7])
    table, names = shuffled_long_table(X, Y)
    table = table.drop(columns="target")
    X_table, ids = from_long_table(table, id_column="sensor", time_column="when")
    assert [x.shape[1] for x in X_table] == [3] * 4
    labels = pd.Series(["up", "down", "up", "down"], index=names)
    y = labels.loc[ids].to_numpy()
    model = RTRLClassifier(n_hidden=3, max_iter=2, random_state=0).fit(X_table, y)
    predicted = pd.Series(model.predict(X_table), index=ids)
    assert set(predicted.index) == set(names)


def test_long_table_reads_columns_as_pandas_does():
    table = pd.DataFrame({"id": [0, 0, 1], "t": [0, 1, 0], "x": [1.0, 2.0, 3.0]})
    table[("y", "z")] = [4.0, 5.0, 6.0]  # a tuple is one label, as in pandas
    single, _ = from_long_table(table, id_column="id", time_column="t", columns="x")
    assert [s.shape for s in single] == [(2,), (1,)]
    pair, _ = from_long_table(
        table, id_column="id", time_column="t", columns=pd.Index(["x", ("y", "z")])
    )
    np.testing.assert_array_equal(pair[0], [[1.0, 4.0], [2.0, 5.0]])
    tup, _ = from_long_table(table, id_column="id", time_column="t", columns=("y", "z"))
    np.testing.assert_array_equal(tup[1], [6.0])


def test_long_table_errors_name_the_problem():
    good = pd.DataFrame({"id": [1, 1, 2], "t": [0, 1, 0], "x": [1.0, 2.0, 3.0]})
    with pytest.raises(KeyError, match="neither a column nor an index level"):
        from_long_table(good, id_column="case", time_column="t")
    with pytest.raises(KeyError, match="not in the table"):
        from_long_table(good, id_column="id", time_column="t", columns=["y"])
    with pytest.raises(TypeError, match="pandas DataFrame"):
        from_long_table(good.to_numpy(), id_column="id", time_column="t")
    with pytest.raises(ValueError, match=r"Y\[1\] has 2 steps but id 2 has 1"):
        to_long_table([np.zeros(2), np.zeros(2)], good, id_column="id", time_column="t")
    # Index levels without names (as some loaders leave them) cannot be named.
    unnamed = good.set_index(["id", "t"]).rename_axis([None, None])
    with pytest.raises(KeyError, match="rename_axis"):
        from_long_table(unnamed, id_column="id", time_column="t")

    table = good.assign(t=[0, 0, 0])
    with pytest.raises(ValueError, match="id 1 has more than one row at 't' = 0"):
        from_long_table(table, id_column="id", time_column="t")
    table.loc[1, "t"] = np.nan
    with pytest.raises(ValueError, match="'t' is missing"):
        from_long_table(table, id_column="id", time_column="t")


# -- the warning ---------------------------------------------------------------


def test_channel_first_array_and_list_draw_the_warning():
    rng = np.random.RandomState(0)
    X_aeon = rng.normal(size=(6, 3, 40))  # 3 channels, 40 time points
    y = rng.normal(size=6)
    with pytest.warns(UserWarning, match=CHANNEL_FIRST):
        RTRLRegressor(max_iter=1).fit(X_aeon, y)
    with pytest.warns(UserWarning, match=CHANNEL_FIRST):
        RTRLRegressor(max_iter=1).fit(list(X_aeon), y)
    with pytest.warns(UserWarning, match=CHANNEL_FIRST):
        RTRLRegressor(max_iter=1).partial_fit(X_aeon, y)
    # Converted, the same data passes without a word.
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=CHANNEL_FIRST)
        model = RTRLRegressor(max_iter=1).fit(from_channels_first(X_aeon), y)
    assert model.n_features_in_ == 3
    # A fitted model given the channel-first array says what to do.
    with pytest.raises(ValueError, match="from_channels_first"):
        model.predict(X_aeon)


def test_skrtrl_data_sets_draw_no_warning():
    data = [
        make_adding_problem(20, 30, random_state=0)[0],
        make_copy_task(20, random_state=0)[0],
        make_embedded_reber(20, random_state=0)[0],
        make_delayed_sum(20, 8, random_state=0)[0],
        load_japanese_vowels().X_train,
    ]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=CHANNEL_FIRST)
        for X in data:
            check_sequences(RTRLRegressor(), X, reset=True)


# -- argument checks -------------------------------------------------------------


@pytest.mark.parametrize(
    "func, X, error, match",
    [
        (from_channels_first, np.zeros((2, 3, 4, 5)), ValueError, "3D array"),
        (from_channels_first, [], ValueError, "empty list"),
        (from_channels_first, [np.zeros((2, 2, 2))], ValueError, r"X\[0\]"),
        (from_channels_first, pd.DataFrame({"a": [1]}), TypeError, "pandas"),
        (to_channels_first, np.zeros(3), ValueError, "per-step outputs"),
        (from_nan_padded, np.zeros(3), ValueError, "3D array"),
        (from_nan_padded, np.zeros((0, 2, 1)), ValueError, "no sequence"),
        (from_nan_padded, np.array([["a"]]), TypeError, "numbers"),
        (to_nan_padded, [np.zeros(2), np.zeros((2, 1))], ValueError, "all be 1D"),
        (to_nan_padded, [np.zeros((2, 1)), np.zeros((2, 2))], ValueError, "same"),
    ],
)
def test_bad_arguments_are_refused_clearly(func, X, error, match):
    with pytest.raises(error, match=match):
        func(X)


def test_two_dimensional_aeon_layout_is_skrtrl_layout():
    X = np.arange(12.0).reshape(3, 4)
    assert from_channels_first(X) is X
    np.testing.assert_array_equal(to_channels_first(X)[:, 0], X)
