"""Reliability of the mixture family's input paths (issue 10, defect 6)."""

import numpy as np
import pytest

from probest.mixture import FedGMMClassifier


def _data(n=120, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] > 0).astype(int)
    return X, y


def _clf():
    return FedGMMClassifier(2, 2, max_iter=200, tol=1e-3, random_state=0, device="cpu")


@pytest.mark.parametrize("groups", ["one", "two"])
def test_groups_path_validates_like_the_plain_path(groups):
    X, y = _data()
    g = np.zeros(len(X), int) if groups == "one" else np.arange(len(X)) % 2
    clf = _clf().fit(X, y, groups=g)
    assert clf.n_features_in_ == 3
    with pytest.raises(ValueError, match="features"):  # a wrong width at predict: sklearn's error
        clf.predict(np.hstack([X, X[:, :1]]))
    with pytest.raises(ValueError, match=r"(?i)inconsistent|rows|samples"):  # a short y
        _clf().fit(X, y[:-1], groups=g)
    Xn = X.copy()
    Xn[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"(?i)nan"):
        _clf().fit(Xn, y, groups=g)


def test_one_group_equals_no_groups():
    X, y = _data()
    a = _clf().fit(X, y, groups=np.zeros(len(X), int))
    b = _clf().fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_single_client_list_validates():
    X, y = _data()
    clf = _clf().fit([X], [y])
    assert clf.n_features_in_ == 3
    with pytest.raises(ValueError, match=r"(?i)rows|samples"):
        _clf().fit([X], [y[:-1]])
