"""Importing skrtrl from a source tree whose kernels were never built.

A fresh clone has every Python module but no compiled kernel; imported from
its root (``python -c "import skrtrl"``, ``python -m pytest``) it must say
that it is not built and how to build it, not name one missing kernel.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import skrtrl

PACKAGE_DIR = Path(skrtrl.__file__).resolve().parent


def unbuilt_copy(root):
    """The package's Python sources under root/skrtrl, without any build."""
    for source in PACKAGE_DIR.rglob("*.py"):
        target = root / "skrtrl" / source.relative_to(PACKAGE_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    assert not list((root / "skrtrl").rglob("*.so"))
    assert not list((root / "skrtrl").rglob("*.pyd"))


def run_python(code, cwd):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_unbuilt_source_tree_says_how_to_build(tmp_path):
    unbuilt_copy(tmp_path)
    # A subpackage first imports skrtrl itself, so it says the same.
    result = run_python("import skrtrl.datasets", tmp_path)
    assert result.returncode != 0
    message = result.stderr
    assert "ImportError: skrtrl's compiled kernels are not built" in message
    assert "pip install --no-build-isolation -e ." in message
    assert "python setup.py build_ext --inplace" in message
    assert str(tmp_path.resolve()) in message  # where to run them
    # One clear error, not the chained ModuleNotFoundError of a kernel.
    assert "ModuleNotFoundError" not in message


def test_other_missing_modules_are_not_blamed_on_the_build(tmp_path):
    # A missing dependency (here a module the estimators import) keeps its
    # own error: only the kernels are a build problem.
    unbuilt_copy(tmp_path)
    estimators = tmp_path / "skrtrl" / "_estimators.py"
    estimators.write_text(
        "import skrtrl_missing_dependency\n" + estimators.read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    result = run_python("import skrtrl", tmp_path)
    assert result.returncode != 0
    assert "No module named 'skrtrl_missing_dependency'" in result.stderr
    assert "not built" not in result.stderr
