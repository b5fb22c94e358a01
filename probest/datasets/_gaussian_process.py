"""Synthetic GP classification data (used by the sparse benchmark, tests and the tour)."""

from __future__ import annotations

import numpy as np


def make_gp_classification(n_samples: int = 1000, n_features: int = 2, *, lengthscale: float = 1.0,
                           outputscale: float = 4.0, n_fourier: int = 500, link: str = "probit",
                           return_latent: bool = False, random_state=None):
    """Binary labels from a latent GP draw: ``f ~ GP(0, outputscale * RBF(lengthscale))``
    (random Fourier features with ``n_fourier`` frequencies), ``y ~ Bernoulli(Phi(f))`` (probit)
    or ``Bernoulli(sigmoid(f))`` (logit).  ``X ~ N(0, I)``.

    Returns ``(X, y)`` or ``(X, y, f)`` with ``return_latent=True``.
    """
    from scipy.special import expit, ndtr

    if n_samples < 1 or n_features < 1:
        raise ValueError("n_samples and n_features must be positive.")
    if link not in ("probit", "logit"):
        raise ValueError(f"link={link!r} must be 'probit' or 'logit'.")
    rng = np.random.default_rng(random_state)
    X = rng.standard_normal((n_samples, n_features))
    W = rng.standard_normal((n_features, n_fourier)) / lengthscale
    b = rng.uniform(0, 2 * np.pi, n_fourier)
    w = rng.standard_normal(n_fourier)
    f = np.sqrt(2.0 * outputscale / n_fourier) * np.cos(X @ W + b) @ w
    p = ndtr(f) if link == "probit" else expit(f)
    y = (rng.uniform(size=n_samples) < p).astype(int)
    return (X, y, f) if return_latent else (X, y)
