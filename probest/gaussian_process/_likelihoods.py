"""Likelihoods for the site-based GP engine.

Every likelihood works elementwise on torch tensors and offers what the four inference modes
need:

* ``derivs(y, f)`` -> ``(log p, d/df log p, d2/df2 log p)`` (Laplace, and Gauss-Hermite for CVI);
* ``expected(y, m, v)`` -> ``E_{N(m,v)}[log p]`` and its gradients ``g_m``, ``g_v`` (CVI, ELBO);
* ``log_tilted(y, m, v)`` -> ``log int p(y|f) N(f; m, v) df`` (EP energy, predictive densities);
* ``tilted_moments(y, m, v)`` -> mean and variance of the tilted distribution (EP updates).

Integrals without a closed form use 20-point Gauss-Hermite quadrature, in log-sum-exp form for
the log-normalisers.  Likelihood hyperparameters are stored as log-values in ``self.log_params``
(a ``ParameterDict``) so they join the kernel's hyperparameters in ``theta``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.special import log_ndtr

_LOG_2PI = math.log(2.0 * math.pi)
_N_GH = 20


def _gh_nodes(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes ``x_i`` and log-weights ``log(w_i / sqrt(pi))`` so that
    ``E_{N(m,v)}[g] ~= sum_i w_i/sqrt(pi) g(m + sqrt(2 v) x_i)``."""
    x, w = np.polynomial.hermite.hermgauss(_N_GH)
    xt = torch.tensor(x, dtype=dtype, device=device)
    lw = torch.tensor(np.log(w) - 0.5 * np.log(np.pi), dtype=dtype, device=device)
    return xt, lw


def _norm_logpdf(z: torch.Tensor) -> torch.Tensor:
    return -0.5 * z * z - 0.5 * _LOG_2PI


