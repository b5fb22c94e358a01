"""Validation shared by every family (a leaf module: imports numpy only).

Parameter and input checks that scikit-learn keeps in private modules
(``sklearn.utils._param_validation``, ``_check_sample_weight``) live here instead, so
probest never depends on scikit-learn internals that change without notice.

Parameters are declared, not checked by hand: a class lists ``_constraints``, a dict from
parameter name to a tuple of allowed forms, and :func:`check_params` (called by
``ProbestEstimator._validate_params``) accepts a value when any form matches::

    _constraints = {
        "n_components": (Interval(int, 1, None),),
        "covariance_type": (Options({"full", "tied", "diag", "spherical"}),),
        "batch_size": (Interval(int, 1, None), None),     # None: the value None is allowed
    }

Forms: an :class:`Interval`, an :class:`Options`, ``None``, a type (``isinstance``), the
strings ``"boolean"``, ``"array-like"``, ``"callable"`` and ``"any"`` (no check).  The
shared parameters (``device``, ``dtype``, ``random_state``, ``verbose``) are checked by
:data:`SHARED_CONSTRAINTS` whenever the estimator has them, unless its ``_constraints``
overrides the entry.
"""

from __future__ import annotations

import dataclasses
import numbers
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

_CLOSED = {"both": ("[", "]"), "left": ("[", ")"), "right": ("(", "]"), "neither": ("(", ")")}


@dataclasses.dataclass(frozen=True)
class Interval:
    """A real (``kind=float``) or integer (``kind=int``) number in ``[low, high]``; a
    ``None`` bound is open-ended.  ``closed`` is "both", "left", "right" or "neither".
    Booleans are not numbers here."""

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "left"

    def accepts(self, value: Any) -> bool:
        ok_type = numbers.Integral if self.kind is int else numbers.Real
        if isinstance(value, bool) or not isinstance(value, ok_type):
            return False
        lo_in = self.closed in ("both", "left")
        hi_in = self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (value == self.low and not lo_in)):
            return False
        if self.high is not None and (value > self.high or (value == self.high and not hi_in)):
            return False
        return not (isinstance(value, float) and np.isnan(value))

    def describe(self) -> str:
        left, right = _CLOSED[self.closed]
        lo = "-inf" if self.low is None else self.low
        hi = "inf" if self.high is None else self.high
        what = "an int" if self.kind is int else "a float"
        return f"{what} in the range {left}{lo}, {hi}{right}"


@dataclasses.dataclass(frozen=True)
class Options:
    """One of a fixed set of values (strings, usually)."""

    values: frozenset

    def __init__(self, values) -> None:
        object.__setattr__(self, "values", frozenset(values))

    def accepts(self, value: Any) -> bool:
        try:
            return value in self.values
        except TypeError:  # unhashable
            return False

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in sorted(self.values, key=str))


def _is_device(value: Any) -> bool:
    if isinstance(value, str):
        return bool(re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", value))
    return type(value).__name__ == "device"  # torch.device, without importing torch here


def _is_dtype(value: Any) -> bool:
    if isinstance(value, str):
        return value in ("float32", "float64", "float16", "bfloat16")
    if type(value).__name__ == "dtype" and type(value).__module__ == "torch":
        return bool(value.is_floating_point)
    try:
        return np.dtype(value).kind == "f"
    except TypeError:
        return False


def _is_random_state(value: Any) -> bool:
    if isinstance(value, (np.random.RandomState, np.random.Generator)):
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0


def _is_verbose(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral)
                                                   and value >= 0)


@dataclasses.dataclass(frozen=True)
class Check:
    """A named predicate (for forms no interval or option set describes)."""

    predicate: Any
    description: str

    def accepts(self, value: Any) -> bool:
        return bool(self.predicate(value))

    def describe(self) -> str:
        return self.description


#: the parameters every torch-backed estimator shares, checked in one place.
SHARED_CONSTRAINTS: dict[str, tuple] = {
    "device": (Check(_is_device, "'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device"), None),
    "dtype": (Check(_is_dtype, "a floating dtype ('float32', 'float64' or a torch/numpy "
                               "floating dtype)"), None),
    "random_state": (Check(_is_random_state, "a non-negative int, a numpy RandomState or "
                                             "Generator"), None),
    "verbose": (Check(_is_verbose, "a non-negative int or a bool"),),
}

