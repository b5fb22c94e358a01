"""``parametrize_with_checks`` with written reasons for every expected failure."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any


def sklearn_checks(
    estimators: Sequence[Any],
    expected_failed_checks: Mapping[str, str] | Callable[[Any], Mapping[str, str]] | None = None,
):
    """``sklearn.utils.estimator_checks.parametrize_with_checks`` for probest estimators.

    ``expected_failed_checks`` maps a check name to the *reason* it cannot pass (or is a
    callable estimator -> such a dict).  Empty reasons are rejected: an expected failure
    without a reason is a bug report waiting to be lost.

    Parameters
    ----------
    estimators : sequence of estimators
        Tiny-budget instances to check.
    expected_failed_checks : dict or callable, optional
        ``{check name: reason}`` (reasons of at least 10 characters), or a function of the
        estimator returning such a dict.

    Returns
    -------
    pytest.MarkDecorator
        A ``pytest.mark.parametrize`` decorator for ``test(estimator, check)``.

    Examples
    --------
    >>> from probest.shift import WeightedLinearRegression
    >>> from probest.testing import sklearn_checks
    >>> mark = sklearn_checks([WeightedLinearRegression()])
    >>> mark.name
    'parametrize'
    >>> sklearn_checks([WeightedLinearRegression()], {"check_fit2d_1sample": ""})
    Traceback (most recent call last):
    ...
    ValueError: expected failure 'check_fit2d_1sample' of WeightedLinearRegression needs a written reason.
    """
    from sklearn.utils.estimator_checks import parametrize_with_checks

    def reasons(est):
        got = expected_failed_checks(est) if callable(expected_failed_checks) else expected_failed_checks
        got = dict(got or {})
        for name, why in got.items():
            if not isinstance(why, str) or len(why.strip()) < 10:
                raise ValueError(f"expected failure {name!r} of {type(est).__name__} needs a written reason.")
        return got

    return parametrize_with_checks(list(estimators), expected_failed_checks=reasons)
