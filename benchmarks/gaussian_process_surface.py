"""Draw docs/img/gaussian_process_surface.png: the four hyperparameter objectives over
lengthscale x output scale on 200 breast-cancer points, with each mode's fitted values.

    OMP_NUM_THREADS=1 python benchmarks/gaussian_process_surface.py [--grid 10] [--out PATH]
"""

from __future__ import annotations

import argparse
import pathlib
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from probest.gaussian_process import GaussianProcessClassifier, plot_objective_surface


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", type=int, default=11)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parents[1] / "docs" /
                                         "img" / "gaussian_process_surface.png"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    X, y = load_breast_cancer(return_X_y=True)
    idx = np.random.default_rng(0).choice(len(X), args.n, replace=False)
    X, y = StandardScaler().fit_transform(X[idx]), y[idx]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = [GaussianProcessClassifier(inference=m, random_state=0).fit(X, y)
                for m in ("laplace", "ep", "vi", "hybrid")]
    t0 = time.perf_counter()
    d = np.sqrt(X.shape[1])
    plot_objective_surface(X, y, np.geomspace(0.5, 40, args.grid) * d,
                           np.geomspace(3, 1e5, args.grid), estimators=fits, path=args.out)
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s")
    for f in fits:
        print(f.inference, {k: round(v, 2) for k, v in f.hyperparameters_.items()})


if __name__ == "__main__":
    main()
