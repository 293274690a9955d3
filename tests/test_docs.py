"""Checks of the documentation sources that need no Sphinx.

* The API reference (doc/api/index.rst) lists every public name (the
  ``__all__`` of skrtrl and of each public subpackage), and nothing else.
* Its pages land where the estimators' HTML representation links to.
* The examples in the user guide run and print what the page says (those
  of the section on aeon, sktime, tslearn and pandas need those libraries).
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


#: A section of the user guide that needs optional libraries (the ``interop``
#: extra, part of ``test``); it runs on its own, the rest of the page without.
INTEROP_SECTION = "Coming from aeon, sktime, tslearn or pandas"
INTEROP_MODULES = ("aeon", "sktime", "tslearn", "pandas")


def _cut_section(text, title):
    """(section, rest): the section under ``title``, and the page without it.

    A page without that section is all rest.

    The section runs to the next heading; both parts keep the page's line
    numbers (the lines of the other part become blank), so a failing example
    is reported at its line in the page.
    """
    lines = text.splitlines(keepends=True)

    def is_heading(i):
        under = lines[i + 1].strip() if i + 1 < len(lines) else ""
        return (
            bool(lines[i].strip())
            and len(set(under)) == 1
            and under[0] in "=-~^"
            and len(under) >= len(lines[i].strip())
        )

    start = next((i for i, line in enumerate(lines) if line.strip() == title), None)
    if start is None:
        return "", text
    end = next((i for i in range(start + 2, len(lines)) if is_heading(i)), len(lines))
    blank = ["\n"] * len(lines)
    section = blank[:start] + lines[start:end] + blank[end:]
    rest = lines[:start] + blank[start:end] + lines[end:]
    return "".join(section), "".join(rest)


def _run_examples(text, name, path):
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, {}, name, str(path), 0)
    runner = doctest.DocTestRunner(
        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    )
    runner.run(test)
    return runner.summarize(verbose=False)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("page", ["user_guide.rst", "deploying.rst"])
def test_doc_page_examples_run(page):
    path = DOC_DIR / page
    _, rest = _cut_section(path.read_text(encoding="utf-8"), INTEROP_SECTION)
    result = _run_examples(rest, page, path)
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} failing examples in {page}"


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_user_guide_interop_examples_run():
    for module in INTEROP_MODULES:
        pytest.importorskip(module)
    path = DOC_DIR / "user_guide.rst"
    section, _ = _cut_section(path.read_text(encoding="utf-8"), INTEROP_SECTION)
    result = _run_examples(section, INTEROP_SECTION, path)
    # One or more examples per library.
    assert result.attempted >= 20
    assert result.failed == 0, f"{result.failed} failing examples in the section"


def test_cut_section_splits_at_the_next_heading():
    page = "Intro\n=====\n\n>>> 1\n1\n\nPart\n----\n\n>>> 2\n2\n\nNext\n----\n"
    section, rest = _cut_section(page, "Part")
    assert section.splitlines()[6:8] == ["Part", "----"]
    assert ">>> 1" not in section and ">>> 2" in section and "Next" not in section
    assert ">>> 2" not in rest and ">>> 1" in rest and "Next" in rest
    assert len(section.splitlines()) == len(rest.splitlines()) == len(page.splitlines())


@pytest.mark.parametrize("Estimator", [skrtrl.RTRLRegressor, skrtrl.RTRLClassifier])
def test_documented_defaults_are_the_signatures(Estimator):
    # Every "name : type, default=value" line of the parameter docs states
    # the default of __init__.
    import ast
    import inspect

    signature = inspect.signature(Estimator.__init__).parameters
    stated = dict(re.findall(r"^    (\w+) : .*default=(\S+)$", Estimator.__doc__, re.M))
    assert {"n_hidden", "cell", "max_iter", "tol", "clip_norm"} <= set(stated)
    for name, text in stated.items():
        assert ast.literal_eval(text) == signature[name].default, name
    assert f"min({Estimator._auto_batch_size}, n_sequences)" in Estimator.__doc__
