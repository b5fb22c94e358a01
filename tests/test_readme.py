"""The README's Python examples run as written (the flows one trains for minutes: slow)."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)\n```", README.read_text(), flags=re.S)


def _params():
    for i, code in enumerate(BLOCKS):
        heavy = "FlowMatchingEstimator" in code  # 3500 training steps on CPU
        yield pytest.param(code, id=f"block{i}", marks=[pytest.mark.slow] if heavy else [])


@pytest.mark.parametrize("code", list(_params()))
def test_readme_example_runs(code, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]


def test_readme_has_examples_per_family():
    text = README.read_text()
    for fam in ("shift", "mixture", "gaussian_process", "flows", "lora", "cluster", "bandits", "bnn"):
        assert f"<!-- family:{fam} -->" in text and f"from probest.{fam} import" in text
