"""Benchmark: the Exp3 replay log-likelihood over candidates x subjects, probest (batched torch)
vs a plain numpy replay loop (per subject, vectorised over candidates), same data, one process.

    OMP_NUM_THREADS=1 python benchmarks/bench_bandits.py            # 100 subjects x T=10^4 x 100
    OMP_NUM_THREADS=1 python benchmarks/bench_bandits.py --quick    # 10 subjects x T=2000
    ... --arms 4  # K = 4 arms (the general-K path; K = 2 tracks one difference per candidate)
    ... --nuts    # also time a hierarchical NumPyro NUTS fit of 20 subjects ([jax] extra)

The numpy loop is timed on ``--peer-subjects`` subjects (default: all) and scaled linearly to
all subjects when fewer (its cost is exactly linear in subjects); both results agree to 1e-9.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def numpy_replay(c, actions, rewards, K, gamma=0.0):
    """Plain numpy Exp3 replay (loss-based, constant rate) of one subject: (C,) log-lik."""
    S = np.zeros((len(c), K))
    total = np.zeros(len(c))
    for a, x in zip(actions, rewards):
        z = c[:, None] * S
        z = z - z.max(1, keepdims=True)
        logq = z - np.log(np.exp(z).sum(1, keepdims=True))
        logp = np.logaddexp(logq + np.log1p(-gamma), np.log(gamma / K)) if gamma > 0 else logq
        lp = logp[:, a]
        total += lp
        w = np.exp(-np.maximum(lp, -345.0))
        S += 1.0
        S[:, a] -= (1.0 - x) * w
    return total


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--subjects", type=int, default=100)
    ap.add_argument("--T", type=int, default=10_000)
    ap.add_argument("--candidates", type=int, default=100)
    ap.add_argument("--arms", type=int, default=2)
    ap.add_argument("--peer-subjects", type=int, default=None)
    ap.add_argument("--nuts", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.subjects, args.T = 10, 2000
    torch.set_num_threads(1)
    from probest.bandits import simulate_exp3
    from probest.bandits._replay import replay_exp3

    S, T, C, K = args.subjects, args.T, args.candidates, args.arms
    sim = simulate_exp3(S, T, np.linspace(0.3, 0.7, K), learning_rate=0.1, gamma=0.05,
                        random_state=0)
    grid = np.geomspace(1e-3, 1e2, C)
    t0 = time.perf_counter()
    ll, _ = replay_exp3(torch.tensor(np.broadcast_to(grid, (S, C)).copy()),
                        torch.tensor(sim.actions), torch.tensor(sim.rewards),
                        torch.full((S,), T), K, gamma=0.05)
    t_probest = time.perf_counter() - t0
    n_peer = min(args.peer_subjects or S, S)
    t0 = time.perf_counter()
    ref = np.stack([numpy_replay(grid, sim.actions[s], sim.rewards[s], K, 0.05)
                    for s in range(n_peer)])
    t_numpy = (time.perf_counter() - t0) * S / n_peer
    err = float(np.abs(ref - ll[:n_peer].numpy()).max() / np.abs(ref).max())
    print(f"| {S} subjects x T={T} x {C} candidates, K={K} | probest {t_probest:.1f} s | numpy loop "
          f"{t_numpy:.1f} s{'' if n_peer == S else f' (timed on {n_peer}, scaled)'} | "
          f"ratio {t_numpy / t_probest:.1f}x | max rel. diff {err:.1e} |")
    if args.nuts:
        from probest.bandits import BayesianExp3

        rng = np.random.default_rng(1)
        c = np.exp(np.log(0.3) + 0.3 * rng.normal(size=20))
        s2 = simulate_exp3(20, 300, (0.2, 0.8), learning_rate=c, gamma=0.05, random_state=1)
        t0 = time.perf_counter()
        est = BayesianExp3(gamma=0.05, num_warmup=500, num_samples=500, num_chains=2,
                           random_state=0).fit(s2.actions, s2.rewards)
        print(f"| NumPyro NUTS, hierarchical, 20 subjects x T=300, 2x(500+500) | "
              f"{time.perf_counter() - t0:.1f} s | divergences {int(est.diverging_.sum())} |")


if __name__ == "__main__":
    main()
