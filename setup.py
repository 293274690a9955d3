"""Build script: compiles the Cython kernels of skrtrl.

Everything else (metadata, dependencies) lives in ``pyproject.toml``.
Set ``SKRTRL_DEBUG=1`` to build the kernels with bounds checking and
wrap-around checks turned on (slow; used to audit the kernels).
"""

import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("SKRTRL_DEBUG", "0") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
}

extensions = [
    Extension(
        "skrtrl._kernels._elman",
        ["skrtrl/_kernels/_elman.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=["-O3"] if not DEBUG else ["-O0", "-g"],
    ),
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
