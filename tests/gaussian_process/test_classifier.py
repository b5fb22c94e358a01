"""GaussianProcessClassifier: the spec's acceptance targets and the public API."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_moons

from probest.gaussian_process import GaussianProcessClassifier

from ._data import folds, nlpd_acc, sklearn_gpc


# --- acceptance (one fold in the default run, 5-fold CV marked slow) ----------------------
def test_breast_cancer_hybrid_first_fold():
    # Fold 0 is the hardest of the five (sklearn: NLPD 0.116 there, 0.091 on average);
    # hybrid measured NLPD 0.069, accuracy 0.974 on it, so the CV-mean targets hold per fold.
    Xtr, ytr, Xte, yte = next(folds("breast_cancer", 1))
    clf = GaussianProcessClassifier(random_state=0).fit(Xtr, ytr)
    nlpd, acc = nlpd_acc(clf, Xte, yte)
    assert nlpd <= 0.085 and acc >= 0.965, (nlpd, acc)
    assert clf.objective_ == "ep" and clf.converged_


def test_laplace_logit_reproduces_sklearn():
    # The same method: measured NLPD difference 4e-5 and evidence difference 5e-11 on this
    # fold (probest integrates the logit predictive by quadrature, sklearn approximates).
    Xtr, ytr, Xte, yte = next(folds("breast_cancer", 1))
    ours = GaussianProcessClassifier(inference="laplace", link="logit", random_state=0)
    ours.fit(Xtr, ytr)
    sk = sklearn_gpc(Xtr, ytr)
    assert abs(nlpd_acc(ours, Xte, yte)[0] - nlpd_acc(sk, Xte, yte)[0]) <= 0.01
    assert ours.log_marginal_likelihood_value_ == pytest.approx(
        sk.log_marginal_likelihood_value_, abs=1e-3)


def test_digits_3v5_hybrid_first_fold():
    # measured fold-0 NLPD 0.051 (sklearn 0.168), accuracy 0.986 = one error in 73, as
    # sklearn; one error is worth 0.014, so the per-fold accuracy bound allows two (the CV-mean
    # target acc >= 0.985 is checked by the slow 5-fold test: measured 0.992).
    Xtr, ytr, Xte, yte = next(folds("digits_3v5", 1))
    nlpd, acc = nlpd_acc(GaussianProcessClassifier(random_state=0).fit(Xtr, ytr), Xte, yte)
    assert nlpd <= 0.06 and acc >= 0.97, (nlpd, acc)


def test_iris_one_vs_rest_first_fold_no_worse_than_sklearn():
    # measured fold 0: NLPD 0.044 vs sklearn 0.234, both accuracy 1.0
    Xtr, ytr, Xte, yte = next(folds("iris", 1))
    clf = GaussianProcessClassifier(random_state=0).fit(Xtr, ytr)
    assert len(clf.gps_) == 3 and isinstance(clf.hyperparameters_, list)
    ours, sk = nlpd_acc(clf, Xte, yte), nlpd_acc(sklearn_gpc(Xtr, ytr), Xte, yte)
    assert ours[0] <= sk[0] and ours[1] >= sk[1] - 0.02, (ours, sk)


@pytest.mark.slow
@pytest.mark.parametrize("name,nlpd_max,acc_min", [
    ("breast_cancer", 0.085, 0.965), ("digits_3v5", 0.06, 0.985)])
def test_five_fold_cv_targets(name, nlpd_max, acc_min):
    res = [nlpd_acc(GaussianProcessClassifier(random_state=0).fit(a, b), c, d)
           for a, b, c, d in folds(name)]
    nlpd, acc = np.mean(res, 0)
    assert nlpd <= nlpd_max and acc >= acc_min, (nlpd, acc)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["iris", "wine"])
def test_five_fold_cv_no_worse_than_sklearn(name):
    ours, sk = [], []
    for a, b, c, d in folds(name):
        ours.append(nlpd_acc(GaussianProcessClassifier(random_state=0).fit(a, b), c, d))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn's L-BFGS hits its bounds on wine
            sk.append(nlpd_acc(sklearn_gpc(a, b), c, d))
    (n1, a1), (n2, a2) = np.mean(ours, 0), np.mean(sk, 0)
    assert n1 <= n2 and a1 >= a2 - 0.02, ((n1, a1), (n2, a2))


@pytest.mark.slow
def test_five_fold_laplace_logit_matches_sklearn():
    diffs = []
    for a, b, c, d in folds("breast_cancer"):
        ours = GaussianProcessClassifier(inference="laplace", link="logit").fit(a, b)
        diffs.append(nlpd_acc(ours, c, d)[0] - nlpd_acc(sklearn_gpc(a, b), c, d)[0])
    assert abs(np.mean(diffs)) <= 0.01


# --- API ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def moons():
    X, y = make_moons(80, noise=0.25, random_state=0)
    return X, y


@pytest.mark.parametrize("mode", ["laplace", "ep", "vi", "hybrid"])
@pytest.mark.parametrize("link", ["probit", "logit"])
def test_modes_and_links_fit_moons(moons, mode, link):
    X, y = moons
    clf = GaussianProcessClassifier(inference=mode, link=link, random_state=0).fit(X, y)
    P = clf.predict_proba(X)
    assert P.shape == (80, 2) and np.allclose(P.sum(1), 1)
    assert clf.score(X, y) > 0.85
    assert set(clf.hyperparameters_) == {"outputscale", "lengthscale"}
    assert clf.sites_["l1"].shape == (80,) and np.all(clf.sites_["l2"] >= 0)
    assert np.isfinite(clf.log_marginal_likelihood_value_)
    hist = clf.history_
    assert hist and all(np.isfinite(h["objective"]) for h in hist)
    if mode != "laplace":
        assert all("elbo" in h and "ep_energy" in h for h in hist)
    lp = clf.log_predictive_density(X, y)
    np.testing.assert_allclose(lp, np.log(P[np.arange(80), y]), rtol=1e-10)


def test_string_labels_and_one_vs_rest():
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(-2, 1, (20, 2)), rng.normal(2, 1, (20, 2)), rng.normal((2, -3), 1,
                                                                                (20, 2))]
    y = np.repeat(np.array(["a", "b", "c"]), 20)
    clf = GaussianProcessClassifier(random_state=0).fit(X, y)
    assert list(clf.classes_) == ["a", "b", "c"]
    assert clf.predict(X).dtype == y.dtype and clf.score(X, y) > 0.9
    assert np.allclose(clf.predict_proba(X).sum(1), 1)
    m, v = clf.latent_mean_and_variance(X)
    assert m.shape == v.shape == (60, 3) and np.all(v > 0)
    assert clf.theta_.shape == (3, 2)


def test_log_marginal_likelihood_kinds_and_theta(moons):
    X, y = moons
    clf = GaussianProcessClassifier(inference="ep", random_state=0).fit(X, y)
    assert clf.log_marginal_likelihood() == pytest.approx(clf.log_marginal_likelihood_value_)
    # re-inferring EP sites at the fitted theta reproduces the fitted objective
    assert clf.log_marginal_likelihood(clf.theta_) == pytest.approx(
        clf.log_marginal_likelihood_value_, abs=1e-3)
    kinds = {k: clf.log_marginal_likelihood(clf.theta_, kind=k) for k in ("ep", "elbo",
                                                                           "laplace")}
    assert kinds["elbo"] < kinds["ep"]  # the ELBO is a lower bound, EP is tighter here
    worse = clf.log_marginal_likelihood(clf.theta_ + np.array([2.0, -1.0]))
    assert worse < clf.log_marginal_likelihood_value_
    assert clf.theta_names_ == ["log_outputscale", "log_lengthscale"]
    with pytest.raises(ValueError, match="kind"):
        clf.log_marginal_likelihood(kind="bogus")
    with pytest.raises(ValueError, match="theta"):
        clf.log_marginal_likelihood(np.zeros(5))


def test_to_pyro_latent_and_predictive(moons):
    import pyro.distributions as dist

    X, y = moons
    clf = GaussianProcessClassifier(random_state=0).fit(X, y)
    d = clf.to_pyro(X[:7], latent=True)
    assert isinstance(d, dist.MultivariateNormal) and d.event_shape == (7,)
    m, v = clf.latent_mean_and_variance(X[:7])
    np.testing.assert_allclose(d.mean.numpy(), m, rtol=1e-8)
    np.testing.assert_allclose(d.variance.numpy(), v, rtol=1e-5)
    c = clf.to_pyro(X[:7])
    assert isinstance(c, dist.Categorical) and c.batch_shape == (7,)


def test_to_arviz_laplace_over_log_hyperparameters(moons):
    X, y = moons
    clf = GaussianProcessClassifier(random_state=0).fit(X, y)
    idata = clf.to_arviz(n_draws=400, random_state=0)
    post = idata.posterior
    assert set(post.data_vars) == {"log_outputscale", "log_lengthscale"}
    mean = float(post["log_lengthscale"].mean())
    assert mean == pytest.approx(np.log(clf.hyperparameters_["lengthscale"]), abs=0.3)
    assert float(post["log_lengthscale"].std()) > 0


@pytest.mark.slow
def test_to_arviz_nuts(moons):
    X, y = moons
    clf = GaussianProcessClassifier(inference="vi", random_state=0).fit(X[:40], y[:40])
    idata = clf.to_arviz(posterior="nuts", n_draws=60, num_warmup=40, random_state=0)
    draws = idata.posterior["log_lengthscale"].values
    assert draws.shape == (1, 60) and np.all(np.isfinite(draws)) and np.std(draws) > 0


def test_sparse_forced_automatic_and_close_to_full(moons):
    X, y = make_moons(300, noise=0.25, random_state=1)
    full = GaussianProcessClassifier(random_state=0).fit(X, y)
    forced = GaussianProcessClassifier(n_inducing=40, random_state=0).fit(X, y)
    auto = GaussianProcessClassifier(sparse_threshold=200, random_state=0, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto.fit(X, y)
    assert not full.sparse_ and forced.sparse_ and auto.sparse_
    assert forced.inducing_points_.shape == (40, 2) and auto.inducing_points_.shape[0] == 256
    Xt, yt = make_moons(500, noise=0.25, random_state=2)
    n_full = -full.log_predictive_density(Xt, yt).mean()
    n_sparse = -forced.log_predictive_density(Xt, yt).mean()
    # measured 0.1638 (full) vs 0.1641 (40 inducing points)
    assert n_sparse <= n_full + 0.02
    given = GaussianProcessClassifier(inducing_points=X[:30], random_state=0).fit(X, y)
    assert given.sparse_ and np.allclose(given.inducing_points_, X[:30])


@pytest.mark.slow
def test_sparse_hybrid_20k_under_two_minutes():
    import time

    from probest.datasets import make_gp_classification

    X, y = make_gp_classification(22000, 2, random_state=0)
    t0 = time.perf_counter()
    clf = GaussianProcessClassifier(random_state=0).fit(X[:20000], y[:20000])
    assert time.perf_counter() - t0 < 120
    assert clf.sparse_ and clf.score(X[20000:], y[20000:]) > 0.7


# --- bad input ----------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors(moons):
    X, y = moons
    with pytest.raises(ValueError, match="only one class"):
        GaussianProcessClassifier().fit(X, np.zeros(len(X)))
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        GaussianProcessClassifier().fit(Xn, y)
    with pytest.raises(ValueError, match="inference"):
        GaussianProcessClassifier(inference="mcmc").fit(X, y)
    with pytest.raises(ValueError, match="link"):
        GaussianProcessClassifier(link="cauchit").fit(X, y)
    with pytest.raises(ValueError, match="continuous"):
        GaussianProcessClassifier().fit(X, y + 0.5)
    with pytest.raises(ValueError, match="kernel"):
        GaussianProcessClassifier(kernel="matern72").fit(X, y)
    clf = GaussianProcessClassifier(max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    with pytest.raises(ValueError, match="labels not seen"):
        clf.log_predictive_density(X, np.full(len(X), 7))
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :1])


def test_max_iter_warns_and_reports(moons):
    from sklearn.exceptions import ConvergenceWarning

    X, y = moons
    with pytest.warns(ConvergenceWarning):
        clf = GaussianProcessClassifier(inference="vi", max_iter=2, random_state=0).fit(X, y)
    assert not clf.converged_ and clf.stopped_by_ == "max_iter" and clf.n_iter_ == 2


def test_gpytorch_kernel_template_is_not_trained(moons):
    import gpytorch
    import torch

    X, y = moons
    template = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel()).double()
    before = [p.detach().clone() for p in template.parameters()]
    clf = GaussianProcessClassifier(kernel=template, random_state=0).fit(X, y)
    for b, p in zip(before, template.parameters()):
        assert torch.equal(b, p)
    assert clf.score(X, y) > 0.85 and "raw_outputscale" in clf.theta_names_[0]


def test_laplace_history_has_all_objectives(moons):
    X, y = moons
    clf = GaussianProcessClassifier(inference="laplace", random_state=0).fit(X, y)
    h = clf.history_[-1]
    assert {"objective", "elbo", "ep_energy"} <= set(h)
    assert h["objective"] == pytest.approx(clf.log_marginal_likelihood_value_, abs=1e-6)
    assert h["elbo"] <= h["ep_energy"] + 1e-9


@pytest.mark.gpu
def test_cuda_matches_cpu(moons):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    X, y = moons
    cpu = GaussianProcessClassifier(random_state=0).fit(X, y)
    gpu = GaussianProcessClassifier(random_state=0, device="cuda").fit(X, y)
    np.testing.assert_allclose(gpu.predict_proba(X), cpu.predict_proba(X), atol=1e-4)


@pytest.mark.parametrize("mode", ["laplace", "ep", "vi"])
def test_sparse_every_mode_close_to_full(mode):
    # measured on these data (NLPD full / 30 inducing): laplace 0.177/0.178, ep 0.164/0.164,
    # vi 0.164/0.162
    X, y = make_moons(300, noise=0.25, random_state=1)
    Xt, yt = make_moons(500, noise=0.25, random_state=2)
    full = GaussianProcessClassifier(inference=mode, random_state=0).fit(X, y)
    sparse = GaussianProcessClassifier(inference=mode, n_inducing=30, random_state=0).fit(X, y)
    n_full = -full.log_predictive_density(Xt, yt).mean()
    n_sparse = -sparse.log_predictive_density(Xt, yt).mean()
    assert sparse.sparse_ and abs(n_sparse - n_full) < 0.02


def test_float32_hybrid_close_to_float64_and_ep_warns(moons):
    X, y = moons
    c32 = GaussianProcessClassifier(dtype="float32", random_state=0).fit(X, y)
    c64 = GaussianProcessClassifier(random_state=0).fit(X, y)
    assert c32.gps_[0].X.dtype == __import__("torch").float32
    # measured max |difference| 0.014 here (the early stop lands one iteration apart), 5e-4 on
    # make_moons(200)
    assert np.abs(c32.predict_proba(X) - c64.predict_proba(X)).max() < 0.03
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        GaussianProcessClassifier(inference="ep", dtype="float32", max_iter=2).fit(X, y)
    assert any("float32" in str(w.message) for w in rec)
