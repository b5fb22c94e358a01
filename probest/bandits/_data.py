"""Choice data in, one padded event log out: the input formats of every bandits estimator.

Accepted forms of ``fit(actions, rewards=None, subject=None)``:

* ``actions`` and ``rewards`` arrays of shape ``(T,)`` (one subject) or ``(n_subjects, T)``;
* ragged lists of per-subject arrays;
* flat ``(n_events,)`` arrays with ``subject=`` ids (long format; trial order = row order);
* an event log ``{"actions", "rewards", "subjects"}`` (optionally ``"trials"``), the
  ``"events"`` input kind of :mod:`probest.testing`;
* a long-format ``pandas.DataFrame`` with columns ``subject``, ``trial``, ``action``,
  ``reward`` (rows sorted by subject, then trial).

Everything is checked here, in probest's words: actions must be integers in ``0..K-1``,
rewards finite and in ``[0, 1]``, every subject needs at least two trials, and ``n_arms``
may not be smaller than the largest observed action + 1.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

#: the long-format column names (``load_choice_data`` returns them).
COLUMNS = ("subject", "trial", "action", "reward")


@dataclasses.dataclass
class EventLog:
    """A validated, padded choice log: ``actions``/``rewards`` ``(n_subjects, T_max)``,
    ``lengths`` ``(n_subjects,)``, ``subjects`` the ids in order of first appearance,
    ``order`` maps the padded cells back to input rows (long-format inputs)."""

    actions: np.ndarray
    rewards: np.ndarray
    lengths: np.ndarray
    subjects: np.ndarray
    n_arms: int
    rows: list  # per subject: indices of its events in the caller's flat order (or None)

    @property
    def n_subjects(self) -> int:
        return len(self.lengths)

    @property
    def n_events(self) -> int:
        return int(self.lengths.sum())

    def ragged(self) -> tuple[list, list]:
        """Per-subject ``(actions, rewards)`` lists without the padding."""
        return ([a[:n] for a, n in zip(self.actions, self.lengths)],
                [r[:n] for r, n in zip(self.rewards, self.lengths)])

    def flat(self, values: np.ndarray) -> np.ndarray:
        """``(n_subjects, T_max, ...)`` per-trial values back in the caller's event order."""
        n = self.n_events
        out = np.empty((n, *values.shape[2:]), dtype=values.dtype)
        for s, idx in enumerate(self.rows):
            out[idx] = values[s, : self.lengths[s]]
        return out


