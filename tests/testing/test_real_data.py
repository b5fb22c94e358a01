"""The conformance suite on real data: scikit-learn's breast-cancer table (30 correlated,
differently scaled features) instead of the generated data the meta-tests use."""

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from probest.shift import WeightedLogisticRegression
from probest.testing import KINDS, EstimatorConformance


def _real():
    X, y = load_breast_cancer(return_X_y=True)
    rows = np.random.default_rng(0).choice(len(X), 80, replace=False)
    return StandardScaler().fit_transform(X[rows]), y[rows]


class TestLogisticConformanceOnBreastCancer(EstimatorConformance):
    def make_estimator(self, **params):
        return WeightedLogisticRegression(alpha=1.0, **params)

    def make_data(self):
        return _real()


def test_tabular_bad_inputs_built_from_real_data_are_bad():
    X, y = _real()
    bad = KINDS["tabular"].bad_fit_inputs(X, y)
    names = {b.name for b in bad}
    assert {"nan", "inf"} <= names
    for b in bad:
        if b.name in ("nan", "inf"):
            assert not np.isfinite(b.X).all() and np.isfinite(X).all()
