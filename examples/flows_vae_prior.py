"""A VAE-like Pyro model whose latent prior is a fitted probest flow, trained by SVI.

1. Fit a FlowDensityEstimator (MAF) on two-moons points: that is the latent prior p(z).
2. Generate 8-D observations x = decoder(z) + noise from latents drawn from the moons.
3. Fit a decoder and an amortised Gaussian encoder by SVI with ``est.to_pyro()`` (frozen) as
   the prior on every latent, under ``pyro.plate``.
4. Report the ELBO trace and how close the encoded latents are to the true ones.

Run ``python examples/flows_vae_prior.py --quick`` for a few-second smoke run.
"""

from __future__ import annotations

import argparse

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.optim import Adam
from torch import nn

from probest.datasets import make_flow_toy
from probest.flows import FlowDensityEstimator


def main(quick: bool = False) -> dict:
    torch.set_num_threads(1)
    steps_prior, steps_svi, n = (150, 60, 256) if quick else (1500, 1500, 1000)
    prior = FlowDensityEstimator(flow="maf", max_iter=steps_prior, random_state=0, device="cpu")
    prior.fit(make_flow_toy(2000, random_state=0))

    gen = torch.Generator().manual_seed(1)
    z_true = torch.tensor(make_flow_toy(n, random_state=2), dtype=torch.float32)
    true_dec = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 8))
    with torch.no_grad():
        for p in true_dec.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
        x = true_dec(z_true) + 0.1 * torch.randn(n, 8, generator=gen)

    decoder = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 8))
    encoder = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 4))
    pz = prior.to_pyro(frozen=True)  # the flow's weights stay fixed

    def model(x):
        pyro.module("decoder", decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", pz)
            pyro.sample("x", dist.Normal(decoder(z), 0.1).to_event(1), obs=x)

    def guide(x):
        pyro.module("encoder", encoder)
        loc, log_scale = encoder(x).chunk(2, -1)
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(loc, log_scale.clamp(-6, 2).exp()).to_event(1))

    pyro.clear_param_store()
    svi = SVI(model, guide, Adam({"lr": 1e-2}), Trace_ELBO())
    with torch.random.fork_rng():
        torch.manual_seed(0)
        losses = [svi.step(x) / n for _ in range(steps_svi)]
    with torch.no_grad():
        z_hat = encoder(x).chunk(2, -1)[0]
    prior_lp = pz.log_prob(z_hat).mean().item()
    out = {
        "elbo_first": -float(np.mean(losses[:5])),
        "elbo_last": -float(np.mean(losses[-5:])),
        "prior_log_prob_of_codes": prior_lp,
    }
    print(f"ELBO per point: {out['elbo_first']:.2f} -> {out['elbo_last']:.2f} over {steps_svi} steps")
    print(f"mean flow-prior log-density of the encoded latents: {prior_lp:.2f} nats")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny budget smoke run")
    main(ap.parse_args().quick)
