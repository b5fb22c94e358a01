"""Tour rows for probest.gaussian_process (measured numbers only)."""

from __future__ import annotations

import pathlib
import warnings

import numpy as np

from probest._tour_kit import save_tour_figure, timed_fit, tour_session
from probest._tour_types import FIGSIZE, TourResult


def _split(X, y, seed=0):
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=seed)
    sc = StandardScaler().fit(Xtr)
    return sc.transform(Xtr), sc.transform(Xte), ytr, yte


def _nlpd_row(est, X, y, method, data, peer, peer_value, seconds, *, metric="test NLPD",
              **kwargs) -> TourResult:
    """A row scoring ``est`` by its mean negative log predictive density on ``(X, y)``."""
    return TourResult(family="gaussian_process", method=method, data=data, metric=metric,
                      value=float(-est.log_predictive_density(X, y).mean()), peer=peer,
                      peer_value=peer_value, seconds=seconds, better="lower", **kwargs)


def _classification_row(quick: bool, out_dir: pathlib.Path) -> TourResult:
    from sklearn.datasets import load_breast_cancer
    from sklearn.gaussian_process import GaussianProcessClassifier as SkGPC
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern

    from probest.gaussian_process import GaussianProcessClassifier, plot_objective_surface

    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = _split(X, y)
    clf, secs = timed_fit(GaussianProcessClassifier(inference="hybrid", random_state=0), Xtr, ytr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SkGPC(ConstantKernel(1.0) * Matern(1.0, nu=2.5), random_state=0).fit(Xtr, ytr)
    p = sk.predict_proba(Xte)[np.arange(len(yte)), yte]
    n_sub, n_grid = (60, 3) if quick else (200, 10)
    d = np.sqrt(Xtr.shape[1])
    fig = plot_objective_surface(Xtr[:n_sub], ytr[:n_sub], np.geomspace(0.3, 20, n_grid) * d,
                                 np.geomspace(1, 5000, n_grid), figsize=FIGSIZE)
    path = save_tour_figure(fig, out_dir / "gaussian_process_surface.png")
    return _nlpd_row(
        clf, Xte, yte, "GaussianProcessClassifier(inference='hybrid')", "breast_cancer 75/25",
        "sklearn GaussianProcessClassifier (Laplace, logit)", float(-np.log(p).mean()), secs,
        plots=[path],
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
    reg, secs = timed_fit(GaussianProcessRegressor(random_state=0), Xtr, ytr)
    sk = SkGPR(ConstantKernel(1.0) * Matern(1.0, nu=2.5) + WhiteKernel(1.0),
               random_state=0).fit(Xtr, ytr)
    m, s = sk.predict(Xte, return_std=True)
    return _nlpd_row(
        reg, Xte, yte, "GaussianProcessRegressor(likelihood='gaussian')",
        "diabetes 75/25, standardised y", "sklearn GaussianProcessRegressor (Matern52 + White)",
        float(nlpd_gaussian(yte, m, s**2)), secs, tie_tol=1e-3,
        note="exact: every inference mode's objective is the log marginal likelihood, the "
             "peer's too (same model: a tie within 1e-3 is the claim)",
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
    rob, secs = timed_fit(GaussianProcessRegressor(likelihood="student_t", random_state=0), X, y)
    gau = GaussianProcessRegressor(random_state=0).fit(X, y)
    return _nlpd_row(
        rob, Xt, yt, "GaussianProcessRegressor(likelihood='student_t', inference='hybrid')",
        "sin(2x) + 10% gross outliers, n=200", "probest Gaussian-likelihood GPR",
        float(-gau.log_predictive_density(Xt, yt).mean()), secs,
        metric="test NLPD (clean targets)",
    )


def run(quick: bool, out_dir: pathlib.Path) -> list[TourResult]:
    with tour_session(out_dir) as out:
        rows = [_classification_row(quick, out), _regression_row()]
        if not quick:
            rows.append(_student_t_row())
        return rows
