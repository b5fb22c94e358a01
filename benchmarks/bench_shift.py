"""Covariate shift: MLE vs MWLE on the B1/B2/B3 reference setups, and density-ratio fit times.

Every method sees the same draws (paired); the risk is the *exact* target excess risk of
``probest.datasets.make_covariate_shift``.  Methods: plain MLE, MWLE with the true ratio
(unclipped and clipped at the 0.99 quantile), MWLE with probest's ratio estimators
(logistic on quadratic features, uLSIF, KLIEP), and the ADAPT-style discriminative
weighting (a default sklearn ``LogisticRegression`` domain classifier on raw features,
``w = p/(1-p) * n_S/n_T``, then the sklearn model with ``sample_weight``) recomputed with
plain scikit-learn.

    OMP_NUM_THREADS=1 python benchmarks/bench_shift.py [--quick] [--reps R] [--n N]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from probest.datasets import make_covariate_shift
from probest.shift import DensityRatioEstimator
from probest.shift._study import replicate

METHODS = ["mle", "mwle_true", "mwle_true_clipped", "mwle_logistic", "mwle_ulsif", "mwle_kliep",
           "adapt_discriminative"]
LABELS = {
    "mle": "MLE (probest)",
    "mwle_true": "MWLE, true w",
    "mwle_true_clipped": "MWLE, true w clipped (q=0.99)",
    "mwle_logistic": "MWLE, logistic ratio (quadratic)",
    "mwle_ulsif": "MWLE, uLSIF ratio",
    "mwle_kliep": "MWLE, KLIEP ratio",
    "adapt_discriminative": "ADAPT-style discriminative (sklearn)",
}


def risk_table(n: int, reps: int) -> str:
    setups = ["B1", "B2", "B3"]
    res = {s: replicate(s, n, reps, METHODS, seed=7) for s in setups}
    head = "| method | " + " | ".join(f"{s} risk (x MLE)" for s in setups) + " | median fit s (B1) |"
    lines = [head, "|---|" + "---|" * (len(setups) + 1)]
    for m in METHODS:
        cells = []
        for s in setups:
            r, base = res[s][m], res[s]["mle"].mean()
            se = r.std(ddof=1) / np.sqrt(len(r))
            cells.append(f"{r.mean():.4g} ± {se:.2g} ({r.mean() / base:.3g}x)")
        t = np.median(res["B1"][m + "_time"])
        lines.append(f"| {LABELS[m]} | " + " | ".join(cells) + f" | {t:.3f} |")
    return "\n".join(lines)


def phase_retrieval_table(n: int, reps: int) -> str:
    """Well-specified phase retrieval: exact risk and sign-invariant parameter error."""
    import warnings

    from probest.shift import LowEffectiveSampleSizeWarning, sign_invariant_error
    from probest.shift._study import fit_method

    methods = ["mle", "mwle_true", "mwle_logistic"]
    risk = {m: [] for m in methods}
    err = {m: [] for m in methods}
    for r in range(reps):
        d = make_covariate_shift("phase_retrieval", n, random_state=7 * 100_003 + r)
        for m in methods:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LowEffectiveSampleSizeWarning)
                est = fit_method(m, d, random_state=r)
            risk[m].append(d.target_excess_risk(est))
            err[m].append(sign_invariant_error(est.coef_, d.coef))
    lines = ["| method | risk (x MLE) | sign-invariant error min(norm(b_hat - b), norm(b_hat + b)) |",
             "|---|---|---|"]
    base = np.mean(risk["mle"])
    for m in methods:
        lines.append(f"| {LABELS[m]} | {np.mean(risk[m]):.4g} ({np.mean(risk[m]) / base:.3g}x) | "
                     f"{np.mean(err[m]):.4f} ± {np.std(err[m], ddof=1) / np.sqrt(reps):.2g} |")
    return "\n".join(lines)


def ratio_times(ns: list[int], reps: int) -> str:
    methods = ["logistic", "ulsif", "rulsif", "kliep", "kmm"]
    lines = ["| method | " + " | ".join(f"n={n} (s)" for n in ns) + " |",
             "|---|" + "---|" * len(ns)]
    for m in methods:
        cells = []
        for n in ns:
            if m == "kmm" and n > 1000:
                cells.append("skipped (dense n x n QP)")
                continue
            ts = []
            for r in range(reps):
                d = make_covariate_shift("B1", n, random_state=r)
                t0 = time.perf_counter()
                DensityRatioEstimator(m, random_state=r).fit(d.X_source, d.X_target)
                ts.append(time.perf_counter() - t0)
            cells.append(f"{np.median(ts):.3f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny budget (smoke test)")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--n", type=int, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    reps = args.reps or (3 if args.quick else 40)
    n = args.n or (200 if args.quick else 1000)
    t0 = time.perf_counter()
    print(f"## Target excess risk, n = {n} source (and {n} target) points, {reps} paired draws\n")
    print(risk_table(n, reps))
    print(f"\n## Phase retrieval (well-specified, d=5), n = {n}, {reps} draws\n")
    print(phase_retrieval_table(n, reps))
    ns = [200] if args.quick else [200, 1000, 5000]
    print(f"\n## Density-ratio fit time (B1, d=5; median of {1 if args.quick else 3} fits)\n")
    print(ratio_times(ns, 1 if args.quick else 3))
    print(f"\ntotal {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
