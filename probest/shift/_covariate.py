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
from sklearn.base import ClassifierMixin, RegressorMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    has_fit_parameter,
    validate_data,
)

from probest.base import TorchEstimator
from probest.shift._glm import (
    WeightedLinearRegression,
    WeightedLogisticRegression,
    WeightedPoissonRegression,
    _WeightedGLM,
    sandwich_covariance,
)
from probest.shift._hausman import _hausman_parts, _torch_sandwich
from probest.shift._phase import PhaseRetrievalRegression
from probest.shift._ratio import DensityRatioEstimator, effective_sample_size, process_log_weights
from probest.shift._torchlik import _TorchLikelihoodModel

_ESTIMATORS = ("mle", "mwle", "auto")
_RATIO_METHODS = ("logistic", "ulsif", "rulsif", "kliep", "kmm")


class LowEffectiveSampleSizeWarning(UserWarning):
    """The importance weights leave very few effective samples (MWLE will be noisy)."""


class _CovariateShiftBase(TorchEstimator):
    _builtin: dict[str, type] = {}

    # -- params and bases ---------------------------------------------------------------------
    def _check_params(self):
        if self.estimator not in _ESTIMATORS:
            raise ValueError(f"estimator={self.estimator!r} is unknown; use one of {_ESTIMATORS}.")
        if not (0 < self.auto_level < 1):
            raise ValueError(f"auto_level must be in (0, 1), got {self.auto_level!r}.")

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
        self._check_params()
        n = len(X)
        sw = None
        if sample_weight is not None:
            sw = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        Xt = self._check_target(X_target)
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
        return self.estimator_.predict(X)

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

    # -- persistence (probest.save / load): built-in bases only ------------------------------
    def _get_fitted_state(self):
        """State of self plus the fitted built-in base; ``ratio_estimator_`` is not saved."""
        from probest._io import split_state

        m = self.estimator_
        if not isinstance(m, _WeightedGLM):
            raise TypeError(f"only built-in bases can be saved without pickle, not "
                            f"{type(m).__name__}; pickle the estimator instead.")
        skip = ("estimator_", "ratio_estimator_")
        fitted = {k: v for k, v in vars(self).items()
                  if k.endswith("_") and not k.startswith("_") and k not in skip}
        tensors, meta = split_state(fitted, owner=type(self).__name__)
        sub_t, sub_m = m._get_fitted_state()
        tensors.update({f"estimator_/{k}": v for k, v in sub_t.items()})
        meta["__estimator__"] = {"class": type(m).__name__, "params": m.get_params(), "state": sub_m}
        return tensors, meta

    def _set_fitted_state(self, tensors, meta):
        from probest._io import join_state

        meta = dict(meta)
        sub = meta.pop("__estimator__")
        own = {k: v for k, v in tensors.items() if not k.startswith("estimator_/")}
        for k, v in join_state(own, meta).items():
            setattr(self, k, v)
        classes = {c.__name__: c for c in (WeightedLinearRegression, WeightedLogisticRegression,
                                           WeightedPoissonRegression, PhaseRetrievalRegression)}
        m = classes[sub["class"]](**sub["params"])
        m._set_fitted_state({k.removeprefix("estimator_/"): v for k, v in tensors.items()
                             if k.startswith("estimator_/")}, sub["state"])
        self.estimator_ = m
        self.ratio_estimator_ = None


_DOC_PARAMS = """
    Parameters
    ----------
    base : str, sklearn estimator or torch ``nn.Module``
        {bases}; any sklearn estimator whose ``fit`` accepts ``sample_weight`` (cloned); or
        an ``nn.Module`` whose ``forward(X)`` returns a ``torch.distributions`` distribution of
        ``y`` with ``batch_shape (n,)`` (deep-copied, fitted by weighted L-BFGS).
    estimator : {{"mle", "mwle", "auto"}}, default="auto"
        Plain MLE, importance-weighted MLE, or the rule in the module docstring (a
        Hausman-type misspecification test; IW-CV for sklearn bases), recorded in
        ``auto_decision_``.
    density_ratio : str, callable, DensityRatioEstimator or "true", default="logistic"
        How ``w = p_T / p_S`` is obtained: a :class:`DensityRatioEstimator` method fitted on
        ``(X, X_target)``; a callable ``X -> w(X)`` (e.g. ``fitted_dre.predict_ratio``: the
        way to use the estimator inside ``GridSearchCV``, whose ``clone`` would unfit an
        estimator parameter); a ``DensityRatioEstimator`` (refitted when ``X_target`` is
        given, used as is when already fitted); any object with a ``predict_log_ratio(X)`` method
        (log space: ratios beyond float64 are fine); or ``"true"``: ``sample_weight`` holds
        the true ratios ``w(x_i)``.  Otherwise ``sample_weight`` multiplies the importance weights.
    ratio_features : None, list of column indices or callable, default=None
        The covariates the ratio is estimated on (default: all of ``X``).
    clip : float or None, default=0.99
        In ``(0, 1)``: cap the weights at that quantile; ``>= 1``: cap at ``W = clip`` times
        the mean weight; None: no clipping.
    flatten : float in [0, 1], default=1.0
        Use ``w ** flatten`` (0 is MLE, 1 full MWLE).
    normalize : bool, default=True
        Rescale the weights to mean 1 (the base is always fitted with ``w / mean(w)`` then).
    alpha : float, default=0.0
        Ridge penalty of the built-in bases.
    max_iter : int, default=100
        Optimiser budget of the built-in and torch bases.
    auto_level : float, default=0.05
        Significance level of the misspecification test of ``estimator="auto"``.
    random_state, device, dtype, verbose : see :class:`probest.base.TorchEstimator`.

    Attributes
    ----------
    estimator_ : the fitted base model; estimator_used_ : "mle" or "mwle";
    converged_, n_iter_ : the chosen base fit's convergence flag and iteration count;
    auto_decision_ : dict (rule, statistic, p-value or IW-CV losses, chosen);
    weights_ : importance weights of the source rows (clipped, flattened, normalised);
    ratio_estimator_ : the fitted DensityRatioEstimator (or the callable; None);
    effective_sample_size_ : ``(sum w)^2 / sum w^2``;
    target_fisher_ratio_ : plug-in ``Tr(I_T I_S^-1)`` (``I_T`` on ``X_target`` when given,
        else importance-weighted; empirical Fisher for torch models; None for sklearn bases).
        MLE's target excess risk is about this over ``n``;
    covariance_, covariance_type_ : sandwich (MWLE) or Laplace (MLE) covariance of the
        parameters (None for sklearn bases); coef_, intercept_ : when the base has them.
"""


