"""skrtrl: recurrent networks trained by Real-Time Recurrent Learning.

The estimators follow scikit-learn's API; see :class:`RTRLRegressor` and
:class:`RTRLClassifier`.
"""

from ._estimators import RTRLClassifier, RTRLRegressor

__version__ = "0.1.0.dev0"

__all__ = ["RTRLClassifier", "RTRLRegressor", "__version__"]
