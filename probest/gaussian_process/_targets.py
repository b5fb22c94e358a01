"""Target normalisation of :class:`GaussianProcessRegressor` (``normalize_y``).

The latent GP has a zero prior mean and an output scale initialised at ``var(y)``; targets far
from zero (``y = 100 + sin(x)``) or on extreme scales then push the hyperparameters to their
bounds and the predictive is confidently wrong.  With ``normalize_y=True`` the regressor fits
the standardised targets ``z = (y - y_mean_) / y_std_`` and maps every output back, so an offset
or a scale of ``y`` never matters:

* Gaussian and Student-t likelihoods are location-scale families: ``p(y) = p_z(z) / y_std_``,
  so predictive means are ``y_mean_ + y_std_ * m_z``, standard deviations ``y_std_ * s_z`` and
  log densities ``log p_z(z) - log(y_std_)``.
* Poisson counts are never standardised (a shifted or rescaled count is no count); their
  level is already learned by the likelihood's ``offset = log(mean(y))``.  ``y_mean_ = 0``,
  ``y_std_ = 1`` there, so every mapping below is the identity.

Constant targets (``y_std = 0``, or a spread below the rounding error of ``y_mean``) get
``y_std_ = 1`` as in scikit-learn: the regressor then predicts the constant.
"""

from __future__ import annotations

import numpy as np

_ROUNDING = 16.0 * np.finfo(np.float64).eps  # spread below this (relative) is rounding noise


def standardise_targets(y: np.ndarray, likelihood: str,
                        normalize: bool) -> tuple[np.ndarray, float, float]:
    """``(z, y_mean_, y_std_)`` with ``z = (y - y_mean_) / y_std_``; ``(y, 0, 1)`` when not
    normalising (or for Poisson counts).

    Computed on ``u = y / max|y|`` so that neither the mean, the variance nor ``y - y_mean_``
    overflows for huge (finite) targets; a vanishing spread gives ``y_std_ = 1``.
    """
    if not normalize or likelihood == "poisson":
        return y, 0.0, 1.0
    top = float(np.max(np.abs(y))) if y.size else 0.0
    if top == 0.0:
        return y, 0.0, 1.0
    u = y / top
    mean_u = float(np.mean(u))
    std_u = float(np.std(u - mean_u))
    if std_u <= _ROUNDING * max(abs(mean_u), np.finfo(np.float64).tiny):  # constant y
        return np.zeros_like(y), top * mean_u, 1.0
    return (u - mean_u) / std_u, top * mean_u, top * std_u
