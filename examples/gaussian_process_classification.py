"""GP classification with the four inference modes, and the hyperparameter objective surface.

Fits ``GaussianProcessClassifier`` with ``inference="laplace"`` (scikit-learn's method),
``"ep"``, ``"vi"`` (CVI) and ``"hybrid"`` (CVI sites, EP-energy hyperparameter learning) on
breast cancer, prints test NLPD / accuracy / fit time next to scikit-learn, draws the
objective surface (Laplace evidence, EP energy, ELBO, hybrid) over lengthscale x output scale
with each mode's fitted hyperparameters, and summarises a Laplace approximation of the
hyperparameter posterior with ArviZ.

    python examples/gaussian_process_classification.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import time


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small subsample, a few seconds")
    ap.add_argument("--out", default=None, help="folder for the surface plot")
    args = ap.parse_args(argv)

    import warnings

    import numpy as np
    import torch
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from probest.gaussian_process import GaussianProcessClassifier, plot_objective_surface

    torch.set_num_threads(1)
    X, y = load_breast_cancer(return_X_y=True)
    if args.quick:
        keep = np.random.default_rng(0).choice(len(X), 120, replace=False)
        X, y = X[keep], y[keep]
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    sc = StandardScaler().fit(Xtr)
    Xtr, Xte = sc.transform(Xtr), sc.transform(Xte)

    print(f"breast cancer, {len(ytr)} train / {len(yte)} test")
    print(f"{'method':28s} {'NLPD':>7s} {'acc':>6s} {'fit s':>6s}  hyperparameters")
    fitted = []
    for mode in ("laplace", "ep", "vi", "hybrid"):
        link = "logit" if mode == "laplace" else "probit"
        t0 = time.perf_counter()
        clf = GaussianProcessClassifier(inference=mode, link=link, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # quick budgets may stop before convergence
            clf.fit(Xtr, ytr)
        dt = time.perf_counter() - t0
        nlpd = -clf.log_predictive_density(Xte, yte).mean()
        h = {k: round(v, 2) for k, v in clf.hyperparameters_.items()}
        print(f"probest {mode:8s} ({link:6s})      {nlpd:7.4f} {clf.score(Xte, yte):6.3f} "
              f"{dt:6.2f}  {h}  stop={clf.stopped_by_}")
        fitted.append(clf)

    from sklearn.gaussian_process import GaussianProcessClassifier as SkGPC
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SkGPC(ConstantKernel(1.0) * Matern(1.0, nu=2.5), random_state=0).fit(Xtr, ytr)
    dt = time.perf_counter() - t0
    p = sk.predict_proba(Xte)[np.arange(len(yte)), yte]
    print(f"{'sklearn Laplace (logit)':28s} {-np.log(p).mean():7.4f} {sk.score(Xte, yte):6.3f} "
          f"{dt:6.2f}  {sk.kernel_}")

    hybrid = fitted[-1]
    print("\nhistory of the hybrid (EP energy must rise until the stop):")
    for h in hybrid.history_[-4:]:
        print(f"  iter {h['iter']:3d}  EP energy {h['ep_energy']:9.4f}  ELBO {h['elbo']:9.4f}")

    out = pathlib.Path(args.out or tempfile.mkdtemp(prefix="probest_gp_"))
    n_grid = 3 if args.quick else 12
    sub = slice(None) if args.quick else slice(0, 200)
    d = np.sqrt(Xtr.shape[1])
    path = out / "gaussian_process_surface.png"
    plot_objective_surface(Xtr[sub], ytr[sub], np.geomspace(0.3, 20, n_grid) * d,
                           np.geomspace(1, 5000, n_grid), estimators=fitted, path=path)
    print(f"\nobjective surface: {path}")

    from probest.viz import import_arviz

    az = import_arviz()
    idata = hybrid.to_arviz(n_draws=500, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        print(az.summary(idata, kind="stats"))


if __name__ == "__main__":
    main()
