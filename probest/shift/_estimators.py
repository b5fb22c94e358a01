"""The public covariate-shift estimators (the shared engine is in ``_covariate.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from probest.base import EstimatorSpec
from probest.shift._checks import _check_finite_rows
from probest.shift._covariate import _CovariateShiftBase
from probest.shift._glm import (
    WeightedLinearRegression,
    WeightedLogisticRegression,
    WeightedPoissonRegression,
)
from probest.shift._phase import PhaseRetrievalRegression

#: fitted attributes shared by both covariate-shift estimators (probest._persist).
_SHIFT_FITTED = ("estimator_", "ratio_estimator_", "estimator_used_", "auto_decision_", "weights_",
                 "effective_sample_size_", "target_fisher_ratio_", "covariance_",
                 "covariance_type_", "coef_", "intercept_", "converged_", "n_iter_")

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
    random_state : None, int or numpy Generator/RandomState, default=None
        Seeds the density-ratio fit, the IW-CV folds and torch bases.
    device : {{"cpu", "cuda", "cuda:N", "auto"}}, default="cpu"
        Torch device of the built-in and torch bases.
    dtype : {{"float64", "float32"}}, default="float64"
        Floating dtype of the built-in and torch bases.
    verbose : int, default=0
        Progress of the base fits (see :class:`probest.base.TorchEstimator`).

    Attributes
    ----------
    estimator_ : estimator
        The fitted base model.
    estimator_used_ : {{"mle", "mwle"}}
        Which fit was kept.
    converged_ : bool
        The chosen base fit's convergence flag.
    n_iter_ : int
        The chosen base fit's iteration count.
    auto_decision_ : dict
        Rule, statistic, p-value or IW-CV losses, and the choice (``estimator="auto"``).
    weights_ : ndarray of shape (n_samples,)
        Importance weights of the source rows (clipped, flattened, normalised).
    ratio_estimator_ : DensityRatioEstimator, callable or None
        What gave the weights.
    effective_sample_size_ : float
        ``(sum w)^2 / sum w^2`` of ``weights_``.
    target_fisher_ratio_ : float or None
        Plug-in ``Tr(I_T I_S^-1)`` (``I_T`` on ``X_target`` when given, else
        importance-weighted; empirical Fisher for torch models; None for sklearn bases).
        MLE's target excess risk is about this over ``n``.
    covariance_ : ndarray or None
        Sandwich (MWLE) or Laplace (MLE) covariance of the parameters (None for sklearn bases).
    covariance_type_ : str or None
        ``"sandwich"`` or ``"laplace"``.
    coef_ : ndarray
        The base's coefficients, when it has them.
    intercept_ : float or ndarray
        The base's intercept, when it has one.
    n_features_in_ : int
        Number of features seen in ``fit``.
"""


def _init_with_default_base(default_base: str):
    """The ``__init__`` both estimators share; only the default ``base`` differs.

    scikit-learn reads parameter names and defaults from the signature of ``cls.__init__``
    (``get_params``, ``clone``, the repr), so each class gets its own function with an
    explicit signature rather than one inherited ``__init__`` with a single default.
    """

    def __init__(self, base: Any = default_base, *, estimator: str = "auto",
                 density_ratio: Any = "logistic", ratio_features: Any = None,
                 clip: float | None = 0.99, flatten: float = 1.0, normalize: bool = True,
                 alpha: float = 0.0, max_iter: int = 100, auto_level: float = 0.05,
                 random_state: Any = None, device: str = "cpu", dtype: str = "float64",
                 verbose: int = 0):
        self._store_params(locals())

    return __init__


class CovariateShiftRegressor(RegressorMixin, _CovariateShiftBase):
    _spec = EstimatorSpec(outputs=("predict",))
    _builtin = {"linear": WeightedLinearRegression, "poisson": WeightedPoissonRegression,
                "phase_retrieval": PhaseRetrievalRegression}

    _fitted_attributes = _SHIFT_FITTED + ("residual_scale_",)

    __init__ = _init_with_default_base("linear")

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
    _spec = EstimatorSpec(outputs=("predict", "predict_proba"))
    _builtin = {"logistic": WeightedLogisticRegression}

    _fitted_attributes = _SHIFT_FITTED + ("classes_",)

    __init__ = _init_with_default_base("logistic")

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
        return _check_finite_rows(np.asarray(self.estimator_.predict_proba(X)),
                                  owner=type(self).__name__, what="predict_proba", X=X)

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        P = self.predict_proba(X)
        return self.classes_[np.argmax(P, axis=1)]


CovariateShiftRegressor.__doc__ = (
    "Covariate-shift regression by MLE or maximum weighted likelihood (MWLE).\n"
    + _DOC_PARAMS.format(bases='"linear" (Gaussian), "poisson" (log link), "phase_retrieval" '
                                '(y = (x^T b)^2 + noise, spectral start)')
    + """
    Examples
    --------
    >>> from probest.datasets import make_covariate_shift
    >>> from probest.shift import CovariateShiftRegressor
    >>> data = make_covariate_shift("B2", n=200, random_state=0)  # misspecified linear model
    >>> est = CovariateShiftRegressor(estimator="auto", random_state=0)
    >>> est = est.fit(data.X_source, data.y_source, X_target=data.X_target)
    >>> est.estimator_used_, bool(est.auto_decision_["p_value"] < 0.05)
    ('mwle', True)
    >>> mle = CovariateShiftRegressor(estimator="mle").fit(data.X_source, data.y_source)
    >>> bool(data.target_excess_risk(est) < data.target_excess_risk(mle))
    True
    >>> est.to_pyro(data.X_target[:5]).batch_shape
    torch.Size([5])
""")
CovariateShiftClassifier.__doc__ = (
    "Covariate-shift classification by MLE or maximum weighted likelihood (MWLE).\n"
    + _DOC_PARAMS.format(bases='"logistic" (binary or multinomial)')
    + """    classes_ : ndarray of shape (n_classes,)
        Class labels.

    Examples
    --------
    >>> from probest.datasets import make_covariate_shift
    >>> from probest.shift import CovariateShiftClassifier
    >>> data = make_covariate_shift("B3", n=200, random_state=0)  # well-specified logistic
    >>> clf = CovariateShiftClassifier(estimator="mwle", random_state=0)
    >>> clf = clf.fit(data.X_source, data.y_source, X_target=data.X_target)
    >>> clf.estimator_used_, clf.classes_, clf.predict_proba(data.X_target[:2]).shape
    ('mwle', array([0, 1]), (2, 2))
""")
