"""A model.json may name anything: load must resolve only registered estimator classes and
call nothing else — no function, no non-estimator class, nothing outside probest."""

import importlib
import inspect
import json
import os
import pkgutil
import sys
import warnings

import pytest

import probest
from probest._persist import estimator_registry


def _write(path, cls, params=None):
    path.mkdir(parents=True, exist_ok=True)
    doc = {"class": cls, "params": params or {}, "fitted": {}, "probest_version": "0"}
    (path / "model.json").write_text(json.dumps(doc))
    return path


def _probest_callables() -> dict[str, object]:
    """``"module.name" -> callable`` for every module-level callable of every probest module."""
    out = {}
    for info in pkgutil.walk_packages(probest.__path__, "probest."):
        try:
            with warnings.catch_warnings():  # third-party import chatter (flwr, click)
                warnings.simplefilter("ignore")
                mod = importlib.import_module(info.name)
        except ImportError:  # a module that needs a missing optional extra
            continue
        for name, obj in vars(mod).items():
            if callable(obj) and not name.startswith("__"):
                out[f"{info.name}.{name}"] = obj
    return out


def _codes(obj) -> set:
    """Code objects (or builtins) that calling ``obj`` would enter first."""
    if inspect.isclass(obj):
        return {f.__code__ for k in ("__init__", "__new__", "__call__")
                if inspect.isfunction(f := obj.__dict__.get(k))}
    fn = inspect.unwrap(obj) if inspect.isfunction(obj) else obj
    if inspect.isfunction(fn):
        return {fn.__code__}
    return {obj}


class _Calls:
    """Every Python code object and C function entered while active (sys.setprofile)."""

    def __enter__(self):
        self.seen = set()

        def prof(frame, event, arg):
            if event == "call":
                self.seen.add(frame.f_code)
            elif event == "c_call":
                self.seen.add(arg)

        sys.setprofile(prof)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)


def test_every_reachable_callable_is_refused_without_being_called(tmp_path):
    registry = estimator_registry()
    targets = {k: v for k, v in _probest_callables().items() if k not in registry}
    targets.update({"os.system": os.system, "builtins.eval": eval, "builtins.exec": exec,
                    "subprocess.run": __import__("subprocess").run,
                    "importlib.import_module": importlib.import_module})
    assert len(targets) > 300, "enumeration found too few callables"
    with _Calls() as probe:  # the detector itself sees Python and C calls
        probest.datasets.make_covariate_shift("B2", 5, random_state=0)
        os.getcwd()
    assert _codes(probest.datasets.make_covariate_shift) <= probe.seen and os.getcwd in probe.seen
    _write(tmp_path / "base", "no.such.Class")
    with _Calls() as base:  # what any refused load executes (reading, the registry)
        with pytest.raises(ValueError):
            probest.load(tmp_path / "base")
    called_anyway = []
    for i, (name, obj) in enumerate(sorted(targets.items())):
        path = _write(tmp_path / f"m{i}", name, {"argv": ["bench"]} if name.endswith("main") else {})
        with _Calls() as calls, pytest.raises(ValueError, match="not a probest estimator"):
            probest.load(path)
        entered = (calls.seen - base.seen) & _codes(obj)
        if entered:
            called_anyway.append(name)
    assert not called_anyway, f"load entered {called_anyway}"


def test_cli_main_bench_does_not_run(tmp_path, monkeypatch):
    # probest.cli.main(argv=["bench"]) would run the benchmarks/ scripts of the cwd
    (tmp_path / "benchmarks").mkdir()
    sentinel = tmp_path / "RAN"
    (tmp_path / "benchmarks" / "bench_x.py").write_text(
        f"open({str(sentinel)!r}, 'w').write('x')\n")
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path / "m", "probest.cli.main", {"argv": ["bench"]})
    with pytest.raises(ValueError, match="not a probest estimator"):
        probest.load(path)
    assert not sentinel.exists()


def test_import_optional_does_not_import_a_module_shipped_beside_the_model(tmp_path, monkeypatch):
    sentinel = tmp_path / "IMPORTED"
    (tmp_path / "evil_probest_mod.py").write_text(f"open({str(sentinel)!r}, 'w').write('x')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = _write(tmp_path / "m", "probest._optional.import_optional",
                  {"name": "evil_probest_mod", "extra": "x"})
    with pytest.raises(ValueError, match="not a probest estimator"):
        probest.load(path)
    assert "evil_probest_mod" not in sys.modules and not sentinel.exists()


@pytest.mark.parametrize("cls, params", [
    ("probest._io.save", {"est": None, "path": "WRITTEN"}),
    ("os.system", {"command": "touch WRITTEN"}),
    ("probest.datasets.make_covariate_shift", {"name": "B2"}),
    ("probest.base.TorchEstimator", {}),  # a probest class, but not a registered estimator
    ("probest.shift._torchlik._TorchLikelihoodModel", {}),
    ("probest.shift.WeightedLogisticRegression.fit", {}),
    ("probest.shift._glm.WeightedLogisticRegression.__init__", {}),
    ("probest.shift._glm.WeightedLogisticRegression ", {}),
])
def test_named_callables_and_non_estimators_are_refused(tmp_path, monkeypatch, cls, params):
    monkeypatch.chdir(tmp_path)
    path = _write(tmp_path / "m", cls, params)
    with pytest.raises(ValueError, match="not a probest estimator"):
        probest.load(path)
    assert not (tmp_path / "WRITTEN").exists()


@pytest.mark.parametrize("cls", [None, 3, ["probest.cli.main"], {"a": 1}, ""])
def test_class_of_the_wrong_type_is_refused(tmp_path, cls):
    with pytest.raises(ValueError, match="not a probest estimator"):
        probest.load(_write(tmp_path / "m", cls))


def test_registry_holds_only_probest_estimators_that_declare_their_state():
    from probest._persist import declared_fitted
    from probest.base import ProbestEstimator

    registry = estimator_registry()
    assert {c for _, c in probest.all_estimators()} == set(registry.values())
    for name, cls in registry.items():
        assert issubclass(cls, ProbestEstimator), name
        assert "_fitted_attributes" in vars(cls) and declared_fitted(cls) is not None, name
