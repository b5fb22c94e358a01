"""probest's conformance suite and scikit-learn's estimator checks on tiny budgets."""

import numpy as np
from sklearn.datasets import make_moons

from probest.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor
from probest.testing import EstimatorConformance, sklearn_checks


class TestClassifierConformance(EstimatorConformance):
    def make_estimator(self, **params):
        return GaussianProcessClassifier(max_iter=30, **params)

    def make_data(self):
        return make_moons(40, noise=0.3, random_state=0)


class TestOneVsRestConformance(EstimatorConformance):
    def make_estimator(self, **params):
        return GaussianProcessClassifier(inference="ep", max_iter=30, **params)

    def make_data(self):
        # overlapping classes (separable ones make the EP energy creep up with the output
        # scale for ~70 iterations before it converges)
        rng = np.random.default_rng(0)
        X = np.r_[rng.normal(-1, 1, (15, 2)), rng.normal(1, 1, (15, 2)),
                  rng.normal((1, -1.5), 1, (15, 2))]
        return X, np.repeat([0, 1, 2], 15)


class TestRegressorConformance(EstimatorConformance):
    def make_estimator(self, **params):
        return GaussianProcessRegressor(**params)

    def make_data(self):
        rng = np.random.default_rng(0)
        X = rng.uniform(-2, 2, (40, 2))
        return X, np.sin(X[:, 0]) + 0.1 * rng.normal(size=40)


class TestStudentTConformance(EstimatorConformance):
    def make_estimator(self, **params):
        return GaussianProcessRegressor(likelihood="student_t", inference="vi", **params)

    def make_data(self):
        rng = np.random.default_rng(1)
        X = rng.uniform(-2, 2, (40, 1))
        return X, np.cos(X[:, 0]) + 0.1 * rng.standard_t(3, size=40)


_QUIRKS = {
    "check_classifiers_one_label_sample_weights":
        "fit takes no sample_weight; a single class is refused with a ValueError",
}


@sklearn_checks(
    [GaussianProcessClassifier(max_iter=3, e_steps=2, m_steps=2, random_state=0),
     GaussianProcessRegressor(max_iter=5, random_state=0),
     GaussianProcessRegressor(likelihood="student_t", max_iter=5, random_state=0)],
    expected_failed_checks=lambda est: {},
)
def test_sklearn_compatible(estimator, check):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        # tiny budgets (max_iter=5) are the point here, not convergence
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)
