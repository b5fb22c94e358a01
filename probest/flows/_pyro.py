"""A Pyro distribution over one observation ``x in R^D`` built from a fitted estimator.

The estimators' densities include preprocessing Jacobians and (for flow matching) an ODE
solve, so instead of ``pyro.contrib.zuko.ZukoToPyro`` (which wraps a bare zuko
distribution) they hand closures to :class:`EstimatorDistribution`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints


class EstimatorDistribution(TorchDistribution):
    """``event_shape == (D,)``; ``log_prob(x)`` for ``x`` of shape ``(..., D)``.

    ``sample_fn(n) -> (n, D)`` draws ``n`` points (reparameterised when ``has_rsample``);
    ``module`` is the torch module whose parameters the density depends on (frozen or not).
    """

    arg_constraints: dict = {}

    def __init__(
        self,
        log_prob_fn: Callable[[torch.Tensor], torch.Tensor],
        sample_fn: Callable[[int], torch.Tensor],
        event_dim: int,
        *,
        module: torch.nn.Module | None = None,
        has_rsample: bool = False,
        support: constraints.Constraint = constraints.real_vector,
        batch_shape: torch.Size | tuple = (),
        validate_args=None,
    ):
        self._log_prob_fn, self._sample_fn = log_prob_fn, sample_fn
        self.module = module
        self._has_rsample = has_rsample
        self._support = support
        self._event_dim = event_dim
        super().__init__(torch.Size(batch_shape), torch.Size([event_dim]), validate_args=False)

    @property
    def has_rsample(self) -> bool:  # type: ignore[override]
        return self._has_rsample

    @constraints.dependent_property
    def support(self):
        return self._support

    def expand(self, batch_shape, _instance=None):
        return EstimatorDistribution(
            self._log_prob_fn, self._sample_fn, self._event_dim, module=self.module,
            has_rsample=self._has_rsample, support=self._support, batch_shape=batch_shape,
        )

    def _draw(self, sample_shape) -> torch.Tensor:
        shape = self._extended_shape(torch.Size(sample_shape))
        n = math.prod(shape[:-1])
        return self._sample_fn(max(n, 1))[:n].reshape(shape)

    def rsample(self, sample_shape=()) -> torch.Tensor:
        if not self._has_rsample:
            raise NotImplementedError("this estimator's sampler is not reparameterised.")
        return self._draw(sample_shape)

    def sample(self, sample_shape=()) -> torch.Tensor:
        with torch.no_grad():
            return self._draw(sample_shape)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        value = torch.as_tensor(value)
        if value.shape[-1:] != self.event_shape:
            raise ValueError(
                f"value has trailing shape {tuple(value.shape[-1:])}, expected {tuple(self.event_shape)}."
            )
        flat = value.reshape(-1, self._event_dim)
        lp = self._log_prob_fn(flat).reshape(value.shape[:-1])
        return lp.expand(torch.broadcast_shapes(lp.shape, self.batch_shape))


def freeze(module: torch.nn.Module, name: str, frozen: bool) -> torch.nn.Module:
    """Freeze (``requires_grad=False``) or register ``module`` with ``pyro.module``."""
    from probest.compose import register_module

    return register_module(name, module, frozen=frozen)
