import numpy as np
import pytest


def three_blobs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0, 0], [4, 4, 0], [0, 5, 5]])
    return np.concatenate([rng.normal(size=(n, 3)) + c for c in centers])


@pytest.fixture
def blobs():
    return three_blobs()
