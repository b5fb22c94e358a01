"""Tour rows for probest.shift."""

from __future__ import annotations

import pathlib
import time

from probest._tour_types import TourResult


def _glm_row(out_dir: pathlib.Path) -> TourResult:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from probest.metrics import nlpd_classification
    from probest.shift import WeightedLogisticRegression
    from probest.viz import plot_posterior

    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    sc = StandardScaler().fit(Xtr)
    Xtr, Xte = sc.transform(Xtr), sc.transform(Xte)
    t0 = time.perf_counter()
    est = WeightedLogisticRegression(alpha=1.0).fit(Xtr, ytr)
    secs = time.perf_counter() - t0
    peer = LogisticRegression(C=1.0, max_iter=5000).fit(Xtr, ytr)
    idata = est.to_arviz(n_draws=1000, random_state=0)
    plot = plot_posterior(idata, var_names=["intercept"], path=out_dir / "glm_posterior.png")
    return TourResult(
        family="shift",
        method="WeightedLogisticRegression (Laplace posterior)",
        data="breast_cancer 75/25",
        metric="test NLPD",
        value=nlpd_classification(yte, est.predict_proba(Xte)),
        peer="sklearn LogisticRegression(C=1)",
        peer_value=nlpd_classification(yte, peer.predict_proba(Xte)),
        seconds=secs,
        plots=[plot],
        note="same L2-penalised likelihood as the peer",
    )


def run(quick: bool, out_dir: pathlib.Path) -> list[TourResult]:
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [_glm_row(out_dir)]
