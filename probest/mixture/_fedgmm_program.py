"""The server side of FedGMMClassifier's federated EM: its rounds, for any engine.

:class:`ClassifierProgram` is the program :func:`probest.mixture._driver.run_driver` runs for
:class:`~probest.mixture.FedGMMClassifier` (as :class:`~probest.mixture._driver.GMMProgram`
is for the Gaussian mixtures); :func:`labels_from_clients` is the round a Flower ServerApp,
which holds no data, learns the classes and sizes from.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from probest._validation import check_scale
from probest.mixture._driver import GMMProgram
from probest.mixture._stats import m_step
from probest.mixture._tasks import params_payload


def labels_from_clients(engine) -> tuple[np.ndarray, int, int]:
    """``(classes, n_features, n_samples)`` from every client's ``labels`` reply."""
    each = engine.round("labels", {}).each
    widths = {int(np.asarray(v["d"]).reshape(-1)[0]) for v in each.values()}
    if len(widths) != 1:
        raise ValueError(f"Mismatched feature counts across clients: {sorted(widths)}.")
    classes = np.unique(np.concatenate([np.asarray(json.loads(str(v["labels"])))
                                        for v in each.values()]))
    n_all = sum(int(np.asarray(v["n"]).reshape(-1)[0]) for v in each.values())
    return classes, widths.pop(), n_all


class ClassifierProgram:
    """Server side of FedGMM's EM (a program for :func:`probest.mixture._driver.run_driver`).

    Rounds: federated PCA moments (``phi`` an int), ``phi`` (clients map their rows), the
    Gaussian initialisation of :class:`~probest.mixture._driver.GMMProgram` on ``phi(x)``,
    ``clf_init`` (initial responsibilities with the symmetry-breaking association of input
    component ``a`` to expert ``a mod M2``), then per EM iteration one ``clf_estep`` round
    (clients update their tables and expert weights ``sum_a q[a, b]``, send the Gaussian
    statistics and the log-likelihood) and the experts' M-step rounds (``expert``: exact
    pooled weighted fits, :mod:`probest.mixture._experts`).
    """

    def __init__(self, est, engine, seed, generator):
        self.est, self.engine, self.seed = est, engine, int(seed)
        self.expert = est._expert
        self.gmm = GMMProgram(engine, n_components=est.n_input_components,
                              covariance_type=est.covariance_type, reg_covar=est.reg_covar,
                              init_params=est.init_params, personalize=False, seed=seed,
                              generator=generator)

    def _round(self, task, payload):
        return self.gmm._round(task, payload)

    def _expert_payload(self, states):
        e = self.expert
        extra = ({"C": e.C, "fit_intercept": e.fit_intercept, "n_classes": e.n_classes}
                 if e.kind == "logistic" else {})
        return {"experts": states, "_expert": e, "kind": e.kind, **extra}

    def setup_phi(self, parts, ids, n_all):
        est, phi = self.est, self.est.phi
        payload = {}
        if isinstance(phi, (int, np.integer)):
            k, d = int(phi), int(est.n_features_in_)
            if not 1 <= k <= d:
                raise ValueError(f"phi={k} PCA components must be in [1, n_features].")
            # federated PCA: clients send (n, sum x, sum x x^T); the server eigendecomposes
            s = self._round("moments", {}).sums
            n = float(s["n"][0])
            mean = (s["s1"] / n).cpu().numpy()
            cov = (s["s2"] / n).cpu().numpy() - np.outer(mean, mean)
            _, vecs = np.linalg.eigh(cov)
            est.phi_mean_ = mean
            est.phi_components_ = vecs[:, ::-1][:, :k].T.copy()
            payload = {"mean": est.phi_mean_, "components": est.phi_components_}
        elif phi is not None:
            payload = {"_phi": est._phi}
        if self.engine.name in ("local", "torch.distributed"):
            for name, arrs in (("X", parts), ("phi(X)", [est._phi(p) for p in parts])):
                for c, a in zip(ids, arrs, strict=True):
                    check_scale(a, owner=type(est).__name__, dtype=est.dtype_,
                                name=f"{name} of client {c!r}", n_rows=n_all)
        self._round("phi", payload)

    def _mstep_experts(self, states):
        solver = self.expert.solver(states, self.est.n_features_in_)
        while True:
            sums = self._round("expert", self._expert_payload(solver.states())).sums
            if solver.update(sums):
                return solver.result()

    def initialize(self, init):
        est = self.est
        g = self.gmm.initialize(init)
        M1, M2 = est.n_input_components, est.n_experts
        ref = self.gmm.ref
        D = torch.full((M1, M2), 0.1 / max(M2 - 1, 1), device=ref.device, dtype=ref.dtype)
        D[torch.arange(M1), torch.arange(M1) % M2] = 0.9
        self._round("clf_init", {**params_payload(g["params"]),
                                 "log_weights": torch.log(g["weights"]), "assoc": D})
        if self.expert.kind == "torch":
            states = [self.expert.initial_state(self.seed * 1000 + b) for b in range(M2)]
        else:
            states = [None] * M2
        return {"params": g["params"], "experts": self._mstep_experts(states)}

    def step(self, state):
        est = self.est
        payload = {**params_payload(state["params"]), "ref": self.gmm.ref,
                   **self._expert_payload(state["experts"])}
        sums = self._round("clf_estep", payload).sums
        total = self.gmm._stats(sums["stats"])
        _, params, _ = m_step(total, self.gmm.ref, est.covariance_type, est.reg_covar,
                              previous=state["params"])
        experts = self._mstep_experts(state["experts"])
        return {"params": params, "experts": experts}, float(sums["ll"][0] / sums["n"][0])

    def tables(self) -> dict:
        each = self._round("tables", {}).each
        return {c: (np.asarray(torch.as_tensor(v["table"]).cpu()),
                    int(np.asarray(v["n"]).reshape(-1)[0])) for c, v in each.items()}
