"""The MLP estimators: outputs, bad input, exports, plots and the toy data sets."""

import warnings

import numpy as np
import pytest

from probest.bnn import (
    PartialBayesianMLPClassifier,
    PartialBayesianMLPRegressor,
    ParticleDegeneracyWarning,
    plot_particle_posterior,
)
from probest.datasets import (
    bimodal_grid_posterior,
    crescent_grid_posterior,
    make_bimodal_toy,
    make_crescent,
    make_xsin_regression,
)

_SMALL = {"hidden_layer_sizes": (16, 8), "stochastic_layers": (1,), "n_particles": 40,
          "max_epochs": 4, "kernel_scale": 1e-3, "ess_threshold": 0.5, "device": "cpu",
          "random_state": 0}


@pytest.fixture(scope="module")
def reg():
    X, y = make_xsin_regression(150, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParticleDegeneracyWarning)
        return PartialBayesianMLPRegressor(**_SMALL, n_restarts=2).fit(X, 10 * y + 3), X, y


def test_regressor_outputs(reg):
    est, X, y = reg
    mean, sd = est.predict(X, return_std=True)
    assert mean.shape == sd.shape == (150,) and np.all(sd >= est.noise_ - 1e-9)
    np.testing.assert_allclose(est.predict(X), mean)
    draws = est.sample_predictive(X, n_samples=200, random_state=0)
    assert draws.shape == (200, 150)
    # predictive draws agree with the moments (200 draws: 5 standard errors of the mean)
    assert np.all(np.abs(draws.mean(0) - mean) <= 5 * sd / np.sqrt(200) + 1e-6)
    assert np.isfinite(est.score_nlpd(X, 10 * y + 3)) and est.score(X, 10 * y + 3) > 0
    assert est.particles_.shape == (40, 8 * 16 + 8) and est.log_weights_.shape == (40,)
    assert est.chain_particles_.shape == (2, 40, 136)
    assert est.ess_history_.ndim == 1 and len(est.history_) >= 1


def test_regressor_target_units_are_equivariant(reg):
    est, X, y = reg
    other = PartialBayesianMLPRegressor(**_SMALL, n_restarts=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParticleDegeneracyWarning)
        other.fit(X, y)
    np.testing.assert_allclose(est.predict(X), 10 * other.predict(X) + 3, rtol=1e-4, atol=1e-4)


def test_to_arviz_chains_are_restarts(reg):
    idata = reg[0].to_arviz()
    assert dict(idata.posterior.sizes)["chain"] == 2
    assert "ess" in idata.sample_stats


def test_to_pyro_module_and_predictive(reg):
    import pyro.distributions as dist
    import torch
    from pyro import poutine

    est, X, _ = reg
    net = est.to_pyro()
    assert isinstance(net.posterior, dist.Empirical)
    tr = poutine.trace(net).get_trace(torch.tensor((X[:5] - est.x_mean_) / est.x_scale_))
    assert tr.nodes["phi"]["value"].shape == (136,) and tr.nodes["y"]["value"].shape == (5,)
    pred = est.to_pyro(X[:5])
    np.testing.assert_allclose(pred.mean.numpy(), est.predict(X[:5]), rtol=1e-5, atol=1e-5)


def test_classifier_outputs_and_unseen_labels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 2))
    y = np.array(["a", "b", "c"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 1)]
    clf = PartialBayesianMLPClassifier(**_SMALL).fit(X, y)
    p = clf.predict_proba(X)
    np.testing.assert_allclose(p.sum(1), 1.0)
    assert set(clf.predict(X)) <= {"a", "b", "c"} and clf.score(X, y) > 0.6
    assert clf.sample_predictive(X[:4], 3).shape == (3, 4)
    with pytest.raises(ValueError, match="not seen in fit"):
        clf.score_nlpd(X[:3], ["a", "b", "z"])
    assert clf.to_pyro(X[:4]).batch_shape == (4,)


@pytest.mark.parametrize("params, match", [
    ({"stochastic_layers": ()}, "names no layer"),
    ({"stochastic_layers": (0, 1, 2)}, "every one"),
    ({"stochastic_layers": (7,)}, "not linear-layer indices"),
    ({"n_particles": 1}, "n_particles must be >= 2"),
    ({"noise": -1.0}, "noise"),
    ({"sampler": "nuts"}, "sampler"),
    ({"final_mh_steps": -1}, "final_mh_steps"),
    ({"final_smc": "always"}, "final_smc"),
])
def test_bad_parameters(params, match):
    X, y = make_xsin_regression(30, random_state=0)
    est = PartialBayesianMLPRegressor(**{**_SMALL, **params})
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)


def test_final_smc_draws_the_final_particles(reg):
    """With ``final_smc`` (the regressor's default) the particles come from the tempered SMC
    at the learned weights: its temperatures reach 1 and its evidence is ``log_evidence_``;
    without it the open horizon's last particles are kept, and the weights are unchanged."""
    X, y = make_xsin_regression(150, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParticleDegeneracyWarning)
        on = PartialBayesianMLPRegressor(**_SMALL).fit(X, y)
        off = PartialBayesianMLPRegressor(**_SMALL, final_smc=False).fit(X, y)
    assert PartialBayesianMLPClassifier().final_smc is None  # sgsmc only: ECE, RESULTS.md
    for (n, p), (_, q) in zip(on.module_.named_parameters(), off.module_.named_parameters(),
                              strict=True):
        if n not in on.stochastic_names_:
            np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy(), err_msg=n)
    assert not np.allclose(on.particles_, off.particles_)
    assert np.isfinite(on.log_evidence_) and on.log_evidence_ != off.log_evidence_


def test_nan_input_refused():
    X, y = make_xsin_regression(30, random_state=0)
    X[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        PartialBayesianMLPRegressor(**_SMALL).fit(X, y)


@pytest.mark.parametrize("sampler", ["sgsmc", "map"])
def test_other_samplers_predict(sampler):
    X, y = make_xsin_regression(80, random_state=1)
    est = PartialBayesianMLPRegressor(**{**_SMALL, "sampler": sampler, "max_epochs": 2}).fit(X, y)
    assert np.isfinite(est.score_nlpd(X, y))
    assert len(est.particles_) == (1 if sampler == "map" else 40)


def test_particle_plot(reg):
    import matplotlib

    matplotlib.use("Agg")
    est = reg[0]
    ax = plot_particle_posterior(est, dims=(0, 1))
    assert ax.get_ylabel() == "phi[1]"
    with pytest.raises(ValueError, match="choose one or two"):
        plot_particle_posterior(est)


def test_toy_data_sets():
    y, theta = make_bimodal_toy(200, theta=1.5, random_state=0)
    grid, p = bimodal_grid_posterior(y)
    step = grid[1] - grid[0]
    assert p.sum() * step == pytest.approx(1.0)
    assert p[grid > 0].sum() * step == pytest.approx(0.5, abs=1e-6)  # symmetric
    assert abs(abs(grid[np.argmax(p)]) - 1.5) < 0.4
    yc, _ = make_crescent(50, random_state=0)
    g1, g2, pc = crescent_grid_posterior(yc)
    assert pc.sum() * (g1[1] - g1[0]) ** 2 == pytest.approx(1.0)
    np.testing.assert_allclose(pc, pc[::-1], atol=1e-12)  # symmetric in theta_1
