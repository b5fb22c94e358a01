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
    input_kind = "tabular"  # one array is a single client (pooled EM); clients below

    def make_estimator(self, **params):
        return FederatedGaussianMixture(n_components=2, max_iter=50, device="cpu", **params)


def _clients(with_y=False):
    rng = np.random.default_rng(0)
    X = [np.concatenate([rng.normal(size=(12, 3)), rng.normal(size=(8, 3)) + 5.0]),
         np.concatenate([rng.normal(size=(6, 3)), rng.normal(size=(14, 3)) + 5.0]),
         rng.normal(size=(15, 3)) + 5.0]
    y = [(x[:, 1] > 2.5).astype(int) for x in X]
    return X, (y if with_y else None)


class TestFederatedGaussianMixtureClientsConformance(TestFederatedGaussianMixtureConformance):
    input_kind = None  # the spec's kind: a list of client arrays

    def make_data(self):
        return _clients()


class TestFedGMMClassifierConformance(EstimatorConformance):
    has_posterior = False  # EM point estimate

    input_kind = "tabular"  # X, y without groups is a single client; clients below

    def make_estimator(self, **params):
        return FedGMMClassifier(2, 2, max_iter=20, tol=1e-2, device="cpu", **params)

    def make_data(self):
        rng = np.random.default_rng(0)
        X = np.concatenate([rng.normal(size=(30, 3)), rng.normal(size=(30, 3)) + 5.0])
        y = (X[:, 1] > X[:, 1].mean()).astype(int)
        return X, y


class TestFedGMMClassifierClientsConformance(TestFedGMMClassifierConformance):
    input_kind = None  # the spec's kind: lists of client arrays and labels

    def make_data(self):
        return _clients(with_y=True)


@sklearn_checks([
    GaussianMixture(n_components=1, max_iter=50, device="cpu", random_state=0),
    FederatedGaussianMixture(n_components=1, max_iter=50, device="cpu", random_state=0),
    FedGMMClassifier(1, 1, max_iter=20, tol=1e-1, device="cpu", random_state=0),
])
def test_sklearn_compatible(estimator, check):
    check(estimator)
