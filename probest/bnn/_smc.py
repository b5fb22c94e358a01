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
    ``step`` is the proposal standard deviation (a scalar or a ``(D,)`` tensor) or a
    ``(D, D)`` lower-triangular factor ``L`` of the proposal covariance ``L L^T``.  Returns the
    moved particles, their log-target values and the mean acceptance rate.
    """
    lp = log_target(phi) if current is None else current
    accepted = torch.zeros((), device=phi.device, dtype=phi.dtype)
    for _ in range(int(n_steps)):  # a loop over MH steps, never over particles
        eps = torch.randn(phi.shape, generator=generator, device=phi.device, dtype=phi.dtype)
        prop = phi + (eps @ step.T if torch.is_tensor(step) and step.ndim == 2 else step * eps)
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


def adaptive_factor(phi: torch.Tensor, log_w: torch.Tensor, scale: float = 1.0,
                    floor: float = 1e-3) -> torch.Tensor:
    """Lower-triangular ``(D, D)`` proposal factor: ``scale * 2.38 / sqrt(D)`` times the
    Cholesky factor of the particles' weighted covariance (plus ``floor^2`` on the
    diagonal), which follows the posterior's correlations; falls back to the diagonal
    :func:`adaptive_step` when there are fewer than ``2 D`` particles."""
    S, D = phi.shape
    if S < 2 * D:
        return scale * adaptive_step(phi, log_w, floor)
    w = torch.exp(normalise(log_w))[:, None]
    c = phi - (w * phi).sum(0)
    cov = (w * c).T @ c + floor**2 * torch.eye(D, device=phi.device, dtype=phi.dtype)
    L, info = torch.linalg.cholesky_ex(cov.double())
    if bool(info):
        return scale * adaptive_step(phi, log_w, floor)
    return (scale * 2.38 / math.sqrt(D)) * L.to(phi.dtype)


def _next_temperature(log_w: torch.Tensor, ll: torch.Tensor, beta: float, floor: float,
                      rounds: int = 4, points: int = 64) -> float:
    """Largest ``b`` in ``(beta, 1]`` whose incremental weights ``(b - beta) ll`` keep the
    ESS at least ``floor`` (the ESS falls as ``b`` grows).  Each of ``rounds`` refinements
    scores ``points`` temperatures of the current bracket at once (one host sync each, not
    one per bisection step), so the bracket shrinks ``points**rounds``-fold."""
    lw, ll = log_w.double(), ll.double()
    lo, hi = beta, 1.0
    for _ in range(int(rounds)):
        b = torch.linspace(lo, hi, points + 1, device=lw.device, dtype=lw.dtype)[1:]
        x = lw + (b[:, None] - beta) * ll
        x = x - torch.logsumexp(x, 1, keepdim=True)
        ok = torch.exp(-torch.logsumexp(2.0 * x, 1)) >= floor
        k = int(ok.to(torch.int64).cumprod(0).sum())  # leading temperatures that keep it
        if k == points:
            if hi == 1.0:
                return 1.0
            lo = float(b[-1])
            break
        lo, hi = (float(b[k - 1]) if k else lo), float(b[k])
    return max(lo, beta + 1e-9 * (1.0 - beta))


@torch.no_grad()
def tempered_smc(loglik_sum, phi: torch.Tensor, prior_scale: float, generator: torch.Generator,
                 *, betas=None, n_mh_steps: int = 1, ess_target: float = 0.5,
                 resample_below: float = 1.0, resampling: str = "stratified",
                 max_stages: int = 1000):
    """Tempered SMC from prior draws ``phi`` to ``p(phi) exp(loglik_sum(phi))``.

    ``p(phi) = N(0, prior_scale^2 I)``; the stage targets are ``p(phi) exp(beta loglik_sum)``.
    ``betas``: a fixed increasing schedule ending at 1, or ``None`` for the adaptive one —
    each next temperature is the largest that keeps the ESS of the incremental weights at
    ``ess_target * S`` (bisection), so the number of stages follows the information in the
    data.  Per stage: reweight, resample (``resampling``) when the ESS is below
    ``resample_below * S``, then ``n_mh_steps`` random-walk Metropolis moves invariant for
    the stage's target (proposal from :func:`adaptive_factor`: the particles' covariance,
    its size steered from stage to stage towards ~23 % acceptance).

    Returns ``(phi, log_w, log_z, info)``: particles, normalised log-weights, the
    log-evidence estimate ``sum_stages log sum_s W_s exp(delta_beta loglik_s)`` (unbiased in
    ``Z`` for the normalised prior) and ``info = {"betas": [...], "acceptance": [...]}``.
    """
    S = phi.shape[0]
    log_w = torch.full((S,), -math.log(S), device=phi.device, dtype=phi.dtype)
    log_z = torch.zeros((), device=phi.device, dtype=phi.dtype)
    ll = loglik_sum(phi)
    if not bool(torch.isfinite(ll).any()):
        raise FloatingPointError("the log-likelihood is not finite at any prior draw of the "
                                 "stochastic block; lower prior_scale or check the data.")
    ll = torch.nan_to_num(ll, nan=-math.inf)
    schedule = None if betas is None else [float(b) for b in betas]
    beta, info, scale = 0.0, {"betas": [], "acceptance": []}, 1.0
    while beta < 1.0:
        if schedule is not None:
            b1 = schedule[len(info["betas"]) + 1]
        elif len(info["betas"]) >= max_stages - 1:
            b1 = 1.0
        else:
            b1 = _next_temperature(log_w, ll, beta, ess_target * S)
        inc = (b1 - beta) * ll
        log_z = log_z + torch.logsumexp(log_w + inc, 0)
        log_w = normalise(log_w + inc)
        if S > 1 and bool(ess(log_w) < resample_below * S - 1e-9):
            anc = resample(log_w, resampling, generator)
            phi, ll, log_w = phi[anc], ll[anc], torch.full_like(log_w, -math.log(S))

        def target(p, b=b1):
            return log_prior(p, prior_scale) + b * loglik_sum(p)

        cur = log_prior(phi, prior_scale) + b1 * ll
        phi, lp, acc = metropolis(phi, target, adaptive_factor(phi, log_w, scale), n_mh_steps,
                                  generator, current=cur)
        # steer the next stage's proposal towards the random-walk optimum (~0.234 accepted)
        scale = min(10.0, max(0.05, scale * math.exp(float(acc) - 0.234)))
        ll = (lp - log_prior(phi, prior_scale)) / b1
        info["betas"].append(b1)
        info["acceptance"].append(float(acc))
        beta = b1
    return phi, log_w, log_z, info
