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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one fold of breast cancer and iris")
    ap.add_argument("--sparse", action="store_true", help="also time sparse hybrid on 20k points")
    args = ap.parse_args(argv)
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
