"""Synthetic generators with known parameters, and offline loaders.

Each family contributes a private module (``_mixture.py``, ``_shift.py``, ...); names are
resolved lazily so importing one generator does not import every family's dependencies.
"""

from __future__ import annotations

import importlib
from typing import Any

_GENERATORS = {
    "make_federated_gmm": "_mixture",
    "make_covariate_shift": "_shift",
    "make_glm": "_glm",
    "make_flow_toy": "_flows",
    "make_gp_classification": "_gaussian_process",
    "load_gp_benchmark": "_gaussian_process",
}

__all__ = sorted(_GENERATORS)


def __getattr__(name: str) -> Any:
    if name in _GENERATORS:
        try:
            mod = importlib.import_module(f"probest.datasets.{_GENERATORS[name]}")
        except ModuleNotFoundError as exc:
            if exc.name == f"probest.datasets.{_GENERATORS[name]}":
                raise AttributeError(f"{name} is not available yet in this version of probest.") from exc
            raise
        return getattr(mod, name)
    raise AttributeError(f"module 'probest.datasets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
