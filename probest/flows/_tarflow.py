"""TARFlow: an affine autoregressive flow whose conditioner is a small causal transformer.

Features are grouped into tokens of ``patch`` consecutive features (zero-padded at the end), or,
for images given by ``image_shape=(h, w)``, into square ``patch x patch`` tiles (the features
are permuted tile by tile first; a permutation has unit Jacobian).
Each block maps ``x -> z`` with ``z_t = (x_t - mu_t(x_<t)) * exp(-a_t(x_<t))`` where
``(mu_t, a_t)`` come from a causal transformer that reads the tokens shifted by one (so token
``t`` sees tokens ``< t`` only); the token order alternates between blocks.  The log-density
is exact: ``log p(x) = log N(z) - sum a``.  Sampling inverts the blocks token by token.

Implemented from the maths of Zhai et al., "Normalizing Flows are Capable Generative Models"
(TARFlow, 2024); no reference code is used.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_LOG2PI = math.log(2 * math.pi)


class _CausalBlock(nn.Module):
    def __init__(self, n_tokens: int, patch: int, width: int, depth: int, heads: int, flip: bool):
        super().__init__()
        self.n_tokens, self.patch, self.flip = n_tokens, patch, flip
        self.inp = nn.Linear(patch, width)
        self.pos = nn.Parameter(torch.randn(n_tokens, width) * 0.02)
        self.start = nn.Parameter(torch.zeros(1, 1, patch))
        layer = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=2 * width, dropout=0.0, batch_first=True,
            norm_first=True,
        )
        self.body = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.out = nn.Linear(width, 2 * patch)
        nn.init.zeros_(self.out.weight)  # the block starts as the identity
        nn.init.zeros_(self.out.bias)
        mask = torch.triu(torch.full((n_tokens, n_tokens), float("-inf")), diagonal=1)
        self.register_buffer("mask", mask)

    def _params(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (B, T, P) in this block's token order; shift right so token t sees x_<t.
        shifted = torch.cat([self.start.expand(x.shape[0], 1, -1), x[:, :-1]], dim=1)
        h = self.inp(shifted) + self.pos
        h = self.body(h, mask=self.mask.to(h.dtype), is_causal=True)
        mu, a = self.out(h).chunk(2, dim=-1)
        return mu, torch.tanh(a / 4.0) * 4.0  # bounded log-scales keep training stable

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.flip:
            x = x.flip(1)
        mu, a = self._params(x)
        z = (x - mu) * torch.exp(-a)
        if self.flip:
            z, a = z.flip(1), a.flip(1)
        return z, a

    @torch.no_grad()
    def inverse(self, z: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        if self.flip:
            z, valid = z.flip(1), valid.flip(0)
        x = torch.zeros_like(z)
        for t in range(self.n_tokens):
            mu, a = self._params(x)
            x[:, t] = (z[:, t] * torch.exp(a[:, t]) + mu[:, t]) * valid[t]
        if self.flip:
            x = x.flip(1)
        return x


class TARFlow(nn.Module):
    """``n_blocks`` causal-transformer affine blocks over tokens of ``patch`` features."""

    has_linear_layers = False

    def __init__(self, dim: int, n_blocks: int = 2, patch: int = 4, width: int = 64,
                 depth: int = 1, heads: int = 4, image_shape=None):
        super().__init__()
        order = torch.arange(dim)
        if image_shape is not None:
            h, w = (int(v) for v in image_shape)
            if h * w != dim or h % patch or w % patch:
                raise ValueError(
                    f"image_shape={tuple(image_shape)} must multiply to n_features={dim} and be "
                    f"divisible by patch={patch}."
                )
            grid = order.reshape(h // patch, patch, w // patch, patch)
            order = grid.permute(0, 2, 1, 3).reshape(-1)  # tile by tile, row-major inside
            patch = patch * patch
        self.register_buffer("order", order)
        self.register_buffer("inv_order", torch.argsort(order))
        self.dim, self.patch = dim, patch
        self.n_tokens = -(-dim // patch)
        self.blocks = nn.ModuleList(
            _CausalBlock(self.n_tokens, patch, width, depth, heads, flip=bool(i % 2))
            for i in range(n_blocks)
        )
        valid = torch.zeros(self.n_tokens * patch, dtype=torch.bool)
        valid[:dim] = True
        self.register_buffer("valid", valid.reshape(self.n_tokens, patch))

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, self.order]
        pad = self.n_tokens * self.patch - self.dim
        if pad:
            x = torch.cat([x, x.new_zeros(x.shape[:-1] + (pad,))], dim=-1)
        return x.reshape(x.shape[0], self.n_tokens, self.patch)

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self._tokens(x)
        ld = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for block in self.blocks:
            h, a = block(h)
            h = torch.where(self.valid, h, torch.zeros_like(h))  # padding stays zero
            ld = ld - (a * self.valid).sum((1, 2))
        return h.reshape(x.shape[0], -1)[:, : self.dim][:, self.inv_order], ld

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        z, ld = self._run(x)
        return -0.5 * (z * z).sum(-1) - 0.5 * self.dim * _LOG2PI + ld

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)[0]

    @torch.no_grad()
    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        h = self._tokens(z)
        for block in reversed(self.blocks):
            h = block.inverse(h, self.valid.to(h.dtype))
        return h.reshape(z.shape[0], -1)[:, : self.dim][:, self.inv_order]
