"""Shared machinery of probest's weighted GLMs: Newton fit, Laplace and sandwich covariances.

:class:`_WeightedGLM` minimises ``sum_i w_i * nll_i(theta) + alpha/2 * ||coef||^2`` by damped
Newton with an Armijo line search; subclasses (``_glm.py``, ``_phase.py``) supply only the
per-observation negative log-likelihood and its parameter layout.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from probest._persist import Fitted
from probest._torch import to_numpy
from probest._validation import Interval, check_sample_weight
from probest.base import TorchEstimator
from probest.shift._checks import PerfectSeparationWarning


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
        if not (torch.isfinite(g).all() and torch.isfinite(H).all()):
            break  # overflow: no solve on inf/NaN (LAPACK can spin); the caller reports it
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
    """Finite non-negative weights of length ``len(X)``, not all zero (ones when None)."""
    w = check_sample_weight(sample_weight, len(X))
    return np.ones(len(X)) if w is None else w


class _WeightedGLM(TorchEstimator):
    """Shared fit/Laplace/ArviZ logic; subclasses define the likelihood."""

    _nonconvergence_hint = "separable classes make the unpenalised MLE infinite: set alpha > 0"

    #: True when ``_init_theta`` already returns the exact optimum (no Newton steps).
    _closed_form = False

    _fitted_attributes = ("coef_", "intercept_", Fitted("theta_", ndim=1, finite=True), "covariance_",
                          "converged_", "n_iter_", "loglik_")

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
        self._store_params(locals())

    # subclass hooks -----------------------------------------------------------------
    def _n_outputs(self) -> int:
        return 1

    def _nll(self, eta: torch.Tensor, y: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    # shared machinery ---------------------------------------------------------------
    _constraints = {"alpha": (Interval(float, 0.0, None),), "max_iter": (Interval(int, 1, None),)}

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
        Hn = to_numpy(H)
        if not (np.all(np.isfinite(Hn)) and torch.isfinite(theta).all()):
            raise ValueError(
                f"{type(self).__name__}: the likelihood overflows float64 at these inputs (a "
                "non-finite Hessian); rescale X and y, e.g. with sklearn's StandardScaler.")
        separated = self.alpha == 0 and self._separated(X, w)
        self.converged_ = bool(conv) and not separated
        if separated:
            warnings.warn(
                f"{type(self).__name__}: the classes are perfectly (or quasi-perfectly) "
                "separated, so the unpenalised MLE does not exist and the coefficients diverge "
                f"(stopped after {n_iter} Newton steps): set alpha > 0.",
                PerfectSeparationWarning, stacklevel=3)
        elif not conv:
            warnings.warn(
                f"{type(self).__name__} did not converge in max_iter={self.max_iter} Newton "
                f"steps ({self._nonconvergence_hint}).",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.theta_ = to_numpy(theta)
        self.loglik_ = -float(objective(theta)) if self.alpha == 0 else None
        try:
            self.covariance_ = np.linalg.inv(Hn)
        except np.linalg.LinAlgError:
            self.covariance_ = np.linalg.pinv(Hn)
        coef, icpt = self._split(theta, d)
        self.coef_ = to_numpy(coef)
        self.intercept_ = to_numpy(icpt)
        return theta

    def _separated(self, X: np.ndarray, w: np.ndarray) -> bool:
        """Whether the unpenalised MLE does not exist (classifiers: class separation)."""
        return False

    def _init_theta(self, d: int) -> torch.Tensor:
        return torch.zeros(self._n_params(d), device=self.device_, dtype=self.dtype_)

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

    Parameters
    ----------
    model : WeightedLinearRegression, WeightedLogisticRegression, ...
        A fitted probest weighted GLM.
    X : array-like of shape (n_samples, n_features)
        Covariates.
    y : array-like of shape (n_samples,)
        Targets.
    sample_weight : array-like of shape (n_samples,), optional
        The weights ``w_i`` (default ones).
    fitted_weights : bool, default=False
        ``(X, y, sample_weight)`` are the fitted data (reuse ``covariance_``).

    Returns
    -------
    ndarray of shape (n_params, n_params)
        The sandwich covariance over ``theta_``.

    Examples
    --------
    >>> import numpy as np
    >>> from probest.shift import WeightedLinearRegression, sandwich_covariance
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(50, 2))
    >>> y = X @ [1.0, -1.0] + rng.normal(size=50)
    >>> est = WeightedLinearRegression().fit(X, y)
    >>> sandwich_covariance(est, X, y, fitted_weights=True).shape  # (coef, intercept, log sigma)
    (4, 4)
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
