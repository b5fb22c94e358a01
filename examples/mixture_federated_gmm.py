"""Federated EM with personalised weights, a new client, and novelty detection.

Ten clients share three Gaussian components but mix them differently.  The server never
sees data: it adds the clients' sufficient statistics (exactly pooled EM) and each client
keeps its own weights.  A new client is adapted in closed form and uniform-box outliers are
flagged by their low personalised density.

    python examples/mixture_federated_gmm.py [--quick] [--out DIR]
"""

import argparse
import pathlib

import numpy as np

from probest.datasets import make_federated_gmm
from probest.metrics import match_components, roc_auc
from probest.mixture import FederatedGaussianMixture, GaussianMixture


def main(quick: bool, out: pathlib.Path) -> None:
    n = 300 if quick else 2000
    fed = make_federated_gmm(10, n, 3, 4, concentration=0.7, random_state=0)
    gmm = FederatedGaussianMixture(3, random_state=0, tol=1e-6, device="cpu").fit(fed.X)
    perm = match_components(fed.means, gmm.means_)
    w_err = np.abs(gmm.client_weights_[:, perm] - fed.weights).max()
    print(f"{gmm.n_iter_} federated EM rounds; max per-client weight error {w_err:.3f}")

    pooled = GaussianMixture(3, random_state=0, device="cpu").fit(np.concatenate(fed.X))
    personal = np.mean([gmm.score(x, client=c) for c, x in enumerate(fed.X)])
    print(f"mean log-lik per sample: personalised {personal:.3f} vs one pooled GMM "
          f"{np.mean([pooled.score(x) for x in fed.X]):.3f}")

    # a new client: closed-form EM on its weights only (components untouched)
    rng = np.random.default_rng(1)
    z = rng.choice(3, size=300, p=[0.6, 0.3, 0.1])
    chol = np.linalg.cholesky(fed.covariances)
    X_new = fed.means[z] + np.einsum("nij,nj->ni", chol[z], rng.normal(size=(300, 4)))
    gmm.adapt(X_new, client="new")
    print("new client weights (true order):", np.round(gmm.client_weights_[-1][perm], 3),
          "empirical:", np.round(np.bincount(z, minlength=3) / 300, 3))

    lo, hi = np.concatenate(fed.X).min(0), np.concatenate(fed.X).max(0)
    outliers = rng.uniform(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), size=(300, 4))
    s_in = gmm.novelty_score(X_new, client="new")
    s_out = gmm.novelty_score(outliers, client="new")
    print(f"novelty AUROC (uniform-box outliers): {roc_auc(-s_in, -s_out):.4f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from probest.viz import savefig

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for ax, W, title in ((axes[0], fed.weights, "true"),
                         (axes[1], gmm.client_weights_[:10, perm], "estimated (federated EM)")):
        bottom = np.zeros(10)
        for k in range(3):
            ax.bar(np.arange(10), W[:, k], bottom=bottom, label=f"component {k}")
            bottom += W[:, k]
        ax.set_title(f"per-client weights, {title}")
        ax.set_xlabel("client")
    axes[0].legend(fontsize=7)
    print("wrote", savefig(fig, out / "mixture_client_weights.png"))

    fig, ax = plt.subplots(figsize=(5, 3.2))
    bins = np.linspace(min(s_in.min(), s_out.min()), max(s_in.max(), s_out.max()), 40)
    ax.hist(s_in, bins=bins, alpha=0.6, label="new client's data")
    ax.hist(s_out, bins=bins, alpha=0.6, label="uniform-box outliers")
    ax.set_xlabel(r"novelty score $-\log p_c(x)$")
    ax.legend()
    print("wrote", savefig(fig, out / "mixture_novelty_hist.png"))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny data (smoke test)")
    ap.add_argument("--out", type=pathlib.Path, default=pathlib.Path("mixture_output"))
    a = ap.parse_args()
    main(a.quick, a.out)
