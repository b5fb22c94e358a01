"""Engines: where the clients of a federated fit live, behind one small interface.

Every federated fit in :mod:`probest.mixture` is a sequence of *aggregate-statistics
rounds*.  In a round the server broadcasts a payload (parameters) with a task name; every
client runs the task on its own rows (:func:`probest.mixture._tasks.run_task`) and answers
with a reply dict; the engine adds the ``"sum"`` part of the replies over clients, keeps
the ``"each"`` part per client, and reports who answered::

    res = engine.round("estep", payload)
    res.sums["stats"], res.each[client_id], res.answered, res.dropped

Engines:

* :class:`LocalEngine` -- every client in this process (``engine="local"``).
* :class:`TorchDistributedEngine` -- each rank of an initialised process group holds some
  clients and runs the same server code; sums are all-reduced (SUM), per-client parts are
  all-gathered, so every rank takes the same decisions (``engine="torch.distributed"``).
* ``FlowerEngine`` (:mod:`probest.mixture._flower_impl`) -- the server is a Flower
  ``ServerApp``; a round is one ``Grid.send_and_receive`` of ``Message``s to the SuperNodes
  (``engine="flower"``).

The estimator never reads an engine's internals: it runs its rounds and sets its own
fitted attributes from what the rounds return.
"""

from __future__ import annotations

import dataclasses

import torch

from probest.mixture._stats import SuffStats


@dataclasses.dataclass
class RoundResult:
    """What one aggregate-statistics round returns to the server."""

    sums: dict  # reply["sum"] added over the clients that answered
    each: dict  # client id -> reply["each"]
    answered: list  # ids of the clients that answered, in order
    dropped: list = dataclasses.field(default_factory=list)  # (round, client, reason)


def add_replies(total: dict | None, part: dict) -> dict:
    if total is None:
        return dict(part)
    return {k: total[k] + v for k, v in part.items()}


class LocalEngine:
    """In-process clients: a round runs the task on each client and adds the replies."""

    rank, world_size, name = 0, 1, "local"

    def __init__(self, clients=()):
        self.clients = list(clients)
        self.n_rounds = 0

    @property
    def client_ids(self) -> list:
        return [c.id for c in self.clients]

    def n_clients_total(self) -> int:
        return len(self.clients)

    def _local_round(self, task, payload):
        from probest.mixture._tasks import run_task

        self.n_rounds += 1
        sums, each = None, {}
        for c in self.clients:
            rep = run_task(task, payload, c)
            if rep.get("sum"):
                sums = add_replies(sums, rep["sum"])
            if rep.get("each") is not None:
                each[c.id] = rep["each"]
        return sums or {}, each

    def round(self, task: str, payload: dict) -> RoundResult:
        sums, each = self._local_round(task, payload)
        return RoundResult(sums, each, self.client_ids)

    # object collectives (used by checks that run before any round)
    def gather(self, obj) -> list:
        return [obj]

    def broadcast(self, obj):
        return obj


class TorchDistributedEngine(LocalEngine):
    """SPMD over a process group: local sums, then SUM all-reduce; parts all-gathered."""

    name = "torch.distributed"

    def __init__(self, clients=()) -> None:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise ValueError(
                "engine='torch.distributed' needs an initialised process group: call "
                "torch.distributed.init_process_group('gloo' or 'nccl', ...) on every rank "
                "first (torchrun does it for you), or use engine='local'."
            )
        super().__init__(clients)
        self.dist = dist
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.backend = dist.get_backend()
        self._ids = None

    def n_clients_total(self) -> int:
        return int(sum(self.gather(len(self.clients))))

    def allreduce(self, t: torch.Tensor) -> torch.Tensor:
        dev = t.device
        # gloo reduces CPU tensors; nccl reduces CUDA tensors
        wire = t.detach().cpu().clone() if self.backend == "gloo" else t.detach().clone()
        self.dist.all_reduce(wire, op=self.dist.ReduceOp.SUM)
        return wire.to(dev)

    def round(self, task: str, payload: dict) -> RoundResult:
        from probest.mixture._tasks import EACH_TASKS

        if self._ids is None:  # once per fit: every rank holds clients, keys match
            counts = self.gather(self.client_ids)
            if any(len(c) == 0 for c in counts):
                raise ValueError("engine='torch.distributed': every rank must pass at least "
                                 "one client.")
            key = (lambda r, c: c) if self.world_size == 1 else (lambda r, c: (r, c))
            self._key = key
            self._ids = [key(r, c) for r, cs in enumerate(counts) for c in cs]
        sums, each = self._local_round(task, payload)
        # one SUM all-reduce of every statistic of the round, flattened in key order
        keys = sorted(sums)
        flat = [sums[k].flatten() if isinstance(sums[k], SuffStats)
                else torch.as_tensor(sums[k]).reshape(-1) for k in keys]
        out = {}
        if flat:
            dev = flat[0].device
            vec = self.allreduce(torch.cat([f.to(dev, torch.float64) for f in flat]))
            i = 0
            for k, f in zip(keys, flat, strict=True):
                part = vec[i:i + f.numel()].to(f.dtype)
                i += f.numel()
                v = sums[k]
                out[k] = (v.unflatten(part) if isinstance(v, SuffStats)
                          else part.reshape(torch.as_tensor(v).shape))
        all_each = {}
        if task in EACH_TASKS:
            parts = self.gather(each)
            all_each = {self._key(r, cid): v for r, p in enumerate(parts) for cid, v in p.items()}
        return RoundResult(out, all_each, list(self._ids))

    def gather(self, obj) -> list:
        out = [None] * self.world_size
        self.dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj):
        box = [obj]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]


def make_engine(name: str, clients):
    """The engine for ``engine=name`` over this process's ``clients``."""
    if name == "torch.distributed":
        return TorchDistributedEngine(clients)
    if name == "local":
        return LocalEngine(clients)
    raise ValueError(f"engine={name!r} is not an in-process engine.")
