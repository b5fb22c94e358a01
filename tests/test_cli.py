"""The `probest` command, run as a user would (subprocess) and in-process for speed."""

import subprocess
import sys

import pytest

from probest.cli import main


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "probest", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_list_shows_estimators_and_extras(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "WeightedLogisticRegression" in out and "extra installed" in out
    import probest

    planned = [f for f in probest.FAMILIES if not probest.all_estimators(f)]
    if planned:  # families with no estimators yet say so
        assert "planned" in out
    else:  # every family is listed by its estimators
        assert "planned" not in out
        assert all(f in out for f in probest.FAMILIES)


def test_fit_default_data_saves_safetensors(tmp_path, capsys):
    assert main(["fit", "WeightedLogisticRegression", "--param", "alpha=1.0", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "test NLPD" in out
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert (tmp_path / "model" / "model.json").is_file()
    assert not list(tmp_path.rglob("*.pkl")) and (tmp_path / "posterior.png").is_file()
    import probest

    est = probest.load(tmp_path / "model")
    assert est.alpha == 1.0


def test_fit_csv_with_target(tmp_path, capsys):
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = X @ [1.0, -1.0] + 0.1 * rng.normal(size=60)
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,y\n" + "\n".join(f"{a},{b},{t}" for (a, b), t in zip(X, y)))
    assert main(["fit", "weightedlinearregression", "--data", str(csv), "--target", "y",
                 "--out", str(tmp_path / "o")]) == 0
    assert "test R^2" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,msg",
    [
        (["fit", "NoSuchEstimator"], "unknown estimator"),
        (["fit", "WeightedLinearRegression", "--data", "/nonexistent.csv"], "does not exist"),
        (["fit", "WeightedLinearRegression", "--param", "alpha"], "key=value"),
        (["fit", "WeightedLinearRegression", "--param", "nope=1"], "bad --param"),
        (["bench", "no_such_area"], "no benchmark for area"),
        (["tour", "--family", "nope"], "unknown family"),
    ],
)
def test_errors_are_one_line_exit_2(args, msg, capsys, tmp_path):
    assert main([*args, "--out", str(tmp_path)] if args[0] == "tour" else args) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1 and err.startswith("probest: error:")


def test_bad_csv_column_errors(tmp_path, capsys):
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,y\n1,x,0\n2,y,1\n")
    assert main(["fit", "WeightedLogisticRegression", "--data", str(csv)]) == 2
    assert "non-numeric" in capsys.readouterr().err


def test_module_entry_point_and_debug_traceback():
    res = run_cli("fit", "NoSuchEstimator")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    res = run_cli("--debug", "fit", "NoSuchEstimator")
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_tour_quick_one_family_writes_report(tmp_path, capsys):
    assert main(["tour", "--quick", "--family", "shift", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "WeightedLogisticRegression" in out
    html = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64" in html and "<table>" in html
    assert "verdict:\n  shift: wins" in out and "[tour] warning" not in out


def test_tour_reports_missing_families_without_faking(tmp_path, capsys, monkeypatch):
    import importlib.util

    import probest
    import probest._tour as tour

    # a family with no tour yet (bnn has one now): the first planned one
    missing = [f for f in probest.FAMILIES if importlib.util.find_spec(f"probest.{f}._tour") is None]
    if not missing:
        pytest.skip("every family has a tour")
    res, failed = tour.run_tour(quick=True, out_dir=tmp_path, families=missing[:1])
    assert res == [] and failed == []
    assert "not yet available" in capsys.readouterr().out


def test_fit_needing_more_than_one_csv_is_a_clear_error(tmp_path, capsys):
    import numpy as np

    from probest.base import ProbestEstimator
    from probest.cli import _required_fit_args

    class _NeedsTarget(ProbestEstimator):
        def fit(self, X, y=None, X_target=None, *, groups):
            return self

    assert _required_fit_args(_NeedsTarget()) == ["groups"]
    csv = tmp_path / "d.csv"
    csv.write_text("a,b\n" + "\n".join(f"{a},{b}" for a, b in np.ones((5, 2))))
    import probest.cli as cli

    real = cli._resolve_estimator
    cli._resolve_estimator = lambda name: _NeedsTarget
    try:
        assert main(["fit", "x", "--data", str(csv)]) == 2
    finally:
        cli._resolve_estimator = real
    assert "also needs groups" in capsys.readouterr().err


def test_version(capsys):
    import probest

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and probest.__version__ in capsys.readouterr().out
