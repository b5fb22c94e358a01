"""The figure of docs/bnn.md: the bimodal toy's OHSMC particles, the exact grid posterior
and the mean-field SVI fit.

Run:  OMP_NUM_THREADS=1 python benchmarks/bnn_plots.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")


def main():
    import matplotlib.pyplot as plt
    import numpy as np
    from scipy.stats import gaussian_kde

    from probest.bnn import plot_particle_posterior
    from probest.bnn._toy import fit_bimodal_smc, fit_bimodal_svi, tv_to_grid
    from probest.datasets import bimodal_grid_posterior, make_bimodal_toy

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/img")
    args = ap.parse_args()
    y, _ = make_bimodal_toy(200, theta=1.5, random_state=0)
    phi, lw, fk = fit_bimodal_smc(y, n_particles=1000)
    svi = fit_bimodal_svi(y, n_steps=300, lr=0.1)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    plot_particle_posterior(fk, ax=ax, reference=bimodal_grid_posterior(y), bins=80)
    g = np.linspace(-4, 4, 800)
    ax.plot(g, gaussian_kde(svi)(g), "r--", lw=1.2, label="Pyro SVI (mean-field)")
    ax.set_xlim(-2.5, 2.5)
    ax.legend(fontsize=8)
    tv, mass = tv_to_grid(phi, lw, y)
    ax.set_title(f"bimodal toy: OHSMC TV {tv:.3f} (mass {mass:.2f} on theta>0), "
                 f"SVI TV {tv_to_grid(svi, None, y)[0]:.3f}", fontsize=9)
    out = pathlib.Path(args.out) / "bnn_bimodal.png"
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(out, tv, mass)


if __name__ == "__main__":
    main()
