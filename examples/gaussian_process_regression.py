"""GP regression: exact Gaussian on diabetes, Student-t against outliers, Poisson counts, and
the sparse (inducing-point) hybrid classifier on many points.

    python examples/gaussian_process_regression.py [--quick]
"""

from __future__ import annotations

import argparse
import time


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small budgets, a few seconds")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from probest.datasets import make_gp_classification
    from probest.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor

    torch.set_num_threads(1)
    # 1. exact GP regression (every inference mode is exact with a Gaussian likelihood)
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
    sx = StandardScaler().fit(Xtr)
    mu, sd = ytr.mean(), ytr.std()
    reg = GaussianProcessRegressor(random_state=0).fit(sx.transform(Xtr), (ytr - mu) / sd)
    nlpd = -reg.log_predictive_density(sx.transform(Xte), (yte - mu) / sd).mean()
    print(f"diabetes: test NLPD {nlpd:.3f} (standardised y), log evidence "
          f"{reg.log_marginal_likelihood_value_:.2f}, {reg.hyperparameters_}")

    # 2. Student-t likelihood against 10% gross outliers
    rng = np.random.default_rng(0)
    n = 80 if args.quick else 200
    Xs = rng.uniform(-3, 3, (n, 1))
    ys = np.sin(2 * Xs[:, 0]) + 0.1 * rng.normal(size=n)
    bad = rng.choice(n, n // 10, replace=False)
    ys[bad] += rng.choice([-1, 1], len(bad)) * rng.uniform(3, 6, len(bad))
    Xt = np.linspace(-3, 3, 200)[:, None]
    yt = np.sin(2 * Xt[:, 0]) + 0.1 * rng.normal(size=200)
    for lik in ("gaussian", "student_t"):
        r = GaussianProcessRegressor(likelihood=lik, random_state=0).fit(Xs, ys)
        rmse = np.sqrt(np.mean((r.predict(Xt) - yt) ** 2))
        print(f"outliers, {lik:9s}: test NLPD {-r.log_predictive_density(Xt, yt).mean():6.3f}"
              f"  RMSE {rmse:.3f}")

    # 3. Poisson counts
    Xp = np.linspace(0, 10, 100 if args.quick else 400)[:, None]
    rate = np.exp(1 + np.sin(Xp[:, 0]))
    yp = rng.poisson(rate)
    rp = GaussianProcessRegressor(likelihood="poisson", random_state=0).fit(Xp, yp)
    err = np.mean(np.abs(rp.predict(Xp) - rate) / rate)
    print(f"Poisson: mean relative error of the rate {err:.3f}")

    # 4. sparse hybrid classification (automatic above 2000 points)
    n = 3000 if args.quick else 20000
    Xc, yc = make_gp_classification(n + 1000, 2, random_state=0)
    t0 = time.perf_counter()
    clf = GaussianProcessClassifier(random_state=0, n_inducing=64 if args.quick else None)
    clf.fit(Xc[:n], yc[:n])
    print(f"sparse hybrid on {n} points ({clf.inducing_points_.shape[0]} inducing): "
          f"{time.perf_counter() - t0:.1f} s, test accuracy {clf.score(Xc[n:], yc[n:]):.3f}")


if __name__ == "__main__":
    main()
