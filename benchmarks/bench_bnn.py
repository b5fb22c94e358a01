"""Partial Bayesian MLPs: OHSMC vs a deterministic MLP, the Pyro SVI pBNN and a deep ensemble.

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_bnn.py [--quick] [--seeds 3]

Protocol (spec): per seed a 60/20/20 split (train / validation for early stopping / test),
X standardised inside the estimators, y standardised for regression (NLPD and RMSE are in
standardised units), architecture ``d-50-20-[20-5]-5-out`` (the 20-to-5 layer stochastic),
GELU, Adam lr 1e-2, batch 32, at most 200 epochs with early stopping (patience 20) on the
validation NLPD.  Methods, all in this process on the same splits:

* ``ohsmc`` — ``PartialBayesianMLP*(sampler="ohsmc")``, 1000 particles (100 with --quick),
  random-walk variance 1e-2 (the spec's defaults), stratified resampling every step;
* ``mlp`` — ``sampler="map"``: the same net, deterministic;
* ``svi`` — ``sampler="svi"``: Pyro PyroSample on the same block + AutoNormal + Trace_ELBO;
* ``ens5`` — a deep ensemble: 5 ``sampler="map"`` nets (seeds 0-4), predictive = the
  equal-weight mixture.

laplace-torch (last-layer Laplace) is not in the table: it did not install from the package
index available here.  Every metric is computed on the BMA (mixture) predictive: NLPD,
RMSE/accuracy, ECE with 15 bins (classification: top-label; regression: the mean absolute
gap between nominal and empirical PIT quantiles at 15 levels), fit time.  The bimodal toy is
scored by the total-variation distance of the posterior over theta to the exact grid
posterior (80 bins on [-4, 4]).  ``--cost`` prints the per-step cost of OHSMC (S=100) over a
plain SGD step of the same network.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from scipy.special import logsumexp
from scipy.stats import norm

torch.set_num_threads(1)


def load(name):
    from sklearn import datasets

    if name == "diabetes":
        return (*datasets.load_diabetes(return_X_y=True), "reg")
    if name == "breast_cancer":
        return (*datasets.load_breast_cancer(return_X_y=True), "clf")
    if name == "digits":
        return (*datasets.load_digits(return_X_y=True), "clf")
    if name == "xsin":
        from probest.datasets import make_xsin_regression

        return (*make_xsin_regression(500, random_state=0), "reg")
    if name == "fair":  # statsmodels' "fair" (affairs) data: 6366 rows, 8 features
        import statsmodels.api as sm

        d = sm.datasets.fair.load_pandas().data.sample(2000, random_state=0)
        return d.drop(columns="affairs").to_numpy(float), d["affairs"].to_numpy(float), "reg"
    raise ValueError(name)


def make(kind, sampler, seed, quick):
    from probest.bnn import PartialBayesianMLPClassifier, PartialBayesianMLPRegressor

    cls = PartialBayesianMLPRegressor if kind == "reg" else PartialBayesianMLPClassifier
    return cls(sampler=sampler, n_particles=100 if quick or sampler == "svi" else 1000,
               max_epochs=40 if quick else 200, validation_fraction=0.25, device="cpu",
               random_state=seed)


def reg_metrics(mu, sd_noise, w, y):
    """NLPD, RMSE and PIT-ECE of the mixture sum_s w_s N(mu[s], sd_noise[s]^2)."""
    ll = norm.logpdf(y[None], mu, sd_noise[:, None]) + np.log(w)[:, None]
    nlpd = -float(np.mean(logsumexp(ll, 0)))
    mean = (w[:, None] * mu).sum(0)
    pit = (w[:, None] * norm.cdf((y[None] - mu) / sd_noise[:, None])).sum(0)
    levels = (np.arange(15) + 0.5) / 15
    ece = float(np.mean(np.abs((pit[None] <= levels[:, None]).mean(1) - levels)))
    return nlpd, float(np.sqrt(np.mean((mean - y) ** 2))), ece


def clf_metrics(p, y):
    from probest.metrics import expected_calibration_error

    nlpd = -float(np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-300, None))))
    return nlpd, float(np.mean(p.argmax(1) == y)), float(expected_calibration_error(y, p, 15))


def components(est, X):
    """(means (S, n), noise sd (S,), weights (S,)) of a fitted regressor in y's units."""
    fk = est._engine()
    out = fk.predict_outputs(est._inputs(X))[..., 0].double().numpy()
    w = np.exp(est.log_weights_ - est.log_weights_.max())
    return out * est.y_scale_ + est.y_mean_, np.full(len(w), est.noise_), w / w.sum()


