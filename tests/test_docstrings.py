"""Every public class and function documents itself with a runnable example."""

import doctest
import importlib
import inspect

import matplotlib
import pytest

import skrtrl

matplotlib.use("Agg")

PUBLIC_MODULES = [
    "skrtrl",
    "skrtrl.datasets",
    "skrtrl.export",
    "skrtrl.inspection",
    "skrtrl.river",
    "skrtrl.sequences",
]


def public_objects():
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                yield f"{module_name}.{name}", obj


PUBLIC = dict(public_objects())
#: Examples that need an optional package that no extra of skrtrl installs.
NEEDS = {"skrtrl.export.to_torch": "torch"}


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_object_has_a_numpydoc_docstring_with_examples(name):
    doc = inspect.getdoc(PUBLIC[name]) or ""
    assert "Examples\n--------" in doc, f"{name} has no Examples section"
    if inspect.isfunction(PUBLIC[name]):
        assert (
            "Parameters\n----------" in doc
            or not inspect.signature(PUBLIC[name]).parameters
        )
        assert "Returns\n-------" in doc


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_docstring_examples_run(name):
    finder = doctest.DocTestFinder(recurse=False)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    obj = PUBLIC[name]
    module = inspect.getmodule(obj)
    for test in finder.find(obj, name, module=module, globs={}):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.attempted > 0, f"{name}: no example was run"
    assert result.failed == 0, f"{name}: {result.failed} examples failed"


def test_version_is_exported():
    assert isinstance(skrtrl.__version__, str)
