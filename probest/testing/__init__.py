"""Reusable conformance checks every probest family's tests call.

* :class:`EstimatorConformance` — subclass it in ``tests/<family>/`` with a tiny-budget
  ``make_estimator`` and small ``make_data``; pytest collects its checks (clone/pickle,
  seeding, global RNG, bad input, Pyro, ArviZ, progress/history, save/load).  It reads the
  estimator's declared ``_spec`` (:class:`probest.base.EstimatorSpec`): the outputs to
  compare and the input kind whose bad inputs to feed (:data:`KINDS`: tabular, clients,
  text, events; each yields named :class:`BadInput` s).
* :func:`sklearn_checks` — ``parametrize_with_checks`` that insists every expected failure
  carries a written reason.
* :func:`global_rng_states` / :func:`assert_rng_untouched` — for custom seeding tests.
"""

from probest.testing._conformance import EstimatorConformance
from probest.testing._kinds import KINDS, BadInput, InputKind
from probest.testing._rng import assert_rng_untouched, global_rng_states
from probest.testing._sklearn import sklearn_checks

__all__ = ["KINDS", "BadInput", "EstimatorConformance", "InputKind", "assert_rng_untouched",
           "global_rng_states", "sklearn_checks"]
