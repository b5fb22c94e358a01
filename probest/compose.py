"""Helpers to use fitted probest estimators inside Pyro models.

Conventions (see docs/conventions.md):

* density estimators: ``est.to_pyro()`` is a ``pyro.distributions.Distribution`` over one
  observation (``event_shape == (n_features,)``), so ``pyro.sample("x", est.to_pyro())``
  works under ``pyro.plate``;
* conditional models (regressors, classifiers): ``est.to_pyro(X)`` is the predictive
  distribution of ``y`` given ``X`` with ``batch_shape == (n_samples,)``; classifiers return a
  ``Categorical`` over class *indices* (``est.classes_[i]``);
* networks: a ``PyroModule`` registered with :func:`register_module`, frozen unless asked.
"""

from __future__ import annotations

from typing import Any

import torch


def register_module(name: str, module: torch.nn.Module, *, frozen: bool = True) -> torch.nn.Module:
    """Register ``module`` with ``pyro.module`` under ``name``.

    ``frozen=True`` (default) registers nothing trainable: parameters keep
    ``requires_grad=False`` so SVI leaves them alone.  ``frozen=False`` sets
    ``requires_grad=True`` and registers them, so an SVI guide/model trains them further.
    """
    import pyro

    for p in module.parameters():
        p.requires_grad_(not frozen)
    if frozen:
        return module
    return pyro.module(name, module)


def weighted_factor(name: str, log_prob: torch.Tensor, weight: torch.Tensor | None = None) -> None:
    """``pyro.factor(name, sum(w * log_prob))``: per-observation weights, zeros allowed.

    ``poutine.scale`` rejects zero weights; a factor does not.
    """
    import pyro

    if weight is not None:
        log_prob = torch.as_tensor(weight, dtype=log_prob.dtype, device=log_prob.device) * log_prob
    pyro.factor(name, log_prob.sum())


def scoped(prefix: str) -> Any:
    """``pyro.contrib.autoname.scope(prefix=...)``: distinct site names for two estimators."""
    from pyro.contrib.autoname import scope

    return scope(prefix=prefix)
