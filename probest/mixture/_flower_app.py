"""Federated EM on Flower's Message API: a ``ServerApp`` driving the EM rounds, a ``ClientApp``
answering with sufficient statistics (imported only where Flower runs).

* :class:`FlowerEngine` is the Flower engine of :mod:`probest.mixture._engines`: a round is
  one ``Grid.send_and_receive`` of ``Message``s (``message_type="query.probest"``) whose
  ``RecordDict`` holds the task name and the payload (``ArrayRecord`` + ``ConfigRecord``);
  replies are added over the clients that answered.  A reply carrying an error (e.g.
  ``NODE_UNAVAILABLE`` for a node that died, or no reply before ``round_timeout``) is
  recorded in ``dropped`` and the round uses the replies that arrived; fewer than
  ``min_clients`` replies stop the fit with ``RuntimeError``.
* ``server_app`` reads the estimator's class and parameters from the run config, runs the
  same program (:class:`~probest.mixture._driver.GMMProgram`, or the classifier's) as
  ``engine="local"`` through the estimator's ``_fit_engine`` and writes the fitted
  estimator (``probest.save``) to the run config's ``out`` path.
* ``client_app`` holds one SuperNode's data (``--node-config 'data-path="X.npy"
  client-id="a" partition-id=0'``, plus ``labels-path="y.npy"`` for ``FedGMMClassifier``)
  and runs :func:`probest.mixture._tasks.run_task`; the client's state (personal weights,
  weight tables, label indices, the ``phi`` map) persists between messages in
  ``context.state``.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from probest._optional import import_optional

import_optional("flwr", extra="federated", purpose="engine='flower'")
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402

from probest.mixture._engines import RoundResult, add_replies  # noqa: E402
from probest.mixture._stats import SuffStats  # noqa: E402

MESSAGE_TYPE = "query.probest"


# ----------------------------------------------------------------------------- wire format
def _np(v) -> np.ndarray:
    if isinstance(v, SuffStats):
        v = v.flatten()
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(v, dtype=np.float64))


def encode(d: dict, prefix: str) -> RecordDict:
    """A payload / reply part as ``{prefix}.arrays`` (ArrayRecord) + ``{prefix}.config``."""
    arrays, config, none = {}, {}, []
    for k, v in d.items():
        if k.startswith("_"):
            continue  # in-process objects never travel
        if v is None:
            none.append(k)
        elif isinstance(v, (str, bool, int, float)) and not isinstance(v, np.generic):
            config[k] = v
        elif isinstance(v, (list, tuple)) and v and isinstance(v[0], dict):
            for b, st in enumerate(v):
                for kk, vv in st.items():
                    arrays[f"{k}.{b}.{kk}"] = Array(_np(vv))
            config[f"{k}.__len__"] = len(v)
        else:
            arrays[k] = Array(_np(v))
    config["__none__"] = ",".join(none)
    return RecordDict({f"{prefix}.arrays": ArrayRecord(arrays),
                       f"{prefix}.config": ConfigRecord(config)})


def decode(rd: RecordDict, prefix: str) -> dict:
    arrays = rd.array_records[f"{prefix}.arrays"]
    config = dict(rd.config_records[f"{prefix}.config"])
    out: dict = {}
    for k in [k for k in config.get("__none__", "").split(",") if k]:
        out[k] = None
    config.pop("__none__", None)
    lists = {k[: -len(".__len__")]: int(v) for k, v in config.items() if k.endswith(".__len__")}
    for k, n in lists.items():
        out[k] = [{} for _ in range(n)]
    for k, v in config.items():
        if not k.endswith(".__len__"):
            out[k] = v
    for k, a in arrays.items():
        head = k.split(".", 2)
        if len(head) == 3 and head[0] in lists:
            out[head[0]][int(head[1])][head[2]] = a.numpy()
        else:
            out[k] = a.numpy()
    return out


# ----------------------------------------------------------------------------- server side
class FlowerEngine:
    """Aggregate-statistics rounds over a Flower ``Grid`` (one message per SuperNode)."""

    rank, world_size, name = 0, 1, "flower"

    def __init__(self, grid: Grid, *, min_clients: int, round_timeout: float,
                 wait_for: float = 60.0, poll: float = 0.05):
        self.grid, self.poll = grid, float(poll)
        self.min_clients = int(min_clients)
        self.timeout = float(round_timeout)
        self.n_rounds = 0
        self.latencies: list[float] = []
        start = time.monotonic()
        while True:  # the SuperNodes connect in their own time
            self.nodes = sorted(grid.get_node_ids())
            if len(self.nodes) >= self.min_clients or time.monotonic() - start > wait_for:
                break
            time.sleep(0.2)
        if len(self.nodes) < self.min_clients:
            raise RuntimeError(f"only {len(self.nodes)} Flower SuperNodes connected, fewer "
                               f"than min_clients={self.min_clients}")
        self.names: dict[int, str] = {}
        self.alive = list(self.nodes)

    def n_clients_total(self) -> int:
        return len(self.alive)

    def _send_and_receive(self, msgs) -> list:
        """``Grid.send_and_receive`` with a fast poll: Flower's own sleeps 3 s between
        pulls, which quantises every EM round to multiples of 3 s; this one pulls every
        ``poll`` seconds (doubling up to 0.5 s) until every reply is in or
        ``round_timeout`` has passed."""
        pending = set(self.grid.push_messages(msgs))
        end, poll, out = time.monotonic() + self.timeout, self.poll, []
        while pending:
            got = list(self.grid.pull_messages(pending))
            out.extend(got)
            pending.difference_update(m.metadata.reply_to_message_id for m in got)
            if not pending or time.monotonic() >= end:
                break
            time.sleep(poll)
            poll = min(0.5, 2 * poll)
        return out

    def gather(self, obj) -> list:
        return [obj]

    def broadcast(self, obj):
        return obj

    def round(self, task: str, payload: dict) -> RoundResult:
        from probest.mixture._tasks import EACH_TASKS

        self.n_rounds += 1
        def content():
            rd = encode(payload, "payload")
            rd["task"] = ConfigRecord({"task": task})
            return rd

        msgs = [Message(content=content(), dst_node_id=n, message_type=MESSAGE_TYPE,
                        group_id=str(self.n_rounds)) for n in self.alive]
        t0 = time.perf_counter()
        replies = {m.metadata.src_node_id: m for m in self._send_and_receive(msgs)}
        self.latencies.append(time.perf_counter() - t0)
        dropped, got = [], []
        for n in list(self.alive):
            m = replies.get(n)
            if m is None or m.has_error():
                reason = ("no reply within round_timeout" if m is None else
                          f"error code {m.error.code}: {m.error.reason}")
                dropped.append((self.n_rounds, self.names.get(n, str(n)), reason))
                self.alive.remove(n)
                continue
            cid = str(m.content.config_records["meta"]["client-id"])
            self.names[n] = cid
            got.append((cid, m))
        if len(got) < self.min_clients:
            raise RuntimeError(
                f"Flower round {self.n_rounds} ({task}): {len(got)} clients answered, fewer "
                f"than min_clients={self.min_clients}; dropped: {dropped}")
        got.sort(key=lambda t: t[0])  # order-independent sums
        sums, each = None, {}
        for cid, m in got:
            if "sum.arrays" in m.content.array_records:
                part = {k: torch.as_tensor(v) for k, v in decode(m.content, "sum").items()}
                sums = add_replies(sums, part) if part else sums
            if task in EACH_TASKS:
                each[cid] = decode(m.content, "each")
        return RoundResult(sums or {}, each, [c for c, _ in got], dropped)


server_app = ServerApp()


@server_app.main()
def _server_main(grid: Grid, context: Context) -> None:
    import json

    import probest
    from probest._persist import class_name, construct
    from probest.mixture import FederatedGaussianMixture

    cfg = dict(context.run_config)
    # the model files' checked constructor: a probest estimator class, its known
    # parameters, plain JSON values, arrays (given starting values) decoded as data
    cls = str(cfg.get("estimator-class", class_name(FederatedGaussianMixture)))
    est = construct(cls, json.loads(str(cfg["estimator"])))
    if not hasattr(est, "_fit_engine"):
        raise ValueError(f"{cls} has no federated fit.")
    if cfg.get("previous"):  # warm start: continue the model saved there (probest.save)
        prev = probest.load(str(cfg["previous"]))
        if type(prev) is not type(est):
            raise ValueError(f"previous model is a {type(prev).__name__}, not a {cls}.")
        for k, v in prev._fitted_items().items():
            setattr(est, k, v)
    engine = FlowerEngine(grid, min_clients=int(cfg["min-clients"]),
                          round_timeout=float(est.round_timeout))
    t0 = time.perf_counter()
    est._fit_engine(engine)
    side = {"fit_seconds": time.perf_counter() - t0, "round_seconds": engine.latencies,
            "dropped": [list(d) for d in est.dropped_clients_]}
    est.dropped_clients_ = []
    probest.save(est, str(cfg["out"]))
    with open(str(cfg["out"]) + ".json", "w") as f:
        json.dump(side, f)


# ----------------------------------------------------------------------------- client side
client_app = ClientApp()
_DATA: dict = {}


def _load(path: str) -> np.ndarray:
    if path not in _DATA:
        _DATA[path] = np.load(path, allow_pickle=False)  # data only, never code
    return _DATA[path]


def _load_client(node_config, state: RecordDict, node_id):
    from probest.mixture._tasks import Client, restore

    labels = node_config.get("labels-path")  # FedGMMClassifier: this node's labels
    cid = str(node_config.get("client-id", node_id))
    c = Client(cid, _load(str(node_config["data-path"])),
               None if labels is None else _load(str(labels)),
               index=int(node_config.get("partition-id", 0)), device="cpu",
               dtype=torch.float64)
    st = state.array_records.get("probest-state")
    if st is not None:
        c.state = {k: torch.as_tensor(a.numpy()) for k, a in st.items()}
        restore(c)  # label indices and phi(x) from earlier rounds of this run
    return c


def answer(task: str, payload: dict, node_config, state: RecordDict, node_id) -> RecordDict:
    """One SuperNode's reply to a round: the task on its rows, its state kept in ``state``
    (Flower's ``context.state``) for the next message, which runs in a new process."""
    from probest.mixture._tasks import run_task

    c = _load_client(node_config, state, node_id)
    rep = run_task(task, payload, c)
    state.array_records["probest-state"] = ArrayRecord(
        {k: Array(_np(v)) for k, v in c.state.items() if isinstance(v, torch.Tensor)})
    content = RecordDict({"meta": ConfigRecord({"client-id": c.id})})
    for part in ("sum", "each"):
        if rep.get(part):
            for k, v in encode(rep[part], part).items():
                content[k] = v
    return content


@client_app.query("probest")
def _client_query(msg: Message, context: Context) -> Message:
    import os

    task = str(msg.content.config_records["task"]["task"])
    drop = context.node_config.get("drop-at-round")
    if drop is not None and int(msg.metadata.group_id) >= int(drop):
        # testing: the whole node dies in the middle of the fit (its SuperNode first)
        os.kill(os.getppid(), 9)
        os._exit(3)
    content = answer(task, decode(msg.content, "payload"), context.node_config, context.state,
                     context.node_id)
    return Message(content, reply_to=msg)
