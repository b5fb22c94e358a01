"""Shared scores: NLPD, expected calibration error, mis-clustering error, ROC-AUC wrapper."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment


def nlpd_classification(y_true, proba, classes=None, eps: float = 1e-300) -> float:
    """Mean negative log predictive density ``-mean log p(y_i | x_i)`` (nats).

    ``proba`` has one column per class in ``classes`` order (default: sorted unique labels).
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
    """Mean Gaussian negative log predictive density with per-point predictive variance."""
    y, m, v = (np.asarray(a, dtype=np.float64) for a in (y_true, mean, var))
    if np.any(v <= 0):
        raise ValueError("predictive variances must be positive.")
    return float(np.mean(0.5 * np.log(2 * np.pi * v) + 0.5 * (y - m) ** 2 / v))


def expected_calibration_error(y_true, proba, n_bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins."""
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
    """Fraction of points misassigned under the best matching of cluster labels."""
    t = np.unique(labels_true, return_inverse=True)[1]
    p = np.unique(labels_pred, return_inverse=True)[1]
    k = max(t.max(), p.max()) + 1
    cont = np.zeros((k, k))
    np.add.at(cont, (t, p), 1)
    r, c = linear_sum_assignment(-cont)
    return float(1.0 - cont[r, c].sum() / len(t))


def match_components(true_means, est_means) -> np.ndarray:
    """Permutation ``perm`` with ``est_means[perm[i]]`` closest to ``true_means[i]`` (Hungarian)."""
    a, b = np.asarray(true_means), np.asarray(est_means)
    cost = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    r, c = linear_sum_assignment(cost)
    return c[np.argsort(r)]


def roc_auc(scores_inlier, scores_outlier) -> float:
    """AUROC of separating outliers (label 1) from inliers by *lower* score."""
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
