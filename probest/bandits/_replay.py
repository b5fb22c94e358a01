"""The replay engine: log-likelihoods of observed choices under many candidate parameters.

Both learning models are replayed on ``(n_subjects, n_candidates, K)`` torch tensors, one
time step at a time, so every candidate of every subject advances together (float64 on the
estimator's device).  Simulation (:mod:`probest.bandits._simulate`) runs the very same step
functions, so a replay at the true parameters reproduces the simulated probabilities exactly.

Exp3 (Auer et al. 2002; the learning-rate MLE of Aubert, Lehéricy & Reynaud-Bouret 2023)::

    q_t = softmax(eta_t * S_{t-1});  p_t = (1 - gamma) q_t + gamma / K
    loss: S_t(k) = S_{t-1}(k) + 1 - 1{A_t = k} (1 - X_t) / p_t(k)
    gain: S_t(k) = S_{t-1}(k) + 1{A_t = k} X_t / p_t(k)

eta_t = c (constant), c T^-alpha (horizon; T the subject's number of trials) or c t^-alpha
(anytime).  Importance weights ``1 / p_t(A_t)`` are capped at ``exp(-LOG_P_FLOOR)`` = 1e150:
the cap binds only where the trial's own log-likelihood is below -345 nats, and it keeps the
replay finite for every candidate.

Rescorla–Wagner softmax: ``p_t = softmax(beta Q_{t-1})``, ``Q_t(A_t) += alpha (X_t - Q(A_t))``.
"""

from __future__ import annotations

import math

import torch

#: log of the smallest probability an importance weight divides by (weights <= 1e150).
LOG_P_FLOOR = -345.0
#: exp's argument floor in the softmax sums (exp(-700) = 1e-304: no sum with a 1 changes)
EXP_FLOOR = -700.0
SCHEDULES = ("constant", "horizon", "anytime")


def exp3_policy(S: torch.Tensor, eta: torch.Tensor, gamma: float) -> torch.Tensor:
    """``log p_t`` ``(..., K)`` from the cumulated estimates ``S`` and the rate ``eta``."""
    logq = torch.log_softmax(eta.unsqueeze(-1) * S, dim=-1)
    if gamma <= 0.0:
        return logq
    K = S.shape[-1]
    return torch.logaddexp(logq + math.log1p(-gamma), torch.full_like(logq, math.log(gamma / K)))


def exp3_update(S: torch.Tensor, onehot: torch.Tensor, x: torch.Tensor, logp_a: torch.Tensor,
                iw: str) -> torch.Tensor:
    """``S_t`` from ``S_{t-1}``: ``onehot`` ``(..., K)`` the chosen arm, ``x`` its reward,
    ``logp_a`` the log-probability it had."""
    w = torch.exp(-torch.clamp(logp_a, min=LOG_P_FLOOR))
    if iw == "loss":
        return S + (1.0 - onehot * ((1.0 - x) * w).unsqueeze(-1))
    return S + onehot * (x * w).unsqueeze(-1)


def eta_factor(schedule: str, alpha: float, lengths: torch.Tensor) -> torch.Tensor:
    """``(n_subjects, 1)`` multiplier of c that does not depend on t (horizon: T^-alpha)."""
    if schedule == "horizon":
        return lengths.to(torch.float64).unsqueeze(1) ** (-alpha)
    return torch.ones(len(lengths), 1, dtype=torch.float64, device=lengths.device)


