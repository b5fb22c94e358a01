"""probest tour: the mixture family in a few measured steps."""

from __future__ import annotations

import pathlib
import time
import warnings

import numpy as np

from probest._tour_kit import save_tour_figure, timed_fit, tour_session, tour_subplots
from probest._tour_types import TourResult


def run(quick: bool, out_dir: pathlib.Path) -> list[TourResult]:
    with tour_session(out_dir) as out:
        return _rows(quick, out)


def _rows(quick: bool, out_dir: pathlib.Path) -> list[TourResult]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.mixture import GaussianMixture as SkGMM

    from probest.datasets import make_federated_gmm
    from probest.metrics import match_components, roc_auc
    from probest.mixture import FederatedGaussianMixture, FedGMMClassifier, GaussianMixture

    res: list[TourResult] = []
    n = 300 if quick else 2000
    fed = make_federated_gmm(10, n, 3, 4, concentration=0.7, random_state=0)
    X = np.concatenate(fed.X)

    # 1. drop-in GaussianMixture vs scikit-learn (same data, best of 3 starts each)
    ours, t_ours = timed_fit(GaussianMixture(3, n_init=3, random_state=0, device="cpu"), X)
    sk = SkGMM(3, n_init=3, random_state=0).fit(X)
    res.append(TourResult("mixture", "GaussianMixture", f"federated GMM toy, pooled n={len(X)}",
                          "mean log-likelihood", ours.score(X), "sklearn GaussianMixture",
                          sk.score(X), t_ours, better="higher", tie_tol=1e-3,
                          note="drop-in: the same EM on the same data (a tie within 1e-3 is "
                               "the claim)"))

    # 2. federated EM with personalised weights; new client; novelty detection
    t0 = time.perf_counter()
    fgmm = FederatedGaussianMixture(3, random_state=0, tol=1e-6, device="cpu").fit(fed.X)
    perm = match_components(fed.means, fgmm.means_)
    w_err = float(np.abs(fgmm.client_weights_[:, perm] - fed.weights).max())
    rng = np.random.default_rng(1)
    z = rng.choice(3, size=300, p=[0.6, 0.3, 0.1])
    chol = np.linalg.cholesky(fed.covariances)
    Xn = fed.means[z] + np.einsum("nij,nj->ni", chol[z], rng.normal(size=(300, 4)))
    fgmm.adapt(Xn, client="new")
    lo, hi = X.min(0), X.max(0)
    outl = rng.uniform(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), size=(300, 4))
    s_in, s_out = fgmm.novelty_score(Xn, client="new"), fgmm.novelty_score(outl, client="new")
    auc = roc_auc(-s_in, -s_out)
    t_fed = time.perf_counter() - t0
    pooled = GaussianMixture(3, random_state=0, device="cpu").fit(X)
    auc_pooled = roc_auc(pooled.score_samples(Xn), pooled.score_samples(outl))
    plots = _plots(out_dir, fed.weights, fgmm.client_weights_[:10, perm], s_in, s_out)
    res.append(TourResult("mixture", "FederatedGaussianMixture", "10 clients, K=3, d=4",
                          "max per-client weight error", w_err, "", None, t_fed, plots[:1],
                          note=f"{fgmm.n_iter_} EM rounds; no peer fits per-client weights",
                          better="lower"))
    res.append(TourResult("mixture", "FederatedGaussianMixture.adapt + novelty_score",
                          "new client (300 pts) vs uniform-box outliers", "AUROC", auc,
                          "pooled GaussianMixture", auc_pooled, t_fed, plots[1:], better="higher"))

    # 3. FedGMMClassifier vs one global classifier (FedAvg's fixed point)
    m = 150 if quick else 400
    b = make_federated_gmm(10, 2 * m, 3, 4, labels=True, label_noise=0.05, concentration=0.5,
                           random_state=0)
    Xtr, ytr = [x[:m] for x in b.X], [y[:m] for y in b.y]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short quick-mode budget may not converge
        clf, t_clf = timed_fit(FedGMMClassifier(3, 3, random_state=0, device="cpu",
                                                max_iter=5 if quick else 30, tol=1e-3), Xtr, ytr)
    acc = np.mean([(clf.predict(x[m:], client=c) == y[m:]).mean()
                   for c, (x, y) in enumerate(zip(b.X, b.y, strict=True))])
    g = LogisticRegression().fit(np.concatenate(Xtr), np.concatenate(ytr))
    acc_g = np.mean([(g.predict(x[m:]) == y[m:]).mean() for x, y in zip(b.X, b.y, strict=True)])
    res.append(TourResult("mixture", "FedGMMClassifier", "covariate-shift federation, 10 clients",
                          "personalised accuracy", float(acc), "global LogisticRegression",
                          float(acc_g), t_clf, better="higher"))
    return res


def _plots(out_dir, true_w, est_w, s_in, s_out) -> list[str]:
    fig, axes = tour_subplots(2, sharey=True)
    for ax, W, title in ((axes[0], true_w, "true"), (axes[1], est_w, "federated EM")):
        bottom = np.zeros(W.shape[0])
        for k in range(W.shape[1]):
            ax.bar(np.arange(W.shape[0]), W[:, k], bottom=bottom, label=f"component {k}")
            bottom += W[:, k]
        ax.set_title(f"per-client weights, {title}")
        ax.set_xlabel("client")
    axes[0].legend(fontsize=7)
    p1 = save_tour_figure(fig, out_dir / "mixture_client_weights.png")
    fig, (ax, roc) = tour_subplots(2)
    bins = np.linspace(min(s_in.min(), s_out.min()), max(s_in.max(), s_out.max()), 40)
    ax.hist(s_in, bins=bins, alpha=0.6, label="new client's data")
    ax.hist(s_out, bins=bins, alpha=0.6, label="uniform-box outliers")
    ax.set_xlabel(r"novelty score $-\log p_c(x)$")
    ax.legend()
    # ROC of "outlier when the score exceeds t": the curve under the row's AUROC
    t = np.sort(np.concatenate([s_in, s_out]))[::-1]
    roc.plot([0, *(s_in[:, None] >= t).mean(0)], [0, *(s_out[:, None] >= t).mean(0)])
    roc.plot([0, 1], [0, 1], "k:", lw=0.8)
    roc.set(xlabel="false positive rate (new client's data)",
            ylabel="true positive rate (outliers)", title="novelty ROC")
    p2 = save_tour_figure(fig, out_dir / "mixture_novelty_hist.png")
    return [p1, p2]
