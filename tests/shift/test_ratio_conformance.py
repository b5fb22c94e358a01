"""DensityRatioEstimator under the conformance suite: fit takes (X_source, X_target)."""

import numpy as np

from probest.shift import DensityRatioEstimator
from probest.testing import EstimatorConformance

_XT = np.random.default_rng(1).normal(0.5, 1.0, size=(40, 3))


class _RatioConformance(EstimatorConformance):
    has_pyro = False  # a ratio is not a distribution; use predict_log_ratio in a pyro.factor
    has_posterior = False  # point estimate
    method = "logistic"

    def make_estimator(self, **params):
        return DensityRatioEstimator(method=self.method, **params)

    def make_data(self):
        return np.random.default_rng(0).normal(size=(50, 3)), None

    def fit(self, est, X, y):
        # the suite's bad inputs land in X_source; X_target stays valid
        return est.fit(X, _XT)


class TestLogisticRatioConformance(_RatioConformance):
    pass


class TestKliepRatioConformance(_RatioConformance):
    method = "kliep"


class TestUlsifRatioConformance(_RatioConformance):
    method = "ulsif"
