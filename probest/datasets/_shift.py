"""Covariate-shift reference setups with the exact target excess risk.

Every setup has Gaussian covariates, ``x_S ~ N(m_S, S_S)`` on the source and
``x_T ~ N(m_T, S_T)`` on the target, so the density ratio ``w = p_T / p_S`` is known in
closed form (in log space), and the target excess risk of a fitted parameter is computed
exactly (closed forms, or Gauss-Hermite quadrature for the logistic KL), not by Monte Carlo:

* ``"B1"`` well-specified linear regression, unbounded ratio: ``d=5``,
  ``x_S ~ N(0, I)``, ``x_T ~ N(1.5 e_1, I)``, ``y = 1 + x^T b + N(0, 1)``.
  ``Tr(Sigma_T Sigma_S^-1) = 8.25`` (with the intercept), so MLE's risk is ``~ 8.25 / n``.
* ``"B2"`` misspecified (Shimodaira 2000): ``y = -x + x^3 + N(0, 0.3^2)``,
  ``x_S ~ N(0.5, 0.5^2)``, ``x_T ~ N(0, 0.3^2)``, model ``y = a + b x``.  The excess risk
  is relative to the best *linear* predictor on the target, ``(a*, b*) = (0, -1 + 3 * 0.09)``.
* ``"B3"`` well-specified logistic regression: ``d=5``, intercept 0, ``b = (1, -1, 0.5, 0, 0)``,
  target mean-shifted by 1.5 along the second feature.  Excess risk = expected KL
  divergence ``E_T KL(p*(y|x) || p_hat(y|x))`` (the excess target log-loss).
* ``"phase_retrieval"`` well-specified ``y = (x^T b)^2 + N(0, 0.5^2)``, ``d=5``,
  ``x_S ~ N(0, I)``, ``x_T ~ N(e_1, I)``; the excess risk ``E_T[((x^T b_hat)^2 -
  (x^T b)^2)^2]`` does not see the sign of ``b`` (the model is identifiable up to sign).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from scipy.special import expit, log_expit

_SETUPS = ("B1", "B2", "B3", "phase_retrieval")


def _gauss_logpdf(X: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    L = np.linalg.cholesky(cov)
    z = np.linalg.solve(L, (X - mean).T)
    return (-0.5 * np.sum(z**2, axis=0) - np.sum(np.log(np.diag(L)))
            - 0.5 * X.shape[1] * np.log(2 * np.pi))


def _gh(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes/weights for E[g(Z)], Z ~ N(0, 1)."""
    t, w = np.polynomial.hermite_e.hermegauss(n)
    return t, w / np.sqrt(2 * np.pi)


def _params_of(model: Any, fit_intercept: bool) -> tuple[float, np.ndarray] | None:
    """``(intercept, coef)`` of a fitted linear-in-parameters model or a parameter vector.

    Accepts an estimator with ``coef_`` (and ``intercept_``), a ``(intercept, coef)`` pair,
    or a flat vector ``[intercept, coef...]`` (``[coef...]`` for phase retrieval).  Returns
    ``None`` when ``model`` is an estimator without coefficients (then the risk is computed
    from its predictions on a fixed target sample).
    """
    if hasattr(model, "coef_"):
        coef = np.ravel(np.asarray(model.coef_, dtype=np.float64))
        icpt = float(np.ravel(getattr(model, "intercept_", 0.0))[0]) if fit_intercept else 0.0
        return icpt, coef
    if hasattr(model, "predict"):
        return None
    if isinstance(model, tuple) and len(model) == 2:
        return float(model[0]), np.ravel(np.asarray(model[1], dtype=np.float64))
    theta = np.ravel(np.asarray(model, dtype=np.float64))
    return (float(theta[0]), theta[1:]) if fit_intercept else (0.0, theta)


