"""probest conformance suite and sklearn's checks for the covariate-shift estimators."""

import numpy as np
import pytest
from sklearn.datasets import make_classification

from probest.datasets import make_covariate_shift
from probest.shift import (
    CovariateShiftClassifier,
    CovariateShiftRegressor,
    PhaseRetrievalRegression,
    WeightedPoissonRegression,
)
from probest.testing import EstimatorConformance, sklearn_checks

_B2 = make_covariate_shift("B2", 60, random_state=0)


class TestRegressorMLEConformance(EstimatorConformance):
    # no X_target: estimator="auto" falls back to MLE (Laplace posterior)
    def make_estimator(self, **params):
        return CovariateShiftRegressor(max_iter=30, **params)

    def make_data(self):
        return _B2.X_source, _B2.y_source


class TestRegressorMWLEConformance(TestRegressorMLEConformance):
    # with target covariates: logistic density ratio, MWLE, sandwich posterior
    fit_kwargs = {"X_target": _B2.X_target}

    def make_estimator(self, **params):
        return CovariateShiftRegressor(estimator="mwle", max_iter=30, **params)


class TestPhaseRetrievalConformance(EstimatorConformance):
    fit_kwargs = {"X_target": make_covariate_shift("phase_retrieval", 80, random_state=1).X_target}

    def make_estimator(self, **params):
        return CovariateShiftRegressor("phase_retrieval", max_iter=30, **params)

    def make_data(self):
        d = make_covariate_shift("phase_retrieval", 80, random_state=0)
        return d.X_source, d.y_source


class TestPoissonGLMConformance(EstimatorConformance):
    def make_estimator(self, **params):
        return WeightedPoissonRegression(max_iter=30, **params)

    def make_data(self):
        rng = np.random.default_rng(0)
        X = rng.normal(size=(60, 3))
        return X, rng.poisson(np.exp(X @ [0.3, -0.2, 0.1]))


class TestPhaseRetrievalGLMConformance(EstimatorConformance):
    def make_estimator(self, **params):
        return PhaseRetrievalRegression(max_iter=30, **params)

    def make_data(self):
        d = make_covariate_shift("phase_retrieval", 60, random_state=2)
        return d.X_source, d.y_source


class TestClassifierConformance(EstimatorConformance):
    fit_kwargs = {"X_target": make_classification(50, 4, random_state=1)[0] + 0.5}

    def make_estimator(self, **params):
        return CovariateShiftClassifier(alpha=1.0, max_iter=30, **params)

    def make_data(self):
        return make_classification(60, 4, n_informative=3, n_redundant=0, random_state=0)


def test_save_load_keeps_decision(tmp_path):
    import probest

    est = CovariateShiftRegressor(random_state=0).fit(_B2.X_source, _B2.y_source, X_target=_B2.X_target)
    probest.save(est, tmp_path / "m")
    back = probest.load(tmp_path / "m")
    assert back.estimator_used_ == est.estimator_used_ and back.auto_decision_ == est.auto_decision_
    np.testing.assert_array_equal(back.weights_, est.weights_)
    np.testing.assert_allclose(back.predict(_B2.X_target), est.predict(_B2.X_target))
    with pytest.raises(TypeError, match="built-in"):
        from sklearn.linear_model import LinearRegression

        CovariateShiftRegressor(LinearRegression()).fit(_B2.X_source, _B2.y_source)._get_fitted_state()


def _expected_failures(est):
    if isinstance(est, PhaseRetrievalRegression):
        why = ("sklearn's toy targets are not (x^T b)^2 + noise: the MLE sits at b = 0 where the "
               "quartic likelihood is flat, Newton converges sublinearly and warns (ConvergenceWarning "
               "is an error here)")
        return {"check_sample_weight_equivalence_on_dense_data": why, "check_fit_check_is_fitted": why}
    return {}


@sklearn_checks(
    [CovariateShiftRegressor(max_iter=20), CovariateShiftClassifier(alpha=1.0, max_iter=20),
     WeightedPoissonRegression(alpha=1.0, max_iter=30),
     PhaseRetrievalRegression(alpha=1.0, max_iter=200)],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
