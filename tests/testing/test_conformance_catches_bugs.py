"""The conformance suite must fail on estimators that break the contract."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from probest.base import EstimatorSpec
from probest.testing import EstimatorConformance, assert_rng_untouched, sklearn_checks


class _Sloppy(RegressorMixin, BaseEstimator):
    """Touches numpy's global RNG, accepts NaN, never checks n_features."""

    _spec = EstimatorSpec(outputs=("predict",))

    def __init__(self, random_state=None):
        self.random_state = random_state

    def fit(self, X, y):
        np.random.seed(0)  # the bug under test
        self.mean_ = float(np.mean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_)


class _SloppyConformance(EstimatorConformance):
    has_posterior = False
    has_pyro = False

    def make_estimator(self, **params):
        return _Sloppy(**params)

    def make_data(self):
        rng = np.random.default_rng(0)
        return rng.normal(size=(20, 2)), rng.normal(size=20)


def test_global_rng_violation_is_caught():
    with pytest.raises(AssertionError, match="numpy global RandomState"):
        _SloppyConformance().test_fit_leaves_global_rng_untouched()


def test_silent_nan_acceptance_is_caught():
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        _SloppyConformance().test_bad_values_rejected()


def test_unchecked_n_features_is_caught():
    suite = _SloppyConformance()
    X, y = suite.make_data()
    est = suite.make_estimator().fit(X, y)
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        suite.test_bad_predict_input_rejected((est, X, y))


def test_unchecked_shapes_are_caught():
    with pytest.raises(pytest.fail.Exception, match="bad input '1-D X'.*DID NOT RAISE"):
        _SloppyConformance().test_bad_shapes_rejected()


def test_assert_rng_untouched_passes_clean_code():
    with assert_rng_untouched():
        np.random.default_rng(1).normal()


def test_expected_failures_need_reasons():
    with pytest.raises(ValueError, match="written reason"):
        sklearn_checks([_Sloppy()], expected_failed_checks={"check_fit2d_1sample": ""})
    sklearn_checks([_Sloppy()], expected_failed_checks={"check_fit2d_1sample": "a real reason here"})
