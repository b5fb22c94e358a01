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

    Parameters
    ----------
    name : str
        Pyro name of the module.
    module : torch.nn.Module
        The network (e.g. a fitted estimator's module).
    frozen : bool, default=True
        Keep the parameters fixed (nothing registered) or make them trainable.

    Returns
    -------
    torch.nn.Module
        ``module`` itself when frozen, else what ``pyro.module`` returns.

    Examples
    --------
    >>> import pyro
    >>> import torch
    >>> from probest.compose import register_module
    >>> net = torch.nn.Linear(2, 1)
    >>> register_module("net", net) is net, any(p.requires_grad for p in net.parameters())
    (True, False)
    >>> with pyro.settings.context(module_local_params=True):
    ...     trainable = register_module("net", net, frozen=False)
    >>> all(p.requires_grad for p in trainable.parameters())
    True
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

    Parameters
    ----------
    name : str
        Pyro site name of the factor.
    log_prob : torch.Tensor
        Per-observation log-likelihoods.
    weight : torch.Tensor or array-like, optional
        Per-observation weights (broadcast against ``log_prob``); default all ones.

    Returns
    -------
    None
        The factor is added to the running Pyro trace.

    Examples
    --------
    >>> import torch
    >>> from pyro import poutine
    >>> from probest.compose import weighted_factor
    >>> def model():
    ...     weighted_factor("loglik", torch.tensor([-1.0, -2.0, -3.0]), torch.tensor([1.0, 0.0, 2.0]))
    >>> float(poutine.trace(model).get_trace().log_prob_sum())
    -7.0
    """
    import pyro

    if weight is not None:
        log_prob = torch.as_tensor(weight, dtype=log_prob.dtype, device=log_prob.device) * log_prob
    pyro.factor(name, log_prob.sum())


def scoped(prefix: str) -> Any:
    """``pyro.contrib.autoname.scope(prefix=...)``: distinct site names for two estimators.

    Parameters
    ----------
    prefix : str
        Prefix of every sample site inside the scope (``"prefix/site"``).

    Returns
    -------
    pyro.contrib.autoname.scope
        A context manager (also usable as a decorator).

    Examples
    --------
    >>> import pyro
    >>> import pyro.distributions as dist
    >>> from pyro import poutine
    >>> from probest.compose import scoped
    >>> def model():
    ...     with scoped("a"):
    ...         pyro.sample("x", dist.Normal(0.0, 1.0))
    ...     with scoped("b"):
    ...         pyro.sample("x", dist.Normal(0.0, 1.0))
    >>> [n for n in poutine.trace(model).get_trace().nodes if "/" in n]
    ['a/x', 'b/x']
    """
    from pyro.contrib.autoname import scope

    return scope(prefix=prefix)
