"""The site-based engine: exactness under a Gaussian likelihood, gradients, stability."""

import numpy as np
import pytest
import torch
from sklearn.datasets import make_moons

from probest.gaussian_process import _engine as E
from probest.gaussian_process._gp import GPFit, Options
from probest.gaussian_process._kernels import make_kernel
from probest.gaussian_process._likelihoods import Gaussian, make_likelihood


class _GenericGaussian(Gaussian):
    """A Gaussian likelihood the fitter does not recognise, so it goes through the generic
    Laplace/EP/CVI machinery instead of the exact-sites shortcut."""

    name = "gaussian_generic"


def _data(n=50, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = np.sin(2 * X[:, 0]) + 0.3 * rng.normal(size=n)
    return torch.tensor(X), torch.tensor(y)


def _exact_lml(K, y, noise):
    C = K + noise * np.eye(len(y))
    L = np.linalg.cholesky(C)
    a = np.linalg.solve(C, y)
    return -0.5 * y @ a - np.log(np.diag(L)).sum() - 0.5 * len(y) * np.log(2 * np.pi)


@pytest.mark.parametrize("mode", ["laplace", "ep", "vi", "hybrid"])
def test_gaussian_likelihood_every_objective_is_exact(mode):
    X, y = _data()
    kernel = make_kernel(None, 2, lengthscale=0.8, outputscale=1.3)
    fit = GPFit(kernel, _GenericGaussian(noise=0.2), X, y, mode,
                options=Options(cvi_lr=0.5, ep_damping=0.5))
    assert not fit.exact
    fit.e_step(0, converge=True)  # Newton / EP sweeps / CVI steps until the sites settle
    exact = _exact_lml(fit.engine().K.detach().numpy(), y.numpy(), 0.2)
    with torch.no_grad():
        for kind in ("ep", "elbo", "laplace"):
            value = float(fit.objective(kind))
            assert value == pytest.approx(exact, rel=1e-6), (mode, kind)
    # the sites are the exact ones: l2 = 1/noise, l1 = y/noise
    np.testing.assert_allclose(fit.l2.numpy(), 1 / 0.2, rtol=1e-6)
    np.testing.assert_allclose(fit.l1.numpy(), y.numpy() / 0.2, rtol=1e-6)


@pytest.mark.parametrize("normalize_y", [False, True])
def test_regressor_objectives_equal_exact_lml_for_all_modes(normalize_y):
    from probest.gaussian_process import GaussianProcessRegressor

    X, y = _data(40, seed=1)
    values = []
    for mode in ("laplace", "ep", "vi", "hybrid"):
        reg = GaussianProcessRegressor(inference=mode, random_state=0, normalize_y=normalize_y)
        reg.fit(X.numpy(), y.numpy())
        K = reg.gps_[0].engine().K.detach().numpy()
        # normalize_y: the objective is that of z = (y - y_mean_) / y_std_
        z = (y.numpy() - reg.y_mean_) / reg.y_std_
        exact = _exact_lml(K, z, reg.hyperparameters_["noise"])
        for kind in ("ep", "elbo", "laplace"):
            assert reg.log_marginal_likelihood(kind=kind) == pytest.approx(exact, rel=1e-6)
        values.append(reg.log_marginal_likelihood_value_)
        # ... which is log p(y) + n log(y_std_) for y = y_mean_ + y_std_ z (the Jacobian)
        s2 = reg.y_std_**2
        on_y = _exact_lml(s2 * K, y.numpy() - reg.y_mean_, s2 * reg.hyperparameters_["noise"])
        assert on_y + len(z) * np.log(reg.y_std_) == pytest.approx(exact, rel=1e-9)
    assert np.ptp(values) < 1e-6 * abs(values[0])


def test_frozen_site_backward_matches_autograd():
    rng = np.random.default_rng(0)
    X = torch.tensor(rng.normal(size=(30, 3)))
    y = torch.tensor(np.sign(rng.normal(size=30)))
    lik = make_likelihood("probit")
    l1 = torch.tensor(rng.normal(size=30))
    l2 = torch.tensor(rng.uniform(0, 2, size=30))
    l2[3] = 0.0  # a site with no precision
    grads = []
    for fast in (True, False):
        kernel = make_kernel(None, 3, lengthscale=1.3, outputscale=2.0)
        eng = E.FullEngine(kernel, X)
        if fast:
            q = eng.marginals(l1, l2)
            assert type(q.mu.grad_fn).__name__ == "_FrozenSitesBackward"
        else:  # sites that require grad take the plain autograd path
            q = eng.marginals(l1.clone().requires_grad_(), l2.clone().requires_grad_())
        (E.ep_energy(q, l1, l2, lik, y) + E.elbo(q, l1, l2, lik, y)).backward()
        grads.append(torch.cat([p.grad.reshape(-1) for p in kernel.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-9)


def test_sparse_engine_with_inducing_at_data_equals_full():
    X, _ = _data(25)
    rng = np.random.default_rng(3)
    l1 = torch.tensor(rng.normal(size=25))
    l2 = torch.tensor(rng.uniform(0.1, 2, size=25))
    kernel = make_kernel(None, 2)
    with torch.no_grad():
        full = E.FullEngine(kernel, X).marginals(l1, l2)
        sp = E.SparseEngine(kernel, X, X, jitter=1e-12).marginals(l1, l2)
    torch.testing.assert_close(sp.mu, full.mu, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(sp.var, full.var, rtol=1e-5, atol=1e-6)
    assert float(sp.log_zq) == pytest.approx(float(full.log_zq), rel=1e-6)


@pytest.mark.parametrize("likelihood", ["probit", "logit", "student_t", "poisson"])
def test_gauss_hermite_matches_closed_forms_and_quadrature(likelihood):
    lik = make_likelihood(likelihood)
    m = torch.tensor([-1.0, 0.3, 2.0], dtype=torch.float64)
    v = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    y = torch.tensor([1.0, -1.0, 1.0] if likelihood in ("probit", "logit") else [0.0, 2.0, 5.0],
                     dtype=torch.float64)
    # brute-force trapezoid integral
    f = torch.linspace(-15, 15, 20001, dtype=torch.float64)
    dens = torch.exp(-0.5 * (f[None] - m[:, None]) ** 2 / v[:, None]) / torch.sqrt(
        2 * np.pi * v[:, None])
    p = torch.exp(lik.log_prob(y[:, None], f[None]))
    z = torch.trapezoid(p * dens, f, dim=1)
    mean = torch.trapezoid(p * dens * f, f, dim=1) / z
    # adaptive 20-point Gauss-Hermite: measured max errors 4e-9 (logit), 1.4e-5 (Student-t,
    # the heavy tail), 3.5e-7 (Poisson, y=5, v=2; plain GH was 4% off on the mean there).
    rtol = 1e-4
    with torch.no_grad():
        logz, mh, vh = lik.tilted_moments(y, m, v)
        np.testing.assert_allclose(lik.log_tilted(y, m, v).numpy(), torch.log(z).numpy(),
                                   rtol=rtol)
        np.testing.assert_allclose(logz.numpy(), torch.log(z).numpy(), rtol=rtol)
        np.testing.assert_allclose(mh.numpy(), mean.numpy(), rtol=rtol, atol=rtol)
        assert torch.all(vh > 0) and torch.all(vh < v + 1e-9)  # tilted variance shrinks


@pytest.mark.parametrize("separable", [False, True])
def test_no_nan_no_negative_cavity_and_monotone_ep_energy(separable):
    from probest.gaussian_process import GaussianProcessClassifier

    if separable:
        rng = np.random.default_rng(0)
        X = np.r_[rng.normal(-3, 0.5, (40, 2)), rng.normal(3, 0.5, (40, 2))]
        y = np.r_[np.zeros(40), np.ones(40)]
    else:
        X, y = make_moons(120, noise=0.2, random_state=0)
    for mode in ("hybrid", "ep", "vi"):
        clf = GaussianProcessClassifier(inference=mode, random_state=0, max_iter=200)
        clf.fit(X, y)
        f = clf.gps_[0]
        with torch.no_grad():
            q = f.engine().marginals(f.l1, f.l2)
            _, v_c, ok = E.cavity(q, f.l1, f.l2)
        assert bool(ok.all()) and bool((v_c > 0).all()), mode
        assert np.all(np.isfinite(clf.predict_proba(X)))
        assert np.all(f.l2.numpy() >= 0)
        if mode == "hybrid":
            ep = [h["ep_energy"] for h in clf.history_]
            # non-decreasing until the stop (the last record is the decrease that stops it)
            body = ep[:-1] if clf.stopped_by_ == "ep_energy_decrease" else ep
            assert np.all(np.diff(body) >= -1e-9)
            if clf.stopped_by_ == "ep_energy_decrease":
                assert ep[-1] < ep[-2]
                # rolled back: the fitted objective is the best recorded one
                assert clf.log_marginal_likelihood_value_ == pytest.approx(ep[-2], rel=1e-9)
        assert clf.score(X, y) > (0.99 if separable else 0.85)
