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


def test_cuda_new_features_match_cpu():
    # partial_fit (device + batch_size), missing="marginalize", sample_weight and select on
    # CUDA give the CPU results (float64)
    fed = make_federated_gmm(4, 500, 3, 4, random_state=0)
    X = np.concatenate(fed.X)
    out = {}
    for dev in ("cpu", "cuda"):
        on = GaussianMixture(3, random_state=0, device=dev, batch_size=256)
        for c in np.array_split(X, 5):
            on.partial_fit(c)
        Xm = X.copy()
        Xm[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan
        mis = GaussianMixture(3, random_state=0, device=dev, missing="marginalize").fit(Xm)
        w = np.random.default_rng(1).integers(0, 3, len(X)).astype(float)
        sw = GaussianMixture(3, random_state=0, device=dev).fit(X, sample_weight=w)
        sel = GaussianMixture.select(X, [2, 3], ["full", "diag"], random_state=0, device=dev)
        out[dev] = (on.score(X), mis.score(Xm), sw.score(X),
                    min(sel.selection_["score"]))
    np.testing.assert_allclose(out["cuda"], out["cpu"], rtol=1e-8)
