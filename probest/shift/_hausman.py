"""Inference pieces of the covariate-shift estimators: the Hausman misspecification test's
null covariance and the sandwich covariance of a weighted torch-model fit."""

from __future__ import annotations

import numpy as np
import torch

from probest.shift._glm_base import _WeightedGLM


def _mean_params(model) -> np.ndarray:
    """The mean parameters of a GLM in the order of its ``_design`` (per output: coef, icpt)."""
    d = model.n_features_in_
    coef, icpt = model._split(torch.tensor(model.theta_), d)
    coef, icpt = coef.numpy(), icpt.numpy()
    return (np.hstack([coef, icpt[:, None]]) if model.fit_intercept else coef).ravel()


def _hausman_parts(mle, mwle, X, y, sw, w):
    """``D = theta_mwle - theta_mle`` and its null covariance ``V``.

    GLMs (mean parameters): the model-based Hausman covariance, exact given ``X`` for the
    Gaussian linear model: ``V = H_w^-1 M_w H_w^-1 - H^-1`` with ``H = sum s_i I(x_i)``,
    ``H_w = sum w_i I(x_i)``, ``M_w = sum w_i^2 I(x_i)`` and ``I`` the expected Fisher
    information of the MLE fit (efficient under the null).  Torch models: the empirical
    influence-function covariance ``sum_i u_i u_i^T``.
    """
    s = np.ones(len(X)) if sw is None else sw
    if isinstance(mle, _WeightedGLM):
        D = _mean_params(mwle) - _mean_params(mle)
        H = mle._expected_fisher(X, s) * s.sum()
        Hw = mle._expected_fisher(X, w) * w.sum()
        Mw = mle._expected_fisher(X, w * w / s.clip(1e-300)) * float(np.sum(w * w / s.clip(1e-300)))
        Hwi = np.linalg.pinv(Hw)
        V = Hwi @ Mw @ Hwi - np.linalg.pinv(H)
        vals, vecs = np.linalg.eigh(0.5 * (V + V.T))
        V = (vecs * np.clip(vals, 0, None)) @ vecs.T
        return D, V, "model-based"
    Gm, Hm = mle._grads_and_hessian(X, y, sw)
    Gw, Hw = mwle._grads_and_hessian(X, y, w)
    U = (Gw * w[:, None]) @ np.linalg.pinv(Hw).T - (Gm * s[:, None]) @ np.linalg.pinv(Hm).T
    return mwle.theta_ - mle.theta_, U.T @ U, "influence"


def _torch_sandwich(m, X, y, w):
    G, H = m._grads_and_hessian(X, y, w)
    Hinv = np.linalg.pinv(H)
    cov = Hinv @ ((G * w[:, None] ** 2).T @ G) @ Hinv
    return 0.5 * (cov + cov.T)
