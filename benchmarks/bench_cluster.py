"""probest.cluster vs scikit-learn: mis-clustering error and time.

1. Setting C (heterogeneous covariances, K=4, p=10): iLA-SDP (nlr), SDP K-means (nlr and
   cvxpy/SCS), KMeans, GaussianMixture (n_init 1 and 10), SpectralClustering, over seeds.
2. cvxpy's practical size: SCS time of the Peng–Wei SDP and of the LA-SDP vs n.
3. Real data with known classes: wine, iris, breast cancer (standardised), digits (10-D PCA
   of the standardised pixels).
4. nlr at scale: SDP K-means on n = 10,000 and 50,000 (p=20, K=5): time, error, certificate.

All methods run in one process on the same data, one thread.

    OMP_NUM_THREADS=1 python benchmarks/bench_cluster.py           # full (tens of minutes)
    OMP_NUM_THREADS=1 python benchmarks/bench_cluster.py --quick   # a few minutes
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from probest.cluster import ILASDPClustering, SDPKMeans
from probest.datasets import make_heterogeneous_blobs
from probest.metrics import misclustering_error

torch.set_num_threads(1)


def _methods(K, seed, n, cvxpy_max=150):
    out = {
        "iLA-SDP (nlr)": lambda X: ILASDPClustering(K, solver="nlr", device="cpu",
                                                    random_state=seed).fit(X).labels_,
        "SDP K-means (nlr)": lambda X: SDPKMeans(K, solver="nlr", device="cpu",
                                                 random_state=seed).fit(X).labels_,
        "KMeans n_init=1": lambda X: KMeans(K, n_init=1, random_state=seed).fit_predict(X),
        "KMeans n_init=10": lambda X: KMeans(K, n_init=10, random_state=seed).fit_predict(X),
        "GMM n_init=1": lambda X: GaussianMixture(K, random_state=seed).fit_predict(X),
        "GMM n_init=10": lambda X: GaussianMixture(K, n_init=10,
                                                   random_state=seed).fit_predict(X),
        "SpectralClustering": lambda X: SpectralClustering(
            K, affinity="nearest_neighbors", random_state=seed).fit_predict(X),
    }
    if n <= cvxpy_max:
        out["SDP K-means (cvxpy)"] = lambda X: SDPKMeans(K, solver="cvxpy",
                                                         random_state=seed).fit(X).labels_
    return out


def _run(X, y, K, seed, skip=()):
    res = {}
    for name, fn in _methods(K, seed, len(X)).items():
        if name in skip:
            continue
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            lab = fn(X)
        res[name] = (misclustering_error(y, lab), time.perf_counter() - t)
    return res


def setting_c(sizes, seeds):
    print("\n## setting C (K=4, p=10): mis-clustering error mean / max over seeds, mean time")
    for n in sizes:
        rows: dict[str, list] = {}
        for seed in seeds:
            X, y = make_heterogeneous_blobs(n, 10, setting="C", random_state=seed)
            for k, v in _run(X, y, 4, seed).items():
                rows.setdefault(k, []).append(v)
        print(f"\nn={n}, seeds {list(seeds)}")
        print("| method | error mean | error max | time (s) |\n|---|---|---|---|")
        for k, v in rows.items():
            e = np.array([a for a, _ in v])
            print(f"| {k} | {e.mean():.3f} | {e.max():.3f} | {np.mean([b for _, b in v]):.2f} |")


def cvxpy_limit(sizes_pw, sizes_la):
    print("\n## cvxpy (SCS) time vs n (setting C rows, K=4)")
    print("| problem | n | time (s) | error |\n|---|---|---|---|")
    for n in sizes_pw:
        X, y = make_heterogeneous_blobs(n, 10, setting="C", random_state=0)
        t = time.perf_counter()
        lab = SDPKMeans(4, solver="cvxpy", random_state=0).fit(X).labels_
        print(f"| Peng–Wei | {n} | {time.perf_counter() - t:.1f} | "
              f"{misclustering_error(y, lab):.3f} |", flush=True)
    for n in sizes_la:
        X, y = make_heterogeneous_blobs(n, 10, setting="C", random_state=0)
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lab = ILASDPClustering(4, solver="cvxpy", max_iter=3, random_state=0).fit(X).labels_
        print(f"| iLA-SDP (3 LA-SDPs) | {n} | {time.perf_counter() - t:.1f} | "
              f"{misclustering_error(y, lab):.3f} |", flush=True)


def real_data(quick):
    from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    sets = [("iris (standardised)", load_iris), ("wine (standardised)", load_wine),
            ("breast cancer (standardised)", load_breast_cancer)]
    print("\n## real data: mis-clustering error (time s)")
    table = {}
    for name, loader in sets:
        X, y = loader(return_X_y=True)
        X = StandardScaler().fit_transform(X)
        table[name] = _run(X, y, len(np.unique(y)), 0)
        print(name, {k: round(v[0], 3) for k, v in table[name].items()}, flush=True)
    if not quick:
        X, y = load_digits(return_X_y=True)
        X = PCA(10, random_state=0).fit_transform(StandardScaler().fit_transform(X))
        table["digits (10-D PCA)"] = _run(X, y, 10, 0)
        print("digits", {k: round(v[0], 3) for k, v in table["digits (10-D PCA)"].items()})
    names = list(next(iter(table.values())))
    print("\n| data | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for d, r in table.items():
        print(f"| {d} | " + " | ".join(f"{r[m][0]:.3f} ({r[m][1]:.1f})" if m in r else "-"
                                       for m in names) + " |")


def scale(sizes):
    print("\n## nlr at scale: SDP K-means, p=20, K=5, separation 6")
    print("| n | time (s) | error | KMeans n_init=10 error | max abs(Z1-1) | steps |"
          "\n|---|---|---|---|---|---|")
    for n in sizes:
        X, y = make_heterogeneous_blobs(n, 20, centers=5, separation=6.0, random_state=0)
        t = time.perf_counter()
        est = SDPKMeans(5, solver="nlr", device="cpu", random_state=0).fit(X)
        dt = time.perf_counter() - t
        km = KMeans(5, n_init=10, random_state=0).fit_predict(X)
        c = est.certificate_
        print(f"| {n} | {dt:.1f} | {misclustering_error(y, est.labels_):.4f} | "
              f"{misclustering_error(y, km):.4f} | {c['constraint_violation']:.1e} | "
              f"{c['n_steps']} |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", choices=("all", "c", "cvxpy", "real", "scale"), default="all")
    a = ap.parse_args()
    if a.part in ("all", "c"):
        setting_c([200] if a.quick else [200, 400], range(2) if a.quick else range(5))
    if a.part in ("all", "cvxpy"):
        cvxpy_limit([60] if a.quick else [60, 120, 200], [] if a.quick else [60, 120])
    if a.part in ("all", "real"):
        real_data(a.quick)
    if a.part in ("all", "scale"):
        scale([2000] if a.quick else [10_000, 50_000])


if __name__ == "__main__":
    main()
