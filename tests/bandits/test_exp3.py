"""Exp3 learning-rate MLE: the spec's acceptance checks at the spec's sizes (100 subjects,
T up to 10^4: ~12 s in all with the likelihood-only replay), intervals, diagnostics and
outputs.

Tolerances: medians of |log(c_hat / c)| over 100 simulated subjects vary by about 15%
between seeds (measured over seeds 0-4 at T = 100 and 1000), coverage of 100 subjects has a
binomial s.d. of about 2.2 points; the bounds below are the spec's or leave >= 2 s.d.
"""

import warnings

import numpy as np
import pytest
import torch

from probest.bandits import Exp3LearningRateMLE, IdentifiabilityWarning, simulate_exp3
from probest.bandits._replay import replay_exp3


def _fit(sim, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IdentifiabilityWarning)
        return Exp3LearningRateMLE(random_state=0, **kw).fit(sim.actions, sim.rewards)


def _err(est, c):
    return float(np.median(np.abs(np.log(est.learning_rate_ / c))))


def _coverage(est, c):
    ci = est.learning_rate_ci_
    return float(((ci[:, 0] <= c) & (c <= ci[:, 1])).mean())


# ------------------------------------------------------------------ acceptance 1
@pytest.mark.parametrize(("schedule", "gamma", "iw", "K"), [
    ("constant", 0.0, "loss", 2), ("horizon", 0.05, "loss", 4), ("anytime", 0.1, "gain", 3)])
def test_replay_at_truth_reproduces_simulated_probabilities(schedule, gamma, iw, K):
    mu = np.linspace(0.2, 0.8, K)
    c = 0.1 if schedule == "constant" else 1.0
    sim = simulate_exp3(5, 300, mu, learning_rate=c, schedule=schedule, gamma=gamma,
                        iw_estimator=iw, random_state=3)
    est = Exp3LearningRateMLE(schedule=schedule, gamma=gamma, iw_estimator=iw)
    est.n_arms_, est.subjects_, est.learning_rate_ = K, np.arange(5), np.full(5, c)
    p = est.predict_proba(sim.actions, sim.rewards)
    assert np.abs(p - sim.probs).max() < 1e-12
    # finite log-likelihood for every c in [1e-3, 1e2], the spec's range, incl. both ends
    grid = torch.logspace(-3, 2, 41, dtype=torch.float64).expand(5, 41).contiguous()
    ll, _ = replay_exp3(grid, torch.tensor(sim.actions), torch.tensor(sim.rewards),
                        torch.full((5,), 300), K, schedule=schedule, gamma=gamma, iw=iw)
    assert torch.isfinite(ll).all()


@pytest.mark.parametrize("K", [2, 3])
@pytest.mark.parametrize(("schedule", "gamma", "iw"), [
    ("constant", 0.0, "loss"), ("horizon", 0.05, "gain"), ("anytime", 0.1, "loss"),
    ("anytime", 0.0, "gain")])
def test_likelihood_only_replay_equals_the_recording_replay(schedule, gamma, iw, K):
    """The grid search's fast likelihood (no +1, chosen-arm softmax, K = 2 by the difference
    of the two arms) is the recording replay's sum up to rounding, gradients included
    (the Pyro model differentiates it), with ragged lengths and truncation."""
    sim = simulate_exp3(4, 200, np.linspace(0.2, 0.8, K), learning_rate=0.3,
                        schedule=schedule, gamma=gamma, iw_estimator=iw, random_state=1)
    A, R = torch.tensor(sim.actions), torch.tensor(sim.rewards)
    L, used = torch.tensor([200, 150, 200, 90]), torch.tensor([200, 120, 60, 90])
    kw = dict(schedule=schedule, gamma=gamma, iw=iw, n_used=used)
    c = torch.logspace(-2, 1, 7, dtype=torch.float64).expand(4, 7).clone().requires_grad_()
    fast, _ = replay_exp3(c, A, R, L, K, **kw)
    (g_fast,) = torch.autograd.grad(fast.sum(), c)
    full, logp = replay_exp3(c, A, R, L, K, record=True, **kw)
    (g_full,) = torch.autograd.grad(full.sum(), c)
    assert logp.shape == (4, 7, 200, K)
    fast, full = fast.detach().numpy(), full.detach().numpy()
    # where the 1e150 weight cap binds (gamma = 0, rates far too high: a trial below -345
    # nats) the two roundings of a capped, chaotic recursion differ; both stay hopeless
    sane = full > -1e4
    assert sane.sum() >= 10 and (fast[~sane] < -1e4).all()
    np.testing.assert_allclose(fast[sane], full[sane], rtol=1e-10)
    np.testing.assert_allclose(g_fast.numpy()[sane], g_full.numpy()[sane], rtol=1e-8)


