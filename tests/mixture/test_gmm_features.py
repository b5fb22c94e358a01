"""GaussianMixture past scikit-learn: sample_weight, partial_fit, missing values, select;
and the contract fixes the scikit-learn suite found (wording, dtype, warm start, tensors)."""

import re
import warnings

import numpy as np
import pytest
import sklearn
import sklearn.mixture
import torch
from scipy import stats

from probest.mixture import GaussianMixture

from .conftest import three_blobs


def _inits(K=3, d=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0, 0], [4, 4, 0], [0, 5, 5]])[:K, :d]
    return dict(means_init=centers + 0.3 * rng.normal(size=(K, d)),
                weights_init=np.full(K, 1.0 / K), precisions_init=np.stack([np.eye(d)] * K))


# ------------------------------------------------------------------ sample_weight
@pytest.mark.parametrize("ct", ["full", "diag", "tied", "spherical"])
def test_integer_weights_equal_repeated_rows(ct):
    X = three_blobs(60)
    rng = np.random.default_rng(1)
    w = rng.integers(0, 4, size=len(X))  # zeros included: those rows are dropped
    init = _inits()
    if ct != "full":
        init["precisions_init"] = {"tied": np.eye(3), "diag": np.ones((3, 3)),
                                   "spherical": np.ones(3)}[ct]
    kw = dict(covariance_type=ct, tol=1e-10, max_iter=50, device="cpu", **init)
    a = GaussianMixture(3, **kw).fit(X, sample_weight=w)
    b = GaussianMixture(3, **kw).fit(np.repeat(X, w, axis=0))
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=0, atol=1e-10)
    assert a.n_iter_ == b.n_iter_
    assert abs(a.lower_bound_ - b.lower_bound_) < 1e-10


def test_sample_weight_kmeans_init_and_errors():
    X = three_blobs(80)
    w = np.ones(len(X))
    w[:40] = 0.0
    g = GaussianMixture(3, random_state=0, device="cpu").fit(X, sample_weight=w)
    assert g.converged_ and np.isclose(g.weights_.sum(), 1.0)
    # 80 rows per blob; the first blob lost half of them: its weight is 40/200, not 1/3
    assert np.isclose(np.sort(g.weights_)[0], 40 / 200, atol=0.01)
    with pytest.raises(ValueError, match="non-negative"):
        GaussianMixture(2, device="cpu").fit(X, sample_weight=-w)
    with pytest.raises(ValueError, match="sums to zero"):
        GaussianMixture(2, device="cpu").fit(X, sample_weight=np.zeros(len(X)))


# ------------------------------------------------------------------ partial_fit
def test_partial_fit_passes_reach_batch_loglik():
    X = np.random.default_rng(3).permutation(three_blobs(1000))  # 3000 rows, shuffled
    batch = GaussianMixture(3, tol=1e-8, max_iter=500, random_state=0, device="cpu").fit(X)
    on = GaussianMixture(3, random_state=0, device="cpu", batch_size=128)
    chunks = np.array_split(X, 10)
    for _ in range(20):
        for c in chunks:
            on.partial_fit(c)
    assert on.n_steps_ == 200
    assert np.isclose(on.step_size_, (200 + 2.0) ** -0.6)  # the documented schedule
    gap = batch.score(X) - on.score(X)
    # measured gap ~1e-5 nats/sample for seeds 0-4; the bound is 1e-3
    assert -1e-6 < gap < 1e-3, gap


def test_partial_fit_first_chunk_and_feature_checks():
    X = three_blobs(30)
    g = GaussianMixture(3, random_state=0, device="cpu")
    with pytest.raises(ValueError, match="at least n_components"):
        g.partial_fit(X[:2])
    g.partial_fit(X[:50])
    with pytest.raises(ValueError, match="features"):
        g.partial_fit(X[:10, :2])
    g.partial_fit(X[50:])
    assert g.n_steps_ == 2 and g.means_.shape == (3, 3)
    g.fit(X)  # fit starts afresh
    assert not hasattr(g, "_stream_")


# ------------------------------------------------------------------ missing values
def _mcar(X, frac, seed):
    rng = np.random.default_rng(seed)
    Xm = X.copy()
    Xm[rng.random(X.shape) < frac] = np.nan
    return Xm


def _param_error(g, ref):
    """Mean abs error of means and covariances after matching components by mean."""
    order = [int(np.argmin(((g.means_ - m) ** 2).sum(1))) for m in ref.means_]
    return (np.abs(g.means_[order] - ref.means_).mean()
            + np.abs(g.covariances_[order] - ref.covariances_).mean())