@dataclasses.dataclass
class CovariateShiftData:
    """One draw of a covariate-shift problem plus its exact evaluation.

    Attributes
    ----------
    X_source, y_source : labelled source sample (``n`` rows).
    X_target, y_target : target sample (``n_target`` rows); ``y_target`` is for evaluation
        only — covariate-shift estimators see ``X_target`` alone.
    setup, task : the setup name and ``"regression"``/``"classification"``.
    coef, intercept : the target-optimal parameters (the truth when well-specified).
    source_mean, source_cov, target_mean, target_cov : the Gaussian covariate laws.
    noise : label noise standard deviation (regression).
    well_specified : whether the fitted model class contains the truth.
    """

    setup: str
    task: str
    X_source: np.ndarray
    y_source: np.ndarray
    X_target: np.ndarray
    y_target: np.ndarray
    coef: np.ndarray
    intercept: float
    source_mean: np.ndarray
    source_cov: np.ndarray
    target_mean: np.ndarray
    target_cov: np.ndarray
    noise: float
    well_specified: bool

    # -- density ratio ------------------------------------------------------------------
    def log_density_ratio(self, X) -> np.ndarray:
        """Exact ``log p_T(x) - log p_S(x)`` (log space: never overflows)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        return (_gauss_logpdf(X, self.target_mean, self.target_cov)
                - _gauss_logpdf(X, self.source_mean, self.source_cov))

    def density_ratio(self, X) -> np.ndarray:
        """Exact ``w(x) = p_T(x) / p_S(x)`` (may overflow to ``inf`` far in the tails)."""
        with np.errstate(over="ignore"):
            return np.exp(self.log_density_ratio(X))

    # -- the truth ----------------------------------------------------------------------
    def regression_function(self, X) -> np.ndarray:
        """``E[y | x]`` (probability of class 1 for classification)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if self.setup == "B2":
            x = X[:, 0]
            return -x + x**3
        if self.setup == "phase_retrieval":
            return (X @ self.coef) ** 2
        eta = X @ self.coef + self.intercept
        return expit(eta) if self.task == "classification" else eta

    @property
    def target_fisher_ratio(self) -> float:
        """``Tr(I_T I_S^-1)`` over the mean parameters (intercept and coefficients).

        Closed form for the linear setups; for B3 and phase retrieval a Gauss-Hermite /
        large fixed-sample estimate.  MLE's target excess risk is ``~ this / n``
        (times ``noise^2`` for linear regression, times 1/2 for the KL of B3).
        """
        if self.setup in ("B1", "B2"):
            MS, MT = (_second_moment(m, S) for m, S in ((self.source_mean, self.source_cov),
                                                         (self.target_mean, self.target_cov)))
            return float(np.trace(MT @ np.linalg.inv(MS)))
        rng = np.random.default_rng(12345)
        Xs = rng.multivariate_normal(self.source_mean, self.source_cov, size=200_000)
        Xt = rng.multivariate_normal(self.target_mean, self.target_cov, size=200_000)
        info = []
        for X in (Xs, Xt):
            if self.setup == "B3":
                p = expit(X @ self.coef + self.intercept)
                Z = np.hstack([np.ones((len(X), 1)), X])
                info.append((Z * (p * (1 - p))[:, None]).T @ Z / len(X))
            else:
                g = 2 * (X @ self.coef)
                info.append((X * g[:, None] ** 2).T @ X / len(X))
        return float(np.trace(info[1] @ np.linalg.inv(info[0])))

    # -- exact target excess risk ----------------------------------------------------------
    def target_excess_risk(self, model: Any) -> float:
        """Exact target excess risk of a fitted model or of parameters.

        ``model`` is a fitted estimator with ``coef_``/``intercept_`` (probest's shift
        estimators, sklearn linear models), a ``(intercept, coef)`` pair, or a flat vector
        ``[intercept, coef...]`` (``coef`` only for phase retrieval).  Regression: the excess
        squared target risk over the best predictor in the model class
        ``E_T[(f_hat(x) - f*(x))^2]`` (linear) / ``E_T[((x^T b_hat)^2 - (x^T b)^2)^2]``
        (phase retrieval, sign-invariant); classification: ``E_T KL(p* || p_hat)``.
        Estimators without coefficients are scored from ``predict``/``predict_proba`` on a
        fixed target sample of 200,000 points (Monte Carlo, relative error ~0.5%).
        """
        fit_icpt = self.setup != "phase_retrieval"
        params = _params_of(model, fit_icpt)
        if params is None:
            return self._mc_excess_risk(model)
        icpt, coef = params
        if coef.size != self.coef.size:
            raise ValueError(
                f"the model has {coef.size} coefficients but setup {self.setup!r} has "
                f"{self.coef.size} features; fit it on this setup's X_source.")
        mT, ST = self.target_mean, self.target_cov
        if self.setup in ("B1", "B2"):
            delta = np.concatenate([[icpt - self.intercept], coef - self.coef])
            return float(delta @ _second_moment(mT, ST) @ delta)
        if self.setup == "phase_retrieval":
            # u = x^T b_hat, v = x^T b jointly Gaussian; (u^2 - v^2) = A B with
            # A = u - v, B = u + v.  E[A^2 B^2] by Isserlis with means.
            a_vec, b_vec = coef - self.coef, coef + self.coef
            ma, mb = a_vec @ mT, b_vec @ mT
            va, vb, c = a_vec @ ST @ a_vec, b_vec @ ST @ b_vec, a_vec @ ST @ b_vec
            return float(ma**2 * mb**2 + ma**2 * vb + mb**2 * va + 4 * ma * mb * c
                         + va * vb + 2 * c**2)
        # B3: (eta*, eta_hat) bivariate Gaussian under the target; 2-D Gauss-Hermite.
        B = np.column_stack([self.coef, coef])
        mean = B.T @ mT + np.array([self.intercept, icpt])
        cov = B.T @ ST @ B + 1e-300 * np.eye(2)
        w, V = np.linalg.eigh(cov)
        root = V * np.sqrt(np.clip(w, 0, None))
        t, wt = _gh(80)
        T1, T2 = np.meshgrid(t, t, indexing="ij")
        Z = np.stack([T1.ravel(), T2.ravel()])
        W = np.outer(wt, wt).ravel()
        eta = mean[:, None] + root @ Z
        return float(W @ _bernoulli_kl(eta[0], eta[1]))

    def _mc_excess_risk(self, model) -> float:
        rng = np.random.default_rng(2024)
        X = rng.multivariate_normal(self.target_mean, self.target_cov, size=200_000)
        if self.task == "classification":
            eta_star = X @ self.coef + self.intercept
            p_hat = np.asarray(model.predict_proba(X))[:, 1]
            p_star = expit(eta_star)
            lq1 = np.log(np.clip(p_hat, 1e-300, None))
            lq0 = np.log(np.clip(1 - p_hat, 1e-300, None))
            kl = (p_star * (log_expit(eta_star) - lq1) + (1 - p_star) * (log_expit(-eta_star) - lq0))
            return float(np.mean(kl))
        f = self.regression_function(X)
        excess = np.mean((np.asarray(model.predict(X)) - f) ** 2)
        if self.setup == "B2":  # subtract the best linear predictor's own approximation error
            best = self.intercept + X @ self.coef
            excess -= np.mean((best - f) ** 2)
        return float(excess)


