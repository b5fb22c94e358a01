"""Velocity network, minibatch couplings and ODE solves (with log-densities) for flow matching.

The log-density of a continuous normalizing flow ``dx/dt = v(t, x)`` that carries the source
``p0`` at ``t = 0`` to the model ``p1`` at ``t = 1`` obeys

    log p1(x(1)) = log p0(x(0)) - int_0^1 div v(t, x(t)) dt.

``log_prob`` solves the augmented ODE backwards from data at ``t = 1``; ``sample_and_log_prob``
solves it forwards from source draws.  The divergence is exact (``D`` backward passes) or a
Hutchinson estimate whose Rademacher probes are drawn once per trajectory and held fixed along
the solve (redrawing them at every evaluation makes the ODE right-hand side random, and an
adaptive solver then keeps rejecting steps).
"""

from __future__ import annotations

import math

import torch
from torch import nn

_LOG2PI = math.log(2 * math.pi)


class VelocityMLP(nn.Module):
    """``v(t, x)``: an MLP on ``[x, t, sin(2 pi k t), cos(2 pi k t)]`` with SiLU activations."""

    def __init__(self, dim: int, hidden=(128, 128, 128), n_freq: int = 4):
        super().__init__()
        self.register_buffer("freq", 2 * math.pi * torch.arange(1, n_freq + 1, dtype=torch.float32))
        layers: list[nn.Module] = []
        width = dim + 1 + 2 * n_freq
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.SiLU()]
            width = int(h)
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)
        self.dim = dim

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        t = t.reshape(-1, 1).expand(x.shape[0], 1)
        ft = t * self.freq.to(x.dtype)
        return self.net(torch.cat([x, t, torch.sin(ft), torch.cos(ft)], dim=-1))


def couple(x0: torch.Tensor, x1: torch.Tensor, coupling: str, reg: float,
           generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs ``(x0, x1)`` for one minibatch: independent, exact OT (``ot.emd``) or entropic
    OT (``ot.sinkhorn``, cost scaled to max 1).  Pairs are drawn from the plan as in OT-CFM."""
    if coupling == "independent":
        return x0, x1
    import ot

    cost = torch.cdist(x0, x1) ** 2
    n0, n1 = x0.shape[0], x1.shape[0]
    a = torch.full((n0,), 1.0 / n0, dtype=x0.dtype, device=x0.device)
    b = torch.full((n1,), 1.0 / n1, dtype=x0.dtype, device=x0.device)
    if coupling == "exact_ot":
        plan = ot.emd(a, b, cost.detach())  # network simplex runs on the host
    else:
        c = cost.detach()
        plan = ot.sinkhorn(a, b, c / c.max(), reg, numItermax=1000, stopThr=1e-6, warn=False)
    p = plan.reshape(-1).clamp_min(0)
    total = float(p.sum())
    if not (total > 0 and math.isfinite(total) and bool(torch.isfinite(p).all())):
        raise ValueError(
            f"The {coupling} coupling of a minibatch failed: its transport plan is not a "
            "finite distribution (squared distances of the preprocessed data overflow "
            f"{str(x0.dtype).replace('torch.', '')}). Standardise X (preprocess='standardize') "
            "or use dtype='float64'.")
    idx = torch.multinomial(p / p.sum(), n0, replacement=True, generator=generator)
    return x0[idx // n1], x1[idx % n1]


def _divergence(v: torch.Tensor, x: torch.Tensor, probes: torch.Tensor | None,
                create_graph: bool) -> torch.Tensor:
    if probes is None:  # exact: one backward pass per dimension
        div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for i in range(x.shape[1]):
            g = torch.autograd.grad(v[:, i].sum(), x, retain_graph=True, create_graph=create_graph)[0]
            div = div + g[:, i]
        return div
    est = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for eps in probes:  # probes: (K, N, D), fixed for the whole trajectory
        g = torch.autograd.grad((v * eps).sum(), x, retain_graph=True, create_graph=create_graph)[0]
        est = est + (g * eps).sum(-1)
    return est / probes.shape[0]


class _Dynamics(nn.Module):
    """Right-hand side of the augmented ODE ``(dx/dt, d ell/dt) = (v, sign * div v)``."""

    def __init__(self, net: nn.Module, probes: torch.Tensor | None, sign: float, differentiable: bool):
        super().__init__()
        self.net, self.probes, self.sign, self.differentiable = net, probes, sign, differentiable
        self.nfe = 0

    def forward(self, t, state):
        x = state[0]
        self.nfe += 1
        with torch.enable_grad():
            if not x.requires_grad:
                x = x.detach().requires_grad_(True)
            v = self.net(t, x)
            div = _divergence(v, x, self.probes, self.differentiable)
        if not self.differentiable:
            v, div = v.detach(), div.detach()
        return v, self.sign * div


def _odeint(func, y0, t0: float, t1: float, solver: str, n_steps: int, rtol: float, atol: float):
    from torchdiffeq import odeint

    ref = y0[0] if isinstance(y0, tuple) else y0
    ts = torch.tensor([t0, t1], dtype=ref.dtype, device=ref.device)
    options = None if solver in ("dopri5", "dopri8", "bosh3", "adaptive_heun") else {
        "step_size": abs(t1 - t0) / int(n_steps)
    }
    out = odeint(func, y0, ts, method=solver, rtol=rtol, atol=atol, options=options)
    return tuple(o[-1] for o in out) if isinstance(out, tuple) else out[-1]


def std_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * (z * z).sum(-1) - 0.5 * z.shape[-1] * _LOG2PI


def rademacher(n_probes: int, shape, generator, dtype, device) -> torch.Tensor:
    r = torch.randint(0, 2, (n_probes, *shape), generator=generator, device=device)
    return (2 * r - 1).to(dtype)


def cnf_log_prob(net, x1: torch.Tensor, *, probes, solver, n_steps, rtol, atol,
                 differentiable: bool = False) -> tuple[torch.Tensor, int]:
    """``(log p1(x1), NFE)`` by integrating from ``t = 1`` back to ``t = 0``."""
    func = _Dynamics(net, probes, 1.0, differentiable)
    ell0 = torch.zeros(x1.shape[0], dtype=x1.dtype, device=x1.device)
    x0, ell = _odeint(func, (x1, ell0), 1.0, 0.0, solver, n_steps, rtol, atol)
    return std_normal_log_prob(x0) + ell, func.nfe


def cnf_sample(net, z0: torch.Tensor, *, probes, solver, n_steps, rtol, atol,
               with_log_prob: bool) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """``(x1, log p1(x1) or None, NFE)`` by integrating source draws ``z0`` forwards."""
    if not with_log_prob:
        calls = [0]

        def f(t, x):
            calls[0] += 1
            return net(t, x)

        with torch.no_grad():
            x1 = _odeint(f, z0, 0.0, 1.0, solver, n_steps, rtol, atol)
        return x1, None, calls[0]
    func = _Dynamics(net, probes, -1.0, False)
    ell0 = torch.zeros(z0.shape[0], dtype=z0.dtype, device=z0.device)
    x1, ell = _odeint(func, (z0, ell0), 0.0, 1.0, solver, n_steps, rtol, atol)
    return x1, std_normal_log_prob(z0) + ell, func.nfe