def test_marginalize_beats_mean_imputation():
    rng = np.random.default_rng(0)
    A = np.array([[1.0, 0.8, 0.0], [0.8, 1.0, 0.5], [0.0, 0.5, 1.0]])
    X = np.concatenate([rng.multivariate_normal(c, A, 400)
                        for c in ([0, 0, 0], [4, 4, 0], [0, 5, 5])])
    Xm = _mcar(X, 0.2, 1)
    full = GaussianMixture(3, random_state=0, device="cpu").fit(X)
    ours = GaussianMixture(3, missing="marginalize", random_state=0, device="cpu").fit(Xm)
    imputed = np.where(np.isnan(Xm), np.nanmean(Xm, 0), Xm)
    sk = sklearn.mixture.GaussianMixture(3, random_state=0).fit(imputed)
    e_ours, e_sk = _param_error(ours, full), _param_error(sk, full)
    # measured: ours ~0.03, mean-impute + sklearn ~0.25 (seeds 0-2 alike)
    assert e_ours < 0.5 * e_sk, (e_ours, e_sk)
    Xi = ours.impute(Xm)
    assert not np.isnan(Xi).any() and np.array_equal(Xi[~np.isnan(Xm)], Xm[~np.isnan(Xm)])
    err_imp = np.abs(Xi - X)[np.isnan(Xm)].mean()
    err_mean = np.abs(imputed - X)[np.isnan(Xm)].mean()
    assert err_imp < 0.6 * err_mean  # conditional means beat column means


def test_marginal_density_and_conditional_mean_one_component():
    rng = np.random.default_rng(2)
    S = np.array([[2.0, 0.9, 0.3], [0.9, 1.0, 0.2], [0.3, 0.2, 0.5]])
    X = rng.multivariate_normal([1.0, -1.0, 2.0], S, 300)
    Xm = _mcar(X, 0.2, 3)
    g = GaussianMixture(1, missing="marginalize", device="cpu").fit(Xm)
    mu, C = g.means_[0], g.covariances_[0]
    x = np.array([[0.5, np.nan, 1.0], [np.nan, np.nan, np.nan], [1.0, 2.0, 3.0]])
    o = [0, 2]
    want = [stats.multivariate_normal(mu[o], C[np.ix_(o, o)]).logpdf(x[0, o]), 0.0,
            stats.multivariate_normal(mu, C).logpdf(x[2])]
    np.testing.assert_allclose(g.score_samples(x), want, atol=1e-10)
    cond = mu[1] + C[1, o] @ np.linalg.solve(C[np.ix_(o, o)], x[0, o] - mu[o])
    imp = g.impute(x)
    assert np.isclose(imp[0, 1], cond, atol=1e-10)
    np.testing.assert_allclose(imp[1], mu, atol=1e-12)
    with pytest.raises(ValueError, match="NaN"):
        GaussianMixture(1, device="cpu").fit(Xm)
    with pytest.raises(ValueError, match="missing='marginalize'"):
        GaussianMixture(1, device="cpu").fit(X).impute(x)


# ------------------------------------------------------------------ select
def test_select_equals_loop_of_fits():
    X = three_blobs(100)
    ks, cts = range(1, 5), ["full", "diag", "tied", "spherical"]
    best = GaussianMixture.select(X, ks, cts, random_state=0, device="cpu")
    tb = best.selection_
    assert len(tb["score"]) == 16 and sum(tb["best"]) == 1
    for k, ct, score in zip(tb["n_components"], tb["covariance_type"], tb["score"],
                            strict=True):
        g = GaussianMixture(k, covariance_type=ct, random_state=0, device="cpu").fit(X)
        assert np.isclose(score, g.bic(X), rtol=1e-10, atol=0), (k, ct)
    assert best.n_components == 3
    assert np.isclose(best.bic(X), min(tb["score"]), rtol=1e-10)
    # without full / tied the shared k-means statistics are computed as diag
    sel = GaussianMixture.select(X, [2, 3], ["diag", "spherical"], random_state=0,
                                 device="cpu").selection_
    for k, ct, score in zip(sel["n_components"], sel["covariance_type"], sel["score"],
                            strict=True):
        g = GaussianMixture(k, covariance_type=ct, random_state=0, device="cpu").fit(X)
        assert np.isclose(score, g.bic(X), rtol=1e-10, atol=0), (k, ct)
    aic = GaussianMixture.select(X, [2, 3], "full", criterion="aic", random_state=0,
                                 device="cpu")
    assert np.isclose(min(aic.selection_["score"]), aic.aic(X), rtol=1e-10)


