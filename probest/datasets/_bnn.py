"""Toy problems of the partial-Bayesian-network family, with their exact posteriors on a grid."""

from __future__ import annotations

import numpy as np
from scipy.special import log_expit, logsumexp

__all__ = ["bimodal_grid_posterior", "crescent_grid_posterior", "make_bimodal_toy",
           "make_crescent", "make_xsin_regression"]


def make_bimodal_toy(n_samples: int = 200, theta: float | None = None, random_state=None):
    """The symmetric bimodal Gauss–Bernoulli toy: ``theta ~ N(0, 1)``,
    ``y_i ~ Bernoulli(sigmoid(theta^2 - 1))``.

    The likelihood depends on ``theta`` only through ``theta^2``, so the posterior is
    symmetric with two modes at ``+-|theta|`` (for data drawn with ``|theta| > 0``).

    Parameters
    ----------
    n_samples : int
        Number of Bernoulli draws ``N``.
    theta : float, optional
        The true parameter (default: one prior draw).
    random_state : int, numpy Generator or None

    Returns
    -------
    y : ndarray of shape (n_samples,)
        0/1 observations.
    theta : float
        The parameter used.

    Examples
    --------
    >>> from probest.datasets import make_bimodal_toy, bimodal_grid_posterior
    >>> y, theta = make_bimodal_toy(200, theta=1.5, random_state=0)
    >>> grid, p = bimodal_grid_posterior(y)
    >>> round(float(p.sum() * (grid[1] - grid[0])), 6), round(float(p[grid > 0].sum() / p.sum()), 3)
    (1.0, 0.5)
    """
    rng = np.random.default_rng(random_state)
    theta = float(rng.normal()) if theta is None else float(theta)
    p = 1.0 / (1.0 + np.exp(-(theta**2 - 1.0)))
    return (rng.random(int(n_samples)) < p).astype(np.float64), theta


def bimodal_grid_posterior(y, grid=None):
    """``(grid, density)`` of the toy's exact posterior ``p(theta | y)`` on a grid,
    normalised so that ``sum(density) * step == 1``.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        0/1 observations of :func:`make_bimodal_toy`.
    grid : array-like, optional
        Equally spaced theta values (default 4001 points on ``[-4, 4]``).

    Returns
    -------
    grid, density : ndarray

    Examples
    --------
    >>> from probest.datasets import bimodal_grid_posterior
    >>> grid, p = bimodal_grid_posterior([1, 1, 0, 1])
    >>> grid.shape == p.shape
    True
    """
    y = np.asarray(y, dtype=np.float64)
    grid = np.linspace(-4.0, 4.0, 4001) if grid is None else np.asarray(grid, dtype=np.float64)
    f = grid**2 - 1.0
    k = y.sum()
    logp = -0.5 * grid**2 + k * log_expit(f) + (y.size - k) * log_expit(-f)
    step = grid[1] - grid[0]
    return grid, np.exp(logp - logsumexp(logp) - np.log(step))


def make_crescent(n_samples: int = 50, noise: float = 0.5, theta=(0.8, -0.6), random_state=None):
    """The crescent model: ``theta ~ N(0, I_2)``, ``y_i ~ N(theta_1^2 + theta_2, noise^2)``.

    The likelihood constrains only ``theta_1^2 + theta_2``, so the posterior is a curved
    ridge (a crescent) in the plane, symmetric in ``theta_1``.

    Parameters
    ----------
    n_samples : int
    noise : float
        Observation standard deviation.
    theta : pair of float
        The true parameter.
    random_state : int, numpy Generator or None

    Returns
    -------
    y : ndarray of shape (n_samples,)
    theta : ndarray of shape (2,)

    Examples
    --------
    >>> from probest.datasets import make_crescent, crescent_grid_posterior
    >>> y, theta = make_crescent(50, random_state=0)
    >>> g1, g2, p = crescent_grid_posterior(y)
    >>> p.shape
    (201, 201)
    """
    rng = np.random.default_rng(random_state)
    theta = np.asarray(theta, dtype=np.float64)
    return theta[0] ** 2 + theta[1] + noise * rng.normal(size=int(n_samples)), theta


def crescent_grid_posterior(y, noise: float = 0.5, n_grid: int = 201, lim: float = 3.0):
    """``(g1, g2, density)``: the crescent posterior on an ``n_grid x n_grid`` grid over
    ``[-lim, lim]^2`` (``density[i, j]`` at ``(g1[i], g2[j])``), normalised to integrate to 1.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
    noise : float
    n_grid : int
    lim : float

    Returns
    -------
    g1, g2, density : ndarray

    Examples
    --------
    >>> from probest.datasets import crescent_grid_posterior
    >>> g1, g2, p = crescent_grid_posterior([0.5, 0.7], n_grid=11)
    >>> p.shape
    (11, 11)
    """
    y = np.asarray(y, dtype=np.float64)
    g = np.linspace(-lim, lim, int(n_grid))
    t1, t2 = np.meshgrid(g, g, indexing="ij")
    m = t1**2 + t2
    logp = (-0.5 * (t1**2 + t2**2)
            - 0.5 * (((y[:, None, None] - m) / noise) ** 2).sum(0))
    step = g[1] - g[0]
    return g, g, np.exp(logp - logsumexp(logp) - 2 * np.log(step))


def make_xsin_regression(n_samples: int = 500, noise: float = 1.0, low: float = -5.0,
                         high: float = 5.0, random_state=None):
    """1-D regression ``y = x sin(x tanh x) + noise * eps``, ``x ~ U(low, high)``.

    Parameters
    ----------
    n_samples : int
    noise : float
        Noise standard deviation.
    low, high : float
        Range of ``x``.
    random_state : int, numpy Generator or None

    Returns
    -------
    X : ndarray of shape (n_samples, 1)
    y : ndarray of shape (n_samples,)

    Examples
    --------
    >>> from probest.datasets import make_xsin_regression
    >>> X, y = make_xsin_regression(100, random_state=0)
    >>> X.shape, y.shape
    ((100, 1), (100,))
    """
    rng = np.random.default_rng(random_state)
    x = rng.uniform(low, high, int(n_samples))
    y = x * np.sin(x * np.tanh(x)) + noise * rng.normal(size=x.size)
    return x[:, None], y