def replay_exp3(c: torch.Tensor, actions: torch.Tensor, rewards: torch.Tensor,
                lengths: torch.Tensor, n_arms: int, *, schedule: str = "constant",
                alpha: float = 0.5, gamma: float = 0.0, iw: str = "loss",
                n_used: torch.Tensor | None = None, record: bool = False):
    """Replay every subject's choices under every candidate rate.

    Parameters
    ----------
    c : (n_subjects, n_candidates) tensor
        Candidate scales c of the learning rate (positive).
    actions, rewards : (n_subjects, T_max) tensors
        Padded choices (long) and rewards (float); cells past a subject's length are ignored.
    lengths : (n_subjects,) long tensor
        Number of trials of each subject (the horizon T of ``schedule="horizon"``).
    n_used : (n_subjects,) long tensor, optional
        Sum the log-likelihood over the first ``n_used`` trials only (truncation).
    record : bool
        Also return ``log p_t`` of every trial, ``(n_subjects, n_candidates, T_max, K)``.

    Returns
    -------
    loglik : (n_subjects, n_candidates) tensor
    logp : tensor or None
    """
    S_, C = c.shape
    dtype, dev = c.dtype, c.device
    n_used = lengths if n_used is None else n_used
    T = int(n_used.max()) if not record else int(lengths.max())
    base = c * eta_factor(schedule, alpha, lengths).to(dtype)
    if not record:
        return _loglik_exp3(base, actions, rewards, n_used, T, n_arms, schedule, alpha,
                            float(gamma), iw), None
    S = torch.zeros(S_, C, n_arms, dtype=dtype, device=dev)
    onehot_all = torch.nn.functional.one_hot(actions[:, :T], n_arms).to(dtype)  # (S, T, K)
    x_all = rewards[:, :T].to(dtype)
    total = torch.zeros(S_, C, dtype=dtype, device=dev)
    keep = (torch.arange(T, device=dev).unsqueeze(0) < n_used.unsqueeze(1)).to(dtype)  # (S, T)
    idx_all = actions[:, :T]
    logps = [] if record else None
    for t in range(T):
        eta = base * ((t + 1) ** (-alpha)) if schedule == "anytime" else base
        logp = exp3_policy(S, eta, gamma)
        idx = idx_all[:, t].view(S_, 1, 1).expand(S_, C, 1)
        logp_a = logp.gather(-1, idx).squeeze(-1)
        total = total + logp_a * keep[:, t : t + 1]
        if record:
            logps.append(logp)
        S = exp3_update(S, onehot_all[:, t].unsqueeze(1), x_all[:, t].unsqueeze(1), logp_a, iw)
    return total, (torch.stack(logps, dim=2) if record else None)


def _loglik_exp3(base, actions, rewards, n_used, T, K, schedule, alpha, gamma, iw):
    """The log-likelihood alone, in fewer and cheaper kernels than the recording replay
    (the grid search's hot loop: 100 subjects x 10^4 trials x 100 candidates, K = 2, one
    CPU thread: 5.0 s -> 0.6 s).

    Equal to the recording replay up to rounding: for the loss estimator the ``+1`` every
    arm receives is dropped (softmax is invariant to it); the policy is the max-shifted
    softmax of the chosen arm only, with the exploration mixture applied to that one
    probability; for K = 2 only the difference D = S(1) - S(0) is tracked, and
    ``q_t(A_t) = sigmoid(+-eta_t D)``.  Autograd-safe (the Pyro model differentiates it):
    when a gradient is needed the state is updated out of place.
    """
    S_, C = base.shape
    dtype, dev = base.dtype, base.device
    x = rewards[:, :T].to(dtype).T.unsqueeze(-1)  # (T, S, 1)
    inc = (x - 1.0) if iw == "loss" else x  # weight multiplier of the chosen arm's update
    scale = None
    if schedule == "anytime":
        scale = torch.arange(1, T + 1, dtype=dtype, device=dev).pow(-alpha).view(T, 1, 1)
    keep = None
    if bool((n_used < T).any()):
        keep = (torch.arange(T, device=dev).unsqueeze(1) < n_used.unsqueeze(0)).to(dtype)
        keep = keep.unsqueeze(-1)  # (T, S, 1)
    g1, g0 = 1.0 - gamma, gamma / K
    total = torch.zeros(S_, C, dtype=dtype, device=dev)
    inplace = not (torch.is_grad_enabled() and base.requires_grad)  # else autograd-safe

    def chosen(logq_or_q, log_space):
        """log p_t(A_t) and the importance weight 1 / p_t(A_t)."""
        if gamma > 0.0:  # p >= gamma / K: no floor needed
            p = (logq_or_q.exp() if log_space else logq_or_q) * g1 + g0
            return torch.log(p), 1.0 / p
        lp = logq_or_q if log_space else torch.log(logq_or_q)
        return lp, torch.exp(-lp.clamp(min=LOG_P_FLOOR))  # weight <= 1e150, finite grads

    if K == 2:
        sign = actions[:, :T].T.to(dtype).unsqueeze(-1) * 2.0 - 1.0  # +1 if A_t = 1
        inc = inc * sign
        eta_sign = sign if scale is None else sign * scale
        D = torch.zeros(S_, C, dtype=dtype, device=dev)
        for t in range(T):
            u = D * base
            u.mul_(eta_sign[t])
            if gamma > 0.0:
                lp, w = chosen(torch.sigmoid(u), False)
            else:
                lp, w = chosen(torch.nn.functional.logsigmoid(u), True)
            _accumulate(total, lp, keep, t)
            if inplace:
                D.addcmul_(w, inc[t])
            else:
                D = D + w * inc[t]
        return total
    idx = actions[:, :T].T.contiguous()
    Sk = torch.zeros(K, S_, C, dtype=dtype, device=dev)
    for t in range(T):
        Z = Sk * base
        if scale is not None:
            Z.mul_(scale[t])
        Z = Z - Z.amax(0)
        ix = idx[t].view(1, S_, 1).expand(1, S_, C)
        # exp(-700) = 1e-304 next to the max's exp(0) = 1 changes no sum; far-negative
        # arguments take exp's slow path (5x)
        e = torch.exp(Z.clamp(min=EXP_FLOOR))
        if gamma > 0.0:
            lp, w = chosen(e.gather(0, ix)[0] / e.sum(0), False)
        else:
            lp, w = chosen(Z.gather(0, ix)[0] - torch.log(e.sum(0)), True)
        _accumulate(total, lp, keep, t)
        if inplace:
            Sk.scatter_add_(0, ix, (w * inc[t]).unsqueeze(0))
        else:
            Sk = Sk.scatter_add(0, ix, (w * inc[t]).unsqueeze(0))
    return total


