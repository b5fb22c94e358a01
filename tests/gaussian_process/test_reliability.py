"""Reliability of the GP estimators (issue 10, defects 2, 5 and 7): offsets and scales of y never
matter (normalize_y), hyperparameters on their bounds warn, finite extremes give clear errors, and
torch's linear-algebra messages never surface."""

import warnings

import gpytorch
import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from probest.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, (n, 1))
    return X, np.sin(X[:, 0]) + 0.1 * rng.normal(size=n), np.linspace(-3.5, 3.5, 25)[:, None]


# -- defect 2: normalize_y -------------------------------------------------------------------
@pytest.mark.parametrize("likelihood", ["gaussian", "student_t"])
def test_standardised_predictive_is_invariant_to_affine_maps_of_y(likelihood):
    # measured max deviation 1.0e-8 (gaussian) and 1.3e-8 (student_t, laplace) over
    # a in {1e-3, 1, 1e3}, b in {-1e4, 0, 1e4}
    X, y, Xt = _data()
    kw = dict(likelihood=likelihood, random_state=0)
    if likelihood == "student_t":
        kw.update(inference="laplace")  # Newton sites: deterministic to rounding, and quick
    ref = GaussianProcessRegressor(**kw).fit(X, y)
    m0, s0 = ref.predict(Xt, return_std=True)
    l0 = ref.log_predictive_density(Xt, np.sin(Xt[:, 0]))
    pairs = [(a, b) for a in (1e-3, 1.0, 1e3) for b in (-1e4, 0.0, 1e4)]
    if likelihood == "student_t":
        pairs = [(1e-3, 1e4), (1e3, -1e4)]
    dev = 0.0
    for a, b in pairs:
        reg = GaussianProcessRegressor(**kw).fit(X, a * y + b)
        m, s = reg.predict(Xt, return_std=True)
        lpd = reg.log_predictive_density(Xt, a * np.sin(Xt[:, 0]) + b)
        dev = max(dev, np.max(np.abs((m - b) / a - m0)), np.max(np.abs(s / a - s0)),
                  np.max(np.abs(lpd + np.log(a) - l0)))  # Jacobian of y = a z + b
    assert dev < 1e-6, dev


def test_offset_targets_are_predicted_right():
    # before normalize_y: mean ~87 (truth ~100) with std 0.10 at the training inputs
    X, y, Xt = _data(60)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # no hyperparameter on a bound
        reg = GaussianProcessRegressor(random_state=0).fit(X, 100.0 + y)
    m, s = reg.predict(Xt[2:-2], return_std=True)
    truth = 100.0 + np.sin(Xt[2:-2, 0])
    assert np.max(np.abs(m - truth)) < 0.15
    assert np.all(np.abs(m - truth) < 4 * s)  # calibrated, not confidently wrong
    assert reg.y_mean_ == pytest.approx(100.0 + y.mean()) and reg.y_std_ == pytest.approx(y.std())


@pytest.mark.parametrize("value", [5.0, 0.0, -3e7])
def test_constant_targets_predict_the_constant(value):
    # before: y = 5 predicted -2.5e8 (hyperparameters on their bounds, no warning)
    X, _, Xt = _data()
    reg = GaussianProcessRegressor(random_state=0)
    with pytest.warns(ConvergenceWarning, match="bound"):  # zero signal, zero noise: the MLE
        reg.fit(X, np.full(len(X), value))
    m, s = reg.predict(Xt, return_std=True)
    np.testing.assert_array_equal(m, value)
    assert np.all(np.isfinite(s)) and reg.y_std_ == 1.0
    assert np.all(np.isfinite(reg.log_predictive_density(Xt, np.full(len(Xt), value))))


def test_poisson_counts_are_never_standardised():
    rng = np.random.default_rng(0)
    X = np.linspace(0, 10, 80)[:, None]
    y = rng.poisson(np.exp(1 + np.sin(X[:, 0])))
    on = GaussianProcessRegressor(likelihood="poisson", inference="laplace", random_state=0)
    off = GaussianProcessRegressor(likelihood="poisson", inference="laplace", random_state=0,
                                   normalize_y=False)
    on.fit(X, y)
    off.fit(X, y)
    assert (on.y_mean_, on.y_std_) == (0.0, 1.0)
    np.testing.assert_array_equal(on.predict(X), off.predict(X))
    np.testing.assert_array_equal(on.log_predictive_density(X, y), off.log_predictive_density(X, y))


