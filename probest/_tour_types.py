"""What a family's ``_tour.run`` returns to ``probest tour``."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class TourResult:
    """One row of the tour table (and its plots in the HTML report).

    ``value``/``peer_value`` are measured numbers, never placeholders: a family that could
    not run a step reports it in ``note`` with ``value=None``.
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
