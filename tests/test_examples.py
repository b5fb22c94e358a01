"""Every examples/*.py script runs with --quick (tiny budgets), as Pyro smoke-tests its examples."""

import os
import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


#: examples too long for the default run (measured idle, 2 cores), with the fast test that
#: covers the same path in the default run
SLOW = {"lora_sentiment": "47 s: two MiniLM fine-tunes; tests/lora covers the path on a tiny BERT"}


@pytest.mark.parametrize("script", [pytest.param(p, marks=pytest.mark.slow) if p.stem in SLOW
                                    else p for p in EXAMPLES], ids=[p.stem for p in EXAMPLES])
def test_example_runs_quick(script, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(script), "--quick"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{script.name} failed:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}"


def test_there_are_examples():
    assert EXAMPLES, "examples/ must hold runnable scripts"
