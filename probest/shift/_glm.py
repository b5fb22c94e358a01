"""Weighted maximum-likelihood GLMs in torch: linear (Gaussian), logistic and Poisson regression.

The objective is ``sum_i w_i * nll_i(theta) + alpha/2 * ||coef||^2``: integer sample weights
are exactly repeated rows, zero weights drop a row.  It is minimised by damped Newton with
an Armijo line search (the objective is convex), so the fit is exact up to ``tol`` and the
Hessian at the optimum gives the Laplace approximation of the parameter posterior
(``covariance_``), which ``to_arviz`` draws from.  These models are what
:mod:`probest.shift`'s covariate-shift estimators reweight.
"""

import numpy as np
import torch
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from probest.base import EstimatorSpec
from probest.shift._checks import _check_finite_rows, _check_scale
from probest.shift._glm_base import _check_weights, _weighted_outer, _WeightedGLM


def _linear_predictor(est, X, what: str) -> np.ndarray:
    """``X coef^T + intercept`` at validated ``X``; rows that overflow raise ValueError."""
    with np.errstate(over="ignore", invalid="ignore"):
        eta = X @ np.asarray(est.coef_).T + est.intercept_
    return _check_finite_rows(eta, owner=type(est).__name__, what=what, X=X)


def _check_fit_scale(est, X, y=None) -> None:
    """Refuse entries whose squares overflow the fit's Gram sums (no LAPACK call on inf)."""
    owner = type(est).__name__
    _check_scale(X, name="X", owner=owner)
    if y is not None:
        _check_scale(y, name="y", owner=owner)


class WeightedLinearRegression(RegressorMixin, _WeightedGLM):
    """Gaussian linear regression by (weighted) maximum likelihood, in torch.

    Parameters
    ----------
    fit_intercept : bool, default=True
        Fit an intercept (unpenalised).
    alpha : float, default=0.0
        Ridge penalty ``alpha/2 ||coef||^2`` (0 = plain MLE).
    max_iter : int, default=100
        Newton budget for the joint ``(coef, log sigma)`` Laplace fit.
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
        Fitted coefficients.
    intercept_ : float
        Fitted intercept (0.0 without ``fit_intercept``).
    sigma_ : float
        MLE of the noise standard deviation (weighted).
    covariance_ : ndarray of shape (n_params, n_params)
        Inverse Hessian of the weighted negative log-likelihood over
        ``(coef, intercept, log sigma)`` at the optimum (Laplace covariance).
    theta_ : ndarray
        The flat fitted parameter vector (coefficients, intercept, log sigma).
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
    >>> from probest.shift import WeightedLinearRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 2))
    >>> y = 1.0 + X @ [2.0, -1.0] + 0.1 * rng.normal(size=50)
    >>> est = WeightedLinearRegression().fit(X, y)
    >>> est.coef_.round(1), round(est.intercept_, 1), est.converged_
    (array([ 2., -1.]), 1.0, True)
    >>> est.to_pyro(X[:5]).batch_shape  # Normal(y | x) for each row
    torch.Size([5])
    >>> sorted(est.to_arviz(n_draws=100, random_state=0).posterior.data_vars)
    ['coef', 'intercept', 'sigma']
    """
    _spec = EstimatorSpec(outputs=("predict",))

    _fitted_attributes = ("sigma_",)

    @property
    def _closed_form(self) -> bool:
        # with alpha = 0, weighted least squares + the MLE noise scale is the exact joint
        # optimum; a ridge penalty couples coef and sigma, so Newton polishes from there.
        return self.alpha == 0

    def _nll(self, eta, y, extra):
        log_sigma = extra[0]
        r = y - eta[:, 0]
        return 0.5 * (r / torch.exp(log_sigma)) ** 2 + log_sigma + 0.5 * np.log(2 * np.pi)

    def _extra_names(self):
        return ("log_sigma",)

    def _expected_fisher(self, X, weights=None):
        Z = self._design(X)
        return _weighted_outer(np.full(len(Z), 1.0 / self.sigma_**2), Z, weights)

    def _init_theta(self, d):
        # Closed-form weighted (ridge) least squares, then the MLE noise scale: Newton
        # only has to polish and produce the joint Hessian.
        X, y, w = self._ls_data
        ones = np.ones((X.shape[0], 1))
        A = np.hstack([X, ones]) if self.fit_intercept else X
        P = np.eye(A.shape[1]) * self.alpha
        if self.fit_intercept:
            P[-1, -1] = 0.0
        Aw = A * w[:, None]
        beta = np.linalg.lstsq(A.T @ Aw + P, Aw.T @ y, rcond=None)[0]
        r = y - A @ beta
        # an exact interpolation has sigma_MLE = 0 (log-likelihood +inf); floor it at a
        # tiny fraction of var(y) so the fit and its Laplace covariance stay finite.
        floor = 1e-24 * max(float(np.var(y)), 1.0)
        s2 = max(float(w @ r**2 / w.sum()), floor)
        return self._tensor(np.concatenate([beta, [0.5 * np.log(s2)]]))

    def fit(self, X, y, sample_weight=None):
        """Fit by weighted MLE; ``sample_weight`` multiplies each row's log-likelihood."""
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        _check_fit_scale(self, X, y)
        w = _check_weights(sample_weight, X)
        if np.count_nonzero(w) < 2:
            raise ValueError(
                "WeightedLinearRegression needs at least 2 samples with positive weight to estimate "
                f"the noise scale; got n_samples={np.count_nonzero(w)}."
            )
        self._ls_data = (X, y, w)
        try:
            self._fit_theta(X, lambda: self._tensor(y), w)
        finally:
            del self._ls_data
        self.sigma_ = float(np.exp(self.theta_[-1]))
        self.coef_ = self.coef_[0]
        self.intercept_ = float(self.intercept_[0])
        return self

    def predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return _linear_predictor(self, X, "predict")

    def to_pyro(self, X):
        """``Normal(X coef + intercept, sigma_)`` with ``batch_shape == (n_samples,)``."""
        import pyro.distributions as dist

        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        loc = torch.tensor(self.predict(X))
        return dist.Normal(loc, torch.full_like(loc, self.sigma_))


