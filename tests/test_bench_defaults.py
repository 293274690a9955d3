"""The data and the stream comparison of benchmarks/bench_defaults.py, tiny.

Only the parts that need neither torch nor aeon: the generated tasks of the
development suite, the scores, the estimators at their defaults and the
prequential stream comparison.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import SGDRegressor

from skrtrl import RTRLClassifier, RTRLRegressor

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_defaults.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_defaults", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reber_test_strings_are_unseen_and_labelled_per_step(bench):
    task = bench.make_reber_task(n_train=30, n_test=60)
    assert task.output == "sequence" and task.metric == "solved"
    seen = {x.argmax(axis=1).tobytes() for x in task.X_train}
    assert task.X_test
    assert all(x.argmax(axis=1).tobytes() not in seen for x in task.X_test)
    for x, y in zip(task.X_test, task.y_test):
        assert x.shape == y.shape and x.shape[1] == 7
        # the final E's row (no legal successor) is dropped
        assert y.sum(axis=1).min() >= 1
    # the targets themselves solve every string; the inputs do not
    assert bench.score(task, task.y_test) == 1.0
    assert bench.score(task, task.X_test) < 1.0


def test_generated_sequence_tasks_have_fresh_test_data(bench):
    xor = bench.make_xor_task(n_train=50, n_test=40, n_steps=12, delay=3)
    assert xor.X_train.shape == (50, 12, 1) and xor.X_test.shape == (40, 12, 1)
    bits = xor.X_test[:, :, 0].astype(int)
    np.testing.assert_array_equal(xor.y_test, bits[:, -1] ^ bits[:, -4])
    assert not np.array_equal(xor.X_train[:40], xor.X_test)

    adding = bench.make_adding_task(n_train=30, n_test=20, n_steps=10)
    assert adding.X_train.shape == (30, 10, 2) and adding.metric == "nrmse"
    assert not np.array_equal(adding.X_train[:20], adding.X_test)


def test_test_seed_draws_a_third_set_for_validation(bench):
    # choose_defaults.py validates on test_seed=2: neither the training
    # draw (seed 0) nor the test draw (seed 1)
    for make, sizes in [
        (bench.make_xor_task, dict(n_train=20, n_test=20, n_steps=12, delay=3)),
        (bench.make_adding_task, dict(n_train=20, n_test=20, n_steps=10)),
    ]:
        test, validation = make(**sizes), make(**sizes, test_seed=2)
        np.testing.assert_array_equal(test.X_train, validation.X_train)
        assert not np.array_equal(test.X_test, validation.X_test)
        assert not np.array_equal(test.X_train, validation.X_test)
    reber = bench.make_reber_task(n_train=30, n_test=60, test_seed=2)
    seen = {x.argmax(axis=1).tobytes() for x in reber.X_train}
    assert reber.X_test
    assert all(x.argmax(axis=1).tobytes() not in seen for x in reber.X_test)


def test_mackey_glass_windows_predict_the_next_value_after_the_training_part(bench):
    task = bench.make_mackey_glass_task(
        n_series=120, n_train_steps=80, window=10, train_stride=5, test_stride=1
    )
    # consecutive test windows overlap: the target of one is the last input
    # of the next
    np.testing.assert_array_equal(task.y_test[:-1], task.X_test[1:, -1, 0])
    assert task.X_test.shape == (30, 10, 1) and len(task.y_train) == 14
    # training statistics: the training windows' values are standardised
    train_values = np.concatenate([task.X_train[:, :, 0].ravel(), task.y_train])
    assert abs(train_values.mean()) < 0.3
    assert abs(train_values.std() - 1) < 0.3


def test_scores_and_the_verdict(bench):
    assert bench.nrmse([1.0, 3.0], [2.0, 2.0]) == pytest.approx(1.0)
    suite = {
        "a": bench.Task("a", None, None, None, None, "classifier"),
        "r": bench.Task("r", None, None, None, None, "regressor", metric="nrmse"),
    }
    fits = [
        dict(set="a", model="skrtrl", score=0.9, fit_seconds=1.0, epochs=5),
        dict(set="a", model="torch", score=0.8, fit_seconds=2.0, epochs=100),
        dict(set="r", model="skrtrl", score=0.2, fit_seconds=1.0, epochs=5),
        dict(set="r", model="torch", score=0.1, fit_seconds=2.0, epochs=100),
    ]
    rows = {r["set"]: r for r in bench.summarise(suite, fits)}
    assert rows["a"]["ok"] is True
    # a larger NRMSE is worse, however fast
    assert rows["r"]["ok"] is False


def test_estimators_are_built_at_their_defaults(bench):
    xor = bench.make_xor_task(n_train=10, n_test=10, n_steps=5, delay=1)
    est = bench.make_skrtrl(xor, 3)
    assert est.get_params() == RTRLClassifier(random_state=3).get_params()

    reber = bench.make_reber_task(n_train=5, n_test=5)
    params = {"n_hidden": 7, "pooling": "max"}
    est = bench.make_skrtrl(reber, 3, params)
    expected = RTRLRegressor(random_state=3, output="sequence", n_hidden=7)
    # pooling reads a target per sequence: not set for per-step targets
    assert est.get_params() == expected.get_params()
    assert bench.make_skrtrl(xor, 0, params).pooling == "max"


def test_online_ar_model_predicts_before_it_learns(bench):
    x = np.sin(np.arange(40) / 3.0)
    y_pred, _ = bench.prequential_sgd_ar(x, order=4, seed=0)
    assert np.isnan(y_pred[:3]).all() and y_pred[3] == 0.0
    model = SGDRegressor(random_state=0)
    for t in range(3, 10):
        lags = x[t - 3 : t + 1][None, :]
        if t > 3:
            assert y_pred[t] == pytest.approx(model.predict(lags)[0])
        model.partial_fit(lags, x[t + 1 : t + 2])


def test_stream_comparison_runs_and_blocks_do_not_matter(bench):
    x = bench.load_stream(n_steps=120)
    first = x[:60]
    assert abs(first.mean()) < 1e-12 and first.std() == pytest.approx(1.0)
    params = {"n_hidden": 4}
    by_rows, _ = bench.prequential_skrtrl(x[:40], 0, params, block=1)
    by_block, _ = bench.prequential_skrtrl(x[:40], 0, params, block=25)
    np.testing.assert_allclose(by_rows, by_block, rtol=1e-10, atol=1e-12)

    rows = bench.run_stream([0], params, n_steps=120, order=4, block=50)
    assert [r["model"] for r in rows] == ["persistence", "skrtrl", "SGD AR(4)"]
    assert all(np.isfinite(r["nrmse"]) and r["nrmse"] > 0 for r in rows)
