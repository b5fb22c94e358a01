"""Tour rows for probest.gaussian_process (measured numbers only)."""

from __future__ import annotations

import pathlib
import time
import warnings

import numpy as np

from probest._tour_types import TourResult


def _split(X, y, seed=0):
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed)
    sc = StandardScaler().fit(Xtr)
    return sc.transform(Xtr), sc.transform(Xte), ytr, yte


def _classification_row(quick: bool, out_dir: pathlib.Path) -> TourResult:
    from sklearn.datasets import load_breast_cancer
    from sklearn.gaussian_process import GaussianProcessClassifier as SkGPC
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern

    from probest.gaussian_process import GaussianProcessClassifier, plot_objective_surface

    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = _split(X, y)
    t0 = time.perf_counter()
    clf = GaussianProcessClassifier(inference="hybrid", random_state=0).fit(Xtr, ytr)
    secs = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SkGPC(ConstantKernel(1.0) * Matern(1.0, nu=2.5), random_state=0).fit(Xtr, ytr)
    p = sk.predict_proba(Xte)[np.arange(len(yte)), yte]
    n_sub, n_grid = (60, 3) if quick else (200, 10)
    d = np.sqrt(Xtr.shape[1])
    path = out_dir / "gaussian_process_surface.png"
    plot_objective_surface(Xtr[:n_sub], ytr[:n_sub], np.geomspace(0.3, 20, n_grid) * d,
                           np.geomspace(1, 5000, n_grid), path=path)
    return TourResult(
        family="gaussian_process",
        method="GaussianProcessClassifier(inference='hybrid')",
        data="breast_cancer 75/25",
        metric="test NLPD",
        value=float(-clf.log_predictive_density(Xte, yte).mean()),
        peer="sklearn GaussianProcessClassifier (Laplace, logit)",
        peer_value=float(-np.log(p).mean()),
        seconds=secs,
        plots=[str(path)],
        note=f"CVI sites + EP-energy hyperparameters; stopped by {clf.stopped_by_}; surface "
             f"on {n_sub} points, {n_grid}x{n_grid} grid",
    )


def _regression_row() -> TourResult:
    from sklearn.datasets import load_diabetes
    from sklearn.gaussian_process import GaussianProcessRegressor as SkGPR
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    from probest.gaussian_process import GaussianProcessRegressor
    from probest.metrics import nlpd_gaussian

    X, y = load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = _split(X, y)
    mu, sd = ytr.mean(), ytr.std()
    ytr, yte = (ytr - mu) / sd, (yte - mu) / sd
    t0 = time.perf_counter()
    reg = GaussianProcessRegressor(random_state=0).fit(Xtr, ytr)
    secs = time.perf_counter() - t0
    sk = SkGPR(ConstantKernel(1.0) * Matern(1.0, nu=2.5) + WhiteKernel(1.0),
               random_state=0).fit(Xtr, ytr)
    m, s = sk.predict(Xte, return_std=True)
    return TourResult(
        family="gaussian_process",
        method="GaussianProcessRegressor(likelihood='gaussian')",
        data="diabetes 75/25, standardised y",
        metric="test NLPD",
        value=float(-reg.log_predictive_density(Xte, yte).mean()),
        peer="sklearn GaussianProcessRegressor (Matern52 + White)",
        peer_value=float(nlpd_gaussian(yte, m, s**2)),
        seconds=secs,
        note="exact: every inference mode's objective is the log marginal likelihood",
    )


def _student_t_row() -> TourResult:
    from probest.gaussian_process import GaussianProcessRegressor

    rng = np.random.default_rng(0)
    n = 200
    X = rng.uniform(-3, 3, (n, 1))
    y = np.sin(2 * X[:, 0]) + 0.1 * rng.normal(size=n)
    bad = rng.choice(n, n // 10, replace=False)
    y[bad] += rng.choice([-1, 1], len(bad)) * rng.uniform(3, 6, len(bad))
    Xt = np.linspace(-3, 3, 300)[:, None]
    yt = np.sin(2 * Xt[:, 0]) + 0.1 * rng.normal(size=300)
    t0 = time.perf_counter()
    rob = GaussianProcessRegressor(likelihood="student_t", random_state=0).fit(X, y)
    secs = time.perf_counter() - t0
    gau = GaussianProcessRegressor(random_state=0).fit(X, y)
    return TourResult(
        family="gaussian_process",
        method="GaussianProcessRegressor(likelihood='student_t', inference='hybrid')",
        data="sin(2x) + 10% gross outliers, n=200",
        metric="test NLPD (clean targets)",
        value=float(-rob.log_predictive_density(Xt, yt).mean()),
        peer="probest Gaussian-likelihood GPR",
        peer_value=float(-gau.log_predictive_density(Xt, yt).mean()),
        seconds=secs,
    )


def run(quick: bool, out_dir: pathlib.Path) -> list[TourResult]:
    import torch

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = [_classification_row(quick, out_dir), _regression_row()]
        if not quick:
            rows.append(_student_t_row())
        return rows
    finally:
        torch.set_num_threads(threads)