_NAMED = {
    "boolean": Check(lambda v: isinstance(v, (bool, np.bool_)), "a bool"),
    "array-like": Check(lambda v: hasattr(v, "__len__") or hasattr(v, "__array__"),
                        "an array-like"),
    "callable": Check(callable, "a callable"),
}


def _accepts(form: Any, value: Any) -> bool:
    if form is None:
        return value is None
    if form == "any":
        return True
    if isinstance(form, str):
        return _NAMED[form].accepts(value)
    if isinstance(form, type):
        return isinstance(value, form)
    return form.accepts(value)


def _describe(form: Any) -> str:
    if form is None:
        return "None"
    if isinstance(form, str):
        return _NAMED[form].describe() if form in _NAMED else form
    if isinstance(form, type):
        return f"an instance of {form.__name__}"
    return form.describe()


class InvalidParameterError(ValueError, TypeError):
    """A constructor parameter outside its constraints (a ``ValueError`` and a
    ``TypeError``, as scikit-learn's exception of the same name)."""


def _sklearn_words(form: Any) -> list[str]:
    """``form`` in scikit-learn's wording (one entry per constraint it stands for)."""
    if form == "boolean":
        return ["an instance of 'bool'", "an instance of 'numpy.bool'"]
    if isinstance(form, Options) and all(isinstance(v, str) for v in form.values):
        return ["a str among {" + ", ".join(repr(v) for v in sorted(form.values)) + "}"]
    if isinstance(form, type):
        return [f"an instance of '{form.__name__}'"]
    if isinstance(form, Check) and form.predicate is _is_verbose:
        return ["an int in the range [0, inf)", "an instance of 'bool'",
                "an instance of 'numpy.bool'"]
    if isinstance(form, Check) and form.predicate is _is_random_state:
        return ["an int in the range [0, 4294967295]",
                "an instance of 'numpy.random.mtrand.RandomState'",
                "an instance of 'numpy.random.Generator'"]
    return [_describe(form)]


def _sklearn_message(est: Any, name: str, value: Any, forms: tuple) -> str:
    words = [w for f in forms for w in _sklearn_words(f)]
    allowed = words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
    return (f"The {name!r} parameter of {type(est).__name__} must be {allowed}. "
            f"Got {value!r} instead. {name}={value!r} is not valid.")


def check_params(est: Any, constraints: Mapping[str, tuple], *, style: str = "probest") -> None:
    """Check ``est``'s constructor parameters against ``constraints`` (plus
    :data:`SHARED_CONSTRAINTS` for the shared ones it has).

    Raises ``ValueError`` "name=value is not valid for Cls: name must be ...";
    with ``style="sklearn"`` an :class:`InvalidParameterError` in scikit-learn's wording,
    "The 'name' parameter of Cls must be .... Got value instead. name=value is not valid."
    (scikit-learn's sentence first, so code matching it keeps working; the drop-ins
    use it, so code matching scikit-learn's messages keeps working).
    """
    params = est.get_params(deep=False)
    table = {k: v for k, v in SHARED_CONSTRAINTS.items() if k in params}
    table.update(constraints)
    for name, forms in table.items():
        if name not in params:
            continue
        value = params[name]
        if any(_accepts(f, value) for f in forms):
            continue
        if style == "sklearn":
            raise InvalidParameterError(_sklearn_message(est, name, value, forms))
        allowed = " or ".join(_describe(f) for f in forms)
        raise ValueError(f"{name}={value!r} is not valid for {type(est).__name__}: {name} "
                         f"must be {allowed}.")


def check_sample_weight(sample_weight, n: int) -> np.ndarray | None:
    """``sample_weight`` as a finite, non-negative float64 vector of length ``n`` (or None).

    A scalar means the same weight for every row.  Raises ``ValueError`` on a wrong length
    or a 2-D array, NaN/inf, negative entries, or weights that sum to zero (integer weights
    act as repeated rows, zero weights drop rows).
    """
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.ndim != 1:
        raise ValueError(f"sample_weight must be 1-D of length {n}, got shape {w.shape}.")
    if w.shape[0] != n:
        raise ValueError(f"sample_weight has {w.shape[0]} entries but X has {n} rows.")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite and non-negative.")
    if w.sum() <= 0:
        raise ValueError("sample_weight is zero for every sample (it sums to zero): at least "
                         "one row needs a positive weight.")
    return w


