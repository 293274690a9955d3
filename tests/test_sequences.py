"""The data layer: the three input forms, dtypes and the form of outputs.

A sequence data set may be a 2D array (univariate sequences, one per row), a
3D array ``(n_sequences, n_timesteps, n_features)`` or a list of 2D arrays of
varying lengths. All three are packed into one layout; these tests pin down
that equivalent inputs pack identically, that dtypes are kept, and that
per-step predictions come back in the form the input had.
"""

import numpy as np
import pytest

from skrtrl import RTRLClassifier, RTRLRegressor
from skrtrl._sequences import check_sequences

# The models here train for a few epochs only, on purpose.
pytestmark = pytest.mark.usefixtures("quiet_convergence")


def pack(X):
    return check_sequences(RTRLRegressor(), X, reset=True)


def assert_same_packing(a, b):
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    assert a.values.dtype == b.values.dtype


def variable_length_sequences(rng, n_sequences=6, n_features=2, lengths=(2, 7)):
    return [
        rng.normal(size=(rng.randint(*lengths), n_features)) for _ in range(n_sequences)
    ]


# -- packing -----------------------------------------------------------------


def test_2d_3d_and_list_of_the_same_sequences_pack_identically():
    rng = np.random.RandomState(0)
    X2 = rng.normal(size=(4, 5))
    from_2d = pack(X2)
    from_3d = pack(X2[:, :, None])
    from_list = pack([row[:, None] for row in X2])
    assert (from_2d.kind, from_3d.kind) == ("2d", "3d")
    assert_same_packing(from_2d, from_3d)
    assert_same_packing(from_2d, from_list)
    # Sequence after sequence, each in time order.
    np.testing.assert_array_equal(from_2d.values[:, 0], X2.ravel())
    np.testing.assert_array_equal(from_2d.offsets, [0, 5, 10, 15, 20])


def test_list_of_equal_length_arrays_equals_the_3d_array():
    rng = np.random.RandomState(1)
    X3 = rng.normal(size=(3, 4, 2))
    as_list = [x for x in X3]
    assert_same_packing(pack(as_list), pack(X3))
    # Same steps, but a list stays a list, so per-step outputs come back
    # as a list whether or not the lengths happen to be equal.
    assert pack(as_list).kind == "list"

    reg = RTRLRegressor(5, max_iter=3, random_state=0)
    y = rng.normal(size=3)
    from_list = reg.fit(as_list, y).predict(as_list)
    from_array = RTRLRegressor(5, max_iter=3, random_state=0).fit(X3, y).predict(X3)
    np.testing.assert_array_equal(from_list, from_array)


def test_variable_length_list_keeps_every_length():
    rng = np.random.RandomState(2)
    X = [rng.normal(size=(n, 3)) for n in (4, 1, 6)]
    packed = pack(X)
    assert packed.kind == "list"
    np.testing.assert_array_equal(packed.lengths, [4, 1, 6])
    np.testing.assert_array_equal(packed.offsets, [0, 4, 5, 11])
    np.testing.assert_array_equal(packed.values, np.concatenate(X))
    assert packed.n_features == 3


def test_1d_list_elements_are_univariate_sequences():
    seqs = [np.arange(3.0), np.arange(5.0), np.arange(2.0)]
    as_1d = pack(seqs)
    as_2d = pack([s[:, None] for s in seqs])
    assert as_1d.n_features == 1
    assert_same_packing(as_1d, as_2d)
    # Plain Python lists work too.
    assert_same_packing(pack([s.tolist() for s in seqs]), as_2d)


def test_sequence_features_set_n_features_in_per_step():
    rng = np.random.RandomState(3)
    y = rng.normal(size=4)
    reg = RTRLRegressor(4, max_iter=1)
    assert reg.fit(rng.normal(size=(4, 7)), y).n_features_in_ == 7  # columns
    assert reg.fit(rng.normal(size=(4, 7, 3)), y).n_features_in_ == 3
    X_list = [rng.normal(size=(n, 2)) for n in (3, 5, 2, 4)]
    assert reg.fit(X_list, y).n_features_in_ == 2


# -- dtypes ------------------------------------------------------------------


@pytest.mark.parametrize("form", ["2d", "3d", "list"])
def test_float32_stays_float32_everywhere(form):
    rng = np.random.RandomState(4)
    X = make_form(rng.normal(size=(8, 5)).astype(np.float32), form)
    y = rng.normal(size=8).astype(np.float32)
    assert pack(X).values.dtype == np.float32
    reg = RTRLRegressor(4, max_iter=2, random_state=0).fit(X, y)
    assert all(p.dtype == np.float32 for p in reg.params_.values())
    assert np.asarray(reg.predict(X)).dtype == np.float32

    clf = RTRLClassifier(4, max_iter=2, random_state=0).fit(X, np.arange(8) % 3)
    assert all(p.dtype == np.float32 for p in clf.params_.values())
    assert clf.predict_proba(X).dtype == np.float32
    assert clf.decision_function(X).dtype == np.float32


@pytest.mark.parametrize("form", ["2d", "3d", "list"])
def test_float64_and_int_inputs_train_in_float64(form):
    rng = np.random.RandomState(5)
    y = rng.normal(size=6)
    for X in (rng.normal(size=(6, 4)), rng.randint(0, 3, size=(6, 4))):
        X = make_form(X, form)
        assert pack(X).values.dtype == np.float64
        reg = RTRLRegressor(4, max_iter=1, random_state=0).fit(X, y)
        assert all(p.dtype == np.float64 for p in reg.params_.values())
        assert np.asarray(reg.predict(X)).dtype == np.float64


