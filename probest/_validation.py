"""Validation shared by every family (a leaf module: imports numpy only).

Parameter and input checks that scikit-learn keeps in private modules
(``sklearn.utils._param_validation``, ``_check_sample_weight``) live here instead, so
probest never depends on scikit-learn internals that change without notice.
"""

from __future__ import annotations

import numpy as np


def check_sample_weight(sample_weight, n: int) -> np.ndarray | None:
    """``sample_weight`` as a finite, non-negative float64 vector of length ``n`` (or None).

    Raises ``ValueError`` on a wrong length, NaN/inf, negative entries, or weights that
    sum to zero (integer weights act as repeated rows, zero weights drop rows).
    """
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if w.shape[0] != n:
        raise ValueError(f"sample_weight has {w.shape[0]} entries but X has {n} rows.")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite and non-negative.")
    if w.sum() <= 0:
        raise ValueError("sample_weight sums to zero: at least one row needs a positive weight.")
    return w
