"""Hypothesis profiles of the fuzz suite and its per-estimator counts in the terminal summary.

* ``fast`` (default): every named case once as an explicit example plus a few drawn ones per
  estimator, ``derandomize=True`` so CI is deterministic, no deadline (fits vary in time);
* ``slow``: many more drawn cases (``HYPOTHESIS_PROFILE=slow``, or selected automatically by
  ``pytest -m slow tests/fuzz``).
"""

import os

import pytest
from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, database=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.differing_executors])
settings.register_profile("fast", max_examples=2, derandomize=True, **_COMMON)
settings.register_profile("slow", max_examples=200, derandomize=False, **_COMMON)


def pytest_configure(config):
    markexpr = config.getoption("-m") or ""
    default = "slow" if "slow" in markexpr else "fast"
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", default))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # `pytest -m slow tests/fuzz` selects the whole suite (under the slow profile)
    if "slow" in (config.getoption("-m") or ""):
        for item in items:
            if "tests/fuzz/" in item.nodeid:
                item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter):
    from probest.testing._fuzz import COUNTS

    if not COUNTS:
        return
    tr = terminalreporter
    tr.section(f"fuzz counts per estimator (profile {settings.get_current_profile_name()})")
    tr.write_line(f"{'estimator':30s} {'tried':>6s} {'errors':>7s} {'finite':>7s} {'fail':>5s}")
    tot = dict.fromkeys(("tried", "error", "finite", "fail"), 0)
    for name in sorted(n for n in COUNTS if not n.startswith("_")):  # "_": meta-test probes
        c = COUNTS[name]
        tr.write_line(f"{name:30s} {c['tried']:6d} {c['error']:7d} {c['finite']:7d} {c['fail']:5d}")
        for k in tot:
            tot[k] += c[k]
    tr.write_line(f"{'total':30s} {tot['tried']:6d} {tot['error']:7d} {tot['finite']:7d} "
                  f"{tot['fail']:5d}")