def _accumulate(total, lp, keep, t):
    if keep is None:
        total.add_(lp)
    else:
        total.addcmul_(lp, keep[t])


def first_small_prob(logp: torch.Tensor, lengths: torch.Tensor, threshold: float) -> torch.Tensor:
    """Upsilon: per subject, the first trial t (1-based) with ``min_k p_t(k) < threshold``
    (included in the truncated sum), or the subject's length when that never happens.
    ``logp`` is ``(n_subjects, T_max, K)``."""
    small = logp.min(-1).values < math.log(threshold)  # (S, T)
    T = logp.shape[1]
    small &= torch.arange(T, device=logp.device).unsqueeze(0) < lengths.unsqueeze(1)
    first = torch.where(small.any(1), small.to(torch.int64).argmax(1) + 1, lengths)
    return torch.minimum(first, lengths)


def replay_rw(alpha: torch.Tensor, beta: torch.Tensor, actions: torch.Tensor,
              rewards: torch.Tensor, lengths: torch.Tensor, n_arms: int, *, q0: float = 0.5,
              record: bool = False):
    """Rescorla–Wagner softmax replay; ``alpha``/``beta`` are ``(n_subjects, n_candidates)``.
    Same returns as :func:`replay_exp3`."""
    S_, C = alpha.shape
    dtype, dev = alpha.dtype, alpha.device
    T = int(lengths.max())
    Q = torch.full((S_, C, n_arms), float(q0), dtype=dtype, device=dev)
    onehot_all = torch.nn.functional.one_hot(actions[:, :T], n_arms).to(dtype)
    x_all = rewards[:, :T].to(dtype)
    keep = (torch.arange(T, device=dev).unsqueeze(0) < lengths.unsqueeze(1)).to(dtype)
    total = torch.zeros(S_, C, dtype=dtype, device=dev)
    idx_all = actions[:, :T]
    logps = [] if record else None
    for t in range(T):
        logp = torch.log_softmax(beta.unsqueeze(-1) * Q, dim=-1)
        idx = idx_all[:, t].view(S_, 1, 1).expand(S_, C, 1)
        total = total + logp.gather(-1, idx).squeeze(-1) * keep[:, t : t + 1]
        if record:
            logps.append(logp)
        oh = onehot_all[:, t].unsqueeze(1)
        Q = Q + oh * (alpha.unsqueeze(-1) * (x_all[:, t].view(S_, 1, 1) - Q))
    return total, (torch.stack(logps, dim=2) if record else None)
