"""Density-ratio estimation ``w(x) = p_T(x) / p_S(x)`` and importance-weight processing.

Everything is computed in log space: estimators return ``log w``; clipping, flattening and
normalisation act on log-weights (``logsumexp``), so a ratio of ``exp(800)`` never becomes
``inf`` or ``NaN``.

Methods (``DensityRatioEstimator(method=...)``):

* ``"logistic"`` (default): a domain classifier ``P(target | x)`` on quadratic features
  ``(x, x_i x_j)`` (the log-ratio of two Gaussians is quadratic, so location *and* scale
  shifts are captured), L2-penalised logistic regression on standardised features.  By
  Bayes, ``log w(x) = logit P(T | x) + log(n_S / n_T)`` (the prior correction).  Predicts out
  of sample; calibrated when the log-ratio is linear in the features.
* ``"ulsif"`` / ``"rulsif"``: least-squares fit of ``r(x) = sum_l alpha_l k(x, c_l)`` with
  Gaussian kernels centred on target points (Kanamori et al. 2009; relative ratio
  ``p_T / (a p_T + (1-a) p_S)`` of Yamada et al. 2011), kernel width and ridge chosen by the
  closed-form leave-one-out score (Sherman-Morrison downdate of the source term).
* ``"kliep"``: maximise ``mean_T log r(x)`` subject to ``mean_S r(x) = 1``, ``alpha >= 0``
  (Sugiyama et al. 2008).  With ``pi_l = alpha_l mean_S k(., c_l)`` this is a mixture-weight
  likelihood, solved by its monotone EM fixed point; width by likelihood cross-validation.
* ``"kmm"``: kernel mean matching (Huang et al. 2007) as a cvxpy QP: weights for the
  training source points only (``predict_ratio`` on other points raises).
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
from scipy.special import logsumexp
from sklearn.utils.validation import check_is_fitted, validate_data

from probest._persist import Fitted
from probest._torch import draw_seed
from probest._validation import Options
from probest.base import EstimatorSpec, ProbestEstimator
from probest.shift._checks import (
    _OVERLAP_AUROC,
    NoOverlapWarning,
    _check_finite_rows,
    _check_scale,
    _domain_auroc,
)

_METHODS = ("logistic", "ulsif", "rulsif", "kliep", "kmm")


# --------------------------------------------------------------------------------------
# importance-weight processing (log space)
# --------------------------------------------------------------------------------------
def effective_sample_size(weights) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` (0 when every weight is 0).

    Parameters
    ----------
    weights : array-like of shape (n_samples,)
        Non-negative weights.

    Returns
    -------
    float
        Between 1 (one weight carries everything) and ``n_samples`` (equal weights).

    Examples
    --------
    >>> from probest.shift import effective_sample_size
    >>> effective_sample_size([1.0, 1.0, 1.0, 1.0]), effective_sample_size([4.0, 0.0, 0.0, 0.0])
    (4.0, 1.0)
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0 or not np.any(w > 0):
        return 0.0
    w = w / w.max()  # scale-free, no overflow in the squares
    return float(w.sum() ** 2 / np.sum(w**2))


def process_log_weights(
    log_w,
    *,
    clip: float | None = None,
    flatten: float = 1.0,
    normalize: bool = True,
) -> np.ndarray:
    """Importance weights from log-ratios: ``w**flatten``, normalised, clipped.

    Steps (all in log space until the end): multiply ``log_w`` by ``flatten``
    (``w**flatten``, Shimodaira's flattening, 0 = unweighted, 1 = full weights); shift so the
    weights have mean 1; clip: ``clip`` in ``(0, 1)`` caps weights at that quantile,
    ``clip >= 1`` caps them at ``W = clip`` (in units of the mean weight, i.e. of the
    normalised ratio whose source mean is 1); finally, with ``normalize=True``, rescale to
    mean 1 (without it the weights are the flattened/clipped ratios on their original scale).

    ``-inf`` log-ratios give zero weight; ``NaN`` or ``+inf`` raise ``ValueError``; all-zero
    weights raise ``ValueError`` (zero effective sample size).

    Parameters
    ----------
    log_w : array-like of shape (n_samples,)
        Log density ratios ``log p_T(x_i) / p_S(x_i)`` of the source rows.
    clip : float or None, default=None
        In ``(0, 1)``: cap at that quantile; ``>= 1``: cap at ``clip`` times the mean weight.
    flatten : float in [0, 1], default=1.0
        Exponent of the weights.
    normalize : bool, default=True
        Rescale to mean 1.

    Returns
    -------
    ndarray of shape (n_samples,)
        Non-negative weights.

    Examples
    --------
    >>> import numpy as np
    >>> from probest.shift import process_log_weights
    >>> process_log_weights(np.log([1.0, 4.0]), flatten=0.5).round(3)
    array([0.667, 1.333])
    >>> process_log_weights(np.log([1.0, 2.0, 10.0, 0.5]), clip=0.5).round(3)
    array([0.924, 1.307, 1.307, 0.462])
    """
    log_w = np.asarray(log_w, dtype=np.float64).ravel()
    if log_w.size == 0:
        raise ValueError("no source samples to weight.")
    if np.isnan(log_w).any():
        raise ValueError(
            f"the log density ratio is NaN at {int(np.isnan(log_w).sum())} source points; "
            "check the ratio estimator / the callable passed as density_ratio.")
    if np.isposinf(log_w).any():
        raise ValueError(
            f"the density ratio is infinite at {int(np.isposinf(log_w).sum())} source points "
            "(it overflowed): return log-ratios instead (a DensityRatioEstimator works in log "
            "space) or use a bounded ratio model.")
    if not np.isfinite(log_w).any():
        raise ValueError(
            "every importance weight is zero (effective sample size 0): the target has no "
            "overlap with the source sample; check X_target or use a smoother ratio model.")
    if not (isinstance(flatten, (int, float, np.floating)) and 0 <= flatten <= 1):
        raise ValueError(f"flatten must be a number in [0, 1], got {flatten!r}.")
    lw = flatten * log_w if flatten != 1 else log_w.copy()
    lw[np.isneginf(log_w)] = -np.inf
    scale = logsumexp(lw) - np.log(lw.size)  # log mean weight
    lw = lw - scale
    if clip is not None:
        if not (isinstance(clip, (int, float, np.floating)) and clip > 0):
            raise ValueError(f"clip must be None, a quantile in (0, 1) or a cap W >= 1, got {clip!r}.")
        cap = np.log(clip) if clip >= 1 else np.quantile(lw[np.isfinite(lw)], clip)
        lw = np.minimum(lw, cap)
    if normalize:
        lw = lw - (logsumexp(lw) - np.log(lw.size))
    else:
        lw = lw + scale
    with np.errstate(over="ignore"):
        w = np.exp(lw)
    if not np.all(np.isfinite(w)):
        raise ValueError(
            "the unnormalised importance weights overflow float64; use normalize=True (the "
            "default) or clip.")
    return w


# --------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------
def _sqdist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    d = np.sum(A**2, 1)[:, None] + np.sum(B**2, 1)[None, :] - 2 * A @ B.T
    return np.maximum(d, 0.0)


def _median_dist(X: np.ndarray, rng: np.random.Generator) -> float:
    idx = rng.choice(len(X), size=min(len(X), 300), replace=False)
    D = _sqdist(X[idx], X[idx])
    med = np.sqrt(np.median(D[np.triu_indices(len(idx), 1)])) if len(idx) > 1 else 1.0
    return float(med) if med > 0 else 1.0


def _quadratic(Z: np.ndarray) -> np.ndarray:
    iu = np.triu_indices(Z.shape[1])
    return np.hstack([Z, (Z[:, :, None] * Z[:, None, :])[:, iu[0], iu[1]]])


class DensityRatioEstimator(ProbestEstimator):
    """Estimate ``w(x) = p_target(x) / p_source(x)`` from unlabelled samples.

    Parameters
    ----------
    method : {"logistic", "ulsif", "rulsif", "kliep", "kmm"}, default="logistic"
        See the module docstring.
    features : {"quadratic", "linear"}, default="quadratic"
        Logistic method only: the domain classifier's features (standardised ``x`` and,
        for "quadratic", all products ``x_i x_j``).
    C : float, default=100.0
        Logistic method: inverse L2 penalty of the domain classifier (on standardised
        features; large = nearly unpenalised, which keeps the prior-corrected ratio calibrated).
    sigma : float or None, default=None
        Kernel width for ulsif/rulsif/kliep/kmm; ``None`` selects it by cross-validation
        (KMM: the median heuristic) from ``median_distance * [1/4, 1/2, 1, 2]``.
    lam : float or None, default=None
        Ridge of uLSIF/RuLSIF; ``None`` selects it by leave-one-out from ``10**[-3..0]``.
    relative_alpha : float, default=0.1
        RuLSIF's ``a`` in ``p_T / (a p_T + (1-a) p_S)`` (bounded by ``1/a``).
    n_centers : int, default=100
        Number of target points used as kernel centres.
    kmm_B : float or None, default=None
        KMM's weight bound (None: 1000).
    kmm_eps : float or None, default=None
        KMM's mean-constraint slack (None: ``(sqrt(n_S) - 1)/sqrt(n_S)``).
    random_state : None, int or Generator, default=None
        Centre subsampling and CV folds.

    Attributes
    ----------
    method_ : str
        The fitted method.
    n_features_in_ : int
        Number of covariates.
    fit_time_ : float
        Seconds spent in ``fit``.
    sigma_, lam_ : float
        Selected kernel width (kernel methods) and ridge (uLSIF/RuLSIF).
    cv_scores_ : dict
        Cross-validation scores of the candidate hyper-parameters.
    center_, scale_ : ndarray of shape (n_features,)
        Pooled mean and standard deviation used to standardise the covariates.
    logit_coef_, logit_intercept_ : ndarray, float
        The domain classifier's logit as a linear map of the (quadratic) features (logistic).
    log_prior_correction_ : float
        ``log(n_S / n_T)`` (logistic).
    alpha_, centers_ : ndarray
        Kernel expansion coefficients and centres (kernel methods).
    X_fit_ : ndarray
        The source points KMM was fitted on.
    overlap_auroc_ : float or None
        Logistic method: two-fold held-out AUROC of the domain classifier (None when a
        sample has fewer than 10 rows); at or above 0.999 the fit warns
        :class:`NoOverlapWarning` (source and target do not overlap).
    source_weights_ : ndarray
        KMM's weights for the training source points.

    Examples
    --------
    >>> import numpy as np
    >>> from probest.datasets import make_covariate_shift
    >>> from probest.shift import DensityRatioEstimator
    >>> data = make_covariate_shift("B1", n=200, random_state=0)
    >>> dre = DensityRatioEstimator("logistic", random_state=0).fit(data.X_source, data.X_target)
    >>> est, true = dre.predict_log_ratio(data.X_source), data.log_density_ratio(data.X_source)
    >>> bool(np.corrcoef(est, true)[0, 1] > 0.8)
    True
    >>> dre.importance_weights(data.X_source[:3], clip=0.99).shape
    (3,)
    """
    _spec = EstimatorSpec(outputs=("predict_log_ratio",))
    _constraints = {"method": (Options(_METHODS),),
                    "features": (Options({"quadratic", "linear"}),)}

    _fitted_attributes = (
        "method_", Fitted("center_", ndim=1, finite=True), Fitted("scale_", ndim=1, finite=True),
        "cv_scores_", "fit_time_", "alpha_", "centers_", "sigma_", "lam_", "logit_coef_",
        "logit_intercept_", "log_prior_correction_", "source_weights_", "X_fit_", "overlap_auroc_")

    def __init__(
        self,
        method: str = "logistic",
        *,
        features: str = "quadratic",
        C: float = 100.0,
        sigma: float | None = None,
        lam: float | None = None,
        relative_alpha: float = 0.1,
        n_centers: int = 100,
        kmm_B: float | None = None,
        kmm_eps: float | None = None,
        random_state: Any = None,
    ):
        self._store_params(locals())

    # ------------------------------------------------------------------------------------
    def fit(self, X_source, X_target):
        """Fit the ratio ``p_target / p_source`` from the two unlabelled samples."""
        self._validate_params()
        t0 = time.perf_counter()
        Xs = validate_data(self, X_source, dtype=np.float64)
        if X_target is None:
            raise ValueError("X_target is required: the ratio is estimated from target covariates.")
        Xt = np.asarray(X_target)
        if Xt.ndim == 2 and Xt.shape[0] == 0:
            raise ValueError("X_target is empty: at least one target sample is needed.")
        Xt = validate_data(self, Xt, dtype=np.float64, reset=False)
        _check_scale(Xs, name="X_source", owner="DensityRatioEstimator")
        _check_scale(Xt, name="X_target", owner="DensityRatioEstimator")
        rng = np.random.default_rng(draw_seed(self.random_state))
        # Standardise on the pooled sample: kernel widths and penalties become scale-free.
        pooled = np.vstack([Xs, Xt])
        self.center_, self.scale_ = pooled.mean(0), pooled.std(0)
        self.scale_[self.scale_ == 0] = 1.0
        Zs, Zt = (Xs - self.center_) / self.scale_, (Xt - self.center_) / self.scale_
        self.cv_scores_ = {}
        getattr(self, f"_fit_{self.method}")(Zs, Zt, rng)
        if self.method == "kmm":
            self.X_fit_ = Xs
        self.method_ = self.method
        self.fit_time_ = time.perf_counter() - t0
        return self

    def predict_log_ratio(self, X) -> np.ndarray:
        """``log w(x)`` (``-inf`` where a kernel model's ratio is exactly 0)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        with np.errstate(over="ignore", invalid="ignore"):
            Z = (X - self.center_) / self.scale_
            _check_finite_rows(np.sum(Z**2, axis=1), owner="DensityRatioEstimator",
                               what="predict_log_ratio", X=X)
        if self.method_ == "logistic":
            F = _quadratic(Z) if self.features == "quadratic" else Z
            with np.errstate(over="ignore", invalid="ignore"):
                lw = F @ self.logit_coef_ + self.logit_intercept_ + self.log_prior_correction_
            # -inf (a ratio of exactly 0) is a value; +inf and NaN are overflow
            _check_finite_rows(np.where(np.isneginf(lw), 0.0, lw), owner="DensityRatioEstimator",
                               what="predict_log_ratio", X=X)
            return lw
        if self.method_ == "kmm":
            if X.shape != self.X_fit_.shape or not np.array_equal(X, self.X_fit_):
                raise ValueError(
                    "KMM only gives weights for the source points it was fitted on; use "
                    "method='logistic', 'ulsif' or 'kliep' for out-of-sample ratios.")
            with np.errstate(divide="ignore"):
                return np.log(self.source_weights_)
        K = np.exp(-_sqdist(Z, self.centers_) / (2 * self.sigma_**2))
        r = K @ self.alpha_
        if self.method_ == "rulsif":  # r estimates p_T / (a p_T + (1-a) p_S); invert it.
            a = self.relative_alpha
            r = np.clip(r, 0.0, 1.0 / a * (1 - 1e-12))
            with np.errstate(divide="ignore"):
                return np.log(1 - a) + np.log(r) - np.log1p(-a * r)
        with np.errstate(divide="ignore"):
            return np.log(np.maximum(r, 0.0))

    def _default_data(self):
        """``probest fit DensityRatioEstimator``: setup B2's source and target covariates."""
        from probest.datasets import make_covariate_shift

        d = make_covariate_shift("B2", n=1000, random_state=0)
        return d.X_source, None, "B2 source -> target covariates (n=1000)", {"X_target": d.X_target}

    def _extra_metrics(self, X, y=None) -> dict[str, float]:
        return {"ESS of held-out source weights": self.effective_sample_size(X),
                "n held-out source rows": float(len(X))}

    def predict_ratio(self, X) -> np.ndarray:
        """``w(x) = exp(log w(x))`` (may overflow to ``inf``; prefer ``predict_log_ratio``)."""
        with np.errstate(over="ignore"):
            return np.exp(self.predict_log_ratio(X))

    def importance_weights(self, X, *, clip=None, flatten=1.0, normalize=True) -> np.ndarray:
        """Processed importance weights at source points ``X`` (see ``process_log_weights``)."""
        return process_log_weights(self.predict_log_ratio(X), clip=clip, flatten=flatten,
                                   normalize=normalize)

    def effective_sample_size(self, X, *, clip=None, flatten=1.0) -> float:
        """Kish's ESS ``(sum w)^2 / sum w^2`` of the processed weights at source points ``X``."""
        return effective_sample_size(self.importance_weights(X, clip=clip, flatten=flatten))

    # ------------------------------------------------------------------------------------
    def _fit_logistic(self, Zs, Zt, rng):
        from sklearn.linear_model import LogisticRegression

        F = np.vstack([Zs, Zt])
        if self.features == "quadratic":
            F = _quadratic(F)
        # L2-penalised logistic regression on standardised features, then folded back into
        # one linear map on F (logit = F @ logit_coef_ + logit_intercept_): nothing but
        # arrays is kept, so the fitted estimator saves to safetensors.
        mu, sd = F.mean(0), F.std(0)
        sd[sd == 0] = 1.0
        lab = np.r_[np.zeros(len(Zs)), np.ones(len(Zt))]
        clf = LogisticRegression(C=self.C, tol=1e-8, max_iter=5000).fit((F - mu) / sd, lab)
        self.logit_coef_ = clf.coef_[0] / sd
        self.logit_intercept_ = float(clf.intercept_[0] - (mu / sd) @ clf.coef_[0])
        self.log_prior_correction_ = float(np.log(len(Zs) / len(Zt)))
        # absent overlap: the penalised logit saturates and the weights look flat (ESS 99.7
        # of 100 at a target 1000 sd away), so test it directly on held-out rows
        self.overlap_auroc_ = _domain_auroc(F, lab, self.C, rng)
        if self.overlap_auroc_ is not None and self.overlap_auroc_ >= _OVERLAP_AUROC:
            warnings.warn(
                f"source and target barely overlap: a domain classifier tells them apart on "
                f"held-out rows (AUROC {self.overlap_auroc_:.4f} >= {_OVERLAP_AUROC}), so the "
                "density ratio is extrapolated where the source has no data and importance "
                "weights (and MWLE) cannot be trusted, however uniform they look. Check "
                "X_target; method='ulsif' or 'kliep' show the mismatch as a low effective "
                "sample size.", NoOverlapWarning, stacklevel=3)

    def _centers(self, Zt, rng):
        b = min(self.n_centers, len(Zt))
        return Zt[rng.choice(len(Zt), size=b, replace=False)]

    def _sigma_grid(self, Zs, Zt, rng):
        if self.sigma is not None:
            return [float(self.sigma)]
        med = _median_dist(np.vstack([Zs, Zt]), rng)
        return [med * f for f in (0.25, 0.5, 1.0, 2.0)]

    def _fit_ulsif(self, Zs, Zt, rng, alpha: float = 0.0):
        C = self._centers(Zt, rng)
        lams = [float(self.lam)] if self.lam is not None else [10.0**k for k in range(-3, 1)]
        n = min(len(Zs), len(Zt))
        best = (np.inf, None, None)
        for s in self._sigma_grid(Zs, Zt, rng):
            Ks = np.exp(-_sqdist(Zs, C) / (2 * s**2))  # (n_S, b)
            Kt = np.exp(-_sqdist(Zt, C) / (2 * s**2))
            H = (1 - alpha) * Ks.T @ Ks / len(Zs) + alpha * Kt.T @ Kt / len(Zt)
            h = Kt.mean(0)
            Ps, Pt = Ks[:n].T, Kt[:n].T  # (b, n) paired points left out together
            for lam in lams:
                score = _lsif_loo(H, h, Ps, Pt, lam, len(Zs), len(Zt), alpha)
                self.cv_scores_[(s, lam)] = score
                if score < best[0]:
                    best = (score, s, lam)
        _, s, lam = best
        if s is None:
            raise ValueError("uLSIF leave-one-out failed for every (sigma, lam); pass sigma/lam.")
        Ks = np.exp(-_sqdist(Zs, C) / (2 * s**2))
        Kt = np.exp(-_sqdist(Zt, C) / (2 * s**2))
        H = (1 - alpha) * Ks.T @ Ks / len(Zs) + alpha * Kt.T @ Kt / len(Zt)
        a = np.linalg.solve(H + lam * np.eye(len(C)), Kt.mean(0))
        self.alpha_, self.centers_, self.sigma_, self.lam_ = np.maximum(a, 0.0), C, s, lam

    def _fit_rulsif(self, Zs, Zt, rng):
        a = self.relative_alpha
        if not (0 < a < 1):
            raise ValueError(f"relative_alpha must be in (0, 1), got {a!r}.")
        self._fit_ulsif(Zs, Zt, rng, alpha=a)

    def _fit_kliep(self, Zs, Zt, rng, n_folds: int = 5):
        C = self._centers(Zt, rng)
        folds = rng.permutation(len(Zt)) % min(n_folds, len(Zt))
        best = (-np.inf, None)
        for s in self._sigma_grid(Zs, Zt, rng):
            if len(Zt) < 2:
                best = (0.0, s)
                break
            ll = []
            for k in np.unique(folds):
                pi, Gs_mean = _kliep_em(Zs, Zt[folds != k], C, s)
                G = np.exp(-_sqdist(Zt[folds == k], C) / (2 * s**2)) / Gs_mean
                ll.append(np.mean(np.log(np.maximum(G @ pi, 1e-300))))
            score = float(np.mean(ll))
            self.cv_scores_[s] = score
            if score > best[0]:
                best = (score, s)
        s = best[1]
        pi, Gs_mean = _kliep_em(Zs, Zt, C, s)
        self.alpha_, self.centers_, self.sigma_, self.lam_ = pi / Gs_mean, C, s, None

    def _fit_kmm(self, Zs, Zt, rng):
        import cvxpy as cp

        n_s, n_t = len(Zs), len(Zt)
        s = float(self.sigma) if self.sigma is not None else _median_dist(np.vstack([Zs, Zt]), rng)
        K = np.exp(-_sqdist(Zs, Zs) / (2 * s**2))
        kappa = (n_s / n_t) * np.exp(-_sqdist(Zs, Zt) / (2 * s**2)).sum(1)
        B = 1000.0 if self.kmm_B is None else float(self.kmm_B)
        eps = (np.sqrt(n_s) - 1) / np.sqrt(n_s) if self.kmm_eps is None else float(self.kmm_eps)
        vals, vecs = np.linalg.eigh(K)
        root = vecs * np.sqrt(np.clip(vals, 0, None))  # K = root root^T
        beta = cp.Variable(n_s)
        obj = 0.5 * cp.sum_squares(root.T @ beta) - kappa @ beta
        cons = [beta >= 0, beta <= B, cp.abs(cp.sum(beta) - n_s) <= n_s * eps]
        prob = cp.Problem(cp.Minimize(obj), cons)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prob.solve(solver=cp.CLARABEL)
        if beta.value is None:
            raise ValueError(f"KMM's quadratic program failed ({prob.status}); try a larger kmm_eps.")
        self.source_weights_ = np.clip(np.asarray(beta.value, dtype=np.float64), 0.0, None)
        self.sigma_, self.lam_ = s, None


def _lsif_loo(H, h, Ps, Pt, lam, n_s, n_t, alpha) -> float:
    """Closed-form leave-one-out score of (R)uLSIF (Kanamori et al. 2009).

    Leaving out the pair ``(x_S_i, x_T_i)`` downdates ``H`` by ``psi_i psi_i^T`` (Sherman-
    Morrison) and ``h`` by ``phi_i``; the LOO squared loss is
    ``(1-a)/2 mean r_i(x_S_i)^2 + a/2 mean r_i(x_T_i)^2 - mean r_i(x_T_i)``.
    """
    b, n = Ps.shape
    Bm = H + lam * (n_s - 1) / n_s * np.eye(b)
    Binv = np.linalg.inv(Bm)
    BP = Binv @ Ps
    denom = n_s - np.sum(Ps * BP, axis=0)
    B0 = (Binv @ h)[:, None] + BP * ((h @ BP) / denom)[None, :]
    B1 = Binv @ Pt + BP * (np.sum(Pt * BP, axis=0) / denom)[None, :]
    B2 = np.maximum(0.0, (n_s - 1) / (n_s * (n_t - 1)) * (n_t * B0 - B1)) if n_t > 1 else \
        np.maximum(0.0, B0)
    r_s, r_t = np.sum(Ps * B2, axis=0), np.sum(Pt * B2, axis=0)
    return float((1 - alpha) * np.mean(r_s**2) / 2 + alpha * np.mean(r_t**2) / 2 - np.mean(r_t))


def _kliep_em(Zs, Zt, C, s, max_iter: int = 300, tol: float = 1e-8):
    """KLIEP as mixture weights: ``r(x) = sum_l pi_l g_l(x)``, ``g_l = k_l / mean_S k_l``.

    ``mean_S r = sum pi = 1`` is the constraint; EM's fixed point
    ``pi_l <- pi_l mean_T[g_l / r]`` increases ``mean_T log r`` monotonically.
    """
    Ks_mean = np.exp(-_sqdist(Zs, C) / (2 * s**2)).mean(0)
    Ks_mean = np.maximum(Ks_mean, 1e-300)
    G = np.exp(-_sqdist(Zt, C) / (2 * s**2)) / Ks_mean
    pi = np.full(len(C), 1.0 / len(C))
    prev = -np.inf
    for _ in range(max_iter):
        r = np.maximum(G @ pi, 1e-300)
        pi = pi * (G / r[:, None]).mean(0)
        pi /= pi.sum()
        ll = float(np.mean(np.log(r)))
        if ll - prev < tol * max(1.0, abs(ll)):
            break
        prev = ll
    return pi, Ks_mean
