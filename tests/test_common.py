"""scikit-learn's estimator checks on both estimators."""

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from skrtrl import RTRLClassifier, RTRLRegressor

# scikit-learn expects these to fail for its own minibatch SGD learners
# (SGDClassifier, MLPClassifier): with shuffled minibatches, a weight of 2 is
# not the same as a repeated sequence.
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "minibatch stochastic training: weighting is not repetition"
    ),
    "check_sample_weight_equivalence_on_sparse_data": (
        "minibatch stochastic training: weighting is not repetition"
    ),
}

ESTIMATORS = [
    # Both estimators' defaults as shipped: the classifier's (32 gated LRU
    # units read from the mean over time, "auto" learning rate) and the
    # regressor's (12 GRU units, exact RTRL; their R^2 check:
    # benchmarks/choose_defaults.py --regressor-check regressor-defaults).
    RTRLRegressor(),
    RTRLClassifier(),
    # Smaller networks keep the suite fast.
    RTRLRegressor(
        8, cell="elman", activation="relu", solver="sgd", learning_rate_init=0.01
    ),
    RTRLClassifier(8, activation="logistic", solver="sgd", learning_rate_init=0.05),
    # The cells with both estimators (the element-wise GRU above; the newer
    # cells through the registry-driven tests/test_cell_conformance.py);
    # every gradient method with one of them (the estimators share the
    # training path, and the suite must stay short).
    RTRLRegressor(32, cell="diagonal"),
    RTRLClassifier(32, cell="diagonal"),
    # Gated cells cost 3 (GRU) to 9 (LSTM) times the Elman cell per step;
    # 4 LSTM units pass the checks at a quarter of the CPU time of 8.
    RTRLRegressor(8, cell="gru", learning_rate_init=0.01),
    RTRLClassifier(8, cell="gru", learning_rate_init=0.01),
    RTRLRegressor(4, cell="lstm", learning_rate_init=0.01),
    RTRLClassifier(4, cell="lstm", learning_rate_init=0.01),
    RTRLRegressor(32, cell="elman", gradient="snap1"),
    RTRLClassifier(8, cell="gru", gradient="snap1", learning_rate_init=0.01),
    RTRLRegressor(8, cell="lstm", gradient="snap1", learning_rate_init=0.01),
    RTRLClassifier(32, cell="elman", gradient="bptt"),
    RTRLRegressor(
        8, cell="gru", gradient="bptt", truncation=6, learning_rate_init=0.01
    ),
    RTRLClassifier(32, cell="elman", gradient="uoro"),
    # A pooled readout: training and prediction read the mean over time.
    RTRLClassifier(8, cell="egru", pooling="mean", learning_rate_init=0.01),
    # A mixed stack, a tuple cell (a fully connected GRU under element-wise
    # GRU units), through get_params, clone and every check (about 15 s).
    RTRLClassifier((4, 8), cell=("gru", "egru"), learning_rate_init=0.01),
    # A stack of gated LRUs: each layer reads the output map of the one
    # below; the classifier's default cell, pooled by "auto" (the maximum).
    RTRLClassifier((4, 4), cell="glru", learning_rate_init=0.01),
]


@parametrize_with_checks(
    ESTIMATORS, expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("Estimator", [RTRLRegressor, RTRLClassifier])
def test_the_defaults_fit_and_predict(Estimator):
    """The checks above shrink the networks; the default sizes work too."""
    est = Estimator()
    # 12 GRU units (three gates' recurrent matrices) for one output; 32
    # gated LRU units (an output map C, n x n) for three classes, read
    # from the mean beside the last y (2n).
    recurrent, shape, weight_out = {
        RTRLRegressor: ("weight_hh", (36, 12), (1, 12)),
        RTRLClassifier: ("C_re", (32, 32), (3, 64)),
    }[Estimator]
    rng = np.random.RandomState(0)
    X = rng.normal(size=(12, 6, 2))
    y = X[:, :, 0].sum(axis=1)
    if Estimator is RTRLClassifier:
        y = np.digitize(y, [-1.0, 1.0])
    # Three epochs: what is checked is that the defaults run, not learning.
    est.set_params(max_iter=3, random_state=0)
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    assert est.params_[recurrent].shape == shape
    assert est.params_["weight_out"].shape == weight_out
    pred = est.predict(X)
    assert pred.shape == (len(X),)
    assert np.all(np.isfinite(est.loss_curve_))
