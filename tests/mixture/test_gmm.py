"""GaussianMixture: agreement with scikit-learn (acceptance 2) and the drop-in surface."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGMM

from probest.mixture import GaussianMixture

COV_TYPES = ["full", "tied", "diag", "spherical"]
ATTRS = ["weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_"]


def _four_d(n=400, seed=1):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(3, 4))
    A = rng.normal(size=(3, 4, 4)) * 0.5 + np.eye(4)
    lab = rng.integers(0, 3, size=n)
    return centers[lab] + np.einsum("nij,nj->ni", A[lab], rng.normal(size=(n, 4)))


@pytest.mark.parametrize("cov", COV_TYPES)
def test_score_samples_equals_sklearn_given_identical_params(cov, blobs):
    sk = SkGMM(3, covariance_type=cov, random_state=0).fit(blobs)
    ours = GaussianMixture(3, covariance_type=cov, device="cpu", random_state=1).fit(blobs)
    for a in ATTRS:
        setattr(ours, a, getattr(sk, a))
    Xq = np.concatenate([blobs, np.random.default_rng(2).uniform(-10, 10, size=(50, 3))])
    # acceptance 2: 1e-10 (measured max |diff| ~1e-14)
    np.testing.assert_allclose(ours.score_samples(Xq), sk.score_samples(Xq), rtol=0, atol=1e-10)
    np.testing.assert_allclose(ours.predict_proba(Xq), sk.predict_proba(Xq), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(ours.predict(Xq), sk.predict(Xq))
    assert ours.bic(blobs) == pytest.approx(sk.bic(blobs), rel=1e-12)
    assert ours.aic(blobs) == pytest.approx(sk.aic(blobs), rel=1e-12)


@pytest.mark.parametrize("cov", COV_TYPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_independent_fit_not_worse_than_sklearn(cov, seed):
    X = _four_d(seed=seed)
    kw = dict(covariance_type=cov, n_init=5, tol=1e-6, max_iter=500, random_state=seed)
    sk = SkGMM(3, **kw).fit(X)
    ours = GaussianMixture(3, device="cpu", **kw).fit(X)
    # acceptance 2: mean log-likelihood no lower than sklearn's - 1e-3 nats/sample.
    # Measured over seeds 0-5 and the four covariance types: ours - sklearn in [-5e-7, 6e-8].
    assert ours.score(X) >= sk.score(X) - 1e-3


@pytest.mark.parametrize("cov", COV_TYPES)
def test_same_init_follows_sklearn_trajectory(cov, blobs):
    sk0 = SkGMM(3, covariance_type=cov, max_iter=2, random_state=0, tol=1e-1).fit(blobs)
    kw = dict(weights_init=sk0.weights_, means_init=sk0.means_ + 0.3,
              precisions_init=sk0.precisions_, tol=0.0, max_iter=15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = SkGMM(3, covariance_type=cov, **kw).fit(blobs)
        ours = GaussianMixture(3, covariance_type=cov, device="cpu", **kw).fit(blobs)
    for a in ATTRS:
        np.testing.assert_allclose(getattr(ours, a), getattr(sk, a), rtol=1e-9, atol=1e-10)
    assert ours.lower_bound_ == pytest.approx(sk.lower_bound_, abs=1e-10)
    assert ours.n_iter_ == sk.n_iter_ == 15


@pytest.mark.parametrize("cov", ["full", "diag"])
def test_batch_size_streaming_equals_in_memory(cov, blobs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        init = SkGMM(3, covariance_type=cov, max_iter=1, random_state=0).fit(blobs)
        kw = dict(weights_init=init.weights_, means_init=init.means_,
                  precisions_init=init.precisions_, tol=0.0, max_iter=10, device="cpu")
        a = GaussianMixture(3, covariance_type=cov, **kw).fit(blobs)
        mm = np.lib.format.open_memmap("/tmp/_probest_gmm_stream.npy", mode="w+",
                                       dtype=np.float64, shape=blobs.shape)
        mm[:] = blobs
        b = GaussianMixture(3, covariance_type=cov, batch_size=64, **kw).fit(mm)
    for attr in ATTRS:
        np.testing.assert_allclose(getattr(a, attr), getattr(b, attr), rtol=1e-10, atol=1e-12)


def test_float32_close_to_float64(blobs):
    a = GaussianMixture(3, random_state=0, device="cpu").fit(blobs)
    b = GaussianMixture(3, random_state=0, device="cpu", dtype="float32").fit(blobs)
    assert b.means_.dtype == np.float32
    order = np.argsort(a.means_[:, 1] + a.means_[:, 2] * 10)
    order32 = np.argsort(b.means_[:, 1] + b.means_[:, 2] * 10)
    np.testing.assert_allclose(a.means_[order], b.means_[order32], atol=1e-3)
    assert abs(a.score(blobs) - b.score(blobs)) < 1e-4


def test_n_init_keeps_best_and_warm_start_continues(blobs):
    X = _four_d(seed=3)
    one = GaussianMixture(3, n_init=1, random_state=0, init_params="random", max_iter=300,
                          device="cpu").fit(X)
    many = GaussianMixture(3, n_init=4, random_state=0, init_params="random", max_iter=300,
                           device="cpu").fit(X)
    assert many.lower_bound_ >= one.lower_bound_ - 1e-9
    assert {h["init"] for h in many.history_} == {0, 1, 2, 3}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # a random start: the k-means start (scikit-learn's seeding) is converged after
        # one step on these data, so it could not show the fits continuing
        ws = GaussianMixture(3, warm_start=True, max_iter=1, random_state=0,
                             init_params="random", device="cpu").fit(X)
        lb = [ws.lower_bound_]
        for _ in range(5):
            ws.fit(X)
            lb.append(ws.lower_bound_)
    assert np.all(np.diff(lb) >= -1e-12) and lb[-1] > lb[0]


@pytest.mark.parametrize("init", ["kmeans", "k-means++", "random", "random_from_data"])
def test_init_methods_reach_good_fit(init, blobs):
    # random responsibilities start near the symmetric saddle: EM needs a tight tol to leave it
    g = GaussianMixture(3, init_params=init, random_state=0, n_init=2, tol=1e-8, max_iter=2000,
                        device="cpu").fit(blobs)
    sk = SkGMM(3, random_state=0).fit(blobs)
    assert g.converged_ and g.score(blobs) >= sk.score(blobs) - 1e-3


def test_sample_to_pyro_and_convergence_warning(blobs):
    g = GaussianMixture(3, random_state=0, device="cpu").fit(blobs)
    Xs, ys = g.sample(2000)
    assert Xs.shape == (2000, 3) and np.bincount(ys, minlength=3).sum() == 2000
    # sample mean close to the mixture mean: sd of the mean ~ 3/sqrt(2000) ~ 0.07 per coord
    np.testing.assert_allclose(Xs.mean(0), g.weights_ @ g.means_, atol=0.3)
    d = g.to_pyro()
    np.testing.assert_allclose(d.log_prob(torch.tensor(blobs)).numpy(), g.score_samples(blobs),
                               atol=1e-10)
    with pytest.raises(ValueError, match="n_samples"):
        g.sample(0)
    with pytest.warns(ConvergenceWarning):
        GaussianMixture(3, max_iter=1, tol=0, random_state=0, device="cpu").fit(blobs)


def test_bad_input_messages(blobs):
    with pytest.raises(ValueError, match="n_components"):
        GaussianMixture(10, device="cpu").fit(blobs[:5])
    dup = np.repeat(blobs[:3], 20, axis=0)  # 3 distinct points
    with pytest.raises(ValueError, match="reg_covar"):
        GaussianMixture(2, reg_covar=0.0, random_state=0, device="cpu").fit(dup)
    with pytest.raises(ValueError, match="means_init"):
        GaussianMixture(3, means_init=np.zeros((2, 3)), device="cpu").fit(blobs)
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianMixture(3, covariance_type="bogus").fit(blobs)


def test_empty_component_keeps_previous_parameters_with_warning(blobs):
    means = np.array([[0.0, 0, 0], [4, 4, 0], [1e4, 1e4, 1e4]])  # third far from all data
    g = GaussianMixture(3, means_init=means, max_iter=5, tol=1e-12, device="cpu")
    with pytest.warns(UserWarning, match="no responsibility mass"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            g.fit(blobs)
    assert np.isfinite(g.means_).all() and np.isfinite(g.covariances_).all()
    assert g.weights_[2] < 1e-10
    np.testing.assert_allclose(g.means_[2], means[2])  # kept, not collapsed onto the data


def test_to_pyro_works_as_latent_prior_under_autoguide(blobs):
    import pyro
    import pyro.distributions as dist
    from pyro.infer import Trace_ELBO
    from pyro.infer.autoguide import AutoNormal

    prior = GaussianMixture(3, random_state=0, device="cpu").fit(blobs).to_pyro()
    y = torch.tensor(blobs[0])

    def model(y):
        z = pyro.sample("z", prior)  # real_vector support: autoguides can place it
        pyro.sample("y", dist.Normal(z, 1.0).to_event(1), obs=y)

    with pyro.settings.context(module_local_params=True):
        guide = AutoNormal(model)
        loss = Trace_ELBO().differentiable_loss(model, guide, y)
    assert torch.isfinite(loss)
