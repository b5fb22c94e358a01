"""Benchmark: the Exp3 replay log-likelihood over candidates x subjects, probest (batched torch)
vs a plain numpy replay loop (per subject, vectorised over candidates), same data, one process.

    OMP_NUM_THREADS=1 python benchmarks/bench_bandits.py            # 100 subjects x T=10^4 x 100
    OMP_NUM_THREADS=1 python benchmarks/bench_bandits.py --quick    # 10 subjects x T=2000
    ... --arms 4  # K = 4 arms (the general-K path; K = 2 tracks one difference per candidate)
    ... --quick --nuts  # hierarchical NumPyro NUTS: 20 subjects (the spec), joint vs collapsed
    ... --real    # real people (hBayesDM's example data): Exp3 vs Rescorla-Wagner per
                  # subject (BIC), hierarchically (LOO), recovery at the fitted parameters

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
    ap.add_argument("--real", action="store_true")
    ap.add_argument("--draws", type=int, default=500, help="--real: NUTS warm-up = draws")
    args = ap.parse_args(argv)
    if args.real:
        torch.set_num_threads(1)
        return real_data(args.draws)
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
        from probest.viz import import_arviz

        # the spec's fit, then the joint-vs-collapsed comparison on a small group
        for method, n, T, draws, chains in (("collapsed", 20, 300, 1000, 4),
                                            ("collapsed", 5, 150, 500, 2),
                                            ("joint", 5, 150, 500, 2)):
            rng = np.random.default_rng(1)
            c = np.exp(np.log(0.3) + 0.3 * rng.normal(size=n))
            s2 = simulate_exp3(n, T, (0.2, 0.8), learning_rate=c, gamma=0.05, random_state=1)
            t0 = time.perf_counter()
            est = BayesianExp3(gamma=0.05, method=method, num_warmup=draws, num_samples=draws,
                               num_chains=chains, random_state=0).fit(s2.actions, s2.rewards)
            dt = time.perf_counter() - t0
            rhat = _rhat(import_arviz(), est.to_arviz(), ("mu", "tau", "log_c"))
            lo, hi = np.percentile(est.posterior_["mu"], [2.5, 97.5])
            print(f"| {method} | {n} x {T} | {chains} x ({draws} + {draws}) | {dt:.1f} s | "
                  f"{rhat:.3f} | {int(est.diverging_.sum())} | [{lo:.2f}, {hi:.2f}] |")
    return None


def _rhat(az, idata, names):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = az.rhat(idata, var_names=list(names))
    return max(float(r[k].max()) for k in names)


def real_data(draws: int) -> None:
    """Exp3 (gamma = 0, full likelihood) and Rescorla-Wagner on hBayesDM's real choices."""
    import warnings

    from probest.bandits import (
        BayesianExp3,
        BayesianRescorlaWagner,
        Exp3LearningRateMLE,
        IdentifiabilityWarning,
        RescorlaWagnerMLE,
        parameter_recovery,
    )
    from probest.datasets import load_choice_data
    from probest.viz import import_arviz

    az = import_arviz()
    print("| data | subjects x trials | BIC Exp3 | BIC RW | RW better (BIC) | "
          "R-hat Exp3 / RW | divergences | elpd_loo Exp3 | elpd_loo RW | d elpd (se) | "
          "recovery r: c / alpha / beta | NUTS s Exp3 / RW |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name in ("bandit2arm", "bandit4arm", "bandit4arm2"):
        df = load_choice_data(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IdentifiabilityWarning)
            e3 = Exp3LearningRateMLE(truncation=None, ci=None, random_state=0).fit(df)
            rw = RescorlaWagnerMLE(ci=None, random_state=0).fit(df)
            rec_e3 = parameter_recovery(e3, reward_means="empirical", random_state=1).stats
            rec_rw = parameter_recovery(rw, reward_means="empirical", random_state=1).stats
        kw = dict(num_warmup=draws, num_samples=draws, num_chains=4, random_state=0)
        t0 = time.perf_counter()
        be3 = BayesianExp3(**kw).fit(df)
        t_e3 = time.perf_counter() - t0
        t0 = time.perf_counter()
        brw = BayesianRescorlaWagner(**kw).fit(df)
        t_rw = time.perf_counter() - t0
        i_e3, i_rw = be3.to_arviz(), brw.to_arviz()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cmp = az.compare({"Exp3": i_e3, "RW": i_rw})
            loo_e3, loo_rw = az.loo(i_e3), az.loo(i_rw)
        r_e3 = _rhat(az, i_e3, ("mu", "tau", "log_c"))
        r_rw = _rhat(az, i_rw, ("mu_alpha", "tau_alpha", "mu_beta", "tau_beta", "alpha", "beta"))
        d, se = float(cmp["elpd_diff"].iloc[1]), float(cmp["dse"].iloc[1])
        T = "/".join(str(t) for t in sorted(set(e3.n_trials_.tolist())))
        print(f"| {name} | {e3.n_subjects_} x {T} | {e3.bic_.sum():.1f} | {rw.bic_.sum():.1f} | "
              f"{np.mean(rw.bic_ < e3.bic_):.0%} | {r_e3:.3f} / {r_rw:.3f} | "
              f"{int(be3.diverging_.sum())} / {int(brw.diverging_.sum())} | "
              f"{loo_e3.elpd_loo:.1f} | {loo_rw.elpd_loo:.1f} | {cmp.index[0]} by {d:.1f} "
              f"({se:.1f}) | {rec_e3['learning_rate']['r']:.2f} / {rec_rw['alpha']['r']:.2f} / "
              f"{rec_rw['beta']['r']:.2f} | {t_e3:.0f} / {t_rw:.0f} |")


if __name__ == "__main__":
    main()
