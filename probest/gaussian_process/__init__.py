"""probest.gaussian_process — GP classification and regression with Laplace, EP, VI (CVI) and
the hybrid hyperparameter learning of Li et al. (ICML 2023): CVI sites, EP-energy learning.

Imports are lazy (GPyTorch loads on first use)::

    from probest.gaussian_process import GaussianProcessClassifier
    clf = GaussianProcessClassifier(inference="hybrid").fit(X, y)
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "GaussianProcessClassifier": "_classifier",
    "GaussianProcessRegressor": "_regressor",
    "plot_objective_surface": "_plot",
    "objective_surface": "_plot",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"probest.gaussian_process.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'probest.gaussian_process' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
