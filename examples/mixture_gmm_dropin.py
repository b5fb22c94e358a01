"""GaussianMixture as a drop-in for scikit-learn's, streamed from a memmap, used in Pyro.

    python examples/mixture_gmm_dropin.py [--quick]
"""

import argparse
import tempfile
import time

import numpy as np
import pyro
import torch
from sklearn.mixture import GaussianMixture as SkGMM

from probest.mixture import GaussianMixture


def main(quick: bool) -> None:
    n, d, K = (5_000 if quick else 100_000), 8, 6
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)) + 4.0 * rng.normal(size=(K, d))[rng.integers(0, K, n)]

    t0 = time.perf_counter()
    sk = SkGMM(K, random_state=0).fit(X)
    t_sk = time.perf_counter() - t0
    t0 = time.perf_counter()
    gmm = GaussianMixture(K, random_state=0, device="auto").fit(X)  # same parameters
    t_pb = time.perf_counter() - t0
    print(f"mean log-lik: probest {gmm.score(X):.5f} ({t_pb:.2f}s), sklearn {sk.score(X):.5f} "
          f"({t_sk:.2f}s); BIC {gmm.bic(X):.1f} vs {sk.bic(X):.1f}")

    # data larger than memory: stream sufficient statistics from a memmap, chunk by chunk
    with tempfile.TemporaryDirectory() as tmp:
        mm = np.lib.format.open_memmap(f"{tmp}/X.npy", mode="w+", dtype=np.float64,
                                       shape=X.shape)
        mm[:] = X
        streamed = GaussianMixture(K, random_state=0, batch_size=1024).fit(mm)
        print(f"streamed (batch_size=1024) mean log-lik {streamed.score(X):.5f}")
        del mm

    # the fitted mixture inside a Pyro model: new data arrive shifted by an unknown offset;
    # the frozen GMM is the density of the unshifted data and we learn the offset by MLE
    true_shift = torch.linspace(-1.0, 1.0, d, dtype=torch.float64)
    X_new = torch.tensor(X[:500]) + true_shift
    shift = torch.zeros(d, dtype=torch.float64, requires_grad=True)
    density = gmm.to_pyro()

    def model(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", density, obs=x - shift)

    opt = torch.optim.Adam([shift], lr=0.05)
    for _ in range(100 if quick else 400):
        opt.zero_grad()
        loss = -pyro.poutine.trace(model).get_trace(X_new).log_prob_sum() / X_new.shape[0]
        loss.backward()
        opt.step()
    err = float((shift.detach() - true_shift).abs().max())
    print(f"offset recovered through the Pyro model: max error {err:.3f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    main(ap.parse_args().quick)
