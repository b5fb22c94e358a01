"""The probest conformance suite on the bandits estimators (event-log input kind).

sklearn's ``parametrize_with_checks`` is not run here: it feeds 2-D float tables, and these
estimators take event logs (actions, rewards, subjects), which sklearn's checks cannot build.
"""

import numpy as np

import probest
from probest.bandits import (
    BayesianExp3,
    BayesianRescorlaWagner,
    Exp3LearningRateMLE,
    RescorlaWagnerMLE,
    simulate_exp3,
    simulate_rescorla_wagner,
)
from probest.testing import EstimatorConformance

_NO_PYRO = ("a learning model of choice sequences is not a distribution over rows of X; the "
            "Pyro form lives in BayesianExp3's model (probest.bandits._models.pyro_model)")


def _events():
    # informative tiny data: c = 0.5 with 5% exploration, well inside the grid (no warnings)
    return simulate_exp3(3, 40, (0.2, 0.8), learning_rate=0.5, gamma=0.05,
                         random_state=1).events(), None


class TestExp3Conformance(EstimatorConformance):
    has_posterior = False  # a point estimate (BayesianExp3 has the posterior)
    has_pyro = False  # _NO_PYRO

    def make_estimator(self, **params):
        return Exp3LearningRateMLE(gamma=0.05, grid=(1e-2, 1e1, 20), **params)

    def make_data(self):
        return _events()


class TestRescorlaWagnerConformance(TestExp3Conformance):
    def make_estimator(self, **params):
        return RescorlaWagnerMLE(n_grid=6, **params)

    def make_data(self):
        return simulate_rescorla_wagner(3, 60, (0.2, 0.8), alpha=0.4, beta=4.0,
                                        random_state=2).events(), None


class TestBayesianExp3Conformance(EstimatorConformance):
    has_pyro = False  # _NO_PYRO

    def make_estimator(self, **params):
        return BayesianExp3(backend="pyro", gamma=0.05, num_warmup=2, num_samples=3,
                            num_chains=1, max_tree_depth=2, **params)

    def make_data(self):
        return _events()


class TestBayesianRescorlaWagnerConformance(EstimatorConformance):
    has_pyro = False  # _NO_PYRO

    def make_estimator(self, **params):
        return BayesianRescorlaWagner(backend="pyro", n_grid=10, num_warmup=2, num_samples=3,
                                      num_chains=1, max_tree_depth=2, **params)

    def make_data(self):
        return simulate_rescorla_wagner(3, 60, (0.2, 0.8), alpha=0.4, beta=4.0,
                                        random_state=2).events(), None


def test_all_estimators_lists_the_family():
    names = {n for n, _ in probest.all_estimators("bandits")}
    assert names == {"BayesianExp3", "BayesianRescorlaWagner", "Exp3LearningRateMLE",
                     "RescorlaWagnerMLE"}
    for cls in (BayesianExp3, BayesianRescorlaWagner, Exp3LearningRateMLE, RescorlaWagnerMLE):
        assert cls._spec.input_kind == "events"


def test_conformance_data_fit_without_warnings():
    X, _ = _events()
    est = Exp3LearningRateMLE(gamma=0.05, grid=(1e-2, 1e1, 20), random_state=0).fit(X)
    assert not any(np.any(v) for k, v in est.diagnostics_.items()
                   if k in ("hit_bound", "flat_profile"))
