"""Fixtures shared by the test modules.

Plain helper functions that several modules use (data generators, stream
snapshots, the plain-numpy cell equations, finite differences) live in
``tests/_helpers.py``; the registry-driven numpy references of the
conformance suite live in ``tests/_reference.py``. Both are imported by
name (``from _helpers import snapshot``): ``tests/`` is on ``sys.path``
(``pythonpath`` in ``pyproject.toml``).
"""

import warnings

import pytest
from sklearn.exceptions import ConvergenceWarning


@pytest.fixture
def quiet_convergence():
    """Silence ConvergenceWarning: many models train for an epoch or a few,
    on purpose. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("quiet_convergence")``; tests that
    check the warning catch it themselves (``pytest.warns`` records it
    whatever the filters)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield
