"""The public API of probest, as the docs site and the docstring tests see it.

One list, read by ``docs/conf.py`` (the API reference pages) and by
``tests/test_docstrings.py`` (every object listed here has a numpydoc docstring with
Parameters / Attributes / Examples, and its examples pass).  A module's public names are its
``__all__`` when it has one (the lazy families), otherwise the classes and functions it
defines whose names do not start with ``_``.
"""

from __future__ import annotations

import importlib
import inspect
import types
from typing import Any

#: modules documented in the API reference, in page order.
MODULES = (
    "probest",
    "probest.shift",
    "probest.mixture",
    "probest.gaussian_process",
    "probest.flows",
    "probest.lora",
    "probest.cluster",
    "probest.bandits",
    "probest.bnn",
    "probest.datasets",
    "probest.metrics",
    "probest.compose",
    "probest.viz",
    "probest.testing",
    "probest.base",
)


def public_names(modname: str) -> list[str]:
    """Public class and function names of ``modname`` (submodules and constants excluded)."""
    mod = importlib.import_module(modname)
    exported = getattr(mod, "__all__", None)
    out = []
    if exported is None:
        for name, obj in vars(mod).items():
            if (not name.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
                    and getattr(obj, "__module__", None) == modname):
                out.append(name)
        return sorted(out)
    for name in exported:
        try:
            obj = getattr(mod, name)
        except AttributeError:  # an export whose module is not there yet
            continue
        if isinstance(obj, types.ModuleType) or not callable(obj):
            continue
        out.append(name)
    return sorted(out)


def public_objects() -> list[tuple[str, Any]]:
    """``[(qualified name, object)]`` of every public class and function, module by module."""
    out = []
    for modname in MODULES:
        mod = importlib.import_module(modname)
        out += [(f"{modname}.{name}", getattr(mod, name)) for name in public_names(modname)]
    return out


def grouped(modname: str) -> dict[str, list[str]]:
    """``{"classes", "exceptions", "functions"}`` name lists of ``modname`` for the page template."""
    mod = importlib.import_module(modname)
    groups: dict[str, list[str]] = {"classes": [], "exceptions": [], "functions": []}
    for name in public_names(modname):
        obj = getattr(mod, name)
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            groups["exceptions"].append(name)
        elif inspect.isclass(obj):
            groups["classes"].append(name)
        else:
            groups["functions"].append(name)
    return groups
