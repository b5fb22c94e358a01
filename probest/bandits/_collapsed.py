"""The hierarchical Exp3 model with every subject's learning rate integrated out on a grid.

The model is the one of :mod:`probest.bandits._models`::

    mu ~ Normal(mu_loc, mu_scale);  tau ~ HalfNormal(tau_scale);
    log c_s ~ Normal(mu, tau);      choices_s ~ Exp3(c_s)

Each subject's likelihood l_s(theta), theta = log c, is one-dimensional but rough: a narrow
peak with cliffs of tens to thousands of nats between neighbouring values of theta (measured:
up to 150 nats over 0.0016 in theta at T = 300, gamma = 0.05). HMC on the joint
(mu, tau, theta_s) posterior crosses such cliffs badly (largest R-hat 1.12 on 5 subjects). Here
each l_s is tabulated once, by one batched replay, on cells that cover the whole search range
coarsely and the subject's high-likelihood window finely, and treated as constant on each
cell; then::

    p(choices_s | mu, tau) = sum_g exp(l_s(theta_g)) * P(theta in cell g | mu, tau)

with the Normal cell probabilities in closed form (exact for every tau, however small the
cell). NUTS samples the smooth two-dimensional posterior of (mu, tau), and theta_s | mu, tau,
choices is drawn exactly (a cell by its weight, uniform inside it). The only approximations
are the tabulation, whose error is measured (``quadrature_error``), and the range: rates
outside the MLE's search range [1e-3, 1e2] get no likelihood (the joint model lets them).
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import erfc
from scipy.special import logsumexp as _scipy_logsumexp

#: search range of log c (the spec's [1e-3, 1e2]) and its coarse cells
LOG_C_RANGE = (math.log(1e-3), math.log(1e2))
N_COARSE = 200
#: the refined windows: where the level above is within this many nats of the best value
LEVELS = (60.0, 15.0)


@dataclass
class SubjectGrid:
    """Cells ``[lower, upper)`` of theta = log c per subject and the log-likelihood on each
    (``-inf`` for cells that the next level refines)."""

    lower: np.ndarray  # (S, G)
    upper: np.ndarray  # (S, G)
    loglik: np.ndarray  # (S, G)

    @property
    def mid(self) -> np.ndarray:
        return 0.5 * (self.lower + self.upper)


def _window(ll, top, nats, j_best):
    """First and last cell (inclusive, 2 cells of margin) where ``ll`` (S, G) is within
    ``nats`` of ``top``, always including cell ``j_best``."""
    G = ll.shape[1]
    inside = ll > (top - nats)[:, None]
    first = np.where(inside.any(1), inside.argmax(1), j_best)
    last = np.where(inside.any(1), G - 1 - inside[:, ::-1].argmax(1), j_best)
    return (np.maximum(np.minimum(first, j_best) - 2, 0),
            np.minimum(np.maximum(last, j_best) + 2, G - 1))


def subject_grids(loglik: Callable[[np.ndarray], np.ndarray], theta_mle: np.ndarray,
                  n_fine: int) -> SubjectGrid:
    """Tabulate every subject's log-likelihood, ``loglik(theta (S, G)) -> (S, G)``, on
    nested grids: ``N_COARSE`` cells over the search range, ``n_fine // 4`` cells over the
    window within ``LEVELS[0]`` nats of the best value, ``n_fine`` cells over the window
    within ``LEVELS[1]`` nats (each window found on the level above and always containing
    the MLE, since a peak can be narrower than a cell of the level above).  The middle
    level only carries likelihood between ``LEVELS[1]`` and ``LEVELS[0]`` nats below the
    peak (<= e^-15 of it), so it is kept coarse."""
    S = len(theta_mle)
    theta_mle = np.asarray(theta_mle, dtype=np.float64)
    ll_mle = np.asarray(loglik(theta_mle[:, None]))[:, 0]
    ll_mle = np.where(np.isfinite(ll_mle), ll_mle, -np.inf)

    def tabulate(edges):
        ll = np.asarray(loglik(0.5 * (edges[:, :-1] + edges[:, 1:])))
        return np.where(np.isfinite(ll), ll, -np.inf)

    lo, hi = LOG_C_RANGE
    edges = np.broadcast_to(np.linspace(lo, hi, N_COARSE + 1), (S, N_COARSE + 1))
    levels = [(edges, tabulate(edges))]
    for nats, n in zip(LEVELS, (max(n_fine // 4, 2), n_fine)):
        edges, ll = levels[-1]
        top = np.maximum(ll.max(1), ll_mle)
        j_mle = np.clip((edges <= theta_mle[:, None]).sum(1) - 1, 0, edges.shape[1] - 2)
        first, last = _window(ll, top, nats, j_mle)
        cells = np.arange(ll.shape[1])[None]
        refined = (cells >= first[:, None]) & (cells <= last[:, None])
        levels[-1] = (edges, np.where(refined, -np.inf, ll))
        a = np.take_along_axis(edges, first[:, None], 1)
        b = np.take_along_axis(edges, last[:, None] + 1, 1)
        edges = a + (b - a) * np.linspace(0.0, 1.0, n + 1)[None]
        levels.append((edges, tabulate(edges)))
    return SubjectGrid(np.concatenate([e[:, :-1] for e, _ in levels], 1),
                       np.concatenate([e[:, 1:] for e, _ in levels], 1),
                       np.concatenate([ll for _, ll in levels], 1))


def log_cell_mass(lower, upper, mu, tau, xp):
    """``log P(lower <= theta < upper)`` for theta ~ Normal(mu, tau), stable in both tails;
    ``xp`` supplies the elementwise functions (numpy, torch or jax)."""
    za = (lower - mu) / tau
    zb = (upper - mu) / tau
    flip = za > 0  # above the mean use the upper tail: Phi(-za) - Phi(-zb)
    lo = xp.where(flip, -zb, za)
    hi = xp.where(flip, -za, zb)
    l_hi = _log_ndtr(hi, xp)
    return l_hi + xp.log(-xp.expm1(_log_ndtr(lo, xp) - l_hi))


def _log_ndtr(x, xp):
    """``log Phi(x)`` from one erfc: ``log(erfc(y) / 2)``, ``y = -x / sqrt(2)``, while erfc
    is far from underflow (y <= 25, erfc(25) = 8e-274), the asymptotic series of erfc beyond
    (5 terms; next term < 2e-13 relative at y = 25), ``log1p(-erfc(-y) / 2)`` above 0.  A much
    smaller compiled graph than a general log_ndtr (and JAX's erfcx returns 0 near 26.6)."""
    y = -x * _SQRT_HALF
    y_mid = xp.minimum(xp.maximum(y, 0.0), _Y_SWITCH)  # each branch sees only safe inputs
    y_far = xp.maximum(y, _Y_SWITCH)
    y_pos = xp.maximum(-y, 0.0)
    mid = xp.log(0.5 * xp.erfc(y_mid))
    inv = 1.0 / (2.0 * y_far * y_far)
    series = 1.0 + inv * (-1.0 + inv * (3.0 + inv * (-15.0 + inv * 105.0)))
    far = -y_far * y_far - xp.log(2.0 * y_far * _SQRT_PI) + xp.log(series)
    above = xp.log1p(-0.5 * xp.erfc(y_pos))
    return xp.where(y > _Y_SWITCH, far, xp.where(y > 0, mid, above))


_Y_SWITCH = 25.0
_SQRT_PI = math.sqrt(math.pi)
_SQRT_HALF = math.sqrt(0.5)


def _array_ops(xp, erfc, logsumexp):
    """The elementwise functions the collapsed likelihood uses, for a NumPy-like module
    (numpy, jax.numpy)."""
    return types.SimpleNamespace(
        erfc=erfc, logsumexp=lambda x, axis: logsumexp(x, axis=axis),
        concatenate=lambda parts, axis: xp.concatenate(parts, axis), minimum=xp.minimum,
        maximum=xp.maximum, where=xp.where, log=xp.log, log1p=xp.log1p, expm1=xp.expm1)


def _torch_ops():
    import torch

    return types.SimpleNamespace(
        erfc=torch.special.erfc, logsumexp=lambda x, axis: torch.logsumexp(x, dim=axis),
        concatenate=lambda parts, axis: torch.cat(parts, dim=axis),
        minimum=lambda x, v: x.clamp(max=v), maximum=lambda x, v: x.clamp(min=v),
        where=torch.where, log=torch.log, log1p=torch.log1p, expm1=torch.expm1)


def _jax_ops():
    import jax.numpy as jnp
    from jax.scipy.special import erfc as jerfc
    from jax.scipy.special import logsumexp as jlogsumexp

    return _array_ops(jnp, jerfc, jlogsumexp)


_Numpy = _array_ops(np, erfc, _scipy_logsumexp)


def log_marginal_numpy(grid: SubjectGrid, mu, tau) -> np.ndarray:
    """Per-subject ``log p(choices_s | mu, tau)`` (numpy; ``mu``, ``tau`` scalars)."""
    lm = log_cell_mass(grid.lower, grid.upper, mu, tau, _Numpy)
    return _scipy_logsumexp(grid.loglik + lm, axis=1)


def conditional_draws(grid: SubjectGrid, mu: np.ndarray, tau: np.ndarray,
                      rng: np.random.Generator, chunk: int = 32):
    """For every ``(mu, tau)`` draw: an exact draw of theta_s | mu, tau, choices (a cell by
    its posterior weight, then uniform inside it) and ``log p(choices_s | mu, tau)``, both
    ``(n_draws, S)``."""
    n = len(mu)
    S = grid.loglik.shape[0]
    theta, marginal = np.empty((n, S)), np.empty((n, S))
    for i in range(0, n, chunk):
        m = np.asarray(mu[i:i + chunk])[:, None, None]
        t = np.asarray(tau[i:i + chunk])[:, None, None]
        lw = grid.loglik[None] + log_cell_mass(grid.lower[None], grid.upper[None], m, t, _Numpy)
        g, marginal[i:i + chunk] = draw_cells(lw, rng)
        g = g[..., None]  # (chunk, S, 1)
        lo = np.take_along_axis(np.broadcast_to(grid.lower, lw.shape), g, -1)[..., 0]
        hi = np.take_along_axis(np.broadcast_to(grid.upper, lw.shape), g, -1)[..., 0]
        theta[i:i + chunk] = lo + rng.uniform(size=lo.shape) * (hi - lo)
    return theta, marginal


def draw_cells(lw: np.ndarray, rng: np.random.Generator):
    """One cell per row of the log-weights ``lw`` (..., G), drawn by its weight (inverse
    CDF), and each row's ``logsumexp``: ``(index (...), log total (...))``."""
    top = lw.max(-1, keepdims=True)
    cdf = np.cumsum(np.exp(lw - top), -1)
    u = rng.uniform(size=cdf.shape[:-1] + (1,)) * cdf[..., -1:]
    return np.minimum((cdf < u).sum(-1), cdf.shape[-1] - 1), top[..., 0] + np.log(cdf[..., -1])


def quadrature_error(loglik: Callable[[np.ndarray], np.ndarray], theta_mle: np.ndarray,
                     n_fine: int, mu: float, tau: float) -> float:
    """Largest per-subject change of ``log p(choices_s | mu, tau)`` when the fine cells are
    quartered: the tabulation's error at one (mu, tau)."""
    a = log_marginal_numpy(subject_grids(loglik, theta_mle, n_fine), mu, tau)
    b = log_marginal_numpy(subject_grids(loglik, theta_mle, 4 * n_fine), mu, tau)
    return float(np.abs(a - b).max())


# ------------------------------------------------------------------ the two NUTS backends
def exp3_log_lik(grid: SubjectGrid):
    """The collapsed Exp3 log-likelihood ``f({"mu", "tau"})`` for :func:`run_collapsed`."""
    def factory(ops, asarray):
        lower, upper, ll = asarray(grid.lower), asarray(grid.upper), asarray(grid.loglik)

        def f(p):
            return ops.logsumexp(ll + log_cell_mass(lower, upper, p["mu"], p["tau"], ops),
                                 1).sum()
        return f
    return factory


def run_collapsed(backend: str, hyper, log_lik_factory, *, device="cpu", **kw):
    """NUTS on the hyperparameters alone.  ``hyper``: ``(name, "normal" | "halfnormal",
    loc, scale)`` priors; ``log_lik_factory(ops, asarray)`` returns ``f(params) -> scalar``
    (the collapsed log-likelihood) for numpy-like ``ops``.  Returns draws and divergences
    as :func:`probest.bandits._models.nuts_pyro`."""
    from probest.bandits import _models

    names = [h[0] for h in hyper]
    if backend == "numpyro":
        def build():
            import jax
            import numpyro
            import numpyro.distributions as nd

            f = jax.jit(lambda *v: log_lik_factory(_jax_ops(), jax.numpy.asarray)(
                dict(zip(names, v))))  # compiled once: NumPyro also runs the model eagerly

            def model():
                v = [numpyro.sample(n, nd.Normal(loc, sc) if kind == "normal"
                                    else nd.HalfNormal(sc)) for n, kind, loc, sc in hyper]
                numpyro.factor("choices", f(*v))
            return model

        return _models.nuts_numpyro(build, **kw)

    import pyro
    import pyro.distributions as dist
    import torch

    f64 = dict(dtype=torch.float64, device=device)
    f = log_lik_factory(_torch_ops(), lambda x: torch.as_tensor(x, **f64))

    def model():
        v = {}
        for n, kind, loc, sc in hyper:
            d = (dist.Normal(torch.tensor(loc, **f64), torch.tensor(sc, **f64))
                 if kind == "normal" else dist.HalfNormal(torch.tensor(sc, **f64)))
            v[n] = pyro.sample(n, d)
        pyro.factor("choices", f(v))

    return _models.nuts_pyro(model, **kw)
