"""The client side of every federated round: one function per task, on one client's rows.

Every engine runs these same functions (in this process, on each rank, or inside a Flower
``ClientApp``), so the local, torch.distributed and Flower fits compute the same numbers.
A task reads the broadcast ``payload`` and the client's own state (``client.state``: its
personal weights, its current expert weights -- they never leave the client) and returns
``{"sum": {...additive...}, "each": {...per client...}}``.

Payload keys starting with ``_`` hold Python objects (a ``phi`` callable, a torch expert)
and exist only in in-process engines.
"""

from __future__ import annotations

import json

import numpy as np
import torch

from probest.mixture._em import (
    ChunkedData,
    _data_sum,
    client_summary,
    hard_stats,
    log_weights_from,
    random_stats,
)
from probest.mixture._stats import GaussParams, e_step_stats, log_gaussian_prob, stats_from_resp


class Client:
    """One client's rows (host arrays), their device copy and its private state.

    ``data`` is what initialisation reads and ``em_data`` what the E-step reads: the same
    rows, except that with missing entries (NaN, ``GaussianMixture(missing="marginalize")``)
    initialisation sees the column-mean-filled rows and the E-step marginalises the
    missing coordinates.
    """

    def __init__(self, cid, X, y=None, sample_weight=None, *, index=0, device="cpu",
                 dtype=torch.float64, batch_size=None, width=1):
        self.id, self.index = cid, int(index)
        self.X, self.y, self.sample_weight = X, y, sample_weight
        self.device, self.dtype = device, dtype
        self.batch_size, self.width = batch_size, width
        kw = dict(device=device, dtype=dtype, batch_size=batch_size, width=width)
        if isinstance(X, np.ndarray) and X.dtype.kind == "f" and np.isnan(X).any():
            from probest.mixture._missing import MissingData, mean_filled

            self.data = ChunkedData(mean_filled(X), sample_weight, **kw)
            self.em_data = MissingData(X, sample_weight, **kw)
        else:
            self.data = self.em_data = ChunkedData(X, sample_weight, **kw)
        self.state: dict = {}

    @property
    def n_samples(self) -> int:
        return self.data.n_samples


def params_payload(params: GaussParams) -> dict:
    return {"means": params.means, "cov": params.covariances,
            "pc": params.precisions_cholesky, "ct": params.covariance_type}


def _params(p: dict, like) -> GaussParams:
    def t(v):
        return torch.as_tensor(v, device=like.device, dtype=like.dtype)

    return GaussParams(t(p["means"]), t(p["cov"]), t(p["pc"]), str(p["ct"]))


def _t(client, v):
    return torch.as_tensor(v, device=client.device, dtype=client.dtype)


# ------------------------------------------------------------------ Gaussian-mixture tasks
def _data_sum_task(p, c):
    tot, n = _data_sum([c.data])
    return {"sum": {"x": tot, "n": tot.new_tensor([n])}}


def _rows(p, c):
    rng = np.random.default_rng(int(p["seed"]))
    mr = p.get("max_rows")
    rows, w = c.data.sample_rows_weighted(None if mr is None else int(mr), rng)
    return {"each": {"rows": rows} if w is None else {"rows": rows, "weights": w}}


def _summary(p, c):
    rng = np.random.default_rng(int(p["seed"]))
    mr = p.get("max_rows")
    X = c.data.sample_rows(None if mr is None else int(mr), rng)
    cents, counts = client_summary(X, int(p["K"]), int(p["seed"]) + c.index)
    return {"each": {"centers": cents, "counts": counts}}


def _init_stats(p, c):
    ref = _t(c, p["ref"])
    ct = str(p["ct"])
    if p.get("centers") is None:  # init_params="random"
        gen = p.get("_generator")
        if gen is None:
            gen = torch.Generator(device=c.device).manual_seed(
                (int(p["seed"]) + 7919 * c.index) % (2**63 - 1))
        st = random_stats(c.data, int(p["K"]), ref, ct, gen)
    else:
        st = hard_stats(c.data, _t(c, p["centers"]), ref, ct)
    slot = f"lw{int(p['slot'])}"
    c.state[slot] = log_weights_from(st.nk)
    return {"sum": {"stats": st}}


