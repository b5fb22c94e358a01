"""Numerical guards of the GP estimators, in probest's words.

* :func:`check_input_scale` (fit): squared distances of the training inputs, divided by the
  smallest admissible lengthscale ``exp(-THETA_BOUND) = 1e-5``, must be representable in the
  working dtype; otherwise kernel matrices overflow and the fit would end in a non-finite or
  meaningless state, so a ``ValueError`` says which feature is too wide.
* :func:`check_finite_latent` (predict): rows whose latent mean or variance is not finite
  (kernel values overflow far from the data) raise a ``ValueError`` naming the rows.
* :func:`warn_on_bounds` (regressor fit): a ``ConvergenceWarning`` (as scikit-learn's
  ``GaussianProcessRegressor``) for every hyperparameter that ends on its box bound.
* :func:`linalg_error` turns a failed Cholesky factorisation into a ``ValueError`` that says
  what to change.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

#: hyperparameters (log lengthscale, log output scale, ...) are kept in [-THETA_BOUND, THETA_BOUND]
THETA_BOUND = math.log(1e5)

_MIN_LENGTHSCALE = math.exp(-THETA_BOUND)
_BOUND_TOL = 1e-4  # on the log scale: a hyperparameter this close to its bound is on it


def check_input_scale(X: np.ndarray, dtype: torch.dtype, owner: str) -> None:
    """Raise ``ValueError`` when squared distances between rows of ``X`` can overflow."""
    if X.size == 0:
        return
    big = float(torch.finfo(dtype).max)
    if not float(np.max(np.abs(X))) <= big:
        raise ValueError(
            f"{owner}: X has values beyond the range of {str(dtype).replace('torch.', '')} "
            f"(max |X| = {np.max(np.abs(X)):.3g}); use dtype='float64' or standardise X.")
    limit = _MIN_LENGTHSCALE * math.sqrt(big / (4.0 * X.shape[1]))
    with np.errstate(over="ignore", invalid="ignore"):
        span = np.max(X, axis=0) - np.min(X, axis=0)
    bad = np.flatnonzero(~(span <= limit))
    if bad.size:
        j = int(bad[np.argmax(np.nan_to_num(span[bad], posinf=np.inf))])
        raise ValueError(
            f"{owner}: feature {j} of X spans {span[j]:.3g}, too wide for a GP kernel in "
            f"{str(dtype).replace('torch.', '')} (squared distances at the smallest lengthscale "
            f"1e-5 overflow beyond a span of {limit:.3g}); standardise X (e.g. sklearn's "
            "StandardScaler) before fitting.")


def check_finite_latent(m: torch.Tensor, v: torch.Tensor) -> None:
    """Raise ``ValueError`` naming the rows whose latent mean or variance is not finite."""
    ok = torch.isfinite(m) & torch.isfinite(v)
    if ok.ndim > 1:
        ok = ok.all(-1)
    if bool(ok.all()):
        return
    rows = torch.nonzero(~ok).flatten().tolist()
    shown = ", ".join(map(str, rows[:10])) + (", ..." if len(rows) > 10 else "")
    raise ValueError(
        f"rows [{shown}] of X give non-finite GP predictions: their kernel values overflow "
        "(they lie too far from the training inputs on the scale of the fitted lengthscales). "
        "Scale X as the training data was scaled.")


def warn_on_bounds(fit, owner: str) -> None:
    """``ConvergenceWarning`` for each entry of ``theta`` that ended on ``+-THETA_BOUND``."""
    from sklearn.exceptions import ConvergenceWarning

    theta = fit.theta().cpu().numpy()
    names = fit.theta_names()
    for name, t in zip(names, theta):
        if abs(t) >= THETA_BOUND - _BOUND_TOL:
            side = "upper" if t > 0 else "lower"
            warnings.warn(
                f"{owner}: the fitted {name} = {t:.4g} is on its {side} bound "
                f"{math.copysign(THETA_BOUND, t):.4g} (hyperparameters are kept in "
                "[1e-5, 1e5]), so the optimum may lie beyond it. Rescale X, keep "
                "normalize_y=True, or pass a kernel with other constraints.",
                ConvergenceWarning, stacklevel=3)


def linalg_error(mode: str) -> ValueError:
    """A ``ValueError`` in probest's words for a failed factorisation in ``mode``."""
    return ValueError(
        f"GP {mode} inference failed: the kernel matrix is not numerically positive definite "
        "at these hyperparameters (Cholesky factorisation failed). Likely causes: inputs on "
        "extreme scales, (near-)duplicate rows with ~zero noise, or dtype='float32'; "
        "standardise X, use dtype='float64' or a larger noise_init.")


def latent_mvn(dist, loc: torch.Tensor, cov: torch.Tensor, jitter: float):
    """``dist.MultivariateNormal(loc, cov)``, or a ``ValueError`` saying to raise ``jitter``
    when ``cov`` (with ``jitter`` added) is still not numerically positive definite."""
    _, info = torch.linalg.cholesky_ex(cov)
    if bool((info != 0).any()):
        raise ValueError(
            f"the latent posterior covariance at these inputs is not numerically positive "
            f"definite with jitter={jitter:g} (relative to its mean variance), e.g. for "
            "(near-)duplicate rows; pass a larger jitter to to_pyro, e.g. jitter=1e-6.")
    return dist.MultivariateNormal(loc, covariance_matrix=cov)