def run_dataset(name, seeds, quick, methods):
    from sklearn.model_selection import train_test_split

    X, y, kind = load(name)
    rows = {m: [] for m in methods}
    for seed in seeds:
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=seed,
                                              stratify=y if kind == "clf" else None)
        if kind == "reg":  # standardised units, as in the paper's tables
            m, s = ytr.mean(), ytr.std()
            ytr, yte = (ytr - m) / s, (yte - m) / s
        else:
            classes = np.unique(ytr)
            yte_i = np.searchsorted(classes, yte)
        for meth in methods:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if meth == "ens5":
                    ests = [make(kind, "map", 100 * seed + k, quick).fit(Xtr, ytr) for k in range(5)]
                else:
                    ests = [make(kind, {"mlp": "map"}.get(meth, meth), seed, quick).fit(Xtr, ytr)]
            fit_t = time.perf_counter() - t0
            if kind == "reg":
                comps = [components(e, Xte) for e in ests]
                mu = np.concatenate([c[0] for c in comps])
                sd = np.concatenate([c[1] for c in comps])
                w = np.concatenate([c[2] for c in comps]) / len(comps)
                rows[meth].append((*reg_metrics(mu, sd, w, yte), fit_t))
            else:
                p = np.mean([e.predict_proba(Xte) for e in ests], 0)
                rows[meth].append((*clf_metrics(p, yte_i), fit_t))
    return kind, rows


def toy_rows(seeds, quick):
    from probest.bnn._toy import fit_bimodal_smc, fit_bimodal_svi, tv_to_grid
    from probest.datasets import make_bimodal_toy

    out = {"ohsmc": [], "svi": [], "mlp": []}
    for seed in seeds:
        y, _ = make_bimodal_toy(200, theta=1.5, random_state=seed)
        t0 = time.perf_counter()
        p, lw, _ = fit_bimodal_smc(y, n_particles=300 if quick else 1000, seed=seed)
        out["ohsmc"].append((tv_to_grid(p, lw, y)[0], time.perf_counter() - t0))
        t0 = time.perf_counter()
        d = fit_bimodal_svi(y, n_steps=300, lr=0.1, seed=seed)
        out["svi"].append((tv_to_grid(d, None, y)[0], time.perf_counter() - t0))
        # MAP: a point mass at the mode found from theta = 0.5 (one of the two)
        from probest.datasets import bimodal_grid_posterior

        grid, dens = bimodal_grid_posterior(y)
        mode = grid[grid > 0][np.argmax(dens[grid > 0])]
        out["mlp"].append((tv_to_grid(np.array([mode]), None, y)[0], 0.0))
    return out


def per_step_cost(n_particles=100, reps=3):
    """Seconds per optimisation step: OHSMC (S particles) / plain SGD (same net, diabetes).
    The one-off final SMC after training is not a step: it is switched off here (its cost
    is in the fit times of the table)."""
    from probest.bnn import PartialBayesianMLPRegressor

    X, y, _ = load("diabetes")
    times = {}
    for sampler in ("map", "ohsmc"):
        best = np.inf
        for _ in range(reps):
            est = PartialBayesianMLPRegressor(sampler=sampler, n_particles=n_particles,
                                              max_epochs=30, early_stopping=False, device="cpu",
                                              final_smc=False, random_state=0)
            t0 = time.perf_counter()
            est.fit(X, y)
            best = min(best, (time.perf_counter() - t0) / est.n_iter_)
        times[sampler] = best
    return times["ohsmc"] / times["map"], times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--data", default="diabetes,xsin,fair,breast_cancer,digits,toy")
    ap.add_argument("--cost", action="store_true")
    args = ap.parse_args()
    seeds = list(range(1 if args.quick else args.seeds))
    methods = ["ohsmc", "mlp", "svi", "ens5"]
    print(f"seeds={seeds} quick={args.quick} torch threads={torch.get_num_threads()}")
    print("| data | method | NLPD | RMSE / acc | ECE | fit s |")
    print("|---|---|---|---|---|---|")
    for name in args.data.split(","):
        if name == "toy":
            for meth, r in toy_rows(seeds, args.quick).items():
                a = np.array(r)
                print(f"| bimodal toy (TV to grid) | {meth} | TV {a[:, 0].mean():.3f} ± "
                      f"{a[:, 0].std():.3f} | | | {a[:, 1].mean():.1f} |", flush=True)
            continue
        kind, rows = run_dataset(name, seeds, args.quick, methods)
        for meth, r in rows.items():
            a = np.array(r)
            print(f"| {name} | {meth} | {a[:, 0].mean():.3f} ± {a[:, 0].std():.3f} | "
                  f"{a[:, 1].mean():.3f} | {a[:, 2].mean():.3f} | {a[:, 3].mean():.1f} |",
                  flush=True)
    if args.cost:
        ratio, t = per_step_cost()
        print(f"per-step cost, diabetes net, S=100: OHSMC {1e3 * t['ohsmc']:.2f} ms / SGD "
              f"{1e3 * t['map']:.2f} ms = {ratio:.2f}x")


if __name__ == "__main__":
    main()
