"""Scaling out: hyperparameter search and out-of-core training with dask.

The estimators are plain scikit-learn estimators, so scikit-learn's searches
run them on a dask.distributed cluster through joblib's ``"dask"`` backend,
and ``dask_ml.wrappers.Incremental`` streams the blocks of a dask collection
into ``partial_fit``. A search on the cluster must find exactly what the same
search finds in one process: every fit is seeded, the kernels are
deterministic, and the models travel between processes by pickle.

The cluster is real (two worker processes with one thread each), started
once for the module; the data and networks are tiny so that the whole file
runs in seconds.
"""

import importlib
import logging

import joblib
import numpy as np
import pytest
from scipy.stats import loguniform, randint
from sklearn.base import clone
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    KFold,
    RandomizedSearchCV,
)

from skrtrl import RTRLClassifier, RTRLRegressor

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")
db = pytest.importorskip("dask.bag")
dask_ml_wrappers = pytest.importorskip("dask_ml.wrappers")


# The models train for a few epochs only, on purpose.
pytestmark = pytest.mark.usefixtures("quiet_convergence")


@pytest.fixture(scope="module")
def client():
    """A local cluster of two single-threaded worker processes."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        # Import on the workers now rather than inside the first test.
        client.run(importlib.import_module, "skrtrl")
        client.run(importlib.import_module, "dask_ml._partial")
        yield client


RNG = np.random.RandomState(0)
X = RNG.uniform(-1, 1, size=(36, 6))  # 36 univariate sequences of 6 steps
Y_REG = X[:, -1] + 0.5 * X[:, -3]
Y_CLF = (Y_REG > 0).astype(int)


def data_for(estimator_class):
    return X, (Y_CLF if estimator_class is RTRLClassifier else Y_REG)


def small(estimator_class, **params):
    params = {"n_hidden": 4, "max_iter": 5, "random_state": 0, **params}
    return estimator_class(**params)


def search_on_cluster(search, client, X, y):
    """Fit ``search`` through joblib's dask backend; return the tasks run."""
    with distributed.get_task_stream(client=client) as tasks:
        with joblib.parallel_config(backend="dask"):
            search.fit(X, y)
    return tasks.data


def assert_same_search(on_cluster, sequential):
    np.testing.assert_array_equal(
        on_cluster.cv_results_["mean_test_score"],
        sequential.cv_results_["mean_test_score"],
    )
    assert on_cluster.best_params_ == sequential.best_params_
    np.testing.assert_array_equal(
        on_cluster.best_estimator_._flat_params,
        sequential.best_estimator_._flat_params,
    )


def assert_ran_on_workers(tasks, client):
    workers = set(client.scheduler_info()["workers"])
    assert tasks, "nothing ran on the cluster"
    assert {task["worker"] for task in tasks} <= workers


@pytest.mark.parametrize("estimator_class", [RTRLRegressor, RTRLClassifier])
def test_grid_search_on_a_dask_cluster_matches_a_sequential_run(
    estimator_class, client
):
    grid = {"n_hidden": [4, 6], "learning_rate_init": [0.01, 0.05]}
    Xd, y = data_for(estimator_class)

    def make():
        return GridSearchCV(small(estimator_class), grid, cv=3)

    sequential = make().fit(Xd, y)
    on_cluster = make()
    tasks = search_on_cluster(on_cluster, client, Xd, y)

    assert_ran_on_workers(tasks, client)
    assert_same_search(on_cluster, sequential)
    assert len(on_cluster.cv_results_["params"]) == 4
    np.testing.assert_array_equal(on_cluster.predict(Xd), sequential.predict(Xd))


@pytest.mark.parametrize("estimator_class", [RTRLRegressor, RTRLClassifier])
def test_randomized_search_on_a_dask_cluster_matches_a_sequential_run(
    estimator_class, client
):
    distributions = {
        "n_hidden": randint(4, 7),
        "learning_rate_init": loguniform(1e-3, 1e-1),
        "activation": ["tanh", "relu"],
    }

    def make():
        return RandomizedSearchCV(
            small(estimator_class),
            distributions,
            n_iter=4,
            cv=KFold(3, shuffle=True, random_state=0),
            random_state=0,
        )

    Xd, y = data_for(estimator_class)
    sequential = make().fit(Xd, y)
    on_cluster = make()
    tasks = search_on_cluster(on_cluster, client, Xd, y)

    assert_ran_on_workers(tasks, client)
    assert_same_search(on_cluster, sequential)
    # The same candidates were drawn: the sampling does not depend on where
    # the fits run.
    assert on_cluster.cv_results_["params"] == sequential.cv_results_["params"]


