"""Helpers to use fitted probest estimators inside Pyro models.

Conventions (see docs/conventions.md):

* density estimators: ``est.to_pyro()`` is a ``pyro.distributions.Distribution`` over one
  observation (``event_shape == (n_features,)``), so ``pyro.sample("x", est.to_pyro())``
  works under ``pyro.plate``;
* conditional models (regressors, classifiers): ``est.to_pyro(X)`` is the predictive
  distribution of ``y`` given ``X`` with ``batch_shape == (n_samples,)``; classifiers return a
  ``Categorical`` over class *indices* (``est.classes_[i]``);
* networks: a ``PyroModule`` registered with :func:`register_module`, frozen unless asked;
* any density with a ``log_prob`` and a sampler (flows with preprocessing Jacobians, an
  ODE solve, ...): :class:`EstimatorDistribution` wraps the two closures as a Pyro
  distribution over one observation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from pyro.distributions import TorchDistribution
from torch.distributions import constraints

__all__ = ["EstimatorDistribution", "register_module", "scoped", "weighted_factor"]


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


class EstimatorDistribution(TorchDistribution):
    """A Pyro distribution over one observation ``x`` of ``event_dim`` values, from closures.

    For densities that are more than a bare torch distribution (a flow behind a
    preprocessing bijection, a CNF whose log-density needs an ODE solve), so that
    ``pyro.sample("x", est.to_pyro())`` works in a model, under ``pyro.plate`` too.

    Parameters
    ----------
    log_prob_fn : callable
        ``log_prob_fn(x) -> (n,)`` log-densities of ``x`` of shape ``(n, event_dim)``.
    sample_fn : callable
        ``sample_fn(n) -> (n, event_dim)`` draws (differentiable when ``has_rsample``).
    event_dim : int
        Length of one observation: ``event_shape == (event_dim,)``.
    module : torch.nn.Module, optional
        The module whose parameters the density depends on (kept as ``.module``, e.g. the
        one registered with :func:`register_module`).
    has_rsample : bool
        Whether ``sample_fn`` is reparameterised; otherwise :meth:`rsample` raises
        ``NotImplementedError``.
    support : torch.distributions.constraints.Constraint
        Default ``real_vector``; e.g. an ``independent(integer_interval(...), 1)`` for
        integer data.
    batch_shape : tuple
        Usually ``()``; :meth:`expand` (used by ``pyro.plate``) sets it.
    validate_args : None
        Accepted for torch's ``Distribution`` signature; argument validation is off (the
        closures check their own inputs).

    Attributes
    ----------
    module : torch.nn.Module or None
        The module the density depends on, as given.
    has_rsample : bool
        Whether :meth:`rsample` is available.
    support : torch.distributions.constraints.Constraint
        The support, as given.

    Notes
    -----
    ``log_prob(value)`` takes ``value`` of shape ``(..., event_dim)`` and returns shape
    ``broadcast(value.shape[:-1], batch_shape)``; ``sample(shape)`` (no gradients) and
    ``rsample(shape)`` return ``shape + batch_shape + (event_dim,)``.

    Examples
    --------
    >>> import torch
    >>> from probest.compose import EstimatorDistribution
    >>> normal = torch.distributions.Normal(0.0, 1.0)
    >>> d = EstimatorDistribution(lambda x: normal.log_prob(x).sum(-1),
    ...                           lambda n: torch.randn(n, 2), 2)
    >>> d.event_shape, d.log_prob(torch.zeros(5, 2)).shape
    (torch.Size([2]), torch.Size([5]))
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