class WeightedLogisticRegression(ClassifierMixin, _WeightedGLM):
    """Binary and multinomial logistic regression by (weighted) maximum likelihood, in torch.

    Multinomial models use the first class as the reference (``K-1`` coefficient rows), so
    the unpenalised MLE is identifiable.  Separable data have no finite MLE: set
    ``alpha > 0`` (a ``N(0, 1/alpha)`` prior) or expect a ``ConvergenceWarning``.

    Parameters
    ----------
    fit_intercept : bool, default=True
        Fit an intercept per logit (unpenalised).
    alpha : float, default=0.0
        Ridge penalty ``alpha/2 ||coef||^2`` (0 = plain MLE).
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
    classes_ : ndarray of shape (n_classes,)
        Class labels (sorted).
    coef_ : ndarray of shape (1, n_features) or (n_classes - 1, n_features)
        Logit coefficients relative to the first class.
    intercept_ : ndarray of shape (1,) or (n_classes - 1,)
        Logit intercepts.
    covariance_ : ndarray of shape (n_params, n_params)
        Laplace covariance over ``(coef, intercept)``.
    theta_ : ndarray
        The flat fitted parameter vector (coefficients, intercept).
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
    >>> from probest.shift import WeightedLogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 2))
    >>> y = (X[:, 0] + 0.5 * rng.normal(size=50) > 0).astype(int)
    >>> clf = WeightedLogisticRegression(alpha=1e-2).fit(X, y)
    >>> clf.classes_, clf.coef_.shape
    (array([0, 1]), (1, 2))
    >>> clf.predict_proba(X[:2]).round(2)
    array([[0.4 , 0.6 ],
           [0.01, 0.99]])
    >>> clf.to_pyro(X[:2]).sample().shape  # Categorical over class indices
    torch.Size([2])
    """
    _spec = EstimatorSpec(outputs=("predict", "predict_proba", "decision_function"))

    _fitted_attributes = ("classes_",)

    def _n_outputs(self):
        return max(len(self.classes_) - 1, 1)

    def _nll(self, eta, y, extra):
        # eta: (n, K-1) logits relative to class 0; y: class index (n,)
        full = torch.cat([eta.new_zeros(eta.shape[0], 1), eta], dim=1)
        return torch.logsumexp(full, dim=1) - full.gather(1, y[:, None]).squeeze(1)

    def fit(self, X, y, sample_weight=None):
        """Fit by weighted MLE; ``sample_weight`` multiplies each row's log-likelihood."""
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        _check_fit_scale(self, X)
        w = _check_weights(sample_weight, X)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                "WeightedLogisticRegression needs samples of at least 2 classes; got 1 class "
                f"({self.classes_[0]!r})."
            )
        self._y_idx = y_idx
        try:
            self._fit_theta(X, lambda: torch.tensor(y_idx, device=self.device_), w)
        finally:
            del self._y_idx
        return self

    def _separated(self, X, w):
        from probest.shift._checks import _separated

        pos = w > 0
        Z = self._design(X[pos])
        return _separated(Z, self._y_idx[pos], len(self.classes_))

    def _y_tensor(self, y):
        idx = np.searchsorted(self.classes_, np.asarray(y))
        return torch.tensor(np.asarray(idx), device=self.device_)

    def _expected_fisher(self, X, weights=None):
        P = self.predict_proba(X)[:, 1:]  # (n, K-1) non-reference classes
        Z = self._design(X)
        w = np.ones(len(Z)) if weights is None else np.asarray(weights, dtype=np.float64)
        A = np.einsum("nk,kl->nkl", P, np.eye(P.shape[1])) - P[:, :, None] * P[:, None, :]
        F = np.einsum("n,nkl,ni,nj->kilj", w, A, Z, Z) / w.sum()
        k, p = P.shape[1], Z.shape[1]
        return F.reshape(k * p, k * p)

    def decision_function(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        eta = _linear_predictor(self, X, "decision_function")
        return eta[:, 0] if len(self.classes_) == 2 else np.column_stack([np.zeros(len(X)), eta])

    def predict_log_proba(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        eta = _linear_predictor(self, X, "predict_log_proba")
        full = np.column_stack([np.zeros(len(X)), eta])
        return full - np.logaddexp.reduce(full, axis=1, keepdims=True)

    def predict_proba(self, X):
        return np.exp(self.predict_log_proba(X))

    def predict(self, X):
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_log_proba(X), axis=1)]

    def to_pyro(self, X):
        """``Categorical`` over class indices with ``batch_shape == (n_samples,)``."""
        import pyro.distributions as dist

        return dist.Categorical(logits=torch.tensor(self.predict_log_proba(X)))


