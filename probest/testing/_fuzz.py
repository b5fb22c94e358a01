"""Bad and extreme inputs per input kind, and the contract every estimator keeps on them.

Used by ``tests/fuzz`` (hypothesis draws the case, the value and the position):

* :func:`fit_cases` / :func:`predict_cases` — named builders ``(X, y, value, row, col) ->
  (X, y)`` for the estimator's declared input kind (tabular, client lists or event logs)
  and its labels;
* :func:`run_case` — calls one thing and classifies it: ``"error"`` (a ``ValueError`` /
  ``TypeError`` in probest's or sklearn's words) or ``"finite"`` (every float output and every
  fitted attribute finite); anything else raises ``AssertionError`` (a torch/LAPACK message,
  another exception type, a non-finite output, a call running past its time);
* :data:`COUNTS` — per estimator: cases tried, clear errors, finite outputs, failures.

Warnings: ``ConvergenceWarning`` and ``UserWarning`` s (probest's documented warnings —
``LowEffectiveSampleSizeWarning``, ``NoOverlapWarning``... — and sklearn's data-conversion
warnings) are allowed; a ``RuntimeWarning`` (numpy overflow/invalid arithmetic on an unchecked
extreme) stays an error, as in the rest of the suite, and counts as a failure.
"""

from __future__ import annotations

import collections
import contextlib
import signal
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

#: words that must never reach a user: they mean a torch/LAPACK/CUDA internal surfaced.
FORBIDDEN = ("INTERNAL ASSERT", "torch", "LAPACK", "lapack", "cholesky", "linalg",
             "CUDA", "multinomial", "Expected parameter", "report a bug", "Traceback",
             "tensor", "Tensor", "gesdd", "dgelsd")

#: finite extremes and non-finite values hypothesis picks from.
EXTREMES = (np.nan, np.inf, -np.inf, 1e300, -1e300, 1e-300, 1e150, -1e150, 1e20, 5e-324)

#: ``{estimator name: Counter(tried, error, finite, fail)}`` of this session.
COUNTS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

Case = Callable[[Any, Any, float, int, int], tuple[Any, Any]]


def _set(X, row, col, value):
    X = np.array(X, dtype=np.float64, copy=True)
    X[row % len(X), col % X.shape[1]] = value
    return X


def _col(X, col, fn):
    X = np.array(X, dtype=np.float64, copy=True)
    X[:, col % X.shape[1]] = fn(X[:, col % X.shape[1]])
    return X


def _tabular_cases(classifier: bool, has_y: bool) -> dict[str, Case]:
    cases: dict[str, Case] = {
        "entry set to value": lambda X, y, v, r, c: (_set(X, r, c, v), y),
        "column times 1e150": lambda X, y, v, r, c: (_col(X, c, lambda a: a * 1e150), y),
        "column times 1e-300": lambda X, y, v, r, c: (_col(X, c, lambda a: a * 1e-300), y),
        "column plus 1e12": lambda X, y, v, r, c: (_col(X, c, lambda a: a + 1e12), y),
        "huge finite column": lambda X, y, v, r, c: (_col(X, c, lambda a: np.sign(a) * 1e300), y),
        "constant column": lambda X, y, v, r, c: (_col(X, c, lambda a: np.full_like(a, 3.0)), y),
        "identical rows": lambda X, y, v, r, c: (np.repeat(np.asarray(X)[:1], len(X), 0), y),
        "duplicate rows": lambda X, y, v, r, c: (np.vstack([X, X]),
                                                 None if y is None else np.concatenate([y, y])),
        "0 rows": lambda X, y, v, r, c: (np.asarray(X)[:0], None if y is None else y[:0]),
        "1 row": lambda X, y, v, r, c: (np.asarray(X)[:1], None if y is None else y[:1]),
        "2 rows": lambda X, y, v, r, c: (np.asarray(X)[:2], None if y is None else y[:2]),
        "1-D X": lambda X, y, v, r, c: (np.asarray(X)[:, 0], y),
        "3-D X": lambda X, y, v, r, c: (np.asarray(X)[..., None], y),
        "0 features": lambda X, y, v, r, c: (np.asarray(X)[:, :0], y),
        "object strings": lambda X, y, v, r, c: (np.asarray(X).astype(str).astype(object), y),
        "str array": lambda X, y, v, r, c: (np.char.add(np.asarray(X).astype(str), "x"), y),
        "bool X": lambda X, y, v, r, c: (np.asarray(X) > 0, y),
    }
    if has_y:
        cases["short y"] = lambda X, y, v, r, c: (X, y[:-1])
    if classifier:
        cases["one class"] = lambda X, y, v, r, c: (X, np.full_like(y, y[0]))
        cases["string labels"] = lambda X, y, v, r, c: (X, np.where(y == y[0], "a", "b"))
        cases["continuous y"] = lambda X, y, v, r, c: (X, np.asarray(y) + 0.5 * np.arange(len(y)))
    elif has_y:
        cases["y set to value"] = lambda X, y, v, r, c: (X, _set(np.asarray(y)[:, None], r, 0, v)[:, 0])
        cases["y times 1e150"] = lambda X, y, v, r, c: (X, np.asarray(y, dtype=float) * 1e150)
        cases["constant y"] = lambda X, y, v, r, c: (X, np.full(len(y), 5.0))
    return cases


