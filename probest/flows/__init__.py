"""probest.flows — normalizing flows, flow matching and discretized logistic mixtures.

* :class:`FlowDensityEstimator` — zuko NSF/MAF/RealNVP, an EBFlow fully-connected flow
  (MLE or score matching) and a small TARFlow, with preprocessing Jacobians, dequantization
  and EMA;
* :class:`FlowMatchingEstimator` — conditional flow matching (independent / exact-OT /
  Sinkhorn couplings) with exact ODE log-likelihoods;
* :class:`DiscretizedLogisticMixture` — the PixelCNN++ likelihood as a Pyro distribution, and
  :class:`AutoregressiveDLMEstimator`, a MADE over integer data using it.

Every estimator's ``to_pyro(frozen=...)`` is a Pyro distribution with
``event_shape == (n_features,)``.  :class:`DegenerateDataWarning` flags constant columns
(a continuous density does not exist there).  Submodules import lazily (PEP 562): ``import probest.flows``
does not import zuko, POT or torchdiffeq.
"""

from __future__ import annotations

from probest._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "DegenerateDataWarning": "_preprocess",
    "DiscretizedLogisticMixture": "_dlm",
    "FlowDensityEstimator": "_density",
    "FlowMatchingEstimator": "_matching",
    "AutoregressiveDLMEstimator": "_autoregressive",
})
