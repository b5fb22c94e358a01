"""probest.flows — normalizing flows, flow matching and discretized logistic mixtures.

* :class:`FlowDensityEstimator` — zuko NSF/MAF/RealNVP, an EBFlow fully-connected flow
  (MLE or score matching) and a small TARFlow, with preprocessing Jacobians, dequantization
  and EMA;
* :class:`FlowMatchingEstimator` — conditional flow matching (independent / exact-OT /
  Sinkhorn couplings) with exact ODE log-likelihoods;
* :class:`DiscretizedLogisticMixture` — the PixelCNN++ likelihood as a Pyro distribution, and
  :class:`AutoregressiveDLMEstimator`, a MADE over integer data using it.

Every estimator's ``to_pyro(frozen=...)`` is a Pyro distribution with
``event_shape == (n_features,)``.  Submodules import lazily (PEP 562): ``import probest.flows``
does not import zuko, POT or torchdiffeq.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "DiscretizedLogisticMixture": "_dlm",
    "FlowDensityEstimator": "_density",
    "FlowMatchingEstimator": "_matching",
    "AutoregressiveDLMEstimator": "_autoregressive",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"probest.flows.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'probest.flows' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
