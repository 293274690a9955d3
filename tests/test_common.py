"""scikit-learn's estimator checks on both estimators."""

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
    # The defaults: the regressor's Elman cell of 32 units; the classifier's
    # element-wise GRU of 128 units, read from the maximum over time.
    RTRLRegressor(),
    RTRLClassifier(),
    # Smaller networks keep the suite fast.
    RTRLRegressor(8, activation="relu", solver="sgd", learning_rate_init=0.01),
    RTRLClassifier(8, activation="logistic", solver="sgd", learning_rate_init=0.05),
    # Every cell with both estimators; every gradient method with one of them
    # (the estimators share the training path, and the suite must stay short).
    RTRLRegressor(32, cell="diagonal"),
    RTRLClassifier(32, cell="diagonal"),
    # Gated cells cost 3 (GRU) to 9 (LSTM) times the Elman cell per step.
    RTRLRegressor(8, cell="gru", learning_rate_init=0.01),
    RTRLClassifier(8, cell="gru", learning_rate_init=0.01),
    RTRLRegressor(8, cell="lstm", learning_rate_init=0.01),
    RTRLClassifier(8, cell="lstm", learning_rate_init=0.01),
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
]


@parametrize_with_checks(
    ESTIMATORS, expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
