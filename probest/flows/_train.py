"""The stochastic-gradient loop shared by the flow estimators.

No host synchronisation per step: mini-batch indices are drawn on the device, the loss is
accumulated on the device and read (``.item()``) only every ``log_every`` steps, which is
also when a non-finite loss is detected.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from probest._validation import check_sample_weight  # noqa: F401  (re-exported for flows)


class BatchSampler:
    """Mini-batch row indices drawn on the device (weighted rows by multinomial sampling, so
    integer weights act like repeated rows and zero weights drop rows)."""

    def __init__(self, n: int, batch_size: int, weights: torch.Tensor | None,
                 generator: torch.Generator, device: torch.device):
        self.n, self.bs = n, int(min(batch_size, n)) if weights is None else int(batch_size)
        self.weights, self.gen, self.device = weights, generator, device

    def __call__(self) -> torch.Tensor:
        if self.weights is None:
            return torch.randint(0, self.n, (self.bs,), generator=self.gen, device=self.device)
        return torch.multinomial(self.weights, self.bs, replacement=True, generator=self.gen)


class EMA:
    """Exponential moving average of parameters with warm-up ``min(decay, (1+t)/(10+t))``."""

    def __init__(self, params: list[torch.Tensor], decay: float | None):
        self.decay = float(decay) if decay else 0.0
        self.params = params
        self.shadow = [p.detach().clone() for p in params] if self.decay > 0 else None

    @torch.no_grad()
    def update(self, step: int) -> None:
        if self.shadow is None:
            return
        d = min(self.decay, (1.0 + step) / (10.0 + step))
        torch._foreach_lerp_(self.shadow, [p.detach() for p in self.params], 1.0 - d)

    @torch.no_grad()
    def copy_to_params(self) -> None:
        if self.shadow is not None:
            for p, s in zip(self.params, self.shadow, strict=True):
                p.copy_(s)


def autocast(amp: bool, device: torch.device):
    """bf16 autocast on CUDA when ``amp`` is set (no-op on CPU)."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train(
    est,
    module: torch.nn.Module,
    loss_fn: Callable[[int], torch.Tensor],
    *,
    max_iter: int,
    lr: float,
    ema: float | None,
    desc: str,
    weight_decay: float = 0.0,
    clip: float | None = 10.0,
    n_logs: int = 100,
) -> bool:
    """Adam on ``loss_fn(step)`` for ``max_iter`` steps, EMA weights copied in at the end.

    Fills ``est.history_`` (``objective`` = mean loss since the last log) and returns whether
    every logged loss was finite (False also warns with ``ConvergenceWarning``).
    """
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    avg = EMA(params, ema)
    log_every = max(1, int(max_iter) // n_logs)
    running = None
    count = 0
    ok = True
    with est._progress(max_iter, desc) as prog:
        for step in range(int(max_iter)):
            loss = loss_fn(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            avg.update(step)
            running = loss.detach() if running is None else running + loss.detach()
            count += 1
            if (step + 1) % log_every == 0 or step + 1 == max_iter:
                value = float(running / count)
                prog.log(step=step + 1, objective=value)
                running, count = None, 0
                if not np.isfinite(value):
                    ok = False
                    break
    if ok:
        avg.copy_to_params()
    else:
        warnings.warn(
            f"{type(est).__name__}: the training loss became non-finite; stopped early. "
            "Lower lr, use dtype='float64' or standardise the data.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return ok
