"""Particle primitives of the Feynman–Kac samplers: log-space weights, ESS, resampling and
the Markov kernels that move the stochastic block.

Every function works on a ``(S, D)`` particle tensor and ``(S,)`` log-weights on any device;
all randomness comes from the ``generator`` passed in (never the global RNG).
"""

from __future__ import annotations

import math

import torch

RESAMPLING = ("stratified", "systematic", "multinomial")
KERNELS = ("rw", "ou", "rwmh")


def normalise(log_w: torch.Tensor) -> torch.Tensor:
    """Log-weights shifted so that ``logsumexp == 0``."""
    return log_w - torch.logsumexp(log_w, 0)


def ess(log_w: torch.Tensor) -> torch.Tensor:
    """Effective sample size ``1 / sum(w^2)`` of normalised weights, computed in log space."""
    lw = normalise(log_w)
    return torch.exp(-torch.logsumexp(2.0 * lw, 0))


def resample(log_w: torch.Tensor, scheme: str, generator: torch.Generator) -> torch.Tensor:
    """``S`` ancestor indices drawn from the normalised weights.

    ``stratified``: one uniform per stratum ``[(i + u_i) / S]``; ``systematic``: one shared
    uniform ``(i + u) / S``; ``multinomial``: i.i.d. draws.  All three are unbiased (each
    particle's expected number of offspring is ``S w_i``); stratified and systematic add less
    noise than multinomial.
    """
    S = log_w.shape[0]
    w = torch.exp(normalise(log_w))
    if scheme == "multinomial":
        return torch.multinomial(w, S, replacement=True, generator=generator)
    base = torch.arange(S, device=w.device, dtype=w.dtype)
    if scheme == "systematic":
        u = torch.rand((), generator=generator, device=w.device, dtype=w.dtype)
    elif scheme == "stratified":
        u = torch.rand((S,), generator=generator, device=w.device, dtype=w.dtype)
    else:
        raise ValueError(f"resampling={scheme!r} is not one of {RESAMPLING}.")
    cdf = torch.cumsum(w, 0)
    cdf[-1] = 1.0  # guard against round-off: every position finds an ancestor
    return torch.searchsorted(cdf, (base + u) / S).clamp_(max=S - 1)


def gaussian_noise(shape, scale: float, like: torch.Tensor, generator: torch.Generator):
    return scale * torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)


def random_walk(phi: torch.Tensor, variance: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian random-walk jitter ``phi + N(0, variance I)`` (artificial dynamics)."""
    if variance == 0:
        return phi
    return phi + gaussian_noise(phi.shape, math.sqrt(variance), phi, generator)


def ornstein_uhlenbeck(phi: torch.Tensor, variance: float, prior_scale: float,
                       generator: torch.Generator) -> torch.Tensor:
    """One exact OU step towards the prior ``N(0, prior_scale^2 I)``, which it keeps
    invariant: ``rho phi + sqrt(1 - rho^2) prior_scale eps`` with
    ``1 - rho^2 = min(1, variance / prior_scale^2)`` (the innovation variance is ``variance``)."""
    if variance == 0:
        return phi
    one_minus = min(1.0, variance / prior_scale**2)
    rho = math.sqrt(1.0 - one_minus)
    return rho * phi + gaussian_noise(phi.shape, math.sqrt(one_minus) * prior_scale, phi, generator)


def log_prior(phi: torch.Tensor, prior_scale: float) -> torch.Tensor:
    """``log N(phi; 0, prior_scale^2 I)`` per particle, shape ``(S,)``."""
    D = phi.shape[-1]
    return (-0.5 * (phi / prior_scale).pow(2).sum(-1)
            - D * (math.log(prior_scale) + 0.5 * math.log(2 * math.pi)))


@torch.no_grad()
def metropolis(phi: torch.Tensor, log_target, step: torch.Tensor | float, n_steps: int,
               generator: torch.Generator, current: torch.Tensor | None = None):
    """``n_steps`` random-walk Metropolis moves per particle, all particles at once.

    ``log_target(phi) -> (S,)`` is the unnormalised log-density the moves keep invariant;
    ``step`` is the proposal standard deviation (a scalar or a ``(D,)`` tensor).  Returns the
    moved particles, their log-target values and the mean acceptance rate.
    """
    lp = log_target(phi) if current is None else current
    accepted = torch.zeros((), device=phi.device, dtype=phi.dtype)
    for _ in range(int(n_steps)):  # a loop over MH steps, never over particles
        prop = phi + step * torch.randn(phi.shape, generator=generator, device=phi.device,
                                        dtype=phi.dtype)
        lp_prop = log_target(prop)
        u = torch.rand(lp.shape, generator=generator, device=phi.device, dtype=phi.dtype)
        accept = torch.log(u) < (lp_prop - lp)  # NaN proposals are rejected
        phi = torch.where(accept[:, None], prop, phi)
        lp = torch.where(accept, lp_prop, lp)
        accepted = accepted + accept.to(phi.dtype).mean()
    return phi, lp, accepted / max(1, int(n_steps))


def adaptive_step(phi: torch.Tensor, log_w: torch.Tensor, floor: float = 1e-3) -> torch.Tensor:
    """Proposal scale ``2.38 / sqrt(D)`` times the weighted per-coordinate spread of the
    particles (the classical adaptive-SMC choice), floored at ``floor``."""
    w = torch.exp(normalise(log_w))[:, None]
    mean = (w * phi).sum(0)
    sd = ((w * (phi - mean).pow(2)).sum(0)).clamp_min(0).sqrt()
    return (2.38 / math.sqrt(phi.shape[-1])) * sd.clamp_min(floor)
