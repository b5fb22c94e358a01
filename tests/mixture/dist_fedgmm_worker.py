"""One rank of the FedGMMClassifier torch.distributed test (run by test_engines.py)."""

import os
import sys
import warnings

import numpy as np
import torch
import torch.distributed as dist

from probest.mixture import FedGMMClassifier

# the federation and the settings shared with the in-process reference fit in the test
N_CLIENTS, PER_RANK = 6, 2
KW = dict(n_input_components=3, n_experts=2, max_iter=8, tol=0.0, random_state=0,
          device="cpu")


def configs():
    """Default logistic-regression experts; torch experts with a federated-PCA phi."""
    return {"lr": KW, "torch": dict(KW, expert=torch.nn.Linear(3, 2), phi=2)}


def federation():
    from probest.datasets import make_federated_gmm

    b = make_federated_gmm(N_CLIENTS, 150, 3, 3, labels=True, n_classes=2, label_noise=0.05,
                           concentration=0.5, random_state=1)
    return list(b.X), list(b.y)


def main(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    X, y = federation()
    mine = slice(rank * PER_RANK, (rank + 1) * PER_RANK)  # contiguous block of clients
    res = {}
    for name, kw in configs().items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tol=0: ConvergenceWarning by design
            f = FedGMMClassifier(engine="torch.distributed", **kw).fit(X[mine], y[mine])
        fitted = dict(means=f.means_, cov=f.covariances_, weights=f.weights_,
                      cw=f.client_weights_, n=f.client_n_samples_,
                      proba=f.predict_proba(X[rank * PER_RANK], client=0),
                      hist=np.array([h["objective"] for h in f.history_]))
        if f.phi is not None:
            fitted["phi"] = f.phi_components_
        for b, st in enumerate(f.experts_):
            fitted.update({f"e{b}_{k}": v for k, v in st.items()})
        res.update({f"{name}/{k}": v for k, v in fitted.items()})
    # bad usage: rank 2's clients have one feature fewer -> every rank raises, none hangs
    Xbad = [x[:, :2] if rank == 2 else x for x in X[mine]]
    try:
        FedGMMClassifier(engine="torch.distributed", **KW).fit(Xbad, y[mine])
        res["err"] = np.array("no error")
    except ValueError as e:
        res["err"] = np.array(str(e))
    np.savez(os.path.join(out, f"fedgmm{rank}.npz"), **res)
    dist.barrier()  # every rank is done before any tears gloo down (else a racy abort)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
