"""What every bandits estimator shares: input handling, replayed predictions, scores,
information criteria and the identifiability warning."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from probest._torch import as_tensor
from probest._validation import Interval, Options
from probest.bandits._data import EventLog, as_event_log, match_subjects
from probest.bandits._replay import SCHEDULES
from probest.base import EstimatorSpec, TorchEstimator


class IdentifiabilityWarning(UserWarning):
    """A fitted learning parameter is poorly identified for some subjects.

    Raised (as a warning) by the bandits estimators when, for at least one subject, the
    maximum sits on the end of the search range (``hit_bound``), the likelihood has several
    separated maxima inside the confidence set (``n_local_maxima > 1``), or the profile is
    flat over the whole range (``flat_profile``).  The per-subject flags are in the
    estimator's ``diagnostics_``.

    Examples
    --------
    >>> from probest.bandits import IdentifiabilityWarning
    >>> issubclass(IdentifiabilityWarning, UserWarning)
    True
    """


def _fmt_ids(ids: np.ndarray, limit: int = 6) -> str:
    ids = list(np.asarray(ids).tolist())
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(map(str, ids[:limit])) + more


def fit_quietly(est, actions, rewards=None):
    """``est.fit(actions, rewards)`` with identifiability warnings silenced: for inner fits
    (pilots, refits) whose boundary hits are counted or do not matter, not warned."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IdentifiabilityWarning)
        return est.fit(actions, rewards)


def warn_diagnostics(owner: str, subjects: np.ndarray, diag: dict[str, np.ndarray]) -> None:
    """One :class:`IdentifiabilityWarning` naming the subjects behind each flag."""
    parts = []
    if diag["hit_bound"].any():
        parts.append(f"the maximum is on the end of the search range for subject(s) "
                     f"{_fmt_ids(subjects[diag['hit_bound']])} (widen `grid`, or the data "
                     "carry no information on the rate)")
    multi = diag["n_local_maxima"] > 1
    if multi.any():
        parts.append(f"several separated maxima lie inside the confidence set for subject(s) "
                     f"{_fmt_ids(subjects[multi])} (weakly identified: a ridge or several optima)")
    if diag["flat_profile"].any():
        parts.append(f"the likelihood is flat over the whole range for subject(s) "
                     f"{_fmt_ids(subjects[diag['flat_profile']])}")
    if parts:
        warnings.warn(f"{owner}: " + "; ".join(parts) + ". See diagnostics_.",
                      IdentifiabilityWarning, stacklevel=3)


#: the Exp3 model's parameters, shared by the MLE and the Bayesian fit
EXP3_CONSTRAINTS = {
    "n_arms": (Interval(int, 2, None), None),
    "schedule": (Options(SCHEDULES),),
    "alpha": (Interval(float, 0.0, None, "both"),),
    "gamma": (Interval(float, 0.0, 1.0, "left"),),
    "iw_estimator": (Options({"loss", "gain"}),),
    "truncation": (Options({"auto"}), Interval(int, 2, None), None),
}


#: the NUTS settings both hierarchical estimators take (BayesianExp3, BayesianRescorlaWagner)
NUTS_CONSTRAINTS = {
    "num_warmup": (Interval(int, 1, None),),
    "num_samples": (Interval(int, 2, None),),
    "num_chains": (Interval(int, 1, None),),
    "target_accept": (Interval(float, 0.0, 1.0, "neither"),),
    "max_tree_depth": (Interval(int, 1, None),),
}


def fit_doc(summary: str, accepts: str):
    """Decorator: the numpydoc docstring of a choice model's ``fit(actions, rewards=None,
    subject=None)``, whose inputs are those of the estimator named by ``accepts``."""
    def deco(fit):
        fit.__doc__ = f"""{summary}

        Parameters
        ----------
        actions : array-like, list of arrays, dict or DataFrame
            Choices in any form :class:`{accepts}` accepts.
        rewards : array-like or list, optional
            Rewards in [0, 1].
        subject : array-like, optional
            Subject id per event for flat arrays.

        Returns
        -------
        self
        """
        return fit
    return deco


