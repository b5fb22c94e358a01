"""FedGMMClassifier vs global / local / FedAvg logistic baselines on real label-skewed and
covariate-shifted federations of scikit-learn's data sets (shared by tests and benchmark).

Run: ``python benchmarks/fedgmm_real.py [--quick]`` (prints a markdown table).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def load(name):
    from sklearn.datasets import load_breast_cancer, load_digits, load_wine
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X = PCA(10, random_state=0).fit_transform(X)
        return X / X.std(), y
    loader = {"wine": load_wine, "breast_cancer": load_breast_cancer}[name]
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def split(X, y, n_clients, kind, alpha=0.5, seed=0, min_rows=None):
    """Train/test halves per client: ``kind="label"`` (Dirichlet(alpha) label proportions)
    or ``"covariate"`` (clients = k-means clusters of the inputs)."""
    rng = np.random.default_rng(seed)
    d = X.shape[1]
    min_rows = 2 * d + 4 if min_rows is None else min_rows
    for _ in range(100):
        if kind == "label":
            owner = np.empty(len(y), int)
            for c in np.unique(y):
                idx = rng.permutation(np.flatnonzero(y == c))
                cuts = (np.cumsum(rng.dirichlet(alpha * np.ones(n_clients))) * len(idx))
                owner[idx] = np.searchsorted(cuts[:-1].astype(int), np.arange(len(idx)),
                                             side="right")
        else:
            from sklearn.cluster import KMeans

            owner = KMeans(n_clients, n_init=4, random_state=seed).fit_predict(X)
        if np.bincount(owner, minlength=n_clients).min() >= min_rows:
            break
        seed += 1000
        rng = np.random.default_rng(seed)
    tr, te = ([], []), ([], [])
    for k in range(n_clients):
        idx = rng.permutation(np.flatnonzero(owner == k))
        h = len(idx) // 2
        tr[0].append(X[idx[:h]]), tr[1].append(y[idx[:h]])
        te[0].append(X[idx[h:]]), te[1].append(y[idx[h:]])
    return tr, te


def accuracy(predict, te):
    Xte, yte = te
    hits = sum(int((predict(k, x) == t).sum()) for k, (x, t) in enumerate(zip(Xte, yte)))
    return hits / sum(len(t) for t in yte)


def baselines(tr, te, C=1.0, fedavg_rounds=20):
    from sklearn.linear_model import LogisticRegression

    Xtr, ytr = tr
    classes = np.unique(np.concatenate(ytr))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = LogisticRegression(C=C, max_iter=2000).fit(np.concatenate(Xtr), np.concatenate(ytr))
        loc = []
        for x, t in zip(Xtr, ytr):
            loc.append(LogisticRegression(C=C, max_iter=2000).fit(x, t)
                       if len(np.unique(t)) > 1 else t[0])
        # FedAvg: each round every client refits from the global parameters, the server
        # averages coef_/intercept_ weighted by client size (zero-weight rows make every
        # class known to each local fit)
        n = np.array([len(t) for t in ytr], float)
        coef = intercept = None
        for _ in range(fedavg_rounds):
            cs, bs = [], []
            for x, t in zip(Xtr, ytr):
                miss = np.setdiff1d(classes, t)
                xa = np.vstack([x, np.repeat(x[:1], len(miss), 0)])
                ta = np.concatenate([t, miss])
                wa = np.concatenate([np.ones(len(t)), np.zeros(len(miss))])
                m = LogisticRegression(C=C, max_iter=2000, warm_start=coef is not None)
                if coef is not None:
                    m.coef_, m.intercept_, m.classes_ = coef.copy(), intercept.copy(), classes
                m.fit(xa, ta, sample_weight=wa)
                cs.append(m.coef_), bs.append(m.intercept_)
            coef = np.tensordot(n / n.sum(), np.array(cs), 1)
            intercept = np.tensordot(n / n.sum(), np.array(bs), 1)
        fa = LogisticRegression(C=C)
        fa.coef_, fa.intercept_, fa.classes_ = coef, intercept, classes
    return {
        "global": accuracy(lambda k, x: g.predict(x), te),
        "local": accuracy(lambda k, x: (loc[k].predict(x) if hasattr(loc[k], "predict")
                                        else np.full(len(x), loc[k])), te),
        "fedavg": accuracy(lambda k, x: fa.predict(x), te),
    }


#: (data set, kind, alpha, n_clients, M1, M2)
SPLITS = [
    ("digits", "label", 0.1, 8, 10, 3),
    ("digits", "label", 0.5, 8, 10, 2),
    ("digits", "covariate", None, 4, 10, 3),
    ("wine", "label", 0.1, 3, 3, 2),
    ("wine", "label", 0.5, 3, 3, 2),
    ("wine", "covariate", None, 3, 3, 2),
    ("breast_cancer", "label", 0.1, 4, 3, 1),
    ("breast_cancer", "label", 0.5, 4, 3, 1),
    ("breast_cancer", "covariate", None, 4, 3, 1),
]


def fedgmm(tr, M1, M2, seed=0, **kw):
    from probest.mixture import FedGMMClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return FedGMMClassifier(M1, M2, covariance_type="diag", random_state=seed,
                                device="cpu", max_iter=30, **kw).fit(*tr)


def evaluate(name, kind, alpha, n_clients, M1, M2, seed=0):
    X, y = load(name)
    tr, te = split(X, y, n_clients, kind, alpha or 0.5, seed)
    t = time.perf_counter()
    f = fedgmm(tr, M1, M2, seed)
    fit_s = time.perf_counter() - t
    row = {"fedgmm": accuracy(lambda k, x: f.predict(x, client=k), te),
           **baselines(tr, te), "fit_s": fit_s}
    return row, f, tr, te


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    print("| data set | split | clients | M1 x M2 | FedGMM | global LR | local LR | FedAvg LR | fit s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for sp in SPLITS[:2] if a.quick else SPLITS:
        row, *_ = evaluate(*sp)
        name, kind, alpha, n, M1, M2 = sp
        lab = f"label Dir({alpha})" if kind == "label" else "covariate (k-means)"
        print(f"| {name} | {lab} | {n} | {M1} x {M2} | {row['fedgmm']:.3f} | "
              f"{row['global']:.3f} | {row['local']:.3f} | {row['fedavg']:.3f} | "
              f"{row['fit_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
