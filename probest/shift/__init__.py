"""probest.shift — covariate shift: MLE vs maximum weighted likelihood (MWLE).

:class:`CovariateShiftRegressor` / :class:`CovariateShiftClassifier` fit a parametric model on
labelled source data for a shifted target, by plain MLE or importance-weighted MLE (MWLE),
with the density ratio from :class:`DensityRatioEstimator`.  The weighted GLMs
(:class:`WeightedLinearRegression`, :class:`WeightedLogisticRegression`,
:class:`WeightedPoissonRegression`) and :class:`PhaseRetrievalRegression` are the torch MLE
models they reweight.
"""

from __future__ import annotations

from probest._lazy import attach

__getattr__, __dir__, __all__ = attach(__name__, {
    "WeightedLinearRegression": "probest.shift._glm",
    "WeightedLogisticRegression": "probest.shift._glm",
    "WeightedPoissonRegression": "probest.shift._glm",
    "PhaseRetrievalRegression": "probest.shift._phase",
    "CovariateShiftRegressor": "probest.shift._estimators",
    "CovariateShiftClassifier": "probest.shift._estimators",
    "LowEffectiveSampleSizeWarning": "probest.shift._covariate",
    "NoOverlapWarning": "probest.shift._checks",
    "PerfectSeparationWarning": "probest.shift._checks",
    "importance_weighted_cv": "probest.shift._iwcv",
    "sandwich_covariance": "probest.shift._glm_base",
    "sign_invariant_error": "probest.shift._phase",
    "DensityRatioEstimator": "probest.shift._ratio",
    "effective_sample_size": "probest.shift._ratio",
    "process_log_weights": "probest.shift._ratio",
})
