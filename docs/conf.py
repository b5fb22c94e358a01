"""Sphinx configuration for the probest documentation site.

Build (offline, warnings are errors, as ``.ci/run`` does)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

The user guide is the Markdown in ``docs/`` (read through MyST), the API reference is generated
from the numpydoc docstrings (``docs/api.md`` -> ``docs/api/generated/``, not committed) and the
benchmark tables are ``benchmarks/RESULTS.md``, included by ``docs/benchmarks.md``.
Nothing is fetched from the network: no intersphinx, no remote images or fonts.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document this checkout even when it is not installed
os.environ.setdefault("MPLBACKEND", "Agg")

import probest  # noqa: E402

sys.path.insert(0, str(ROOT / "docs"))
import _public_api  # noqa: E402

project = "probest"
author = "probest developers"
copyright = "probest developers, BSD-3-Clause"
release = probest.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
]

root_doc = "index"
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
templates_path = ["_templates"]
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]

# --- API reference: autosummary stubs from the docstrings (numpydoc format) ----------------
# regenerated on every build, so a removed public object leaves no stale page behind
shutil.rmtree(ROOT / "docs" / "api" / "generated", ignore_errors=True)
autosummary_generate = True
autosummary_ignore_module_all = False  # a module with __all__ lists exactly __all__
autosummary_imported_members = False  # a module without __all__ lists what it defines
# The module pages list exactly _public_api.public_names (a lazy family's __all__): autosummary
# alone cannot see through the PEP 562 __dir__ of the lazy packages.
autosummary_context = {"public_api": {m: _public_api.grouped(m) for m in _public_api.MODULES}}
autodoc_default_options = {"members": False}
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autodoc_inherit_docstrings = True
numpydoc_show_class_members = False  # the class template lists the methods itself
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
# Checked on every documented object at build time (a failure is a warning, so -W fails):
# GL06 unknown section, GL07 sections out of order, GL10 "..." typo in a directive,
# SS01 no summary line, PR06 "integer"/"boolean"/"string" instead of int/bool/str,
# YD01 a generator without a Yields section.  The public-API completeness checks
# (Parameters/Attributes/Examples on every public object) are tests/test_docstrings.py.
numpydoc_validation_checks = {"GL06", "GL07", "GL10", "SS01", "PR06", "YD01"}

# --- MyST (the Markdown user guide) -------------------------------------------------------
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3  # "[..](shift.md#bad-input)" and "RESULTS.md#flows" resolve

# --- HTML: the pydata theme, no network access at build or view time ----------------------
html_theme = "pydata_sphinx_theme"
html_title = f"probest {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "icon_links": [],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_show_sourcelink = False

# The guide's pages link to files outside docs/ the way GitHub shows them
# ("../benchmarks/RESULTS.md#flows"); in the site those tables are the "benchmarks" page.
_OUTSIDE_LINKS = {"../benchmarks/RESULTS.md": "benchmarks.md"}


def _rewrite_outside_links(app, docname, source):
    text = source[0]
    for old, new in _OUTSIDE_LINKS.items():
        text = re.sub(rf"\]\({re.escape(old)}(#[^)]*)?\)", lambda m, new=new: f"]({new}{m.group(1) or ''})",
                      text)
    source[0] = text


def _skip_member(app, what, name, obj, skip, options):
    # scikit-learn generates set_fit_request & co. for metadata routing on every estimator;
    # their docstrings point into scikit-learn's own site.
    if re.fullmatch(r"set_\w+_request", name):
        return True
    return None


def setup(app):
    app.connect("source-read", _rewrite_outside_links)
    app.connect("autodoc-skip-member", _skip_member)
