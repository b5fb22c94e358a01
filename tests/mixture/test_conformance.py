import numpy as np

from probest.mixture import FederatedGaussianMixture, FedGMMClassifier, GaussianMixture
from probest.testing import EstimatorConformance, sklearn_checks


class TestGaussianMixtureConformance(EstimatorConformance):
    has_posterior = False  # EM point estimate

    def make_estimator(self, **params):
        return GaussianMixture(n_components=2, max_iter=50, device="cpu", **params)

    def make_data(self):
        rng = np.random.default_rng(0)
        X = np.concatenate([rng.normal(size=(30, 3)), rng.normal(size=(30, 3)) + 5.0])
        return X, None


class TestFederatedGaussianMixtureConformance(TestGaussianMixtureConformance):
    def make_estimator(self, **params):
        return FederatedGaussianMixture(n_components=2, max_iter=50, device="cpu", **params)


class TestFedGMMClassifierConformance(EstimatorConformance):
    has_posterior = False  # EM point estimate

    def make_estimator(self, **params):
        return FedGMMClassifier(2, 2, max_iter=20, tol=1e-2, device="cpu", **params)

    def make_data(self):
        rng = np.random.default_rng(0)
        X = np.concatenate([rng.normal(size=(30, 3)), rng.normal(size=(30, 3)) + 5.0])
        y = (X[:, 1] > X[:, 1].mean()).astype(int)
        return X, y


@sklearn_checks([
    GaussianMixture(n_components=1, max_iter=50, device="cpu", random_state=0),
    FederatedGaussianMixture(n_components=1, max_iter=50, device="cpu", random_state=0),
    FedGMMClassifier(1, 1, max_iter=20, tol=1e-1, device="cpu", random_state=0),
])
def test_sklearn_compatible(estimator, check):
    check(estimator)
