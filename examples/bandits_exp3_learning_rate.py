"""Bandits: fit Exp3 and Rescorla–Wagner learning models to choices, check recovery, compare.

Simulates Exp3 learners, fits the learning rate by MLE (with the truncation rule and profile
intervals), checks parameter recovery, compares Exp3 and Rescorla–Wagner by BIC, and (if
``pip install --no-deps hbayesdm`` was run) fits both to real human 2-arm bandit choices.

    python examples/bandits_exp3_learning_rate.py [--quick]
"""

from __future__ import annotations

import argparse
import warnings


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small data, a few seconds")
    args = ap.parse_args(argv)

    import numpy as np

    from probest.bandits import (
        Exp3LearningRateMLE,
        IdentifiabilityWarning,
        RescorlaWagnerMLE,
        parameter_recovery,
        simulate_exp3,
    )

    n, T = (5, 150) if args.quick else (30, 500)
    sim = simulate_exp3(n, T, (0.3, 0.7), learning_rate=0.1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IdentifiabilityWarning)
        est = Exp3LearningRateMLE(random_state=0).fit(sim.actions, sim.rewards)  # truncated
    cover = np.mean((est.learning_rate_ci_[:, 0] <= 0.1) & (0.1 <= est.learning_rate_ci_[:, 1]))
    print(f"Exp3 MLE: median c_hat {np.median(est.learning_rate_):.3f} (true 0.1), "
          f"95% profile intervals cover the truth for {cover:.0%} of {n} subjects")
    rec = parameter_recovery(Exp3LearningRateMLE(gamma=0.05, ci=None), n_subjects=n, T=T,
                             random_state=1)
    print("recovery:", {k: round(v, 3) for k, v in rec.stats["learning_rate"].items()})
    rw = RescorlaWagnerMLE(ci=None, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IdentifiabilityWarning)
        rw.fit(sim.actions, sim.rewards)
    print(f"BIC (sum): Exp3 {est.bic_.sum():.1f}, Rescorla-Wagner {rw.bic_.sum():.1f}")
    try:
        from probest.datasets import load_choice_data

        df = load_choice_data("bandit2arm")
    except ImportError as exc:
        print(f"real data skipped: {exc}")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IdentifiabilityWarning)
        e3 = Exp3LearningRateMLE(gamma=0.05, ci=None, random_state=0).fit(df)
        r2 = RescorlaWagnerMLE(ci=None, random_state=0).fit(df)
    print(f"hBayesDM bandit2arm ({e3.n_subjects_} people x 100 trials): BIC Exp3 "
          f"{e3.bic_.sum():.1f} vs RW {r2.bic_.sum():.1f}; RW better for "
          f"{np.mean(r2.bic_ < e3.bic_):.0%} of subjects")


if __name__ == "__main__":
    main()
