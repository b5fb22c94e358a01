"""iLA-SDP vs K-means, SDP K-means and EM on heterogeneous Gaussian clusters (setting C),
then the fitted mixture used for new points and inside Pyro.

    python examples/cluster_heterogeneous.py [--quick]
"""

import argparse
import time
import warnings

import pyro
import torch
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

from probest.cluster import ILASDPClustering, SDPKMeans
from probest.datasets import make_heterogeneous_blobs
from probest.metrics import misclustering_error


def main(quick: bool) -> None:
    n = 120 if quick else 400
    X, y = make_heterogeneous_blobs(n, 10, setting="C", random_state=0)
    budget = dict(sdp_max_iter=30) if quick else {}
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the quick budget may stop the solver early
        for name, est in [
            ("iLA-SDP", ILASDPClustering(4, solver="nlr", max_iter=3 if quick else 10,
                                         random_state=0, **budget)),
            ("SDP K-means", SDPKMeans(4, solver="nlr", random_state=0, **budget)),
            ("KMeans", KMeans(4, n_init=10, random_state=0)),
            ("GaussianMixture", GaussianMixture(4, random_state=0)),
        ]:
            t = time.perf_counter()
            lab = est.fit_predict(X)
            rows.append((name, misclustering_error(y, lab), time.perf_counter() - t, est))
    for name, err, sec, _ in rows:
        print(f"{name:16s} mis-clustering error {err:.3f}  ({sec:.1f} s)")
    ila = rows[0][3]
    print("history (loglik, labels changed):",
          [(round(h["loglik"], 1), h["n_changed"]) for h in ila.history_])
    print("certificate of the last SDP:", {k: v for k, v in ila.certificate_.items()
                                           if isinstance(v, float)})
    Xnew, ynew = make_heterogeneous_blobs(200, 10, setting="C", random_state=1)
    print(f"new points: error {misclustering_error(ynew, ila.predict(Xnew)):.3f}")

    def model(x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("x", ila.to_pyro(), obs=x)

    tr = pyro.poutine.trace(model).get_trace(torch.tensor(Xnew))
    print(f"Pyro log-likelihood of the new points: {float(tr.log_prob_sum()):.1f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    main(ap.parse_args().quick)