def _second_moment(mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``E[z z^T]`` for ``z = (1, x)``, ``x ~ N(mean, cov)``."""
    d = mean.size
    M = np.empty((d + 1, d + 1))
    M[0, 0] = 1.0
    M[0, 1:] = M[1:, 0] = mean
    M[1:, 1:] = cov + np.outer(mean, mean)
    return M


def _bernoulli_kl(eta_p: np.ndarray, eta_q: np.ndarray) -> np.ndarray:
    """``KL(Bern(sigmoid(eta_p)) || Bern(sigmoid(eta_q)))`` in a stable form."""
    return expit(eta_p) * (eta_p - eta_q) + np.logaddexp(0, eta_q) - np.logaddexp(0, eta_p)


def make_covariate_shift(
    setup: str = "B1",
    n: int = 1000,
    random_state: Any = None,
    *,
    n_target: int | None = None,
) -> CovariateShiftData:
    """Draw one covariate-shift problem: ``n`` labelled source and ``n_target`` target rows.

    Parameters
    ----------
    setup : {"B1", "B2", "B3", "phase_retrieval"}
        See the module docstring (setups of Ge et al., ICLR 2024, and Shimodaira 2000).
    n : int
        Number of labelled source samples.
    random_state : None, int or numpy Generator/RandomState
        Seed of the draw.
    n_target : int, optional
        Number of (unlabelled for the estimators) target samples; default ``n``.

    Returns
    -------
    CovariateShiftData
        Arrays, the exact density ratio (``log_density_ratio``) and the exact
        ``target_excess_risk(model_or_params)``.

    Examples
    --------
    >>> from probest.datasets import make_covariate_shift
    >>> from probest.shift import WeightedLinearRegression
    >>> data = make_covariate_shift("B1", n=200, random_state=0)
    >>> data.X_source.shape, data.X_target.shape, data.well_specified
    ((200, 5), (200, 5), True)
    >>> mle = WeightedLinearRegression().fit(data.X_source, data.y_source)
    >>> round(data.target_excess_risk(mle), 3)
    0.249
    """
    if setup not in _SETUPS:
        raise ValueError(f"setup={setup!r} is unknown; use one of {_SETUPS}.")
    if not (isinstance(n, (int, np.integer)) and n >= 2):
        raise ValueError(f"n must be an integer >= 2, got {n!r}.")
    n_target = n if n_target is None else n_target
    if not (isinstance(n_target, (int, np.integer)) and n_target >= 1):
        raise ValueError(f"n_target must be a positive integer, got {n_target!r}.")
    if isinstance(random_state, np.random.Generator):
        rng = random_state
    elif isinstance(random_state, np.random.RandomState):
        rng = np.random.default_rng(random_state.randint(0, 2**31 - 1))
    else:
        rng = np.random.default_rng(random_state)

    if setup == "B1":
        d = 5
        coef, icpt, noise = np.array([1.0, -0.5, 0.5, 0.25, -1.0]), 1.0, 1.0
        mS, SS = np.zeros(d), np.eye(d)
        mT, ST = 1.5 * np.eye(d)[0], np.eye(d)
        task, well = "regression", True
    elif setup == "B2":
        coef, icpt, noise = np.array([-1.0 + 3 * 0.3**2]), 0.0, 0.3
        mS, SS = np.array([0.5]), np.array([[0.5**2]])
        mT, ST = np.array([0.0]), np.array([[0.3**2]])
        task, well = "regression", False
    elif setup == "B3":
        d = 5
        coef, icpt, noise = np.array([1.0, -1.0, 0.5, 0.0, 0.0]), 0.0, 0.0
        mS, SS = np.zeros(d), np.eye(d)
        mT, ST = 1.5 * np.eye(d)[1], np.eye(d)
        task, well = "classification", True
    else:
        d = 5
        coef, icpt, noise = np.array([1.0, 0.5, -0.5, 0.0, 0.0]), 0.0, 0.5
        mS, SS = np.zeros(d), np.eye(d)
        mT, ST = np.eye(d)[0], np.eye(d)
        task, well = "regression", True

    Xs = rng.multivariate_normal(mS, SS, size=n) if mS.size > 1 else mS + np.sqrt(SS[0, 0]) * \
        rng.standard_normal((n, 1))
    Xt = rng.multivariate_normal(mT, ST, size=n_target) if mT.size > 1 else mT + \
        np.sqrt(ST[0, 0]) * rng.standard_normal((n_target, 1))
    data = CovariateShiftData(
        setup=setup, task=task, X_source=Xs, y_source=np.empty(0), X_target=Xt,
        y_target=np.empty(0), coef=coef, intercept=icpt, source_mean=mS, source_cov=SS,
        target_mean=mT, target_cov=ST, noise=noise, well_specified=well,
    )

    def labels(X):
        f = data.regression_function(X)
        if task == "classification":
            return (rng.random(len(X)) < f).astype(np.int64)
        return f + noise * rng.standard_normal(len(X))

    data.y_source, data.y_target = labels(Xs), labels(Xt)
    return data