def _set_weights(p, c):
    """Every client's starting weights: ``default`` (e.g. ``weights_init``), or its row of
    a previous fit's personal weights (a warm start): the in-process table ``_weights``
    (client id -> row) or, on the wire, ``table`` with the JSON list ``table_ids``."""
    table = p.get("_weights")
    if table is None and p.get("table_ids") is not None:
        table = dict(zip(json.loads(str(p["table_ids"])), np.asarray(p["table"]), strict=True))
    table = table or {}
    w = table.get(c.id, table.get(str(c.id), p["default"]))
    c.state[f"lw{int(p['slot'])}"] = torch.log(_t(c, w))
    return {}


def _estep(p, c):
    ref = p["ref"]
    if not isinstance(ref, torch.Tensor):  # off the wire: keep one tensor per value, as
        new, old = _t(c, ref), c.state.get("ref")  # e_step_stats caches features per ref
        ref = old if old is not None and torch.equal(old, new) else new
        c.state["ref"] = ref
    params = _params(p, ref)
    slot = f"lw{int(p['slot'])}"
    lw = c.state[slot] if bool(p["personal"]) else _t(c, p["log_weights"])
    st = e_step_stats(c.em_data, lw, params, ref)
    if bool(p["personal"]):
        c.state[slot] = log_weights_from(st.nk)
    return {"sum": {"stats": st}}


def _weights(p, c):
    lw = c.state[f"lw{int(p['slot'])}"]
    return {"each": {"weights": lw.exp(), "n": np.array([c.n_samples])}}


# ------------------------------------------------------------------ classifier tasks
def _moments(p, c):
    X = torch.as_tensor(np.asarray(c.X), dtype=torch.float64)
    return {"sum": {"n": X.new_tensor([X.shape[0]]), "s1": X.sum(0), "s2": X.T @ X}}


def _labels(p, c):
    """The client's label set (JSON), rows and features: what a Flower ServerApp, which
    holds no data, learns ``classes_`` and ``n_features_in_`` from."""
    y = np.asarray(c.y)
    labels = [v.item() if isinstance(v, np.generic) else v for v in np.unique(y)]
    return {"each": {"labels": json.dumps(labels), "n": np.array([c.n_samples]),
                     "d": np.array([np.asarray(c.X).shape[1]])}}


def _set_classes(p, c):
    """Map the client's labels to indices of the global ``classes_`` (``_classes`` in
    process, ``classes`` as JSON on the wire)."""
    classes = p.get("_classes")
    if classes is None:
        classes = np.asarray(json.loads(p["classes"]))
    y = np.asarray(c.y)
    idx = np.searchsorted(classes, y).clip(0, len(classes) - 1)
    if not np.array_equal(np.asarray(classes)[idx], y):
        raise ValueError(f"client {c.id!r} has labels outside classes_ {list(classes)}.")
    c.y = idx
    c.state["y_index"] = torch.as_tensor(idx, dtype=torch.float64)
    return {}


def restore(c) -> None:
    """Rebuild what earlier rounds derived on this client, from ``c.state`` (a Flower
    ClientApp runs every message in a new process): label indices and ``phi(x)``."""
    if "y_index" in c.state:
        c.y = c.state["y_index"].cpu().numpy().astype(np.int64)
    if "phi.identity" in c.state:
        _phi({}, c)
    elif "phi.mean" in c.state:
        _phi({"mean": c.state["phi.mean"].cpu().numpy(),
              "components": c.state["phi.components"].cpu().numpy()}, c)


