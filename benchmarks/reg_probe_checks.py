"""Probe: scikit-learn's estimator checks on an RTRLRegressor at candidate settings."""

import json
import sys
import time
import warnings

from sklearn.utils.estimator_checks import check_estimator

from skrtrl import RTRLRegressor

params = json.loads(sys.argv[1])
est = RTRLRegressor(**params)
expected = {
    "check_sample_weight_equivalence_on_dense_data": "minibatch",
    "check_sample_weight_equivalence_on_sparse_data": "minibatch",
}
t = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    results = check_estimator(est, on_fail=None, expected_failed_checks=expected)
bad = [r for r in results if r["status"] == "failed"]
print(f"{len(results)} checks, {len(bad)} failed, {time.perf_counter() - t:.0f} s")
for r in bad:
    print(r["check_name"], repr(r["exception"])[:400])
