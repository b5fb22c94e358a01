"""Importance-weighted cross-validation (Sugiyama, Krauledat & Mueller 2007).

Under covariate shift the ordinary CV loss estimates the *source* risk.  Weighting each
validation loss by ``w(x) = p_T(x) / p_S(x)`` makes it an (almost) unbiased estimate of the
*target* risk, so it can choose hyper-parameters, or MLE vs MWLE, for the target.

Inside scikit-learn's own tools the same thing is metadata routing::

    sklearn.set_config(enable_metadata_routing=True)
    scorer = make_scorer(mean_squared_error, greater_is_better=False)
    scorer.set_score_request(sample_weight=True)
    est = CovariateShiftRegressor(density_ratio="true").set_fit_request(sample_weight=True)
    GridSearchCV(est, {"flatten": [0, .5, 1]}, scoring=scorer).fit(X, y, sample_weight=w)

routes the importance weights ``w`` to both the fit and the validation score.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.utils.validation import check_consistent_length, has_fit_parameter

_LOSSES = ("squared_error", "absolute_error", "log_loss", "zero_one")


def _per_sample_loss(loss, est, X, y) -> np.ndarray:
    if callable(loss):
        return np.asarray(loss(y, est.predict(X)), dtype=np.float64)
    if loss == "squared_error":
        return (np.asarray(est.predict(X), dtype=np.float64) - y) ** 2
    if loss == "absolute_error":
        return np.abs(np.asarray(est.predict(X), dtype=np.float64) - y)
    if loss == "zero_one":
        return (est.predict(X) != y).astype(np.float64)
    P = np.asarray(est.predict_proba(X), dtype=np.float64)
    idx = np.searchsorted(est.classes_, y)
    return -np.log(np.clip(P[np.arange(len(y)), idx], 1e-300, None))


def importance_weighted_cv(
    estimator,
    X,
    y,
    *,
    importance_weights=None,
    X_target=None,
    density_ratio: Any = "logistic",
    sample_weight=None,
    fit_weighted: bool = True,
    cv: int = 5,
    loss: Any = None,
    random_state: Any = 0,
) -> dict[str, Any]:
    """Importance-weighted CV estimate of the target risk of ``estimator``.

    Parameters
    ----------
    estimator : estimator
        A sklearn-compatible estimator (cloned per fold).
    X : array-like of shape (n_samples, n_features)
        Labelled source covariates.
    y : array-like of shape (n_samples,)
        Source labels.
    importance_weights : array, optional
        ``w(x_i)`` for the source rows.  Otherwise estimated from ``X_target``.
    X_target : array-like of shape (n_target, n_features), optional
        Unlabelled target covariates (when ``importance_weights`` is not given).
    density_ratio : str or DensityRatioEstimator, default="logistic"
        ``DensityRatioEstimator(density_ratio)`` (a method name) or an estimator (cloned).
    sample_weight : array, optional
        Per-row base weights (e.g. repetitions): every fit uses them, and they multiply the
        importance weights in the validation losses.
    fit_weighted : bool, default=True
        Fit each fold with ``sample_weight = w * sample_weight`` (importance-weighted training,
        MWLE) or with ``sample_weight`` alone (MLE).  Validation losses are
        importance-weighted either way.
    cv : int, default=5
        Number of (stratified for classifiers) shuffled folds.
    loss : {"squared_error", "absolute_error", "log_loss", "zero_one"} or callable
        Per-sample loss; callable ``loss(y_true, y_pred) -> array``.  Default
        "squared_error" for regressors, "log_loss" for classifiers.

    random_state : None, int or Generator, default=0
        Seeds the folds and the density-ratio fit.

    Returns
    -------
    dict
        ``"loss"`` (mean over folds of ``sum w_i l_i / sum w_i``), ``"fold_losses"``,
        ``"std"`` and the ``"weights"`` used.

    Examples
    --------
    >>> from probest.datasets import make_covariate_shift
    >>> from probest.shift import WeightedLinearRegression, importance_weighted_cv
    >>> data = make_covariate_shift("B2", n=200, random_state=0)
    >>> res = importance_weighted_cv(WeightedLinearRegression(), data.X_source, data.y_source,
    ...                              X_target=data.X_target, cv=3)
    >>> sorted(res), len(res["fold_losses"])
    (['fold_losses', 'loss', 'std', 'weights'], 3)
    """
    X = np.asarray(X)
    y = np.asarray(y)
    check_consistent_length(X, y)
    if importance_weights is None:
        if X_target is None:
            raise ValueError("pass importance_weights or X_target to estimate them.")
        from probest.shift._ratio import DensityRatioEstimator

        dre = (clone(density_ratio) if hasattr(density_ratio, "fit")
               else DensityRatioEstimator(density_ratio, random_state=random_state))
        w = dre.fit(X, X_target).importance_weights(X)
    else:
        w = np.asarray(importance_weights, dtype=np.float64)
        check_consistent_length(X, w)
        if np.any(~np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
            raise ValueError("importance_weights must be finite, non-negative and not all zero.")
    s = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if s is not None:
        check_consistent_length(X, s)
        w = w * s
    loss = loss if loss is not None else ("log_loss" if is_classifier(estimator) else "squared_error")
    if not callable(loss) and loss not in _LOSSES:
        raise ValueError(f"loss={loss!r} is unknown; use one of {_LOSSES} or a callable.")
    if (fit_weighted or s is not None) and not has_fit_parameter(estimator, "sample_weight"):
        raise ValueError(f"{type(estimator).__name__}.fit does not accept sample_weight; "
                         "use fit_weighted=False without sample_weight.")
    splitter = (StratifiedKFold if is_classifier(estimator) else KFold)(
        n_splits=cv, shuffle=True, random_state=random_state)
    losses = []
    for train, val in splitter.split(X, y):
        est = clone(estimator)
        if fit_weighted:
            est.fit(X[train], y[train], sample_weight=w[train] / w[train].mean())
        elif s is not None:
            est.fit(X[train], y[train], sample_weight=s[train])
        else:
            est.fit(X[train], y[train])
        wv = w[val]
        if wv.sum() <= 0:
            continue
        losses.append(float(wv @ _per_sample_loss(loss, est, X[val], y[val]) / wv.sum()))
    if not losses:
        raise ValueError("every validation fold has zero total importance weight.")
    return {"loss": float(np.mean(losses)), "std": float(np.std(losses)),
            "fold_losses": losses, "weights": w}
