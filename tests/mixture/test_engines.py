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
from probest.mixture import FederatedGaussianMixture, FedGMMClassifier, GaussianMixture

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


def test_flower_import_is_lazy():
    code = ("import sys, probest, probest.mixture as m; m.FederatedGaussianMixture; "
            "m.GaussianMixture; m.FedGMMClassifier; probest.all_estimators('mixture'); "
            "import probest.mixture.flower; print('flwr' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.slow  # never completed on the 2-core machine: Flower 1.42 starts one ClientApp
# process per message (~30 s each under load); issue 12 stays open until it is measured idle.
def test_flower_superlink_and_three_supernodes_equal_local():
    """A real flower-superlink, 3 flower-supernode processes and `flwr run` on 127.0.0.1:
    10 EM rounds through the Message API equal the local engine to 1e-8 (float64 on the
    wire).  Flower 1.42 starts one ClientApp process per message, so a round costs a Python
    start-up per node; the time bound is generous for loaded CI machines."""
    pytest.importorskip("flwr")
    import time

    b = make_federated_gmm(3, 300, 3, 4, concentration=0.7, random_state=0)
    kw = dict(random_state=0, device="cpu", tol=0.0, max_iter=10)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0: all 10 rounds run
        f = FederatedGaussianMixture(3, engine="flower", round_timeout=240.0, **kw).fit(b.X)
        local = FederatedGaussianMixture(3, **kw).fit(b.X)
    print("flower fit", time.perf_counter() - t0, "s; rounds", f.flower_timing_)
    assert f.client_ids_ == [0, 1, 2] and f.dropped_clients_ == [] and f.n_iter_ == 10
    np.testing.assert_allclose(f.means_, local.means_, atol=1e-8)
    np.testing.assert_allclose(f.covariances_, local.covariances_, atol=1e-8)
    np.testing.assert_allclose(f.client_weights_, local.client_weights_, atol=1e-8)
    np.testing.assert_allclose(f.score_samples(b.X[1], client=1),
                               local.score_samples(b.X[1], client=1), atol=1e-8)


def _fake_grid(replies):
    """A Grid stand-in for FlowerEngine's bookkeeping: node 3's reply is an error."""
    from types import SimpleNamespace

    class Grid:
        def get_node_ids(self):
            return [1, 2, 3]

        def send_and_receive(self, msgs, timeout=None):
            out = []
            for m in msgs:
                n = m.metadata.dst_node_id
                if n in replies:
                    out.append(replies[n](m))
            return out

    ok = SimpleNamespace
    return Grid(), ok


def test_flower_engine_records_unavailable_node_and_fails_below_min_clients(monkeypatch):
    pytest.importorskip("flwr")
    from types import SimpleNamespace

    import probest.mixture._flower_app as app

    def message(content, dst_node_id, message_type, group_id):  # no run outside Flower
        return SimpleNamespace(content=content, metadata=SimpleNamespace(
            dst_node_id=dst_node_id, group_id=group_id))

    monkeypatch.setattr(app, "Message", message)

    from flwr.app import ConfigRecord, RecordDict

    from probest.mixture._flower_app import FlowerEngine, encode

    def answer(cid):
        def f(m):
            rd = encode({"n": np.array([2.0])}, "sum")
            rd["meta"] = ConfigRecord({"client-id": cid})
            return SimpleNamespace(metadata=SimpleNamespace(src_node_id=m.metadata.dst_node_id),
                                   has_error=lambda: False, content=rd)
        return f

    def dead(m):  # what the SuperLink returns for a node that stopped answering
        return SimpleNamespace(metadata=SimpleNamespace(src_node_id=3), has_error=lambda: True,
                               error=SimpleNamespace(code=5, reason="NODE_UNAVAILABLE"),
                               content=RecordDict())

    grid, _ = _fake_grid({1: answer("a"), 2: answer("b"), 3: dead})
    eng = FlowerEngine(grid, min_clients=2, round_timeout=1.0, wait_for=0.0)
    res = eng.round("data_sum", {})
    assert res.answered == ["a", "b"] and float(res.sums["n"][0]) == 4.0
    assert res.dropped == [(1, "3", "error code 5: NODE_UNAVAILABLE")]
    assert eng.n_clients_total() == 2  # the dead node is not asked again
    grid2, _ = _fake_grid({1: answer("a"), 2: dead, 3: dead})
    eng = FlowerEngine(grid2, min_clients=2, round_timeout=1.0, wait_for=0.0)
    with pytest.raises(RuntimeError, match="1 clients answered, fewer than min_clients=2"):
        eng.round("data_sum", {})


def test_fedgmm_torch_distributed_gloo_three_ranks_equals_local(tmp_path):
    """FedGMMClassifier on 3 gloo ranks (2 clients each) equals the in-process fit on all 6.

    Two fits per rank: default logistic-regression experts, and torch experts with a
    federated-PCA ``phi``.  The aggregation differs from the local one only in summation
    order; torch experts keep that at rounding level (measured max |diff| 3.6e-15 after 8
    rounds, 1e-12 after 30, seeds 0-1), while lbfgs' early stopping in the sklearn experts
    amplifies it (measured after 8 rounds: 1.8e-12 / 1.8e-10 / 5e-14 for seeds 0/1/2;
    after 30 rounds up to 1.5e-7).  Hence 8 rounds, seed 0, acceptance bound 1e-8."""
    sys.path.insert(0, str(HERE))
    try:
        from dist_fedgmm_worker import PER_RANK, configs, federation
    finally:
        sys.path.remove(str(HERE))
    port = free_port()
    procs = [subprocess.Popen([sys.executable, str(HERE / "dist_fedgmm_worker.py"), str(r),
                               "3", str(port), str(tmp_path)], env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for r in range(3)]
    try:
        outs = [p.communicate(timeout=240)[0].decode() for p in procs]  # loaded CI: generous
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(outs)
    X, y = federation()
    got = [np.load(tmp_path / f"fedgmm{r}.npz") for r in range(3)]
    diffs = {}

    def close(key, a, b):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape, key
        diffs[key] = max(diffs.get(key, 0.0), float(np.max(np.abs(a - b))))
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-8, err_msg=key)

    for name, kw in configs().items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            local = FedGMMClassifier(**kw).fit(X, y)
        for r, res in enumerate(got):
            g = {k.split("/", 1)[1]: res[k] for k in res.files if k.startswith(name + "/")}
            block = slice(r * PER_RANK, (r + 1) * PER_RANK)
            close(name + " means", g["means"], local.means_)
            close(name + " covariances", g["cov"], local.covariances_)
            close(name + " weights", g["weights"], local.weights_)  # pooled over all ranks
            close(name + " client tables", g["cw"], local.client_weights_[block])  # own only
            np.testing.assert_array_equal(g["n"], local.client_n_samples_[block])
            close(name + " objective", g["hist"], [h["objective"] for h in local.history_])
            for b, st in enumerate(local.experts_):
                for k, v in st.items():
                    close(f"{name} expert {k}", g[f"e{b}_{k}"], v)
            close(name + " proba", g["proba"],
                  local.predict_proba(X[r * PER_RANK], client=r * PER_RANK))
            if local.phi is not None:
                close(name + " phi", g["phi"], local.phi_components_)
    for res in got:  # mismatched feature counts across ranks: every rank raises, none hangs
        err = str(res["err"])
        assert "Mismatched feature counts across ranks" in err and "rank 2 has 2" in err, err
    print("max |distributed - local|:", {k: f"{v:.1e}" for k, v in diffs.items()})


def test_fedgmm_torch_distributed_without_process_group_is_clear():
    X = np.random.default_rng(0).normal(size=(40, 2))
    with pytest.raises(ValueError, match="init_process_group"):
        FedGMMClassifier(2, 2, engine="torch.distributed", device="cpu").fit(
            X, (X[:, 0] > 0).astype(int))
