"""Weighted maximum-likelihood GLMs in torch: linear (Gaussian) and logistic regression.

The objective is ``sum_i w_i * nll_i(theta) + alpha/2 * ||coef||^2``: integer sample weights
are exactly repeated rows, zero weights drop a row.  It is minimised by damped Newton with
an Armijo line search (the objective is convex), so the fit is exact up to ``tol`` and the
Hessian at the optimum gives the Laplace approximation of the parameter posterior
(``covariance_``), which ``to_arviz`` draws from.  These models are what
:mod:`probest.shift`'s covariate-shift estimators reweight.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from probest._torch import to_numpy
from probest.base import TorchEstimator


def _newton(objective, theta: torch.Tensor, *, max_iter: int, tol: float, progress) -> tuple:
    """Minimise a smooth convex ``objective(theta)`` by Newton with backtracking.

    Returns ``(theta, hessian, n_iter, converged)``; stops when half the squared Newton
    decrement falls below ``tol * max(1, |f|)``.
    """
    grad_fn = torch.func.grad(objective)
    hess_fn = torch.func.hessian(objective)
    converged = False
    f = objective(theta)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (n_iter is used after the loop)
        g = grad_fn(theta)
        H = hess_fn(theta)
        H = 0.5 * (H + H.T)
        step, info = torch.linalg.solve_ex(H, g)
        if info.item() != 0 or not torch.isfinite(step).all():
            step = torch.linalg.lstsq(H, g.unsqueeze(-1)).solution.squeeze(-1)
        decrement = float(g @ step)
        if decrement < 0:  # not a descent direction (numerically indefinite H): gradient step
            step, decrement = g, float(g @ g)
        t = 1.0
        while True:
            new = theta - t * step
            f_new = objective(new)
            if torch.isfinite(f_new) and f_new <= f - 1e-4 * t * decrement:
                break
            t *= 0.5
            if t < 1e-12:
                new, f_new = theta, f
                break
        theta, f = new, f_new
        progress.log(objective=-float(f), newton_decrement=decrement)
        if 0.5 * decrement <= tol * max(1.0, abs(float(f))) or t < 1e-12:
            converged = 0.5 * decrement <= tol * max(1.0, abs(float(f))) * 1e3
            break
    H = hess_fn(theta)
    return theta, 0.5 * (H + H.T), n_iter, converged


def _check_weights(sample_weight, X) -> np.ndarray:
    w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
    if not np.any(w > 0):
        raise ValueError("sample_weight is zero for every sample; at least one must be positive.")
    return w


class _WeightedGLM(TorchEstimator):
    """Shared fit/Laplace/ArviZ logic; subclasses define the likelihood."""

    _nonconvergence_hint = "separable classes make the unpenalised MLE infinite: set alpha > 0"

    #: True when ``_init_theta`` already returns the exact optimum (no Newton steps).
    _closed_form = False

    def __init__(
        self,
        *,
        fit_intercept: bool = True,
        alpha: float = 0.0,
        max_iter: int = 100,
        tol: float = 1e-10,
        device: str = "cpu",
        dtype: str = "float64",
        verbose: int = 0,
    ):
        self.fit_intercept = fit_intercept
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.device = device
        self.dtype = dtype
        self.verbose = verbose

    # subclass hooks -----------------------------------------------------------------
    def _n_outputs(self) -> int:
        return 1

    def _nll(self, eta: torch.Tensor, y: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    # shared machinery ---------------------------------------------------------------
    def _check_params(self) -> None:
        if not (isinstance(self.alpha, (int, float)) and self.alpha >= 0):
            raise ValueError(f"alpha must be a non-negative number, got {self.alpha!r}.")
        if not (isinstance(self.max_iter, (int, np.integer)) and self.max_iter >= 1):
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}.")

    def _split(self, theta: torch.Tensor, d: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = self._n_outputs()
        coef = theta[: k * d].reshape(k, d)
        icpt = theta[k * d : k * d + k] if self.fit_intercept else theta.new_zeros(k)
        return coef, icpt

    def _n_params(self, d: int) -> int:
        k = self._n_outputs()
        return k * d + (k if self.fit_intercept else 0)

    def _fit_theta(self, X: np.ndarray, y_t_fn, w: np.ndarray, theta0=None):
        d = X.shape[1]
        with self._fit_context():
            Xt, wt = self._tensor(X), self._tensor(w)
            yt = y_t_fn()
            n_extra = self._n_params(d)

            def objective(theta):
                coef, icpt = self._split(theta, d)
                eta = Xt @ coef.T + icpt
                extra = theta[n_extra:] if theta.numel() > n_extra else None
                nll = (wt * self._nll(eta, yt, extra)).sum()
                return nll + 0.5 * self.alpha * (coef**2).sum()

            theta = self._tensor(theta0) if theta0 is not None else self._init_theta(d)
            with self._progress(self.max_iter, type(self).__name__) as prog:
                if self._closed_form:
                    # the start is the exact optimum: only the Hessian is needed
                    H = torch.func.hessian(objective)(theta)
                    H, n_iter, conv = 0.5 * (H + H.T), 1, True
                    prog.log(objective=-float(objective(theta)))
                else:
                    theta, H, n_iter, conv = _newton(
                        objective, theta, max_iter=self.max_iter, tol=self.tol, progress=prog
                    )
        self.n_iter_ = n_iter
        self.converged_ = bool(conv)
        if not conv:
            warnings.warn(
                f"{type(self).__name__} did not converge in max_iter={self.max_iter} Newton "
                f"steps ({self._nonconvergence_hint}).",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.theta_ = to_numpy(theta)
        self.loglik_ = -float(objective(theta)) if self.alpha == 0 else None
        Hn = to_numpy(H)
        try:
            self.covariance_ = np.linalg.inv(Hn)
        except np.linalg.LinAlgError:
            self.covariance_ = np.linalg.pinv(Hn)
        coef, icpt = self._split(theta, d)
        self.coef_ = to_numpy(coef)
        self.intercept_ = to_numpy(icpt)
        return theta

    def _init_theta(self, d: int) -> torch.Tensor:
        return torch.zeros(self._n_params(d), device=self.device_, dtype=self.dtype_)

    def _eta(self, X) -> torch.Tensor:
        Xt = self._tensor(X)
        coef, icpt = (self._tensor(a) for a in (self.coef_, self.intercept_))
        return Xt @ coef.T + icpt

    def _param_layout(self, d: int) -> tuple[dict[str, slice], dict[str, tuple]]:
        k = self._n_outputs()
        names = {"coef": slice(0, k * d)}
        shapes = {"coef": (k, d) if k > 1 else (d,)}
        if self.fit_intercept:
            names["intercept"] = slice(k * d, k * d + k)
            shapes["intercept"] = (k,) if k > 1 else ()
        return names, shapes

    def to_arviz(self, n_draws: int = 1000, random_state: Any = None, covariance=None):
        """Laplace approximation ``N(theta_hat, H^-1)`` of the parameter posterior as ArviZ data.

        One chain of ``n_draws`` independent draws (``(chain=1, draw)`` dims).  With
        ``alpha > 0`` this is the posterior under a ``N(0, 1/alpha)`` prior on the coefficients,
        with ``alpha = 0`` under a flat prior.  ``covariance`` overrides ``covariance_`` (e.g.
        a sandwich covariance for weighted fits).
        """
        check_is_fitted(self)
        names, shapes = self._param_layout(self.n_features_in_)
        transforms = {}
        if "log_sigma" in self._extra_names():
            names["sigma"] = slice(self._n_params(self.n_features_in_), None)
            shapes["sigma"] = ()
            transforms["sigma"] = np.exp
        cov = self.covariance_ if covariance is None else np.asarray(covariance)
        return _gaussian_idata(self.theta_, cov, names, shapes, transforms, n_draws, random_state)

    def _extra_names(self) -> tuple[str, ...]:
        return ()

    # per-sample pieces (sandwich covariance, influence functions, Fisher ratios) ----------
    def _y_tensor(self, y) -> torch.Tensor:
        return self._tensor(np.asarray(y, dtype=np.float64))

    def _sample_nll(self, theta: torch.Tensor, Xt: torch.Tensor, yt: torch.Tensor) -> torch.Tensor:
        """Per-sample negative log-likelihoods ``(n,)`` at the flat parameter ``theta``."""
        d = Xt.shape[1]
        coef, icpt = self._split(theta, d)
        n_mean = self._n_params(d)
        extra = theta[n_mean:] if theta.numel() > n_mean else None
        return self._nll(Xt @ coef.T + icpt, yt, extra)

    def _grads_and_hessian(self, X, y, sample_weight=None) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample gradients ``(n, p)`` of the nll at ``theta_`` and the Hessian of the
        weighted penalised objective (the one ``fit`` minimised) at ``theta_``."""
        check_is_fitted(self)
        X = np.asarray(X, dtype=np.float64)
        w = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, np.float64)
        Xt, yt, wt = self._tensor(X), self._y_tensor(y), self._tensor(w)
        theta = self._tensor(self.theta_)
        d = X.shape[1]

        def objective(th):
            coef, _ = self._split(th, d)
            return (wt * self._sample_nll(th, Xt, yt)).sum() + 0.5 * self.alpha * (coef**2).sum()

        H = torch.func.hessian(objective)(theta)
        return self._per_sample_grads(X, y), to_numpy(0.5 * (H + H.T))

    def _per_sample_grads(self, X, y) -> np.ndarray:
        """``(n, p)`` gradients of each row's nll at ``theta_``, by one backward pass.

        Row ``i``'s nll depends on ``theta`` through its own linear predictor ``eta_i`` and the
        shared extra parameters (e.g. ``log sigma``), which are replicated per row so that the
        gradient of the summed nll w.r.t. each copy is that row's gradient.
        """
        check_is_fitted(self)
        X = np.asarray(X, dtype=np.float64)
        Xt, yt = self._tensor(X), self._y_tensor(y)
        theta = self._tensor(self.theta_)
        n, d = X.shape
        coef, icpt = self._split(theta, d)
        eta = (Xt @ coef.T + icpt).detach().requires_grad_(True)
        extra = theta[self._n_params(d):]
        leaves = [eta]
        rows = None
        if extra.numel():
            rows = extra[:, None].expand(-1, n).clone().requires_grad_(True)
            leaves.append(rows)
        grads = torch.autograd.grad(self._nll(eta, yt, rows).sum(), leaves)
        geta = grads[0]  # (n, k)
        parts = [(geta[:, :, None] * Xt[:, None, :]).reshape(n, -1)]
        if self.fit_intercept:
            parts.append(geta)
        if rows is not None:
            parts.append(grads[1].T)
        return to_numpy(torch.cat(parts, dim=1))

    def _expected_fisher(self, X, weights=None) -> np.ndarray:
        """(Weighted) average expected Fisher information of the *mean* parameters at x."""
        raise NotImplementedError

    def _design(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return np.hstack([X, np.ones((len(X), 1))]) if self.fit_intercept else X

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


def _gaussian_idata(mean, cov, names, shapes, transforms, n_draws, random_state):
    from probest.viz import gaussian_inference_data

    return gaussian_inference_data(
        mean, cov, names=names, shapes=shapes, transforms=transforms, n_draws=n_draws,
        random_state=random_state, attrs={"approximation": "laplace"},
    )


def sandwich_covariance(model: _WeightedGLM, X, y, sample_weight=None, *,
                        fitted_weights: bool = False) -> np.ndarray:
    """Sandwich (robust) covariance ``H^-1 (sum_i w_i^2 g_i g_i^T) H^-1`` of a weighted fit.

    ``H`` is the Hessian of the weighted objective at ``theta_`` and ``g_i`` the per-sample
    nll gradients.  For weighted MLE (MWLE) under covariate shift this is the asymptotic
    covariance of ``theta_``; the Laplace ``covariance_ = H^-1`` is only right for the
    unweighted, well-specified MLE.  ``fitted_weights=True`` says ``(X, y, sample_weight)``
    are exactly what the model was fitted on, so ``covariance_`` already is ``H^-1``.
    """
    if fitted_weights:
        G, Hinv = model._per_sample_grads(X, y), model.covariance_
    else:
        G, H = model._grads_and_hessian(X, y, sample_weight)
        Hinv = np.linalg.pinv(H)
    w = np.ones(len(G)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    meat = (G * w[:, None] ** 2).T @ G
    cov = Hinv @ meat @ Hinv
    return 0.5 * (cov + cov.T)


def _weighted_outer(c: np.ndarray, Z: np.ndarray, weights) -> np.ndarray:
    w = np.ones(len(Z)) if weights is None else np.asarray(weights, dtype=np.float64)
    return (Z * (w * c)[:, None]).T @ Z / w.sum()


class WeightedLinearRegression(RegressorMixin, _WeightedGLM):
    """Gaussian linear regression by (weighted) maximum likelihood, in torch.

    Parameters
    ----------
    fit_intercept : bool, default=True
    alpha : float, default=0.0
        Ridge penalty ``alpha/2 ||coef||^2`` (0 = plain MLE).
    max_iter, tol : Newton budget for the joint (coef, log sigma) Laplace fit.
    device, dtype, verbose : see :class:`probest.base.TorchEstimator`.

    Attributes
    ----------
    coef_, intercept_ : fitted coefficients.
    sigma_ : MLE of the noise standard deviation (weighted).
    covariance_ : inverse Hessian of the weighted negative log-likelihood over
        ``(coef, intercept, log sigma)`` at the optimum (Laplace covariance).
    theta_, loglik_, n_iter_, converged_, history_.
    """

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
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
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
        return X @ self.coef_ + self.intercept_

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

    Attributes
    ----------
    classes_ : labels; coef_ : ``(1, d)`` binary / ``(K-1, d)`` multinomial; intercept_;
    covariance_ : Laplace covariance over ``(coef, intercept)``; theta_, loglik_, n_iter_,
    converged_, history_.
    """

    def _n_outputs(self):
        return max(len(self.classes_) - 1, 1)

    def _nll(self, eta, y, extra):
        # eta: (n, K-1) logits relative to class 0; y: class index (n,)
        full = torch.cat([eta.new_zeros(eta.shape[0], 1), eta], dim=1)
        return torch.logsumexp(full, dim=1) - full.gather(1, y[:, None]).squeeze(1)

    def fit(self, X, y, sample_weight=None):
        """Fit by weighted MLE; ``sample_weight`` multiplies each row's log-likelihood."""
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        w = _check_weights(sample_weight, X)
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                "WeightedLogisticRegression needs samples of at least 2 classes; got 1 class "
                f"({self.classes_[0]!r})."
            )
        self._fit_theta(X, lambda: torch.tensor(y_idx, device=self.device_), w)
        return self

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
        eta = X @ self.coef_.T + self.intercept_
        return eta[:, 0] if len(self.classes_) == 2 else np.column_stack([np.zeros(len(X)), eta])

    def predict_log_proba(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        eta = X @ self.coef_.T + self.intercept_
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
    """

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
        self._check_params()
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
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
        return np.exp(X @ self.coef_ + self.intercept_)

    def to_pyro(self, X):
        """``Poisson(rate)`` with ``batch_shape == (n_samples,)``."""
        import pyro.distributions as dist

        return dist.Poisson(torch.tensor(self.predict(X)))
