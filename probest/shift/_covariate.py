"""Covariate-shift estimators: MLE or maximum weighted likelihood (MWLE) on source data.

Ge, Tang, Fan, Ma & Jin (ICLR 2024): with a *well-specified* parametric model, plain MLE on
the source sample is minimax optimal for the target risk (rate ``Tr(I_T I_S^-1) / n``,
no bound on the density ratio needed) while importance weighting only adds variance; under
*misspecification* MLE can stay ``Theta(1)`` off and MWLE — maximising
``sum_i w(x_i) log p(y_i | x_i, theta)`` with ``w = p_T / p_S`` — is the right estimator.

``estimator="auto"`` decides between the two with a documented rule (recorded in
``auto_decision_``):

* likelihood bases (GLMs, phase retrieval, torch models): a Hausman-type misspecification
  test.  Under a well-specified model MLE and MWLE estimate the same ``theta``; their
  difference ``D = theta_mwle - theta_mle`` is asymptotically ``N(0, V)`` with ``V``
  estimated from the per-sample influence functions
  ``u_i = H_w^-1 w_i g_i(theta_mwle) - H^-1 g_i(theta_mle)``, ``V = sum_i u_i u_i^T``.
  ``T = D^T V^+ D ~ chi2(rank V)``; MWLE is chosen when the p-value is below
  ``auto_level`` (default 0.05), MLE otherwise.
* sklearn bases: importance-weighted 5-fold CV (Sugiyama et al. 2007) of the unweighted and
  the weighted fit; the lower estimated target loss wins.
* no target information (no ``X_target`` and a ratio that must be estimated): MLE.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from scipy.stats import chi2
from sklearn.base import ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import (
    check_is_fitted,
    has_fit_parameter,
    validate_data,
)

from probest._validation import Interval, Options, check_sample_weight
from probest.base import TorchEstimator
from probest.shift._checks import (
    LowEffectiveSampleSizeWarning,
    _check_finite_rows,
    _check_scale,
)
from probest.shift._glm_base import _WeightedGLM, sandwich_covariance
from probest.shift._hausman import _hausman_parts, _torch_sandwich
from probest.shift._ratio import DensityRatioEstimator, effective_sample_size, process_log_weights
from probest.shift._torchlik import _TorchLikelihoodModel

_ESTIMATORS = ("mle", "mwle", "auto")
_RATIO_METHODS = ("logistic", "ulsif", "rulsif", "kliep", "kmm")


class _CovariateShiftBase(TorchEstimator):
    _builtin: dict[str, type] = {}
    # probest.save: ``estimator_`` (a built-in base) is saved as a sub-estimator; the fitted
    # density ratio is not saved (a loaded model has ratio_estimator_ = None).
    _unsaved_attributes = ("ratio_estimator_",)

    # -- params and bases (ProbestEstimator._validate_params reads _constraints) ----------------
    _constraints = {"estimator": (Options(_ESTIMATORS),),
                    "auto_level": (Interval(float, 0.0, 1.0, closed="neither"),)}

    def _make_base(self, seed: int):
        base = self.base
        kw = {"max_iter": self.max_iter, "device": self.device, "dtype": self.dtype}
        if isinstance(base, str):
            if base not in self._builtin:
                raise ValueError(f"base={base!r} is unknown for {type(self).__name__}; use one of "
                                 f"{sorted(self._builtin)}, an sklearn estimator or a torch module.")
            return self._builtin[base](alpha=self.alpha, **kw)
        if isinstance(base, torch.nn.Module):
            return _TorchLikelihoodModel(base, classifier=isinstance(self, ClassifierMixin),
                                         random_state=seed, **kw)
        if hasattr(base, "fit") and hasattr(base, "get_params"):
            return clone(base)
        raise TypeError(f"base must be a name, an sklearn estimator or a torch nn.Module returning "
                        f"a torch distribution; got {type(base).__name__}.")

    @staticmethod
    def _has_likelihood(model) -> bool:
        return isinstance(model, (_WeightedGLM, _TorchLikelihoodModel))

    def _ratio_features(self, X):
        rf = self.ratio_features
        if rf is None:
            return X
        if callable(rf):
            return np.asarray(rf(X), dtype=np.float64)
        return X[:, np.asarray(rf)]

    # -- weights ------------------------------------------------------------------------------
    def _log_ratio(self, X, Xt, sample_weight, seed):
        """Source log density ratios (or None) and the ratio estimator used."""
        dr = self.density_ratio
        if isinstance(dr, str) and dr == "true":
            if sample_weight is None:
                raise ValueError("density_ratio='true' reads the true ratios w(x_i) from "
                                 "sample_weight; pass fit(..., sample_weight=w).")
            with np.errstate(divide="ignore"):
                return np.log(np.asarray(sample_weight, dtype=np.float64)), None
        if hasattr(dr, "predict_log_ratio") and not isinstance(dr, DensityRatioEstimator):
            return np.asarray(dr.predict_log_ratio(self._ratio_features(X)), np.float64).ravel(), dr
        if isinstance(dr, DensityRatioEstimator):
            if Xt is not None:
                est = clone(dr).fit(self._ratio_features(X), self._ratio_features(Xt))
            else:
                try:
                    check_is_fitted(dr)
                except NotFittedError:
                    return None, None
                est = dr
            return est.predict_log_ratio(self._ratio_features(X)), est
        if callable(dr):
            with np.errstate(divide="ignore", over="ignore"):
                r = np.asarray(dr(X), dtype=np.float64).ravel()
                if r.shape != (len(X),):
                    raise ValueError(f"density_ratio(X) returned {r.shape}, expected ({len(X)},).")
                if np.any(r < 0):
                    raise ValueError("density_ratio(X) returned negative ratios.")
                return np.log(r), dr
        if dr not in _RATIO_METHODS:
            raise ValueError(f"density_ratio={dr!r} is unknown; use one of {_RATIO_METHODS}, "
                             "'true', a callable or a DensityRatioEstimator.")
        if Xt is None:
            return None, None
        est = DensityRatioEstimator(dr, random_state=seed).fit(
            self._ratio_features(X), self._ratio_features(Xt))
        return est.predict_log_ratio(self._ratio_features(X)), est

    def _check_target(self, X_target):
        if X_target is None:
            return None
        Xt = np.asarray(X_target)
        if Xt.ndim == 2 and Xt.shape[0] == 0:
            raise ValueError("X_target is empty: pass at least one target row (or None to skip "
                             "ratio estimation).")
        if Xt.ndim != 2 or Xt.shape[1] != self.n_features_in_:
            raise ValueError(f"X_target has {Xt.shape[-1] if Xt.ndim else 0} features but the "
                             f"source X has {self.n_features_in_} features; both must share columns.")
        return validate_data(self, Xt, dtype=np.float64, reset=False)

    # -- fit --------------------------------------------------------------------------------
    def _fit(self, X, y, X_target, sample_weight):
        self._validate_params()
        n = len(X)
        sw = check_sample_weight(sample_weight, n)
        Xt = self._check_target(X_target)
        self._check_scales(X, y, Xt)
        with self._fit_context() as ctx, self._progress(3, type(self).__name__) as prog:
            seed = ctx.seed % (2**31)
            log_r, self.ratio_estimator_ = self._log_ratio(X, Xt, sw, seed)
            prog.log(stage="density_ratio")
            base_w = None if (isinstance(self.density_ratio, str) and self.density_ratio == "true") \
                else sw
            if log_r is None:
                if self.estimator == "mwle":
                    raise ValueError("estimator='mwle' needs importance weights: pass X_target, "
                                     "a callable/fitted density_ratio, or density_ratio='true'.")
                w = np.ones(n)
            else:
                w = process_log_weights(log_r, clip=self.clip, flatten=self.flatten,
                                        normalize=self.normalize)
            self._w_ratio = w
            if base_w is not None:
                w = w * base_w
                if not np.any(w > 0):
                    raise ValueError("sample_weight times the importance weights is zero everywhere.")
            self.weights_ = w
            self.effective_sample_size_ = effective_sample_size(w)
            if log_r is not None and self.effective_sample_size_ < max(5.0, 0.01 * n):
                warnings.warn(
                    f"the importance weights leave an effective sample size of "
                    f"{self.effective_sample_size_:.3g} out of {n}: MWLE will be very noisy. Clip "
                    "(clip=0.95 or clip=W), flatten (flatten<1) or check the target overlaps the "
                    "source.", LowEffectiveSampleSizeWarning, stacklevel=3)
            w_fit = w / w.mean() if self.normalize else w
            model0 = self._make_base(seed)
            needs_w = self.estimator != "mle" and log_r is not None
            if needs_w and not self._has_likelihood(model0) and \
                    not has_fit_parameter(model0, "sample_weight"):
                raise ValueError(f"{type(model0).__name__}.fit does not accept sample_weight, so "
                                 "it cannot be importance-weighted; use estimator='mle'.")
            prog.log(stage="weights", effective_sample_size=self.effective_sample_size_)
            choice, mle, mwle = self._choose(model0, X, y, base_w, w_fit, log_r is not None)
            chosen = mwle if choice == "mwle" else mle
            ll = getattr(chosen, "loglik_", None)
            prog.log(stage=f"fit_{choice}", **({} if ll is None else {"objective": ll}))
        del self._w_ratio
        self.estimator_used_ = choice
        self.estimator_ = mwle if choice == "mwle" else mle
        self.converged_ = bool(getattr(self.estimator_, "converged_", True))
        n_it = getattr(self.estimator_, "n_iter_", None)
        self.n_iter_ = int(np.max(n_it)) if n_it is not None else len(self.history_)
        fit_w = w_fit if choice == "mwle" else base_w
        self._finish(X, y, Xt, base_w, fit_w, choice)
        return self

    def _check_scales(self, X, y, Xt):
        """Finite inputs whose squares overflow (Gram, Fisher and Hausman matrices) -> error."""
        owner = type(self).__name__
        _check_scale(X, name="X", owner=owner)
        if Xt is not None:
            _check_scale(Xt, name="X_target", owner=owner)
        if not isinstance(self, ClassifierMixin):
            _check_scale(y, name="y", owner=owner)

    def _fit_base(self, model, X, y, w):
        m = clone(model) if not isinstance(model, _TorchLikelihoodModel) else \
            _TorchLikelihoodModel(**model.get_params())
        if w is None:
            return m.fit(X, y)
        return m.fit(X, y, sample_weight=w)

    def _choose(self, model0, X, y, sw, w_fit, have_w):
        if self.estimator == "mle" or not have_w:
            rule = "fixed" if self.estimator == "mle" else "no target information: MLE"
            self.auto_decision_ = {"rule": rule, "chosen": "mle"}
            return "mle", self._fit_base(model0, X, y, sw), None
        if self.estimator == "mwle":
            self.auto_decision_ = {"rule": "fixed", "chosen": "mwle"}
            return "mwle", None, self._fit_base(model0, X, y, w_fit)
        if self._has_likelihood(model0):
            mle = self._fit_base(model0, X, y, sw)
            mwle = self._fit_base(model0, X, y, w_fit)
            D, V, kind = _hausman_parts(mle, mwle, X, y, sw, w_fit)
            Vp = np.linalg.pinv(V, rcond=1e-10, hermitian=True)
            stat = float(D @ Vp @ D)
            df = int(np.linalg.matrix_rank(V, tol=1e-10 * max(np.abs(V).max(), 1e-300),
                                           hermitian=True))
            p = float(chi2.sf(stat, max(df, 1)))
            choice = "mwle" if p < self.auto_level else "mle"
            self.auto_decision_ = {"rule": "hausman", "variance": kind, "statistic": stat,
                                   "df": df, "p_value": p, "level": self.auto_level,
                                   "chosen": choice}
            return choice, mle, mwle
        from probest.shift._iwcv import importance_weighted_cv

        kw = {"importance_weights": self._w_ratio, "sample_weight": sw, "random_state": 0}
        base = model0
        l_mle = importance_weighted_cv(base, X, y, fit_weighted=False, **kw)["loss"]
        l_mwle = importance_weighted_cv(base, X, y, fit_weighted=True, **kw)["loss"]
        choice = "mwle" if l_mwle < l_mle else "mle"
        self.auto_decision_ = {"rule": "importance_weighted_cv", "mle_loss": l_mle,
                               "mwle_loss": l_mwle, "chosen": choice}
        mle = self._fit_base(base, X, y, sw) if choice == "mle" else None
        mwle = self._fit_base(base, X, y, w_fit) if choice == "mwle" else None
        return choice, mle, mwle

    def _finish(self, X, y, Xt, sw, fit_w, choice):
        m = self.estimator_
        if hasattr(m, "coef_"):
            self.coef_ = m.coef_
            self.intercept_ = getattr(m, "intercept_", 0.0)
        self.covariance_, self.covariance_type_ = None, None
        self.target_fisher_ratio_ = None
        if not self._has_likelihood(m):
            return
        if choice == "mwle":
            self.covariance_ = (sandwich_covariance(m, X, y, fit_w, fitted_weights=True)
                                if isinstance(m, _WeightedGLM)
                                else _torch_sandwich(m, X, y, fit_w))
            self.covariance_type_ = "sandwich"
        else:
            self.covariance_, self.covariance_type_ = m.covariance_, "laplace"
        have_target = Xt is not None or self.ratio_estimator_ is not None or \
            not np.allclose(self.weights_, self.weights_[0])
        if not have_target:
            return
        try:
            I_S = m._expected_fisher(X, sw)
            I_T = m._expected_fisher(Xt) if Xt is not None else m._expected_fisher(X, self.weights_)
        except NotImplementedError:  # torch models: empirical Fisher (outer products of scores)
            G, _ = m._grads_and_hessian(X, y)
            s = np.ones(len(X)) if sw is None else sw
            I_S = (G * s[:, None]).T @ G / s.sum()
            I_T = (G * self.weights_[:, None]).T @ G / self.weights_.sum()
        self.target_fisher_ratio_ = float(np.trace(I_T @ np.linalg.pinv(I_S)))

    # -- prediction and composition ------------------------------------------------------------
    def _check_X(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=np.float64)

    def predict(self, X):
        """Predictions of the fitted (MLE or MWLE) model."""
        X = self._check_X(X)
        return _check_finite_rows(self.estimator_.predict(X), owner=type(self).__name__,
                                  what="predict", X=X)

    def to_pyro(self, X):
        """The fitted conditional model ``p(y | X)`` as a Pyro distribution, ``batch_shape (n,)``.

        Parameters are frozen at their point estimates (use ``to_arviz`` draws to propagate
        uncertainty).  sklearn regressors become ``Normal(predict(X), s)`` with ``s`` the
        weighted residual scale; sklearn classifiers ``Categorical(predict_proba(X))``.
        """
        import pyro.distributions as dist

        X = self._check_X(X)
        m = self.estimator_
        if hasattr(m, "to_pyro"):
            return m.to_pyro(X)
        if isinstance(self, ClassifierMixin):
            return dist.Categorical(probs=torch.tensor(m.predict_proba(X)))
        loc = torch.tensor(np.asarray(m.predict(X), dtype=np.float64))
        return dist.Normal(loc, torch.full_like(loc, self.residual_scale_))

    def to_arviz(self, n_draws: int = 1000, random_state: Any = None):
        """Gaussian draws of the parameters as ArviZ data: ``N(theta_hat, covariance_)``.

        ``covariance_`` is the sandwich covariance ``H^-1 (sum w_i^2 g_i g_i^T) H^-1`` for
        MWLE (the Laplace ``H^-1`` under-covers a weighted fit) and the Laplace covariance
        for MLE; ``attrs["covariance"]`` says which.  One chain of ``n_draws`` draws.
        """
        check_is_fitted(self)
        if self.covariance_ is None:
            raise NotImplementedError(
                f"{type(self.estimator_).__name__} exposes no likelihood, so there is no "
                "parameter covariance to draw from; use a built-in base or a torch model.")
        idata = self.estimator_.to_arviz(n_draws=n_draws, random_state=random_state,
                                         covariance=self.covariance_)
        idata.posterior.attrs["covariance"] = self.covariance_type_
        return idata

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags
