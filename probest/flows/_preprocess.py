"""Invertible preprocessing with log-Jacobians, and dequantization of integer data.

The estimators model ``z = T(x)`` and report densities of ``x``:
``log p(x) = log p_flow(T(x)) + log |det dT/dx|``.  ``T`` is elementwise, so its log-det is
a sum over features.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn

_LOGIT_ALPHA = 0.05  # logit(alpha + (1 - 2 alpha) u) keeps values away from the boundaries


class DegenerateDataWarning(ConvergenceWarning):
    """A column of ``X`` is constant: a continuous density has no maximum-likelihood fit
    there (the likelihood grows without bound as the flow concentrates on the value), so
    ``converged_`` is set to False.  Drop the column, add noise, or dequantize integer data.

    Examples
    --------
    >>> import warnings
    >>> from sklearn.exceptions import ConvergenceWarning
    >>> from probest.flows import DegenerateDataWarning
    >>> issubclass(DegenerateDataWarning, ConvergenceWarning)
    True
    """


def check_degenerate(X: np.ndarray, weights: np.ndarray | None, owner: str) -> np.ndarray:
    """The constant columns of ``X`` (over rows of positive weight), with a
    :class:`DegenerateDataWarning`; ``ValueError`` when every column is constant (all rows
    identical: a continuous density on one point does not exist)."""
    rows = X if weights is None else X[np.asarray(weights) > 0]
    const = np.flatnonzero(np.ptp(rows, axis=0) == 0)
    if len(const) == X.shape[1]:
        raise ValueError(
            f"{owner}: all {len(rows)} rows of X are identical; a continuous density on a "
            "single point does not exist (the likelihood grows without bound). Fit on data "
            "that vary, or add noise.")
    if len(const):
        cols = ", ".join(str(int(c)) for c in const[:10]) + (", ..." if len(const) > 10 else "")
        warnings.warn(
            f"{owner}: X has constant columns [{cols}]; a continuous density there is "
            "degenerate (the likelihood grows without bound), so converged_ is set to False. "
            "Drop these columns, add noise, or dequantize integer data.",
            DegenerateDataWarning, stacklevel=4)
    return const


class Preprocessor(nn.Module):
    """``"standardize"``: ``z = (x - mean) / std``; ``"logit"``: ``z = logit(a + (1-2a) u)`` with
    ``u = (x - low) / (high - low)``; ``"none"``: identity.  Buffers hold the fitted constants."""

    def __init__(self, kind: str, low: torch.Tensor, high: torch.Tensor):
        super().__init__()
        self.kind = kind
        self.register_buffer("low", low)
        self.register_buffer("high", high)

    @classmethod
    def fit(cls, kind: str | None, X: torch.Tensor, n_levels: int | None) -> Preprocessor:
        kind = "none" if kind is None else kind
        if kind == "standardize":
            mean = X.mean(0)
            std = X.std(0).clamp_min(1e-6 * (1.0 + X.abs().max()))
            return cls(kind, mean, mean + std)  # (x - low) / (high - low)
        if kind == "logit":
            if n_levels is not None:
                low = torch.zeros(X.shape[1], dtype=X.dtype, device=X.device)
                high = torch.full_like(low, float(n_levels))
            else:
                lo, hi = X.min(0).values, X.max(0).values
                pad = 0.01 * (hi - lo).clamp_min(1e-3)
                low, high = lo - pad, hi + pad
            return cls(kind, low, high)
        if kind == "none":
            zero = torch.zeros(X.shape[1], dtype=X.dtype, device=X.device)
            return cls(kind, zero, zero + 1.0)
        raise ValueError(
            f"preprocess={kind!r} is not supported; use 'standardize', 'logit' or None."
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, log|det dz/dx|)`` with the log-det summed over features (shape ``(n,)``)."""
        width = self.high - self.low
        u = (x - self.low) / width
        if self.kind == "logit":
            a = _LOGIT_ALPHA
            v = a + (1 - 2 * a) * u
            z = torch.log(v) - torch.log1p(-v)
            ld = math.log(1 - 2 * a) - torch.log(width) - torch.log(v) - torch.log1p(-v)
            inside = (u >= 0) & (u <= 1)
            ld = torch.where(inside, ld, torch.full_like(ld, -math.inf))
            z = torch.where(inside, z, torch.zeros_like(z))
            return z, ld.sum(-1)
        ld = -torch.log(width).sum().expand(x.shape[:-1])
        return u, ld

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        width = self.high - self.low
        if self.kind == "logit":
            a = _LOGIT_ALPHA
            u = (torch.sigmoid(z) - a) / (1 - 2 * a)
            return self.low + width * u.clamp(0.0, 1.0)
        return self.low + width * z


def looks_integer(X: np.ndarray) -> bool:
    """True when every value is an integer and there are few distinct levels (pixels, counts)."""
    return bool(np.all(np.equal(np.mod(X, 1), 0)) and len(np.unique(X[: min(len(X), 2000)])) <= 512)


def check_dequantization(X: np.ndarray, dequantize: str | None, n_levels: int | None) -> int | None:
    """Validate the dequantization settings against the data; return the number of levels."""
    if dequantize not in (None, "uniform", "truncnorm"):
        raise ValueError(
            f"dequantize={dequantize!r} is not supported; use None, 'uniform' or 'truncnorm'."
        )
    if dequantize is None:
        if looks_integer(X) and X.shape[0] > 1:
            warnings.warn(
                "X holds integer values only, but dequantize=None: a continuous density on "
                "integers is degenerate (the likelihood grows without bound). Set "
                "dequantize='uniform' (and n_levels) for count or pixel data.",
                UserWarning,
                stacklevel=3,
            )
        return n_levels
    if not looks_integer(X):
        raise ValueError(
            f"dequantize={dequantize!r} expects integer-valued X (e.g. pixel levels); the data "
            "has non-integer values. Use dequantize=None for continuous data."
        )
    if X.min() < 0:
        raise ValueError("dequantize expects non-negative integer levels 0 .. n_levels-1.")
    levels = int(X.max()) + 1 if n_levels is None else int(n_levels)
    if X.max() >= levels:
        raise ValueError(f"X has the value {X.max():.15g} >= n_levels={levels:.15g}; raise n_levels.")
    return levels


def dequantization_noise(
    shape: torch.Size, kind: str, generator: torch.Generator | None, dtype, device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise ``u`` in ``[0, 1)^D`` and ``log q(u)`` summed over features (zero for uniform).

    ``"truncnorm"`` draws N(1/2, 1/4^2) truncated to [0, 1] by the inverse CDF.
    """
    u = torch.rand(shape, generator=generator, dtype=dtype, device=device)
    if kind == "uniform":
        return u, torch.zeros(shape[:-1], dtype=dtype, device=device)
    mu, sd = 0.5, 0.25
    phi = lambda v: 0.5 * (1.0 + math.erf(v / math.sqrt(2.0)))  # noqa: E731
    lo, hi = phi(-mu / sd), phi((1 - mu) / sd)
    eps = torch.finfo(dtype).eps
    p = (lo + (hi - lo) * u).clamp(eps, 1 - eps)
    x = (mu + sd * math.sqrt(2.0) * torch.erfinv(2 * p - 1)).clamp(0.0, 1.0 - eps)
    z = (x - mu) / sd
    logq = -0.5 * z * z - 0.5 * math.log(2 * math.pi) - math.log(sd) - math.log(hi - lo)
    return x, logq.sum(-1)
