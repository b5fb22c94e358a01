"""Gaussian pieces of the clustering family: covariances from a partition, whitening,
component log densities and the profile (classification) log-likelihood, all in torch."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

COVARIANCE_TYPES = ("full", "diag", "spherical")


def _factor(S: torch.Tensor, what: str) -> torch.Tensor:
    L, info = torch.linalg.cholesky_ex(S)
    if bool((info != 0).any()) or not bool(torch.isfinite(L).all()):
        raise ValueError(f"the covariance of {what} is not positive definite in floating "
                         "point; increase reg_covar or rescale X.")
    return L


def estimate_covariances(X: torch.Tensor, labels: np.ndarray, K: int, covariance_type: str,
                         reg_covar: float, previous: tuple | None = None,
                         owner: str = "ILASDPClustering"):
    """Means, covariances ``(K, p, p)`` and sizes of the clusters of ``labels``.

    Regularised as ``S_k + reg_covar * (tr S_k / p + tr S / p * 1e-3) I`` (``S`` the pooled
    covariance keeps a floor when a cluster is degenerate).  A full covariance of a cluster
    with ``n_k <= p`` points falls back to the diagonal; a cluster with fewer than two
    points takes the pooled spherical covariance (or its previous one) and an empty cluster
    keeps its previous mean and covariance — each with a ``UserWarning``.
    """
    n, p = X.shape
    lab = torch.as_tensor(np.asarray(labels), device=X.device)
    pooled = X.T.cov(correction=0).reshape(p, p) if n > 1 else torch.eye(p, dtype=X.dtype,
                                                                          device=X.device)
    floor = float(torch.diagonal(pooled).mean()) * 1e-3 + 1e-12
    eye = torch.eye(p, dtype=X.dtype, device=X.device)
    means = torch.zeros(K, p, dtype=X.dtype, device=X.device)
    covs = torch.zeros(K, p, p, dtype=X.dtype, device=X.device)
    counts = torch.zeros(K, dtype=X.dtype, device=X.device)
    notes = []
    for k in range(K):
        Xk = X[lab == k]
        nk = Xk.shape[0]
        counts[k] = nk
        if nk == 0:
            if previous is not None:
                means[k], covs[k] = previous[0][k], previous[1][k]
            else:
                means[k], covs[k] = X.mean(0), torch.diagonal(pooled).mean() * eye
            notes.append(f"cluster {k} is empty (it keeps its previous mean and covariance)")
            continue
        means[k] = Xk.mean(0)
        if nk < 2:
            covs[k] = (previous[1][k] if previous is not None
                       else torch.diagonal(pooled).mean() * eye + floor * eye)
            notes.append(f"cluster {k} has {nk} point (the pooled covariance is used)")
            continue
        R = Xk - means[k]
        S = R.T @ R / nk
        ct = covariance_type
        if ct == "full" and nk <= p:
            ct = "diag"
            notes.append(f"cluster {k} has {nk} <= {p} points (a diagonal covariance is used)")
        if ct == "diag":
            S = torch.diag(torch.diagonal(S))
        elif ct == "spherical":
            S = torch.diagonal(S).mean() * eye
        ridge = reg_covar * float(torch.diagonal(S).mean()) + reg_covar * floor
        covs[k] = S + ridge * eye
    if notes:
        warnings.warn(f"{owner}: " + "; ".join(notes) + ". Consider fewer clusters or a "
                      "larger reg_covar.", UserWarning, stacklevel=3)
    return means, covs, counts


def whiten(X: torch.Tensor, covs: torch.Tensor):
    """``Y_k = X L_k^{-T}`` (so squared distances of ``Y_k`` are Mahalanobis under
    ``Sigma_k = L_k L_k^T``) and ``log det Sigma_k``."""
    L = _factor(covs, "a cluster")
    Y = torch.linalg.solve_triangular(L, X.T.expand(L.shape[0], *X.T.shape), upper=False)
    logdet = 2 * torch.log(torch.diagonal(L, dim1=1, dim2=2)).sum(1)
    return Y.transpose(1, 2), logdet


def component_log_prob(X: torch.Tensor, means: torch.Tensor, covs: torch.Tensor) -> torch.Tensor:
    """``log N(x_i; mu_k, Sigma_k)`` as an (n, K) tensor."""
    L = _factor(covs, "a component")
    n, p = X.shape
    R = (X[None, :, :] - means[:, None, :]).transpose(1, 2)  # (K, p, n)
    Z = torch.linalg.solve_triangular(L, R, upper=False)
    maha = (Z * Z).sum(1)  # (K, n)
    logdet = 2 * torch.log(torch.diagonal(L, dim1=1, dim2=2)).sum(1)
    return (-0.5 * (maha + logdet[:, None] + p * math.log(2 * math.pi))).T


def profile_log_likelihood(X: torch.Tensor, labels: np.ndarray, means, covs) -> float:
    """``sum_i log N(x_i; mean of its cluster, Sigma of its cluster)`` (labels as
    parameters: the classification likelihood the SDPs relax)."""
    lp = component_log_prob(X, means, covs)
    idx = torch.as_tensor(np.asarray(labels), device=X.device)
    return float(lp.gather(1, idx[:, None]).sum())
