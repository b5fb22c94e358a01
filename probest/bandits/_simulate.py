"""Simulated learners: Exp3 (the paper's model) and Rescorla–Wagner softmax.

Both run the replay engine's own step functions (:mod:`probest.bandits._replay`), so
replaying a simulation at its true parameters gives back its probabilities bit for bit.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from probest._torch import draw_seed
from probest.bandits._replay import SCHEDULES, eta_factor, exp3_policy, exp3_update


@dataclasses.dataclass
class BanditSimulation:
    """Simulated choices with their true probabilities.

    Parameters
    ----------
    actions : ndarray of shape (n_subjects, T)
        Chosen arms (0..K-1).
    rewards : ndarray of shape (n_subjects, T)
        Reward of the chosen arm, in [0, 1].
    probs : ndarray of shape (n_subjects, T, K)
        The true choice probabilities p_t of every trial.
    params : dict
        The true parameters per subject (``learning_rate`` for Exp3, ``alpha``/``beta``
        for Rescorla–Wagner).

    Attributes
    ----------
    actions, rewards, probs, params
        As given.
    n_subjects : int
        Number of simulated subjects.

    Examples
    --------
    >>> from probest.bandits import simulate_exp3
    >>> sim = simulate_exp3(2, 50, reward_means=(0.3, 0.7), learning_rate=0.1, random_state=0)
    >>> sim.actions.shape, sim.probs.shape
    ((2, 50), (2, 50, 2))
    >>> sorted(sim.events())
    ['actions', 'rewards', 'subjects']
    """

    actions: np.ndarray
    rewards: np.ndarray
    probs: np.ndarray
    params: dict

    @property
    def n_subjects(self) -> int:
        return self.actions.shape[0]

    def events(self) -> dict[str, np.ndarray]:
        """The long-format event log ``{"actions", "rewards", "subjects"}``."""
        S, T = self.actions.shape
        return {"actions": self.actions.ravel(), "rewards": self.rewards.ravel(),
                "subjects": np.repeat(np.arange(S), T)}

    def to_frame(self):
        """The long-format DataFrame (subject, trial, action, reward)."""
        import pandas as pd

        S, T = self.actions.shape
        return pd.DataFrame({"subject": np.repeat(np.arange(S), T),
                             "trial": np.tile(np.arange(1, T + 1), S),
                             "action": self.actions.ravel(), "reward": self.rewards.ravel()})


def _per_subject(value: Any, n: int, what: str) -> np.ndarray:
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy() \
        if np.ndim(value) <= 1 else None
    if arr is None or arr.shape != (n,):
        raise ValueError(f"{what} must be a number or one value per subject ({n}).")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"{what} must be positive and finite; got {value!r}.")
    return arr


def _reward_source(n_subjects, T, reward_means, reward_table):
    """``(table (S, T, K) or None, means (S, K) or None, K)`` with checks."""
    if reward_table is not None:
        tab = np.asarray(reward_table, dtype=np.float64)
        if tab.ndim == 2:
            tab = np.broadcast_to(tab, (n_subjects, *tab.shape))
        if tab.ndim != 3 or tab.shape[:2] != (n_subjects, T):
            raise ValueError(f"rewards must be a (T, K) or (n_subjects, T, K) table of every "
                             f"arm's reward; got shape {tab.shape} for T={T}.")
        if not np.all(np.isfinite(tab)) or tab.min() < 0 or tab.max() > 1:
            raise ValueError("the reward table must be finite and in [0, 1].")
        return np.ascontiguousarray(tab), None, tab.shape[2]
    mu = np.asarray(reward_means, dtype=np.float64)
    if mu.ndim == 1:
        mu = np.broadcast_to(mu, (n_subjects, len(mu)))
    if mu.ndim != 2 or mu.shape[0] != n_subjects or mu.shape[1] < 2:
        raise ValueError("reward_means must list one Bernoulli mean per arm (>= 2 arms), or "
                         "one such row per subject.")
    if not np.all(np.isfinite(mu)) or mu.min() < 0 or mu.max() > 1:
        raise ValueError("reward_means must be probabilities in [0, 1] (Bernoulli rewards).")
    return None, np.ascontiguousarray(mu), mu.shape[1]


def _draw(gen, shape):
    return torch.rand(shape, generator=gen, dtype=torch.float64)


def _run(policy, update, n_subjects, T, reward_means, rewards, random_state):
    tab, mu, K = _reward_source(n_subjects, T, reward_means, rewards)
    gen = torch.Generator().manual_seed(draw_seed(random_state))
    A = torch.zeros(n_subjects, T, dtype=torch.int64)
    X = torch.zeros(n_subjects, T, dtype=torch.float64)
    P = torch.zeros(n_subjects, T, K, dtype=torch.float64)
    mu_t = None if mu is None else torch.tensor(mu)
    tab_t = None if tab is None else torch.tensor(tab)
    state = None
    for t in range(T):
        logp, state = policy(t, state)  # (S, 1, K)
        p = torch.exp(logp[:, 0])
        P[:, t] = p
        u = _draw(gen, (n_subjects, 1))
        a = (torch.cumsum(p, -1) < u).sum(-1).clamp(max=K - 1)
        ar = torch.arange(n_subjects)
        if tab_t is None:
            x = (_draw(gen, (n_subjects,)) < mu_t[ar, a]).to(torch.float64)
        else:
            x = tab_t[ar, t, a]
        A[:, t], X[:, t] = a, x
        onehot = torch.nn.functional.one_hot(a, K).to(torch.float64).unsqueeze(1)
        state = update(state, onehot, x.unsqueeze(1), logp.gather(-1, a.view(-1, 1, 1)).squeeze(-1))
    return A.numpy(), X.numpy(), P.numpy()


def simulate_exp3(n_subjects: int = 1, T: int = 1000, reward_means: Any = (0.3, 0.7),
                  learning_rate: Any = 0.1, schedule: str = "constant", alpha: float = 0.5,
                  gamma: float = 0.0, iw_estimator: str = "loss", rewards: Any = None,
                  random_state: Any = None) -> BanditSimulation:
    """Simulate Exp3 learners (the model :class:`Exp3LearningRateMLE` fits).

    Parameters
    ----------
    n_subjects : int
        Number of independent learners.
    T : int
        Trials per learner (the horizon of ``schedule="horizon"``).
    reward_means : sequence of float or (n_subjects, K) array
        Bernoulli mean reward of each arm (ignored when ``rewards`` is given).
    learning_rate : float or (n_subjects,) array
        The scale c of the learning rate (eta_t = c, c T^-alpha or c t^-alpha).
    schedule : {"constant", "horizon", "anytime"}
        How the rate depends on the horizon or the trial.
    alpha : float
        Exponent of the horizon / anytime schedules.
    gamma : float
        Uniform exploration mixed into the policy, in [0, 1).
    iw_estimator : {"loss", "gain"}
        Loss-based (default) or gain-based importance-weighted reward estimates.
    rewards : (T, K) or (n_subjects, T, K) array, optional
        A user reward sequence (every arm's reward at every trial, e.g. adversarial or
        drifting); replaces the Bernoulli draws.
    random_state : int, RandomState, Generator or None
        Seeds the choices and the Bernoulli rewards (a private torch generator; global RNG
        untouched).

    Returns
    -------
    BanditSimulation
        ``actions``, ``rewards``, the true ``probs`` p_t and ``params["learning_rate"]``.

    Examples
    --------
    >>> from probest.bandits import simulate_exp3
    >>> sim = simulate_exp3(3, 200, reward_means=(0.3, 0.7), learning_rate=0.1,
    ...                     random_state=0)
    >>> bool((sim.probs[:, -1, 1] > sim.probs[:, 0, 1]).all())  # learnt to prefer arm 1
    True
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}; got {schedule!r}.")
    if iw_estimator not in ("loss", "gain"):
        raise ValueError(f"iw_estimator must be 'loss' or 'gain'; got {iw_estimator!r}.")
    if not 0.0 <= float(gamma) < 1.0:
        raise ValueError(f"gamma must be in [0, 1); got {gamma!r}.")
    if int(T) < 1 or int(n_subjects) < 1:
        raise ValueError("n_subjects and T must be positive integers.")
    n_subjects, T = int(n_subjects), int(T)
    c = torch.tensor(_per_subject(learning_rate, n_subjects, "learning_rate")).unsqueeze(1)
    K = _reward_source(n_subjects, T, reward_means, rewards)[2]
    base = c * eta_factor(schedule, alpha, torch.full((n_subjects,), T, dtype=torch.int64))

    def policy(t, S):
        S = torch.zeros(n_subjects, 1, K, dtype=torch.float64) if S is None else S
        eta = base * ((t + 1) ** (-alpha)) if schedule == "anytime" else base
        return exp3_policy(S, eta, float(gamma)), S

    def update(S, onehot, x, logp_a):
        return exp3_update(S, onehot, x, logp_a, iw_estimator)

    A, X, P = _run(policy, update, n_subjects, T, reward_means, rewards, random_state)
    return BanditSimulation(A, X, P, {"learning_rate": c[:, 0].numpy().copy()})


