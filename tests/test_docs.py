"""Checks of the documentation sources that need no Sphinx.

* The API reference (doc/api/index.rst) lists every public name (the
  ``__all__`` of skrtrl and of each public subpackage), and nothing else.
* Its pages land where the estimators' HTML representation links to.
* The examples in the user guide run and print what the page says.
"""

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import skrtrl

DOC_DIR = Path(__file__).resolve().parents[1] / "doc"
API_INDEX = DOC_DIR / "api" / "index.rst"

pytestmark = pytest.mark.skipif(
    not API_INDEX.is_file(), reason="documentation sources not present"
)


def _autosummary_entries(path):
    """(module, name, toctree) for every entry of every autosummary block."""
    entries = []
    module = None
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        match = re.match(r"\.\. (?:current)?module:: (\S+)", line)
        if match:
            module = match.group(1)
        if line.strip() == ".. autosummary::":
            toctree = None
            i += 1
            # Options, then a blank line, then one entry per indented line.
            while i < len(lines) and lines[i].strip().startswith(":"):
                option = re.match(r"\s*:toctree:\s*(\S+)", lines[i])
                if option:
                    toctree = option.group(1)
                i += 1
            while i < len(lines) and (
                not lines[i].strip() or lines[i].startswith((" ", "\t"))
            ):
                name = lines[i].strip()
                if name:
                    entries.append((module, name, toctree))
                i += 1
            continue
        i += 1
    return entries


def _public_modules():
    """skrtrl and each of its subpackages whose name has no leading underscore."""
    modules = [skrtrl]
    for info in pkgutil.iter_modules(skrtrl.__path__):
        if not info.name.startswith("_"):
            modules.append(importlib.import_module(f"skrtrl.{info.name}"))
    return modules


def _public_names():
    names = set()
    for module in _public_modules():
        names |= {
            f"{module.__name__}.{name}"
            for name in module.__all__
            if not name.startswith("__")
        }
    return names


def test_public_subpackages_are_found():
    assert "skrtrl.datasets" in {m.__name__ for m in _public_modules()}


def test_api_reference_lists_every_public_name():
    listed = [f"{module}.{name}" for module, name, _ in _autosummary_entries(API_INDEX)]
    assert len(listed) == len(set(listed)), "a name is listed twice"
    public = _public_names()
    missing = sorted(public - set(listed))
    unknown = sorted(set(listed) - public)
    assert not missing, f"public names missing from {API_INDEX}: {missing}"
    assert not unknown, f"names in {API_INDEX} that are not public: {unknown}"


@pytest.mark.parametrize("Estimator", [skrtrl.RTRLRegressor, skrtrl.RTRLClassifier])
def test_doc_link_matches_api_page(Estimator):
    # autosummary writes api/<toctree>/<module>.<name>.rst, which Sphinx
    # turns into api/<toctree>/<module>.<name>.html.
    entries = {
        f"{module}.{name}": toctree
        for module, name, toctree in _autosummary_entries(API_INDEX)
    }
    qualname = f"skrtrl.{Estimator.__name__}"
    page = f"api/{entries[qualname]}/{qualname}.html"
    link = Estimator()._get_doc_link()
    assert link.endswith("/" + page), (link, page)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("page", ["user_guide.rst", "deploying.rst"])
def test_doc_page_examples_run(page):
    result = doctest.testfile(
        str(DOC_DIR / page),
        module_relative=False,
        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
        raise_on_error=False,
        verbose=False,
        report=True,
    )
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} failing examples in {page}"
