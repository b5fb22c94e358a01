"""Bayesian / hierarchical Exp3: the Pyro and NumPyro models share the likelihood; NUTS
recovers the group mean (acceptance 6; the 20-subject run is ``slow``)."""

import importlib.util
import warnings

import numpy as np
import pytest
import torch

from probest.bandits import BayesianExp3, simulate_exp3
from probest.bandits._replay import replay_exp3

_HAS_JAX = importlib.util.find_spec("numpyro") is not None and importlib.util.find_spec("jax")
needs_jax = pytest.mark.skipif(not _HAS_JAX, reason="the [jax] extra is not installed")


@needs_jax
@pytest.mark.parametrize(("schedule", "gamma", "iw"), [("constant", 0.0, "loss"),
                                                       ("anytime", 0.1, "gain")])
def test_numpyro_likelihood_equals_the_torch_replay(schedule, gamma, iw):
    from probest.bandits._models import jax_loglik_numpy

    sim = simulate_exp3(3, 80, learning_rate=0.3, schedule=schedule, gamma=gamma,
                        iw_estimator=iw, random_state=0)
    L = np.full(3, 80)
    cfg = {"n_arms": 2, "schedule": schedule, "alpha": 0.5, "gamma": gamma, "iw": iw}
    log_c = np.log([0.05, 0.3, 2.0])
    jx = jax_loglik_numpy(log_c, {"actions": sim.actions, "rewards": sim.rewards,
                                  "lengths": L, "n_used": L - 10}, cfg)
    tt, _ = replay_exp3(torch.tensor(np.exp(log_c))[:, None], torch.tensor(sim.actions),
                        torch.tensor(sim.rewards), torch.tensor(L), 2, schedule=schedule,
                        gamma=gamma, iw=iw, n_used=torch.tensor(L - 10))
    np.testing.assert_allclose(jx, tt[:, 0].numpy(), rtol=1e-10)


def _group(n, T, seed):
    rng = np.random.default_rng(seed)
    c = np.exp(np.log(0.3) + 0.3 * rng.normal(size=n))
    return simulate_exp3(n, T, (0.2, 0.8), learning_rate=c, gamma=0.05, random_state=seed), c


def _check_nuts(est, truth_mu):
    from probest.viz import import_arviz

    az = import_arviz()
    idata = est.to_arviz()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LOO's Pareto-k warning on tiny data is not ours
        rhat = az.rhat(idata, var_names=["mu", "tau"])
        loo = az.loo(idata)
    lo, hi = np.percentile(est.posterior_["mu"], [2.5, 97.5])
    return float(max(rhat["mu"], rhat["tau"])), lo <= truth_mu <= hi, loo


@needs_jax
@pytest.mark.slow  # JIT compile + 80 draws: ~15 s idle, over a minute on a loaded machine
def test_numpyro_nuts_smoke_and_arviz_groups():
    sim, _ = _group(3, 60, 0)
    est = BayesianExp3(gamma=0.05, num_warmup=20, num_samples=20, num_chains=2,
                       max_tree_depth=4, random_state=0).fit(sim.actions, sim.rewards)
    assert est.posterior_["log_c"].shape == (2, 20, 3) and est.diverging_.shape == (2, 20)
    idata = est.to_arviz()
    assert idata.log_likelihood["choices"].dims == ("chain", "draw", "subject")
    _, _, loo = _check_nuts(est, np.log(0.3))
    assert np.isfinite(loo.elpd_loo)


@needs_jax
@pytest.mark.slow
def test_hierarchical_nuts_small():
    sim, _ = _group(5, 150, 0)
    est = BayesianExp3(gamma=0.05, num_warmup=300, num_samples=300, num_chains=2,
                       random_state=0).fit(sim.actions, sim.rewards)
    rhat, covers, _ = _check_nuts(est, np.log(0.3))
    assert rhat < 1.05 and covers


@needs_jax
@pytest.mark.slow
def test_hierarchical_nuts_20_subjects():
    sim, _ = _group(20, 300, 1)
    est = BayesianExp3(gamma=0.05, num_warmup=1000, num_samples=1000, num_chains=4,
                       random_state=0).fit(sim.actions, sim.rewards)
    rhat, covers, _ = _check_nuts(est, np.log(0.3))
    assert rhat < 1.01 and covers


def test_pyro_backend_runs_the_same_model():
    sim, _ = _group(2, 30, 2)
    est = BayesianExp3(gamma=0.05, backend="pyro", hierarchical=False, num_warmup=5,
                       num_samples=6, num_chains=1, max_tree_depth=3,
                       random_state=0).fit(sim.actions, sim.rewards)
    assert set(est.posterior_) == {"log_c"} and est.posterior_["log_c"].shape == (1, 6, 2)
    # the stored per-subject log-likelihood is the torch replay at each draw
    c = np.exp(est.posterior_["log_c"][0, 0])
    ll, _ = replay_exp3(torch.tensor(c)[:, None], torch.tensor(sim.actions),
                        torch.tensor(sim.rewards), torch.full((2,), 30), 2, gamma=0.05)
    np.testing.assert_allclose(est.log_likelihood_[0, 0], ll[:, 0].numpy())