def _as_1d(a: Any, what: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise ValueError(f"{what} of one subject must be 1-D; got shape {arr.shape}.")
    return arr


def _from_mapping(X: Any) -> tuple[list, list, np.ndarray | None, np.ndarray | None]:
    """The columns of an event-log dict or a long-format DataFrame."""
    cols = {str(k).lower(): k for k in X.keys()}
    def pick(*names):
        for n in names:
            if n in cols:
                return np.asarray(X[cols[n]])
        return None
    a = pick("actions", "action", "choice")
    r = pick("rewards", "reward", "outcome")
    s = pick("subjects", "subject", "subjid")
    trial = pick("trials", "trial")
    if a is None or r is None:
        raise ValueError("the event log needs 'actions' and 'rewards' columns (long format: "
                         f"{', '.join(COLUMNS)}); got columns {sorted(cols)}.")
    if s is None:
        raise ValueError("the event log lacks subject ids: add a 'subjects' (dict) or "
                         "'subject' (DataFrame) column, one id per event.")
    return a, r, s, trial


def _split_long(a, r, s, trial, what="events"):
    a, r, s = np.asarray(a), np.asarray(r), np.asarray(s)
    if a.ndim != 1 or r.ndim != 1 or s.ndim != 1:
        raise ValueError("long-format actions, rewards and subject ids must be 1-D.")
    if not len(a) == len(r) == len(s) or (trial is not None and len(trial) != len(a)):
        raise ValueError(f"event columns disagree in length: {len(a)} actions, {len(r)} "
                         f"rewards, {len(s)} subject ids"
                         + ("" if trial is None else f", {len(trial)} trials") + ".")
    if len(a) == 0:
        raise ValueError("the event log is empty (0 events); every subject needs >= 2 trials.")
    if s.dtype.kind == "f" and not np.all(np.isfinite(s)):
        raise ValueError("subject ids contain NaN or inf.")
    ids, first = np.unique(s, return_index=True)
    ids = ids[np.argsort(first)]
    acts, rews, rows = [], [], []
    for sid in ids:
        idx = np.flatnonzero(s == sid)
        if trial is not None:
            t = np.asarray(trial)[idx]
            if t.dtype.kind == "f" and not np.all(np.isfinite(t)):
                raise ValueError("trial numbers contain NaN or inf.")
            idx = idx[np.argsort(t, kind="stable")]
        acts.append(a[idx])
        rews.append(r[idx])
        rows.append(idx)
    return acts, rews, ids, rows


def _check_actions(a: np.ndarray, s: int) -> np.ndarray:
    if a.dtype.kind == "b" or a.dtype.kind not in "iuf":
        raise ValueError(f"actions of subject {s} must be integer arm ids 0..K-1; got dtype "
                         f"{a.dtype}.")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            raise ValueError(f"actions of subject {s} contain NaN or inf (actions must be "
                             "integer arm ids 0..K-1).")
        if not np.all(a == np.round(a)):
            raise ValueError(f"actions of subject {s} are not whole numbers; actions must be "
                             "integer arm ids 0..K-1.")
    if np.any(a < 0):
        raise ValueError(f"action ids outside 0..K-1: subject {s} has action {a.min()}; "
                         "number arms from 0 (e.g. `choice - 1` for 1-based data).")
    if a.size and a.max() >= 2**31:
        raise ValueError(f"action ids outside 0..K-1: subject {s} has action {a.max():g}; "
                         "actions must be arm ids 0..K-1.")
    return a.astype(np.int64)


def _check_rewards(r: np.ndarray, s: int) -> np.ndarray:
    if r.dtype.kind not in "iufb":
        raise ValueError(f"rewards of subject {s} must be numbers in [0, 1]; got dtype "
                         f"{r.dtype}.")
    r = r.astype(np.float64)
    if not np.all(np.isfinite(r)):
        raise ValueError(f"rewards of subject {s} contain NaN or inf.")
    if np.any(r < 0) or np.any(r > 1):
        raise ValueError(f"rewards of subject {s} lie outside [0, 1] (range {r.min():g} to "
                         f"{r.max():g}); Exp3 and these models need rewards in [0, 1]: "
                         "rescale, e.g. (outcome - min) / (max - min).")
    return r


def as_event_log(actions: Any, rewards: Any = None, subject: Any = None,
                 n_arms: int | None = None) -> EventLog:
    """Validate any accepted input form and pad it into an :class:`EventLog`."""
    rows = None
    if hasattr(actions, "keys") and hasattr(actions, "__getitem__"):  # dict or DataFrame
        if rewards is not None or subject is not None:
            raise ValueError("pass either an event log / DataFrame alone or actions and "
                             "rewards arrays, not both.")
        a, r, s, trial = _from_mapping(actions)
        acts, rews, ids, rows = _split_long(a, r, s, trial)
    elif rewards is None:
        raise ValueError("rewards are missing: call fit(actions, rewards) with one reward per "
                         "action, or pass an event log with 'actions', 'rewards', 'subjects'.")
    elif subject is not None:
        acts, rews, ids, rows = _split_long(actions, rewards, subject, None)
    elif isinstance(actions, (list, tuple)) and len(actions) and np.ndim(actions[0]) == 1 \
            and not np.isscalar(actions[0]):
        if not isinstance(rewards, (list, tuple)) or len(rewards) != len(actions):
            raise ValueError(f"ragged input: {len(actions)} action sequences need the same "
                             "number of reward sequences (a list), one per subject.")
        acts = [_as_1d(x, "actions") for x in actions]
        rews = [_as_1d(x, "rewards") for x in rewards]
        ids = np.arange(len(acts))
    else:
        A, R = np.asarray(actions), np.asarray(rewards)
        if A.ndim == 1:
            A, R = A[None], (R[None] if R.ndim == 1 else R)
        if A.ndim != 2:
            raise ValueError(f"actions must be (T,), (n_subjects, T), a ragged list, an event "
                             f"log or a DataFrame; got an array of shape {A.shape}.")
        if R.shape != A.shape:
            raise ValueError(f"actions have shape {A.shape} but rewards have shape {R.shape}; "
                             "one reward per action (same length) is needed.")
        acts, rews, ids = list(A), list(R), np.arange(A.shape[0])
    if len(acts) == 0:
        raise ValueError("no subjects: pass at least one subject with >= 2 trials.")
    lengths = []
    for i, (a, r) in enumerate(zip(acts, rews)):
        sid = ids[i]
        if len(a) != len(r):
            raise ValueError(f"subject {sid}: {len(a)} actions but {len(r)} rewards (lengths "
                             "must agree).")
        if len(a) < 2:
            raise ValueError(f"subject {sid} has {len(a)} trial(s); every subject needs at "
                             "least 2 trials to estimate a learning rate.")
        acts[i] = _check_actions(np.asarray(a), sid)
        rews[i] = _check_rewards(np.asarray(r), sid)
        lengths.append(len(a))
    observed = int(max(a.max() for a in acts)) + 1
    if n_arms is None:
        n_arms = max(observed, 2)
    elif observed > n_arms:
        raise ValueError(f"n_arms={n_arms} is smaller than the observed action ids (largest "
                         f"{observed - 1}, so at least {observed} arms): raise n_arms or "
                         "recode the actions to 0..K-1.")
    T = max(lengths)
    A = np.zeros((len(acts), T), dtype=np.int64)
    R = np.zeros((len(acts), T), dtype=np.float64)
    for i, (a, r) in enumerate(zip(acts, rews)):
        A[i, : len(a)], R[i, : len(r)] = a, r
    if rows is None:
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        rows = [np.arange(offsets[i], offsets[i + 1]) for i in range(len(lengths))]
    return EventLog(A, R, np.asarray(lengths, dtype=np.int64), np.asarray(ids), int(n_arms),
                    rows)


def match_subjects(log: EventLog, known: np.ndarray) -> np.ndarray:
    """Indices into ``known`` (the fitted subject ids) of each subject of ``log``."""
    known = np.asarray(known)
    out = []
    for sid in log.subjects:
        hit = np.flatnonzero(known == sid)
        if hit.size == 0:
            raise ValueError(f"subject {sid!r} was not in the fitted data (unknown subject); "
                             f"known subjects: {known[:5].tolist()}...; refit with it included.")
        out.append(int(hit[0]))
    return np.asarray(out, dtype=np.int64)
