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


def test_flower_superlink_three_supernodes_given_start_equals_local():
    """In the default run: a real flower-superlink, 3 flower-supernode processes and `flwr
    run` on 127.0.0.1, started from given weights / means / precisions (they travel in the
    run config as exact float64 reprs), one EM iteration through the Message API, equal to
    the local engine to 1e-8.  Flower 1.42 starts a ClientApp process per message (Python +
    flwr + torch, ~2.6 s of CPU per node) and its SuperNodes poll every 3 s, so a round
    takes ~7 s on an idle 2-core machine (measured with max_iter=3: 8 rounds, 62.5 s of
    fit, 77 s in all); this one runs 6 rounds."""
    pytest.importorskip("flwr")
    b = make_federated_gmm(3, 300, 3, 4, concentration=0.7, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        g = GaussianMixture(3, max_iter=1, init_params="random", random_state=0,
                            device="cpu").fit(np.concatenate(b.X))
        kw = dict(random_state=0, device="cpu", tol=0.0, max_iter=1, weights_init=g.weights_,
                  means_init=g.means_, precisions_init=g.precisions_)
        f = FederatedGaussianMixture(3, engine="flower", round_timeout=60.0, **kw).fit(b.X)
        local = FederatedGaussianMixture(3, **kw).fit(b.X)
    print("flower rounds", f.flower_timing_)
    assert f.client_ids_ == [0, 1, 2] and f.dropped_clients_ == [] and f.n_iter_ == 1
    np.testing.assert_allclose(f.means_, local.means_, atol=1e-8)
    np.testing.assert_allclose(f.covariances_, local.covariances_, atol=1e-8)
    np.testing.assert_allclose(f.client_weights_, local.client_weights_, atol=1e-8)
    assert np.abs(f.means_ - g.means_).max() > 0.1  # the round moved the model (0.25)


@pytest.mark.slow  # two deployments of ~6 rounds each, ~2.5 min idle
def test_flower_warm_start_continues_the_previous_fit_like_local():
    """warm_start=True over real Flower processes: the previous fit travels to the ServerApp
    as a model file (run config ``previous``), the personal weights table as rows + client
    ids; two 1-iteration fits equal the same two local fits to 1e-8."""
    pytest.importorskip("flwr")
    b = make_federated_gmm(3, 300, 3, 4, concentration=0.7, random_state=0)
    kw = dict(random_state=0, device="cpu", tol=0.0, max_iter=1, warm_start=True)
    f = FederatedGaussianMixture(3, engine="flower", round_timeout=60.0, **kw)
    local = FederatedGaussianMixture(3, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(2):
            f.fit(b.X)
            local.fit(b.X)
    assert f.client_ids_ == [0, 1, 2] and len(local.lower_bounds_) == 1
    for a in ("means_", "covariances_", "client_weights_", "lower_bounds_"):
        np.testing.assert_allclose(getattr(f, a), getattr(local, a), atol=1e-8, rtol=0)


@pytest.mark.slow  # ~140 s idle: the SuperLink reports the lost ClientApp after ~60 s
def test_flower_node_killed_mid_run_is_dropped_and_the_fit_goes_on():
    """A real federation whose third SuperNode dies (SIGKILL, with its ClientApp) when it
    receives round 6: the round's reply for it is a Message error (measured: code 8,
    "ClientApp stopped responding", ~67 s after the kill), recorded in dropped_clients_,
    and EM finishes on the two others (min_clients=2)."""
    pytest.importorskip("flwr")
    from probest.mixture import flower

    b = make_federated_gmm(3, 300, 3, 4, concentration=0.7, random_state=0)
    est = FederatedGaussianMixture(3, engine="flower", round_timeout=150.0, random_state=0,
                                   device="cpu", tol=0.0, max_iter=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        flower.fit_local_deployment(est, b.X, [0, 1, 2], drop={2: 6}, min_clients=2)
    assert est.n_iter_ == 4 and est.client_ids_ == [0, 1]
    [(rnd, cid, reason)] = est.dropped_clients_
    assert (rnd, cid) == (6, 2) and reason.startswith("error code"), reason
    assert np.isfinite(est.means_).all()


@pytest.mark.slow  # ~115 s idle: Flower 1.42 starts one ClientApp process per message
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


@pytest.mark.slow  # ~23 Flower rounds (labels, phi, init, Newton rounds), ~3 min idle
def test_flower_classifier_superlink_three_supernodes_equals_local():
    """FedGMMClassifier(engine="flower"): a real flower-superlink, 3 flower-supernode
    processes holding their rows and labels (``labels-path`` in the node config) and
    ``flwr run``; one EM iteration (23 rounds: labels, classes, phi, the Gaussian start,
    the experts' Newton rounds) equals the local engine to 1e-8."""
    pytest.importorskip("flwr")
    b = make_federated_gmm(3, 150, 2, 4, labels=True, random_state=1)
    kw = dict(max_iter=1, tol=0.0, random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        f = FedGMMClassifier(2, 2, engine="flower", round_timeout=90.0, **kw).fit(b.X, b.y)
        local = FedGMMClassifier(2, 2, **kw).fit(b.X, b.y)
    print("flower classifier", f.flower_timing_)
    assert f.client_ids_ == [0, 1, 2] and f.dropped_clients_ == [] and f.n_iter_ == 1
    assert len(f.flower_timing_["round_seconds"]) == 23
    for a in ("means_", "covariances_", "client_weights_", "weights_"):
        np.testing.assert_allclose(getattr(f, a), getattr(local, a), atol=1e-8, rtol=0)
    np.testing.assert_allclose(f.predict_proba(b.X[2], client=2),
                               local.predict_proba(b.X[2], client=2), atol=1e-8)


def _in_process_grid(monkeypatch, tmp_path, parts, labels=None):
    """A Grid whose SuperNodes are in this process: every message is answered by the
    ClientApp's own ``answer`` from the node's files and its persisted ``context.state``
    (a RecordDict), with a fresh Client per message as Flower's process-per-message
    ClientApp has, so the whole wire path (encode, decode, state, restore) runs."""
    from types import SimpleNamespace

    from flwr.app import RecordDict

    import probest.mixture._flower_app as app

    def message(content, dst_node_id, message_type, group_id):  # no run outside Flower
        return SimpleNamespace(content=content, metadata=SimpleNamespace(
            dst_node_id=dst_node_id, group_id=group_id))

    monkeypatch.setattr(app, "Message", message)
    nodes = {}
    for i, X in enumerate(parts):
        cfg = {"data-path": str(tmp_path / f"x{i}.npy"), "client-id": f"c{i}",
               "partition-id": i}
        np.save(cfg["data-path"], X)
        if labels is not None:
            cfg["labels-path"] = str(tmp_path / f"y{i}.npy")
            np.save(cfg["labels-path"], labels[i], allow_pickle=False)
        nodes[10 + i] = (cfg, RecordDict())

    class Grid:
        def get_node_ids(self):
            return list(nodes)

        def push_messages(self, msgs):
            self.replies = {}
            for j, m in enumerate(msgs):
                node = m.metadata.dst_node_id
                cfg, state = nodes[node]
                task = str(m.content.config_records["task"]["task"])
                content = app.answer(task, app.decode(m.content, "payload"), cfg, state, node)
                self.replies[str(j)] = SimpleNamespace(
                    metadata=SimpleNamespace(src_node_id=node, reply_to_message_id=str(j)),
                    has_error=lambda: False, content=content)
            return list(self.replies)

        def pull_messages(self, ids):
            return [self.replies[i] for i in ids]

    return app.FlowerEngine(Grid(), min_clients=len(parts), round_timeout=5.0, wait_for=0.0)


def test_flower_wire_path_in_process_gmm_equals_local(monkeypatch, tmp_path):
    """The ServerApp's fit (``_fit_engine`` over FlowerEngine) with the ClientApp's own
    reply function: equal to the local engine to 1e-8 (float64 summed in another order),
    then a warm start continuing both (seconds; the real processes are in the tests
    below)."""
    pytest.importorskip("flwr")
    b = make_federated_gmm(3, 200, 3, 4, concentration=0.7, random_state=0)
    kw = dict(random_state=0, device="cpu", tol=0.0, max_iter=5, n_init=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        f = FederatedGaussianMixture(3, **kw)
        f._fit_engine(_in_process_grid(monkeypatch, tmp_path, b.X))
        local = FederatedGaussianMixture(3, **kw).fit(b.X)
    assert f.client_ids_ == ["c0", "c1", "c2"] and f.n_iter_ == 5
    for a in ("means_", "covariances_", "client_weights_", "weights_"):
        np.testing.assert_allclose(getattr(f, a), getattr(local, a), atol=1e-8, rtol=0)
    # warm start: the personal weights table travels as rows + JSON client ids
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        f.set_params(warm_start=True, max_iter=3)._fit_engine(
            _in_process_grid(monkeypatch, tmp_path, b.X))
        local.set_params(warm_start=True, max_iter=3).fit(b.X, groups=None)
    assert f.n_iter_ == 3
    for a in ("means_", "covariances_", "client_weights_", "lower_bounds_"):
        np.testing.assert_allclose(getattr(f, a), getattr(local, a), atol=1e-8, rtol=0)


@pytest.mark.parametrize("phi", [None, 2])
def test_flower_wire_path_in_process_classifier_equals_local(monkeypatch, tmp_path, phi):
    """FedGMMClassifier over the Flower wire path: string labels on the nodes (the server
    learns classes_ from a labels round), PCA phi and the experts' Newton rounds as
    messages, client tables in context.state: equal to the local engine to 1e-8."""
    pytest.importorskip("flwr")
    b = make_federated_gmm(3, 150, 2, 4, labels=True, random_state=1)
    ys = [np.array(["neg", "pos"])[y] for y in b.y]
    kw = dict(phi=phi, max_iter=3, tol=0.0, random_state=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        f = FedGMMClassifier(2, 2, **kw)
        f._fit_engine(_in_process_grid(monkeypatch, tmp_path, b.X, ys))
        local = FedGMMClassifier(2, 2, **kw).fit(b.X, ys)
    assert list(f.classes_) == ["neg", "pos"] and f.n_features_in_ == 4
    assert f.client_ids_ == ["c0", "c1", "c2"] and f.n_iter_ == 3
    for a in ("means_", "covariances_", "client_weights_", "weights_"):
        np.testing.assert_allclose(getattr(f, a), getattr(local, a), atol=1e-8, rtol=0)
    for k in range(3):
        np.testing.assert_allclose(f.predict_proba(b.X[k], client=f"c{k}"),
                                   local.predict_proba(b.X[k], client=k), atol=1e-8)


def test_flower_refuses_objects_that_cannot_travel(monkeypatch, tmp_path):
    pytest.importorskip("flwr")
    b = make_federated_gmm(3, 60, 2, 3, labels=True, random_state=1)
    eng = _in_process_grid(monkeypatch, tmp_path, b.X, b.y)
    with pytest.raises(ValueError, match="phi=None or an int"):
        FedGMMClassifier(2, 2, phi=lambda X: X[:, :2], device="cpu")._fit_engine(eng)


def _fake_grid(replies, delay=0):
    """A Grid stand-in for FlowerEngine's bookkeeping (push/pull of messages): a reply
    arrives on the ``delay``-th pull after the push; a node missing from ``replies`` never
    answers."""
    from types import SimpleNamespace

    class Grid:
        pulls = 0

        def get_node_ids(self):
            return [1, 2, 3]

        def push_messages(self, msgs):
            self.sent = {str(i): m for i, m in enumerate(msgs)}
            return list(self.sent)

        def pull_messages(self, ids):
            self.pulls += 1
            if self.pulls <= delay:
                return []
            out = []
            for i in ids:
                m = self.sent[i]
                if m.metadata.dst_node_id in replies:
                    r = replies[m.metadata.dst_node_id](m)
                    r.metadata.reply_to_message_id = i
                    out.append(r)
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
    # replies that arrive late are waited for (fast polls, not Flower's 3 s), a silent
    # node is dropped once round_timeout has passed
    grid3, _ = _fake_grid({1: answer("a"), 2: answer("b")}, delay=3)
    eng = FlowerEngine(grid3, min_clients=2, round_timeout=0.5, wait_for=0.0, poll=0.01)
    res = eng.round("data_sum", {})
    assert res.answered == ["a", "b"] and grid3.pulls >= 4
    assert res.dropped == [(1, "3", "no reply within round_timeout")]
    assert eng.latencies[-1] < 2.0


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
