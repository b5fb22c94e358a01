"""Every public class and function has a numpydoc docstring whose examples run.

The public API is ``docs/_public_api.py`` (what the docs site's API reference lists).  For each
object: the docstring parses as numpydoc without warnings; it has a Parameters section naming
exactly the signature's parameters, classes an Attributes section (estimators: fitted
attributes ending in ``_``), and an Examples section with at least one example that is not
skipped; and every example in it and in the docstrings of the methods it defines passes
(``doctest`` with ELLIPSIS and NORMALIZE_WHITESPACE; pytest's ``filterwarnings = error``
applies, so an example that warns fails).
"""

from __future__ import annotations

import doctest
import importlib.util
import inspect
import io
import pathlib
import re

import pytest
from sklearn.base import BaseEstimator

numpydoc_docscrape = pytest.importorskip("numpydoc.docscrape")

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load_public_api():
    spec = importlib.util.spec_from_file_location("_public_api", ROOT / "docs" / "_public_api.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


PUBLIC_API = _load_public_api()
OBJECTS = PUBLIC_API.public_objects()
IDS = [name for name, _ in OBJECTS]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _doc(obj):
    if inspect.isclass(obj):
        return numpydoc_docscrape.ClassDoc(obj, config={"show_class_members": False})
    return numpydoc_docscrape.FunctionDoc(obj)


def _signature_params(obj) -> list[str]:
    if inspect.isclass(obj):
        # a class documents the parameters of its own (probest-defined) __init__; one that
        # inherits object's or Exception's takes none worth a section
        if not any("__init__" in vars(c) for c in obj.__mro__ if c.__module__.startswith("probest")):
            return []
    try:
        sig = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
    except (TypeError, ValueError):
        return []
    out = []
    for p in sig.parameters.values():
        if p.name in ("self", "cls"):
            continue
        prefix = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        out.append(prefix + p.name)
    return out


def _documented_names(section) -> list[str]:
    names = []
    for param in section:
        names += [n.strip() for n in param.name.split(",") if n.strip()]
    return names


def test_public_api_is_the_api_page():
    """docs/api.md documents exactly the modules the docstring tests check."""
    text = (ROOT / "docs" / "api.md").read_text()
    block = re.search(r"```\{eval-rst\}\n(.*?)```", text, flags=re.S).group(1)
    listed = [ln.strip() for ln in block.splitlines() if ln.strip().startswith("probest")]
    assert listed == list(PUBLIC_API.MODULES)
    assert len(OBJECTS) >= 40  # the lazy families' __all__ were seen through


@pytest.mark.parametrize(("name", "obj"), OBJECTS, ids=IDS)
def test_numpydoc_sections(name, obj):
    assert obj.__doc__, f"{name} has no docstring"
    doc = _doc(obj)  # numpydoc's UserWarnings (unknown section, bad underline) are errors here
    assert doc["Summary"], f"{name}: no one-line summary"
    params = _signature_params(obj)
    if params:
        documented = _documented_names(doc["Parameters"])
        assert documented == params, (
            f"{name}: Parameters section {documented} does not match the signature {params}"
        )
    if inspect.isclass(obj) and not issubclass(obj, BaseException):
        attrs = _documented_names(doc["Attributes"])
        assert attrs, f"{name}: no Attributes section"
        if issubclass(obj, BaseEstimator):
            assert any(a.endswith("_") for a in attrs), f"{name}: no fitted attribute (name_) listed"
    examples = "\n".join(doc["Examples"])
    assert ">>>" in examples, f"{name}: no Examples section with code"
    parsed = doctest.DocTestParser().get_examples(examples)
    assert any(not ex.options.get(doctest.SKIP) for ex in parsed), f"{name}: every example is skipped"


@pytest.mark.parametrize(("name", "obj"), OBJECTS, ids=IDS)
def test_docstring_examples_pass(name, obj):
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(obj, name, globs={}) if t.examples]
    assert tests, f"{name}: no doctest found"
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    out = io.StringIO()
    for test in tests:
        runner.run(test, out=out.write)
    res = runner.summarize(verbose=False)
    assert res.failed == 0, out.getvalue()[-6000:]
    assert res.attempted > 0