def test_select_heldout_and_plot():
    import matplotlib

    matplotlib.use("Agg")
    X = three_blobs(100)
    best = GaussianMixture.select(X, [1, 3, 6], ["full", "spherical"], criterion="heldout",
                                  random_state=0, device="cpu")
    assert best.n_components == 3 and best.selection_["criterion"][0] == "heldout"
    ax = best.plot_selection()
    assert len(ax.lines) == 3  # two covariance types and the winner
    with pytest.raises(ValueError, match="criterion"):
        GaussianMixture.select(X, [1, 2], criterion="bogus")


# ------------------------------------------------------------------ contract fixes
@pytest.mark.parametrize("kw", [dict(n_components=0), dict(covariance_type="bad"),
                                dict(tol=-1.0), dict(max_iter=-1), dict(init_params="x"),
                                dict(warm_start=1), dict(weights_init=3)])
def test_messages_are_scikit_learns(kw):
    X = np.random.default_rng(0).random((10, 2))
    with pytest.raises(ValueError) as theirs:
        sklearn.mixture.GaussianMixture(**kw).fit(X)
    with pytest.raises(ValueError) as ours:
        GaussianMixture(**kw).fit(X)
    sk, pb = str(theirs.value), str(ours.value)
    if "str among" in sk:  # scikit-learn prints a set in arbitrary order
        sk, pb = re.sub(r"\{.*\}", "{}", sk), re.sub(r"\{.*\}", "{}", pb)
    assert pb.startswith(sk), (pb, sk)
    assert isinstance(ours.value, TypeError)  # InvalidParameterError, as scikit-learn's


def test_non_symmetric_precisions_init_rejected():
    X = three_blobs(20)
    P = np.stack([np.eye(3)] * 2)
    P[0, 0, 1] = 0.5  # not symmetric (positive eigenvalues)
    with pytest.raises(ValueError, match="symmetric, positive-definite"):
        GaussianMixture(2, precisions_init=P, device="cpu").fit(X)


def test_dtype_follows_input_and_warm_start_converges():
    X = three_blobs(50)
    g = GaussianMixture(3, random_state=0, device="cpu").fit(X.astype(np.float32))
    assert g.dtype_ == torch.float32 and g.means_.dtype == np.float32
    assert g.score_samples(X.astype(np.float32)).dtype == np.float32
    h = GaussianMixture(3, random_state=0, device="cpu", dtype="float64").fit(
        X.astype(np.float32))
    assert h.means_.dtype == np.float64
    w = GaussianMixture(3, random_state=0, device="cpu", warm_start=True, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sklearn.exceptions.ConvergenceWarning)
        fits = 0
        while not w.converged_ if fits else True:
            w.fit(X)
            fits += 1
            assert fits < 100
    assert w.converged_ and fits > 1  # several one-iteration fits, then convergence


def test_array_api_kmeans_init_fits(monkeypatch):
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    X = torch.tensor(three_blobs(50))
    with sklearn.config_context(array_api_dispatch=True):
        g = GaussianMixture(3, random_state=0).fit(X)  # kmeans init: scikit-learn raises
        assert isinstance(g.means_, torch.Tensor) and g.means_.device == X.device
        assert isinstance(g.predict(X), torch.Tensor)
        Xs, ys = g.sample(5)
        assert isinstance(Xs, torch.Tensor) and isinstance(ys, torch.Tensor)
    ref = GaussianMixture(3, random_state=0).fit(X.numpy())
    np.testing.assert_allclose(g.means_.numpy(), ref.means_, atol=1e-12)


def test_pooled_only_methods_are_not_on_the_federated_estimator():
    # partial_fit / impute / select are pooled GaussianMixture features: the federated
    # subclass does not offer them (hasattr is False, so meta-estimators do not try them)
    from probest.mixture import FederatedGaussianMixture

    X = three_blobs(50)
    fed = FederatedGaussianMixture(2, device="cpu", random_state=0).fit([X[:75], X[75:]])
    assert not hasattr(fed, "partial_fit") and not hasattr(fed, "impute")
    assert hasattr(GaussianMixture(2), "partial_fit") and hasattr(GaussianMixture(2), "impute")
    with pytest.raises(AttributeError, match="partial_fit"):
        fed.partial_fit(X)
    with pytest.raises(NotImplementedError, match="GaussianMixture.select"):
        FederatedGaussianMixture.select(X, [1, 2])
