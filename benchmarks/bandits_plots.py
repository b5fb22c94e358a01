"""The paper's two findings as a figure (docs/img/bandits_rates.png): median |log(c_hat/c)|
of 100 simulated learners vs T, constant rate (c = 0.1, gamma = 0, truncated MLE) and horizon
schedule (eta = c T^-1/2, c = 1, gamma = 0.05).

    OMP_NUM_THREADS=1 python benchmarks/bandits_plots.py [--quick]   # full: ~12 s on 1 core
"""

from __future__ import annotations

import argparse
import pathlib
import warnings

import numpy as np


def study(Ts, n):
    from probest.bandits import Exp3LearningRateMLE, IdentifiabilityWarning, simulate_exp3

    out = {"constant": [], "horizon": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IdentifiabilityWarning)
        for T in Ts:
            s = simulate_exp3(n, T, learning_rate=0.1, random_state=T)
            e = Exp3LearningRateMLE(ci=None, random_state=0).fit(s.actions, s.rewards)
            out["constant"].append(float(np.median(np.abs(np.log(e.learning_rate_ / 0.1)))))
            s = simulate_exp3(n, T, learning_rate=1.0, schedule="horizon", gamma=0.05,
                              random_state=T)
            e = Exp3LearningRateMLE(schedule="horizon", gamma=0.05, ci=None,
                                    random_state=0).fit(s.actions, s.rewards)
            out["horizon"].append(float(np.median(np.abs(np.log(e.learning_rate_)))))
    return out


def plot(Ts, errs, path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.loglog(Ts, errs["constant"], "o-", label="constant eta = 0.1 (truncated MLE)")
    ax.loglog(Ts, errs["horizon"], "s-", label="horizon eta = T^-1/2, gamma = 0.05")
    ref = errs["horizon"][0] * (np.asarray(Ts) / Ts[0]) ** -0.5
    ax.loglog(Ts, ref, "k:", label="T^-1/2")
    ax.set_xlabel("T (trials)")
    ax.set_ylabel("median |log(c_hat / c)|, 100 subjects")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    Ts = [100, 300, 1000] if args.quick else [100, 300, 1000, 3000, 10_000]
    errs = study(Ts, 30 if args.quick else 100)
    print(Ts, errs)
    plot(Ts, errs, pathlib.Path(__file__).resolve().parents[1] / "docs/img/bandits_rates.png")


if __name__ == "__main__":
    main()
