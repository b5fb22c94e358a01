"""The digits protocol used by the flows tests, benchmarks and tour.

sklearn's ``load_digits`` (8x8 images, 17 levels), 80/20 split with ``random_state=0``; the
test images are dequantized once with a fixed uniform draw so every model is scored on the
same continuous points of ``[0, 17)^64``.
"""

from __future__ import annotations

import numpy as np


def digits_split(seed: int = 0):
    """``(X_train_int, X_test_int, X_test_dequantized)``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X = load_digits().data.astype(np.float64)
    Xtr, Xte = train_test_split(X, test_size=0.2, random_state=0)
    u = np.random.default_rng(seed).uniform(size=Xte.shape)
    return Xtr, Xte, Xte + u
