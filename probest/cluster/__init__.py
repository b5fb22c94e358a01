"""probest.cluster — clustering by semidefinite programs.

* :class:`SDPKMeans` — the Peng–Wei SDP relaxation of K-means.
* :class:`ILASDPClustering` — the iterative likelihood-adjusted SDP (iLA-SDP) for clusters
  with different covariances (Zhuang, Chen & Yang, ICML 2023).

Solvers: ``"cvxpy"`` (SCS, the reference), ``"nlr"`` (nonnegative low-rank
Burer–Monteiro in torch, CPU/GPU, with a certificate), ``"sketch"`` (subsample and lift)
and ``"auto"``.
"""

from __future__ import annotations

from probest._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "SDPKMeans": "_sdpkmeans",
    "ILASDPClustering": "_ilasdp",
})
