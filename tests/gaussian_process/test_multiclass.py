"""Native multiclass GP classification (``multi_class="softmax"``): one latent GP per class,
one joint posterior under the softmax likelihood."""

import warnings

import numpy as np
import pytest
import torch

from probest.gaussian_process import GaussianProcessClassifier
from probest.gaussian_process._softmax import Softmax

from ._data import folds, nlpd_acc, sklearn_gpc


def _blobs(n=30, seed=0):
    rng = np.random.default_rng(seed)
    X = np.r_[rng.normal(-1, 1, (n, 2)), rng.normal(1, 1, (n, 2)),
              rng.normal((1, -1.5), 1, (n, 2))]
    return X, np.repeat(np.array(["a", "b", "c"]), n)


def test_softmax_expectations_and_identities():
    torch.manual_seed(0)
    lik = Softmax(3, n_samples=4096).double()
    m = torch.randn(3, 5, dtype=torch.float64)
    v = torch.rand(3, 5, dtype=torch.float64) + 0.1
    y = torch.tensor([0, 1, 2, 1, 0])
    e, gm, gv = lik.expected(y, m, v)
    # Bonnet's theorem is exact for the reparameterised draws; Price's (g_v) holds to MC error
    mm, vv = m.clone().requires_grad_(True), v.clone().requires_grad_(True)
    lik.expected(y, mm, vv)[0].sum().backward()
    np.testing.assert_allclose(gm.numpy(), mm.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(gv.numpy(), vv.grad.numpy(), atol=2e-3)
    assert bool((gv < 0).all())
    # Jensen: E[log p] <= log E[p]; the predictive sums to one over the classes
    assert bool((e <= lik.log_tilted(y, m, v) + 1e-12).all())
    P = lik.predict_proba(m, v)
    np.testing.assert_allclose(P.sum(1).numpy(), 1.0, atol=1e-12)
    # v -> 0: expectations are the plain softmax
    e0, _, _ = lik.expected(y, m, torch.zeros_like(v))
    np.testing.assert_allclose(e0.numpy(), lik.log_prob(y, m).numpy(), atol=1e-12)


@pytest.mark.parametrize("mode", [pytest.param("laplace", marks=pytest.mark.slow), "vi", "hybrid"])
def test_softmax_modes_fit_exact_and_sparse(mode):
    X, y = _blobs()
    kw = dict(inference=mode, multi_class="softmax", random_state=0)
    full = GaussianProcessClassifier(**kw).fit(X, y)
    sparse = GaussianProcessClassifier(n_inducing=30, **kw).fit(X, y)
    ovr = GaussianProcessClassifier(inference=mode, random_state=0).fit(X, y)
    Xt, yt = _blobs(200, seed=1)
    for clf in (full, sparse):
        assert len(clf.gps_) == 1 and clf.sites_["l1"].shape == (3, 90)
        P = clf.predict_proba(Xt)
        np.testing.assert_allclose(P.sum(1), 1.0, atol=1e-12)
        assert clf.score(Xt, yt) > 0.75
        m, v = clf.latent_mean_and_variance(Xt[:4])
        assert m.shape == v.shape == (4, 3) and np.all(v > 0)
    n_full, n_sparse, n_ovr = (-clf.log_predictive_density(Xt, yt).mean()
                               for clf in (full, sparse, ovr))
    # measured (full / 30 inducing / one-vs-rest): laplace 0.4976/0.4976/0.4963,
    # vi 0.4831/0.4831/0.4910, hybrid 0.4847/0.4847/0.4915
    assert abs(n_sparse - n_full) < 0.02 and n_full < n_ovr + 0.02


def test_laplace_softmax_mode_is_the_joint_map():
    # at the Laplace mode K^-1 f = d log p / d f for every class (the gradient of the joint
    # log posterior vanishes), whatever the class-diagonal curvature used to reach it
    X, y = _blobs()
    clf = GaussianProcessClassifier(inference="laplace", multi_class="softmax",
                                    random_state=0).fit(X, y)
    f = clf.gps_[0]
    engine = f.engine()
    with torch.no_grad():
        fhat = engine.f_of(f.coef)
        _, d1, _ = f.lik.derivs(f.y, fhat)
    # Newton stops at a relative change of psi of 1e-10; measured max |difference| 3.6e-6
    np.testing.assert_allclose(f.coef.numpy(), d1.numpy(), atol=2e-5)


def test_softmax_ep_is_refused_and_ovr_stays_the_default():
    X, y = _blobs()
    with pytest.raises(ValueError, match="no closed form"):
        GaussianProcessClassifier(inference="ep", multi_class="softmax").fit(X, y)
    with pytest.raises(ValueError, match="batch_size"):
        GaussianProcessClassifier(multi_class="softmax", batch_size=30).fit(X, y)
    assert GaussianProcessClassifier().multi_class == "one_vs_rest"
    # two classes: the binary model (one latent GP with `link`) whatever multi_class says
    Xb, yb = X[:60], y[:60]
    a = GaussianProcessClassifier(multi_class="softmax", random_state=0).fit(Xb, yb)
    b = GaussianProcessClassifier(random_state=0).fit(Xb, yb)
    np.testing.assert_allclose(a.predict_proba(Xb), b.predict_proba(Xb))


def test_softmax_pyro_arviz_and_save(tmp_path):
    import probest

    X, y = _blobs()
    clf = GaussianProcessClassifier(inference="vi", multi_class="softmax",
                                    random_state=0).fit(X, y)
    lat = clf.to_pyro(X[:5], latent=True)
    assert lat.batch_shape == (3,) and lat.event_shape == (5,)
    m, _ = clf.latent_mean_and_variance(X[:5])
    np.testing.assert_allclose(lat.mean.T.numpy(), m, atol=1e-10)
    pred = clf.to_pyro(X[:5])
    assert pred.batch_shape == (5,)
    np.testing.assert_allclose(pred.probs.numpy(), clf.predict_proba(X[:5]), atol=1e-10)
    idata = clf.to_arviz(n_draws=50, random_state=0)
    assert set(idata.posterior.data_vars) == set(clf.theta_names_)
    assert clf.log_marginal_likelihood() == pytest.approx(clf.log_marginal_likelihood_value_)
    assert clf.log_marginal_likelihood(kind="ep") > clf.log_marginal_likelihood_value_
    path = tmp_path / "gp"
    probest.save(clf, path)
    back = probest.load(path)
    np.testing.assert_allclose(back.predict_proba(X), clf.predict_proba(X), atol=1e-10)


def test_wine_softmax_first_fold_against_ovr_and_sklearn():
    Xtr, ytr, Xte, yte = next(iter(folds("wine")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        soft = GaussianProcessClassifier(inference="vi", multi_class="softmax",
                                         random_state=0).fit(Xtr, ytr)
    n_s, a_s = nlpd_acc(soft, Xte, yte)
    n_k, a_k = nlpd_acc(sklearn_gpc(Xtr, ytr), Xte, yte)
    # measured on this fold: softmax VI 0.0365 / 1.0, scikit-learn 0.2396 / 1.0
    assert n_s < n_k - 0.1 and a_s >= a_k - 0.03


@pytest.mark.gpu
def test_softmax_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    X, y = _blobs()
    kw = dict(inference="hybrid", multi_class="softmax", random_state=0)
    cpu = GaussianProcessClassifier(**kw).fit(X, y)
    gpu = GaussianProcessClassifier(device="cuda", **kw).fit(X, y)
    np.testing.assert_allclose(gpu.predict_proba(X), cpu.predict_proba(X), atol=1e-4)