def simulate_rescorla_wagner(n_subjects: int = 1, T: int = 1000, reward_means: Any = (0.3, 0.7),
                             alpha: Any = 0.3, beta: Any = 5.0, q0: float = 0.5,
                             rewards: Any = None, random_state: Any = None) -> BanditSimulation:
    """Simulate Rescorla–Wagner softmax learners (the model :class:`RescorlaWagnerMLE` fits).

    Parameters
    ----------
    n_subjects : int
        Number of learners.
    T : int
        Trials per learner.
    reward_means : sequence of float or (n_subjects, K) array
        Bernoulli mean reward of each arm.
    alpha : float or (n_subjects,) array
        Learning rate in (0, 1].
    beta : float or (n_subjects,) array
        Inverse temperature of the softmax (> 0).
    q0 : float
        Initial value of every arm.
    rewards : (T, K) or (n_subjects, T, K) array, optional
        A user reward sequence replacing the Bernoulli draws.
    random_state : int, RandomState, Generator or None
        Seeds the choices and rewards.

    Returns
    -------
    BanditSimulation
        With ``params["alpha"]`` and ``params["beta"]``.

    Examples
    --------
    >>> from probest.bandits import simulate_rescorla_wagner
    >>> sim = simulate_rescorla_wagner(2, 100, alpha=0.3, beta=5.0, random_state=0)
    >>> sim.probs.shape, sorted(sim.params)
    ((2, 100, 2), ['alpha', 'beta'])
    """
    n_subjects, T = int(n_subjects), int(T)
    a = _per_subject(alpha, n_subjects, "alpha")
    if np.any(a > 1):
        raise ValueError("alpha must be in (0, 1].")
    b = _per_subject(beta, n_subjects, "beta")
    K = _reward_source(n_subjects, T, reward_means, rewards)[2]
    at, bt = torch.tensor(a).view(-1, 1, 1), torch.tensor(b).view(-1, 1)

    def policy(t, Q):
        Q = torch.full((n_subjects, 1, K), float(q0), dtype=torch.float64) if Q is None else Q
        return torch.log_softmax(bt.unsqueeze(-1) * Q, dim=-1), Q

    def update(Q, onehot, x, logp_a):
        return Q + onehot * (at * (x.view(-1, 1, 1) - Q))

    A, X, P = _run(policy, update, n_subjects, T, reward_means, rewards, random_state)
    return BanditSimulation(A, X, P, {"alpha": a, "beta": b})