def test_halving_grid_search_on_a_dask_cluster_matches_a_sequential_run(client):
    # Successive halving spends a budget of epochs (max_iter): many candidates
    # get a few, the survivors more.
    grid = {"n_hidden": [4, 5, 6], "learning_rate_init": [0.003, 0.03]}

    def make():
        return HalvingGridSearchCV(
            small(RTRLRegressor),
            grid,
            resource="max_iter",
            min_resources=2,
            max_resources=8,
            factor=2,
            cv=3,
            random_state=0,
        )

    sequential = make().fit(X, Y_REG)
    on_cluster = make()
    tasks = search_on_cluster(on_cluster, client, X, Y_REG)

    assert_ran_on_workers(tasks, client)
    assert_same_search(on_cluster, sequential)
    # Fewer candidates in each round, each with a larger budget.
    assert list(on_cluster.n_candidates_) == [6, 3, 2]
    assert list(on_cluster.n_resources_) == [2, 4, 8]
    assert on_cluster.best_estimator_.max_iter == 8


# -- out-of-core training: blocks of a dask collection into partial_fit ------
N_BLOCKS = 4
X3 = RNG.normal(size=(40, 5, 2))  # 40 sequences of 5 steps, 2 features
Y3 = X3[:, -1, 0] - X3[:, -2, 1]


def chunked(array):
    """A dask array of ``array`` in N_BLOCKS blocks along the first axis."""
    return da.from_array(array, chunks=(len(array) // N_BLOCKS,) + array.shape[1:])


def partial_fit_by_hand(est, X, y, **fit_params):
    est = clone(est)
    for X_block, y_block in zip(
        np.array_split(X, N_BLOCKS), np.array_split(y, N_BLOCKS)
    ):
        est.partial_fit(X_block, y_block, **fit_params)
    return est


@pytest.mark.parametrize("layout", ["2d", "3d", "stream"])
def test_incremental_streams_dask_blocks_into_partial_fit(layout, client):
    if layout == "2d":
        # Univariate sequences, one per row, chunked along the sequence axis.
        X, y, est = X3[:, :, 0], Y3, small(RTRLRegressor)
        dX = chunked(X)
    elif layout == "3d":
        X, y, est = X3, Y3, small(RTRLRegressor)
        # dask-ml addresses the blocks of an array as (name, i, 0), which
        # exist only for 2D arrays; hand it the blocks of a 3D array as the
        # partitions of a bag instead, each arriving as one 3D array.
        dX = db.from_delayed(list(chunked(X).to_delayed().ravel()))
    else:
        # One long stream chunked along time: the rows are time steps, and
        # each partial_fit picks up the hidden state the previous one left.
        X = X3.reshape(-1, 2)
        y = np.roll(X[:, 0], 1)
        est = small(RTRLRegressor, stateful=True)
        dX = chunked(X)

    with distributed.get_task_stream(client=client) as tasks:
        incremental = dask_ml_wrappers.Incremental(est, shuffle_blocks=False)
        incremental.fit(dX, chunked(y))
    fitted = incremental.estimator_
    by_hand = partial_fit_by_hand(est, X, y)

    assert_ran_on_workers(tasks.data, client)
    assert fitted.n_iter_ == by_hand.n_iter_ == N_BLOCKS
    assert fitted.t_ == by_hand.t_ == X3.shape[0] * X3.shape[1]
    assert fitted.loss_curve_ == by_hand.loss_curve_
    for name, value in by_hand.params_.items():
        np.testing.assert_array_equal(fitted.params_[name], value, err_msg=name)
    np.testing.assert_array_equal(fitted.predict(X), by_hand.predict(X))


def test_incremental_classifier_gets_classes_and_predicts_blockwise(client):
    X, y = X3[:, :, 0], (Y3 > 0).astype(int)
    est = small(RTRLClassifier)

    incremental = dask_ml_wrappers.Incremental(est, shuffle_blocks=False)
    incremental.fit(chunked(X), chunked(y), classes=[0, 1])
    by_hand = partial_fit_by_hand(est, X, y, classes=[0, 1])

    np.testing.assert_array_equal(incremental.estimator_.classes_, [0, 1])
    # Each sequence is predicted on its own, so a blockwise prediction over
    # the dask array is the prediction over the whole array.
    predicted = incremental.predict(chunked(X))
    assert predicted.numblocks == (N_BLOCKS,)
    np.testing.assert_array_equal(predicted.compute(), by_hand.predict(X))
    np.testing.assert_array_equal(
        incremental.estimator_.predict_proba(X), by_hand.predict_proba(X)
    )
