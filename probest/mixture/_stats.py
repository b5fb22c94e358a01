"""Gaussian-mixture EM written once: log densities, sufficient statistics, M-step.

Everything EM needs from the data is a :class:`SuffStats` — per component the responsibility
mass ``nk``, the first moment ``s1`` and the second moment ``s2`` (shape set by the covariance
type), plus the total weight ``n`` and the log-likelihood ``loglik`` of the parameters that
produced the responsibilities.  Statistics from disjoint pieces of data *add*; the M-step
only reads their sum.  So pooled EM, streamed (``batch_size``) EM and federated EM (each
client sends its statistics, the server adds them) are the same computation, and federated
EM is exactly pooled EM up to floating-point summation order.

Moments are centred at a reference point ``ref`` shared by every party (the server
broadcasts it with the initial parameters): ``s1 = sum_i r_ik (x_i - ref)`` and
``s2 = sum_i r_ik (x_i - ref)(x_i - ref)^T``.  Then ``mu_k = ref + s1/nk`` and
``Sigma_k = s2/nk - (s1/nk)(s1/nk)^T + reg_covar I`` — the between-client term is included,
unlike averaging client covariances around client means.  Centring at a point near the data
keeps the subtraction well conditioned.

The log densities follow scikit-learn's formulas term by term, so ``score_samples`` agrees
with :class:`sklearn.mixture.GaussianMixture` to rounding error given the same parameters.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import torch

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@dataclasses.dataclass
class GaussParams:
    """Shared Gaussian parameters (no weights): shapes as in scikit-learn."""

    means: torch.Tensor  # (K, d)
    covariances: torch.Tensor  # full (K,d,d) | tied (d,d) | diag (K,d) | spherical (K,)
    precisions_cholesky: torch.Tensor  # same shape as covariances
    covariance_type: str

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    def to(self, device=None, dtype=None) -> GaussParams:
        return GaussParams(
            self.means.to(device=device, dtype=dtype),
            self.covariances.to(device=device, dtype=dtype),
            self.precisions_cholesky.to(device=device, dtype=dtype),
            self.covariance_type,
        )


def precisions_cholesky(covariances: torch.Tensor, covariance_type: str) -> torch.Tensor:
    """Cholesky factor of the precision (upper triangular, ``P = U U^T``), as sklearn.

    Raises ``ValueError`` naming ``reg_covar`` when a covariance is not positive definite.
    """
    msg = (  # scikit-learn's wording, then probest's hint
        "Fitting the mixture model failed because some components have ill-defined "
        "empirical covariance (for instance caused by singleton or collapsed samples). "
        "Try to decrease the number of components, increase reg_covar, or scale the input "
        "data. (The covariances were singular or not positive definite: e.g. "
        "reg_covar=1e-4, or standardise/deduplicate the data.)"
    )
    if covariance_type in ("full", "tied"):
        cov = covariances if covariance_type == "full" else covariances[None]
        chol, info = torch.linalg.cholesky_ex(cov)
        if bool((info != 0).any()) or not bool(torch.isfinite(chol).all()):
            raise ValueError(msg)
        eye = torch.eye(cov.shape[-1], dtype=cov.dtype, device=cov.device).expand_as(cov)
        prec = torch.linalg.solve_triangular(chol, eye, upper=False).mT
        return prec if covariance_type == "full" else prec[0]
    if bool((covariances <= 0).any()) or not bool(torch.isfinite(covariances).all()):
        raise ValueError(msg)
    return covariances.rsqrt()


def covariances_from_precisions_cholesky(prec_chol: torch.Tensor, covariance_type: str):
    """Inverse of :func:`precisions_cholesky` (used for ``precisions_init``)."""
    if covariance_type in ("full", "tied"):
        prec = prec_chol @ prec_chol.mT
        return torch.linalg.inv(prec)
    return prec_chol.pow(-2)


def precisions(prec_chol: torch.Tensor, covariance_type: str) -> torch.Tensor:
    if covariance_type in ("full", "tied"):
        return prec_chol @ prec_chol.mT
    return prec_chol**2


def log_det_cholesky(prec_chol: torch.Tensor, covariance_type: str, n_features: int):
    """log det of the precision Cholesky factor, per component (a scalar for tied)."""
    if covariance_type == "full":
        return torch.diagonal(prec_chol, dim1=-2, dim2=-1).log().sum(-1)
    if covariance_type == "tied":
        return torch.diagonal(prec_chol).log().sum()
    if covariance_type == "diag":
        return prec_chol.log().sum(-1)
    return n_features * prec_chol.log()


def log_gaussian_prob(X: torch.Tensor, params: GaussParams) -> torch.Tensor:
    """``log N(x_i; mu_k, Sigma_k)`` as an ``(n, K)`` tensor (scikit-learn's formulas)."""
    n, d = X.shape
    means, pc, ct = params.means, params.precisions_cholesky, params.covariance_type
    K = means.shape[0]
    log_det = log_det_cholesky(pc, ct, d)
    if ct == "full":
        # one GEMM for all components: (n,d) @ (d, K*d) -> (n, K, d)
        y = (X @ pc.permute(1, 0, 2).reshape(d, K * d)).view(n, K, d)
        y = y - torch.einsum("kd,kde->ke", means, pc)
        maha = (y * y).sum(-1)
    elif ct == "tied":
        y = (X @ pc).unsqueeze(1) - (means @ pc).unsqueeze(0)
        maha = (y * y).sum(-1)
    elif ct == "diag":
        prec = pc**2
        maha = ((means**2) * prec).sum(1) - 2.0 * (X @ (means * prec).T) + (X**2) @ prec.T
    else:
        prec = pc**2
        maha = (
            (means**2).sum(1) * prec
            - 2.0 * (X @ means.T) * prec
            + (X**2).sum(1, keepdim=True) * prec
        )
    return -0.5 * (d * math.log(2 * math.pi) + maha) + log_det


@dataclasses.dataclass
class SuffStats:
    """Additive sufficient statistics of one piece of data (see the module docstring)."""

    n: torch.Tensor  # () total sample weight
    nk: torch.Tensor  # (K,)
    s1: torch.Tensor  # (K, d), centred at ref
    s2: torch.Tensor  # full (K,d,d) | tied (d,d) | diag/spherical (K,d)
    loglik: torch.Tensor  # () sum_i w_i log p(x_i) under the parameters used

    def __add__(self, other: SuffStats) -> SuffStats:
        return SuffStats(*(a + b for a, b in zip(self.astuple(), other.astuple(), strict=True)))

    def __radd__(self, other):  # lets sum() start from 0
        if isinstance(other, int) and other == 0:
            return self
        return self.__add__(other)

    def astuple(self) -> tuple[torch.Tensor, ...]:
        return (self.n, self.nk, self.s1, self.s2, self.loglik)

    def flatten(self) -> torch.Tensor:
        """One vector (for ``all_reduce``/wire transport); see :meth:`unflatten`."""
        return torch.cat([t.reshape(-1) for t in self.astuple()])

    def unflatten(self, vec: torch.Tensor) -> SuffStats:
        """Statistics shaped like ``self`` read from ``vec``."""
        out, i = [], 0
        for t in self.astuple():
            out.append(vec[i : i + t.numel()].reshape(t.shape))
            i += t.numel()
        return SuffStats(*out)

    @staticmethod
    def zeros(K: int, d: int, covariance_type: str, *, device=None, dtype=None) -> SuffStats:
        kw = {"device": device, "dtype": dtype}
        s2_shape = {"full": (K, d, d), "tied": (d, d)}.get(covariance_type, (K, d))
        return SuffStats(
            torch.zeros((), **kw),
            torch.zeros(K, **kw),
            torch.zeros(K, d, **kw),
            torch.zeros(s2_shape, **kw),
            torch.zeros((), **kw),
        )


def stats_from_resp(
    X: torch.Tensor,
    resp: torch.Tensor,
    ref: torch.Tensor,
    covariance_type: str,
    sample_weight: torch.Tensor | None = None,
    loglik: torch.Tensor | None = None,
) -> SuffStats:
    """Statistics of one chunk given responsibilities ``resp`` (n, K) (rows sum to one)."""
    Xc = X - ref
    w = None if sample_weight is None else sample_weight.unsqueeze(1)
    R = resp if w is None else resp * w
    n = X.new_tensor(float(X.shape[0])) if w is None else w.sum()
    nk = R.sum(0)
    s1 = R.T @ Xc
    d = X.shape[1]
    if covariance_type == "full":
        K = R.shape[1]
        s2 = (Xc.T @ (R.unsqueeze(2) * Xc.unsqueeze(1)).reshape(-1, K * d)).view(d, K, d)
        s2 = s2.permute(1, 0, 2)
    elif covariance_type == "tied":
        s2 = (Xc.T @ Xc) if w is None else (Xc * w).T @ Xc
    else:
        s2 = R.T @ (Xc * Xc)
    ll = X.new_zeros(()) if loglik is None else loglik
    return SuffStats(n, nk, s1, s2, ll)


def e_step_stats(
    chunks: Iterable[tuple[torch.Tensor, torch.Tensor | None]],
    log_weights: torch.Tensor,
    params: GaussParams,
    ref: torch.Tensor,
) -> SuffStats:
    """E-step over a stream of ``(X_chunk, sample_weight_chunk | None)``: summed statistics.

    For diagonal covariances the centred features ``[x - ref, (x - ref)^2]`` of each chunk
    are cached on ``chunks.cache`` (when the data are not streamed): the E-step is then one
    GEMM against them and the statistics another.
    """
    if hasattr(chunks, "e_step"):  # clients with their own E-step (missing entries)
        return chunks.e_step(log_weights, params, ref)
    total = None
    diag = params.covariance_type == "diag"
    cache = getattr(chunks, "cache", None) if diag else None
    full64 = params.covariance_type == "full" and params.means.dtype == torch.float64
    fcache = None
    if full64:
        d = params.means.shape[1]
        rows = getattr(chunks, "n_samples", None)
        if rows is not None and rows * (d * (d + 3) // 2 + 1) * 8 <= FULL_CACHE_BYTES:
            fcache = getattr(chunks, "cache", None)
    for i, (X, w) in enumerate(chunks):
        if full64:
            F = None if fcache is None else fcache.get(("full", i))
            if F is None or F[0] is not ref:
                F = (ref, _quad_features(X, ref))
                if fcache is not None:
                    fcache[("full", i)] = F
            st = _full_stats(F[1], w, log_weights, params, ref)
        elif diag:
            F = None if cache is None else cache.get(i)
            if F is None or F[0] is not ref:
                Xc = X - ref
                F = (ref, torch.cat([Xc, Xc * Xc], 1))
                if cache is not None:
                    cache[i] = F
            st = _diag_stats(F[1], w, log_weights, params, ref)
        else:
            log_prob = log_gaussian_prob(X, params) + log_weights
            log_norm = torch.logsumexp(log_prob, dim=1)
            resp = torch.exp(log_prob - log_norm.unsqueeze(1))
            ll = log_norm.sum() if w is None else (log_norm * w).sum()
            st = stats_from_resp(X, resp, ref, params.covariance_type, w, ll)
        total = st if total is None else total + st
    if total is None:
        raise ValueError("A client holds no samples; remove empty clients before fitting.")
    return total


#: the quadratic features of the full-covariance E-step are kept across EM iterations while
#: they take at most this many bytes (else rebuilt per chunk and iteration).
FULL_CACHE_BYTES = 2**29


def _quad_features(X, ref) -> torch.Tensor:
    """``[vech(xc xc^T), xc, 1]`` per row (upper triangle row by row), ``xc = x - ref``."""
    Xc = X - ref
    d = X.shape[1]
    parts = [Xc[:, i:i + 1] * Xc[:, i:] for i in range(d)]
    return torch.cat(parts + [Xc, Xc.new_ones(X.shape[0], 1)], 1)


def _full_stats(F, w, log_weights, params: GaussParams, ref) -> SuffStats:
    """Full-covariance E-step and statistics as two GEMMs on quadratic features.

    With ``xc = x - ref`` and the features ``f = [vech(xc xc^T), xc, 1]`` (upper triangle,
    ``T = d(d+1)/2`` entries), the squared Mahalanobis distance of every component is
    linear in ``f``: ``(x - mu)^T P (x - mu) = f . [vech(P) (off-diagonal doubled),
    -2 P (mu - ref), (mu - ref)^T P (mu - ref)]``, so the E-step is ``F @ A`` (n, K) and
    the statistics ``nk, s1, s2`` are ``R^T @ F`` -- about ``4 n K (T + d)`` flops per
    iteration in two matrix products, instead of ``4 n K d^2`` with (n, K, d) temporaries.
    Used in float64 only: the expansion cancels digits (~|mu - ref|^2 / sigma^2 of them
    relative), harmless at float64's 16 digits, not at float32's 7.
    """
    n = F.shape[0]
    K, d = params.means.shape
    iu, ju = torch.triu_indices(d, d, device=F.device)
    pc = params.precisions_cholesky
    P = pc @ pc.mT
    mc = params.means - ref
    Pm = (P @ mc.unsqueeze(2)).squeeze(2)
    off = torch.where(iu == ju, 1.0, 2.0).to(F.dtype)
    A = torch.cat([P[:, iu, ju] * off, -2.0 * Pm, (mc * Pm).sum(1, keepdim=True)], 1)
    log_det = log_det_cholesky(pc, "full", d)
    log_prob = -0.5 * (d * math.log(2 * math.pi) + F @ A.T) + log_det + log_weights
    log_norm = torch.logsumexp(log_prob, dim=1)
    R = torch.exp(log_prob - log_norm.unsqueeze(1))
    if w is not None:
        R = R * w.unsqueeze(1)
    S = R.T @ F  # (K, T + d + 1)
    T = iu.numel()
    s2 = F.new_empty(K, d, d)
    s2[:, iu, ju] = S[:, :T]
    s2[:, ju, iu] = S[:, :T]
    n_w = F.new_tensor(float(n)) if w is None else w.sum()
    ll = log_norm.sum() if w is None else (log_norm * w).sum()
    return SuffStats(n_w, S[:, -1].contiguous(), S[:, T:T + d].contiguous(), s2, ll)


def _diag_stats(F, w, log_weights, params: GaussParams, ref) -> SuffStats:
    """Diagonal-covariance E-step on centred features ``F = [x - ref, (x - ref)^2]``."""
    d = F.shape[1] // 2
    mc = params.means - ref
    prec = params.precisions_cholesky**2
    A = torch.cat([-2.0 * (mc * prec).T, prec.T], 0)  # (2d, K)
    maha = F @ A + ((mc**2) * prec).sum(1)
    log_det = log_det_cholesky(params.precisions_cholesky, "diag", d)
    log_prob = -0.5 * (d * math.log(2 * math.pi) + maha) + log_det + log_weights
    log_norm = torch.logsumexp(log_prob, dim=1)
    R = torch.exp(log_prob - log_norm.unsqueeze(1))
    if w is not None:
        R = R * w.unsqueeze(1)
    S = R.T @ F  # (K, 2d)
    n = F.new_tensor(float(F.shape[0])) if w is None else w.sum()
    ll = log_norm.sum() if w is None else (log_norm * w).sum()
    return SuffStats(n, R.sum(0), S[:, :d].contiguous(), S[:, d:].contiguous(), ll)


def m_step(
    stats: SuffStats,
    ref: torch.Tensor,
    covariance_type: str,
    reg_covar: float,
    previous: GaussParams | None = None,
) -> tuple[torch.Tensor, GaussParams, torch.Tensor]:
    """Closed-form M-step from summed statistics.

    Returns ``(weights, params, empty)`` where ``empty`` flags components whose mass fell
    below ~1e-10 of a sample: they keep their ``previous`` mean and covariance (the caller
    warns) instead of collapsing onto ``ref``.
    """
    eps = torch.finfo(stats.nk.dtype).eps
    nk = stats.nk + 10 * eps  # as scikit-learn, keeps empty components finite
    weights = nk / nk.sum()
    dev = stats.s1 / nk.unsqueeze(1)  # mean offset from ref
    means = ref + dev
    d = means.shape[1]
    if covariance_type == "full":
        cov = stats.s2 / nk[:, None, None] - dev.unsqueeze(2) * dev.unsqueeze(1)
        cov = 0.5 * (cov + cov.mT)
        cov = cov + reg_covar * torch.eye(d, dtype=cov.dtype, device=cov.device)
    elif covariance_type == "tied":
        cov = stats.s2 - (nk.unsqueeze(1) * dev).T @ dev
        cov = cov / nk.sum()
        cov = 0.5 * (cov + cov.T) + reg_covar * torch.eye(d, dtype=cov.dtype, device=cov.device)
    else:
        diag = stats.s2 / nk.unsqueeze(1) - dev * dev + reg_covar
        cov = diag if covariance_type == "diag" else diag.mean(1)
    empty = stats.nk < 1e-10
    if previous is not None and bool(empty.any()) and covariance_type != "tied":
        means = torch.where(empty.unsqueeze(1), previous.means, means)
        shape = (-1,) + (1,) * (cov.dim() - 1)
        cov = torch.where(empty.view(shape), previous.covariances, cov)
    params = GaussParams(means, cov, precisions_cholesky(cov, covariance_type), covariance_type)
    return weights, params, empty


def n_parameters(n_components: int, n_features: int, covariance_type: str) -> int:
    """Number of free parameters (as scikit-learn's ``_n_parameters``)."""
    K, d = n_components, n_features
    cov = {
        "full": K * d * (d + 1) / 2.0,
        "diag": K * d,
        "tied": d * (d + 1) / 2.0,
        "spherical": K,
    }[covariance_type]
    return int(cov + K * d + K - 1)
