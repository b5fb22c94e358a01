"""Heterogeneous Gaussian clusters for the cluster family (the iLA-SDP paper's settings)."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state


def _setting_c(p: int):
    """Setting C: K=4, means 0, 3e_1, 3e_2, 8e_3; Sigma_1 = diag(4, 4, 1, ...),
    Sigma_2 = Sigma_3 = 0.3 I, Sigma_4 = diag(1, 1, 6, 1, ...)."""
    means = np.zeros((4, p))
    means[1, 0], means[2, 1], means[3, 2] = 3.0, 3.0, 8.0
    d = np.ones((4, p))
    d[0, :2] = 4.0
    d[1:3] = 0.3
    d[3, 2] = 6.0
    return means, np.stack([np.diag(v) for v in d])


def make_heterogeneous_blobs(n_samples=400, n_features=10, centers=4, *, setting=None,
                             separation=3.0, covariances=None, weights=None,
                             random_state=None, return_params=False):
    """Gaussian clusters with different covariance shapes and sizes.

    ``setting="C"`` is the spec's heterogeneous setting C (needs ``n_features >= 3``;
    ``centers`` is then 4): means ``0, 3 e_1, 3 e_2, 8 e_3`` and covariances
    ``diag(4, 4, 1, ...)``, ``0.3 I``, ``0.3 I``, ``diag(1, 1, 6, 1, ...)``; its Bayes error
    is about 0.027 at ``n_features=10``.  Otherwise cluster ``k`` has mean
    ``separation * e_k`` (cluster 0 at the origin; ``centers`` may also be a
    ``(K, n_features)`` array) and, unless ``covariances`` are given, a random diagonal
    covariance with variances log-uniform in ``[0.3, 4]``.

    Parameters
    ----------
    n_samples : int, default=400
        Number of points (split by ``weights``; equal sizes by default).
    n_features : int, default=10
        Dimension ``p``.
    centers : int or array-like of shape (K, n_features), default=4
        Number of clusters or their means.
    setting : {None, "C"}, default=None
        A preset (see above).
    separation : float, default=3.0
        Distance of each non-zero mean from the origin (when ``centers`` is an int).
    covariances : array-like of shape (K, n_features, n_features), optional
        Cluster covariances.
    weights : array-like of shape (K,), optional
        Cluster proportions (default equal).
    random_state : None, int or numpy RandomState, default=None
        Seed of the draw.
    return_params : bool, default=False
        Also return ``{"means", "covariances", "weights"}``.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        True cluster of each point (clusters in order, ``0..K-1``).
    params : dict
        Only with ``return_params=True``.

    Examples
    --------
    >>> import numpy as np
    >>> from probest.datasets import make_heterogeneous_blobs
    >>> X, y = make_heterogeneous_blobs(400, 10, setting="C", random_state=0)
    >>> X.shape, [int(c) for c in np.bincount(y)]
    ((400, 10), [100, 100, 100, 100])
    """
    rng = check_random_state(random_state)
    p = int(n_features)
    if setting == "C":
        if p < 3:
            raise ValueError("setting 'C' needs n_features >= 3.")
        means, covs = _setting_c(p)
    elif setting is not None:
        raise ValueError(f"setting must be None or 'C', got {setting!r}.")
    else:
        if np.ndim(centers) == 0:
            K = int(centers)
            if K < 1 or K > p + 1:
                raise ValueError(f"centers={K} needs 1 <= centers <= n_features + 1.")
            means = np.zeros((K, p))
            for k in range(1, K):
                means[k, k - 1] = separation
        else:
            means = np.asarray(centers, dtype=np.float64)
            if means.ndim != 2 or means.shape[1] != p:
                raise ValueError(f"centers must have shape (K, {p}), got {means.shape}.")
        K = means.shape[0]
        if covariances is None:
            var = np.exp(rng.uniform(np.log(0.3), np.log(4.0), size=(K, p)))
            covs = np.stack([np.diag(v) for v in var])
        else:
            covs = np.asarray(covariances, dtype=np.float64)
    K = means.shape[0]
    if covs.shape != (K, p, p):
        raise ValueError(f"covariances must have shape ({K}, {p}, {p}), got {covs.shape}.")
    w = np.full(K, 1.0 / K) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (K,) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be {K} non-negative numbers with a positive sum.")
    w = w / w.sum()
    sizes = np.floor(w * n_samples).astype(int)
    sizes[: n_samples - sizes.sum()] += 1
    X = np.concatenate([rng.multivariate_normal(means[k], covs[k], size=sizes[k])
                        for k in range(K)])
    y = np.repeat(np.arange(K), sizes)
    if return_params:
        return X, y, {"means": means, "covariances": covs, "weights": w}
    return X, y