def _phi(p, c):
    X = np.asarray(c.X)
    if p.get("_phi") is not None:
        Z = np.asarray(p["_phi"](X), dtype=np.float64)
    elif p.get("components") is not None:
        mean, comps = np.asarray(p["mean"]), np.asarray(p["components"])
        Z = (X - mean) @ comps.T
        c.state["phi.mean"] = torch.as_tensor(mean, dtype=torch.float64)
        c.state["phi.components"] = torch.as_tensor(comps, dtype=torch.float64)
    else:
        Z = X
        c.state["phi.identity"] = torch.ones(1, dtype=torch.float64)
    c.Z = Z
    c.data = c.em_data = ChunkedData(Z, device=c.device, dtype=c.dtype, width=1)
    c.Xt = torch.as_tensor(X, device=c.device, dtype=c.dtype)
    c.yt = torch.as_tensor(np.asarray(c.y), device=c.device, dtype=torch.long)
    return {"each": {"Z": Z} if p.get("return_z") else None}


def _expert(p, c):
    if p.get("_expert") is not None:
        return p["_expert"]
    from probest.mixture._experts import LogisticExpert

    return LogisticExpert(float(p["C"]), bool(p["fit_intercept"]), int(p["n_classes"]))


def _clf_init(p, c):
    Z = c.data._X
    params = _params(p, Z)
    lg = log_gaussian_prob(Z, params) + _t(c, p["log_weights"])
    r = torch.softmax(lg, 1)
    resp = r.unsqueeze(2) * _t(c, p["assoc"])  # (n, M1, M2)
    c.state["table"] = resp.mean(0)
    c.state["W"] = resp.sum(1)
    return {}


def _expert_loglik(expert, states, c):
    lp = torch.stack([expert.log_proba(s, c.Xt) for s in states], 1)  # (n, M2, C)
    idx = c.yt.view(-1, 1, 1).expand(-1, lp.shape[1], 1)
    return lp.gather(2, idx).squeeze(2)


def _clf_estep(p, c):
    Z = c.data._X
    params = _params(p, Z)
    expert = _expert(p, c)
    logq = (torch.log(c.state["table"]) + log_gaussian_prob(Z, params).unsqueeze(2)
            + _expert_loglik(expert, p["experts"], c).unsqueeze(1))
    norm = torch.logsumexp(logq.flatten(1), 1)
    q = torch.exp(logq - norm[:, None, None])
    st = stats_from_resp(Z, q.sum(2), _t(c, p["ref"]), params.covariance_type)
    tab = q.mean(0) + 10 * torch.finfo(q.dtype).eps
    c.state["table"] = tab / tab.sum()
    c.state["W"] = q.sum(1)
    return {"sum": {"stats": st, "ll": norm.sum().reshape(1),
                    "n": norm.new_tensor([Z.shape[0]])}}


def _expert_stats(p, c):
    expert = _expert(p, c)
    out = expert.client_stats(p["experts"], c.Xt, c.yt, c.state["W"])
    return {"sum": out}


def _tables(p, c):
    return {"each": {"table": c.state["table"], "n": np.array([c.n_samples])}}


TASKS = {
    "data_sum": _data_sum_task, "rows": _rows, "summary": _summary,
    "init_stats": _init_stats, "set_weights": _set_weights, "estep": _estep,
    "weights": _weights, "moments": _moments, "phi": _phi, "clf_init": _clf_init,
    "clf_estep": _clf_estep, "expert": _expert_stats, "tables": _tables,
    "labels": _labels, "set_classes": _set_classes,
}


#: tasks whose replies carry per-client parts ("each")
EACH_TASKS = frozenset({"rows", "summary", "weights", "tables", "labels"})


def run_task(task: str, payload: dict, client: Client) -> dict:
    try:
        fn = TASKS[task]
    except KeyError:
        raise ValueError(f"Unknown federated task {task!r}.") from None
    return fn(payload, client) or {}
