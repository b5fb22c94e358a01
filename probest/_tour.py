"""``probest tour``: run every family's ``_tour.run`` and report a table + HTML.

A family without a ``_tour`` module is listed as "not yet available"; a family whose tour
raises is listed with its error — the tour never invents a number.
"""

from __future__ import annotations

import base64
import html
import importlib
import os
import pathlib
import time
import traceback

from probest._tour_types import TourResult


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def run_tour(
    *, quick: bool, out_dir: pathlib.Path, families=None, debug: bool = False
) -> tuple[list[TourResult], list[str]]:
    import matplotlib

    matplotlib.use("Agg")
    import torch

    import probest
    from probest.cli import _print_table

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fams = list(families or probest.FAMILIES)
    unknown = [f for f in fams if f not in probest.FAMILIES]
    if unknown:
        from probest.cli import CLIError

        raise CLIError(f"unknown family {unknown[0]!r}; choose from {', '.join(probest.FAMILIES)}")
    results: list[TourResult] = []
    failed: list[str] = []
    status: list[tuple[str, str, float]] = []
    t_all = time.perf_counter()
    for fam in fams:
        modname = f"probest.{fam}._tour"
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name == modname:
                status.append((fam, "not yet available", 0.0))
                continue
            raise
        t0 = time.perf_counter()
        print(f"[tour] {fam} ...", flush=True)
        try:
            rows = mod.run(quick=quick, out_dir=out_dir / fam)
        except Exception as exc:
            if debug:
                raise
            traceback.print_exc()
            failed.append(fam)
            status.append((fam, f"FAILED: {type(exc).__name__}: {exc}", time.perf_counter() - t0))
            continue
        results.extend(rows)
        status.append((fam, f"ok ({len(rows)} rows)", time.perf_counter() - t0))
    total = time.perf_counter() - t_all
    print()
    _print_table(
        ["family", "method", "data", "metric", "probest", "peer", "peer value", "seconds"],
        [(r.family, r.method, r.data, r.metric, _fmt(r.value), r.peer or "-", _fmt(r.peer_value),
          f"{r.seconds:.3g}") for r in results],
    )
    print()
    _print_table(["family", "status", "seconds"], [(f, s, f"{t:.1f}") for f, s, t in status])
    report = write_report(results, status, out_dir, quick=quick, total=total)
    print(f"\nreport: {report}  (total {total:.1f} s)")
    return results, failed


def write_report(results, status, out_dir: pathlib.Path, *, quick: bool, total: float) -> pathlib.Path:
    """A self-contained HTML report: the table, family status and every plot inlined."""
    import probest

    esc = html.escape
    rows = "".join(
        "<tr>" + "".join(f"<td>{esc(_fmt(c))}</td>" for c in (
            r.family, r.method, r.data, r.metric, r.value, r.peer or "-", r.peer_value,
            f"{r.seconds:.3g}", r.note)) + "</tr>"
        for r in results
    )
    stat = "".join(f"<tr><td>{esc(f)}</td><td>{esc(s)}</td><td>{t:.1f}</td></tr>" for f, s, t in status)
    figs = []
    for r in results:
        for p in r.plots:
            p = pathlib.Path(p)
            if p.is_file() and p.suffix.lower() == ".png":
                data = base64.b64encode(p.read_bytes()).decode()
                figs.append(
                    f"<figure><img src='data:image/png;base64,{data}'/>"
                    f"<figcaption>{esc(r.family)} — {esc(r.method)}: {esc(p.name)}</figcaption></figure>"
                )
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>probest tour</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}}img{{max-width:640px}}figure{{display:inline-block}}</style>
</head><body><h1>probest tour{' (quick)' if quick else ''}</h1>
<p>probest {esc(probest.__version__)}; total {total:.1f} s. Every number below was measured in this run.</p>
<h2>Results</h2><table><tr><th>family</th><th>method</th><th>data</th><th>metric</th><th>probest</th>
<th>peer</th><th>peer value</th><th>seconds</th><th>note</th></tr>{rows}</table>
<h2>Families</h2><table><tr><th>family</th><th>status</th><th>seconds</th></tr>{stat}</table>
<h2>Plots</h2>{''.join(figs) or '<p>no plots</p>'}
</body></html>"""
    path = out_dir / "report.html"
    path.write_text(doc)
    return path
