"""Maximising a needle-shaped 1-D log-likelihood for many subjects at once.

The Exp3 log-likelihood in log c has cliffs (a 2.5% change of the rate can cost thousands of
nats), so gradients and single starts fail.  The search here evaluates a jittered log-grid
(one batched replay), then refines around the best few local maxima of every subject by
repeatedly re-gridding the bracket between their neighbours (each round one batched
replay), and finds profile-likelihood interval ends the same way.  ``f`` maps a
``(n_subjects, n_candidates)`` tensor of log-parameters to log-likelihoods of that shape.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

Objective = Callable[[torch.Tensor], torch.Tensor]


@dataclasses.dataclass
class GridResult:
    """Per subject: the maximiser, its value, the grid and its values."""

    theta: np.ndarray  # (S,) log-parameter at the maximum
    value: np.ndarray  # (S,)
    grid: np.ndarray  # (S, G) log-parameters, sorted
    values: np.ndarray  # (S, G)
    at_bound: np.ndarray  # (S,) bool: the maximum is within half a cell of the range's end
    peaks: np.ndarray  # (S, top) refined local maxima
    peak_values: np.ndarray  # (S, top)

    def merged(self) -> tuple[np.ndarray, np.ndarray]:
        """Grid and refined peaks together, sorted per subject: ``(points, values)``."""
        P = np.concatenate([self.grid, self.peaks, self.theta[:, None]], 1)
        V = np.concatenate([self.values, self.peak_values, self.value[:, None]], 1)
        order = np.argsort(P, 1, kind="stable")
        return np.take_along_axis(P, order, 1), np.take_along_axis(V, order, 1)


def jittered_grid(lo: float, hi: float, n: int, n_subjects: int, rng: np.random.Generator):
    """``(n_subjects, n)`` sorted log-grids over [lo, hi]: end points fixed, interior points
    moved by up to half a cell (independently per subject) so no rate is systematically
    missed between grid points."""
    g = np.linspace(lo, hi, n)
    step = (hi - lo) / max(n - 1, 1)
    G = np.broadcast_to(g, (n_subjects, n)).copy()
    if n > 2:
        G[:, 1:-1] += rng.uniform(-0.45, 0.45, (n_subjects, n - 2)) * step
    return G


def _local_maxima(values: np.ndarray, top: int) -> np.ndarray:
    """``(S, top)`` indices of the largest local maxima of each row (repeats the best when a
    row has fewer)."""
    S, G = values.shape
    pad = np.pad(values, ((0, 0), (1, 1)), constant_values=-np.inf)
    is_max = (pad[:, 1:-1] >= pad[:, :-2]) & (pad[:, 1:-1] >= pad[:, 2:])
    scored = np.where(is_max, values, -np.inf)
    order = np.argsort(-scored, axis=1)[:, :top]
    best = order[:, :1]
    valid = np.take_along_axis(scored, order, 1) > -np.inf
    return np.where(valid, order, best)


def maximise(f: Objective, lo: float, hi: float, n_grid: int, n_subjects: int,
             rng: np.random.Generator, *, to_tensor, top: int = 3, n_refine: int = 12,
             rounds: int = 5) -> GridResult:
    """Grid then bracket refinement of ``f`` over [lo, hi] (log scale), per subject."""
    G = jittered_grid(lo, hi, n_grid, n_subjects, rng)
    V = f(to_tensor(G)).cpu().numpy()
    V = np.where(np.isfinite(V), V, -np.inf)
    idx = _local_maxima(V, top)  # (S, top)
    left = np.take_along_axis(G, np.clip(idx - 1, 0, n_grid - 1), 1)
    right = np.take_along_axis(G, np.clip(idx + 1, 0, n_grid - 1), 1)
    best_t = np.take_along_axis(G, idx, 1)
    best_v = np.take_along_axis(V, idx, 1)
    for _ in range(rounds):
        u = np.linspace(0.0, 1.0, n_refine)
        P = left[..., None] + (right - left)[..., None] * u  # (S, top, n_refine)
        Vp = f(to_tensor(P.reshape(n_subjects, -1))).cpu().numpy().reshape(P.shape)
        Vp = np.where(np.isfinite(Vp), Vp, -np.inf)
        j = Vp.argmax(-1)
        cand_v = np.take_along_axis(Vp, j[..., None], -1)[..., 0]
        cand_t = np.take_along_axis(P, j[..., None], -1)[..., 0]
        better = cand_v > best_v
        best_v = np.where(better, cand_v, best_v)
        best_t = np.where(better, cand_t, best_t)
        width = (right - left) / (n_refine - 1)
        left = np.clip(best_t - width, lo, hi)
        right = np.clip(best_t + width, lo, hi)
    k = best_v.argmax(1)
    theta = best_t[np.arange(n_subjects), k]
    value = best_v[np.arange(n_subjects), k]
    # on the end of the range: within half a grid cell of it (a needle found inside the
    # range by the refinement is not a boundary hit even if the coarse grid peaked there)
    half = 0.5 * (hi - lo) / max(n_grid - 1, 1)
    at_bound = (theta <= lo + half) | (theta >= hi - half)
    return GridResult(theta, value, G, V, at_bound, best_t, best_v)


def superlevel_components(values: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Per row: the number of separate runs of grid points with ``values >= level``."""
    above = values >= level[:, None]
    starts = above & ~np.pad(above, ((0, 0), (1, 0)))[:, :-1]
    return starts.sum(1)


