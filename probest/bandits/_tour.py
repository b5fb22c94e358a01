"""Tour rows for probest.bandits: the Exp3 learning-rate MLE against a plain numpy replay of
the same likelihood (speed), and its interval coverage on simulated learners."""

from __future__ import annotations

import pathlib
import time
import warnings

import numpy as np

from probest._tour_kit import explain_loss, save_tour_figure, timed_fit, tour_session, tour_subplots
from probest._tour_types import TourResult


def _numpy_loglik(c, actions, rewards, gamma, K=2):
    S = np.zeros((len(c), K))
    total = np.zeros(len(c))
    for a, x in zip(actions, rewards):
        z = c[:, None] * S
        z = z - z.max(1, keepdims=True)
        logq = z - np.log(np.exp(z).sum(1, keepdims=True))
        lp = (np.logaddexp(logq + np.log1p(-gamma), np.log(gamma / K)) if gamma > 0
              else logq)[:, a]
        total += lp
        S += 1.0
        S[:, a] -= (1.0 - x) * np.exp(-np.maximum(lp, -345.0))
    return total


def run(quick: bool, out_dir: pathlib.Path) -> list[TourResult]:
    import torch

    from probest.bandits import Exp3LearningRateMLE, IdentifiabilityWarning, simulate_exp3
    from probest.bandits._replay import replay_exp3

    with tour_session(out_dir) as out:
        n, T = (20, 200) if quick else (100, 1000)
        sim = simulate_exp3(n, T, (0.3, 0.7), learning_rate=0.1, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IdentifiabilityWarning)
            est, secs = timed_fit(Exp3LearningRateMLE(random_state=0),
                                  sim.actions, sim.rewards)
        ci = est.learning_rate_ci_
        cover = float(np.mean((ci[:, 0] <= 0.1) & (0.1 <= ci[:, 1])))
        grid = np.geomspace(1e-3, 1e2, 100)
        t0 = time.perf_counter()
        replay_exp3(torch.tensor(np.broadcast_to(grid, (n, 100)).copy()),
                    torch.tensor(sim.actions), torch.tensor(sim.rewards),
                    torch.full((n,), T), 2)
        t_torch = time.perf_counter() - t0
        t0 = time.perf_counter()
        for s in range(n):
            _numpy_loglik(grid, sim.actions[s], sim.rewards[s], 0.0)
        t_numpy = time.perf_counter() - t0
        fig, axes = tour_subplots(2)
        est.plot_profile(0, ax=axes[0])
        axes[1].errorbar(np.arange(n), est.learning_rate_, yerr=np.abs(ci.T - est.learning_rate_),
                         fmt="o", ms=3)
        axes[1].axhline(0.1, color="k", ls=":")
        axes[1].set_yscale("log")
        axes[1].set_title(f"c_hat and 95% profile intervals (cover {cover:.0%})")
        plot = save_tour_figure(fig, out / "bandits_exp3_profile.png")
        rows = [
            TourResult("bandits", "Exp3LearningRateMLE replay (batched torch)",
                       f"{n} simulated learners x T={T}", "seconds, 100-candidate grid",
                       t_torch, "plain numpy replay loop", t_numpy, t_torch, [plot],
                       "same likelihood, same data, one process", better="lower"),
            TourResult("bandits", "Exp3LearningRateMLE (profile intervals)",
                       f"{n} simulated learners x T={T}, c=0.1", "95% interval coverage",
                       cover, "", None, secs, [plot],
                       f"median |log(c_hat/c)| = "
                       f"{float(np.median(np.abs(np.log(est.learning_rate_ / 0.1)))):.3f}"),
        ]
        explain_loss(rows[0], f"with only {n} subjects torch's per-step overhead (T={T} "
                              "sequential steps) is not amortised; the batch gains with more "
                              "subjects x candidates (benchmarks/RESULTS.md)")
        return rows
