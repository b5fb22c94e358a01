"""GP classification: probest's four inference modes vs scikit-learn and GPyTorch.

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_gp.py [--quick] [--sparse]

Protocol (spec): 5-fold shuffled CV (seed 42), X standardised on the training fold, isotropic
Matérn-5/2 with an output scale for every method.  Peers in the same process on the same folds:

* scikit-learn ``GaussianProcessClassifier`` (Laplace, logit link, ``C * Matern(nu=2.5)``);
* GPyTorch variational classifier (``ApproximateGP``, Cholesky variational distribution with
  the training inputs as fixed inducing points, Bernoulli/probit likelihood, 300 Adam steps at
  lr 0.05 on the ELBO); one-vs-rest for multi-class like the others.

``--quick``: one fold of breast cancer and iris, GPyTorch with 60 Adam steps.
``--sparse``: also the sparse hybrid on 20k synthetic points (``make_gp_classification``).
``--scaling N [N ...]``: the scaling curve on ``make_classification(N + 5000, n_features=10,
n_informative=5, random_state=42)`` (X standardised on the N training rows, 5000 test rows):
fit time and test NLPD of the exact GP (N <= 2000), the full-batch sparse hybrid (256 k-means
inducing points; N <= 20000), the minibatched sparse hybrid (``batch_size=2000``) and GPyTorch's
SVGP with the same 256 inducing points (initialised at the same k-means centres, learned;
Cholesky variational distribution, probit Bernoulli, Adam lr 0.01, batch 1024, 20 epochs and
at least 600 steps), and
logistic regression for reference.  Results are appended to ``--out`` (JSON lines).
``--multiclass``: the multiclass table (iris, wine: 5 folds; digits, 10 classes, PCA to 16
dimensions: 1 fold, probest sparse with 256 inducing points; statsmodels' anes96 party
identification, 7 classes, 8 features: 2 folds): probest's softmax model (hybrid, vi,
laplace), probest one-vs-rest (hybrid) and scikit-learn's GPC (one-vs-rest Laplace, exact).
``--plot FILE``: time vs N from the ``--out`` records.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from probest.datasets import load_gp_benchmark

torch.set_num_threads(1)


def fit_sklearn(X, y):
    from sklearn.gaussian_process import GaussianProcessClassifier
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern

    return GaussianProcessClassifier(ConstantKernel(1.0) * Matern(1.0, nu=2.5),
                                     random_state=0).fit(X, y)


class _GPyTorchOvR:
    """GPyTorch's variational GP classifier, one-vs-rest for more than two classes."""

    def __init__(self, n_iter=300, lr=0.05):
        self.n_iter, self.lr = n_iter, lr

    def _fit_binary(self, X, y):
        import gpytorch

        class Model(gpytorch.models.ApproximateGP):
            def __init__(self, Z):
                vd = gpytorch.variational.CholeskyVariationalDistribution(Z.shape[0])
                vs = gpytorch.variational.VariationalStrategy(
                    self, Z, vd, learn_inducing_locations=False)
                super().__init__(vs)
                self.mean_module = gpytorch.means.ZeroMean()
                self.covar_module = gpytorch.kernels.ScaleKernel(
                    gpytorch.kernels.MaternKernel(nu=2.5))

            def forward(self, x):
                return gpytorch.distributions.MultivariateNormal(
                    self.mean_module(x), self.covar_module(x))

        Xt = torch.tensor(X)
        yt = torch.tensor(y, dtype=torch.float64)
        model = Model(Xt).double()
        lik = gpytorch.likelihoods.BernoulliLikelihood().double()
        mll = gpytorch.mlls.VariationalELBO(lik, model, num_data=len(y))
        opt = torch.optim.Adam(list(model.parameters()) + list(lik.parameters()), lr=self.lr)
        model.train()
        lik.train()
        for _ in range(self.n_iter):
            opt.zero_grad()
            loss = -mll(model(Xt), yt)
            loss.backward()
            opt.step()
        model.eval()
        lik.eval()
        return model, lik

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        probs = [self.classes_[1]] if len(self.classes_) == 2 else list(self.classes_)
        self.models_ = [self._fit_binary(X, (y == c).astype(float)) for c in probs]
        return self

    def predict_proba(self, X):
        Xt = torch.tensor(X)
        with torch.no_grad():
            p = np.stack([lik(m(Xt)).mean.numpy() for m, lik in self.models_], 1)
        p = np.clip(p, 1e-12, 1 - 1e-12)
        if p.shape[1] == 1:
            return np.c_[1 - p[:, 0], p[:, 0]]
        return p / p.sum(1, keepdims=True)


