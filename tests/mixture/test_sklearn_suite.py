"""scikit-learn's own GaussianMixture test suite, run against probest's class.

The installed wheel's ``sklearn.mixture.tests.test_gaussian_mixture`` is imported here and
its ``test_*`` functions are re-exported, so pytest collects them with their own
parametrize marks (no test code is copied).  An autouse fixture substitutes
:class:`probest.mixture.GaussianMixture` for the module's ``GaussianMixture``, so every
``GaussianMixture(...)`` those tests build is probest's.

* ``global_dtype`` runs float64 *and* float32 (what ``SKLEARN_RUN_FLOAT32_TESTS=1`` gives in
  scikit-learn's conftest); ``global_random_seed`` is 42, or the seeds of
  ``SKLEARN_TESTS_GLOBAL_RANDOM_SEED`` ("all", "a-b" or one seed), as scikit-learn's.
* The array-API cases run with torch on CPU (CUDA/MPS cases skip without the device);
  ``SCIPY_ARRAY_API=1`` is set for each test, which scikit-learn's ``array_api_dispatch``
  requires (probest's code does not call scipy on tensors).
* :data:`EXCLUDED` lists every test that is not run, each with its reason.
"""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

import probest.mixture

suite = importlib.import_module("sklearn.mixture.tests.test_gaussian_mixture")

#: tests not run, with the reason (only private-API use, monkeypatching, a documented limit).
EXCLUDED = {
    "test_gaussian_mixture_precisions_init":
        "calls scikit-learn's private methods GaussianMixture._set_parameters and "
        "._initialize(X, resp) (probest's initialisation is not that method); the same "
        "property (precisions_init gives that precision Cholesky factor) is checked by "
        "test_gaussian_mixture_precisions_init_diag, which runs",
    "test_gaussian_mixture_all_init_does_not_estimate_gaussian_parameters":
        "monkeypatches scikit-learn's module function "
        "sklearn.mixture._gaussian_mixture._estimate_gaussian_parameters and counts its "
        "calls; probest's M-step is a different function",
    "test_gaussian_mixture_raises_where_array_api_not_implemented":
        "asserts scikit-learn's limitation (NotImplementedError for init_params='kmeans'/"
        "'k-means++' under array_api_dispatch); probest fits there "
        "(tests/mixture/test_gmm_features.py::test_array_api_kmeans_init_fits)",
}


#: scikit-learn's own test configuration does not turn ConvergenceWarning into an error
#: (its estimator emits the same warnings in these tests: "did not converge" with
#: max_iter=1, KMeans' "Number of distinct clusters" on duplicated rows); probest's does.
#: probest also warns when a component receives no responsibility mass (test_regularisation:
#: 10 components on 2 distinct points), where scikit-learn is silent.
pytestmark = [pytest.mark.filterwarnings("default::sklearn.exceptions.ConvergenceWarning"),
              pytest.mark.filterwarnings("default:Components .* received no responsibility "
                                         "mass:UserWarning")]


def _uses_estimator(fn) -> bool:
    return "GaussianMixture" in fn.__code__.co_names


#: tests that exercise only scikit-learn's private helper functions (never the class):
#: nothing of probest to test, so they are not re-exported either.
HELPER_ONLY = sorted(name for name, fn in vars(suite).items()
                     if name.startswith("test_") and callable(fn) and not _uses_estimator(fn))

def _listed(mark):
    """A parametrize mark whose values are a generator (scikit-learn's array-API cases)
    with the values as a list (pytest deprecates generators there)."""
    if mark.name == "parametrize" and len(mark.args) > 1 and not isinstance(
            mark.args[1], (list, tuple)):
        return pytest.mark.parametrize(mark.args[0], list(mark.args[1]), *mark.args[2:],
                                       **mark.kwargs).mark
    return mark


for _name, _fn in list(vars(suite).items()):
    if (_name.startswith("test_") and callable(_fn) and _name not in EXCLUDED
            and _name not in HELPER_ONLY):
        if hasattr(_fn, "pytestmark"):
            _fn.pytestmark = [_listed(m) for m in _fn.pytestmark]
        globals()[_name] = _fn


def _seeds() -> list[int]:
    var = os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED")
    if var is None:
        return [42]
    if var == "all":
        return list(range(100))
    if "-" in var:
        lo, hi = var.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(var)]


@pytest.fixture(params=[np.float64, np.float32], ids=["float64", "float32"])
def global_dtype(request):
    return request.param


@pytest.fixture(params=_seeds())
def global_random_seed(request):
    return request.param


@pytest.fixture(autouse=True)
def _probest_class(monkeypatch):
    monkeypatch.setattr(suite, "GaussianMixture", probest.mixture.GaussianMixture)
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")


def test_suite_covers_every_test():
    """Every test of the module is run, excluded with a reason, or helper-only."""
    names = {n for n, f in vars(suite).items() if n.startswith("test_") and callable(f)}
    run = {n for n in names if n in globals() and globals()[n] is vars(suite)[n]}
    assert names == run | set(EXCLUDED) | set(HELPER_ONLY)
    assert set(EXCLUDED) <= names and not run & set(EXCLUDED)
    assert len(run) >= 30 and len(HELPER_ONLY) <= 10
    assert suite.GaussianMixture is probest.mixture.GaussianMixture  # the fixture applied
