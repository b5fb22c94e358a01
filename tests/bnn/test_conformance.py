"""probest's conformance suite and scikit-learn's estimator checks on tiny budgets."""

import numpy as np
from sklearn.datasets import make_moons

from probest.bnn import PartialBayesianMLPClassifier, PartialBayesianMLPRegressor
from probest.testing import EstimatorConformance, sklearn_checks

_TINY = {"hidden_layer_sizes": (8, 4), "stochastic_layers": (1,), "n_particles": 8,
         "max_epochs": 2, "batch_size": 16, "kernel_scale": 1e-4, "ess_threshold": 0.5,
         "device": "cpu", "dtype": "float64"}


class TestRegressorConformance(EstimatorConformance):
    def make_estimator(self, **params):
        return PartialBayesianMLPRegressor(**{**_TINY, **params})

    def make_data(self):
        rng = np.random.default_rng(0)
        X = rng.uniform(-2, 2, (40, 2))
        return X, np.sin(X[:, 0]) + 0.1 * rng.normal(size=40)


class TestClassifierConformance(EstimatorConformance):
    def make_estimator(self, **params):
        return PartialBayesianMLPClassifier(**{**_TINY, **params})

    def make_data(self):
        return make_moons(40, noise=0.3, random_state=0)


class TestSVIConformance(EstimatorConformance):
    def make_estimator(self, **params):
        return PartialBayesianMLPRegressor(**{**_TINY, "sampler": "svi", **params})

    def make_data(self):
        rng = np.random.default_rng(1)
        X = rng.uniform(-2, 2, (30, 1))
        return X, np.cos(X[:, 0]) + 0.1 * rng.normal(size=30)


_CHECK = {**_TINY, "max_epochs": 1, "batch_size": 256, "early_stopping": False, "n_particles": 4}
_QUIRKS = {
    "check_classifiers_train": "one full-batch Adam step (the checks' tiny budget) does not "
                               "reach sklearn's 0.83 training accuracy; the default budget "
                               "does (tests/bnn/test_estimators.py::test_classifier_outputs...)",
}


@sklearn_checks(
    [PartialBayesianMLPRegressor(**{**_CHECK, "batch_size": 16}),
     PartialBayesianMLPClassifier(**_CHECK)],  # tiny budgets: every check fits many times
    expected_failed_checks=lambda est: _QUIRKS if "Classifier" in type(est).__name__ else {
        "check_regressors_train": "a few Adam steps of the checks' tiny budget do not reach "
                                  "sklearn's R^2 > 0.5; the default budget does "
                                  "(tests/bnn/test_estimators.py::test_regressor_outputs)"},
)
def test_sklearn_compatible(estimator, check):
    import warnings

    from probest.bnn import ParticleDegeneracyWarning

    with warnings.catch_warnings():
        # one epoch of 8 particles on sklearn's odd data is the point here, not the posterior
        warnings.simplefilter("ignore", ParticleDegeneracyWarning)
        check(estimator)
