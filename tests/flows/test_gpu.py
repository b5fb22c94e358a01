"""CUDA path (skipped without CUDA): benchmarks/gpu_check.py --quick must pass."""

import importlib.util
import pathlib

import pytest

pytestmark = pytest.mark.gpu


def test_gpu_check_quick():
    path = pathlib.Path(__file__).parents[2] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--quick"]) == 0


def test_device_auto_picks_cuda():
    import numpy as np

    from probest.flows import FlowDensityEstimator

    X = np.random.default_rng(0).normal(size=(200, 2))
    est = FlowDensityEstimator(flow="maf", max_iter=5, random_state=0).fit(X)
    assert est.device_.type == "cuda"
    assert next(est.model_.parameters()).is_cuda
