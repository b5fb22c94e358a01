"""Flower strategy and client for federated EM (imported only when Flower is used).

Protocol (one Flower round per step; arrays travel as float64 numpy, so nothing is lost):

1. ``init1``: each client returns its data sum, its row count and a local k-means summary
   (centres, sizes).  The server sets ``ref`` (global mean) and picks the initial centres.
2. ``init2``: clients return the sufficient statistics of the nearest-centre assignment;
   the server's M-step gives the initial components (skipped when ``means_init`` etc. are
   given).
3. ``em``: clients receive the components (and, unless personalised, the global weights),
   run the E-step on their data and return their statistics; the server adds the
   statistics that arrived and runs the M-step.  Personalised weights ``pi_c`` stay on the
   client (it updates them from its own ``nk``); the server also records them by client id.

Partial participation (``client_fraction < 1``): each EM round asks a random subset of the
connected clients (at least ``min_clients``); the server keeps every client's latest
statistics and runs the M-step on their sum — incremental EM (Neal & Hinton, 1998), whose
fixed points are those of full EM — so no round forgets the data of clients that sat it out.

Dropped clients: a client that fails or times out (``round_timeout``) is listed in
``dropped_clients_``, its statistics leave the sum (the round uses the statistics that
arrived) and its last weights are kept.  If fewer than ``min_clients`` results arrive the
fit stops with a clear ``RuntimeError`` instead of producing a model from too little data.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from probest._optional import import_optional
from probest.mixture._em import (
    ChunkedData,
    centers_from_summaries,
    client_summary,
    hard_stats,
    log_weights_from,
    random_stats,
)
from probest.mixture._stats import GaussParams, SuffStats, e_step_stats, m_step

import_optional("flwr", extra="federated", purpose="engine='flower'")
from flwr.client import NumPyClient  # noqa: E402
from flwr.common import (  # noqa: E402
    FitIns,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server import History, Server  # noqa: E402
from flwr.server.strategy import Strategy  # noqa: E402

_DT = torch.float64


def _t(a):
    return torch.tensor(np.asarray(a), dtype=_DT)


class GMMClient(NumPyClient):
    """Holds one client's data; returns statistics, keeps its personal weights."""

    def __init__(self, X: np.ndarray, client_id: str, drop_at_round: int | None = None):
        self.X = np.asarray(X, dtype=np.float64)
        self.client_id = str(client_id)
        self.drop_at_round = drop_at_round
        self.data = ChunkedData(self.X, device="cpu", dtype=_DT, width=1)
        self.log_weights = None

    def get_parameters(self, config):
        return []

    def fit(self, parameters, config):
        rnd = int(config.get("round", 0))
        if self.drop_at_round is not None and rnd >= self.drop_at_round:
            import os

            os._exit(3)  # simulate a crash in the middle of a round (tests)
        stage, K = str(config["stage"]), int(config["K"])
        ct = str(config["covariance_type"])
        meta = {"client_id": self.client_id}
        if stage == "init1":
            cents, counts = client_summary(self.X, K, int(config["seed"]))
            out = [self.X.sum(0), np.array([self.X.shape[0]], float), cents, counts]
            return out, self.X.shape[0], meta
        if stage == "init2":
            ref, centers = _t(parameters[0]), _t(parameters[1])
            if str(config["method"]) == "random":
                gen = torch.Generator().manual_seed(int(config["seed"]))
                st = random_stats(self.data, K, ref, ct, gen)
            else:
                st = hard_stats(self.data, centers, ref, ct)
            if bool(config["personal_init"]):
                self.log_weights = log_weights_from(st.nk)
            return [st.flatten().numpy()], self.X.shape[0], meta
        # em
        means, cov, pc, ref, glw = (_t(p) for p in parameters)
        params = GaussParams(means, cov, pc, ct)
        personal = bool(config["personalize"]) and self.log_weights is not None
        lw = self.log_weights if personal else glw
        st = e_step_stats(self.data, lw, params, ref)
        self.log_weights = log_weights_from(st.nk)
        return [st.flatten().numpy()], self.X.shape[0], meta

    def evaluate(self, parameters, config):
        return 0.0, 0, {}


