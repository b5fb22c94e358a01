"""One rank of the torch.distributed test (run as a subprocess by test_engines.py)."""

import os
import sys
import warnings

import numpy as np
import torch
import torch.distributed as dist

from probest.datasets import make_federated_gmm
from probest.mixture import FederatedGaussianMixture


def main(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    b = make_federated_gmm(9, 300, 3, 4, concentration=0.7, random_state=0)
    mine = b.X[rank::world]  # this rank's clients
    init = np.load(os.path.join(out, "init.npz"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = FederatedGaussianMixture(
            3, engine="torch.distributed", personalize=False, tol=0.0, max_iter=30,
            weights_init=init["w"], means_init=init["m"], precisions_init=init["p"],
            device="cpu").fit(mine)
        g = FederatedGaussianMixture(3, engine="torch.distributed", random_state=0,
                                     device="cpu").fit(mine)
    np.savez(os.path.join(out, f"rank{rank}.npz"), means=f.means_, cov=f.covariances_,
             weights=f.weights_, gmeans=g.means_, gcw=g.client_weights_,
             ids=np.array([str(i) for i in g.client_ids_]))
    dist.barrier()  # every rank is done before any tears gloo down (else a racy abort)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
