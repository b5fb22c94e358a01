"""Gaussian noise on the A matrices of peft LoRA layers, sampled by flipout through hooks.

A LoRA layer computes ``base(x) + s * B(A(dropout(x)))``.  Both Bayesian methods of the
family keep ``B`` deterministic and put a mean-field Gaussian on ``A``:

* BLoB: ``q(A_ij) = N(M_ij, Omega_ij^2)`` with ``Omega = rho^2`` and a trained ``rho``;
* TFB: ``q(A'_ij) = N(A'_ij, (sigma / d_i)^2)`` after the SVD re-parameterisation of ``B``
  (:mod:`probest.lora._tfb`), one scalar ``sigma`` for every layer.

The noise term is added to the output of ``lora_A`` by a forward hook (peft's ``forward``
is never replaced).  Flipout: one noise matrix ``E = Omega * eps`` per forward pass, and
per example independent random signs ``s_in`` (input dims) and ``s_out`` (rank dims), so
example ``b`` sees the weight perturbation ``diag(s_out_b) E diag(s_in_b)``; the extra
output is ``((x * s_in) @ E^T) * s_out``.  Its mean is 0 and its per-example variance is
``sum_i x_i^2 Omega_ji^2`` (exactly that of a fresh ``A`` draw per example).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn


class NoiseState:
    """What every hook of one model shares: on/off, the generator, TFB's ``sigma``."""

    def __init__(self) -> None:
        self.active = False
        self.generator: torch.Generator | None = None
        self.sigma = 0.0

    def draw(self, shape, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=like.device, dtype=like.dtype)

    def signs(self, shape, like: torch.Tensor) -> torch.Tensor:
        bits = torch.randint(0, 2, shape, generator=self.generator, device=like.device)
        return bits.to(like.dtype).mul_(2.0).sub_(1.0)


class GaussianA(nn.Module):
    """Gaussian noise on one LoRA ``A`` (``r x in``), added by a forward hook on ``lora_A``.

    ``kind="blob"``: the standard deviation is ``rho^2`` (``rho`` a parameter, initialised
    ``U(init_std / sqrt(2), init_std)``); ``kind="tfb"``: it is ``state.sigma * inv_d[i]``
    for row ``i`` (``inv_d = 1 / d``, zero where ``B``'s singular value vanishes).
    """

    def __init__(self, lora_a: nn.Linear, state: NoiseState, kind: str, init_std: float = 0.05,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.state = state
        r, d_in = lora_a.weight.shape
        w = lora_a.weight
        if kind == "blob":
            u = torch.rand((r, d_in), generator=generator, device=w.device, dtype=w.dtype)
            lo = init_std / math.sqrt(2.0)
            self.rho = nn.Parameter(lo + (init_std - lo) * u)
        else:
            self.register_buffer("inv_d", torch.zeros(r, device=w.device, dtype=w.dtype))
        self._handle = lora_a.register_forward_hook(self._hook)
        self._weight = [lora_a]  # not a submodule: the mean lives in peft's state dict

    @property
    def mean(self) -> torch.Tensor:
        return self._weight[0].weight

    def std(self) -> torch.Tensor:
        """The standard deviation matrix ``Omega`` (``r x in``)."""
        if self.kind == "blob":
            return self.rho ** 2
        return (self.state.sigma * self.inv_d)[:, None].expand_as(self.mean)

    def noise(self, x: torch.Tensor) -> torch.Tensor:
        """The flipout noise term for input ``x`` (``(batch, ..., in)``)."""
        omega = self.std()
        eps = self.state.draw(omega.shape, omega)
        e = omega * eps
        batch = x.shape[0]
        ones = (1,) * (x.dim() - 2)  # one sign vector per example, shared by its tokens
        s_in = self.state.signs((batch, *ones, x.shape[-1]), x)
        s_out = self.state.signs((batch, *ones, e.shape[0]), x)
        return ((x * s_in) @ e.T) * s_out

    def _hook(self, module: nn.Module, args: tuple[Any, ...], output: torch.Tensor):
        if not self.state.active or (self.kind == "tfb" and self.state.sigma == 0.0):
            return output
        return output + self.noise(args[0])

    def kl(self, prior_std: float) -> torch.Tensor:
        """Closed-form ``KL(q || N(0, prior_std^2))`` summed over the entries of ``A``."""
        return gaussian_kl(self.mean, self.std(), prior_std)

    def remove(self) -> None:
        self._handle.remove()


def gaussian_kl(mean: torch.Tensor, std: torch.Tensor, prior_std: float) -> torch.Tensor:
    """``sum KL(N(mean, std^2) || N(0, prior_std^2))``:
    ``log(beta / std) + (std^2 + mean^2) / (2 beta^2) - 1/2`` per entry."""
    beta2 = float(prior_std) ** 2
    return (math.log(prior_std) - torch.log(std) + (std ** 2 + mean ** 2) / (2 * beta2)
            - 0.5).sum()


def lora_layers(model: nn.Module, adapter: str | None = None) -> dict[str, tuple[nn.Module, str]]:
    """``{module name: (peft LoRA layer, adapter name)}`` of every LoRA layer in ``model``
    (the active adapter unless ``adapter`` is given)."""
    out = {}
    for name, mod in model.named_modules():
        a = getattr(mod, "lora_A", None)
        if isinstance(a, nn.ModuleDict) and len(a):
            names = [adapter] if adapter else list(getattr(mod, "active_adapters", None) or a.keys())
            for ad in names:
                if ad in a:
                    out[f"{name}|{ad}"] = (mod, ad)
    return out


def install(model: nn.Module, kind: str, *, adapter: str | None = None, init_std: float = 0.05,
            generator: torch.Generator | None = None) -> tuple[NoiseState, nn.ModuleDict]:
    """Hook a :class:`GaussianA` onto every LoRA ``A`` of ``model``; returns the shared
    state and the noise modules (keys: LoRA layer names with ``.`` replaced by ``/``)."""
    state = NoiseState()
    mods = nn.ModuleDict()
    for key, (layer, ad) in lora_layers(model, adapter).items():
        mods[key.replace(".", "/")] = GaussianA(layer.lora_A[ad], state, kind, init_std, generator)
    if not len(mods):
        raise ValueError("the model has no peft LoRA layers to make Bayesian; wrap it with "
                         "peft.get_peft_model(model, LoraConfig(...)) first.")
    return state, mods


def remove(mods: nn.ModuleDict) -> None:
    for m in mods.values():
        m.remove()
