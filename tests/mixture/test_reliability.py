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


# --- issue 10, defects 5 and 7: sample sizes, input scales, far rows at predict time -------
from probest.mixture import FederatedGaussianMixture, GaussianMixture  # noqa: E402


def _gmm_fitted():
    X, y = _data()
    return {
        "gmm": GaussianMixture(2, random_state=0, device="cpu").fit(X),
        "fed": FederatedGaussianMixture(2, random_state=0, device="cpu").fit([X[:60], X[60:]]),
        "clf": _clf().fit([X[:60], X[60:]], [y[:60], y[60:]]),
    }


@pytest.fixture(scope="module")
def mixtures():
    return _gmm_fitted()


@pytest.mark.parametrize("kind", ["gmm", "fed"])
@pytest.mark.parametrize("n", [0, -1, 1.5, "2", True])
def test_sample_needs_an_int_of_at_least_one(mixtures, kind, n):
    with pytest.raises(ValueError, match="Invalid value for 'n_samples'"):
        mixtures[kind].sample(n)


@pytest.mark.parametrize("kind", ["gmm", "fed"])
def test_sample_accepts_numpy_ints(mixtures, kind):
    Xs, ys = mixtures[kind].sample(np.int64(4))
    assert Xs.shape == (4, 3) and ys.shape == (4,)


@pytest.mark.parametrize("value", [1e300, -1e155])
@pytest.mark.parametrize("kind", ["gmm", "fed", "clf"])
def test_fit_refuses_entries_whose_squares_overflow(kind, value):
    X, y = _data()
    X[9, 2] = value
    est = {"gmm": GaussianMixture(2, random_state=0, device="cpu"),
           "fed": FederatedGaussianMixture(2, random_state=0, device="cpu"), "clf": _clf()}[kind]
    with pytest.raises(ValueError, match=r"entries up to .* \(rows \[9\]\); squared distances"):
        est.fit(X, y) if kind == "clf" else est.fit(X)


def test_float32_fit_has_the_float32_bound():
    X = 1e25 * _data()[0]  # fine in float64 (scale-free), squares overflow float32
    GaussianMixture(2, random_state=0, device="cpu").fit(X)
    with pytest.raises(ValueError, match="overflow float32"):
        GaussianMixture(2, random_state=0, device="cpu", dtype="float32").fit(X)


@pytest.mark.parametrize("value", [1e300, -1e300])
@pytest.mark.parametrize("kind,method", [
    ("gmm", "score_samples"), ("gmm", "predict_proba"), ("gmm", "predict"), ("gmm", "score"),
    ("fed", "score_samples"), ("fed", "predict_proba"), ("fed", "predict"),
    ("fed", "novelty_score"), ("clf", "predict_proba"), ("clf", "predict"),
    ("clf", "novelty_score"),
])
def test_far_rows_at_predict_raise_naming_the_rows(mixtures, kind, method, value):
    X = _data(5, seed=1)[0]
    X[3, 1] = value
    with pytest.raises(ValueError, match=r"rows \[3\] of X give non-finite values"):
        getattr(mixtures[kind], method)(X)
    out = getattr(mixtures[kind], method)(np.delete(X, 3, axis=0))
    assert np.all(np.isfinite(np.asarray(out, dtype=float)))


@pytest.mark.parametrize("kind", ["gmm", "fed", "clf"])
def test_rows_at_1e150_stay_finite(mixtures, kind):
    X = _data(5, seed=1)[0]
    X[3, 1] = 1e150  # squared distance ~1e300: a finite, very negative log density
    est = mixtures[kind]
    assert np.all(np.isfinite(est.predict_proba(X)))
    if kind != "clf":
        lp = est.score_samples(X)
        assert np.all(np.isfinite(lp)) and lp[3] < -1e250


@pytest.mark.parametrize("kind", ["fed", "clf"])
def test_adapt_with_far_rows_raises_and_adds_no_client(kind):
    est = _gmm_fitted()[kind]
    X = _data(6, seed=2)[0]
    X[1] = 1e300
    n_before = len(est.client_ids_)
    with pytest.raises(ValueError, match=r"adapt: rows \[1\]"):
        est.adapt(X, client="new")
    assert len(est.client_ids_) == n_before


def test_zero_initial_weight_is_not_a_far_row():
    X, _ = _data()
    gmm = GaussianMixture(2, weights_init=[1.0, 0.0], max_iter=0, random_state=0,
                          device="cpu").fit(X)
    assert np.all(np.isfinite(gmm.score_samples(X)))