class CovariateShiftRegressor(RegressorMixin, _CovariateShiftBase):
    _builtin = {"linear": WeightedLinearRegression, "poisson": WeightedPoissonRegression,
                "phase_retrieval": PhaseRetrievalRegression}

    def __init__(self, base: Any = "linear", *, estimator: str = "auto",
                 density_ratio: Any = "logistic", ratio_features: Any = None,
                 clip: float | None = 0.99, flatten: float = 1.0, normalize: bool = True,
                 alpha: float = 0.0, max_iter: int = 100, auto_level: float = 0.05,
                 random_state: Any = None, device: str = "cpu", dtype: str = "float64",
                 verbose: int = 0):
        self.base = base
        self.estimator = estimator
        self.density_ratio = density_ratio
        self.ratio_features = ratio_features
        self.clip = clip
        self.flatten = flatten
        self.normalize = normalize
        self.alpha = alpha
        self.max_iter = max_iter
        self.auto_level = auto_level
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.verbose = verbose

    def fit(self, X, y, X_target=None, sample_weight=None):
        """Fit on labelled source ``(X, y)``; ``X_target`` are unlabelled target covariates."""
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        self._fit(X, y, X_target, sample_weight)
        if not hasattr(self.estimator_, "to_pyro"):
            r = y - np.asarray(self.estimator_.predict(X))
            w = self.weights_ if self.estimator_used_ == "mwle" else np.ones(len(y))
            self.residual_scale_ = float(np.sqrt(max(w @ r**2 / w.sum(), 1e-12)))
        return self


class CovariateShiftClassifier(ClassifierMixin, _CovariateShiftBase):
    _builtin = {"logistic": WeightedLogisticRegression}

    def __init__(self, base: Any = "logistic", *, estimator: str = "auto",
                 density_ratio: Any = "logistic", ratio_features: Any = None,
                 clip: float | None = 0.99, flatten: float = 1.0, normalize: bool = True,
                 alpha: float = 0.0, max_iter: int = 100, auto_level: float = 0.05,
                 random_state: Any = None, device: str = "cpu", dtype: str = "float64",
                 verbose: int = 0):
        self.base = base
        self.estimator = estimator
        self.density_ratio = density_ratio
        self.ratio_features = ratio_features
        self.clip = clip
        self.flatten = flatten
        self.normalize = normalize
        self.alpha = alpha
        self.max_iter = max_iter
        self.auto_level = auto_level
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.verbose = verbose

    def fit(self, X, y, X_target=None, sample_weight=None):
        """Fit on labelled source ``(X, y)``; ``X_target`` are unlabelled target covariates."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes; got 1 class "
                             f"({self.classes_[0]!r}).")
        if sample_weight is not None:
            sw = np.asarray(sample_weight, dtype=np.float64)
            if sw.shape == y.shape and not np.any(sw > 0):
                raise ValueError("sample_weight is zero for every sample; at least one must be "
                                 "positive.")
            if sw.shape == y.shape and len(np.unique(y[sw > 0])) < 2:
                raise ValueError("only one class has positive sample_weight: at least 2 classes "
                                 "with positive weight are needed.")
        y_fit = y
        if isinstance(self.base, torch.nn.Module):
            y_fit = np.searchsorted(self.classes_, y)
        self._fit(X, y_fit, X_target, sample_weight)
        return self

    def predict_proba(self, X):
        """Class probabilities of the fitted model (columns in ``classes_`` order)."""
        X = self._check_X(X)
        return np.asarray(self.estimator_.predict_proba(X))

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        P = self.predict_proba(X)
        return self.classes_[np.argmax(P, axis=1)]


CovariateShiftRegressor.__doc__ = (
    "Covariate-shift regression by MLE or maximum weighted likelihood (MWLE).\n"
    + _DOC_PARAMS.format(bases='"linear" (Gaussian), "poisson" (log link), "phase_retrieval" '
                                '(y = (x^T b)^2 + noise, spectral start)'))
CovariateShiftClassifier.__doc__ = (
    "Covariate-shift classification by MLE or maximum weighted likelihood (MWLE).\n"
    + _DOC_PARAMS.format(bases='"logistic" (binary or multinomial)'))
