"""Rescorla–Wagner MLE, parameter recovery and model confusion."""

import numpy as np

from probest.bandits import (
    Exp3LearningRateMLE,
    RescorlaWagnerMLE,
    model_confusion,
    parameter_recovery,
    simulate_rescorla_wagner,
)


def test_rw_replay_is_exact_and_recovers():
    sim = simulate_rescorla_wagner(20, 300, (0.2, 0.8), alpha=0.3, beta=6.0, random_state=0)
    rw = RescorlaWagnerMLE(ci="wald", random_state=0)
    rw.n_arms_, rw.subjects_ = 2, np.arange(20)
    rw.alpha_, rw.beta_ = np.full(20, 0.3), np.full(20, 6.0)
    assert np.abs(rw.predict_proba(sim.actions, sim.rewards) - sim.probs).max() < 1e-12
    res = parameter_recovery(RescorlaWagnerMLE(ci=None), {"alpha": np.linspace(0.15, 0.8, 12),
                                                          "beta": np.geomspace(2, 12, 12)},
                             T=300, random_state=0)
    st = res.stats
    # measured r: alpha 0.8-0.9, beta 0.9 at T=300 (12 subjects; seeds 0-2)
    assert st["alpha"]["r"] > 0.6 and st["beta"]["r"] > 0.6
    assert abs(st["beta"]["bias"]) < 0.3
    assert len(res.plot()) == 2


def test_exp3_recovery_at_fitted_parameters_and_confusion():
    est = Exp3LearningRateMLE(gamma=0.05, ci=None, random_state=0)
    first = parameter_recovery(est, n_subjects=10, T=200, random_state=1)
    assert first.stats["learning_rate"]["r"] > 0.8  # measured 0.97
    assert first.stats["learning_rate"]["rmse"] < 0.3
    sim_true = first.true["learning_rate"]
    from probest.bandits import simulate_exp3

    sim = simulate_exp3(10, 200, learning_rate=sim_true, gamma=0.05, random_state=2)
    est.fit(sim.actions, sim.rewards)
    again = parameter_recovery(est, reward_means="empirical", random_state=3)
    np.testing.assert_allclose(again.true["learning_rate"], est.learning_rate_)
    assert again.hit_bound.dtype == bool
    conf = model_confusion({"exp3": Exp3LearningRateMLE(gamma=0.05, ci=None),
                            "rw": RescorlaWagnerMLE(ci=None)}, n_subjects=10, T=200,
                           random_state=0)
    np.testing.assert_allclose(conf.bic.sum(1), 1.0)
    assert np.trace(conf.bic) / 2 > 0.6  # measured: diagonal 0.8-1.0
    assert conf.plot() is not None
