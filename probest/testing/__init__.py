"""Reusable conformance checks every probest family's tests call.

* :class:`EstimatorConformance` — subclass it in ``tests/<family>/`` with a tiny-budget
  ``make_estimator`` and small ``make_data``; pytest collects its checks (clone/pickle,
  seeding, global RNG, bad input, Pyro, ArviZ, progress/history, save/load).
* :func:`sklearn_checks` — ``parametrize_with_checks`` that insists every expected failure
  carries a written reason.
* :func:`global_rng_states` / :func:`assert_rng_untouched` — for custom seeding tests.
"""

from probest.testing._conformance import EstimatorConformance
from probest.testing._rng import assert_rng_untouched, global_rng_states
from probest.testing._sklearn import sklearn_checks

__all__ = ["EstimatorConformance", "assert_rng_untouched", "global_rng_states", "sklearn_checks"]
