"""The stacks' feedback by hand in benchmarks/bench_closed_loop_horizon.py.

Stacks take no ``output_feedback`` yet, so the benchmark feeds the previous
value back as an input column and closes the loop itself; for one layer that
must compute what the estimator's output feedback computes.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from skrtrl import RTRLRegressor

SCRIPT = (
    Path(__file__).resolve().parents[1] / "benchmarks" / "bench_closed_loop_horizon.py"
)


@pytest.fixture(scope="module")
def bench():
    # The script imports its sibling benchmarks/former_defaults.py, as it
    # does when run from the repository root.
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("bench_closed_loop", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


@pytest.mark.parametrize("cell", ["egru", "elstm"])
def test_feedback_by_hand_is_output_feedback(bench, cell):
    rng = np.random.RandomState(0)
    z = np.sin(0.3 * np.arange(60)) + 0.05 * rng.standard_normal(60)
    ones = np.ones((60, 1))
    fed = RTRLRegressor(
        n_hidden=4, cell=cell, stateful=True, output_feedback=True, random_state=0
    ).partial_fit(ones[:40], z[:40])
    by_hand = RTRLRegressor(n_hidden=4, cell=cell, stateful=True, random_state=0)
    by_hand.partial_fit(bench._inputs(z[:1]), z[:1])
    for name, value in fed.params_.items():
        if name == "weight_ih":
            value = np.hstack([value, fed.params_["weight_fb"]])
        if name != "weight_fb":
            by_hand.params_[name][...] = value
    origins = np.array([20, 30, 40])
    # The benchmark's horizon and warm-up, shortened to the toy series.
    bench.WARM_UP, bench.HORIZON = 10, 15
    expected = bench.forecast_nrmse(fed, z, origins, scale=1.0)
    got = bench.forecast_nrmse(by_hand, z, origins, scale=1.0)
    assert expected.shape == (15,) and expected[-1] > 1e-3
    np.testing.assert_allclose(got, expected, rtol=1e-10)
