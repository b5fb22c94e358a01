"""EBFlow: a fully-connected flow read as an energy-based model, and score-matching losses.

A flow ``g = g_L o ... o g_1`` maps data to a standard normal latent.  Its log-density is

    log p(x) = log N(g(x); 0, I) + sum_nonlinear log|det J_l(x)| + sum_linear log|det W_l|,

where the linear layers (dense ``D x D`` matrices) have constant Jacobians.  The first two
terms form an unnormalised log-density ``-E(x)``; the last is ``-log Z``, independent of ``x``.
Score-matching objectives only need ``grad_x E``, so they never compute the ``O(D^3)``
determinants — the reason EBFlow is cheaper than maximum likelihood at large ``D``.  After
training the determinants are computed once and cached, giving exact likelihoods.

Implemented from the maths of Chao et al., "Training Energy-Based Normalizing Flow with
Score-Matching Objectives" (NeurIPS 2023); no reference code is used.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_LOG2PI = math.log(2 * math.pi)


class DenseLinear(nn.Module):
    """``z = W x + b`` with ``W`` initialised to a random-sign identity (``+-I``)."""

    def __init__(self, dim: int):
        super().__init__()
        signs = torch.where(torch.rand(dim) < 0.5, -1.0, 1.0)
        self.weight = nn.Parameter(torch.diag(signs))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight.T + self.bias

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve(self.weight, (z - self.bias).T).T

    def log_abs_det(self) -> torch.Tensor:
        return torch.linalg.slogdet(self.weight)[1]


class ElementwiseTanh(nn.Module):
    """``y = x + gamma tanh(x - c)`` per feature, ``gamma = exp(p) - 1 > -1`` (monotone).

    Starts as the identity (``p = 0``); the inverse is found by bisection on the bracket
    ``[y - |gamma| - 1, y + |gamma| + 1]``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(dim))
        self.c = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gamma = torch.expm1(self.p)
        t = torch.tanh(x - self.c)
        y = x + gamma * t
        ld = torch.log1p(gamma * (1 - t * t))
        return y, ld.sum(-1)

    @torch.no_grad()
    def inverse(self, y: torch.Tensor, iters: int = 60) -> torch.Tensor:
        gamma = torch.expm1(self.p)
        span = gamma.abs() + 1.0
        lo, hi = y - span, y + span
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            above = mid + gamma * torch.tanh(mid - self.c) > y
            hi = torch.where(above, mid, hi)
            lo = torch.where(above, lo, mid)
        return 0.5 * (lo + hi)


class EBFlowFC(nn.Module):
    """``n_transforms`` blocks of (dense linear, elementwise nonlinearity), then a final dense
    linear layer.  ``n_transforms=0`` is a purely linear (Gaussian) flow."""

    has_linear_layers = True

    def __init__(self, dim: int, n_transforms: int):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(n_transforms):
            layers += [DenseLinear(dim), ElementwiseTanh(dim)]
        layers.append(DenseLinear(dim))
        self.layers = nn.ModuleList(layers)
        self.dim = dim
        self.register_buffer("cached_logdet", torch.tensor(float("nan")))

    def latent_and_energy_logdet(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(g(x), sum of the nonlinear layers' log-dets)``."""
        ld = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
        for layer in self.layers:
            if isinstance(layer, DenseLinear):
                x = layer(x)
            else:
                x, l = layer(x)
                ld = ld + l
        return x, ld

    def unnormalized_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``-E(x) = log N(g(x)) + sum_nonlinear log|det J|`` (no linear log-dets)."""
        z, ld = self.latent_and_energy_logdet(x)
        return -0.5 * (z * z).sum(-1) - 0.5 * self.dim * _LOG2PI + ld

    def linear_logdet(self) -> torch.Tensor:
        """``sum_linear log|det W|`` = ``-log Z`` (recomputed; differentiable)."""
        return sum(layer.log_abs_det() for layer in self.layers if isinstance(layer, DenseLinear))

    def cache_linear_logdet(self) -> None:
        with torch.no_grad():
            self.cached_logdet = self.linear_logdet().detach().clone()

    def log_prob(self, x: torch.Tensor, cached: bool = False) -> torch.Tensor:
        if cached and torch.isfinite(self.cached_logdet):
            return self.unnormalized_log_prob(x) + self.cached_logdet
        return self.unnormalized_log_prob(x) + self.linear_logdet()

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return self.latent_and_energy_logdet(x)[0]

    @torch.no_grad()
    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z


# --- score-matching objectives (all minimised; constants dropped) ----------------------------
def _rademacher(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    r = torch.randint(0, 2, like.shape, generator=generator, device=like.device)
    return (2 * r - 1).to(like.dtype)


def ssm_loss(logp, x: torch.Tensor, generator=None) -> torch.Tensor:
    """Sliced score matching with variance reduction (Song et al. 2019), Rademacher slices:
    ``E[v^T (d s / dx) v + |s|^2 / 2]``, one double backward."""
    x = x.detach().requires_grad_(True)
    s = torch.autograd.grad(logp(x).sum(), x, create_graph=True)[0]
    v = _rademacher(x, generator)
    hv = torch.autograd.grad((s * v).sum(), x, create_graph=True)[0]
    return ((hv * v).sum(-1) + 0.5 * (s * s).sum(-1)).mean()


def dsm_loss(logp, x: torch.Tensor, sigma: float, generator=None) -> torch.Tensor:
    """Denoising score matching (Vincent 2011): ``E |s(x + sigma n) + n / sigma|^2 / 2``."""
    n = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    xt = (x + sigma * n).detach().requires_grad_(True)
    s = torch.autograd.grad(logp(xt).sum(), xt, create_graph=True)[0]
    return 0.5 * ((s + n / sigma) ** 2).sum(-1).mean()


def fdssm_loss(logp, x: torch.Tensor, eps: float, generator=None) -> torch.Tensor:
    """Finite-difference SSM (Pang et al. 2020): three forward passes, no double backward.

    ``u`` is uniform on the sphere of radius ``sqrt(D)`` (``E[u u^T] = I``), the step is
    ``h = eps / sqrt(D)`` so the perturbation has norm ``eps``;
    ``u^T H u ~ (f+ + f- - 2 f0) / h^2`` and ``(u^T s)^2 / 2 ~ (f+ - f-)^2 / (8 h^2)``.
    Needs float64 for small ``eps`` (cancellation in the second difference).
    """
    d = x.shape[-1]
    u = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    u = u / u.norm(dim=-1, keepdim=True) * math.sqrt(d)
    h = eps / math.sqrt(d)
    f = logp(torch.cat([x + h * u, x - h * u, x])).reshape(3, -1)
    fp, fm, f0 = f[0], f[1], f[2]
    return ((fp + fm - 2 * f0) / h**2 + (fp - fm) ** 2 / (8 * h**2)).mean()