# --- sampling sizes, input scales and finite outputs (issue 10, defects 5 and 7) ---------

def check_n_samples(n_samples: Any) -> int:
    """``n_samples`` of a ``sample`` method as an int >= 1 (scikit-learn's rule for
    ``GaussianMixture.sample``); anything else raises ``ValueError``."""
    if (isinstance(n_samples, (bool, np.bool_)) or not isinstance(n_samples, numbers.Integral)
            or n_samples < 1):
        raise ValueError(f"Invalid value for 'n_samples': {n_samples!r}. The sampling requires "
                         "at least one sample: pass an int >= 1.")
    return int(n_samples)


#: headroom kept below a float type's maximum by :func:`check_scale` (per item size in bytes):
#: float64 keeps 10 of its 308 decades, float32 1 of its 38.
_HEADROOM = {8: 1e10, 4: 10.0, 2: 2.0}


def _finfo_max(dtype: Any) -> tuple[float, int, str]:
    name = str(dtype).replace("torch.", "")
    if name == "bfloat16":
        return 3.3895313892515355e38, 2, name
    info = np.finfo(np.dtype(name))
    return float(info.max), int(info.bits // 8), name


def _rows(rows: np.ndarray, limit: int = 8) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:limit])
    return f"[{shown}]" + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def check_scale(X: np.ndarray, *, owner: str, dtype: Any = "float64", name: str = "X",
                n_rows: int | None = None) -> None:
    """Raise ``ValueError`` when entries of the 2-D ``X`` are so large that the squared
    distances and variances a fit sums over rows and features overflow ``dtype``.

    The bound is ``sqrt(max(dtype) / (headroom * n_rows * n_features))``; the error names
    the offending rows and says to rescale.  ``n_rows`` is the number of rows summed over
    when ``X`` is one part (a client) of the data.
    """
    X = np.asarray(X)
    if X.size == 0:
        return
    fmax, size, dname = _finfo_max(dtype)
    n = X.shape[0] if n_rows is None else max(int(n_rows), X.shape[0])
    d = int(np.prod(X.shape[1:])) if X.ndim > 1 else 1
    limit = float(np.sqrt(fmax / (_HEADROOM.get(size, 10.0) * n * d)))
    if X.dtype.kind == "f" and limit >= float(np.finfo(X.dtype).max):
        return  # e.g. float32 data fitted in float64: no entry can reach the limit
    with np.errstate(invalid="ignore"):
        big = np.abs(X.reshape(X.shape[0], -1)) > limit
    if not big.any():
        return
    rows = np.flatnonzero(big.any(axis=1))
    raise ValueError(
        f"{owner}: {name} has entries up to {float(np.nanmax(np.abs(X))):.3g} (rows "
        f"{_rows(rows)}); squared distances and variances over {n} rows overflow {dname} "
        f"beyond |{name}| = {limit:.3g}. Rescale {name} (e.g. sklearn's StandardScaler) or "
        "drop these rows.")


def check_finite_rows(values: Any, *, owner: str, what: str, X: Any = None,
                      allow_neg_inf: bool = False) -> np.ndarray:
    """``values`` (first axis = rows of ``X``) when every row is finite, else ``ValueError``
    naming the rows.  ``allow_neg_inf`` accepts ``-inf`` (a log density of exactly zero)."""
    v = np.asarray(values)
    if v.dtype.kind not in "fc" or v.size == 0:
        return values
    flat = v.reshape(len(v), -1)
    ok = np.isfinite(flat) | (allow_neg_inf & np.isneginf(flat))
    bad = ~ok.all(axis=1)
    if not bad.any():
        return values
    rows = np.flatnonzero(bad)
    size = ""
    if X is not None:
        with np.errstate(invalid="ignore"):
            size = f" (|x| up to {float(np.nanmax(np.abs(np.asarray(X, float)[rows]))):.3g} there)"
    raise ValueError(
        f"{owner}.{what}: rows {_rows(rows)} of X give non-finite values{size}; they lie too "
        "far outside the data the model was fitted on to be evaluated in floating point. "
        "Rescale X as the training data were scaled, or drop these rows.")
