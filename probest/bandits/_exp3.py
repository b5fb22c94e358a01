"""The maximum-likelihood estimator of the Exp3 learning rate (Aubert, Lehéricy & Reynaud-Bouret,
ICML 2023), for one or many subjects at once."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from scipy.stats import chi2, norm

from probest._persist import Fitted
from probest._validation import Check, Interval, Options
from probest.bandits._common import EXP3_CONSTRAINTS, ChoiceModel, IdentifiabilityWarning, warn_diagnostics
from probest.bandits._replay import first_small_prob, replay_exp3
from probest.bandits._search import (
    curvature,
    maximise,
    profile_interval,
    superlevel_components,
)

#: the pilot MLE of the truncation rule uses the first PILOT_TRIALS trials ...
PILOT_TRIALS = 100
#: ... and the truncated likelihood stops at the first trial with min_k p_t(k) < this.
TRUNCATION_THRESHOLD = 0.01


def _valid_grid(g) -> bool:
    if isinstance(g, tuple) and len(g) == 3:
        lo, hi, n = g
        return (isinstance(n, int) and not isinstance(n, bool) and n >= 5 and 0 < lo < hi
                and np.isfinite(hi))
    try:
        arr = np.asarray(g, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return arr.ndim == 1 and arr.size >= 5 and bool(np.all(np.isfinite(arr) & (arr > 0)))


class Exp3LearningRateMLE(ChoiceModel):
    """Maximum-likelihood estimate of the Exp3 learning rate from observed choices.

    The likelihood ``l(c) = sum_t log p_t^c(A_t)`` is computed by **replaying** the observed
    actions and rewards under each candidate c (the importance weights are recomputed too),
    batched over candidates x subjects in float64 torch.  With little exploration it is a
    needle with cliffs, so the maximiser is found on a jittered log-grid over ``grid`` and
    refined around its best local maxima; intervals are profile-likelihood (default), Wald or
    parametric bootstrap.  ``truncation="auto"`` applies the data-driven rule that makes the
    MLE well behaved: a pilot MLE on the first 100 trials, then the likelihood is summed up to
    Upsilon, the first trial at which the pilot policy gives some arm probability < 0.01.

    Parameters
    ----------
    n_arms : int, optional
        Number of arms K (default: largest observed action + 1).
    schedule : {"constant", "horizon", "anytime"}, default="constant"
        eta_t = c, c T^-alpha (T: the subject's number of trials) or c t^-alpha.
    alpha : float, default=0.5
        Exponent of the horizon / anytime schedules.
    gamma : float, default=0.0
        Uniform exploration mixed into the policy, p = (1 - gamma) q + gamma / K.
    iw_estimator : {"loss", "gain"}, default="loss"
        Loss-based or gain-based importance-weighted reward estimates.
    truncation : "auto", None or int, default="auto"
        The rule above, no truncation, or a fixed number of trials.
    ci : {"profile", "wald", "bootstrap"} or None, default="profile"
        Interval for c: likelihood ratio, Wald on log c, or the percentiles of refits to
        data simulated at the estimate (arm rewards resampled from the subject's own).
    ci_level : float, default=0.95
        Coverage of the interval.
    grid : (low, high, n) or array of float, default=(1e-3, 1e2, 100)
        Search range of c and the number of log-spaced grid points (or the points).
    n_bootstrap : int, default=100
        Number of simulated refits for ``ci="bootstrap"``.
    device : str, default="cpu"
        Torch device of the replay ("auto" picks CUDA).
    random_state : int, RandomState, Generator or None
        Seeds the grid jitter and the bootstrap.
    verbose : int, default=0
        1: a progress bar over the search stages; 2: also one line per stage.

    Attributes
    ----------
    n_arms_ : int
        Number of arms.
    subjects_ : ndarray
        Subject ids, in order of first appearance.
    n_trials_ : ndarray of shape (n_subjects,)
        Trials per subject.
    learning_rate_ : ndarray of shape (n_subjects,)
        The estimate of c per subject.
    learning_rate_ci_ : ndarray of shape (n_subjects, 2)
        Interval ends (equal to the estimate when ``ci=None``).
    upsilon_ : ndarray of shape (n_subjects,)
        Trials in the (truncated) likelihood.
    loglik_ : ndarray of shape (n_subjects,)
        Full-data log-likelihood at the estimate.
    loglik_truncated_ : ndarray of shape (n_subjects,)
        The maximised (truncated) log-likelihood.
    aic_, bic_ : ndarray of shape (n_subjects,)
        Information criteria from ``loglik_`` (one parameter, n = ``n_trials_``).
    diagnostics_ : dict of ndarray
        Per subject: ``hit_bound``, ``n_local_maxima`` (separate runs of the grid inside the
        confidence set), ``flat_profile``, ``ci_open`` (the interval reaches the range end)
        and ``pilot_rate`` (the truncation rule's pilot; NaN-free, the estimate when no pilot).
    profile_rates_ : ndarray of shape (n_subjects, n_grid)
        The (jittered) grid of c of each subject.
    profile_loglik_ : ndarray of shape (n_subjects, n_grid)
        The (truncated) log-likelihood on that grid.
    history_ : list of dict
        One record per search stage (``stage``, ``objective``: summed log-likelihood).

    Examples
    --------
    >>> from probest.bandits import Exp3LearningRateMLE, simulate_exp3
    >>> sim = simulate_exp3(5, 300, learning_rate=0.1, gamma=0.05, random_state=0)
    >>> est = Exp3LearningRateMLE(gamma=0.05, random_state=0).fit(sim.actions, sim.rewards)
    >>> est.learning_rate_.shape, bool(((est.learning_rate_ci_[:, 0] < 0.1)
    ...                                 & (0.1 < est.learning_rate_ci_[:, 1])).mean() >= 0.8)
    ((5,), True)
    >>> est.predict_proba(sim.actions, sim.rewards).shape
    (5, 300, 2)
    """

    _constraints = {
        **EXP3_CONSTRAINTS,
        "ci": (Options({"profile", "wald", "bootstrap"}), None),
        "ci_level": (Interval(float, 0.0, 1.0, "neither"),),
        "grid": (Check(_valid_grid, "(low, high, n) with 0 < low < high and n >= 5, or an "
                                    "array of >= 5 positive rates"),),
        "n_bootstrap": (Interval(int, 2, None),),
    }
    _fitted_attributes = (
        "n_arms_", "subjects_", "n_subjects_", "n_trials_",
        Fitted("learning_rate_", ndim=1, finite=True), Fitted("learning_rate_ci_", ndim=2),
        "upsilon_", Fitted("loglik_", ndim=1), "loglik_truncated_", "aic_", "bic_",
        "diagnostics_", "profile_rates_", "profile_loglik_")
    # a candidate far from the maximum can have a log-likelihood below -1e308 on the grid
    _nonfinite_ok = ("history_", "profile_loglik_")

    def __init__(self, n_arms=None, *, schedule="constant", alpha=0.5, gamma=0.0,
                 iw_estimator="loss", truncation="auto", ci="profile", ci_level=0.95,
                 grid=(1e-3, 1e2, 100), n_bootstrap=100, device="cpu", random_state=None,
                 verbose=0):
        self._store_params(locals())

    # ------------------------------------------------------------------ the objective
    def _range(self):
        if isinstance(self.grid, tuple) and len(self.grid) == 3:
            lo, hi, n = self.grid
            return math.log(lo), math.log(hi), int(n)
        g = np.sort(np.asarray(self.grid, dtype=np.float64))
        return math.log(g[0]), math.log(g[-1]), len(g)

    def _objective(self, A, R, L, n_used):
        def f(theta):
            ll, _ = replay_exp3(torch.exp(theta), A, R, L, self.n_arms_, schedule=self.schedule,
                                alpha=float(self.alpha), gamma=float(self.gamma),
                                iw=self.iw_estimator, n_used=n_used)
            return ll
        return f

    def _maximise(self, f, n_subjects, rng, to_t):
        lo, hi, n = self._range()
        res = maximise(f, lo, hi, n, n_subjects, rng, to_tensor=to_t)
        if not (isinstance(self.grid, tuple) and len(self.grid) == 3):  # user points
            res.grid[:] = np.log(np.sort(np.asarray(self.grid, dtype=np.float64)))
            res.values = f(to_t(res.grid)).cpu().numpy()
        return res

    def _truncate(self, A, R, L, rng, to_t):
        if self.truncation is None:
            return L.clone(), None
        if self.truncation != "auto":
            return torch.clamp(L, max=int(self.truncation)), None
        pilot_n = torch.clamp(L, max=PILOT_TRIALS)
        pilot = self._maximise(self._objective(A, R, L, pilot_n), len(L), rng, to_t)
        c = to_t(np.exp(pilot.theta)[:, None])
        _, logp = replay_exp3(c, A, R, L, self.n_arms_, schedule=self.schedule,
                              alpha=float(self.alpha), gamma=float(self.gamma),
                              iw=self.iw_estimator, record=True)
        thr = min(TRUNCATION_THRESHOLD, 0.5 / self.n_arms_)
        ups = first_small_prob(logp[:, 0], L, thr)
        return torch.maximum(ups, torch.clamp(L, max=2)), np.exp(pilot.theta)

    # ------------------------------------------------------------------------- fit
    def fit(self, actions, rewards=None, subject=None):
        """Fit the learning rate of every subject.

        Parameters
        ----------
        actions : array-like, list of arrays, dict or DataFrame
            ``(T,)`` or ``(n_subjects, T)`` arm ids, ragged per-subject lists, flat ids with
            ``subject=``, an event log ``{"actions", "rewards", "subjects"}`` or a
            long-format DataFrame (subject, trial, action, reward).
        rewards : array-like or list, optional
            Reward of each chosen arm, in [0, 1] (inside the dict/DataFrame otherwise).
        subject : array-like, optional
            Subject id of each event for flat arrays.

        Returns
        -------
        self
        """
        with self._fitting(actions, rewards, subject) as (log, ctx):
            A, R, L = self._tensors(log)
            to_t = self._to_tensor

            with self._progress(4, "Exp3 MLE") as prog:
                n_used, pilot = self._truncate(A, R, L, ctx.rng, to_t)
                self.upsilon_ = n_used.cpu().numpy()
                prog.log(stage="truncation", objective=float(self.upsilon_.sum()))
                f = self._objective(A, R, L, n_used)
                res = self._maximise(f, log.n_subjects, ctx.rng, to_t)
                prog.log(stage="search", objective=float(res.value.sum()))
                self.learning_rate_ = np.exp(res.theta)
                self.loglik_truncated_ = res.value
                self.profile_rates_ = np.exp(res.grid)
                self.profile_loglik_ = res.values
                self._set_interval(f, res, log, ctx.rng, to_t)
                prog.log(stage="interval", objective=float(res.value.sum()))
                self.loglik_ = self._objective(A, R, L, L)(to_t(res.theta[:, None]))[:, 0]
                self.loglik_ = self.loglik_.cpu().numpy()
                prog.log(stage="full likelihood", objective=float(self.loglik_.sum()))
            self._set_information_criteria()
            self._diagnose(res, pilot)
        return self

    def _set_interval(self, f, res, log, rng, to_t):
        lo, hi, _ = self._range()
        self._ci_open = np.zeros(log.n_subjects, dtype=bool)
        if self.ci is None:
            self.learning_rate_ci_ = np.stack([self.learning_rate_, self.learning_rate_], 1)
            return
        if self.ci == "profile":
            cut = np.full(log.n_subjects, chi2.ppf(self.ci_level, 1) / 2)
            a, b, open_lo, open_hi = profile_interval(f, res, cut, lo, hi, to_tensor=to_t)
            self.learning_rate_ci_ = np.exp(np.stack([a, b], 1))
            self._ci_open = open_lo | open_hi
        elif self.ci == "wald":
            info = curvature(f, res.theta, to_tensor=to_t)
            se = np.where(info > 0, 1.0 / np.sqrt(np.abs(info)), np.inf)
            z = norm.ppf(0.5 + self.ci_level / 2)
            lo_w = np.clip(res.theta - z * se, lo, hi)
            hi_w = np.clip(res.theta + z * se, lo, hi)
            self.learning_rate_ci_ = np.exp(np.stack([lo_w, hi_w], 1))
            self._ci_open = (lo_w <= lo) | (hi_w >= hi)
        else:
            self.learning_rate_ci_ = self._bootstrap(log, rng)

    def _bootstrap(self, log, rng):
        from sklearn.base import clone

        from probest.bandits._simulate import simulate_exp3

        B, K = int(self.n_bootstrap), self.n_arms_
        out = np.empty((log.n_subjects, 2))
        q = [50 * (1 - self.ci_level), 50 * (1 + self.ci_level)]
        inner = clone(self).set_params(ci=None, verbose=0, device=str(self.device_))
        for s in range(log.n_subjects):
            T = int(log.lengths[s])
            a, r = log.actions[s, :T], log.rewards[s, :T]
            table = np.empty((B, T, K))
            for k in range(K):
                pool = r[a == k] if np.any(a == k) else r
                table[:, :, k] = rng.choice(pool, size=(B, T))
            sim = simulate_exp3(B, T, learning_rate=self.learning_rate_[s],
                                schedule=self.schedule, alpha=self.alpha, gamma=self.gamma,
                                iw_estimator=self.iw_estimator, rewards=table,
                                random_state=int(rng.integers(2**31)))
            inner.set_params(n_arms=K, random_state=int(rng.integers(2**31)))
            with warnings.catch_warnings():  # replicates at a boundary are part of the answer
                warnings.simplefilter("ignore", IdentifiabilityWarning)
                refit = inner.fit(sim.actions, sim.rewards)
            out[s] = np.percentile(refit.learning_rate_, q)
        return out

    def _diagnose(self, res, pilot):
        cut = chi2.ppf(self.ci_level, 1) / 2
        finite = np.where(np.isfinite(res.values), res.values, np.nan)
        spread = np.nanmax(finite, 1) - np.nanmin(finite, 1)
        self.diagnostics_ = {
            "hit_bound": res.at_bound.copy(),
            "n_local_maxima": superlevel_components(res.merged()[1], res.value - cut),
            "flat_profile": spread < cut,
            "ci_open": self._ci_open.copy(),
            "pilot_rate": self.learning_rate_.copy() if pilot is None else pilot,
        }
        del self._ci_open
        warn_diagnostics(type(self).__name__, self.subjects_, self.diagnostics_)

    # ---------------------------------------------------------------------- outputs
    def _replay_fitted(self, log, index, record):
        A, R, L = self._tensors(log)
        c = torch.as_tensor(self.learning_rate_[index][:, None], dtype=torch.float64,
                            device=A.device)
        ll, logp = replay_exp3(c, A, R, L, self.n_arms_, schedule=self.schedule,
                               alpha=float(self.alpha), gamma=float(self.gamma),
                               iw=self.iw_estimator, record=record)
        return ll[:, 0].cpu().numpy(), (None if logp is None else logp[:, 0].cpu().numpy())

    def loglik_profile(self, grid=None, actions=None, rewards=None, subject=None):
        """The (truncated, as fitted) log-likelihood of each subject over rates ``grid``.

        Parameters
        ----------
        grid : array of float, optional
            Rates c (default: 200 log-spaced points over the fitted search range).
        actions, rewards, subject : optional
            Data of fitted subjects (default: the data seen in ``fit``, kept in memory; a
            loaded model needs it passed).  Fitted subjects keep their ``upsilon_``.

        Returns
        -------
        grid : ndarray of shape (n_grid,)
        loglik : ndarray of shape (n_subjects, n_grid)
        """
        lo, hi, _ = self._range()
        grid = np.exp(np.linspace(lo, hi, 200)) if grid is None else np.asarray(grid, float)
        if grid.ndim != 1 or not np.all(np.isfinite(grid) & (grid > 0)):
            raise ValueError("grid must be a 1-D array of positive rates.")
        if actions is None:
            if not hasattr(self, "_fit_log"):
                raise ValueError("pass the data: a loaded model does not keep its training "
                                 "choices.")
            log = self._fit_log
        else:
            log = self._event_log(actions, rewards, subject, fitted=True)
        index = self._index(log)
        A, R, L = self._tensors(log)
        n_used = torch.minimum(L, torch.as_tensor(self.upsilon_[index], device=L.device))
        C = torch.as_tensor(np.broadcast_to(grid, (log.n_subjects, len(grid))).copy(),
                            dtype=torch.float64, device=A.device)
        ll, _ = replay_exp3(C, A, R, L, self.n_arms_, schedule=self.schedule,
                            alpha=float(self.alpha), gamma=float(self.gamma),
                            iw=self.iw_estimator, n_used=n_used)
        return grid, ll.cpu().numpy()

    def _index(self, log):
        from probest.bandits._data import match_subjects

        return match_subjects(log, self.subjects_)

    def plot_profile(self, subject=0, grid=None, ax=None):
        """Plot one subject's profile log-likelihood with its estimate and interval.

        Parameters
        ----------
        subject : int
            Position of the subject in ``subjects_``.
        grid : array of float, optional
            Rates to evaluate (see :meth:`loglik_profile`).
        ax : matplotlib Axes, optional
            Where to draw (default: a new figure).

        Returns
        -------
        matplotlib.axes.Axes
        """
        import matplotlib.pyplot as plt

        rates, ll = self.loglik_profile(grid)
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(rates, ll[subject] - self.loglik_truncated_[subject], lw=1.2)
        ax.axhline(-chi2.ppf(self.ci_level, 1) / 2, color="grey", ls=":",
                   label=f"{self.ci_level:.0%} LR cut")
        ax.axvline(self.learning_rate_[subject], color="C3", label="estimate")
        for end in self.learning_rate_ci_[subject]:
            ax.axvline(end, color="C3", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_ylim(max(-50.0, float(np.nanmin(ll[subject] - self.loglik_truncated_[subject]))),
                    2.0)
        ax.set_xlabel("learning rate c")
        ax.set_ylabel("log-likelihood - max")
        ax.set_title(f"subject {self.subjects_[subject]}: Upsilon = {self.upsilon_[subject]}")
        ax.legend(fontsize=7)
        return ax
