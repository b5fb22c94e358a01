"""What every family's ``_tour.run`` shares: its output folder and pinned threads, timing a
fit, and the one figure size and layout of the report.

Imports no other probest module except the leaf :mod:`probest._tour_types`; torch and
matplotlib are imported when used.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import time

from probest._tour_types import FIG_DPI, FIGSIZE

_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def pinned_threads(n: int = 1):
    """Run the block with ``torch.set_num_threads(n)`` and ``OMP/MKL_NUM_THREADS=n`` in the
    environment (for subprocesses); both are restored afterwards, even on error."""
    import torch

    before_torch = torch.get_num_threads()
    before_env = {k: os.environ.get(k) for k in _THREAD_ENV}
    torch.set_num_threads(int(n))
    os.environ.update({k: str(int(n)) for k in _THREAD_ENV})
    try:
        yield
    finally:
        torch.set_num_threads(before_torch)
        for k, v in before_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def tour_session(out_dir, threads: int = 1):
    """A family tour's frame: creates ``out_dir`` and yields it as a path, threads pinned
    (small problems run fastest on one thread; 2-core machines are not oversubscribed)."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with pinned_threads(threads):
        yield out


def timed_fit(est, *args, **kwargs):
    """``(est.fit(*args, **kwargs), wall seconds of the fit)``."""
    t0 = time.perf_counter()
    fitted = est.fit(*args, **kwargs)
    return fitted, time.perf_counter() - t0


def tour_subplots(ncols: int = 1, **kwargs):
    """``(fig, axes)``: one row of ``ncols`` panels in a figure of the report's size
    (``axes`` is always a 1-D array)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=FIGSIZE, squeeze=False, layout="constrained",
                             **kwargs)
    return fig, axes[0]


def save_tour_figure(fig, path) -> str:
    """Bring ``fig`` (ours, or one a plot helper made) to the report's figure size, lay it
    out again, save it as PNG at the report's dpi and close it; return the path.

    A figure with a layout engine (``tour_subplots`` makes constrained ones) is laid out by
    it; one without gets ``tight_layout`` (skipped, not fatal, where it cannot apply).  No
    ``bbox_inches="tight"``: every tour image has the same pixel size.
    """
    import warnings

    import matplotlib.pyplot as plt

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.set_size_inches(*FIGSIZE)
    if fig.get_layout_engine() is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "tight layout not applied"
            fig.tight_layout()
    fig.savefig(path, dpi=FIG_DPI)
    plt.close(fig)
    return str(path)


def objective_drop(est, fraction: float = 0.25) -> float | None:
    """How much a fitted estimator's logged training objective (``history_``) fell over the
    last ``fraction`` of its logged steps (mean of that window against the window before
    it; positive: still improving when the budget ran out).  ``None`` without a history."""
    values = [h["objective"] for h in getattr(est, "history_", None) or [] if "objective" in h]
    k = int(len(values) * fraction)
    if k < 1 or 2 * k > len(values):
        return None
    before, last = values[-2 * k:-k], values[-k:]
    return float(sum(before) / k - sum(last) / k)


def explain_loss(row, why: str):
    """Set ``row.why`` when ``row`` loses to its peer (a reason written for the loss is not
    shown on a row that wins); return the row."""
    if row.outcome == "loss":
        row.why = why
    return row
