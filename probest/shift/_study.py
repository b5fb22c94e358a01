"""Replication studies on the reference setups (used by tests, benchmarks, docs and the tour).

``replicate(setup, n, n_reps, methods)`` draws ``n_reps`` independent problems from
:func:`probest.datasets.make_covariate_shift` and returns the exact target excess risk of
each method on each draw (the same draws for every method, so comparisons are paired).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from probest.datasets import make_covariate_shift

#: method name -> (estimator, density_ratio, clip); "true" uses the exact ratio.
METHODS = {
    "mle": ("mle", "true", None),
    "mwle_true": ("mwle", "true", None),
    "mwle_true_clipped": ("mwle", "true", 0.99),
    "mwle_logistic": ("mwle", "logistic", None),
    "mwle_ulsif": ("mwle", "ulsif", None),
    "mwle_rulsif": ("mwle", "rulsif", None),
    "mwle_kliep": ("mwle", "kliep", None),
    "auto_logistic": ("auto", "logistic", None),
    "adapt_discriminative": (None, None, None),
}

_BASES = {"B1": "linear", "B2": "linear", "B3": "logistic", "phase_retrieval": "phase_retrieval"}


def fit_method(method: str, data, random_state: int = 0):
    """Fit one method on ``data`` (a :class:`~probest.datasets._shift.CovariateShiftData`)."""
    from probest.shift._estimators import CovariateShiftClassifier, CovariateShiftRegressor

    if method == "adapt_discriminative":
        return _adapt_discriminative(data)
    est_name, ratio, clip = METHODS[method]
    cls = CovariateShiftClassifier if data.task == "classification" else CovariateShiftRegressor
    est = cls(_BASES[data.setup], estimator=est_name, density_ratio=ratio, clip=clip,
              random_state=random_state)
    if ratio == "true":
        # the exact ratio, computed in log space and shifted (the scale is irrelevant)
        lw = data.log_density_ratio(data.X_source)
        return est.fit(data.X_source, data.y_source, sample_weight=np.exp(lw - lw.max()))
    return est.fit(data.X_source, data.y_source, X_target=data.X_target)


def _adapt_discriminative(data):
    """ADAPT-style discriminative importance weighting, recomputed with plain sklearn.

    A default ``LogisticRegression`` domain classifier on the raw covariates gives
    ``w = P(T|x) / P(S|x) * n_S / n_T``; the base sklearn model is fitted with it.
    """
    from sklearn.linear_model import LinearRegression, LogisticRegression

    X = np.vstack([data.X_source, data.X_target])
    lab = np.r_[np.zeros(len(data.X_source)), np.ones(len(data.X_target))]
    clf = LogisticRegression().fit(X, lab)
    p = clf.predict_proba(data.X_source)[:, 1]
    w = p / (1 - p) * len(data.X_source) / len(data.X_target)
    if data.task == "classification":
        return LogisticRegression(C=np.inf).fit(data.X_source, data.y_source, sample_weight=w)
    if data.setup == "phase_retrieval":
        from probest.shift._phase import PhaseRetrievalRegression

        return PhaseRetrievalRegression().fit(data.X_source, data.y_source, sample_weight=w)
    return LinearRegression().fit(data.X_source, data.y_source, sample_weight=w)


def replicate(setup: str, n: int, n_reps: int, methods: Sequence[str], seed: int = 0,
              n_target: int | None = None) -> dict[str, np.ndarray]:
    """Exact target excess risks ``{method: (n_reps,) array}`` plus ``"<method>_time"``."""
    import warnings

    out: dict[str, list] = {m: [] for m in methods}
    times: dict[str, list] = {m: [] for m in methods}
    for r in range(n_reps):
        data = make_covariate_shift(setup, n, random_state=seed * 100_003 + r, n_target=n_target)
        for m in methods:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                # heavy-tailed true ratios (B1) can leave a small ESS: that is the point here
                from probest.shift._covariate import LowEffectiveSampleSizeWarning

                warnings.simplefilter("ignore", LowEffectiveSampleSizeWarning)
                est = fit_method(m, data, random_state=r)
            times[m].append(time.perf_counter() - t0)
            out[m].append(data.target_excess_risk(est))
    res = {m: np.asarray(v) for m, v in out.items()}
    res.update({f"{m}_time": np.asarray(v) for m, v in times.items()})
    return res


def risk_curves(ns, reps, methods=("mle", "mwle_true", "mwle_logistic")):
    """``{setup: {n: replicate(...)}}`` for B1 and B2 (paired draws, seed 3)."""
    return {s: {n: replicate(s, n, reps, list(methods), seed=3) for n in ns} for s in ("B1", "B2")}


def plot_risk_vs_n(curves, path, save=None) -> str:
    """Log-log risk-vs-n panels (B1, B2) with standard-error bars; returns the PNG path.

    ``save(fig, path)`` writes the figure (default :func:`probest.viz.savefig`; the tour
    passes its own, which sets the report's figure size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from probest.viz import savefig

    labels = {"mle": "MLE", "mwle_true": "MWLE (true w)", "mwle_logistic": "MWLE (logistic ratio)"}
    titles = {"B1": "B1: well-specified linear, unbounded ratio",
              "B2": "B2: misspecified (Shimodaira), linear model"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (setup, by_n) in zip(axes, curves.items(), strict=True):
        ns = np.array(sorted(by_n))
        for m, lab in labels.items():
            mean = np.array([by_n[n][m].mean() for n in ns])
            se = np.array([by_n[n][m].std(ddof=1) / np.sqrt(len(by_n[n][m])) for n in ns])
            ax.errorbar(ns, mean, yerr=se, marker="o", capsize=3, label=lab)
        if setup == "B1":
            ax.plot(ns, 8.25 / ns, "k--", lw=1, label="Tr(I_T I_S^-1)/n = 8.25/n")
        else:
            ax.plot(ns, 0.4 / ns, "k--", lw=1, label="0.4/n")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("source sample size n")
        ax.set_ylabel("exact target excess risk")
        ax.set_title(titles[setup], fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return (save or savefig)(fig, path)
