"""probest.shift — covariate shift: MLE vs maximum weighted likelihood (MWLE).

The weighted GLMs (:class:`WeightedLinearRegression`, :class:`WeightedLogisticRegression`)
are the torch MLE models the covariate-shift estimators reweight.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "WeightedLinearRegression": "probest.shift._glm",
    "WeightedLogisticRegression": "probest.shift._glm",
    "DensityRatioEstimator": "probest.shift._ratio",
    "effective_sample_size": "probest.shift._ratio",
    "process_log_weights": "probest.shift._ratio",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'probest.shift' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
