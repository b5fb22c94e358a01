"""Federated EM over Flower (``pip install "probest[federated]"``).

Across machines, start one server and one client per data holder::

    # server (holds no data)
    from probest.mixture import FederatedGaussianMixture
    from probest.mixture.flower import serve
    gmm = serve(FederatedGaussianMixture(3, random_state=0), "0.0.0.0:8080", min_clients=3)

    # each client (its own machine, its own data X_c)
    from probest.mixture.flower import run_client
    run_client("server-host:8080", X_c, client_id="hospital-a")

or ``python -m probest.mixture.flower client --address server-host:8080 --data X_c.npy
--id hospital-a``.  The server returns a fitted :class:`FederatedGaussianMixture` whose
``client_weights_`` rows follow ``client_ids_`` (the ids the clients announced).
``FederatedGaussianMixture(engine="flower").fit(X_by_client)`` does the same on this
machine: a real Flower server in this process and one client process per client on
127.0.0.1 with a free port.  Protocol and failure handling: :mod:`probest.mixture._flower_impl`.

This module uses Flower's gRPC ``start_server``/``start_client`` entry points (deprecated
in Flower 1.1x in favour of SuperLink/SuperNode deployments, still shipped in 1.42).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np


def _impl():
    from probest._optional import import_optional

    import_optional("flwr", extra="federated", purpose="engine='flower'")
    from probest.mixture import _flower_impl

    return _flower_impl


class _quiet_flower:
    """Flower logs every round at INFO; keep only its warnings while we run."""

    def __enter__(self):
        import logging

        self.logger = logging.getLogger("flwr")
        self.level = self.logger.level
        self.logger.setLevel(logging.WARNING)

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serve(est, server_address: str, min_clients: int, *, n_features: int | None = None,
          client_fraction: float = 1.0):
    """Run the Flower server for ``est`` (a FederatedGaussianMixture) until EM stops.

    Blocks; returns ``est`` fitted.  ``min_clients`` clients must connect before a round
    starts and must answer in every round (others may drop: see ``dropped_clients_``).
    ``client_fraction < 1`` asks a random subset of clients in each EM round (incremental
    EM on every client's latest statistics).  ``n_features`` is needed only to check
    ``weights_init``/``means_init``/``precisions_init``.
    """
    if not 0.0 < client_fraction <= 1.0:
        raise ValueError(f"client_fraction must be in (0, 1], got {client_fraction}.")
    impl = _impl()
    import torch
    from flwr.server import ServerConfig, start_server

    from probest._torch import draw_seed
    from probest.mixture import _base

    est._validate_params()
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    seed = draw_seed(est.random_state) % (2**31 - 1)
    user = {}
    if n_features is not None:
        user = _base.user_params(est, n_features, "cpu", torch.float64)
    strategy = impl.GMMStrategy(est, min_clients=min_clients, seed=seed, given={"user": user},
                                client_fraction=client_fraction)
    config = ServerConfig(num_rounds=est.max_iter + 2, round_timeout=est.round_timeout)
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            with _quiet_flower():
                start_server(server_address=server_address, config=config,
                             server=impl.make_server(strategy))
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    if strategy.params is None or strategy.error:
        raise RuntimeError(
            "Flower federated EM failed: "
            + (strategy.error or "no round completed (did the clients connect?)")
        )
    _finish(est, strategy)
    return est


def _finish(est, st) -> None:
    import torch
    from sklearn.exceptions import ConvergenceWarning

    from probest.mixture import _base

    est.device_, est.dtype_ = torch.device("cpu"), torch.float64
    _base.params_to_numpy(est, st.params, None)
    ids = sorted(st.client_weights)
    est.client_ids_ = ids
    est.client_weights_ = np.stack([st.client_weights[i] for i in ids])
    est.client_n_samples_ = np.array([st.client_sizes[i] for i in ids])
    pooled = (est.client_n_samples_[:, None] * est.client_weights_).sum(0)
    est.weights_ = pooled / pooled.sum()
    est.n_clients_ = len(ids)
    est.n_features_in_ = est.means_.shape[1]
    est.converged_, est.n_iter_ = bool(st.converged), int(st.n_iter)
    est.lower_bound_, est.lower_bounds_ = float(st.lower_bound), list(st.bounds)
    est.history_ = list(st.history)
    est.dropped_clients_ = list(st.dropped)
    if not est.converged_:
        warnings.warn("Federated EM over Flower did not converge within max_iter rounds.",
                      ConvergenceWarning, stacklevel=3)


def run_client(server_address: str, X, client_id=None, *, drop_at_round: int | None = None):
    """Connect one data holder to the server and answer its rounds (blocks until done)."""
    impl = _impl()
    from flwr.client import start_client

    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    cid = str(client_id if client_id is not None else os.getpid())
    client = impl.GMMClient(np.asarray(X, dtype=np.float64), cid, drop_at_round)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with _quiet_flower():
            start_client(server_address=server_address, client=client.to_client(),
                         insecure=True, max_retries=20, max_wait_time=60.0)


def fit_local_deployment(est, parts, ids, *, drop: dict | None = None,
                         min_clients: int | None = None, client_fraction: float = 1.0):
    """A real Flower run on this machine: server here, one client process per client."""
    _impl()
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = dict(os.environ, FLWR_TELEMETRY_ENABLED="0", OMP_NUM_THREADS="1")
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    drop = drop or {}
    with tempfile.TemporaryDirectory(prefix="probest-flower-") as tmp:
        procs = []
        for cid, X in zip(ids, parts, strict=True):
            f = Path(tmp) / f"client{len(procs)}.npy"
            np.save(f, np.asarray(X, dtype=np.float64))
            cmd = [sys.executable, "-m", "probest.mixture.flower", "client", "--address",
                   address, "--data", str(f), "--id", str(cid)]
            if cid in drop:
                cmd += ["--drop-at-round", str(drop[cid])]
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        try:
            est.n_features_in_ = parts[0].shape[1]
            if min_clients is None:
                min_clients = len(parts) - len(drop)
            serve(est, address, min_clients=min_clients, n_features=parts[0].shape[1],
                  client_fraction=client_fraction)
        finally:
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()  # then reap it: an unwaited Popen is a zombie (ResourceWarning)
                    p.wait()
    if not isinstance(ids[0], str):  # map string ids announced on the wire back
        back = {str(i): i for i in ids}
        est.client_ids_ = [back[i] for i in est.client_ids_]
        order = [est.client_ids_.index(i) for i in ids if i in est.client_ids_]
        est.client_ids_ = [est.client_ids_[o] for o in order]
        est.client_weights_ = est.client_weights_[order]
        est.client_n_samples_ = est.client_n_samples_[order]
    return est


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m probest.mixture.flower")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("client", help="run one Flower client on a .npy data file")
    c.add_argument("--address", required=True)
    c.add_argument("--data", required=True)
    c.add_argument("--id", default=None)
    c.add_argument("--drop-at-round", type=int, default=None, help="testing: crash then")
    a = ap.parse_args(argv)
    run_client(a.address, np.load(a.data), a.id, drop_at_round=a.drop_at_round)


if __name__ == "__main__":
    main()
