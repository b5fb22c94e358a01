"""User-facing output shared by ``probest.cli`` and ``probest tour``: the one-line user error,
plain-text tables, the per-family verdict and the self-contained HTML report.

A leaf module: standard library and :mod:`probest._tour_types` only, so both the CLI and the
tour import it without importing each other.
"""

from __future__ import annotations

import base64
import html
import pathlib

from probest._tour_types import FIG_DPI, FIGSIZE


class CLIError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def fmt(v) -> str:
    """A table cell: ``-`` for a missing value, 4 significant digits for a float."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def print_table(header: list[str], rows: list[tuple]) -> None:
    """Print ``rows`` under ``header`` as left-aligned columns."""
    rows = [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


def _short(method: str) -> str:
    """``"FlowDensityEstimator(flow='nsf')"`` -> ``"FlowDensityEstimator"``."""
    return method.split("(")[0].split(" ")[0] or method


def verdict_lines(results, status) -> list[str]:
    """One line per family of ``status`` (``(family, status, seconds)``), from its rows'
    outcomes: the wins, ties and losses against the peers, and why each loss happens."""
    lines = []
    for fam, stat, _ in status:
        rows = [r for r in results if r.family == fam]
        if not stat.startswith("ok"):
            lines.append(f"{fam}: {stat}")
            continue
        done = [r for r in rows if r.outcome]
        if not done:
            lines.append(f"{fam}: {len(rows)} rows, none compared with a peer")
            continue
        counts = {k: sum(r.outcome == k for r in done) for k in ("win", "tie", "loss")}
        parts = [f"wins {counts['win']}"] + ([f"ties {counts['tie']}"] if counts["tie"] else [])
        line = f"{fam}: {', '.join(parts)} of {len(done)} rows against its peers"
        losses = [r for r in done if r.outcome == "loss"]
        if losses:
            line += "; loses on " + "; ".join(f"{_short(r.method)} ({r.why or 'no reason given'})"
                                              for r in losses)
        else:
            line += ", loses none"
        if len(rows) > len(done):
            line += f" (+{len(rows) - len(done)} without a peer)"
        lines.append(line)
    return lines


_CSS = f"""body{{font-family:sans-serif;margin:2em;max-width:{FIGSIZE[0] * FIG_DPI + 40:.0f}px}}
table{{border-collapse:collapse;margin-bottom:1em}}td,th{{border:1px solid #ccc;padding:4px 8px;
vertical-align:top}}td.win{{background:#dff0d8}}td.tie{{background:#eef}}td.loss{{background:#f8d7da;
font-weight:bold}}ul.verdict li{{margin:.2em 0}}figure{{margin:0 0 1.5em 0}}
figure img{{display:block;width:100%;max-width:{FIGSIZE[0] * FIG_DPI:.0f}px;height:auto}}
figcaption{{color:#555;font-size:90%}}"""


def _note_cell(r) -> str:
    esc = html.escape
    why = f"<b>{esc(r.why)}</b>" if r.why else ""
    return "; ".join(s for s in (why, esc(r.note)) if s)


def write_report(results, status, out_dir: pathlib.Path, *, quick: bool, total: float,
                 version: str) -> pathlib.Path:
    """A self-contained HTML report: the verdicts, the table, family status and every plot
    inlined (each figure once, grouped by family)."""
    esc = html.escape
    verdicts = "".join(f"<li>{esc(v)}</li>" for v in verdict_lines(results, status))
    rows = "".join(
        "<tr>" + "".join(f"<td>{esc(fmt(c))}</td>" for c in (
            r.family, r.method, r.data, r.metric, f"{r.better} is better" if r.better else "-",
            r.value, r.peer or "-", r.peer_value)) + f"<td class='{r.outcome}'>{r.outcome or '-'}</td>"
        + f"<td>{r.seconds:.3g}</td><td>{_note_cell(r)}</td></tr>"
        for r in results
    )
    stat = "".join(f"<tr><td>{esc(f)}</td><td>{esc(s)}</td><td>{t:.1f}</td></tr>" for f, s, t in status)
    figs, seen = [], set()
    for r in results:
        for p in map(pathlib.Path, r.plots):
            if p in seen or not (p.is_file() and p.suffix.lower() == ".png"):
                continue
            seen.add(p)
            data = base64.b64encode(p.read_bytes()).decode()
            figs.append(
                f"<figure><img src='data:image/png;base64,{data}'/>"
                f"<figcaption>{esc(r.family)} — {esc(r.method)}: {esc(p.name)}</figcaption></figure>"
            )
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>probest tour</title>
<style>{_CSS}</style>
</head><body><h1>probest tour{' (quick)' if quick else ''}</h1>
<ul class="verdict">{verdicts}</ul>
<p>probest {esc(version)}; total {total:.1f} s. Every number below was measured in this run;
a row is a win, tie or loss by its declared direction, and every loss says why.</p>
<h2>Results</h2><table><tr><th>family</th><th>method</th><th>data</th><th>metric</th>
<th>direction</th><th>probest</th><th>peer</th><th>peer value</th><th>outcome</th><th>seconds</th>
<th>why / note</th></tr>{rows}</table>
<h2>Families</h2><table><tr><th>family</th><th>status</th><th>seconds</th></tr>{stat}</table>
<h2>Plots</h2>{''.join(figs) or '<p>no plots</p>'}
</body></html>"""
    path = pathlib.Path(out_dir) / "report.html"
    path.write_text(doc)
    return path