# ------------------------------------------------------------------ acceptance 2
@pytest.mark.parametrize(("K", "T"), [(2, 300), (4, 100)])
def test_truncated_profile_intervals_cover(K, T):
    sim = simulate_exp3(100, T, np.linspace(0.3, 0.7, K), learning_rate=0.1, random_state=K)
    est = _fit(sim)
    assert 0.88 <= _coverage(est, 0.1) <= 0.99


@pytest.mark.parametrize("K", [2, 4])
@pytest.mark.parametrize("T", [100, 1000, 10_000])
def test_truncated_profile_intervals_cover_full(K, T):
    sim = simulate_exp3(100, T, np.linspace(0.3, 0.7, K), learning_rate=0.1, random_state=T + K)
    assert 0.88 <= _coverage(_fit(sim), 0.1) <= 0.99


# ------------------------------------------------------------------ acceptance 3
def _constant_errors(Ts, n):
    return [_err(_fit(simulate_exp3(n, T, learning_rate=0.1, random_state=T), ci=None), 0.1)
            for T in Ts]


def test_constant_rate_error_does_not_shrink():
    e3, e4 = _constant_errors((1000, 10_000), 100)  # measured: 0.0144 -> 0.0205
    assert e4 >= 0.7 * e3


# ------------------------------------------------------------------ acceptance 4
def _horizon_errors(Ts, n):
    out = []
    for T in Ts:
        sim = simulate_exp3(n, T, learning_rate=1.0, schedule="horizon", gamma=0.05,
                            random_state=T)
        out.append(_err(_fit(sim, schedule="horizon", gamma=0.05, ci=None), 1.0))
    return out


def test_horizon_schedule_error_shrinks():
    e100, e1000, e10k = _horizon_errors((100, 1000, 10_000), 100)  # 0.037, 0.0062, 0.0032
    assert e10k <= e100 / 4 and e10k <= 0.006


# ------------------------------------------------------------------ acceptance 5
def test_boundary_hits_flagged_warned_and_fewer_with_truncation():
    sim = simulate_exp3(40, 600, learning_rate=0.1, random_state=5)
    with pytest.warns(IdentifiabilityWarning, match="end of the search range"):
        raw = Exp3LearningRateMLE(truncation=None, ci=None, random_state=0).fit(
            sim.actions, sim.rewards)
    trunc = _fit(sim, ci=None)
    assert raw.diagnostics_["hit_bound"].mean() > trunc.diagnostics_["hit_bound"].mean()
    assert raw.diagnostics_["hit_bound"].dtype == bool
    # measured at T=1000, 100 subjects: 38% untruncated vs 1% truncated


def test_flat_profile_flagged():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, (2, 30))
    r = np.full((2, 30), 0.5)  # rewards carry no information about which arm is better
    with pytest.warns(IdentifiabilityWarning):
        est = Exp3LearningRateMLE(ci="wald", random_state=0).fit(a, r)
    assert est.diagnostics_["hit_bound"].any() or est.diagnostics_["flat_profile"].any()


# ------------------------------------------------------------------ intervals and outputs
@pytest.fixture(scope="module")
def small():
    sim = simulate_exp3(3, 200, learning_rate=0.3, gamma=0.05, random_state=0)
    return sim, _fit(sim, gamma=0.05)


def test_interval_kinds_agree_roughly(small):
    sim, prof = small
    wald = _fit(sim, gamma=0.05, ci="wald")
    boot = _fit(sim, gamma=0.05, ci="bootstrap", n_bootstrap=10, grid=(1e-2, 1e1, 30))
    np.testing.assert_allclose(wald.learning_rate_, prof.learning_rate_, rtol=1e-6)
    for est in (prof, wald, boot):
        lo, hi = est.learning_rate_ci_.T
        assert np.all(lo <= prof.learning_rate_ * 1.05) and np.all(hi >= prof.learning_rate_ * 0.95)
        assert np.all(hi / lo < 10)  # informative at T=200


def test_outputs_scores_and_profile(small):
    sim, est = small
    p = est.predict_proba(sim.actions, sim.rewards)
    assert p.shape == (3, 200, 2) and np.allclose(p.sum(-1), 1)
    ll = est.loglik_subjects(sim.actions, sim.rewards)
    np.testing.assert_allclose(ll, est.loglik_)
    assert est.score(sim.actions, sim.rewards) == pytest.approx(ll.sum() / 600)
    np.testing.assert_allclose(est.bic_, np.log(200) - 2 * est.loglik_)
    np.testing.assert_allclose(est.aic_, 2 - 2 * est.loglik_)
    grid, prof = est.loglik_profile(np.array([0.1, est.learning_rate_[0], 3.0]))
    assert prof.shape == (3, 3) and prof[0, 1] >= prof[0].max() - 1e-9
    assert est.plot_profile(0) is not None
    first = est.predict_proba(sim.actions[0], sim.rewards[0])
    np.testing.assert_allclose(first, p[0])
