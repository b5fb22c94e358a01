"""Discretized logistic mixture likelihood (PixelCNN++), as a Pyro distribution.

Values are integers ``k = 0 .. num_bins - 1``.  Bin ``k`` has centre
``c_k = 2 k / (num_bins - 1) - 1`` on ``[-1, 1]`` and half-width ``h = 1 / (num_bins - 1)``;
each component is a logistic with location ``loc`` and scale ``exp(log_scale)`` on that
``[-1, 1]`` scale, and the probability of bin ``k`` is the logistic mass of
``[c_k - h, c_k + h]``, with the two edge bins absorbing the tails (``(-inf, c_0 + h]`` and
``[c_{B-1} - h, inf)``), so the bins sum to one exactly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pyro.distributions import TorchDistribution
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

__all__ = ["DiscretizedLogisticMixture", "log_logistic_bin_mass"]


def _log1mexp(d: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(-d))`` for ``d >= 0``, accurate for tiny and large ``d`` (Maechler 2012)."""
    d = d.clamp_min(torch.finfo(d.dtype).tiny)
    return torch.where(d < math.log(2.0), torch.log(-torch.expm1(-d)), torch.log1p(-torch.exp(-d)))


def log_logistic_bin_mass(
    value: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor, num_bins: int
) -> torch.Tensor:
    """``log P(bin = value)`` under one logistic(loc, exp(log_scale)), edge bins absorbing tails.

    Uses ``sigma(a) - sigma(b) = sigma(a) sigma(-b) (1 - exp(b - a))`` so that the log mass is
    ``logsigmoid(a) + logsigmoid(-b) + log1mexp(a - b)``: no cancellation in either tail and
    no clamping of tiny masses (unlike the original PixelCNN++ code's fallbacks).
    """
    h = 1.0 / (num_bins - 1)
    centre = 2.0 * value / (num_bins - 1) - 1.0
    inv_s = torch.exp(-log_scale)
    a = (centre + h - loc) * inv_s  # standardised upper edge
    b = (centre - h - loc) * inv_s  # standardised lower edge
    mid = F.logsigmoid(a) + F.logsigmoid(-b) + _log1mexp(a - b)
    first = F.logsigmoid(a)  # mass of (-inf, c_0 + h]
    last = F.logsigmoid(-b)  # mass of [c_last - h, inf)
    out = torch.where(value <= 0, first, mid)
    return torch.where(value >= num_bins - 1, last, out)


class DiscretizedLogisticMixture(TorchDistribution):
    """Mixture of discretized logistics over ``{0, ..., num_bins - 1}`` (PixelCNN++ likelihood).

    Parameters
    ----------
    logits : tensor ``(..., K)``
        Unnormalised mixture weights.
    loc : tensor ``(..., K)``
        Component locations on the ``[-1, 1]`` scale (bin ``k`` is centred at
        ``2 k / (num_bins - 1) - 1``).
    log_scale : tensor ``(..., K)``
        Component log-scales on the same scale.
    num_bins : int, default=256
        Number of integer values (256 for 8-bit pixels, 17 for sklearn's digits).
    validate_args : bool, optional
        Check arguments and values (torch.distributions convention).

    Attributes
    ----------
    logits, loc, log_scale : torch.Tensor
        The parameters (broadcast to a common shape).
    num_bins : int
        Number of integer values.

    Notes
    -----
    ``batch_shape`` is ``logits.shape[:-1]`` and ``event_shape`` is ``()``; use
    ``.to_event(1)`` for a vector of pixels.  ``sample`` picks a component by Gumbel-max and
    rounds a logistic draw to its bin (clamped to the edges), which is exact for this
    likelihood.  Samples are floating-point integers.

    Examples
    --------
    >>> import torch
    >>> from probest.flows import DiscretizedLogisticMixture
    >>> d = DiscretizedLogisticMixture(torch.zeros(3, 2), torch.tensor([[-0.5, 0.5]] * 3),
    ...                                torch.full((3, 2), -1.0), num_bins=4)
    >>> d.batch_shape, d.event_shape
    (torch.Size([3]), torch.Size([]))
    >>> d.log_prob(torch.arange(4.0)[:, None]).exp().sum(0)  # each row sums to one
    tensor([1.0000, 1.0000, 1.0000])
    >>> d.sample((5,)).shape
    torch.Size([5, 3])
    """

    arg_constraints = {
        "logits": constraints.real_vector,
        "loc": constraints.real_vector,
        "log_scale": constraints.real_vector,
    }
    has_rsample = False

    def __init__(self, logits, loc, log_scale, num_bins: int = 256, validate_args=None):
        if int(num_bins) < 2:
            raise ValueError(f"num_bins must be >= 2, got {num_bins}.")
        logits, loc, log_scale = broadcast_all(logits, loc, log_scale)
        if logits.dim() < 1:
            raise ValueError("logits/loc/log_scale need a trailing mixture dimension (..., K).")
        self.logits, self.loc, self.log_scale = logits, loc, log_scale
        self.num_bins = int(num_bins)
        super().__init__(batch_shape=logits.shape[:-1], validate_args=validate_args)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return constraints.integer_interval(0, self.num_bins - 1)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(DiscretizedLogisticMixture, _instance)
        batch_shape = torch.Size(batch_shape)
        shape = batch_shape + self.logits.shape[-1:]
        new.logits = self.logits.expand(shape)
        new.loc = self.loc.expand(shape)
        new.log_scale = self.log_scale.expand(shape)
        new.num_bins = self.num_bins
        super(DiscretizedLogisticMixture, new).__init__(batch_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value = torch.as_tensor(value, dtype=self.loc.dtype, device=self.loc.device)
        comp = log_logistic_bin_mass(
            value.unsqueeze(-1), self.loc, self.log_scale, self.num_bins
        )
        return torch.logsumexp(torch.log_softmax(self.logits, -1) + comp, dim=-1)

    @torch.no_grad()
    def sample(self, sample_shape=()) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape)) + self.logits.shape[-1:]
        logits = self.logits.expand(shape)
        u = torch.rand(shape, dtype=logits.dtype, device=logits.device)
        u = u.clamp(torch.finfo(u.dtype).tiny, 1 - torch.finfo(u.dtype).eps)
        k = torch.argmax(logits - torch.log(-torch.log(u)), dim=-1, keepdim=True)  # Gumbel-max
        loc = self.loc.expand(shape).gather(-1, k).squeeze(-1)
        log_s = self.log_scale.expand(shape).gather(-1, k).squeeze(-1)
        v = torch.rand(loc.shape, dtype=loc.dtype, device=loc.device)
        v = v.clamp(torch.finfo(v.dtype).tiny, 1 - torch.finfo(v.dtype).eps)
        x = loc + torch.exp(log_s) * (torch.log(v) - torch.log1p(-v))
        bins = torch.round((x + 1.0) * (self.num_bins - 1) / 2.0)
        return bins.clamp(0, self.num_bins - 1)

    @property
    def mean(self) -> torch.Tensor:
        ks = torch.arange(self.num_bins, dtype=self.loc.dtype, device=self.loc.device)
        shape = (self.num_bins,) + (1,) * len(self.batch_shape)
        p = self.log_prob(ks.reshape(shape)).exp()
        return (p * ks.reshape(shape)).sum(0)
