"""Data sets for recurrent models: bundled data, a text loader and generators."""

from ._generators import (
    REBER_SYMBOLS,
    make_adding_problem,
    make_concept_drift_stream,
    make_copy_task,
    make_delayed_sum,
    make_delayed_xor,
    make_embedded_reber,
    make_mackey_glass,
    make_narendra_plant,
)
from ._japanese_vowels import load_japanese_vowels
from ._text import load_sklearn_descriptions

__all__ = [
    "REBER_SYMBOLS",
    "load_japanese_vowels",
    "load_sklearn_descriptions",
    "make_adding_problem",
    "make_concept_drift_stream",
    "make_copy_task",
    "make_delayed_sum",
    "make_delayed_xor",
    "make_embedded_reber",
    "make_mackey_glass",
    "make_narendra_plant",
]