class GMMStrategy(Strategy):
    """Flower strategy whose aggregation is the EM M-step on summed statistics."""

    def __init__(self, est, *, min_clients: int, seed: int, given: dict,
                 client_fraction: float = 1.0):
        self.est = est
        self.min_clients = int(min_clients)
        self.seed = int(seed)
        self.given = given
        self.K, self.ct = est.n_components, est.covariance_type
        self.stage = "init1"
        self.params = self.weights = self.ref = None
        self.centers = None
        self.lower_bound, self.bounds = -math.inf, []
        self.converged, self.n_iter, self.done = False, 0, False
        self.client_weights: dict[str, np.ndarray] = {}
        self.client_sizes: dict[str, int] = {}
        self.dropped: list[tuple[int, str]] = []
        self.error: str | None = None
        self.history: list[dict] = []
        self.client_fraction = float(client_fraction)
        self.latest: dict[str, SuffStats] = {}  # each client's most recent statistics
        self.proxy_to_client: dict[str, str] = {}
        self._asked: list[str] = []

    # -- Strategy API ------------------------------------------------------------------
    def initialize_parameters(self, client_manager):
        return ndarrays_to_parameters([])

    def configure_fit(self, server_round, parameters, client_manager):
        if self.done:
            return []
        client_manager.wait_for(self.min_clients, timeout=self.est.round_timeout)
        clients = [c for _, c in sorted(client_manager.all().items())]
        if len(clients) < self.min_clients:
            self.error = (f"only {len(clients)} Flower clients connected, fewer than "
                          f"min_clients={self.min_clients}")
            self.done = True
            return []
        cfg = {"stage": self.stage, "K": self.K, "covariance_type": self.ct,
               "seed": self.seed, "round": server_round, "method": self.est.init_params,
               "personalize": bool(self.est.personalize),
               "personal_init": bool(self.est.personalize) and "weights" not in
               self.given.get("user", {})}
        if self.stage == "init1":
            arrays = []
        elif self.stage == "init2":
            arrays = [self.ref.numpy(), np.asarray(self.centers)]
        else:
            p = self.params
            arrays = [p.means.numpy(), p.covariances.numpy(), p.precisions_cholesky.numpy(),
                      self.ref.numpy(), torch.log(self.weights).numpy()]
        # the first EM round asks everyone, so every client's latest statistics are E-step
        # statistics (not the initial hard assignment) before subsets start
        if self.stage == "em" and self.client_fraction < 1.0 and self.n_iter >= 1:
            k = max(self.min_clients, math.ceil(self.client_fraction * len(clients)))
            rng = np.random.default_rng([self.seed, server_round])
            pick = np.sort(rng.choice(len(clients), size=min(k, len(clients)), replace=False))
            clients = [clients[i] for i in pick]
        self._asked = [c.cid for c in clients]
        ins = FitIns(ndarrays_to_parameters(arrays), cfg)
        return [(c, ins) for c in clients]

    def aggregate_fit(self, server_round, results, failures):
        if self.done:
            return None, {}
        for f in failures:
            self.dropped.append((server_round, repr(f)[:200]))
        if len(results) < self.min_clients:
            self.error = (f"round {server_round}: {len(results)} client results arrived "
                          f"({len(failures)} failures), fewer than min_clients="
                          f"{self.min_clients}; the model was not updated")
            self.done = True
            return None, {}
        for proxy, r in results:
            self.proxy_to_client[proxy.cid] = str(r.metrics["client_id"])
        answered = {proxy.cid for proxy, _ in results}
        for cid in self._asked:  # asked but no answer: its statistics leave the sum
            if cid not in answered:
                self.latest.pop(self.proxy_to_client.get(cid, ""), None)
        arrays = [(parameters_to_ndarrays(r.parameters), r.metrics, r.num_examples)
                  for _, r in results]
        arrays.sort(key=lambda t: str(t[1]["client_id"]))  # order-independent sums
        if self.stage == "init1":
            tot = sum(a[0][0] for a in arrays)
            n = sum(float(a[0][1][0]) for a in arrays)
            self.ref = _t(tot / n)
            summaries = [(a[0][2], a[0][3]) for a in arrays]
            if self.est.init_params == "random":
                self.centers = np.zeros((self.K, tot.shape[0]))
            else:
                self.centers = centers_from_summaries(summaries, self.K, self.est.init_params,
                                                      self.seed)
            self.stage = "init2"
            return ndarrays_to_parameters([]), {}
        like = SuffStats.zeros(self.K, self.ref.shape[0], self.ct, dtype=_DT)
        local = {str(m["client_id"]): like.unflatten(_t(a[0])) for a, m, _ in arrays}
        if self.stage == "init2":
            self.latest = {}
        self.latest.update(local)
        total = sum(self.latest[k] for k in sorted(self.latest))
        weights, params, _ = m_step(total, self.ref, self.ct, self.est.reg_covar,
                                    previous=self.params)
        for cid, st in local.items():
            self.client_weights[cid] = log_weights_from(st.nk).exp().numpy()
            self.client_sizes[cid] = int(round(float(st.n)))
        if self.stage == "init2":
            params, weights = _apply_given(params, weights, self.given)
            self.params, self.weights, self.stage = params, weights, "em"
            return ndarrays_to_parameters([]), {}
        prev = self.lower_bound
        self.lower_bound = float(total.loglik / total.n)
        self.bounds.append(self.lower_bound)
        self.params, self.weights = params, weights
        self.n_iter += 1
        self.history.append({"iter": self.n_iter, "objective": self.lower_bound,
                             "clients": len(results), "in_model": len(self.latest)})
        if abs(self.lower_bound - prev) < self.est.tol:
            self.converged, self.done = True, True
        elif self.n_iter >= self.est.max_iter:
            self.done = True
        return ndarrays_to_parameters([]), {}

    def configure_evaluate(self, server_round, parameters, client_manager):
        return []

    def aggregate_evaluate(self, server_round, results, failures):
        return None, {}

    def evaluate(self, server_round, parameters):
        return None


class EMServer(Server):
    """Flower's legacy server loop, stopping as soon as EM has converged or failed."""

    def fit(self, num_rounds, timeout):
        import timeit

        start = timeit.default_timer()
        self.parameters = self._get_initial_parameters(server_round=0, timeout=timeout)
        for rnd in range(1, num_rounds + 1):
            if self.strategy.done:
                break
            res = self.fit_round(server_round=rnd, timeout=timeout)
            if res is not None and res[0] is not None:
                self.parameters = res[0]
        return History(), timeit.default_timer() - start


def make_server(strategy) -> EMServer:
    from flwr.server.client_manager import SimpleClientManager

    return EMServer(client_manager=SimpleClientManager(), strategy=strategy)


def _apply_given(params, weights, given):
    from probest.mixture._base import apply_user_params

    user = {k: v.to(_DT) for k, v in given.get("user", {}).items()}
    return apply_user_params(params.to(dtype=_DT), weights, user)
