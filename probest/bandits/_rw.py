"""Rescorla–Wagner softmax learners fitted by maximum likelihood, batched over subjects."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy.special import expit
from scipy.stats import chi2, norm

from probest._persist import Fitted
from probest._validation import Interval, Options
from probest.bandits._common import (
    ChoiceModel,
    IdentifiabilityWarning,
    fit_doc,
    warn_diagnostics,
)
from probest.bandits._replay import replay_rw

#: search box in (logit alpha, log beta)
_BOX = ((-6.0, 6.0), (np.log(1e-2), np.log(1e2)))


class RescorlaWagnerMLE(ChoiceModel):
    """Rescorla–Wagner delta-rule learner with a softmax choice rule, fitted by MLE.

    ``p_t = softmax(beta * Q_{t-1})`` and, after the choice, ``Q(A_t) += alpha (X_t -
    Q(A_t))`` with ``Q_0 = q0``: the standard alternative to Exp3 in model comparisons
    (Wilson & Collins, "Ten simple rules for the computational modeling of behavioral
    data", 2019).  The two-parameter likelihood is maximised on a grid over
    ``(logit alpha, log beta)`` (alpha in [0.0025, 0.9975], beta in [0.01, 100]) refined by
    shrinking local grids, batched over subjects in torch, with the same interface as
    :class:`Exp3LearningRateMLE`.

    Parameters
    ----------
    n_arms : int, optional
        Number of arms (default: largest observed action + 1).
    q0 : float, default=0.5
        Initial value of every arm.
    ci : {"wald", "bootstrap"} or None, default="wald"
        Intervals from the observed information in (logit alpha, log beta), or percentiles
        of refits to data simulated at the estimate.
    ci_level : float, default=0.95
        Coverage of the intervals.
    n_grid : int, default=20
        Grid points per parameter of the first search stage.
    n_bootstrap : int, default=100
        Simulated refits for ``ci="bootstrap"``.
    device : str, default="cpu"
        Torch device of the replay.
    random_state : int, RandomState, Generator or None
        Seeds the grid jitter and the bootstrap.
    verbose : int, default=0
        Progress output.

    Attributes
    ----------
    n_arms_ : int
        Number of arms.
    subjects_ : ndarray
        Subject ids.
    n_subjects_ : int
        Number of subjects.
    n_trials_ : ndarray of shape (n_subjects,)
        Trials per subject.
    alpha_, beta_ : ndarray of shape (n_subjects,)
        Learning rate and inverse temperature per subject.
    alpha_ci_, beta_ci_ : ndarray of shape (n_subjects, 2)
        Interval ends.
    loglik_ : ndarray of shape (n_subjects,)
        Maximised log-likelihood.
    aic_, bic_ : ndarray of shape (n_subjects,)
        Information criteria (two parameters).
    diagnostics_ : dict of ndarray
        ``hit_bound`` (an estimate on the search box's edge), ``n_local_maxima`` (optima
        refined from three separated grid starts that lie inside the confidence set), ``flat_profile``.
    history_ : list of dict
        One record per search stage.

    Examples
    --------
    >>> import numpy as np
    >>> from probest.bandits import RescorlaWagnerMLE, simulate_rescorla_wagner
    >>> sim = simulate_rescorla_wagner(4, 300, alpha=0.3, beta=6.0, random_state=0)
    >>> rw = RescorlaWagnerMLE(random_state=0).fit(sim.actions, sim.rewards)
    >>> rw.alpha_.shape, bool(abs(np.median(rw.beta_) - 6.0) < 3.0)
    ((4,), True)
    """

    _n_params = 2
    _constraints = {
        "n_arms": (Interval(int, 2, None), None),
        "q0": (Interval(float, 0.0, 1.0, "both"),),
        "ci": (Options({"wald", "bootstrap"}), None),
        "ci_level": (Interval(float, 0.0, 1.0, "neither"),),
        "n_grid": (Interval(int, 5, None),),
        "n_bootstrap": (Interval(int, 2, None),),
    }
    _fitted_attributes = (
        "n_arms_", "subjects_", "n_subjects_", "n_trials_",
        Fitted("alpha_", ndim=1, finite=True), Fitted("beta_", ndim=1, finite=True),
        "alpha_ci_", "beta_ci_", Fitted("loglik_", ndim=1), "aic_", "bic_", "diagnostics_")

    def __init__(self, n_arms=None, *, q0=0.5, ci="wald", ci_level=0.95, n_grid=20,
                 n_bootstrap=100, device="cpu", random_state=None, verbose=0):
        self._store_params(locals())

    def _objective(self, A, R, L):
        def f(theta):  # (S, C, 2) in (logit alpha, log beta)
            return replay_rw(torch.sigmoid(theta[..., 0]), torch.exp(theta[..., 1]), A, R, L,
                             self.n_arms_, q0=float(self.q0))[0]
        return f

    def _search(self, f, S, rng, to_t):
        n = int(self.n_grid)
        (a0, a1), (b0, b1) = _BOX
        ga, gb = np.linspace(a0, a1, n), np.linspace(b0, b1, n)
        step = np.array([(a1 - a0) / (n - 1), (b1 - b0) / (n - 1)])
        G = np.stack(np.meshgrid(ga, gb, indexing="ij"), -1).reshape(-1, 2)
        G = np.broadcast_to(G, (S, *G.shape)).copy()
        G += rng.uniform(-0.3, 0.3, G.shape) * step
        G = np.clip(G, [a0, b0], [a1, b1])
        V = f(to_t(G)).cpu().numpy()
        V = np.where(np.isfinite(V), V, -np.inf)
        grid_v = V.copy()
        # three starts per subject: the best grid point, then the best ones > 3 cells away
        ij = np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1).reshape(-1, 2)
        rows = np.arange(S)
        starts, Vm = [], V.copy()
        for _ in range(3):
            j = Vm.argmax(1)
            starts.append(j)
            far = np.abs(ij[None] - ij[j][:, None]).max(-1) > 3
            Vm = np.where(far, Vm, -np.inf)
            Vm[~np.isfinite(Vm).any(1)] = V[~np.isfinite(Vm).any(1)]
        J = np.stack(starts, 1)  # (S, 3)
        best = G[rows[:, None], J]  # (S, 3, 2)
        best_v = V[rows[:, None], J]
        u = np.linspace(-1.0, 1.0, 7)
        local = np.stack(np.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
        width = step.copy()
        for _ in range(10):
            P = np.clip(best[:, :, None] + local[None, None] * width, [a0, b0], [a1, b1])
            Vp = f(to_t(P.reshape(S, -1, 2))).cpu().numpy().reshape(S, 3, -1)
            Vp = np.where(np.isfinite(Vp), Vp, -np.inf)
            j = Vp.argmax(2)
            cand = np.take_along_axis(Vp, j[..., None], 2)[..., 0]
            better = cand > best_v
            pick = np.take_along_axis(P, j[..., None, None].repeat(2, -1), 2)[:, :, 0]
            best = np.where(better[..., None], pick, best)
            best_v = np.where(better, cand, best_v)
            width = width / 2.5
        k = best_v.argmax(1)
        self._starts = (best, best_v, best[rows, k])
        best, best_v = best[rows, k], best_v[rows, k]
        return best, best_v, grid_v, step

    @fit_doc("Fit alpha and beta of every subject.", "Exp3LearningRateMLE")
    def fit(self, actions, rewards=None, subject=None):
        with self._fitting(actions, rewards, subject) as (log, ctx):
            A, R, L = self._tensors(log)
            to_t = self._to_tensor

            f = self._objective(A, R, L)
            with self._progress(2, "Rescorla-Wagner MLE") as prog:
                theta, value, grid_v, step = self._search(f, log.n_subjects, ctx.rng, to_t)
                prog.log(stage="search", objective=float(value.sum()))
                self.alpha_, self.beta_ = expit(theta[:, 0]), np.exp(theta[:, 1])
                self.loglik_ = value
                self._intervals(f, theta, log, ctx.rng, to_t)
                prog.log(stage="interval", objective=float(value.sum()))
            self._set_information_criteria()
            cut = chi2.ppf(self.ci_level, 1) / 2
            box = np.array(_BOX)
            edge = (theta <= box[:, 0] + step / 2) | (theta >= box[:, 1] - step / 2)
            ends, ends_v, top = self._starts
            del self._starts
            apart = np.abs(ends - top[:, None]).max(-1) > 2 * step.max()
            n_max = 1 + ((ends_v >= (value - cut)[:, None]) & apart).sum(1)
            self.diagnostics_ = {
                "hit_bound": edge.any(1),
                "n_local_maxima": n_max,
                "flat_profile": (np.nanmax(grid_v, 1) - np.nanmin(grid_v, 1)) < cut,
            }
        warn_diagnostics(type(self).__name__, self.subjects_, self.diagnostics_)
        return self

    def _intervals(self, f, theta, log, rng, to_t):
        S = log.n_subjects
        if self.ci is None:
            self.alpha_ci_ = np.stack([self.alpha_] * 2, 1)
            self.beta_ci_ = np.stack([self.beta_] * 2, 1)
            return
        if self.ci == "wald":
            h = 1e-3
            offs = np.array([[0, 0], [h, 0], [-h, 0], [0, h], [0, -h], [h, h], [-h, -h]])
            V = f(to_t(theta[:, None] + offs[None])).cpu().numpy()
            f0 = V[:, 0]
            haa = (V[:, 1] - 2 * f0 + V[:, 2]) / h**2
            hbb = (V[:, 3] - 2 * f0 + V[:, 4]) / h**2
            hab = (V[:, 5] + V[:, 6] - V[:, 1] - V[:, 2] - V[:, 3] - V[:, 4] + 2 * f0) / (2 * h**2)
            H = -np.stack([np.stack([haa, hab], -1), np.stack([hab, hbb], -1)], -2)
            se = np.full((S, 2), np.inf)
            for s in range(S):
                if np.all(np.isfinite(H[s])) and np.linalg.eigvalsh(H[s]).min() > 0:
                    se[s] = np.sqrt(np.diag(np.linalg.inv(H[s])))
            z = norm.ppf(0.5 + self.ci_level / 2)
            box = np.array(_BOX)
            lo = np.clip(theta - z * se, box[:, 0], box[:, 1])
            hi = np.clip(theta + z * se, box[:, 0], box[:, 1])
            self.alpha_ci_ = expit(np.stack([lo[:, 0], hi[:, 0]], 1))
            self.beta_ci_ = np.exp(np.stack([lo[:, 1], hi[:, 1]], 1))
            return
        from sklearn.base import clone

        from probest.bandits._simulate import simulate_rescorla_wagner

        B, K = int(self.n_bootstrap), self.n_arms_
        inner = clone(self).set_params(ci=None, verbose=0, n_arms=K)
        self.alpha_ci_, self.beta_ci_ = np.empty((S, 2)), np.empty((S, 2))
        q = [50 * (1 - self.ci_level), 50 * (1 + self.ci_level)]
        for s in range(S):
            T = int(log.lengths[s])
            a, r = log.actions[s, :T], log.rewards[s, :T]
            table = np.empty((B, T, K))
            for k in range(K):
                table[:, :, k] = rng.choice(r[a == k] if np.any(a == k) else r, size=(B, T))
            sim = simulate_rescorla_wagner(B, T, alpha=self.alpha_[s], beta=self.beta_[s],
                                           q0=self.q0, rewards=table,
                                           random_state=int(rng.integers(2**31)))
            inner.set_params(random_state=int(rng.integers(2**31)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", IdentifiabilityWarning)
                refit = inner.fit(sim.actions, sim.rewards)
            self.alpha_ci_[s] = np.percentile(refit.alpha_, q)
            self.beta_ci_[s] = np.percentile(refit.beta_, q)

    def _replay_fitted(self, log, index, record):
        return replay_rw_fitted(self, log, index, record)


def replay_rw_fitted(est, log, index, record):
    """Replay of subjects ``index`` at a fitted RW model's ``alpha_``, ``beta_`` (the
    ``_replay_fitted`` of both RW estimators)."""
    A, R, L = est._tensors(log)
    a = torch.as_tensor(est.alpha_[index][:, None], dtype=torch.float64, device=A.device)
    b = torch.as_tensor(est.beta_[index][:, None], dtype=torch.float64, device=A.device)
    ll, logp = replay_rw(a, b, A, R, L, est.n_arms_, q0=float(est.q0), record=record)
    return ll[:, 0].cpu().numpy(), (None if logp is None else logp[:, 0].cpu().numpy())

