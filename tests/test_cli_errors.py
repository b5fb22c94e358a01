"""`probest fit` misuse ends in one line on stderr with exit code 2 (issue 10, defect 9)."""

import re

import pytest

import probest.cli as cli
from probest.cli import main

EST = "WeightedLogisticRegression"


def _one_line_error(capsys, argv, pattern):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("probest: error:")
    assert re.search(pattern, err), err


def test_one_row_csv(tmp_path, capsys):
    f = tmp_path / "one.csv"
    f.write_text("a,b,y\n1,2,0\n")
    _one_line_error(capsys, ["fit", EST, "--data", str(f), "--out", str(tmp_path / "o")],
                    r"1 row.*at least 2 rows")


def test_data_is_a_directory(tmp_path, capsys):
    _one_line_error(capsys, ["fit", EST, "--data", str(tmp_path)], r"is a directory")


def test_out_under_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    _one_line_error(capsys, ["fit", EST, "--out", str(tmp_path / "afile" / "sub")],
                    r"is a file, not a folder")


def test_out_not_writable(tmp_path, capsys):
    # /proc refuses new folders even for root, so this holds on any Linux machine
    _one_line_error(capsys, ["fit", EST, "--out", "/proc/probest-cannot-write"], r"not a writable folder")


def test_plotting_failure_is_one_line_and_the_model_is_kept(tmp_path, capsys, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(cli, "_fit_plot", broken)
    _one_line_error(capsys, ["fit", EST, "--param", "alpha=1.0", "--out", str(tmp_path)],
                    r"saved, but plotting failed.*exploded")
    assert (tmp_path / "model" / "model.json").is_file()


def test_out_checked_before_fitting(tmp_path, capsys, monkeypatch):
    called = []
    real = cli._train_test
    monkeypatch.setattr(cli, "_train_test", lambda *a: called.append(1) or real(*a))
    (tmp_path / "afile").write_text("")
    assert main(["fit", EST, "--out", str(tmp_path / "afile")]) == 2
    assert not called  # no fit was wasted on an output folder that cannot be written


@pytest.mark.parametrize("param", ["alpha=-1", "max_iter=abc", "device=tpu"])
def test_bad_param_is_reported_as_a_param_error(tmp_path, capsys, param):
    _one_line_error(capsys, ["fit", EST, "--param", param, "--out", str(tmp_path)],
                    r"bad --param for WeightedLogisticRegression: .*" + param.split("=")[0])