class WeightedPoissonRegression(RegressorMixin, _WeightedGLM):
    """Poisson regression with log link by (weighted) maximum likelihood, in torch.

    ``y_i ~ Poisson(exp(x_i^T coef + intercept))``; same Newton fit, Laplace covariance and
    ArviZ/Pyro hooks as :class:`WeightedLinearRegression`.  ``y`` must be non-negative.

    Parameters
    ----------
    fit_intercept : bool, default=True
        Fit an intercept (unpenalised).
    alpha : float, default=0.0
        Ridge penalty ``alpha/2 ||coef||^2`` (0 = plain MLE).
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
        Log-rate coefficients.
    intercept_ : float
        Log-rate intercept.
    covariance_ : ndarray of shape (n_params, n_params)
        Laplace covariance over ``(coef, intercept)``.
    theta_ : ndarray
        The flat fitted parameter vector (coefficients, intercept).
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
    >>> from probest.shift import WeightedPoissonRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 2))
    >>> counts = rng.poisson(np.exp(0.3 + X @ [0.5, -0.2]))
    >>> est = WeightedPoissonRegression().fit(X, counts)
    >>> est.coef_.round(2), round(est.intercept_, 2)  # truth: [0.5, -0.2] and 0.3
    (array([ 0.55, -0.16]), 0.31)
    """
    _spec = EstimatorSpec(outputs=("predict",))

    _fitted_attributes = ()  # those of the GLM base

    def _nll(self, eta, y, extra):
        eta = eta[:, 0]
        return torch.exp(eta) - y * eta + torch.lgamma(y + 1)

    def _init_theta(self, d):
        theta = torch.zeros(self._n_params(d), device=self.device_, dtype=self.dtype_)
        if self.fit_intercept:
            theta[-1] = float(np.log(max(self._ybar, 1e-3)))
        return theta

    def _expected_fisher(self, X, weights=None):
        return _weighted_outer(self.predict(X), self._design(X), weights)

    def fit(self, X, y, sample_weight=None):
        """Fit by weighted MLE; ``sample_weight`` multiplies each row's log-likelihood."""
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        _check_fit_scale(self, X, y)
        if np.any(y < 0):
            raise ValueError("WeightedPoissonRegression needs non-negative counts y.")
        w = _check_weights(sample_weight, X)
        self._ybar = float(np.average(y, weights=w))
        try:
            self._fit_theta(X, lambda: self._tensor(y), w)
        finally:
            del self._ybar
        self.coef_ = self.coef_[0]
        self.intercept_ = float(self.intercept_[0])
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        return tags

    def predict(self, X):
        """Predicted mean ``exp(x^T coef + intercept)``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        with np.errstate(over="ignore"):
            mean = np.exp(_linear_predictor(self, X, "predict"))
        return _check_finite_rows(mean, owner=type(self).__name__, what="predict", X=X)

    def to_pyro(self, X):
        """``Poisson(rate)`` with ``batch_shape == (n_samples,)``."""
        import pyro.distributions as dist

        return dist.Poisson(torch.tensor(self.predict(X)))
