"""EM with missing entries (``missing="marginalize"``): each row uses its observed coordinates.

For a row with observed coordinates ``o`` and missing ``m`` the likelihood is the marginal
``sum_k pi_k N(x_o; mu_ko, S_koo)``, and the E-step completes the sufficient statistics with
the conditional moments of the missing block given component ``k``:

    E[x_m | x_o, k]   = mu_km + S_kmo S_koo^{-1} (x_o - mu_ko)
    Cov[x_m | x_o, k] = S_kmm - S_kmo S_koo^{-1} S_kom

so ``s1_k += r_ik E[x | x_o, k]`` and ``s2_k += r_ik (E[x]E[x]^T + Cov)``, with the
conditional covariance placed on the missing block.  This is exact EM for data missing at
random (Ghahramani & Jordan, 1994).  Rows are grouped by missingness pattern so each
pattern costs one batched Cholesky of the ``K`` observed blocks.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from probest.mixture._em import ChunkedData
from probest.mixture._stats import GaussParams, SuffStats


def full_covariances(params: GaussParams) -> torch.Tensor:
    """``(K, d, d)`` covariance matrices whatever the covariance type."""
    K, d = params.means.shape
    cov, ct = params.covariances, params.covariance_type
    if ct == "full":
        return cov
    if ct == "tied":
        return cov.expand(K, d, d)
    if ct == "diag":
        return torch.diag_embed(cov)
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    return cov[:, None, None] * eye


def _patterns(X: torch.Tensor):
    """``(rows, observed, missing)`` index tensors, one triple per missingness pattern."""
    mask = torch.isnan(X)
    pats, inv = torch.unique(mask, dim=0, return_inverse=True)
    for p in range(pats.shape[0]):
        rows = torch.nonzero(inv == p).flatten()
        yield rows, torch.nonzero(~pats[p]).flatten(), torch.nonzero(pats[p]).flatten()


def _conditional(Xg, obs, mis, means, S):
    """Per component: log N(x_o), completed rows ``(n, K, d)`` and the conditional
    covariance of the missing block ``(K, |m|, |m|)``."""
    n, d = Xg.shape
    K = means.shape[0]
    full = means.unsqueeze(0).expand(n, K, d).clone()
    if obs.numel() == 0:  # nothing observed: the prior moments
        return Xg.new_zeros(n, K), full, S[:, mis][:, :, mis]
    xo = Xg[:, obs]
    diff = (xo.unsqueeze(1) - means[:, obs]).transpose(0, 1)  # (K, n, |o|)
    L = torch.linalg.cholesky(S[:, obs][:, :, obs])  # (K, |o|, |o|)
    z = torch.linalg.solve_triangular(L, diff.mT, upper=False)  # (K, |o|, n)
    maha = (z * z).sum(1).T  # (n, K)
    logdet = torch.diagonal(L, dim1=-2, dim2=-1).log().sum(-1)
    logp = -0.5 * (obs.numel() * math.log(2 * math.pi) + maha) - logdet
    full[:, :, obs] = xo.unsqueeze(1)
    if mis.numel() == 0:
        return logp, full, S.new_zeros(K, 0, 0)
    a = torch.linalg.solve_triangular(L.mT, z, upper=True)  # S_oo^{-1} diff: (K, |o|, n)
    S_mo = S[:, mis][:, :, obs]  # (K, |m|, |o|)
    full[:, :, mis] = means[:, mis] + (S_mo @ a).permute(2, 0, 1)
    B = torch.linalg.solve_triangular(L, S_mo.mT, upper=False)  # L^{-1} S_om
    C = S[:, mis][:, :, mis] - B.mT @ B
    return logp, full, C


def log_prob_missing(X: torch.Tensor, params: GaussParams) -> torch.Tensor:
    """``log N(x_o; mu_ko, S_koo)`` as an ``(n, K)`` tensor (NaN marks missing entries)."""
    S = full_covariances(params)
    out = X.new_empty(X.shape[0], params.means.shape[0])
    for rows, obs, mis in _patterns(X):
        out[rows] = _conditional(X[rows], obs, mis, params.means, S)[0]
    return out


def impute_rows(X: torch.Tensor, params: GaussParams, log_weights: torch.Tensor):
    """Conditional means ``E[x_m | x_o]`` filled into the missing entries of ``X``."""
    S = full_covariances(params)
    out = X.clone()
    for rows, obs, mis in _patterns(X):
        if mis.numel() == 0:
            continue
        logp, full, _ = _conditional(X[rows], obs, mis, params.means, S)
        lp = logp + log_weights
        r = torch.exp(lp - torch.logsumexp(lp, 1, keepdim=True))
        Xg = X[rows]
        out[rows] = torch.where(torch.isnan(Xg), (r.unsqueeze(2) * full).sum(1), Xg)
    return out


def _group_stats(Xg, wg, obs, mis, log_weights, params, S, ref) -> SuffStats:
    logp, full, C = _conditional(Xg, obs, mis, params.means, S)
    lp = logp + log_weights
    norm = torch.logsumexp(lp, 1)
    R = torch.exp(lp - norm.unsqueeze(1))
    if wg is not None:
        R = R * wg.unsqueeze(1)
    K, d = params.means.shape
    Xc = full - ref
    nk = R.sum(0)
    s1 = torch.einsum("nk,nkd->kd", R, Xc)
    ct = params.covariance_type
    if ct in ("full", "tied"):
        s2 = torch.einsum("nk,nkd,nke->kde", R, Xc, Xc)
        if mis.numel():
            pad = Xg.new_zeros(K, d, d)
            pad[:, mis.unsqueeze(1), mis.unsqueeze(0)] = C
            s2 = s2 + nk[:, None, None] * pad
        if ct == "tied":
            s2 = s2.sum(0)
    else:
        s2 = torch.einsum("nk,nkd->kd", R, Xc * Xc)
        if mis.numel():
            s2[:, mis] = s2[:, mis] + nk.unsqueeze(1) * torch.diagonal(C, dim1=-2, dim2=-1)
    n = Xg.new_tensor(float(Xg.shape[0])) if wg is None else wg.sum()
    ll = norm.sum() if wg is None else (norm * wg).sum()
    return SuffStats(n, nk, s1, s2, ll)


class MissingData(ChunkedData):
    """A client whose rows may hold NaN entries; :func:`e_step_stats` calls its ``e_step``."""

    def e_step(self, log_weights, params: GaussParams, ref) -> SuffStats:
        S = full_covariances(params)
        total = None
        for X, w in self:
            for rows, obs, mis in _patterns(X):
                st = _group_stats(X[rows], None if w is None else w[rows], obs, mis,
                                  log_weights, params, S, ref)
                total = st if total is None else total + st
        return total


def mean_filled(X: np.ndarray) -> np.ndarray:
    """``X`` with NaN entries replaced by their column's observed mean (0 for an empty
    column): the data the initialisation (k-means, centring point) runs on."""
    nan = np.isnan(X)
    cnt = (~nan).sum(0)
    col = np.where(cnt > 0, np.where(nan, 0.0, X).sum(0) / np.maximum(cnt, 1), 0.0)
    return np.where(nan, col.astype(X.dtype), X)
