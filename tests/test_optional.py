"""The one registry of extras (probest._optional.EXTRAS) agrees with pyproject and the CLI."""

import pathlib
import tomllib

import pytest

import probest
from probest import _optional
from probest.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_registry_matches_pyproject_extras():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    user_extras = set(deps) - {"dev", "docs", "all"}  # tooling extras provide no feature
    assert set(_optional.EXTRAS) == user_extras
    for extra, spec in _optional.EXTRAS.items():
        dists = {r.split(">")[0].split("=")[0].split("<")[0].strip().replace("-", "_") for r in deps[extra]}
        assert set(spec.modules) == dists, extra
    in_all = {e for e in user_extras if _optional.EXTRAS[e].in_all}
    assert deps["all"] == [f"probest[{','.join(sorted(in_all, key=list(deps).index))}]"]
    for extra in user_extras - in_all:  # kept out of [all]: it must say how to install it
        assert _optional.EXTRAS[extra].install, extra


def test_registry_names_real_families_and_estimators():
    for spec in _optional.EXTRAS.values():
        assert spec.modules and spec.used_by
        for who in spec.used_by:
            fam, _, est = who.partition(".")
            assert fam in probest.FAMILIES, who
            if est:
                assert est in dict(probest.all_estimators(fam)), who


def test_only_the_flower_engine_needs_federated():
    assert _optional.extras_used_by("mixture", "FederatedGaussianMixture") == {"federated": "engine='flower'"}
    assert _optional.extras_used_by("mixture", "GaussianMixture") == {}
    assert _optional.extras_used_by("mixture", "FedGMMClassifier") == {}
    assert set(_optional.extras_used_by("bandits")) == {"jax", "choicedata"}
    assert set(_optional.extras_used_by("lora")) == {"llm"}
    assert _optional.extras_used_by("shift") == {}


def test_module_lookup_and_error_message(monkeypatch):
    assert _optional.extra_for_module("numpyro.infer") == "jax"
    assert _optional.extra_for_module("flwr") == "federated"
    assert _optional.extra_for_module("numpy") is None
    monkeypatch.setitem(_optional.EXTRAS, "fake", _optional.Extra(modules=("not_installed_mod",)))
    with pytest.raises(ImportError, match=r'pip install "probest\[fake\]"'):
        _optional.import_optional("not_installed_mod.sub")


def test_status_needs_every_module_of_an_extra(monkeypatch):
    monkeypatch.setattr(_optional, "is_available", lambda name: name != "numpyro")
    status = _optional.extra_status()
    assert status == {"choicedata": True, "federated": True, "jax": False, "llm": True}


def test_list_tags_only_what_needs_an_extra(capsys, monkeypatch):
    monkeypatch.setattr(_optional, "is_available", lambda name: name != "flwr")
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith(probest.FAMILIES)}
    assert "federated (engine='flower')" in rows["FederatedGaussianMixture"]
    assert rows["FederatedGaussianMixture"].rstrip().endswith("no")
    for name in ("GaussianMixture", "FedGMMClassifier", "WeightedLinearRegression"):
        assert rows[name].split()[2:] == ["-", "-"], rows[name]
    assert 'pip install "probest[federated]"' in out
