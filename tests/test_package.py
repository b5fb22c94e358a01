"""Package-level promises: lazy imports, fast import, estimator registry."""

import subprocess
import sys

import pytest

import probest


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_does_not_pull_optional_extras_or_families():
    mods = _run(
        "import sys, probest; "
        "print(' '.join(m for m in ('jax','numpyro','transformers','peft','flwr','pyro','gpytorch',"
        "'zuko','ot','cvxpy','arviz','probest.mixture','probest.flows') if m in sys.modules))"
    )
    assert mods == "", f"import probest imported: {mods}"


def test_family_import_does_not_pull_optional_extras():
    code = (
        "import sys, probest, importlib\n"
        "for f in probest.FAMILIES: importlib.import_module('probest.' + f)\n"
        "probest.all_estimators()\n"
        "print(' '.join(m for m in ('jax','numpyro','transformers','peft','flwr') if m in sys.modules))"
    )
    assert _run(code) == ""


def test_import_time_well_under_three_seconds_beyond_torch():
    code = (
        "import time; t=time.perf_counter(); import torch; t1=time.perf_counter(); import probest; "
        "print(time.perf_counter()-t1)"
    )
    # measured ~0.01 s here (the package body is lazy); the spec's ceiling is 3 s. The first
    # estimator import (sklearn, scipy) costs ~1-2 s on a loaded 2-core machine: not timed here.
    assert float(_run(code)) < 1.0


def test_all_estimators_lists_public_classes():
    from sklearn.base import BaseEstimator

    ests = probest.all_estimators()
    names = [n for n, _ in ests]
    assert "WeightedLogisticRegression" in names and "WeightedLinearRegression" in names
    assert all(issubclass(c, BaseEstimator) for _, c in ests)
    assert probest.all_estimators("shift")
    with pytest.raises(ValueError, match="unknown family"):
        probest.all_estimators("nope")


def test_every_family_is_a_real_subpackage():
    import importlib

    for fam in probest.FAMILIES:
        mod = importlib.import_module(f"probest.{fam}")
        assert isinstance(getattr(mod, "__all__", None), list)


def test_unknown_attribute_errors():
    with pytest.raises(AttributeError):
        probest.not_a_thing


def test_optional_import_names_the_extra():
    from probest._optional import import_optional

    with pytest.raises(ImportError, match=r'pip install "probest\[federated\]"'):
        import_optional("definitely_not_installed_mod", extra="federated")
