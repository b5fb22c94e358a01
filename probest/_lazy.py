"""PEP 562 lazy exports shared by probest's subpackages.

A family's ``__init__`` names what it exports and the private module holding each name;
nothing is imported until an attribute is first read, so ``import probest.flows`` does not
import zuko, POT or torchdiffeq::

    __getattr__, __dir__, __all__ = attach(__name__, {"FlowDensityEstimator": "_density"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def attach(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list], list]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` exporting ``exports``.

    ``exports`` maps a public name to the submodule defining it, relative (``"_gmm"``) or
    absolute (``"probest.shift._glm"``).
    """
    names = sorted(exports)

    def __getattr__(name: str) -> Any:
        if name in exports:
            mod = exports[name]
            mod = mod if mod.startswith("probest.") else f"{package}.{mod}"
            return getattr(importlib.import_module(mod), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return list(names)

    return __getattr__, __dir__, list(names)
