"""Deployment: ONNX export and hand-over to torch.

:func:`to_onnx` converts a fitted estimator to an ONNX model of whole
sequences through skl2onnx (:func:`register_onnx_converters` makes
``skl2onnx.to_onnx`` convert the estimators, also inside pipelines);
:func:`onnx_step_model` gives one time step with the state as input and
output, for streams and closed loops, and :func:`initial_step_state` the
state to start from. :func:`to_torch` returns the matching ``torch.nn``
layer and readout. onnx, skl2onnx and onnxruntime come with the ``onnx``
extra (``pip install skrtrl[onnx]``); torch is not a dependency. Both are
imported only when a function needs them.
"""

from ._onnx import (
    initial_step_state,
    onnx_step_model,
    register_onnx_converters,
    to_onnx,
)
from ._torch import to_torch

__all__ = [
    "initial_step_state",
    "onnx_step_model",
    "register_onnx_converters",
    "to_onnx",
    "to_torch",
]