class ChoiceModel(TorchEstimator):
    """Shared base of the bandits estimators (not public): subclasses implement
    ``_replay_fitted(log, index, record)`` -> ``(loglik (S,), logp (S, T, K) or None)``."""

    _spec = EstimatorSpec(input_kind="events", outputs=("predict_proba",))
    #: number of free parameters per subject (AIC/BIC)
    _n_params = 1

    def _event_log(self, actions, rewards=None, subject=None, *, fitted: bool) -> EventLog:
        if not fitted:
            return as_event_log(actions, rewards, subject, n_arms=self.n_arms)
        check_is_fitted(self)
        try:
            return as_event_log(actions, rewards, subject, n_arms=self.n_arms_)
        except ValueError as exc:
            if "smaller than the observed" in str(exc):
                raise ValueError(f"unknown action ids: the model was fitted with "
                                 f"{self.n_arms_} arms (ids 0..{self.n_arms_ - 1}).") from exc
            raise

    @contextlib.contextmanager
    def _fitting(self, actions, rewards, subject):
        """``with self._fitting(actions, rewards, subject) as (log, ctx):`` — the events
        validated into an :class:`EventLog`, the fit context open and the log's bookkeeping
        recorded: how every choice model's ``fit`` starts."""
        log = self._event_log(actions, rewards, subject, fitted=False)
        with self._fit_context() as ctx:
            self._record_log(log)
            yield log, ctx

    def _record_log(self, log: EventLog) -> None:
        """The fitted bookkeeping every choice model keeps of its training log."""
        self.n_arms_, self.subjects_ = log.n_arms, log.subjects
        self.n_subjects_, self.n_trials_ = log.n_subjects, log.lengths.copy()
        self._fit_log = log  # parameter_recovery(reward_means="empirical"); not persisted

    def _to_tensor(self, x) -> torch.Tensor:
        """A float64 tensor of ``x`` on the fit's device (candidates, parameters)."""
        return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float64, device=self.device_)

    def _tensors(self, log: EventLog):
        dev = getattr(self, "device_", torch.device("cpu"))
        return (as_tensor(log.actions, device=dev, dtype=torch.int64),
                as_tensor(log.rewards, device=dev, dtype=torch.float64),
                as_tensor(log.lengths, device=dev, dtype=torch.int64))

    def _shape_like_input(self, actions, log: EventLog, per_trial: np.ndarray) -> np.ndarray:
        """Per-trial values ``(S, T_max, ...)`` shaped as the caller gave the trials."""
        if not (hasattr(actions, "keys") or isinstance(actions, (list, tuple))):
            arr = np.asarray(actions)
            if arr.ndim == 1:
                return per_trial[0]
            if arr.ndim == 2:
                return per_trial
        return log.flat(per_trial)

    def predict_proba(self, actions, rewards=None, subject=None) -> np.ndarray:
        """Replayed choice probabilities p_t of every trial at the fitted parameters.

        Parameters
        ----------
        actions, rewards, subject
            The choices of fitted subjects, in any input form ``fit`` accepts (subject ids
            must be ones seen in ``fit``; plain arrays map to subjects 0, 1, ...).

        Returns
        -------
        ndarray
            ``(T, K)`` for one ``(T,)`` sequence, ``(n_subjects, T, K)`` for a 2-D array,
            otherwise ``(n_events, K)`` in the order of the input events.
        """
        log = self._event_log(actions, rewards, subject, fitted=True)
        index = match_subjects(log, self.subjects_)
        _, logp = self._replay_fitted(log, index, record=True)
        return self._shape_like_input(actions, log, np.exp(logp))

    def loglik_subjects(self, actions, rewards=None, subject=None) -> np.ndarray:
        """Full (untruncated) log-likelihood of each subject's choices at its fitted
        parameters, ``(n_subjects,)`` in order of first appearance."""
        log = self._event_log(actions, rewards, subject, fitted=True)
        return self._replay_fitted(log, match_subjects(log, self.subjects_), record=False)[0]

    def score(self, actions, rewards=None, subject=None) -> float:
        """Mean log-likelihood per trial (nats) of the choices at the fitted parameters."""
        log = self._event_log(actions, rewards, subject, fitted=True)
        ll = self._replay_fitted(log, match_subjects(log, self.subjects_), record=False)[0]
        return float(ll.sum() / log.n_events)

    def _set_information_criteria(self) -> None:
        k = self._n_params
        self.aic_ = 2 * k - 2 * self.loglik_
        self.bic_ = k * np.log(self.n_trials_) - 2 * self.loglik_

    def _default_data(self) -> tuple[Any, Any, str, dict[str, Any]]:
        from probest.bandits._simulate import simulate_exp3

        sim = simulate_exp3(10, 300, reward_means=(0.3, 0.7), learning_rate=0.1,
                            gamma=0.05, random_state=0)
        return sim.events(), None, "simulated Exp3 learners (10 x 300 trials)", {}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