def run_dataset(name, n_folds, methods, gpytorch_iters=300):
    from probest.gaussian_process import GaussianProcessClassifier

    rows = {m: [] for m in methods}
    for Xtr, ytr, Xte, yte in load_gp_benchmark(name, n_folds=n_folds):
        for m in methods:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if m == "sklearn (Laplace, logit)":
                    est = fit_sklearn(Xtr, ytr)
                elif m == "gpytorch (variational)":
                    est = _GPyTorchOvR(n_iter=gpytorch_iters).fit(Xtr, ytr)
                else:
                    mode = m.split()[1]
                    link = "logit" if mode == "laplace" else "probit"
                    est = GaussianProcessClassifier(inference=mode, link=link,
                                                    random_state=0).fit(Xtr, ytr)
            dt = time.perf_counter() - t0
            P = est.predict_proba(Xte)
            idx = np.searchsorted(est.classes_, yte)
            nlpd = -np.mean(np.log(np.clip(P[np.arange(len(yte)), idx], 1e-300, None)))
            acc = np.mean(est.classes_[P.argmax(1)] == yte)
            rows[m].append((nlpd, acc, dt))
    return {m: np.mean(v, 0) for m, v in rows.items()}


def run_sparse(n=20000):
    from probest.datasets import make_gp_classification
    from probest.gaussian_process import GaussianProcessClassifier

    X, y = make_gp_classification(n + 2000, 2, random_state=0)
    t0 = time.perf_counter()
    clf = GaussianProcessClassifier(inference="hybrid", random_state=0).fit(X[:n], y[:n])
    dt = time.perf_counter() - t0
    nlpd = -clf.log_predictive_density(X[n:], y[n:]).mean()
    return dt, nlpd, clf.score(X[n:], y[n:]), clf.sparse_, clf.inducing_points_.shape[0]


def _scaling_data(n):
    from sklearn.datasets import make_classification
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n + 5000, n_features=10, n_informative=5, random_state=42)
    X = StandardScaler().fit(X[:n]).transform(X)
    return X[:n], y[:n], X[n:], y[n:]


def _nlpd(P, y):
    return float(-np.mean(np.log(np.clip(P[np.arange(len(y)), y], 1e-300, None))))


def _batches(n, batch, steps):
    done = 0
    while done < steps:
        for idx in torch.randperm(n).split(batch):
            if done == steps:
                return
            done += 1
            yield idx


