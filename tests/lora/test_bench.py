"""The benchmark script runs end to end (1 seed, reduced): slow, MiniLM on CPU."""

import importlib.util
import pathlib

import pytest

pytestmark = pytest.mark.slow


def test_bench_lora_quick(tmp_path):
    path = pathlib.Path(__file__).parents[2] / "benchmarks" / "bench_lora.py"
    spec = importlib.util.spec_from_file_location("bench_lora", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(["--quick", "--out", str(tmp_path / "r.json"), "--plot",
                    str(tmp_path / "rel.png")])
    (per,) = res["seeds"]
    assert set(per) == set(mod.METHODS)
    for m, r in per.items():
        assert 0.5 <= r["row"]["accuracy"] <= 1.0, m  # better than chance on sentiment
        assert r["row"]["step_s"] > 0
    assert per["tfb"]["row"]["tfb_recheck_flip"] <= 0.1
    assert (tmp_path / "rel.png").is_file()
