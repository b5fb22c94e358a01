"""``probest tour``: how a row is judged, the verdicts, the report, the shared tour helpers,
and the real quick-tour rows of every family not already toured by its own tests."""

import ast
import contextlib
import importlib.util
import io
import os
import pathlib
import struct
import sys

import pytest

from probest._report import CLIError, verdict_lines, write_report
from probest._tour_kit import explain_loss, objective_drop, pinned_threads, save_tour_figure
from probest._tour_types import FIG_DPI, FIGSIZE, TourResult, tour_problems

PKG = pathlib.Path(__file__).resolve().parents[1] / "probest"


def _row(value, peer_value, better="lower", **kw):
    return TourResult("fam", kw.pop("method", "M(a=1)"), "data", "metric", value, "peer",
                      peer_value, better=better, **kw)


# --------------------------------------------------------------------------- judging a row
def test_outcome_follows_the_declared_direction_and_tie_tolerance():
    assert _row(1.0, 2.0).outcome == "win"
    assert _row(3.0, 2.0).outcome == "loss"
    assert _row(3.0, 2.0, better="higher").outcome == "win"
    assert _row(1.0, 2.0, better="higher").outcome == "loss"
    assert _row(2.0005, 2.0, tie_tol=1e-3).outcome == "tie"
    assert _row(2.002, 2.0, tie_tol=1e-3).outcome == "loss"
    assert _row(2.0, 2.0).outcome == "tie"  # equal is a tie even without a tolerance
    # nothing to compare: no peer value, no value, or no declared direction
    assert _row(1.0, None).outcome == ""
    assert _row(None, 1.0).outcome == ""
    assert _row(1.0, 2.0, better="").outcome == ""


def test_row_rejects_an_unknown_direction_or_negative_tolerance():
    with pytest.raises(ValueError, match="better"):
        _row(1.0, 2.0, better="smaller")
    with pytest.raises(ValueError, match="tie_tol"):
        _row(1.0, 2.0, tie_tol=-1.0)


def test_problems_flag_an_unexplained_loss_and_a_missing_direction():
    good = [_row(1.0, 2.0), _row(3.0, 2.0, why="budget"), _row(1.0, None, better="")]
    assert tour_problems(good) == []
    bad = tour_problems([_row(3.0, 2.0, method="Loser"), _row(1.0, 2.0, better="", method="Mute")])
    assert len(bad) == 2
    assert "Loser" in bad[0] and "does not say why" in bad[0]
    assert "Mute" in bad[1] and "declares no direction" in bad[1]


def test_explain_loss_only_annotates_a_losing_row():
    assert explain_loss(_row(3.0, 2.0), "because").why == "because"
    assert explain_loss(_row(1.0, 2.0), "because").why == ""
    assert explain_loss(_row(2.0, 2.0), "because").why == ""


def test_objective_drop_reads_the_training_history():
    class Est:
        history_ = [{"iter": i, "objective": 10.0 - i} for i in range(8)]

    # last quarter (values 4, 3) against the quarter before (6, 5): fell by 2
    assert objective_drop(Est()) == pytest.approx(2.0)
    Est.history_ = [{"iter": 1, "objective": 1.0}]
    assert objective_drop(Est()) is None
    assert objective_drop(object()) is None


# --------------------------------------------------------------------------- verdicts + report
def _status(*fams):
    return [(f, "ok (n rows)", 1.0) for f in fams]


def test_verdict_counts_outcomes_and_names_each_loss_with_its_reason():
    rows = [_row(1.0, 2.0), _row(2.0, 2.0), _row(3.0, 2.0, method="Slow(x=1)", why="budget"),
            _row(1.0, None, better="")]
    status = _status("fam") + [("other", "not yet available", 0.0), ("bad", "FAILED: boom", 1.0)]
    lines = verdict_lines(rows, status)
    assert lines[0] == ("fam: wins 1, ties 1 of 3 rows against its peers; loses on Slow (budget) "
                        "(+1 without a peer)")
    assert lines[1:] == ["other: not yet available", "bad: FAILED: boom"]
    assert verdict_lines([_row(1.0, 2.0)], _status("fam")) == [
        "fam: wins 1 of 1 rows against its peers, loses none"]
    assert verdict_lines([_row(1.0, None)], _status("fam")) == [
        "fam: 1 rows, none compared with a peer"]


def test_report_opens_with_the_verdicts_and_marks_losses(tmp_path):
    rows = [_row(1.0, 2.0, note="n1"), _row(3.0, 2.0, method="Slow", why="too few steps")]
    path = write_report(rows, _status("fam"), tmp_path, quick=True, total=1.0, version="0")
    doc = path.read_text()
    verdict = verdict_lines(rows, _status("fam"))[0]
    assert "loses on Slow (too few steps)" in verdict
    assert doc.index(verdict) < doc.index("<h2>Results")  # the report opens with it
    assert "<td class='loss'>loss</td>" in doc and "<td class='win'>win</td>" in doc
    assert "<b>too few steps</b>" in doc and "lower is better" in doc