def fit_svgp(X, y, Z, epochs=20, batch=1024, lr=0.01, seed=0, min_steps=600):
    """GPyTorch's SVGP (minibatched ELBO, Adam), probit Bernoulli; returns predict_proba."""
    import gpytorch

    class Model(gpytorch.models.ApproximateGP):
        def __init__(self, Z):
            vd = gpytorch.variational.CholeskyVariationalDistribution(Z.shape[0])
            vs = gpytorch.variational.VariationalStrategy(self, Z, vd,
                                                          learn_inducing_locations=True)
            super().__init__(vs)
            self.mean_module = gpytorch.means.ZeroMean()
            self.covar_module = gpytorch.kernels.ScaleKernel(
                gpytorch.kernels.MaternKernel(nu=2.5))

        def forward(self, x):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(x),
                                                             self.covar_module(x))

    torch.manual_seed(seed)
    Xt, yt = torch.tensor(X), torch.tensor(y, dtype=torch.float64)
    model = Model(torch.tensor(Z)).double()
    lik = gpytorch.likelihoods.BernoulliLikelihood().double()
    mll = gpytorch.mlls.VariationalELBO(lik, model, num_data=len(y))
    opt = torch.optim.Adam(list(model.parameters()) + list(lik.parameters()), lr=lr)
    model.train()
    lik.train()
    steps = max(epochs * -(-len(y) // batch), min_steps)
    for idx in _batches(len(y), batch, steps):
        opt.zero_grad()
        (-mll(model(Xt[idx]), yt[idx])).backward()
        opt.step()
    model.eval()
    lik.eval()

    def proba(Xn):
        with torch.no_grad():
            p = lik(model(torch.tensor(Xn))).mean.numpy()
        p = np.clip(p, 1e-12, 1 - 1e-12)
        return np.c_[1 - p, p]
    return proba


def run_scaling(n, out, methods=None):
    """One point of the scaling curve; every method on the same data in this process."""
    import json

    from sklearn.linear_model import LogisticRegression

    from probest.gaussian_process import GaussianProcessClassifier

    Xtr, ytr, Xte, yte = _scaling_data(n)
    lr = LogisticRegression().fit(Xtr, ytr)
    rows = [{"n": n, "method": "logistic regression", "time": None,
             "nlpd": _nlpd(lr.predict_proba(Xte), yte)}]
    methods = methods or ["exact", "sparse", "minibatch", "svgp"]
    clf_mb = None
    for m in methods:
        if (m == "exact" and n > 2000) or (m == "sparse" and n > 20000):
            continue
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if m == "svgp":
                if clf_mb is not None:
                    Z = clf_mb.inducing_points_
                else:
                    from sklearn.cluster import KMeans

                    Z = KMeans(256, n_init=1, max_iter=25, random_state=0).fit(
                        Xtr[:20000]).cluster_centers_
                proba = fit_svgp(Xtr, ytr, Z)
                P = proba(Xte)
            else:
                kw = {"exact": dict(sparse_threshold=None),
                      "sparse": dict(n_inducing=256),
                      "minibatch": dict(batch_size=2000)}[m]
                clf = GaussianProcessClassifier(random_state=0, **kw).fit(Xtr, ytr)
                if m == "minibatch":
                    clf_mb = clf
                P = clf.predict_proba(Xte)
        dt = time.perf_counter() - t0
        rows.append({"n": n, "method": m, "time": dt, "nlpd": _nlpd(P, yte),
                     "accuracy": float(np.mean(P.argmax(1) == yte))})
        print(json.dumps(rows[-1]), flush=True)
    with open(out, "a") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return rows


def _anes96(n_folds):
    import statsmodels.api as sm
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    d = sm.datasets.anes96.load_pandas().data
    cols = ["logpopul", "TVnews", "selfLR", "ClinLR", "DoleLR", "age", "educ", "income"]
    X, y = d[cols].to_numpy(float), d["PID"].to_numpy().astype(int)
    for k, (tr, te) in enumerate(KFold(5, shuffle=True, random_state=42).split(X)):
        if k >= n_folds:
            break
        s = StandardScaler().fit(X[tr])
        yield s.transform(X[tr]), y[tr], s.transform(X[te]), y[te]


def _digits10(n_folds):
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    for k, (tr, te) in enumerate(StratifiedKFold(5, shuffle=True, random_state=42).split(X, y)):
        if k >= n_folds:
            break
        pca = PCA(16, random_state=0).fit(X[tr])
        s = StandardScaler().fit(pca.transform(X[tr]))
        yield (s.transform(pca.transform(X[tr])), y[tr], s.transform(pca.transform(X[te])),
               y[te])


def run_multiclass(datasets=("iris", "wine", "digits10", "anes96"), folds=None):
    from probest.gaussian_process import GaussianProcessClassifier

    methods = ["probest softmax hybrid", "probest softmax vi", "probest softmax laplace",
               "probest one-vs-rest hybrid", "sklearn (Laplace, one-vs-rest)"]
    print("| data | method | NLPD | accuracy | fit time (s) |")
    print("|---|---|---|---|---|")
    for name in datasets:
        nf = folds or {"iris": 5, "wine": 5, "digits10": 1}.get(name, 2)
        # probest sparse on digits and anes96 (an exact softmax GP on 755 x 7 latents is hours)
        big = {"digits10": {"n_inducing": 256}, "anes96": {"n_inducing": 128}}.get(name, {})
        if name == "digits10":
            it = _digits10(nf)
        elif name == "anes96":
            it = _anes96(nf)
        else:
            it = load_gp_benchmark(name, n_folds=nf)
        res = {m: [] for m in methods}
        for Xtr, ytr, Xte, yte in it:
            for m in methods:
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if m.startswith("sklearn"):
                        est = fit_sklearn(Xtr, ytr)
                    else:
                        mode = m.split()[-1]
                        mc = "softmax" if "softmax" in m else "one_vs_rest"
                        est = GaussianProcessClassifier(inference=mode, multi_class=mc,
                                                        random_state=0, **big).fit(Xtr, ytr)
                dt = time.perf_counter() - t0
                P = est.predict_proba(Xte)
                idx = np.searchsorted(est.classes_, yte)
                res[m].append((_nlpd(P, idx), np.mean(P.argmax(1) == idx), dt))
        for m in methods:
            nlpd, acc, dt = np.mean(res[m], 0)
            print(f"| {name} ({nf} folds) | {m} | {nlpd:.4f} | {acc:.4f} | {dt:.2f} |",
                  flush=True)


def plot_scaling(records, path):
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in open(records) if line.strip()]
    fig, ax = plt.subplots(figsize=(6, 4))
    names = {"exact": "exact GP (hybrid)", "sparse": "sparse, full batch (hybrid)",
             "minibatch": "sparse, minibatched (hybrid)", "svgp": "GPyTorch SVGP"}
    for m, label in names.items():
        pts = sorted((r["n"], r["time"]) for r in rows if r["method"] == m)
        if pts:
            ax.plot(*zip(*pts), "o-", label=label)
    ax.set(xscale="log", yscale="log", xlabel="training points n", ylabel="fit time (s)",
           title="GP classification fit time (one CPU thread)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one fold of breast cancer and iris")
    ap.add_argument("--sparse", action="store_true", help="also time sparse hybrid on 20k points")
    ap.add_argument("--scaling", type=int, nargs="*", help="scaling-curve sizes, e.g. 2000 5000")
    ap.add_argument("--methods", nargs="*", help="subset of exact sparse minibatch svgp")
    ap.add_argument("--out", default="gp_scaling.jsonl", help="JSON-lines file for --scaling")
    ap.add_argument("--multiclass", nargs="*", help="the multiclass table only (optionally "
                    "some of iris wine digits10 anes96)")
    ap.add_argument("--plot", help="plot time vs n from --out into this PNG")
    args = ap.parse_args(argv)
    if args.scaling or args.multiclass is not None or args.plot:
        for n in args.scaling or []:
            run_scaling(n, args.out, args.methods)
        if args.multiclass is not None:
            run_multiclass(*([tuple(args.multiclass)] if args.multiclass else []))
        if args.plot:
            plot_scaling(args.out, args.plot)
        return
    methods = ["sklearn (Laplace, logit)", "probest laplace (logit)", "probest ep",
               "probest vi", "probest hybrid", "gpytorch (variational)"]
    datasets = ["breast_cancer", "iris"] if args.quick else [
        "breast_cancer", "digits_3v5", "iris", "wine"]
    n_folds = 1 if args.quick else 5
    print(f"GP classification, {n_folds}-fold CV (seed 42), OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}, torch threads {torch.get_num_threads()}\n")
    print("| data | method | NLPD | accuracy | fit time (s) |")
    print("|---|---|---|---|---|")
    for name in datasets:
        res = run_dataset(name, n_folds, methods, gpytorch_iters=60 if args.quick else 300)
        for m in methods:
            nlpd, acc, dt = res[m]
            print(f"| {name} | {m} | {nlpd:.4f} | {acc:.4f} | {dt:.2f} |", flush=True)
    if args.sparse:
        dt, nlpd, acc, sparse, m = run_sparse()
        print(f"\nsparse hybrid, 20000 synthetic points (make_gp_classification, 2-d), {m} "
              f"inducing points (sparse={sparse}): fit {dt:.1f} s, test NLPD {nlpd:.4f}, "
              f"accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