class Likelihood(torch.nn.Module):
    """Base class: Gauss-Hermite defaults for every integral."""

    name = "base"
    log_concave = True

    def __init__(self) -> None:
        super().__init__()
        self.log_params = torch.nn.ParameterDict()

    # -- to override ------------------------------------------------------------------
    def log_prob(self, y: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def derivs(self, y, f):
        raise NotImplementedError

    # -- Gauss-Hermite defaults ---------------------------------------------------------
    def _grid(self, m, v):
        x, lw = _gh_nodes(m.dtype, m.device)
        f = m[..., None] + torch.sqrt(2.0 * v.clamp_min(0.0))[..., None] * x
        return f, lw

    def expected(self, y, m, v):
        """``E = E_q[log p]``, ``g_m = dE/dm = E_q[d1]``, ``g_v = dE/dv = E_q[d2] / 2``."""
        f, lw = self._grid(m, v)
        lp, d1, d2 = self.derivs(y[..., None], f)
        w = lw.exp()
        return (lp * w).sum(-1), (d1 * w).sum(-1), 0.5 * (d2 * w).sum(-1)

    def _tilted_terms(self, y, m, v):
        """Adaptive Gauss-Hermite: a first pass finds the tilted mean/variance, a second pass
        integrates with nodes from that Gaussian, reweighted by prior/proposal density ratio
        (exact for Gaussian-shaped tilted distributions; sharp Poisson integrands need it).
        Returns nodes ``f`` and log-weights ``a`` with ``log Z = logsumexp(a)``."""
        f, lw = self._grid(m, v)
        a = self.log_prob(y[..., None], f) + lw
        w = torch.softmax(a, dim=-1)
        mh = (w * f).sum(-1).detach()
        vh = (w * (f - mh[..., None]) ** 2).sum(-1).detach()
        vh = torch.minimum(vh.clamp_min(1e-10 * v.detach().clamp_min(1e-30)), v.detach())
        f2, lw2 = self._grid(mh, vh)
        log_prior = -0.5 * (f2 - m[..., None]) ** 2 / v[..., None] - 0.5 * torch.log(v)[..., None]
        log_prop = -0.5 * (f2 - mh[..., None]) ** 2 / vh[..., None] - 0.5 * torch.log(vh)[..., None]
        return f2, self.log_prob(y[..., None], f2) + lw2 + log_prior - log_prop

    def log_tilted(self, y, m, v):
        """``log int p(y|f) N(f; m, v) df`` by (adaptive) log-sum-exp Gauss-Hermite."""
        _, a = self._tilted_terms(y, m, v)
        return torch.logsumexp(a, dim=-1)

    def tilted_moments(self, y, m, v):
        """``(log Z, mean, variance)`` of ``p(y|f) N(f; m, v) / Z``."""
        f, a = self._tilted_terms(y, m, v)
        logz = torch.logsumexp(a, dim=-1)
        w = torch.exp(a - logz[..., None])
        mean = (w * f).sum(-1)
        var = (w * (f - mean[..., None]) ** 2).sum(-1)
        return logz, mean, var.clamp_min(1e-12 * v.clamp_min(1e-300))

    def check_targets(self, y: np.ndarray) -> None:
        """Raise ``ValueError`` for targets this likelihood cannot explain."""


class Probit(Likelihood):
    """``p(y|f) = Phi(y f)`` with ``y in {-1, +1}``; closed-form tilted moments."""

    name = "probit"

    def log_prob(self, y, f):
        return log_ndtr(y * f)

    def derivs(self, y, f):
        z = y * f
        lp = log_ndtr(z)
        r = torch.exp(_norm_logpdf(z) - lp)  # N(z)/Phi(z), stable for very negative z
        return lp, y * r, -r * (z + r)

    def log_tilted(self, y, m, v):
        return log_ndtr(y * m / torch.sqrt(1.0 + v))

    def tilted_moments(self, y, m, v):
        s = torch.sqrt(1.0 + v)
        z = y * m / s
        logz = log_ndtr(z)
        r = torch.exp(_norm_logpdf(z) - logz)
        mean = m + y * v * r / s
        var = v - v * v * r * (z + r) / (1.0 + v)
        return logz, mean, var.clamp_min(1e-12 * v.clamp_min(1e-300))


class Logit(Likelihood):
    """``p(y|f) = sigmoid(y f)`` with ``y in {-1, +1}`` (Gauss-Hermite integrals)."""

    name = "logit"

    def log_prob(self, y, f):
        return torch.nn.functional.logsigmoid(y * f)

    def derivs(self, y, f):
        z = y * f
        s, t = torch.sigmoid(z), torch.sigmoid(-z)  # t = 1 - s without cancellation
        return torch.nn.functional.logsigmoid(z), y * t, -s * t


class Gaussian(Likelihood):
    """``p(y|f) = N(y; f, noise)``; every integral in closed form (exact GP regression)."""

    name = "gaussian"

    def __init__(self, noise: float = 1.0) -> None:
        super().__init__()
        self.log_params["noise"] = torch.nn.Parameter(torch.tensor(math.log(noise)))

    @property
    def noise(self) -> torch.Tensor:
        return self.log_params["noise"].exp()

    def log_prob(self, y, f):
        s2 = self.noise
        return -0.5 * (_LOG_2PI + torch.log(s2)) - 0.5 * (y - f) ** 2 / s2

    def derivs(self, y, f):
        s2 = self.noise
        return self.log_prob(y, f), (y - f) / s2, torch.full_like(f, -1.0) / s2

    def expected(self, y, m, v):
        s2 = self.noise
        e = -0.5 * (_LOG_2PI + torch.log(s2)) - 0.5 * ((y - m) ** 2 + v) / s2
        return e, (y - m) / s2, torch.full_like(m, -0.5) / s2

    def log_tilted(self, y, m, v):
        t = v + self.noise
        return -0.5 * (_LOG_2PI + torch.log(t)) - 0.5 * (y - m) ** 2 / t

    def tilted_moments(self, y, m, v):
        t = v + self.noise
        k = v / t
        return self.log_tilted(y, m, v), m + k * (y - m), v - k * v


class StudentT(Likelihood):
    """``p(y|f) = t_df(y; f, scale)``: heavy tails, not log-concave (CVI clips ``g_v``)."""

    name = "student_t"
    log_concave = False

    def __init__(self, df: float = 4.0, scale: float = 1.0) -> None:
        super().__init__()
        self.df = float(df)
        self.log_params["scale"] = torch.nn.Parameter(torch.tensor(math.log(scale)))

    def log_prob(self, y, f):
        nu = self.df
        s2 = torch.exp(2.0 * self.log_params["scale"])
        r2 = (y - f) ** 2
        c = math.lgamma(0.5 * (nu + 1)) - math.lgamma(0.5 * nu) - 0.5 * math.log(nu * math.pi)
        return c - 0.5 * torch.log(s2) - 0.5 * (nu + 1) * torch.log1p(r2 / (nu * s2))

    def derivs(self, y, f):
        nu = self.df
        s2 = torch.exp(2.0 * self.log_params["scale"])
        r = y - f
        den = nu * s2 + r * r
        return self.log_prob(y, f), (nu + 1) * r / den, (nu + 1) * (r * r - nu * s2) / den**2


class Poisson(Likelihood):
    """``y ~ Poisson(exp(f + offset))``; ``offset`` (log of the mean count) is fixed in fit."""

    name = "poisson"

    def __init__(self, offset: float = 0.0) -> None:
        super().__init__()
        self.offset = float(offset)

    def log_prob(self, y, f):
        g = f + self.offset
        return y * g - torch.exp(g) - torch.lgamma(y + 1.0)

    def derivs(self, y, f):
        g = f + self.offset
        rate = torch.exp(g)
        return y * g - rate - torch.lgamma(y + 1.0), y - rate, -rate

    def expected(self, y, m, v):
        g = m + self.offset
        mean_rate = torch.exp(g + 0.5 * v)
        e = y * g - mean_rate - torch.lgamma(y + 1.0)
        return e, y - mean_rate, -0.5 * mean_rate

    def check_targets(self, y):
        if np.any(y < 0) or np.any(np.abs(y - np.round(y)) > 1e-9):
            raise ValueError(
                "likelihood='poisson' needs non-negative integer counts as y; got negative or "
                "non-integer values. Use likelihood='gaussian' or 'student_t' for real targets."
            )


def make_likelihood(name: str, **kwargs) -> Likelihood:
    table = {"probit": Probit, "logit": Logit, "gaussian": Gaussian, "student_t": StudentT,
             "poisson": Poisson}
    if name not in table:
        raise ValueError(f"unknown likelihood/link {name!r}; use one of {sorted(table)}.")
    return table[name](**kwargs)
