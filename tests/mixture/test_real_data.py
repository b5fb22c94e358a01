"""GaussianMixture and FederatedGaussianMixture on real data (scikit-learn's wine and iris).

Synthetic mixtures meet every assumption; these tables do not (skewed, correlated, unequal
clusters), which is where a drop-in must still match its peer.
"""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGMM
from sklearn.preprocessing import StandardScaler

from probest.mixture import FederatedGaussianMixture, GaussianMixture


def _start(X, cov="full"):
    """One EM step of sklearn from its k-means start: the shared initialisation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter=1 on purpose
        return SkGMM(3, covariance_type=cov, max_iter=1, random_state=0).fit(X)


def _data(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.mark.parametrize("loader", [load_wine, load_iris])
@pytest.mark.parametrize("cov", ["full", "diag"])
def test_same_init_same_fixed_point_as_sklearn(loader, cov):
    X, _ = _data(loader)
    init = _start(X, cov)
    kw = dict(covariance_type=cov, tol=1e-10, max_iter=500, reg_covar=1e-6,
              weights_init=init.weights_, means_init=init.means_, precisions_init=init.precisions_)
    ref = SkGMM(3, **kw).fit(X)
    ours = GaussianMixture(3, device="cpu", **kw).fit(X)
    # same EM from the same start: the same iterates up to float64 summation order
    # (measured max |diff|: means 1.6e-15, weights 2.2e-16, score 4e-15, score_samples 1.2e-12)
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(ours.means_, ref.means_, atol=1e-12)
    np.testing.assert_allclose(ours.weights_, ref.weights_, atol=1e-12)
    assert abs(ours.score(X) - ref.score(X)) < 1e-12
    np.testing.assert_allclose(ours.score_samples(X), ref.score_samples(X), atol=1e-10)


def test_federated_split_by_class_equals_pooled_on_wine():
    """A label-skewed federation (one client per wine cultivar) with shared components and
    personalize=False is exactly pooled EM on the union."""
    X, y = load_wine(return_X_y=True)  # the raw table, standardised as a user would
    X = StandardScaler().fit_transform(X)
    g = _start(X)
    kw = dict(weights_init=g.weights_, means_init=g.means_, precisions_init=g.precisions_,
              tol=0.0, max_iter=30, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0: all 30 iterations run
        fed = FederatedGaussianMixture(3, personalize=False, **kw).fit([X[y == c] for c in range(3)])
        pooled = GaussianMixture(3, **kw).fit(X)
    np.testing.assert_allclose(fed.means_, pooled.means_, atol=1e-10)
    np.testing.assert_allclose(fed.covariances_, pooled.covariances_, atol=1e-10)
