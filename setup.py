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

KERNELS = [
    "_interrupt",
    "_blocks",
    "_rtrl",
    "_threads",
    "_bptt",
    "_uoro",
    "_feedback",
    "_stack",
]

extensions = [
    Extension(
        f"skrtrl._kernels.{name}",
        [f"skrtrl/_kernels/{name}.pyx"],
        include_dirs=[np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        # Threads run over the sequences of a minibatch (OpenMP). The kernels
        # never read errno: without it, sqrt is one instruction and the
        # optimizer's per-parameter loop vectorizes (the same results; an
        # element-wise stream of 1,024 units runs about 1.2x faster per step).
        # Nor do they read the floating-point exception flags, and no index
        # relies on signed overflow wrapping around (Python's own flags ask
        # for -fwrapv): without the two, a loop with a select (the gates'
        # sigmoid and tanh) runs four numbers at a time. Neither changes how a
        # number is computed (benchmarks/check_equivalence.py: the float64
        # results are the same bits as without them).
        extra_compile_args=[
            "-fopenmp",
            "-fno-math-errno",
            "-fno-trapping-math",
            "-fno-wrapv",
        ]
        + (["-O0", "-g"] if DEBUG else ["-O3"]),
        extra_link_args=["-fopenmp"],
    )
    for name in KERNELS
]

setup(ext_modules=cythonize(extensions, compiler_directives=directives))
