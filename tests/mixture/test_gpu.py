"""CUDA paths (skipped automatically without a GPU)."""

import numpy as np
import pytest

from probest.datasets import make_federated_gmm
from probest.mixture import FederatedGaussianMixture, GaussianMixture

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cuda_fit_matches_cpu(dtype):
    fed = make_federated_gmm(4, 500, 3, 4, random_state=0)
    X = np.concatenate(fed.X)
    cpu = GaussianMixture(3, random_state=0, device="cpu").fit(X)
    gpu = GaussianMixture(3, random_state=0, device="cuda", dtype=dtype).fit(X)
    tol = 1e-3 if dtype == "float32" else 1e-8
    assert abs(gpu.score(X) - cpu.score(X)) < tol
    f = FederatedGaussianMixture(3, random_state=0, device="cuda", dtype=dtype).fit(fed.X)
    assert np.isfinite(f.client_weights_).all()
    import pickle

    g2 = pickle.loads(pickle.dumps(gpu))
    np.testing.assert_allclose(g2.score_samples(X[:10]), gpu.score_samples(X[:10]), atol=tol)
