"""``probest tour``: run every family's ``_tour.run`` and report a table + HTML.

A family without a ``_tour`` module is listed as "not yet available"; a family whose tour
raises is listed with its error — the tour never invents a number.  Each family gets a
one-line verdict computed from its rows (wins, ties, losses and why each loss happens).
"""

from __future__ import annotations

import importlib
import os
import pathlib
import time
import traceback

from probest._report import CLIError, fmt, print_table, verdict_lines, write_report
from probest._tour_kit import pinned_threads
from probest._tour_types import TourResult, tour_problems

__all__ = ["run_tour", "write_report"]


def run_tour(
    *, quick: bool, out_dir: pathlib.Path, families=None, debug: bool = False
) -> tuple[list[TourResult], list[str]]:
    import matplotlib

    matplotlib.use("Agg")

    import probest

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fams = list(families or probest.FAMILIES)
    unknown = [f for f in fams if f not in probest.FAMILIES]
    if unknown:
        raise CLIError(f"unknown family {unknown[0]!r}; choose from {', '.join(probest.FAMILIES)}")
    results: list[TourResult] = []
    failed: list[str] = []
    status: list[tuple[str, str, float]] = []
    t_all = time.perf_counter()
    with pinned_threads(max(1, min(2, os.cpu_count() or 1))):
        for fam in fams:
            got = _run_family(fam, quick, out_dir, debug)
            if got is None:
                status.append((fam, "not yet available", 0.0))
                continue
            rows, err, secs = got
            if err is not None:
                failed.append(fam)
                status.append((fam, f"FAILED: {err}", secs))
                continue
            results.extend(rows)
            status.append((fam, f"ok ({len(rows)} rows)", secs))
    total = time.perf_counter() - t_all
    print()
    print_table(
        ["family", "method", "data", "metric", "probest", "peer", "peer value", "outcome",
         "seconds"],
        [(r.family, r.method, r.data, r.metric, fmt(r.value), r.peer or "-", fmt(r.peer_value),
          r.outcome or "-", f"{r.seconds:.3g}") for r in results],
    )
    print()
    print_table(["family", "status", "seconds"], [(f, s, f"{t:.1f}") for f, s, t in status])
    print("\nverdict:")
    for line in verdict_lines(results, status):
        print(f"  {line}")
    for problem in tour_problems(results):
        print(f"[tour] warning: {problem}")
    report = write_report(results, status, out_dir, quick=quick, total=total,
                          version=probest.__version__)
    print(f"\nreport: {report}  (total {total:.1f} s)")
    return results, failed


def _run_family(fam: str, quick: bool, out_dir: pathlib.Path, debug: bool):
    """``None`` when the family has no tour, else ``(rows, error or None, seconds)``."""
    modname = f"probest.{fam}._tour"
    try:
        mod = importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        if exc.name == modname:
            return None
        raise
    t0 = time.perf_counter()
    print(f"[tour] {fam} ...", flush=True)
    try:
        rows = mod.run(quick=quick, out_dir=out_dir / fam)
    except Exception as exc:
        if debug:
            raise
        traceback.print_exc()
        return [], f"{type(exc).__name__}: {exc}", time.perf_counter() - t0
    return rows, None, time.perf_counter() - t0
