"""Shared scores: NLPD, expected calibration error, mis-clustering error, ROC-AUC wrapper."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def nlpd_classification(y_true, proba, classes=None, eps: float = 1e-300) -> float:
    """Mean negative log predictive density ``-mean log p(y_i | x_i)`` (nats).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    proba : array-like of shape (n_samples, n_classes) or (n_samples,)
        Predicted class probabilities, one column per class in ``classes`` order; a 1-D
        array is ``p(y = classes[1])`` of a binary problem.
    classes : array-like of shape (n_classes,), optional
        Class labels in column order (default: the sorted unique labels of ``y_true``).
    eps : float, default=1e-300
        Floor on the probability of the true class (so a zero gives a large finite value).

    Returns
    -------
    float
        The mean of ``-log proba[i, y_i]`` in nats (lower is better).

    Examples
    --------
    >>> from probest.metrics import nlpd_classification
    >>> round(nlpd_classification([0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]), 4)
    0.2798
    """
    proba = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y_true)
    if proba.ndim == 1:
        proba = np.column_stack([1.0 - proba, proba])
    classes = np.unique(y) if classes is None else np.asarray(classes)
    if proba.shape[1] != len(classes):
        raise ValueError(f"proba has {proba.shape[1]} columns but there are {len(classes)} classes.")
    idx = np.searchsorted(classes, y)
    if np.any(idx >= len(classes)) or np.any(classes[np.minimum(idx, len(classes) - 1)] != y):
        raise ValueError("y_true contains labels not in classes.")
    p = proba[np.arange(len(y)), idx]
    return float(-np.mean(np.log(np.clip(p, eps, None))))


def nlpd_gaussian(y_true, mean, var) -> float:
    """Mean Gaussian negative log predictive density with per-point predictive variance.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Observed targets.
    mean : array-like of shape (n_samples,)
        Predictive means.
    var : array-like of shape (n_samples,)
        Predictive variances (positive; include the noise variance for ``y``).

    Returns
    -------
    float
        ``mean(0.5 log(2 pi var) + 0.5 (y - mean)^2 / var)`` in nats.

    Examples
    --------
    >>> from probest.metrics import nlpd_gaussian
    >>> round(nlpd_gaussian([0.0, 1.0], [0.0, 0.5], [1.0, 0.25]), 4)
    0.8224
    """
    y, m, v = (np.asarray(a, dtype=np.float64) for a in (y_true, mean, var))
    if np.any(v <= 0):
        raise ValueError("predictive variances must be positive.")
    return float(np.mean(0.5 * np.log(2 * np.pi * v) + 0.5 * (y - m) ** 2 / v))


def expected_calibration_error(y_true, proba, n_bins: int = 15) -> float:
    """Top-label expected calibration error (ECE) with equal-width confidence bins.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True class indices ``0 .. n_classes - 1`` (column positions of ``proba``).
    proba : array-like of shape (n_samples, n_classes) or (n_samples,)
        Predicted probabilities; a 1-D array is ``p(y = 1)`` of a binary problem.
    n_bins : int, default=15
        Number of equal-width bins over the top-label confidence ``max_k proba[i, k]``.

    Returns
    -------
    float
        ``sum_b (n_b / n) |accuracy_b - confidence_b|`` (0 is perfectly calibrated).

    Examples
    --------
    >>> from probest.metrics import expected_calibration_error
    >>> proba = [[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]]
    >>> round(expected_calibration_error([0, 1, 1, 0], proba, n_bins=5), 4)
    0.15
    """
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim == 1:
        proba = np.column_stack([1.0 - proba, proba])
    y = np.asarray(y_true)
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def misclustering_error(labels_true, labels_pred) -> float:
    """Fraction of points misassigned under the best matching of cluster labels.

    Parameters
    ----------
    labels_true : array-like of shape (n_samples,)
        Ground-truth cluster labels.
    labels_pred : array-like of shape (n_samples,)
        Predicted cluster labels (any values; only the partition matters).

    Returns
    -------
    float
        ``1 - max_perm mean(perm(labels_pred) == labels_true)``, the matching found by the
        Hungarian algorithm.

    Examples
    --------
    >>> from probest.metrics import misclustering_error
    >>> round(misclustering_error([0, 0, 1, 1, 2], [2, 2, 0, 0, 0]), 4)
    0.2
    """
    labels_true, labels_pred = np.asarray(labels_true).ravel(), np.asarray(labels_pred).ravel()
    if labels_true.shape != labels_pred.shape or labels_true.size == 0:
        raise ValueError(f"labels_true and labels_pred must be non-empty and of the same length, "
                         f"got {labels_true.size} and {labels_pred.size}.")
    t = np.unique(labels_true, return_inverse=True)[1]
    p = np.unique(labels_pred, return_inverse=True)[1]
    k = max(t.max(), p.max()) + 1
    cont = np.zeros((k, k))
    np.add.at(cont, (t, p), 1)
    r, c = linear_sum_assignment(-cont)
    return float(1.0 - cont[r, c].sum() / len(t))


def match_components(true_means, est_means) -> np.ndarray:
    """Permutation ``perm`` with ``est_means[perm[i]]`` closest to ``true_means[i]`` (Hungarian).

    Parameters
    ----------
    true_means : array-like of shape (n_components, n_features)
        Reference component means.
    est_means : array-like of shape (n_components, n_features)
        Estimated means, in any order.

    Returns
    -------
    ndarray of shape (n_components,)
        Indices into ``est_means`` minimising the total squared distance.

    Examples
    --------
    >>> from probest.metrics import match_components
    >>> match_components([[0, 0], [5, 5]], [[5.1, 4.9], [0.2, -0.1]]).tolist()
    [1, 0]
    """
    a, b = np.asarray(true_means), np.asarray(est_means)
    cost = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    r, c = linear_sum_assignment(cost)
    return c[np.argsort(r)]


def roc_auc(scores_inlier, scores_outlier) -> float:
    """AUROC of separating outliers (label 1) from inliers by *lower* score.

    Parameters
    ----------
    scores_inlier : array-like of shape (n_inliers,)
        Scores of the inliers (e.g. log-likelihoods: higher means more typical).
    scores_outlier : array-like of shape (n_outliers,)
        Scores of the outliers.

    Returns
    -------
    float
        The area under the ROC curve of ``-score`` as an outlier detector (1 is perfect).

    Examples
    --------
    >>> from probest.metrics import roc_auc
    >>> round(roc_auc([-1.0, -2.0, -1.5], [-5.0, -3.0, -1.8]), 4)
    0.8889
    """
    from sklearn.metrics import roc_auc_score

    s = np.concatenate([np.asarray(scores_inlier), np.asarray(scores_outlier)])
    lab = np.concatenate([np.zeros(len(scores_inlier)), np.ones(len(scores_outlier))])
    return float(roc_auc_score(lab, -s))


__all__ = [
    "expected_calibration_error",
    "match_components",
    "misclustering_error",
    "nlpd_classification",
    "nlpd_gaussian",
    "roc_auc",
]