def test_report_inlines_each_figure_once(tmp_path):
    fig_path = pathlib.Path(_save_fig(tmp_path / "a.png"))
    rows = [_row(1.0, 2.0, plots=[str(fig_path)]), _row(1.0, 2.0, plots=[str(fig_path)])]
    doc = write_report(rows, _status("fam"), tmp_path, quick=False, total=1.0,
                       version="0").read_text()
    assert doc.count("data:image/png;base64") == 1


# --------------------------------------------------------------------------- shared helpers
def _png_size(path) -> tuple[int, int]:
    head = pathlib.Path(path).read_bytes()[:24]
    return struct.unpack(">II", head[16:24])


def _save_fig(path, figsize=(3.0, 3.0), colorbar=False):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=figsize)
    im = ax.imshow(np.arange(12.0).reshape(3, 4))
    if colorbar:
        fig.colorbar(im, ax=ax)
    ax.set_title("a title that widens a tight bounding box")
    return save_tour_figure(fig, path)


def test_every_saved_tour_figure_has_the_report_size(tmp_path):
    want = (round(FIGSIZE[0] * FIG_DPI), round(FIGSIZE[1] * FIG_DPI))
    assert _png_size(_save_fig(tmp_path / "small.png")) == want
    assert _png_size(_save_fig(tmp_path / "wide.png", (16, 3), colorbar=True)) == want


def test_pinned_threads_restores_torch_threads_and_environment():
    import torch

    before = torch.get_num_threads()
    old_env = os.environ.pop("MKL_NUM_THREADS", None)
    try:
        with pytest.raises(RuntimeError, match="inside"):
            with pinned_threads(before + 1):
                assert torch.get_num_threads() == before + 1
                assert os.environ["MKL_NUM_THREADS"] == str(before + 1)
                raise RuntimeError("inside")
        assert torch.get_num_threads() == before
        assert "MKL_NUM_THREADS" not in os.environ
    finally:
        if old_env is not None:
            os.environ["MKL_NUM_THREADS"] = old_env


def test_run_tour_leaves_threads_as_it_found_them(tmp_path, capsys):
    import torch

    from probest._tour import run_tour

    before = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    run_tour(quick=True, out_dir=tmp_path, families=["bnn"])
    assert (torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")) == before
    assert "verdict:\n  bnn: " in capsys.readouterr().out  # its quick tour ran


def test_cli_error_is_the_shared_one():
    from probest import cli

    assert cli.CLIError is CLIError


def _probest_imports(path: pathlib.Path) -> set[str]:
    """Every probest module ``path`` imports, at module or function level."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("probest")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("probest"):
            out.add(node.module)
    return out


def test_report_and_tour_helpers_are_leaves_and_cli_tour_form_no_circle():
    leaves = {"probest._tour_types": set(), "probest._report": {"probest._tour_types"},
              "probest._tour_kit": {"probest._tour_types"}}
    for mod, allowed in leaves.items():
        assert _probest_imports(PKG / f"{mod.split('.')[-1]}.py") <= allowed, mod
    assert "probest.cli" not in _probest_imports(PKG / "_tour.py")
    tours = [p for p in PKG.glob("*/_tour.py")]
    assert tours, "no family tours found"
    for p in tours:
        assert not {"probest.cli", "probest._tour"} & _probest_imports(p), p


# --------------------------------------------------------------------------- real rows
#: families whose quick tour already runs in their own tests (which check tour_problems too)
_TOURED_ELSEWHERE = {"gaussian_process": "tests/gaussian_process/test_plot_and_data.py",
                     "shift": "tests/test_cli.py"}


def _tour_families():
    import probest

    return [f for f in probest.FAMILIES
            if importlib.util.find_spec(f"probest.{f}._tour") is not None
            and f not in _TOURED_ELSEWHERE]


@pytest.fixture(scope="module")
def quick_tour(tmp_path_factory):
    from probest._tour import run_tour

    out = tmp_path_factory.mktemp("tour")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rows, failed = run_tour(quick=True, out_dir=out, families=_tour_families())
    sys.stdout.write(buf.getvalue()[-3000:])
    return rows, failed, buf.getvalue(), out


def test_quick_tour_rows_declare_directions_and_every_loss_says_why(quick_tour):
    rows, failed, text, out = quick_tour
    assert failed == []
    assert {r.family for r in rows} == set(_tour_families())
    assert tour_problems(rows) == []
    assert "[tour] warning" not in text
    for r in rows:
        if r.peer_value is not None:
            assert r.better in ("lower", "higher"), r
        if r.outcome == "loss":
            assert r.why and r.why in (out / "report.html").read_text(), r


def test_quick_tour_prints_and_reports_one_verdict_per_family(quick_tour):
    rows, _, text, out = quick_tour
    doc = (out / "report.html").read_text()
    verdicts = text.split("verdict:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [v.strip().split(":")[0] for v in verdicts] == _tour_families()
    for v in verdicts:
        assert v.strip() in doc
    figures = {p for r in rows for p in r.plots}
    assert figures and {_png_size(p) for p in figures} == {
        (round(FIGSIZE[0] * FIG_DPI), round(FIGSIZE[1] * FIG_DPI))}
