"""Shared CV folds for the acceptance tests (spec protocol: 5-fold shuffled CV, seed 42,
X standardised on the training fold)."""

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.model_selection import KFold
from sklearn.preprocessing import StandardScaler


def load(name):
    if name == "breast_cancer":
        return load_breast_cancer(return_X_y=True)
    if name == "iris":
        return load_iris(return_X_y=True)
    if name == "wine":
        return load_wine(return_X_y=True)
    X, y = load_digits(return_X_y=True)
    keep = (y == 3) | (y == 5)
    return X[keep], (y[keep] == 5).astype(int)


def folds(name, n_folds=5):
    X, y = load(name)
    for tr, te in list(KFold(5, shuffle=True, random_state=42).split(X))[:n_folds]:
        sc = StandardScaler().fit(X[tr])
        yield (np.nan_to_num(sc.transform(X[tr])), y[tr], np.nan_to_num(sc.transform(X[te])),
               y[te])


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
