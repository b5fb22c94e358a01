"""Flow modules behind :class:`FlowDensityEstimator`, with one interface.

Every model maps a preprocessed sample ``z`` to a standard-normal latent and offers
``log_prob(z, cached=False)``, ``transform(z)``, ``inverse(u)``, ``sample(n)`` and
``has_linear_layers`` (True only for EBFlow, whose ``unnormalized_log_prob`` the
score-matching objectives use).
"""

from __future__ import annotations

import torch
from torch import nn

from probest.flows._ebflow import EBFlowFC
from probest.flows._tarflow import TARFlow

FLOWS = ("nsf", "maf", "realnvp", "ebflow_fc", "tarflow")
OBJECTIVES = ("mle", "ssm", "dsm", "fdssm")


class ZukoModel(nn.Module):
    """A zuko flow (NSF / MAF / RealNVP) behind the common interface."""

    has_linear_layers = False
    has_rsample = True

    def __init__(self, kind: str, dim: int, n_transforms: int, hidden: tuple[int, ...]):
        super().__init__()
        import zuko

        cls = {"nsf": zuko.flows.NSF, "maf": zuko.flows.MAF, "realnvp": zuko.flows.RealNVP}[kind]
        self.flow = cls(dim, transforms=n_transforms, hidden_features=tuple(hidden))
        self.dim = dim

    def log_prob(self, z: torch.Tensor, cached: bool = False) -> torch.Tensor:
        return self.flow().log_prob(z)

    def transform(self, z: torch.Tensor) -> torch.Tensor:
        return self.flow().transform(z)

    def inverse(self, u: torch.Tensor) -> torch.Tensor:
        return self.flow().transform.inv(u)

    def sample(self, n: int) -> torch.Tensor:
        return self.flow().rsample((n,))


class _Adapter(nn.Module):
    """EBFlow / TARFlow behind the common interface (sampling is not reparameterised)."""

    has_rsample = False

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.dim = net.dim
        self.has_linear_layers = net.has_linear_layers

    def log_prob(self, z: torch.Tensor, cached: bool = False) -> torch.Tensor:
        if self.has_linear_layers:
            return self.net.log_prob(z, cached=cached)
        return self.net.log_prob(z)

    def unnormalized_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return self.net.unnormalized_log_prob(z)

    def transform(self, z: torch.Tensor) -> torch.Tensor:
        return self.net.transform(z)

    def inverse(self, u: torch.Tensor) -> torch.Tensor:
        return self.net.inverse(u)

    def sample(self, n: int) -> torch.Tensor:
        p = next(self.parameters())
        return self.inverse(torch.randn(n, self.dim, dtype=p.dtype, device=p.device))


def build_model(flow: str, dim: int, n_transforms: int, hidden, patch: int,
                image_shape=None) -> nn.Module:
    """The flow module for ``flow`` (validated by the caller)."""
    hidden = tuple(int(h) for h in (hidden if hidden is not None else (64, 64)))
    if flow in ("nsf", "maf", "realnvp"):
        return ZukoModel(flow, dim, n_transforms, hidden)
    if flow == "ebflow_fc":
        return _Adapter(EBFlowFC(dim, n_transforms))
    width = hidden[0] if hidden else 64
    heads = 4 if width % 4 == 0 else 1
    if image_shape is None:
        patch = max(1, min(patch, dim))
    return _Adapter(TARFlow(dim, n_blocks=max(1, n_transforms), patch=patch, width=width,
                            depth=max(1, len(hidden) - 1), heads=heads, image_shape=image_shape))