def test_outputs_of_every_path_are_on_the_scale_of_y():
    X, y, Xt = _data()
    a, b = 50.0, 1e3
    ref = GaussianProcessRegressor(random_state=0).fit(X, y)
    reg = GaussianProcessRegressor(random_state=0).fit(X, a * y + b)
    # the log marginal likelihood is that of the standardised targets: same for y and a y + b
    assert reg.log_marginal_likelihood_value_ == pytest.approx(
        ref.log_marginal_likelihood_value_, rel=1e-8)
    np.testing.assert_allclose(reg.theta_, ref.theta_, atol=1e-7)
    yt = a * np.sin(Xt[:, 0]) + b
    pred = reg.to_pyro(Xt)
    np.testing.assert_allclose(pred.log_prob(torch.tensor(yt)).numpy(),
                               reg.log_predictive_density(Xt, yt), atol=1e-10)
    m, v = reg.latent_mean_and_variance(Xt)
    m0, v0 = ref.latent_mean_and_variance(Xt)
    np.testing.assert_allclose(m, a * m0 + b, rtol=1e-9)
    np.testing.assert_allclose(v, a * a * v0, rtol=1e-6)
    lat = reg.to_pyro(Xt, latent=True)
    np.testing.assert_allclose(lat.mean.numpy(), m, rtol=1e-12)
    np.testing.assert_allclose(lat.variance.numpy(), v, rtol=1e-6)
    draws = reg.sample_y(Xt, n_samples=4, random_state=0)
    np.testing.assert_allclose(draws, a * ref.sample_y(Xt, n_samples=4, random_state=0) + b,
                               rtol=1e-8)


def test_normalisation_survives_save_and_load(tmp_path):
    import probest

    X, y, Xt = _data()
    reg = GaussianProcessRegressor(random_state=0).fit(X, 100.0 + 10.0 * y)
    back = probest.load(probest.save(reg, tmp_path / "gpr"))
    assert (back.y_mean_, back.y_std_) == (reg.y_mean_, reg.y_std_)
    np.testing.assert_allclose(back.predict(Xt), reg.predict(Xt), rtol=1e-12)


# -- defect 5: finite extremes ----------------------------------------------------------------
@pytest.mark.parametrize("est", [GaussianProcessClassifier(random_state=0),
                                 GaussianProcessRegressor(random_state=0),
                                 GaussianProcessRegressor(dtype="float32", random_state=0)])
def test_fit_on_rows_with_1e300_raises_a_clear_error(est):
    # before: the classifier ended with theta_ = [0, inf] or a torch Cholesky message
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    y = (X[:, 0] > 0).astype(int)
    X[3, 1] = 1e300 if est.dtype == "float64" else 1e20
    with pytest.raises(ValueError, match="feature 1 of X spans .* standardise X"):
        est.fit(X, y)


def test_float32_refuses_values_beyond_its_range():
    X = np.random.default_rng(0).normal(size=(20, 1)) + 1e39  # narrow span, huge offset
    with pytest.raises(ValueError, match="beyond the range of float32"):
        GaussianProcessRegressor(dtype="float32").fit(X, np.sin(X[:, 0] - 1e39))


def test_one_far_row_at_predict_time_names_the_row():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    y = (X[:, 0] > 0).astype(int)
    clf = GaussianProcessClassifier(inference="laplace", random_state=0).fit(X, y)
    reg = GaussianProcessRegressor(random_state=0).fit(X, X[:, 0] + 0.1 * rng.normal(size=30))
    Xt = X[:4].copy()
    Xt[2, 0] = 1e300
    for call in (clf.predict_proba, clf.predict, reg.predict,
                 lambda Z: reg.to_pyro(Z, latent=True)):
        with pytest.raises(ValueError, match=r"rows \[2\] of X give non-finite"):
            call(Xt)
    Xt[2, 0] = 1e100  # far, but representable: the prior predictive, finite
    P = clf.predict_proba(Xt)
    assert np.all(np.isfinite(P)) and np.allclose(P.sum(1), 1.0)
    assert np.all(np.isfinite(reg.predict(Xt, return_std=True)))


# -- defect 7: torch's linear-algebra messages never surface ---------------------------------
class _NotPositiveDefinite(gpytorch.kernels.Kernel):
    """``-RBF``: a user kernel that is not a covariance function."""

    def forward(self, x1, x2, diag=False, **params):
        d2 = self.covar_dist(x1, x2, square_dist=True, diag=diag, **params)
        return -torch.exp(-0.5 * d2)


@pytest.mark.parametrize("est", [GaussianProcessClassifier(inference="laplace", max_iter=3),
                                 GaussianProcessRegressor(max_iter=3)])
def test_cholesky_failures_are_valueerrors_in_probest_words(est):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 1))
    est.set_params(kernel=_NotPositiveDefinite(), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(ValueError, match="not numerically positive definite") as info:
            est.fit(X, (X[:, 0] > 0).astype(int))
    assert "linalg" not in str(info.value) and "leading minor" not in str(info.value)


def test_to_pyro_on_duplicate_rows_asks_for_jitter():
    X, y, _ = _data()
    reg = GaussianProcessRegressor(random_state=0).fit(X, y)
    Xd = np.repeat(X[:1], 6, axis=0)
    with pytest.raises(ValueError, match="pass a larger jitter"):
        reg.to_pyro(Xd, latent=True, jitter=0.0)
    assert reg.to_pyro(Xd, latent=True).sample().shape == (6,)
