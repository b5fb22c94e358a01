"""What both SDP clusterers share: input checks, internal rescaling, the solver choice, the
Peng–Wei solve and its rounding, and the fitted Gaussian mixture (predict, score, Pyro)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import ClusterMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from probest._validation import Interval, Options, check_finite_rows, check_scale
from probest.base import TorchEstimator
from probest.cluster import _cvx, _nlr
from probest.cluster._gauss import component_log_prob

SOLVERS = ("auto", "cvxpy", "nlr", "sketch")
#: ``solver="auto"`` uses cvxpy (the reference) up to this many rows, nlr above.
AUTO_CVXPY_MAX = 60
#: the SDP solver's parameters, shared by both clusterers
SDP_CONSTRAINTS = {
    "n_clusters": (Interval(int, 1, None),),
    "solver": (Options(SOLVERS),),
    "rank": (Interval(int, 1, None), None),
    "sdp_max_iter": (Interval(int, 1, None),),
    "sdp_tol": (Interval(float, 0.0, None, "neither"),),
    "penalty": (Interval(float, 0.0, None, "neither"),),
    "sketch_size": (Interval(int, 2, None),),
}


def certify_nlr(bl, U, y, labels, n_steps) -> dict[str, Any]:
    """The nlr certificate (:func:`probest.cluster._nlr.certificate`) plus the step count."""
    cert = _nlr.certificate(bl, U, y, labels)
    cert["n_steps"] = n_steps
    return cert


class _SDPClusterBase(ClusterMixin, TorchEstimator):
    """Shared machinery of :class:`SDPKMeans` and :class:`ILASDPClustering`."""

    # ----------------------------------------------------------------- input
    def _check_X(self, X) -> np.ndarray:
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=1)
        n, K = X.shape[0], self.n_clusters
        name = type(self).__name__
        if K > n:
            raise ValueError(f"n_samples={n} should be >= n_clusters={K}: {name} needs at "
                             "least one sample per cluster; reduce n_clusters or add data.")
        check_scale(X, owner=name)
        distinct = np.unique(X, axis=0).shape[0]
        if distinct < K:
            raise ValueError(f"X has only {distinct} distinct points (duplicate rows) but "
                             f"n_clusters={K}: {name} cannot form {K} non-empty clusters; "
                             "remove duplicates or reduce n_clusters.")
        return X

    def _rescale(self, X: np.ndarray) -> torch.Tensor:
        """``(X - centre) / scale`` with one global scale (the SDP objectives, hence the
        labels, do not change under it); sets ``_centre``/``_scale``."""
        centre = X.mean(0)
        R = X - centre
        scale = float(np.sqrt(np.mean(R * R)))
        if not np.isfinite(scale) or scale <= 0:
            scale = 1.0
        self._centre, self._scale = centre, scale
        return self._tensor(R / scale)

    def _resolve_solver(self, n: int) -> str:
        if self.solver == "auto":
            return "cvxpy" if n <= AUTO_CVXPY_MAX else "nlr"
        return self.solver

    # ------------------------------------------------------------- the SDPs
    def _round_rows(self, rows: np.ndarray, seed: int) -> np.ndarray:
        from sklearn.cluster import KMeans

        K = self.n_clusters
        if K == 1:
            return np.zeros(rows.shape[0], dtype=np.int64)
        rows = rows + 0.0
        km = KMeans(K, n_init=10, random_state=seed % (2**31))
        return km.fit_predict(rows).astype(np.int64)

    def _solve(self, bl: _nlr.Blocks, solver: str, ctx, labels=None, rank: int | None = None,
               log=None, certify: bool = True) -> dict[str, Any]:
        """Solve the block SDP ``bl`` with cvxpy or nlr; ``labels`` warm-starts nlr (one
        block: Peng–Wei, several: the likelihood-adjusted SDP)."""
        B, n = int(bl.Y.shape[0]), bl.n
        K = self.n_clusters
        if solver == "cvxpy":
            res = _cvx.solve_cvxpy(bl)
            Z = res["Z"]
            r = rank or (_nlr.default_rank(K) if B == 1 else 2)
            factors = []
            for b in range(B):
                lam, V = np.linalg.eigh(Z[b])
                lam, V = lam[::-1][:r].clip(0), V[:, ::-1][:, :r]
                factors.append(V * np.sqrt(lam))
            U = np.stack(factors)
            rows = _cvx.dense_rows(Z[0], K) if B == 1 else None
            labels_out = (self._round_rows(rows, ctx.seed) if B == 1
                          else (Z @ np.ones(n)).argmax(0).astype(np.int64))
            cert = {"objective": res["objective"], "constraint_violation": res["violation"],
                    "trace_violation": float(np.abs(np.trace(Z, axis1=1, axis2=2)
                                                    - bl.t.cpu().numpy()).max()),
                    "min_entry": float(Z.min()), "dual_bound": None, "gap": None,
                    "status": res["status"]}
            return {"labels": labels_out, "U": U, "objective": res["objective"],
                    "certificate": cert, "converged": res["converged"], "n_iter": 1}
        r = rank or (_nlr.default_rank(K) if B == 1 else 2)
        U0 = _nlr.init_factor(labels, B, n, r, bl.t, ctx.generator, self.device_, self.dtype_,
                              per_block_labels=B > 1)
        res = _nlr.solve(bl, U0, beta=self.penalty, max_outer=self.sdp_max_iter,
                         tol=self.sdp_tol, log=log)
        if B == 1:
            labels_out = self._round_rows(_nlr.spectral_rows(res["U"][0], K), ctx.seed)
        else:
            labels_out = _nlr.round_blocks(res["U"]).astype(np.int64)
        args = (bl, res["U"], res["y"], labels_out, res["n_steps"])
        cert = certify_nlr(*args) if certify else {"constraint_violation": res["violation"]}
        return {"labels": labels_out, "U": res["U"].cpu().numpy(), "objective": res["objective"],
                "certificate": cert, "converged": res["converged"], "n_iter": res["n_outer"],
                "certify": args}

    def _peng_wei(self, Xs: torch.Tensor, solver: str, ctx, log=None,
                  certify: bool = True) -> dict[str, Any]:
        K = self.n_clusters
        bl = _nlr.Blocks.build(Xs[None], torch.zeros(1, dtype=Xs.dtype, device=Xs.device),
                               torch.tensor([float(K)], dtype=Xs.dtype, device=Xs.device))
        return self._solve(bl, solver, ctx, rank=self.rank, log=log, certify=certify)

    # -------------------------------------------------- the fitted mixture
    def _set_mixture(self, X: np.ndarray, labels: np.ndarray, means, covs) -> None:
        K = self.n_clusters
        counts = np.bincount(labels, minlength=K).astype(np.float64)
        self.weights_ = np.maximum(counts, 1e-12) / np.maximum(counts, 1e-12).sum()
        self.means_ = means
        self.covariances_ = covs

    def _log_prob(self, X, what: str) -> torch.Tensor:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        Xt = self._tensor(X)
        lp = component_log_prob(Xt, self._tensor(self.means_), self._tensor(self.covariances_))
        lp = lp + torch.log(self._tensor(self.weights_))[None, :]
        check_finite_rows(lp.cpu().numpy(), owner=type(self).__name__, what=what, X=X)
        return lp

    def score_samples(self, X):
        """Log density of each sample under the fitted Gaussian mixture
        (weights ``weights_``, means ``means_``, covariances ``covariances_``)."""
        return torch.logsumexp(self._log_prob(X, "score_samples"), 1).cpu().numpy()

    def score(self, X, y=None):
        """Mean observed log-likelihood per sample under the fitted Gaussian mixture."""
        return float(self.score_samples(X).mean())

    def to_pyro(self):
        """The fitted mixture as ``pyro.distributions.MixtureSameFamily``
        (``Categorical(weights_)`` over ``MultivariateNormal(means_, covariances_)``);
        ``event_shape == (n_features,)``.  The parameters are constant tensors (frozen):
        to learn them further, start ``pyro.param`` sites from ``means_``/``covariances_``."""
        import pyro.distributions as dist

        check_is_fitted(self)
        mix = dist.Categorical(probs=torch.tensor(self.weights_))
        comp = dist.MultivariateNormal(torch.tensor(self.means_),
                                       covariance_matrix=torch.tensor(self.covariances_))
        return dist.MixtureSameFamily(mix, comp)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
