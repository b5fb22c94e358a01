"""What a family's ``_tour.run`` returns to ``probest tour``, and how a row is judged.

A leaf module (standard library only): the report, the CLI and every family's tour import it.
"""

from __future__ import annotations

import dataclasses

#: the directions a row's metric can have.
DIRECTIONS = ("lower", "higher")


@dataclasses.dataclass
class TourResult:
    """One row of the tour table (and its plots in the HTML report).

    ``value``/``peer_value`` are measured numbers, never placeholders: a family that could
    not run a step reports it in ``note`` with ``value=None``.

    ``better`` says which direction of the metric is better (``"lower"`` or ``"higher"``);
    every row with a ``peer_value`` must declare it, so the report can mark the row a win,
    a tie or a loss by itself.  ``tie_tol`` (absolute, in the metric's units) is for rows
    whose claim is equivalence with the peer (same model, same objective): a difference
    within it is a tie.  ``why`` explains the outcome in one short clause and is required
    when the row is a loss; it opens the row's note in the report and the family's verdict.
    """

    family: str
    method: str
    data: str
    metric: str
    value: float | None
    peer: str = ""
    peer_value: float | None = None
    seconds: float = 0.0
    plots: list[str] = dataclasses.field(default_factory=list)
    note: str = ""
    better: str = ""
    tie_tol: float = 0.0
    why: str = ""

    def __post_init__(self) -> None:
        if self.better not in ("", *DIRECTIONS):
            raise ValueError(f"better must be one of {DIRECTIONS}, got {self.better!r}.")
        if not self.tie_tol >= 0:
            raise ValueError(f"tie_tol must be >= 0, got {self.tie_tol!r}.")

    @property
    def outcome(self) -> str:
        """``"win"``, ``"tie"`` or ``"loss"`` against the peer; ``""`` without a comparison
        (no peer value, or no declared direction)."""
        if self.value is None or self.peer_value is None or not self.better:
            return ""
        diff = float(self.value) - float(self.peer_value)
        if abs(diff) <= self.tie_tol:
            return "tie"
        ahead = diff < 0 if self.better == "lower" else diff > 0
        return "win" if ahead else "loss"


def tour_problems(rows) -> list[str]:
    """What keeps ``rows`` from an honest report: a compared row with no declared direction,
    or a losing row that does not say why.  Empty when every row is in order."""
    out = []
    for r in rows:
        label = f"{r.family}: {r.method} on {r.data}"
        if r.peer_value is not None and not r.better:
            out.append(f"{label}: has a peer value but declares no direction (better=...)")
        if r.outcome == "loss" and not r.why.strip():
            out.append(f"{label}: loses to {r.peer or 'its peer'} and does not say why (why=...)")
    return out


#: every tour figure is this size (inches) at this dpi, so the report shows them alike.
FIGSIZE = (12.0, 3.6)
FIG_DPI = 100
