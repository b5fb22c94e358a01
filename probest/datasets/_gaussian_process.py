"""Synthetic GP classification data (used by the sparse benchmark, tests and the tour)."""

from __future__ import annotations

import numpy as np


def make_gp_classification(n_samples: int = 1000, n_features: int = 2, *, lengthscale: float = 1.0,
                           outputscale: float = 4.0, n_fourier: int = 500, link: str = "probit",
                           return_latent: bool = False, random_state=None):
    """Binary labels from a latent GP draw: ``f ~ GP(0, outputscale * RBF(lengthscale))``
    (random Fourier features with ``n_fourier`` frequencies), ``y ~ Bernoulli(Phi(f))`` (probit)
    or ``Bernoulli(sigmoid(f))`` (logit).  ``X ~ N(0, I)``.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of points.
    n_features : int, default=2
        Input dimension.
    lengthscale : float, default=1.0
        RBF lengthscale of the latent GP.
    outputscale : float, default=4.0
        Variance of the latent GP.
    n_fourier : int, default=500
        Number of random Fourier features approximating the GP draw.
    link : {"probit", "logit"}, default="probit"
        Link from the latent function to ``p(y = 1)``.
    return_latent : bool, default=False
        Also return the latent values ``f``.
    random_state : None, int or numpy Generator, default=None
        Seed of the draw.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Standard normal inputs.
    y : ndarray of shape (n_samples,)
        Labels in {0, 1}.
    f : ndarray of shape (n_samples,)
        Latent function values (only with ``return_latent=True``).

    Examples
    --------
    >>> from probest.datasets import make_gp_classification
    >>> X, y = make_gp_classification(50, random_state=0)
    >>> X.shape, sorted(set(y.tolist()))
    ((50, 2), [0, 1])
    >>> X, y, f = make_gp_classification(50, return_latent=True, random_state=0)
    >>> f.shape
    (50,)
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


GP_BENCHMARK_TASKS = ("breast_cancer", "digits_3v5", "iris", "wine")


def load_gp_benchmark(name: str, *, n_folds: int = 5):
    """The spec's GP classification tasks as standardised 5-fold CV splits.

    ``name`` is one of :data:`GP_BENCHMARK_TASKS` (sklearn's bundled data; ``digits_3v5`` keeps
    digits 3 and 5 with label 1 for "5").  Yields ``(X_train, y_train, X_test, y_test)`` for the
    first ``n_folds`` folds of ``KFold(5, shuffle=True, random_state=42)``, X standardised on the
    training fold — the protocol behind the acceptance table, shared by tests and benchmarks.

    Parameters
    ----------
    name : {"breast_cancer", "digits_3v5", "iris", "wine"}
        The task.
    n_folds : int, default=5
        How many of the five folds to yield.

    Yields
    ------
    X_train, y_train, X_test, y_test : ndarray
        One fold, ``X`` standardised with the training fold's mean and scale.

    Examples
    --------
    >>> from probest.datasets import load_gp_benchmark
    >>> folds = list(load_gp_benchmark("iris", n_folds=2))
    >>> len(folds), [a.shape for a in folds[0]]
    (2, [(120, 4), (120,), (30, 4), (30,)])
    """
    from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    loaders = {"breast_cancer": load_breast_cancer, "iris": load_iris, "wine": load_wine}
    if name in loaders:
        X, y = loaders[name](return_X_y=True)
    elif name == "digits_3v5":
        X, y = load_digits(return_X_y=True)
        keep = (y == 3) | (y == 5)
        X, y = X[keep], (y[keep] == 5).astype(int)
    else:
        raise ValueError(f"unknown GP benchmark task {name!r}; choose from {GP_BENCHMARK_TASKS}.")
    for tr, te in list(KFold(5, shuffle=True, random_state=42).split(X))[:n_folds]:
        sc = StandardScaler().fit(X[tr])
        # digits has constant pixels: a zero-variance column standardises to NaN -> 0
        yield (np.nan_to_num(sc.transform(X[tr])), y[tr], np.nan_to_num(sc.transform(X[te])), y[te])
