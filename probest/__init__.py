"""probest: maximum-likelihood estimators from recent research behind a scikit-learn API.

Subpackages are imported lazily (PEP 562) so ``import probest`` stays fast and never
imports optional extras (jax, transformers, peft, flwr).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0.dev0"

#: estimator families, one subpackage each.
FAMILIES = (
    "mixture",
    "cluster",
    "gaussian_process",
    "bnn",
    "lora",
    "bandits",
    "shift",
    "flows",
)
_SUBMODULES = (*FAMILIES, "datasets", "metrics", "testing", "viz", "compose", "base")

__all__ = [*_SUBMODULES, "__version__", "all_estimators", "load", "save"]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"probest.{name}")
    if name in ("save", "load"):
        return getattr(importlib.import_module("probest._io"), name)
    raise AttributeError(f"module 'probest' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


def all_estimators(family: str | None = None) -> list[tuple[str, type]]:
    """``[(name, class)]`` of every public estimator, optionally of one family.

    Estimators are the classes in a family's ``__all__`` that derive from sklearn's
    ``BaseEstimator``.  Families that need an optional extra are skipped when it is missing.

    Parameters
    ----------
    family : str, optional
        One of ``probest.FAMILIES`` (``"mixture"``, ``"shift"``, ...); default: every family.

    Returns
    -------
    list of (str, type)
        ``(class name, class)`` pairs sorted by name.

    Examples
    --------
    >>> import probest
    >>> [name for name, cls in probest.all_estimators("mixture")]
    ['FedGMMClassifier', 'FederatedGaussianMixture', 'GaussianMixture']
    """
    from sklearn.base import BaseEstimator

    out = []
    for fam in FAMILIES if family is None else (family,):
        if fam not in FAMILIES:
            raise ValueError(f"unknown family {fam!r}; choose from {', '.join(FAMILIES)}.")
        mod = importlib.import_module(f"probest.{fam}")
        for name in getattr(mod, "__all__", ()):
            try:
                obj = getattr(mod, name)
            except ImportError:
                continue
            if isinstance(obj, type) and issubclass(obj, BaseEstimator):
                out.append((name, obj))
    return sorted(out, key=lambda t: t[0])
