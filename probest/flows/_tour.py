"""Tour rows for probest.flows: NSF and OT-CFM on two moons, MADE-DLM and a MAF on digits."""

from __future__ import annotations

import pathlib
import time

import numpy as np

from probest._tour_types import TourResult


def _density_plot(estimators: dict, X: np.ndarray, path: pathlib.Path) -> str:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from probest.viz import savefig

    g = np.linspace(-3, 3, 121)
    G = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    fig, axes = plt.subplots(1, len(estimators) + 1, figsize=(3.2 * (len(estimators) + 1), 3.2))
    axes[0].scatter(X[:, 0], X[:, 1], s=2, alpha=0.4)
    axes[0].set_title("data (two moons)")
    for ax, (name, est) in zip(axes[1:], estimators.items(), strict=True):
        dens = np.exp(est.score_samples(G)).reshape(len(g), len(g))
        ax.imshow(dens, origin="lower", extent=(-3, 3, -3, 3), cmap="magma")
        ax.set_title(name)
    for ax in axes:
        ax.set_xlim(-3, 3)
        ax.set_ylim(-3, 3)
        ax.set_aspect("equal")
    return savefig(fig, path)


def _moons_rows(quick: bool, out_dir: pathlib.Path) -> list[TourResult]:
    from sklearn.mixture import GaussianMixture

    from probest.datasets import make_flow_toy
    from probest.flows import FlowDensityEstimator, FlowMatchingEstimator

    X = make_flow_toy(2000, random_state=0)
    Xte = make_flow_toy(2000, random_state=1)
    peer = GaussianMixture(32, covariance_type="full", random_state=0).fit(X)
    peer_nll = -peer.score(Xte)
    t0 = time.perf_counter()
    nsf = FlowDensityEstimator(flow="nsf", max_iter=200 if quick else 1500, random_state=0,
                               device="cpu").fit(X)
    t_nsf = time.perf_counter() - t0
    t0 = time.perf_counter()
    cfm = FlowMatchingEstimator(coupling="exact_ot", max_iter=200 if quick else 1500,
                                lr=1e-2 if quick else 3e-3,
                                hidden=(64, 64) if quick else (128, 128, 128), random_state=0,
                                device="cpu").fit(X)
    t_cfm = time.perf_counter() - t0
    Xs = Xte[:500] if quick else Xte
    plot = _density_plot({"NSF (MLE)": nsf, "OT-CFM (ODE likelihood)": cfm}, X,
                         out_dir / "flows_moons_density.png")
    steps = "200 steps (quick)" if quick else "1500 steps"
    return [
        TourResult("flows", "FlowDensityEstimator(flow='nsf')", "two moons (noise 0.05, x1.5)",
                   "test NLL (nats)", float(-nsf.score(Xte)), "sklearn GaussianMixture(32, full)",
                   float(peer_nll), t_nsf, [plot], f"{steps}; exact density incl. standardisation"),
        TourResult("flows", "FlowMatchingEstimator(coupling='exact_ot')", "two moons",
                   "test NLL (nats)", float(-cfm.score(Xs)), "sklearn GaussianMixture(32, full)",
                   float(-peer.score(Xs)), t_cfm, [plot],
                   f"{steps}; exact-trace ODE likelihood on {len(Xs)} test points"),
    ]


def _digits_rows(quick: bool) -> list[TourResult]:
    from sklearn.mixture import GaussianMixture

    from probest.flows import AutoregressiveDLMEstimator, FlowDensityEstimator
    from probest.flows._data import digits_split

    Xtr, Xte, Xd = digits_split()
    rng = np.random.default_rng(1)
    gm = GaussianMixture(5, covariance_type="full", reg_covar=1e-2, random_state=0)
    gm_nll = float(-gm.fit(Xtr + rng.uniform(size=Xtr.shape)).score(Xd))
    rows = []
    t0 = time.perf_counter()
    made = AutoregressiveDLMEstimator(hidden=(128, 128), max_iter=100 if quick else 1000,
                                      random_state=0, device="cpu").fit(Xtr)
    rows.append(TourResult(
        "flows", "AutoregressiveDLMEstimator (MADE + discretized logistics)", "digits 80/20",
        "test NLL (nats/image)", float(-made.score(Xte)), "sklearn GaussianMixture(5, full)",
        gm_nll, time.perf_counter() - t0, [],
        "exact discrete NLL vs the GMM's dequantized NLL (a bound on the discrete one)"))
    if not quick:
        t0 = time.perf_counter()
        maf = FlowDensityEstimator(flow="maf", n_transforms=5, hidden=(128, 128),
                                   dequantize="uniform", n_levels=17, preprocess="logit",
                                   max_iter=1000, random_state=0, device="cpu").fit(Xtr)
        rows.append(TourResult(
            "flows", "FlowDensityEstimator(flow='maf', dequantize='uniform', preprocess='logit')",
            "digits 80/20", "test NLL (nats/image)", float(-maf.score(Xd)),
            "sklearn GaussianMixture(5, full)", gm_nll, time.perf_counter() - t0, [],
            "same fixed dequantization draw of the test images for both"))
    return rows


def run(quick: bool, out_dir: pathlib.Path) -> list[TourResult]:
    import torch

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _moons_rows(quick, out_dir) + _digits_rows(quick)
    finally:
        torch.set_num_threads(n)
