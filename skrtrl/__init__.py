"""skrtrl: recurrent networks trained by Real-Time Recurrent Learning.

The estimators follow scikit-learn's API; see :class:`RTRLRegressor` and
:class:`RTRLClassifier`.
"""

import os as _os

try:
    from ._estimators import RTRLClassifier, RTRLRegressor
except ModuleNotFoundError as _exc:
    # A source tree whose Cython kernels were never compiled (a fresh clone,
    # imported from its root by ``python -m pytest`` or ``python -c``) has
    # every module but the kernels. Say so instead of naming one kernel.
    if not (_exc.name or "").startswith(f"{__name__}._kernels."):
        raise
    _root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    raise ImportError(
        f"skrtrl's compiled kernels are not built: {_exc.name} cannot be "
        f"imported from {_os.path.dirname(_os.path.abspath(__file__))}. This is "
        "a source tree; build it first, from its root directory "
        f"({_root}), in one of two ways:\n"
        "  pip install --no-build-isolation -e .   (editable install; needs "
        "Cython, numpy and scipy installed)\n"
        "  python setup.py build_ext --inplace     (compiles the kernels next "
        "to their sources)\n"
        "To use an installed skrtrl instead, run Python from another directory."
    ) from None

__version__ = "0.1.0.dev0"

__all__ = ["RTRLClassifier", "RTRLRegressor", "__version__"]
