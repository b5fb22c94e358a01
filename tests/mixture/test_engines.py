"""Real engines: torch.distributed (gloo, 3 processes) and Flower (server + 3 clients)."""

import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from probest.datasets import make_federated_gmm
from probest.mixture import FederatedGaussianMixture, GaussianMixture

HERE = Path(__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", FLWR_TELEMETRY_ENABLED="0",
               PYTHONPATH=str(HERE.parents[1]))
    return env


def test_torch_distributed_gloo_three_ranks_equals_local(tmp_path):
    b = make_federated_gmm(9, 300, 3, 4, concentration=0.7, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        g = GaussianMixture(3, max_iter=1, init_params="random", random_state=0,
                            device="cpu").fit(np.concatenate(b.X))
    np.savez(tmp_path / "init.npz", w=g.weights_, m=g.means_, p=g.precisions_)
    port = free_port()
    procs = [subprocess.Popen([sys.executable, str(HERE / "dist_worker.py"), str(r), "3",
                               str(port), str(tmp_path)], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for r in range(3)]
    try:
        outs = [p.communicate(timeout=100)[0].decode() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(outs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        local = FederatedGaussianMixture(
            3, personalize=False, tol=0.0, max_iter=30, weights_init=g.weights_,
            means_init=g.means_, precisions_init=g.precisions_, device="cpu").fit(b.X)
    res = [np.load(tmp_path / f"rank{r}.npz") for r in range(3)]
    for r in res:  # every rank holds the same model, equal to the in-process federation
        np.testing.assert_allclose(r["means"], local.means_, atol=1e-10)
        np.testing.assert_allclose(r["cov"], local.covariances_, atol=1e-10)
        np.testing.assert_allclose(r["weights"], local.weights_, atol=1e-10)
        np.testing.assert_allclose(r["gmeans"], res[0]["gmeans"], atol=1e-12)
        assert r["gcw"].shape == (9, 3)
    # personalised weights of all 9 clients gathered on every rank, in rank order
    assert list(res[1]["ids"][:3]) == ["(0, 0)", "(0, 1)", "(0, 2)"]


def test_torch_distributed_without_process_group_is_clear():
    with pytest.raises(ValueError, match="init_process_group"):
        FederatedGaussianMixture(2, engine="torch.distributed", device="cpu").fit(
            np.random.default_rng(0).normal(size=(50, 2)))
