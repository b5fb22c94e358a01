"""The symmetric bimodal toy as a Feynman–Kac problem (no deterministic part), its Pyro SVI
(mean-field Gaussian) baseline and the distance of a fit to the exact grid posterior; used by
the tests, the benchmark, the tour and the docs."""

from __future__ import annotations

import numpy as np
import torch

from probest.bnn._trainer import FeynmanKacTrainer


class BimodalToyModule(torch.nn.Module):
    """``logit p(y = 1) = theta^2 - 1`` for every row (one stochastic parameter)."""

    def __init__(self):
        super().__init__()
        self.theta = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.theta**2 - 1.0  # shape (1,): broadcast over the rows by the likelihood


def bernoulli_loglik(f, y):
    return y * torch.nn.functional.logsigmoid(f) + (1 - y) * torch.nn.functional.logsigmoid(-f)


def fit_bimodal_smc(y, n_particles=1000, max_epochs=50, batch_size=20, seed=0, **kw):
    """OHSMC on the toy; defaults: Metropolis moves and potentials ``p(y_B|theta)^(1/E)``
    (each point counted once over the ``E`` epochs).  Returns ``(particles, log_weights)``."""
    kw = {"kernel": "rwmh", "likelihood_power": 1.0 / max_epochs, "ess_threshold": 0.5, **kw}
    Y = torch.as_tensor(np.asarray(y), dtype=torch.float64)
    fk = FeynmanKacTrainer(BimodalToyModule().double(), ["theta"], bernoulli_loglik,
                           n_particles=n_particles, **kw)
    fk.fit(torch.zeros(len(Y), 1, dtype=torch.float64), Y, max_epochs=max_epochs,
           batch_size=batch_size, seed=seed)
    return fk.particles_[:, 0].numpy(), fk.log_weights_.numpy(), fk


def fit_bimodal_svi(y, n_steps=2000, lr=0.05, seed=0, n_draws=4000):
    """Pyro SVI with a ``Normal`` guide on theta (the mean-field baseline); returns draws."""
    import pyro
    import pyro.distributions as dist
    from pyro.infer import SVI, Trace_ELBO
    from pyro.infer.autoguide import AutoNormal

    Y = torch.as_tensor(np.asarray(y), dtype=torch.float64)

    def model():
        theta = pyro.sample("theta", dist.Normal(torch.tensor(0.0, dtype=torch.float64), 1.0))
        with pyro.plate("data", len(Y)):
            pyro.sample("y", dist.Bernoulli(logits=theta**2 - 1.0), obs=Y)

    with torch.random.fork_rng(), pyro.settings.context(module_local_params=True):
        torch.manual_seed(seed)
        guide = AutoNormal(model, init_scale=0.1)
        svi = SVI(model, guide, pyro.optim.Adam({"lr": lr}), Trace_ELBO())
        for _ in range(n_steps):
            svi.step()
        with torch.no_grad():
            loc = float(guide.median()["theta"])
            sd = float(guide.quantiles([0.8413447460685429])["theta"][0]) - loc
    return loc + abs(sd) * np.random.default_rng(seed).normal(size=n_draws)


def tv_to_grid(draws, log_w, y, n_bins=80):
    """Total variation between weighted draws and the grid posterior, on ``n_bins`` bins
    over ``[-4, 4]``; also the mass on ``theta > 0``."""
    from probest.datasets import bimodal_grid_posterior

    grid, p = bimodal_grid_posterior(y)
    edges = np.linspace(-4, 4, n_bins + 1)
    w = np.ones(len(draws)) if log_w is None else np.exp(log_w - np.max(log_w))
    w = w / w.sum()
    h, _ = np.histogram(draws, edges, weights=w)
    g, _ = np.histogram(grid, edges, weights=p)
    return 0.5 * float(np.abs(h - g / g.sum()).sum()), float(w[np.asarray(draws) > 0].sum())
