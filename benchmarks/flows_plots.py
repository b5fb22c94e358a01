"""Figures for docs/flows.md (docs/img/flows_*.png).

    OMP_NUM_THREADS=1 python benchmarks/flows_plots.py [--quick] [--out docs/img]
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from probest.viz import savefig

torch.set_num_threads(1)


def moons_densities(quick: bool, out: pathlib.Path) -> str:
    from probest.datasets import make_flow_toy
    from probest.flows import FlowDensityEstimator, FlowMatchingEstimator

    X = make_flow_toy(2000, random_state=0)
    Xte = make_flow_toy(2000, random_state=1)
    k = 0.1 if quick else 1.0
    models = {
        "NSF": FlowDensityEstimator(flow="nsf", max_iter=int(1500 * k)),
        "MAF": FlowDensityEstimator(flow="maf", n_transforms=5, max_iter=int(1500 * k)),
        "RealNVP": FlowDensityEstimator(flow="realnvp", n_transforms=6, max_iter=int(1500 * k)),
        "EBFlow FC (MLE)": FlowDensityEstimator(flow="ebflow_fc", n_transforms=6,
                                                max_iter=int(1500 * k), lr=3e-3),
        "TARFlow (patch 1)": FlowDensityEstimator(flow="tarflow", n_transforms=4, patch=1,
                                                  max_iter=int(1500 * k)),
        "OT-CFM": FlowMatchingEstimator(max_iter=int(2000 * k), lr=3e-3),
    }
    g = np.linspace(-3, 3, 121)
    G = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    fig, axes = plt.subplots(1, len(models) + 1, figsize=(2.6 * (len(models) + 1), 2.8))
    axes[0].scatter(X[:, 0], X[:, 1], s=1, alpha=0.4)
    axes[0].set_title("two moons")
    for ax, (name, est) in zip(axes[1:], models.items(), strict=True):
        est.set_params(random_state=0, device="cpu").fit(X)
        Xs = Xte[:500] if isinstance(est, FlowMatchingEstimator) else Xte
        dens = np.exp(est.score_samples(G)).reshape(len(g), len(g))
        ax.imshow(dens, origin="lower", extent=(-3, 3, -3, 3), cmap="magma")
        ax.set_title(f"{name}\nNLL {-est.score(Xs):.2f}", fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal")
    return savefig(fig, out / "flows_moons.png")


def cfm_paths(quick: bool, out: pathlib.Path) -> str:
    from probest.datasets import make_flow_toy
    from probest.flows import FlowMatchingEstimator

    X = make_flow_toy(2000, random_state=0)
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
    for ax, coupling in zip(axes, ("independent", "exact_ot"), strict=True):
        est = FlowMatchingEstimator(coupling=coupling, max_iter=300 if quick else 2000, lr=3e-3,
                                    random_state=0, device="cpu").fit(X)
        with torch.no_grad():
            x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
            path = [x]
            for i in range(50):
                x = x + est.model_(torch.tensor(i / 50), x) / 50
                path.append(x)
            P = est.preprocessor_.inverse(torch.stack(path)).numpy()
        for j in range(P.shape[1]):
            ax.plot(P[:, j, 0], P[:, j, 1], lw=0.5, color="0.5", alpha=0.6)
        ax.scatter(P[0, :, 0], P[0, :, 1], s=3, color="C0", label="t=0 (source)")
        ax.scatter(P[-1, :, 0], P[-1, :, 1], s=3, color="C3", label="t=1")
        ax.set_title(f"{coupling} coupling")
        ax.set_aspect("equal")
    axes[0].legend(fontsize=7, loc="lower left")
    return savefig(fig, out / "flows_cfm_paths.png")


def digits_samples(quick: bool, out: pathlib.Path) -> str:
    from probest.flows import AutoregressiveDLMEstimator, FlowDensityEstimator
    from probest.flows._data import digits_split

    Xtr, _, _ = digits_split()
    steps = 150 if quick else 1000
    maf = FlowDensityEstimator(flow="maf", n_transforms=5, hidden=(128, 128), dequantize="uniform",
                               n_levels=17, preprocess="logit", max_iter=steps, random_state=0,
                               device="cpu").fit(Xtr)
    made = AutoregressiveDLMEstimator(hidden=(128, 128), max_iter=steps, random_state=0,
                                      device="cpu").fit(Xtr)
    rows = {"data": Xtr[:10], "MAF (dequantized, logit)": np.floor(maf.sample(10, random_state=1)),
            "MADE + discretized logistics": made.sample(10, random_state=1)}
    fig, axes = plt.subplots(3, 10, figsize=(8, 2.8))
    for r, (name, S) in enumerate(rows.items()):
        for c in range(10):
            axes[r, c].imshow(S[c].reshape(8, 8), cmap="gray_r", vmin=0, vmax=16)
            axes[r, c].axis("off")
        axes[r, 0].set_title(name, fontsize=8, loc="left")
    return savefig(fig, out / "flows_digits_samples.png")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="docs/img")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)
    for fn in (moons_densities, cfm_paths, digits_samples):
        print(fn(args.quick, out), flush=True)


if __name__ == "__main__":
    main()
