"""Input kinds for the conformance suite: how to read data of each kind and its bad inputs.

Every :class:`probest.base.EstimatorSpec` names an input kind; the suite asks the kind for

* ``eval_input(X)`` / ``eval_target(y)`` — what the output methods take (a client list is
  stacked into one array; other kinds pass through),
* ``bad_fit_inputs(X, y)`` — :class:`BadInput` s that ``fit`` must refuse with a
  ``ValueError`` (group ``"values"``: NaN/inf, empty strings...; group ``"shapes"``: wrong
  dimensions, lengths that disagree...),
* ``bad_predict_inputs(X, y)`` — inputs every declared output method must refuse (or a
  ``call`` that must raise, e.g. scoring unknown labels).

Each bad input has a ``name``; a conformance class switches one off by listing it in
``skip_bad_inputs`` with a written reason.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

_NAN = r"(?i)nan|inf|finite"
_LENGTH = r"(?i)inconsistent|samples|length|shape|rows"


@dataclasses.dataclass(frozen=True)
class BadInput:
    """One bad input: ``fit(X, y)`` (or every output method on ``X``) must raise a
    ``ValueError`` matching ``match``; with ``call``, ``call(fitted_estimator)`` must.

    Parameters
    ----------
    name : str
        Unique name within its kind (used by ``EstimatorConformance.skip_bad_inputs``).
    group : {"values", "shapes", "predict"}
        Which conformance check uses it: bad values or shapes at ``fit``, or bad input to
        the fitted estimator's output methods.
    X, y : object, optional
        The bad data (``y`` is passed only to supervised estimators).
    match : str
        Regular expression the error message must match.
    call : callable, optional
        ``call(fitted_estimator)`` for checks that are not one call on ``X``.

    Attributes
    ----------
    name, group, X, y, match, call
        As given.

    Examples
    --------
    >>> import numpy as np
    >>> from probest.testing import KINDS
    >>> X, y = np.zeros((6, 2)) + np.arange(6)[:, None], np.arange(6) % 2
    >>> bad = KINDS["tabular"].bad_fit_inputs(X, y)
    >>> [b.name for b in bad if b.group == "values"]
    ['nan', 'inf']
    >>> bool(np.isnan(bad[0].X).any())
    True
    """

    name: str
    group: str  # "values", "shapes" (fit) or "predict"
    X: Any = None
    y: Any = None
    match: str = ""
    call: Callable[[Any], Any] | None = None


class InputKind:
    """What one kind of ``fit`` input looks like and how it can be wrong.

    The base kind passes data through unchanged and has no bad inputs.  A kind overrides
    ``eval_input``/``eval_target`` (how the suite feeds data to output methods) and
    ``bad_fit_inputs``/``bad_predict_inputs`` (lists of :class:`BadInput` derived from a valid
    ``(X, y)``).  ``probest.testing.KINDS`` maps each name of
    :data:`probest.base.INPUT_KINDS` to its kind: ``Tabular`` (NaN, inf, 1-D, 3-D, short
    ``y``, wrong ``n_features``), ``Clients`` (an empty client, mismatched widths, NaN in one
    client), ``Text`` (empty strings, non-strings, ``y`` of another length, unknown labels)
    and ``Events`` (ragged lengths, NaN rewards, negative or fractional action ids, unknown
    actions, missing subjects).

    Attributes
    ----------
    name : str
        The kind's name, one of :data:`probest.base.INPUT_KINDS`.

    Examples
    --------
    >>> from probest.testing import KINDS
    >>> sorted(KINDS)
    ['clients', 'events', 'tabular', 'text']
    >>> texts, labels = ["good film", "bad film", "fine"], ["pos", "neg", "pos"]
    >>> sorted({b.group for b in KINDS["text"].bad_fit_inputs(texts, labels)})
    ['shapes', 'values']
    """

    name = "?"

    def eval_input(self, X: Any) -> Any:
        return X

    def eval_target(self, y: Any) -> Any:
        return y

    def bad_fit_inputs(self, X: Any, y: Any) -> list[BadInput]:
        return []

    def bad_predict_inputs(self, X: Any, y: Any) -> list[BadInput]:
        return []


class Tabular(InputKind):
    """A 2-D float array ``X`` (n_samples, n_features) and an optional ``y``."""

    name = "tabular"

    def eval_input(self, X):
        return np.asarray(X)

    def bad_fit_inputs(self, X, y):
        X = np.asarray(X)
        out = []
        for label, value in (("nan", np.nan), ("inf", np.inf)):
            Xb = np.array(X, dtype=np.float64, copy=True)
            Xb[1, 0] = value
            out.append(BadInput(label, "values", Xb, y, r"(?i)nan|inf"))
        out.append(BadInput("1-D X", "shapes", X[:, 0], y, r"(?i)2d|reshape|dimension"))
        out.append(BadInput("3-D X", "shapes", X[..., None], y, r"(?i)dim|2d|shape"))
        if y is not None:
            out.append(BadInput("short y", "shapes", X, np.asarray(y)[:-1],
                                r"(?i)inconsistent|samples|length|shape"))
        return out

    def bad_predict_inputs(self, X, y):
        X = np.asarray(X)
        return [BadInput("wrong n_features", "predict", np.hstack([X, X[:, :1]]), None,
                         r"(?i)features")]


class Clients(Tabular):
    """A list of 2-D client arrays (federated); ``y`` is a list of per-client labels or None.
    Output methods take one stacked 2-D array."""

    name = "clients"

    def eval_input(self, X):
        return np.concatenate([np.asarray(c) for c in X])

    def eval_target(self, y):
        return None if y is None else np.concatenate([np.asarray(v) for v in y])

    def bad_fit_inputs(self, X, y):
        X = [np.asarray(c, dtype=np.float64) for c in X]
        out = []
        for label, value in (("nan in one client", np.nan), ("inf in one client", np.inf)):
            bad = [c.copy() for c in X]
            bad[-1][0, 0] = value
            out.append(BadInput(label, "values", bad, y, _NAN))
        out.append(BadInput("empty client", "shapes", [*X[:-1], X[-1][:0]], y,
                            r"(?i)empty|no samples"))
        out.append(BadInput("clients with different widths", "shapes",
                            [*X[:-1], X[-1][:, :-1]], y, r"(?i)feature"))
        if y is not None:
            ys = [np.asarray(v) for v in y]
            out.append(BadInput("short y in one client", "shapes", X, [*ys[:-1], ys[-1][:-1]],
                                _LENGTH))
        return out


class Text(InputKind):
    """A list of strings; ``y`` one label per string."""

    name = "text"

    def bad_fit_inputs(self, X, y):
        X = list(X)
        out = [BadInput("empty string", "values", [X[0], "", *X[2:]], y, r"(?i)empty"),
               BadInput("non-string entry", "values", [X[0], 3.0, *X[2:]], y, r"(?i)str"),
               BadInput("not a list of strings", "shapes", np.zeros((len(X), 2)), y,
                        r"(?i)str")]
        if y is not None:
            out.append(BadInput("y of another length", "shapes", X, np.asarray(y)[:-1],
                                _LENGTH))
        return out

    def bad_predict_inputs(self, X, y):
        X = list(X)
        out = [BadInput("non-string entry at predict", "predict", [X[0], None, *X[2:]], None,
                        r"(?i)str"),
               BadInput("empty string at predict", "predict", ["", *X[1:]], None,
                        r"(?i)empty")]
        if y is not None:
            unknown = np.asarray(y, dtype=object).copy()
            unknown[0] = "__never_seen_label__"
            out.append(BadInput("unknown labels at score", "predict", match=r"(?i)unknown|label",
                                call=lambda est: est.score(X, unknown)))
        return out


class Events(InputKind):
    """A ragged event log: a dict of equal-length ``actions`` (int ids), ``rewards``
    (floats) and ``subjects`` (subject ids); ``y`` is None."""

    name = "events"

    @staticmethod
    def _copy(X, **changes):
        out = {k: np.array(v, copy=True) for k, v in X.items()}
        out.update(changes)
        return out

    def bad_fit_inputs(self, X, y):
        r = np.asarray(X["rewards"], dtype=np.float64)
        out = []
        for label, value in (("nan reward", np.nan), ("inf reward", np.inf)):
            rb = r.copy()
            rb[1] = value
            out.append(BadInput(label, "values", self._copy(X, rewards=rb), y, _NAN))
        a = np.asarray(X["actions"])
        neg = a.copy()
        neg[2] = -1
        out.append(BadInput("negative action id", "values", self._copy(X, actions=neg), y,
                            r"(?i)action"))
        frac = a.astype(np.float64)
        frac[2] += 0.5
        out.append(BadInput("fractional action id", "values", self._copy(X, actions=frac), y,
                            r"(?i)action|integer|whole"))
        out.append(BadInput("ragged lengths that disagree", "shapes",
                            self._copy(X, rewards=r[:-1]), y, _LENGTH))
        missing = {k: v for k, v in X.items() if k != "subjects"}
        out.append(BadInput("missing subject ids", "shapes", missing, y, r"(?i)subject"))
        return out

    def bad_predict_inputs(self, X, y):
        a = np.asarray(X["actions"]).copy()
        a[0] = a.max() + 100
        return [BadInput("unknown action ids", "predict", self._copy(X, actions=a), None,
                         r"(?i)unknown|action")]


KINDS: dict[str, InputKind] = {k.name: k for k in (Tabular(), Clients(), Text(), Events())}
