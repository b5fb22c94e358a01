"""Partial Bayesian MLPs by Feynman–Kac SMC: the bimodal toy against its exact posterior, a
regression with predictive bands, and the low-level trainer on a custom module.

    python examples/bnn_partial_bayesian.py [--quick]
"""

from __future__ import annotations

import argparse
import warnings


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small budgets, a few seconds")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from probest.bnn import FeynmanKacTrainer, PartialBayesianMLPRegressor, ParticleDegeneracyWarning
    from probest.bnn._toy import fit_bimodal_smc, tv_to_grid
    from probest.datasets import make_bimodal_toy, make_xsin_regression

    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ParticleDegeneracyWarning)
    # 1. the symmetric bimodal toy: both modes kept, close to the grid posterior
    y, _ = make_bimodal_toy(200, theta=1.5, random_state=0)
    epochs = 10 if args.quick else 50
    phi, lw, _ = fit_bimodal_smc(y, n_particles=100 if args.quick else 1000, max_epochs=epochs)
    tv, mass = tv_to_grid(phi, lw, y)
    print(f"bimodal toy: TV to the exact posterior {tv:.3f}, mass on theta > 0 {mass:.2f}")

    # 2. regression with a stochastic middle layer: BMA mean and predictive sd
    X, t = make_xsin_regression(300, random_state=0)
    est = PartialBayesianMLPRegressor(n_particles=50 if args.quick else 500,
                                      max_epochs=5 if args.quick else 100, device="cpu",
                                      random_state=0).fit(X, t)
    grid = np.linspace(-5, 5, 5)[:, None]
    mean, sd = est.predict(grid, return_std=True)
    print("x sin(x tanh x):", np.round(mean, 2), "+-", np.round(sd, 2),
          f"| train NLPD {est.score_nlpd(X, t):.3f}, noise {est.noise_:.2f}")

    # 3. any nn.Module: name its stochastic parameters
    net = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    Xt, Yt = torch.tensor(X, dtype=torch.float32), torch.tensor(t, dtype=torch.float32)

    def gauss(out, y):
        return -0.5 * (out[..., 0] - y) ** 2

    fk = FeynmanKacTrainer(net, ["2.weight", "2.bias"], gauss, n_particles=64, kernel="ou",
                           kernel_scale=1e-3).fit(Xt, Yt, max_epochs=2 if args.quick else 20)
    print(f"custom module: {fk.particles_.shape[0]} particles of {fk.n_stochastic} weights, "
          f"final ESS {fk.ess_history_[-1]:.1f}, log evidence {fk.log_evidence_:.1f}")


if __name__ == "__main__":
    main()
