"""The foundation's reference estimators: weighted linear/logistic MLE in torch."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.preprocessing import StandardScaler

from probest.shift import WeightedLinearRegression, WeightedLogisticRegression
from probest.testing import EstimatorConformance, sklearn_checks


class TestLogisticConformance(EstimatorConformance):
    def make_estimator(self, **params):
        return WeightedLogisticRegression(alpha=1.0, max_iter=30, **params)

    def make_data(self):
        return make_classification(60, 4, n_informative=3, n_redundant=0, random_state=0)


class TestMultinomialConformance(TestLogisticConformance):
    def make_data(self):
        return make_classification(90, 4, n_informative=3, n_redundant=0, n_classes=3, random_state=1)


class TestLinearConformance(EstimatorConformance):
    def make_estimator(self, **params):
        return WeightedLinearRegression(max_iter=30, **params)

    def make_data(self):
        X, y = make_regression(50, 3, noise=1.0, random_state=0)
        return X, y


@sklearn_checks([WeightedLinearRegression(), WeightedLogisticRegression(alpha=1.0)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_logistic_matches_sklearn_l2():
    # alpha/2 ||w||^2 + sum_i nll_i is sklearn's C=1/alpha objective: same optimum.
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    ours = WeightedLogisticRegression(alpha=1.0).fit(X, y)
    ref = LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000).fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-5)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    assert ours.converged_ and ours.n_iter_ < 20


def test_linear_matches_ols_and_mle_sigma():
    X, y = load_diabetes(return_X_y=True)
    ours = WeightedLinearRegression().fit(X, y)
    ref = LinearRegression().fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-8)
    resid = y - ref.predict(X)
    assert ours.sigma_ == pytest.approx(np.sqrt(np.mean(resid**2)), rel=1e-8)


@pytest.mark.parametrize("Est", [WeightedLinearRegression, WeightedLogisticRegression])
def test_integer_weights_equal_repeated_rows(Est):
    X, y = make_classification(80, 3, n_informative=3, n_redundant=0, random_state=2)
    if Est is WeightedLinearRegression:
        y = X @ [1.0, -2.0, 0.5] + np.random.default_rng(0).normal(size=80)
    w = np.random.default_rng(1).integers(0, 4, size=80)
    a = Est(alpha=0.5).fit(X, y, sample_weight=w)
    b = Est(alpha=0.5).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(a.covariance_, b.covariance_, rtol=1e-6, atol=1e-12)


def test_all_zero_or_negative_weights_rejected():
    X, y = make_classification(30, 3, n_informative=2, n_redundant=0, random_state=0)
    with pytest.raises(ValueError, match="(?i)non-zero|zero for every sample"):
        WeightedLogisticRegression().fit(X, y, sample_weight=np.zeros(30))
    with pytest.raises(ValueError, match="(?i)negative"):
        WeightedLogisticRegression().fit(X, y, sample_weight=-np.ones(30))


def test_single_class_rejected():
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="at least 2 classes"):
        WeightedLogisticRegression().fit(X, np.ones(20))


def test_separable_unpenalised_warns_and_flags():
    X = np.array([[-2.0], [-1.0], [1.0], [2.0]])
    y = np.array([0, 0, 1, 1])
    with pytest.warns(ConvergenceWarning, match="alpha > 0"):
        est = WeightedLogisticRegression(max_iter=15).fit(X, y)
    assert not est.converged_
    assert np.all(np.isfinite(est.predict_proba(X)))


def test_laplace_covariance_matches_fisher_information():
    # For logistic regression the observed information at the MLE is X^T diag(p(1-p)) X.
    X, y = make_classification(400, 3, n_informative=3, n_redundant=0, random_state=3)
    est = WeightedLogisticRegression().fit(X, y)
    p = est.predict_proba(X)[:, 1]
    A = np.hstack([X, np.ones((400, 1))])
    info = A.T @ (A * (p * (1 - p))[:, None])
    np.testing.assert_allclose(est.covariance_, np.linalg.inv(info), rtol=1e-6)


def test_to_arviz_draw_spread_matches_laplace_sd():
    X, y = make_classification(300, 2, n_informative=2, n_redundant=0, random_state=4)
    est = WeightedLogisticRegression().fit(X, y)
    idata = est.to_arviz(n_draws=4000, random_state=0)
    draws = idata.posterior["coef"].values.reshape(-1, 2)
    sd = np.sqrt(np.diag(est.covariance_)[:2])
    # 4000 draws: the sample sd has relative standard error 1/sqrt(2*4000) ~ 1.1%; allow 5%.
    np.testing.assert_allclose(draws.std(axis=0), sd, rtol=0.05)
    np.testing.assert_allclose(draws.mean(axis=0), est.coef_[0], atol=4 * sd.max() / np.sqrt(4000) * 2)
