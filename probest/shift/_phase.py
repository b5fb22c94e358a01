"""Phase retrieval ``y = (x^T b)^2 + N(0, sigma^2)`` by (weighted) maximum likelihood, in torch.

The likelihood is invariant under ``b -> -b``, so ``b`` is identifiable up to sign only.  The
non-convex objective is started at the spectral estimate (the leading eigenvector of the
weighted ``sum_i w_i y_i x_i x_i^T``, scaled so ``mean (x^T b)^2 = mean y``) and polished by
the same damped Newton as the weighted GLMs (gradient steps where the Hessian is not
positive definite), which also gives the Laplace covariance.  ``coef_`` is reported with its
largest-magnitude entry positive; compare estimates with :func:`sign_invariant_error`.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from probest.base import EstimatorSpec
from probest.shift._checks import _check_finite_rows, _check_scale
from probest.shift._glm_base import _check_weights, _weighted_outer, _WeightedGLM


def sign_invariant_error(coef, coef_true) -> float:
    """``min(||b_hat - b||, ||b_hat + b||)``: the error of a sign-ambiguous estimate.

    Parameters
    ----------
    coef : array-like of shape (n_features,)
        The estimate.
    coef_true : array-like of shape (n_features,)
        The truth (its sign does not matter).

    Returns
    -------
    float
        The Euclidean distance to the nearer of ``coef_true`` and ``-coef_true``.

    Examples
    --------
    >>> from probest.shift import sign_invariant_error
    >>> round(sign_invariant_error([1.0, -2.0], [-1.0, 2.1]), 3)
    0.1
    """
    a, b = np.ravel(coef), np.ravel(coef_true)
    return float(min(np.linalg.norm(a - b), np.linalg.norm(a + b)))


class PhaseRetrievalRegression(RegressorMixin, _WeightedGLM):
    """Real phase retrieval ``y = (x^T b)^2 + noise`` by weighted MLE (spectral start + Newton).

    Parameters
    ----------
    alpha : float, default=0.0
        Ridge penalty ``alpha/2 ||b||^2``.
    max_iter : int, default=100
        Newton budget.
    tol : float, default=1e-10
        Stop when half the squared Newton decrement is below ``tol * max(1, |objective|)``.
    device : {"cpu", "cuda", "cuda:N", "auto"}, default="cpu"
        Torch device of the fit ("auto" picks CUDA when present).
    dtype : {"float64", "float32"}, default="float64"
        Floating dtype of the fit.
    verbose : int, default=0
        0 silent, 1 a progress bar with the objective, 2 also one line per Newton step.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Estimate of ``b`` (sign fixed so its largest-magnitude entry is positive).
    sigma_ : float
        MLE of the noise standard deviation.
    spectral_init_ : ndarray of shape (n_features,)
        The spectral starting point.
    covariance_ : ndarray of shape (n_params, n_params)
        Laplace covariance over ``(b, log sigma)``.
    theta_ : ndarray
        The flat fitted parameter vector (b, log sigma).
    loglik_ : float or None
        Weighted log-likelihood at the optimum (None when ``alpha > 0``).
    n_iter_ : int
        Newton iterations run.
    converged_ : bool
        Whether the Newton decrement fell below ``tol``.
    history_ : list of dict
        Per-iteration objective and Newton decrement.
    n_features_in_ : int
        Number of features seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from probest.shift import PhaseRetrievalRegression, sign_invariant_error
    >>> rng = np.random.default_rng(0)
    >>> b = np.array([1.0, -0.5, 0.0])
    >>> X = rng.normal(size=(200, 3))
    >>> y = (X @ b) ** 2 + 0.1 * rng.normal(size=200)
    >>> est = PhaseRetrievalRegression().fit(X, y)
    >>> sign_invariant_error(est.coef_, b) < 0.05
    True
    """
    _spec = EstimatorSpec(outputs=("predict",))

    fit_intercept = False  # the model has no intercept (read by the shared GLM machinery)
    _nonconvergence_hint = ("the likelihood is not convex; raise max_iter, or the data may not "
                            "follow y = (x^T b)^2 + noise")

    _fitted_attributes = ("sigma_", "spectral_init_", "spectral_init_full_")

    def __init__(
        self,
        *,
        alpha: float = 0.0,
        max_iter: int = 100,
        tol: float = 1e-10,
        device: str = "cpu",
        dtype: str = "float64",
        verbose: int = 0,
    ):
        self._store_params(locals())

    def _nll(self, eta, y, extra):
        log_sigma = extra[0]
        r = y - eta[:, 0] ** 2
        return 0.5 * (r / torch.exp(log_sigma)) ** 2 + log_sigma + 0.5 * np.log(2 * np.pi)

    def _extra_names(self):
        return ("log_sigma",)

    def _init_theta(self, d):
        return self._tensor(self.spectral_init_full_)

    def _expected_fisher(self, X, weights=None):
        X = np.asarray(X, dtype=np.float64)
        return _weighted_outer(4 * (X @ self.coef_) ** 2 / self.sigma_**2, X, weights)

    def fit(self, X, y, sample_weight=None):
        """Fit by weighted MLE from the spectral initialisation."""
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        _check_scale(X, name="X", owner="PhaseRetrievalRegression", power=4,
                     why="the likelihood is quartic in x, and fourth powers summed over rows "
                         "overflow float64")
        _check_scale(y, name="y", owner="PhaseRetrievalRegression")
        w = _check_weights(sample_weight, X)
        k = int(np.count_nonzero(w))
        if k < 2:
            raise ValueError(f"PhaseRetrievalRegression needs at least 2 samples with positive "
                             f"weight; got {k} sample{'' if k == 1 else 's'}.")
        wn = w / w.sum()
        M = (X * (wn * y)[:, None]).T @ X
        vals, vecs = np.linalg.eigh(0.5 * (M + M.T))
        v = vecs[:, -1]
        scale = np.sqrt(max(wn @ y, 1e-12) / max(wn @ (X @ v) ** 2, 1e-12))
        b0 = v * scale
        r = y - (X @ b0) ** 2
        s2 = max(float(wn @ r**2), 1e-12)
        self.spectral_init_ = b0
        self.spectral_init_full_ = np.concatenate([b0, [0.5 * np.log(s2)]])
        try:
            theta = self._fit_theta(X, lambda: self._tensor(y), w)
        finally:
            del self.spectral_init_full_
        del theta
        coef = self.coef_[0]
        sign = 1.0 if coef[np.argmax(np.abs(coef))] >= 0 else -1.0
        if sign < 0:  # flip the sign convention of theta_ (the Laplace covariance of b flips too)
            flip = np.r_[-np.ones(coef.size), 1.0]
            self.theta_ = self.theta_ * flip
            self.covariance_ = self.covariance_ * np.outer(flip, flip)
        self.coef_ = sign * coef
        self.intercept_ = 0.0
        self.sigma_ = float(np.exp(self.theta_[-1]))
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.regressor_tags.poor_score = True  # a quadratic-in-x model scored on linear toy data
        return tags

    def predict(self, X):
        """``(x^T coef)^2``: the mean response (does not depend on the sign)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            mean = (X @ self.coef_) ** 2
        return _check_finite_rows(mean, owner="PhaseRetrievalRegression", what="predict", X=X)

    def to_pyro(self, X):
        """``Normal((x^T b)^2, sigma_)`` with ``batch_shape == (n_samples,)``."""
        import pyro.distributions as dist

        loc = torch.tensor(self.predict(X))
        return dist.Normal(loc, torch.full_like(loc, self.sigma_))