def _client_cases(has_y: bool) -> dict[str, Case]:
    def one(fn):
        return lambda X, y, v, r, c: fn([np.array(x, dtype=float) for x in X], y, v, r, c)

    def _value(X, y, v, r, c):
        X[r % len(X)] = _set(X[r % len(X)], r, c, v)
        return X, y

    cases: dict[str, Case] = {
        "value in one client": one(_value),
        "empty client": one(lambda X, y, v, r, c: ([*X[:-1], X[-1][:0]], y)),
        "ragged widths": one(lambda X, y, v, r, c: ([*X[:-1], X[-1][:, :-1]], y)),
        "one client": one(lambda X, y, v, r, c: (X[:1], None if y is None else y[:1])),
        "client of 1-D rows": one(lambda X, y, v, r, c: ([X[0][:, 0], *X[1:]], y)),
        "no clients": one(lambda X, y, v, r, c: ([], None if y is None else [])),
    }
    if has_y:
        cases["short y in one client"] = one(lambda X, y, v, r, c: (X, [*y[:-1], y[-1][:-1]]))
        cases["one class"] = one(lambda X, y, v, r, c: (X, [np.zeros_like(v_) for v_ in y]))
    return cases


def _put(X, row, value):
    X = list(X)
    X[row % len(X)] = value
    return X


#: a text with accents, CJK, an emoji and a control character (valid: must fit or refuse clearly)
_ODD_TEXT = "caf\u00e9 \u4e2d\u6587 \U0001f600 \x00 ok"


def _text_cases(classifier: bool, has_y: bool) -> dict[str, Case]:
    cases: dict[str, Case] = {
        "empty string": lambda X, y, v, r, c: (_put(X, r, ""), y),
        "whitespace only": lambda X, y, v, r, c: (_put(X, r, " \t\n"), y),
        "number entry": lambda X, y, v, r, c: (_put(X, r, v), y),
        "None entry": lambda X, y, v, r, c: (_put(X, r, None), y),
        "0 texts": lambda X, y, v, r, c: ([], None if y is None else np.asarray(y)[:0]),
        "numeric array": lambda X, y, v, r, c: (np.full((len(X), 2), v), y),
        "one string": lambda X, y, v, r, c: (" ".join(X), y),
        "odd characters": lambda X, y, v, r, c: (_put(X, r, _ODD_TEXT), y),
    }
    if has_y:
        cases["short y"] = lambda X, y, v, r, c: (X, np.asarray(y)[:-1])
    if classifier:
        cases["one class"] = lambda X, y, v, r, c: (X, np.full(len(y), np.asarray(y)[0]))
    return cases


def _events(fn):
    """A case on a copy of an event log ``{"actions", "rewards", "subjects"}``."""
    def case(X, *rest):
        return fn({k: np.array(v, copy=True) for k, v in X.items()}, *rest)
    return case


def _ev_set(X, column, r, v):
    X[column] = X[column].astype(np.float64)
    X[column][r % len(X[column])] = v
    return X


def _ev_one_trial_subject(X):
    X["actions"] = np.append(X["actions"], X["actions"][0])
    X["rewards"] = np.append(X["rewards"], X["rewards"][0])
    X["subjects"] = np.append(X["subjects"], np.max(X["subjects"]) + 1)
    return X


def _event_cases() -> dict[str, Case]:
    cases = {
        "reward set to value": lambda X, v, r: _ev_set(X, "rewards", r, v),
        "action set to value": lambda X, v, r: _ev_set(X, "actions", r, v),
        "subject id set to value": lambda X, v, r: _ev_set(X, "subjects", r, v),
        "rewards times 1e150": lambda X, v, r: {**X, "rewards": X["rewards"] * 1e150},
        "subject with one trial": lambda X, v, r: _ev_one_trial_subject(X),
        "0 events": lambda X, v, r: {k: x[:0] for k, x in X.items()},
        "one subject": lambda X, v, r: {**X, "subjects": np.zeros_like(X["subjects"])},
        "one arm only": lambda X, v, r: {**X, "actions": np.zeros_like(X["actions"])},
        "missing rewards": lambda X, v, r: {k: x for k, x in X.items() if k != "rewards"},
        "ragged columns": lambda X, v, r: {**X, "rewards": X["rewards"][:-1]},
        "string actions": lambda X, v, r: {**X, "actions": X["actions"].astype(str)},
    }
    return {name: (lambda f: lambda X, y, v, r, c: (_events(f)(X, v, r), y))(fn)
            for name, fn in cases.items()}


