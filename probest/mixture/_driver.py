"""The one EM driver: n_init starts, warm start, best-of, convergence -- over any engine.

:func:`run_driver` owns the loop every mixture estimator used to copy::

    for init in range(n_init):                 # 1 when warm-starting
        state = program.warm_state() if warm else program.initialize(init)
        lower_bound = previous lower_bound_ if warm else -inf
        for it in 1..max_iter:  state, lower_bound = program.step(state)  (stop at tol)
        keep the best lower bound

A *program* is the server side of one model: :class:`GMMProgram` (shared Gaussian
components, personal or pooled weights: ``FederatedGaussianMixture`` and, with one client,
``GaussianMixture``) or the classifier's program in :mod:`probest.mixture._fedgmm`.  A
program talks to its clients only through ``engine.round`` (:mod:`probest.mixture._engines`),
so the same driver runs locally, over torch.distributed and inside a Flower ``ServerApp``.

Warm start follows scikit-learn: one run from the previous fit's parameters whose first
convergence test compares with the previous ``lower_bound_`` (a fit that had converged
reports ``converged_`` after one more iteration).  ``max_iter=0`` returns the initial
parameters with ``lower_bound_ = -inf``.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import torch

from probest.mixture._em import centers_from_summaries, log_weights_from
from probest.mixture._stats import SuffStats, m_step
from probest.mixture._tasks import params_payload


def run_driver(program, *, n_init: int, max_iter: int, tol: float, warm: bool = False,
               previous_lower_bound: float = -math.inf, progress=None) -> dict:
    """EM from ``n_init`` starts (or one warm start); returns the best run's record."""
    best = None
    for init in range(1 if warm else n_init):
        state = program.warm_state() if warm else program.initialize(init)
        lower_bound = previous_lower_bound if warm else -math.inf
        bounds, converged, n_iter = [], False, 0
        for it in range(1, max_iter + 1):
            n_iter, prev = it, lower_bound
            state, lower_bound = program.step(state)
            bounds.append(lower_bound)
            if progress is not None:
                progress.log(objective=lower_bound, init=init)
            if abs(lower_bound - prev) < tol:
                converged = True
                break
        if max_iter == 0:
            lower_bound = -math.inf
        run = {"state": state, "lower_bound": float(lower_bound), "lower_bounds": bounds,
               "n_iter": n_iter, "converged": converged, "init": init}
        if best is None or run["lower_bound"] > best["lower_bound"]:
            best = run
    return best


class GMMProgram:
    """Server side of federated EM for a Gaussian mixture (shared components).

    Rounds: ``data_sum`` (global mean = shared centring point ``ref``), ``rows`` (one client
    in total: scikit-learn's initialisation on its rows) or ``summary`` (local k-means
    centres and sizes; the server runs the initialisation method on them), ``init_stats``
    (statistics of the nearest-centre or random assignment: the initial M-step), then one
    ``estep`` round per EM iteration.  Personal weights stay on the clients (slot = start).
    """

    def __init__(self, engine, *, n_components, covariance_type, reg_covar, init_params,
                 personalize, seed, given=None, init_rows=None, generator=None,
                 warm=None):
        self.engine, self.K, self.ct = engine, n_components, covariance_type
        self.reg_covar, self.method = reg_covar, init_params
        self.personalize, self.seed = personalize, int(seed)
        self.given = given or {}
        self.init_rows, self.generator = init_rows, generator
        self.warm = warm
        self.ref = None
        self.like = None
        self.warned = False
        self.dropped: list = []

    def _round(self, task, payload):
        res = self.engine.round(task, payload)
        self.dropped += res.dropped
        return res

    def _stats(self, v) -> SuffStats:
        return v if isinstance(v, SuffStats) else self.like.unflatten(torch.as_tensor(v))

    def _ref(self):
        if self.ref is None:
            s = self._round("data_sum", {}).sums
            self.ref = s["x"] / s["n"][0]
        return self._ref_like()

    def _ref_like(self):
        if self.like is None:
            self.like = SuffStats.zeros(self.K, self.ref.shape[0], self.ct,
                                        device=self.ref.device, dtype=self.ref.dtype)
        return self.ref

    def initialize(self, init: int):
        from probest.mixture import _base
        from probest.mixture._em import _kmeans_centers

        ref, seed = self._ref(), self.seed + init
        centers = None
        if self.method != "random":
            if self.engine.n_clients_total() == 1:
                rows = next(iter(self._round("rows", {"seed": seed,
                                                      "max_rows": self.init_rows}).each.values()))
                centers = _kmeans_centers(rows["rows"], self.K, self.method, seed,
                                          sample_weight=rows.get("weights"))
            else:
                res = self._round("summary", {"seed": seed, "K": self.K,
                                              "max_rows": self.init_rows})
                summ = [(np.asarray(v["centers"]), np.asarray(v["counts"]))
                        for v in res.each.values()]
                centers = centers_from_summaries(summ, self.K, self.method, seed)
            centers = torch.as_tensor(np.asarray(centers), device=ref.device, dtype=ref.dtype)
        payload = {"ref": ref, "centers": centers, "K": self.K, "ct": self.ct, "seed": seed,
                   "slot": init, "_generator": self.generator}
        stats = self._stats(self._round("init_stats", payload).sums["stats"])
        weights, params, _ = m_step(stats, ref, self.ct, self.reg_covar)
        params, weights = _base.apply_user_params(params, weights, self.given)
        personal = self.personalize and "weights" not in self.given
        if self.personalize and not personal:  # the user's weights start every client
            self._round("set_weights", {"_weights": {}, "default": weights, "slot": init})
        return {"params": params, "weights": weights, "slot": init}

    def warm_state(self):
        params, weights, table = self.warm
        self._ref()
        # every client holds its starting weights in slot 0, as after an initialisation
        # (personal: its previous fit's row of the table; pooled: the shared weights)
        table = table if self.personalize else {}
        payload = {"_weights": table, "default": weights, "slot": 0}
        if table:  # the same table on the wire (Flower): rows and their client ids
            payload["table"] = np.stack([np.asarray(w) for w in table.values()])
            payload["table_ids"] = json.dumps([str(c) for c in table])
        self._round("set_weights", payload)
        return {"params": params, "weights": weights, "slot": 0}

    def step(self, state):
        params, weights = state["params"], state["weights"]
        payload = {**params_payload(params), "ref": self.ref, "slot": state["slot"],
                   "personal": self.personalize, "log_weights": torch.log(weights)}
        total = self._stats(self._round("estep", payload).sums["stats"])
        weights, params, empty = m_step(total, self.ref, self.ct, self.reg_covar,
                                        previous=params)
        if bool(empty.any()) and not self.warned:
            warnings.warn(
                f"Components {torch.nonzero(empty).flatten().tolist()} received no "
                "responsibility mass; they keep their previous mean/covariance with weight "
                "~0. Use fewer components or a different initialisation.",
                UserWarning, stacklevel=4,
            )
            self.warned = True
        return ({"params": params, "weights": weights, "slot": state["slot"]},
                float(total.loglik / total.n))

    def client_weights(self, state) -> dict:
        """Client id -> (weights, n_samples) of the run ``state`` (personal or pooled)."""
        res = self._round("weights", {"slot": state["slot"]}).each
        out = {}
        for cid, v in res.items():
            w = np.asarray(torch.as_tensor(v["weights"]).cpu())
            if not self.personalize:
                w = state["weights"].cpu().numpy()
            out[cid] = (w, int(np.asarray(v["n"]).reshape(-1)[0]))
        return out


__all__ = ["GMMProgram", "run_driver", "log_weights_from"]
