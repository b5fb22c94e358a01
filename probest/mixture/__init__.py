"""probest.mixture — Gaussian mixtures by EM in torch, and FedGMM (federated EM).

* :class:`GaussianMixture` — drop-in for scikit-learn's, on CPU/CUDA, float32/float64,
  with streamed sufficient statistics (``batch_size``) and ``to_pyro()``.
* :class:`FederatedGaussianMixture` — federated EM with shared components and per-client
  weights; engines "local", "torch.distributed" and "flower".
* :class:`FedGMMClassifier` — the FedGMM joint model (GMM on x, per-client weight table,
  conditional experts) for personalised classification and novelty detection;
  engines "local" and "torch.distributed".
"""

from __future__ import annotations

from probest._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "GaussianMixture": "_gmm",
    "FederatedGaussianMixture": "_federated",
    "FedGMMClassifier": "_fedgmm",
})
