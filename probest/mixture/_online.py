"""Stepwise (online) EM for :meth:`GaussianMixture.partial_fit`.

The running state is the *normalised* sufficient statistics ``s`` (per unit of sample
weight, centred at the first chunk's mean).  Chunk ``t`` (t = 1, 2, ...) contributes its
own normalised statistics ``s_t`` computed with the current parameters, and

    s <- (1 - rho_t) s + rho_t s_t,    rho_t = (t + learning_offset) ** -learning_decay,

followed by the closed-form M-step on ``s`` (Cappé & Moulines, 2009; Liang & Klein, 2009).
The first chunk initialises ``s`` (rho = 1).  With ``learning_decay`` in (0.5, 1] the steps
satisfy the Robbins-Monro conditions, so repeated passes over a fixed data set approach a
stationary point of its likelihood (the batch EM fit).
"""

from __future__ import annotations

import torch
from sklearn.utils.validation import check_is_fitted

from probest._validation import check_sample_weight, check_scale
from probest.mixture import _base, _xp
from probest.mixture._driver import GMMProgram
from probest.mixture._engines import LocalEngine
from probest.mixture._stats import SuffStats, e_step_stats, m_step
from probest.mixture._tasks import Client


def _scaled(st: SuffStats, c) -> SuffStats:
    return SuffStats(*(t * c for t in st.astuple()))


def partial_fit_step(est, X, sample_weight=None):
    """One stepwise-EM update of ``est`` on the chunk ``X`` (see the module docstring)."""
    first = not hasattr(est, "_stream_")
    if first:
        est._validate_params()
    X, device = est._check_X(X, reset=first, min_samples=1)
    n, d = X.shape
    w = check_sample_weight(sample_weight, n)
    K, ct = est.n_components, est.covariance_type
    width = K * d if ct == "full" else K
    if first:
        if n < K:
            raise ValueError(f"The first partial_fit chunk has {n} rows; it needs at least "
                             f"n_components = {K} to initialise the components.")
        with est._fit_context() as ctx:
            est._resolve(X, device)
            check_scale(X, owner=type(est).__name__, dtype=est.dtype_)
            data = _client(est, X, w, width)
            # the first chunk starts as a batch fit does (GMMProgram, one client)
            program = GMMProgram(
                LocalEngine([data]), n_components=K, covariance_type=ct,
                reg_covar=est.reg_covar, init_params=est.init_params, personalize=False,
                seed=est._init_seed(ctx), given=_base.user_params(est, d, est.device_, est.dtype_),
                init_rows=None if est.batch_size is None else max(est.batch_size, 10_000),
                generator=ctx.generator)
            start = program.initialize(0)
            params, weights = start["params"], start["weights"]
        est._stream_ = {"ref": program.ref, "stats": None}
        est.n_steps_ = 0
        est.lower_bounds_ = []
    else:
        check_is_fitted(est)
        params = _base.params_from_numpy(est)
        weights = torch.as_tensor(_base.host(est.weights_), device=est.device_,
                                  dtype=est.dtype_)
        data = _client(est, X, w, width)
    state = est._stream_
    chunk = e_step_stats(data.em_data, torch.log(weights), params, state["ref"])
    chunk = _scaled(chunk, 1.0 / chunk.n)
    est.n_steps_ += 1
    t = est.n_steps_
    if state["stats"] is None:
        rho = 1.0
        state["stats"] = chunk
    else:
        rho = (t + getattr(est, "learning_offset", 2.0)) ** -getattr(est, "learning_decay", 0.6)
        state["stats"] = _scaled(state["stats"], 1.0 - rho) + _scaled(chunk, rho)
    weights, params, _ = m_step(state["stats"], state["ref"], ct, est.reg_covar,
                                previous=params)
    _base.params_to_numpy(est, params, weights)
    est.lower_bound_ = float(chunk.loglik)  # the chunk's mean log-likelihood before the step
    est.lower_bounds_.append(est.lower_bound_)
    est.n_iter_ = t
    est.converged_ = False  # a stream has no convergence test
    est.step_size_ = rho
    if device is not None:
        _xp.to_torch_attributes(est, est.device_)
    return est


def _client(est, X, w, width) -> Client:
    return Client(0, X, sample_weight=w, device=est.device_, dtype=est.dtype_,
                  batch_size=est.batch_size, width=width)
