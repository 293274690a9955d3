"""Inspection of fitted recurrent nets through their gradients.

Functions return arrays; the Display classes draw them with matplotlib (an
optional dependency, imported only when plotting).
"""

from ._gradients import credit_over_time, input_saliency, recurrent_jacobian_spectrum
from ._plot import CreditOverTimeDisplay, InputSaliencyDisplay, JacobianSpectrumDisplay

__all__ = [
    "CreditOverTimeDisplay",
    "InputSaliencyDisplay",
    "JacobianSpectrumDisplay",
    "credit_over_time",
    "input_saliency",
    "recurrent_jacobian_spectrum",
]
