"""Shared CV folds for the acceptance tests (spec protocol: 5-fold shuffled CV, seed 42,
X standardised on the training fold)."""

import numpy as np

from probest.datasets import load_gp_benchmark


def folds(name, n_folds=5):
    return load_gp_benchmark(name, n_folds=n_folds)


def nlpd_acc(est, X, y):
    P = est.predict_proba(X)
    idx = np.searchsorted(est.classes_, y)
    return (-np.mean(np.log(np.clip(P[np.arange(len(y)), idx], 1e-300, None))),
            np.mean(est.classes_[P.argmax(1)] == y))


def sklearn_gpc(X, y):
    from sklearn.gaussian_process import GaussianProcessClassifier
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern

    return GaussianProcessClassifier(ConstantKernel(1.0) * Matern(1.0, nu=2.5),
                                     random_state=0).fit(X, y)