def fit_cases(kind: str, classifier: bool, has_y: bool) -> dict[str, Case]:
    """Named bad/extreme fit inputs of a kind (``"tabular"``, ``"clients"``, ``"text"`` or
    ``"events"``)."""
    if kind == "text":
        return _text_cases(classifier, has_y)
    if kind == "events":
        return _event_cases()
    return _client_cases(has_y) if kind == "clients" else _tabular_cases(classifier, has_y)


def predict_cases(kind: str = "tabular") -> dict[str, Callable[[Any, float, int, int], Any]]:
    """Named bad/extreme inputs of the output methods: ``(X, value, row, col) -> X``."""
    if kind == "text":
        return {
            "empty string": lambda X, v, r, c: _put(X, r, ""),
            "number entry": lambda X, v, r, c: _put(X, r, v),
            "0 texts": lambda X, v, r, c: [],
            "numeric array": lambda X, v, r, c: np.full((len(X), 2), v),
            "odd characters": lambda X, v, r, c: _put(X, r, _ODD_TEXT),
        }
    if kind == "events":
        return {
            "reward set to value": lambda X, v, r, c: _events(_ev_set)(X, "rewards", r, v),
            "action set to value": lambda X, v, r, c: _events(_ev_set)(X, "actions", r, v),
            "unknown subject": lambda X, v, r, c: {**X, "subjects": X["subjects"] + 1000},
            "0 events": lambda X, v, r, c: {k: x[:0] for k, x in X.items()},
            "missing actions": lambda X, v, r, c: {k: x for k, x in X.items() if k != "actions"},
        }
    return {
        "entry set to value": lambda X, v, r, c: _set(X, r, c, v),
        "X plus 1e6": lambda X, v, r, c: np.asarray(X) + 1e6,
        "row times 1e150": lambda X, v, r, c: _set(X, r, c, np.asarray(X)[r % len(X), c % X.shape[1]]
                                                   * 1e150),
        "wrong n_features": lambda X, v, r, c: np.hstack([X, X[:, :1]]),
        "0 rows": lambda X, v, r, c: np.asarray(X)[:0],
        "1-D X": lambda X, v, r, c: np.asarray(X)[0],
        "3-D X": lambda X, v, r, c: np.asarray(X)[..., None],
        "object strings": lambda X, v, r, c: np.asarray(X).astype(str).astype(object),
        "bool X": lambda X, v, r, c: np.asarray(X) > 0,
    }


@contextlib.contextmanager
def _alarm(seconds: int):
    """Raise ``TimeoutError`` after ``seconds`` (main thread only; a call stuck inside LAPACK
    is not interruptible: pytest-timeout's thread method ends the run then)."""
    def _raise(*_):
        raise TimeoutError(f"call ran past {seconds} s")

    old = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _float_arrays(out: Any):
    if isinstance(out, tuple):
        for o in out:
            yield from _float_arrays(o)
        return
    a = np.asarray(out)
    if a.dtype.kind in "fc":
        yield a


def run_case(name: str, what: str, call: Callable[[], Any], fitted: Any = None,
             seconds: int = 20) -> str:
    """Run ``call`` under the contract; return ``"error"`` or ``"finite"`` (and count it),
    raise ``AssertionError`` (counted as a failure) otherwise.  ``fitted`` is the estimator
    whose fitted attributes must be finite after a call that returned."""
    COUNTS[name]["tried"] += 1
    try:
        try:
            with warnings.catch_warnings(), _alarm(seconds):
                warnings.filterwarnings("ignore", category=ConvergenceWarning)
                warnings.filterwarnings("ignore", category=UserWarning)
                out = call()
        except (ValueError, TypeError) as exc:
            msg = str(exc)
            leaked = [w for w in FORBIDDEN if w in msg]
            assert msg.strip(), f"{name} {what}: {type(exc).__name__} with an empty message"
            assert not leaked, f"{name} {what}: internal words {leaked} in the message: {msg}"
            COUNTS[name]["error"] += 1
            return "error"
        except Exception as exc:
            raise AssertionError(f"{name} {what}: {type(exc).__name__} instead of a clear "
                                 f"ValueError/TypeError: {exc}") from exc
        for a in _float_arrays(out):
            assert np.isfinite(a).all(), f"{name} {what}: non-finite output {a.ravel()[:6]}"
        if fitted is not None:
            fitted._check_fitted_finite()
        COUNTS[name]["finite"] += 1
        return "finite"
    except AssertionError:
        COUNTS[name]["fail"] += 1
        raise
    except ValueError as exc:  # the fitted-state check
        COUNTS[name]["fail"] += 1
        raise AssertionError(f"{name} {what}: {exc}") from exc