def profile_interval(f: Objective, res: GridResult, cutoff: np.ndarray, lo: float, hi: float,
                     *, to_tensor, n_points: int = 9, rounds: int = 5):
    """Ends of the hull of ``{theta: f(theta) >= value - cutoff}``.

    The set may have several separated pieces (needles); the interval spans all that the
    grid and the refined peaks found.  From its outermost inside point each end walks to the
    next grid point outside and re-grids that bracket ``rounds`` times.  Returns ``(lower,
    upper, open_low, open_high)``; an open end means the set reaches the end of the range.
    """
    S = len(res.theta)
    level = res.value - cutoff
    P, V = res.merged()
    inside = V >= level[:, None]
    rows = np.arange(S)
    ends, opens = [], []
    for side in (-1, 1):
        j_in = inside.argmax(1) if side < 0 else P.shape[1] - 1 - inside[:, ::-1].argmax(1)
        a = P[rows, j_in]
        j_out = j_in + side
        is_open = (j_out < 0) | (j_out >= P.shape[1])
        b = np.where(is_open, lo if side < 0 else hi, P[rows, np.clip(j_out, 0, P.shape[1] - 1)])
        for _ in range(rounds):
            u = np.linspace(0.0, 1.0, n_points)
            Q = a[:, None] + (b - a)[:, None] * u
            Vq = f(to_tensor(Q)).cpu().numpy()
            below = ~(Vq >= level[:, None])
            below[:, 0] = False
            first = np.where(below.any(1), below.argmax(1), n_points - 1)
            a, b = Q[rows, np.maximum(first - 1, 0)], Q[rows, first]
        reach = f(to_tensor(b[:, None])).cpu().numpy()[:, 0] >= level
        end = np.where(reach, b, a)
        ends.append(end)
        opens.append(np.isclose(end, lo if side < 0 else hi))
    return ends[0], ends[1], opens[0], opens[1]


def curvature(f: Objective, theta: np.ndarray, *, to_tensor, h: float = 1e-3) -> np.ndarray:
    """Observed information ``-f''(theta)`` by central differences (per subject)."""
    P = theta[:, None] + np.array([-h, 0.0, h])
    V = f(to_tensor(P)).cpu().numpy()
    return -(V[:, 0] - 2 * V[:, 1] + V[:, 2]) / h**2
