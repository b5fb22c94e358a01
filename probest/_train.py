"""The stochastic-gradient training loop shared by the torch-backed families.

One loop, :func:`train`, runs an optimiser (Adam by default) on ``loss_fn(step) -> scalar
tensor`` for at most ``max_iter`` steps, with gradient clipping, an optional learning-rate
schedule, an optional exponential moving average (EMA) of the weights and optional early
stopping on a validation objective.  Its hyperparameters live in one :class:`TrainConfig`;
the data path lives in the caller's closures, so a family keeps full control of what a step
computes (minibatch, dequantization noise, particles, ...).

No host synchronisation per step: the loss is accumulated on the device and read
(``.item()``) only every ``log_every`` steps, which is also when the validation objective is
evaluated, a history record is written and a non-finite loss is detected.  The loop draws no
random numbers itself: every draw comes from the generators the caller's closures use (the
estimator's ``_fit_context``), so seeding is the caller's and the global RNGs are untouched.

Usage, inside a :class:`probest.base.TorchEstimator`'s ``fit``::

    from probest._train import BatchSampler, TrainConfig, train, validation_split

    with self._fit_context() as ctx:
        tr, va = validation_split(len(X), 0.2, ctx.rng)
        Xt, Xv = self._tensor(X[tr]), self._tensor(X[va])
        self.module_ = Net(X.shape[1]).to(self.device_, self.dtype_)
        draw = BatchSampler(len(Xt), self.batch_size, None, ctx.generator, self.device_)

        def loss_fn(step):                 # one minibatch objective (a 0-d tensor)
            return -self.module_(Xt[draw()]).mean()

        def val_fn():                      # held-out objective, lower is better
            return -self.module_(Xv).mean()

        cfg = TrainConfig(max_iter=self.max_iter, lr=self.lr, clip=1.0, schedule="cosine",
                          warmup=100, patience=10)
        result = train(self, self.module_, loss_fn, cfg, validation=val_fn, desc="Net")
        self.converged_, self.n_iter_ = result.converged, result.n_iter

``est.history_`` then holds one record per log step: ``iter`` (steps done), ``objective``
(mean training loss since the previous record), ``val_objective`` (with ``validation``),
``lr`` (with a schedule: the learning rate the record's last step used) and ``time``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

__all__ = ["EMA", "BatchSampler", "TrainConfig", "TrainResult", "autocast", "lr_factor", "train",
           "validation_split"]

_SCHEDULES = ("constant", "linear", "cosine")
_OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of :func:`train` (data and losses are passed to it separately).

    Parameters
    ----------
    max_iter : int
        Optimisation steps at most (early stopping may end sooner).
    lr : float
        Base learning rate.
    weight_decay : float
        Passed to the optimiser (Adam's is L2 added to the gradient, AdamW's decoupled).
    optimizer : {"adam", "adamw"} or callable
        A name, or ``factory(params, lr=..., weight_decay=...) -> torch.optim.Optimizer``.
    clip : float or None
        Rescale the gradient so its global 2-norm (over all trained parameters) is at most
        ``clip`` before each step (``torch.nn.utils.clip_grad_norm_``); None or 0 disables.
    ema : float or None
        Decay of an exponential moving average of the parameters, with warm-up
        ``min(ema, (1 + t) / (10 + t))`` at step ``t``.  The averaged weights are the ones
        validated and the ones left in the module at the end.
    schedule : None, {"constant", "linear", "cosine"} or callable
        Learning rate at (0-based) step ``t`` is ``lr * lr_factor(t, ...)``; see
        :func:`lr_factor`.  A callable is a scheduler factory
        ``factory(optimizer, max_iter) -> torch.optim.lr_scheduler.LRScheduler`` (e.g.
        ``lambda opt, n: OneCycleLR(opt, max_lr=1e-2, total_steps=n)``), stepped once per
        optimisation step.  None (default) keeps ``lr`` fixed and creates no scheduler.
    warmup : int
        Linear warm-up steps of the named schedules (``schedule=None`` with ``warmup > 0``
        means ``"constant"`` after the warm-up).
    n_logs : int
        About how many history records to write: ``log_every = max(1, max_iter // n_logs)``.
    log_every : int or None
        Steps between records (overrides ``n_logs``).  Set it to the number of steps per
        epoch to validate once per epoch.
    patience : int or None
        With a validation objective: stop after this many consecutive validations without
        an improvement larger than ``min_delta``.  None never stops early (the best
        validation weights are still kept when ``restore_best``).
    min_delta : float
        Smallest decrease of the validation objective that counts as an improvement.
    restore_best : bool
        With a validation objective, end with the weights of its best (lowest) value
        instead of the last ones.
    """

    max_iter: int
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str | Callable[..., torch.optim.Optimizer] = "adam"
    clip: float | None = 10.0
    ema: float | None = None
    schedule: str | Callable[..., Any] | None = None
    warmup: int = 0
    n_logs: int = 100
    log_every: int | None = None
    patience: int | None = None
    min_delta: float = 0.0
    restore_best: bool = True

    def __post_init__(self) -> None:
        if int(self.max_iter) < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter}.")
        if not self.lr >= 0:  # an estimator may ask for > 0; torch's optimisers allow 0
            raise ValueError(f"lr must be >= 0, got {self.lr}.")
        if isinstance(self.optimizer, str) and self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r} is not supported; choose from "
                             f"{tuple(_OPTIMIZERS)} or pass a factory.")
        if isinstance(self.schedule, str) and self.schedule not in _SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r} is not supported; choose from "
                             f"{_SCHEDULES}, None or a scheduler factory.")
        if int(self.warmup) < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}.")
        if self.patience is not None and int(self.patience) < 1:
            raise ValueError(f"patience must be >= 1 or None, got {self.patience}.")
        if self.log_every is not None and int(self.log_every) < 1:
            raise ValueError(f"log_every must be >= 1 or None, got {self.log_every}.")

    @property
    def log_interval(self) -> int:
        """Steps between history records (and validations)."""
        if self.log_every is not None:
            return int(self.log_every)
        return max(1, int(self.max_iter) // int(self.n_logs))


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` reports (the per-record values are in ``est.history_``).

    ``converged`` is False when a logged loss was non-finite; ``n_iter`` counts the steps
    taken; ``stopped_early`` says that ``patience`` ended the run; ``best_iter`` and
    ``best_validation`` are the step and value of the best validation objective (None
    without one).
    """

    converged: bool
    n_iter: int
    stopped_early: bool = False
    best_iter: int | None = None
    best_validation: float | None = None


class BatchSampler:
    """Mini-batch row indices drawn on the device (weighted rows by multinomial sampling, so
    integer weights act like repeated rows and zero weights drop rows).

    ``replace=False`` (unweighted rows only) walks through one random permutation of the
    rows per epoch instead, so every row is used exactly once per epoch; the last batch of an
    epoch is shorter when ``batch_size`` does not divide ``n`` (``steps_per_epoch`` batches).
    """

    def __init__(self, n: int, batch_size: int, weights: torch.Tensor | None,
                 generator: torch.Generator, device: torch.device, replace: bool = True):
        self.n, self.bs = n, int(min(batch_size, n)) if weights is None else int(batch_size)
        self.weights, self.gen, self.device = weights, generator, device
        self.replace = bool(replace)
        if not self.replace and weights is not None:
            raise ValueError("replace=False (epochs of permutations) takes no row weights.")
        self._perm, self._pos = None, 0

    @property
    def steps_per_epoch(self) -> int:
        """Batches per pass over the rows (``ceil(n / batch_size)``)."""
        return -(-self.n // self.bs)

    def __call__(self) -> torch.Tensor:
        if not self.replace:
            if self._perm is None or self._pos >= self.n:
                self._perm = torch.randperm(self.n, generator=self.gen, device=self.device)
                self._pos = 0
            idx = self._perm[self._pos:self._pos + self.bs]
            self._pos += self.bs
            return idx
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

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the live and the averaged weights (no-op without averaging)."""
        if self.shadow is not None:
            for p, s in zip(self.params, self.shadow, strict=True):
                tmp = p.detach().clone()
                p.copy_(s)
                s.copy_(tmp)


def autocast(amp: bool, device: torch.device):
    """bf16 autocast on CUDA when ``amp`` is set (no-op on CPU)."""
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def lr_factor(step: int, max_iter: int, schedule: str | None, warmup: int = 0) -> float:
    """Multiplier of the base learning rate at 0-based ``step`` for a named schedule.

    Warm-up: ``(step + 1) / warmup`` for ``step < warmup``.  After it, with
    ``s = (step - warmup) / max(1, max_iter - warmup)`` in ``[0, 1)``: ``"constant"`` (or
    None) gives 1, ``"linear"`` gives ``1 - s`` and ``"cosine"`` gives
    ``(1 + cos(pi s)) / 2``; both decays reach 0 at ``step = max_iter``.
    """
    if step < warmup:
        return (step + 1) / warmup
    s = (step - warmup) / max(1, max_iter - warmup)
    if schedule == "linear":
        return 1.0 - s
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * s))
    return 1.0


def validation_split(n_samples: int, fraction: float, rng: np.random.Generator | int | None,
                     stratify: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled ``(train_indices, validation_indices)`` holding out ``fraction`` of the rows
    (``sklearn.model_selection.train_test_split``; ``stratify`` keeps class proportions).

    ``rng`` is the estimator's numpy generator (``ctx.rng``) or a seed; at least one row
    lands on each side.
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < float(fraction) < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}.")
    n = int(n_samples)
    if n < 2:
        raise ValueError(f"a validation split needs at least 2 samples, got {n}.")
    n_val = min(n - 1, max(1, int(round(float(fraction) * n))))
    seed = int(np.random.default_rng(rng).integers(2**31 - 1))
    tr, va = train_test_split(np.arange(n), test_size=n_val, random_state=seed, stratify=stratify)
    return np.asarray(tr), np.asarray(va)


def _make_optimizer(cfg: TrainConfig, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    factory = _OPTIMIZERS[cfg.optimizer] if isinstance(cfg.optimizer, str) else cfg.optimizer
    return factory(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer):
    if cfg.schedule is None and not cfg.warmup:
        return None
    if callable(cfg.schedule):
        return cfg.schedule(opt, int(cfg.max_iter))
    n, name, warm = int(cfg.max_iter), cfg.schedule, int(cfg.warmup)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: lr_factor(t, n, name, warm))


def train(
    est,
    module: torch.nn.Module | Iterable[torch.Tensor],
    loss_fn: Callable[[int], torch.Tensor],
    config: TrainConfig,
    *,
    validation: Callable[[], torch.Tensor | float] | None = None,
    desc: str | None = None,
    state: tuple[Callable[[], Any], Callable[[Any], None]] | None = None,
) -> TrainResult:
    """Minimise ``loss_fn(step)`` over the trainable parameters of ``module``.

    Parameters
    ----------
    est : TorchEstimator
        Owner of the run: ``est._progress`` starts ``est.history_`` and the ``verbose``
        progress bar; its class name heads the warning.
    module : torch.nn.Module or iterable of tensors
        What is trained: the parameters with ``requires_grad`` (frozen ones are neither
        updated, nor averaged, nor snapshotted).
    loss_fn : callable
        ``loss_fn(step) -> 0-d tensor`` for 0-based ``step``; it draws its own minibatch.
    config : TrainConfig
    validation : callable, optional
        ``validation() -> 0-d tensor or float`` (lower is better), evaluated without
        gradients at every log step on the weights that would be kept (the EMA weights when
        ``config.ema``); enables ``patience`` and ``restore_best``.
    desc : str, optional
        Progress-bar label (default: the estimator's class name).
    state : (get, set), optional
        Extra training state that is not a parameter (e.g. SMC particles and their
        weights): ``get()`` returns a snapshot (copies), ``set(snapshot)`` restores it.  It
        is snapshotted whenever the parameters are (a validation improvement with
        ``restore_best``) and restored with them.

    Returns
    -------
    TrainResult
        A non-finite logged loss stops the run, warns with ``ConvergenceWarning`` and gives
        ``converged=False``; the weights are then left as they are (or, with a validation
        objective and ``restore_best``, set to the best validated ones).
    """
    if isinstance(module, torch.nn.Module):
        params = [p for p in module.parameters() if p.requires_grad]
    else:
        params = [p for p in module if p.requires_grad]
    max_iter, log_every = int(config.max_iter), config.log_interval
    opt = _make_optimizer(config, params)
    sched = _make_scheduler(config, opt)
    avg = EMA(params, config.ema)
    running, count, ok, step = None, 0, True, -1
    best, best_iter, best_snapshot, bad_checks, stopped = math.inf, None, None, 0, False
    best_state = None
    with est._progress(max_iter, desc or type(est).__name__) as prog:
        for step in range(max_iter):
            loss = loss_fn(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip:
                torch.nn.utils.clip_grad_norm_(params, config.clip)
            opt.step()
            avg.update(step)
            if sched is not None:
                lr_used = opt.param_groups[0]["lr"]  # a Python float: no device sync
                sched.step()
            running = loss.detach() if running is None else running + loss.detach()
            count += 1
            if (step + 1) % log_every and step + 1 != max_iter:
                continue
            record: dict[str, Any] = {"objective": float(running / count)}
            running, count = None, 0
            if validation is not None:
                avg.swap()  # validate (and snapshot) the weights that would be kept
                try:
                    with torch.no_grad():
                        val = float(validation())
                    improved = val < best - float(config.min_delta)  # False for NaN
                    if improved and config.restore_best:
                        best_snapshot = [p.detach().clone() for p in params]
                        if state is not None:
                            best_state = state[0]()
                finally:
                    avg.swap()
                record["val_objective"] = val
                if improved:
                    best, best_iter, bad_checks = val, step + 1, 0
                else:
                    bad_checks += 1
            if sched is not None:
                record["lr"] = float(lr_used)
            prog.log(step=step + 1, **record)
            if not np.isfinite(record["objective"]):
                ok = False
                break
            if config.patience is not None and validation is not None and bad_checks >= config.patience:
                stopped = True
                break
    if best_snapshot is not None:
        with torch.no_grad():
            for p, s in zip(params, best_snapshot, strict=True):
                p.copy_(s)
        if state is not None:
            state[1](best_state)
    elif ok:
        avg.copy_to_params()
    if not ok:
        warnings.warn(
            f"{type(est).__name__}: the training loss became non-finite; stopped early. "
            "Lower lr, use dtype='float64' or standardise the data.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return TrainResult(converged=ok, n_iter=step + 1, stopped_early=stopped, best_iter=best_iter,
                       best_validation=None if best_iter is None else best)
