"""probest in one page: an sklearn-style fit, a Laplace posterior in ArviZ, the model in Pyro.

    python examples/quickstart.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.autoguide import AutoNormal
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from probest.metrics import nlpd_classification
from probest.shift import WeightedLogisticRegression
from probest.viz import import_arviz, plot_posterior


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="quickstart-out")
    args = ap.parse_args(argv)
    out = pathlib.Path(args.out)

    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    sc = StandardScaler().fit(Xtr)
    Xtr, Xte = sc.transform(Xtr), sc.transform(Xte)

    # 1. sklearn API: fit / predict_proba / score
    clf = WeightedLogisticRegression(alpha=1.0).fit(Xtr, ytr)
    print(f"accuracy {clf.score(Xte, yte):.3f}  NLPD {nlpd_classification(yte, clf.predict_proba(Xte)):.4f}")

    # 2. ArviZ: Laplace approximation of the coefficient posterior
    az = import_arviz()
    idata = clf.to_arviz(n_draws=500 if args.quick else 4000, random_state=0)
    print(az.summary(idata, var_names=["intercept"], kind="stats"))
    print("posterior plot:", plot_posterior(idata, var_names=["intercept"], path=out / "intercept.png"))

    # 3. Pyro: the fitted classifier as the likelihood of a model with an unknown label-noise rate
    probs = torch.tensor(clf.predict_proba(Xte)[:, 1])
    obs = torch.tensor(yte, dtype=torch.float64)

    def model():
        eps = pyro.sample("eps", dist.Beta(torch.tensor(1.0, dtype=torch.float64), 20.0))
        p = (1 - eps) * probs + eps * (1 - probs)
        with pyro.plate("data", len(obs)):
            pyro.sample("y", dist.Bernoulli(probs=p), obs=obs)

    guide = AutoNormal(model)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    pyro.clear_param_store()
    for _ in range(50 if args.quick else 500):
        svi.step()
    eps = guide.median()["eps"].item()
    print(f"posterior median label-noise rate: {eps:.4f}")
    assert np.isfinite(eps)


if __name__ == "__main__":
    main()
