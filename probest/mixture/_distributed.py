"""torch.distributed engine: each rank holds some clients; statistics are all-reduced (SUM).

Every rank calls ``FederatedGaussianMixture(engine="torch.distributed").fit(its_clients)``
inside an initialised process group (``torchrun`` or ``init_process_group``; gloo on CPU,
nccl on GPU).  Every collective below is called the same number of times on every rank,
so ranks never wait on each other forever; a rank that dies makes the collectives raise
(gloo/nccl timeouts) instead of producing a corrupted model.
"""

from __future__ import annotations

import torch

from probest.mixture._stats import SuffStats


class TorchDistributedEngine:
    """SUM all-reduce of flattened statistics; object gather/broadcast for initialisation."""

    def __init__(self) -> None:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise ValueError(
                "engine='torch.distributed' needs an initialised process group: call "
                "torch.distributed.init_process_group('gloo' or 'nccl', ...) on every rank "
                "first (torchrun does it for you), or use engine='local'."
            )
        self.dist = dist
        self.rank = dist.get_rank()
        self.world_size = dist.get_world_size()
        self.backend = dist.get_backend()

    def allreduce(self, t: torch.Tensor) -> torch.Tensor:
        dev = t.device
        # gloo reduces CPU tensors; nccl reduces CUDA tensors
        wire = t.detach().cpu().clone() if self.backend == "gloo" else t.detach().clone()
        self.dist.all_reduce(wire, op=self.dist.ReduceOp.SUM)
        return wire.to(dev)

    def allreduce_stats(self, s: SuffStats) -> SuffStats:
        return s.unflatten(self.allreduce(s.flatten()))

    def gather(self, obj) -> list:
        out = [None] * self.world_size
        self.dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj):
        box = [obj]
        self.dist.broadcast_object_list(box, src=0)
        return box[0]