def test_mixed_float32_and_float64_list_becomes_float64():
    X = [np.ones((3, 1), dtype=np.float32), np.ones((4, 1))]
    assert pack(X).values.dtype == np.float64


def test_a_float32_model_predicts_float64_input_in_float32():
    rng = np.random.RandomState(6)
    X = rng.normal(size=(6, 4)).astype(np.float32)
    reg = RTRLRegressor(4, max_iter=1, random_state=0).fit(X, rng.normal(size=6))
    y32 = reg.predict(X)
    y64 = reg.predict(X.astype(np.float64))
    assert y64.dtype == np.float32
    np.testing.assert_array_equal(y32, y64)


def make_form(X2, form):
    """The univariate sequences of the rows of ``X2`` in the given form."""
    if form == "2d":
        return X2
    if form == "3d":
        return X2[:, :, None]
    # Different lengths, so that this really is the list form.
    return [row[: max(2, len(row) - i % 3), None] for i, row in enumerate(X2)]


# -- form of per-step outputs ------------------------------------------------


def test_per_step_predictions_of_2d_input_are_2d():
    rng = np.random.RandomState(7)
    X = rng.normal(size=(5, 6))
    reg = RTRLRegressor(4, output="sequence", max_iter=2, random_state=0)
    reg.fit(X, rng.normal(size=(5, 6)))
    assert reg.predict(X).shape == (5, 6)
    assert reg.predict(X[:2]).shape == (2, 6)


def test_per_step_predictions_of_3d_input_follow_the_targets():
    rng = np.random.RandomState(8)
    X = rng.normal(size=(5, 6, 2))
    reg = RTRLRegressor(4, output="sequence", max_iter=2, random_state=0)
    assert reg.fit(X, rng.normal(size=(5, 6, 3))).predict(X).shape == (5, 6, 3)
    assert reg.fit(X, rng.normal(size=(5, 6))).predict(X).shape == (5, 6)


def test_per_step_predictions_of_a_list_are_a_list_of_matching_lengths():
    rng = np.random.RandomState(9)
    X = variable_length_sequences(rng)
    y = [rng.normal(size=len(x)) for x in X]
    reg = RTRLRegressor(4, output="sequence", max_iter=2, random_state=0).fit(X, y)
    pred = reg.predict(X)
    assert isinstance(pred, list)
    assert [p.shape for p in pred] == [(len(x),) for x in X]

    Y = [rng.normal(size=(len(x), 2)) for x in X]
    pred = reg.fit(X, Y).predict(X)
    assert [p.shape for p in pred] == [(len(x), 2) for x in X]


def test_per_step_classifier_outputs_of_a_list_are_lists():
    rng = np.random.RandomState(10)
    X = variable_length_sequences(rng)
    y = [np.arange(len(x)) % 3 for x in X]
    clf = RTRLClassifier(4, output="sequence", max_iter=2, random_state=0).fit(X, y)
    for method, tail in [
        ("predict", ()),
        ("predict_proba", (3,)),
        ("predict_log_proba", (3,)),
        ("decision_function", (3,)),
    ]:
        out = getattr(clf, method)(X)
        assert isinstance(out, list), method
        assert [o.shape for o in out] == [(len(x), *tail) for x in X], method


# -- each sequence has its own length ----------------------------------------


@pytest.mark.parametrize("output", ["last", "sequence"])
def test_predictions_of_a_sequence_do_not_depend_on_the_rest_of_the_batch(output):
    rng = np.random.RandomState(11)
    X = variable_length_sequences(rng, n_sequences=7, lengths=(1, 9))
    y = (
        rng.normal(size=len(X))
        if output == "last"
        else [rng.normal(size=len(x)) for x in X]
    )
    reg = RTRLRegressor(6, output=output, max_iter=3, random_state=0).fit(X, y)
    together = reg.predict(X)
    for x, pred in zip(X, together):
        alone = reg.predict([x])[0]
        np.testing.assert_allclose(pred, alone, rtol=1e-12, atol=1e-12)
    order = rng.permutation(len(X))
    shuffled = reg.predict([X[i] for i in order])
    for pred, i in zip(shuffled, order):
        np.testing.assert_allclose(pred, together[i], rtol=1e-12, atol=1e-12)


def test_padding_a_sequence_changes_its_prediction():
    # The list form is not padded behind the scenes: a longer sequence (even
    # by zeros) is a different sequence.
    rng = np.random.RandomState(12)
    X = variable_length_sequences(rng, lengths=(2, 6))
    reg = RTRLRegressor(6, max_iter=3, random_state=0).fit(X, rng.normal(size=6))
    x = X[0]
    padded = np.vstack([x, np.zeros((3, x.shape[1]))])
    assert reg.predict([x])[0] != pytest.approx(reg.predict([padded])[0])


def test_model_fitted_on_2d_rows_predicts_sequences_of_other_lengths():
    # Rows of a 2D array are univariate sequences; as a list they may have
    # any length.
    rng = np.random.RandomState(13)
    X = rng.normal(size=(6, 5))
    reg = RTRLRegressor(4, max_iter=2, random_state=0).fit(X, rng.normal(size=6))
    pred = reg.predict([np.ones(3), np.ones(8)])
    assert pred.shape == (2,)
    np.testing.assert_allclose(reg.predict([X[0]]), reg.predict(X[:1]))
