"""The six acceptance checks of the shift spec.

Each check has a full 300-replication version (``slow``) and a reduced default version on
the first R of the same paired draws (``probest.shift._study.replicate``, seed 0), whose
tolerance is widened according to the spread measured at that R.  Measured numbers are in
the comments (this machine, ``OMP_NUM_THREADS=1``); risks are the exact target excess risks.
"""

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from probest.datasets import make_covariate_shift
from probest.shift import CovariateShiftRegressor, DensityRatioEstimator
from probest.shift._study import replicate

_CACHE: dict = {}


def _rep(setup, n, reps, methods):
    key = (setup, n, reps, tuple(methods))
    if key not in _CACHE:
        _CACHE[key] = replicate(setup, n, reps, methods, seed=0)
    return _CACHE[key]


# -- 1 and 2: B1 (well-specified linear regression, unbounded ratio) ------------------------
# 300 reps (slow): n * mean MLE risk = 8.62 / 8.10 / 8.43 at n = 200 / 1000 / 5000
# (8.25 = Tr(Sigma_T Sigma_S^-1); bootstrap relative SE of each mean 4.2-4.6%, so ±15% is
# > 3 SE); MWLE(true w) / MLE = 4.05 / 5.97 / 7.28 (SE 0.24 / 0.35 / 0.42).
# 100 reps (default): n * MLE = 8.77 / 7.33 / 8.33 (relative SE 7-8%), so the reduced check
# allows ±20% (~2.6 SE); MWLE/MLE = 4.34 / 6.21 / 7.04 (SE 0.40 / 0.72 / 0.69): ">= 2.5" has
# > 2.5 SE of margin at every n.
@pytest.mark.parametrize(("reps", "tol"), [(100, 0.20), pytest.param(300, 0.15, marks=pytest.mark.slow)])
def test_b1_mle_rate_and_mwle_penalty(reps, tol):
    for n in (200, 1000, 5000):
        r = _rep("B1", n, reps, ["mle", "mwle_true"])
        scaled = n * r["mle"].mean()
        assert abs(scaled / 8.25 - 1) < tol, (n, scaled)
        ratio = r["mwle_true"].mean() / r["mle"].mean()
        assert ratio >= 2.5, (n, ratio)


# -- 2 (second half): B3 well-specified logistic ------------------------------------------
# 300 reps: MLE / MWLE(true w) = 0.263 (n=200, SE 0.015), 0.205 (n=1000, SE 0.010).
# 30 reps at n=200 (default): 0.236 (bootstrap SE 0.041): "<= 0.5" has > 6 SE of margin.
@pytest.mark.parametrize(("reps", "ns"),
                         [(30, (200,)), pytest.param(300, (200, 1000), marks=pytest.mark.slow)])
def test_b3_mle_beats_mwle(reps, ns):
    for n in ns:
        r = _rep("B3", n, reps, ["mle", "mwle_true"])
        assert r["mle"].mean() <= 0.5 * r["mwle_true"].mean(), n


# -- 3: B2 misspecified (Shimodaira) -------------------------------------------------------
# 300 reps: MWLE(true w) / MLE = 0.0175 (n=100), 0.0069 (n=300), 0.0019 (n=1000);
# n * MWLE risk = 0.380 / 0.427 / 0.389 (relative SE 6%).  MLE risk 0.217 / 0.207 / 0.202
# (population 0.199 + O(1/n)).
# 100 reps (default): MWLE/MLE = 0.022 (n=100), 0.0019 (n=1000); n * MWLE = 0.466 / 0.380
# with relative SE 9-10%, so the reduced check widens [0.3, 0.5] to [0.25, 0.55] (the 0.466
# sits 1.8 SE below 0.55); MLE mean 0.209 / 0.196.
@pytest.mark.parametrize(("reps", "lo", "hi"),
                         [(100, 0.25, 0.55), pytest.param(300, 0.3, 0.5, marks=pytest.mark.slow)])
def test_b2_mwle_fixes_misspecification(reps, lo, hi):
    for n, frac in ((100, 0.05), (1000, 0.01)):
        r = _rep("B2", n, reps, ["mle", "mwle_true"])
        assert r["mwle_true"].mean() <= frac * r["mle"].mean(), n
        assert lo <= n * r["mwle_true"].mean() <= hi, (n, n * r["mwle_true"].mean())
        assert 0.17 < r["mle"].mean() < 0.26  # MLE stays Theta(1) off


# -- 4: B2 with estimated ratios ---------------------------------------------------------
# 300 reps: logistic / oracle MWLE = 1.032 (n=300, SE 0.019), 1.005 (n=1000, SE 0.023);
# uLSIF / oracle = 1.11 (n=300), 1.16 (n=1000).  100 reps at n=300 (default): logistic
# 1.058 (paired bootstrap SE 0.037), uLSIF 1.11 (SE 0.07), so the reduced check allows
# 1.2 for logistic (10% + 2.7 SE) and keeps 2x for uLSIF.
@pytest.mark.parametrize(("reps", "ns", "tol"),
                         [(100, (300,), 0.2), pytest.param(300, (300, 1000), 0.1, marks=pytest.mark.slow)])
def test_b2_estimated_ratios_close_to_oracle(reps, ns, tol):
    for n in ns:
        r = _rep("B2", n, reps, ["mwle_true", "mwle_logistic", "mwle_ulsif"])
        oracle = r["mwle_true"].mean()
        assert r["mwle_logistic"].mean() <= (1 + tol) * oracle, n
        assert r["mwle_ulsif"].mean() <= 2 * oracle, n


# -- 5: sklearn base equality and ratio direction ------------------------------------------
def test_sklearn_mwle_equals_weighted_base_fit():
    d = make_covariate_shift("B2", 300, random_state=0)
    est = CovariateShiftRegressor(LinearRegression(), estimator="mwle", random_state=0)
    est.fit(d.X_source, d.y_source, X_target=d.X_target)
    w = est.weights_
    ref = LinearRegression().fit(d.X_source, d.y_source, sample_weight=w / w.mean())
    assert np.array_equal(est.coef_, ref.coef_) and est.intercept_ == ref.intercept_


def test_ratio_direction_slope():
    # N(0,1) -> N(1,1): log w = x - 1/2.  Measured fitted slope (default logistic, seed 0,
    # n=1000 each): 0.98 (5 other seeds: 0.93-1.05, see test_ratio.py).
    rng = np.random.default_rng(0)
    est = DensityRatioEstimator().fit(rng.normal(0, 1, (1000, 1)), rng.normal(1, 1, (1000, 1)))
    g = np.linspace(-1.5, 1.5, 31)[:, None]
    slope = np.polyfit(g[:, 0], est.predict_log_ratio(g), 1)[0]
    assert abs(slope - 1) < 0.1, slope


# -- 6: phase retrieval (well-specified) ----------------------------------------------------
# 300 reps at n=1000: MLE / MWLE(true w) = 0.346 (SE 0.017): MLE is ~2.9x better.  The
# default run uses the first 20 of those draws: 0.40 (SE 0.074), > 8 SE below 1.
@pytest.mark.parametrize("reps", [20, pytest.param(300, marks=pytest.mark.slow)])
def test_phase_retrieval_mle_no_worse(reps):
    r = _rep("phase_retrieval", 1000, reps, ["mle", "mwle_true"])
    assert r["mle"].mean() <= r["mwle_true"].mean()
