"""CovariateShiftRegressor / CovariateShiftClassifier: API, bases, bad input, composition."""

import numpy as np
import pytest
import sklearn
import torch
from sklearn.base import clone
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import make_scorer, mean_squared_error
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from probest.datasets import make_covariate_shift
from probest.shift import (
    CovariateShiftClassifier,
    CovariateShiftRegressor,
    DensityRatioEstimator,
    LowEffectiveSampleSizeWarning,
    NoOverlapWarning,
    PhaseRetrievalRegression,
    WeightedPoissonRegression,
    importance_weighted_cv,
    sign_invariant_error,
)


@pytest.fixture(scope="module")
def b2():
    return make_covariate_shift("B2", 400, random_state=0)


def test_attributes_and_auto_rule(b2):
    est = CovariateShiftRegressor(random_state=0).fit(b2.X_source, b2.y_source, X_target=b2.X_target)
    assert est.estimator_used_ == "mwle"  # B2 is misspecified: the Hausman test rejects
    dec = est.auto_decision_
    assert dec["rule"] == "hausman" and dec["p_value"] < 1e-6 and dec["chosen"] == "mwle"
    assert isinstance(est.ratio_estimator_, DensityRatioEstimator)
    assert est.weights_.shape == (400,) and est.weights_.mean() == pytest.approx(1.0)
    ess = est.weights_.sum() ** 2 / np.sum(est.weights_**2)
    assert est.effective_sample_size_ == pytest.approx(ess)
    assert est.target_fisher_ratio_ > 0 and est.covariance_type_ == "sandwich"
    mle = CovariateShiftRegressor(estimator="mle").fit(b2.X_source, b2.y_source, X_target=b2.X_target)
    assert b2.target_excess_risk(est) < 0.05 * b2.target_excess_risk(mle)
    # well-specified B1: the test does not reject and auto keeps MLE
    b1 = make_covariate_shift("B1", 500, random_state=1)
    auto = CovariateShiftRegressor(random_state=0).fit(b1.X_source, b1.y_source, X_target=b1.X_target)
    assert auto.estimator_used_ == "mle" and auto.auto_decision_["p_value"] > 0.05
    assert auto.covariance_type_ == "laplace"
    # plug-in Tr(I_T I_S^-1) close to the exact 8.25 (measured 8.4 at n=500)
    assert auto.target_fisher_ratio_ == pytest.approx(8.25, rel=0.2)


def test_auto_rule_size_and_power():
    # 20 draws each at n=300 (seeds 500-519): the test never rejected on the well-specified B1
    # (nominal 5%: expected 1, P(>=4 | 5%) = 1.6%) and always on the misspecified B2.
    picks = {}
    for setup in ("B1", "B2"):
        picks[setup] = 0
        for r in range(20):
            d = make_covariate_shift(setup, 300, random_state=500 + r)
            est = CovariateShiftRegressor(random_state=0).fit(d.X_source, d.y_source, X_target=d.X_target)
            picks[setup] += est.estimator_used_ == "mwle"
    assert picks["B1"] <= 3 and picks["B2"] == 20, picks


def test_mle_without_target_and_mwle_needs_weights(b2):
    est = CovariateShiftRegressor(estimator="auto").fit(b2.X_source, b2.y_source)
    assert est.estimator_used_ == "mle" and "no target" in est.auto_decision_["rule"]
    assert np.all(est.weights_ == 1) and est.target_fisher_ratio_ is None
    with pytest.raises(ValueError, match="X_target"):
        CovariateShiftRegressor(estimator="mwle").fit(b2.X_source, b2.y_source)


def test_density_ratio_options_agree(b2):
    # callable, "true" and a prefit estimator give the same weights for the same ratio
    w_true = b2.density_ratio(b2.X_source)
    a = CovariateShiftRegressor(estimator="mwle", density_ratio=b2.density_ratio, clip=None)
    a.fit(b2.X_source, b2.y_source)
    b = CovariateShiftRegressor(estimator="mwle", density_ratio="true", clip=None)
    b.fit(b2.X_source, b2.y_source, sample_weight=w_true)
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-12)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-10)
    dre = DensityRatioEstimator(random_state=0).fit(b2.X_source, b2.X_target)
    c = CovariateShiftRegressor(estimator="mwle", density_ratio=dre, clip=None).fit(b2.X_source, b2.y_source)
    np.testing.assert_allclose(c.weights_, dre.importance_weights(b2.X_source), rtol=1e-12)
    # flatten=0 is MLE; sample_weight multiplies estimated weights
    f0 = CovariateShiftRegressor(estimator="mwle", density_ratio=dre, flatten=0.0)
    f0.fit(b2.X_source, b2.y_source)
    m = CovariateShiftRegressor(estimator="mle").fit(b2.X_source, b2.y_source)
    np.testing.assert_allclose(f0.coef_, m.coef_, rtol=1e-8)
    sw = np.r_[np.zeros(100), np.ones(300)]
    z = CovariateShiftRegressor(estimator="mwle", density_ratio=dre).fit(
        b2.X_source, b2.y_source, sample_weight=sw)
    assert np.all(z.weights_[:100] == 0)
    # ratio features: a column subset
    two = np.hstack([b2.X_source, np.random.default_rng(0).normal(size=(400, 1))])
    two_t = np.hstack([b2.X_target, np.random.default_rng(1).normal(size=(400, 1))])
    r = CovariateShiftRegressor(estimator="mwle", ratio_features=[0]).fit(two, b2.y_source, X_target=two_t)
    assert r.ratio_estimator_.n_features_in_ == 1


def test_sklearn_base_equals_weighted_fit(b2):
    # acceptance 5: mwle with an sklearn base equals base.fit(X, y, sample_weight=w/mean(w))
    for base in (LinearRegression(), Ridge(alpha=0.3)):
        est = CovariateShiftRegressor(base, estimator="mwle", random_state=0)
        est.fit(b2.X_source, b2.y_source, X_target=b2.X_target)
        w = est.weights_
        ref = clone(base).fit(b2.X_source, b2.y_source, sample_weight=w / w.mean())
        np.testing.assert_array_equal(est.predict(b2.X_target), ref.predict(b2.X_target))
        np.testing.assert_array_equal(est.coef_, ref.coef_)
    d3 = make_covariate_shift("B3", 300, random_state=0)
    clf = CovariateShiftClassifier(LogisticRegression(), estimator="mwle", random_state=0)
    clf.fit(d3.X_source, d3.y_source, X_target=d3.X_target)
    ref = LogisticRegression().fit(d3.X_source, d3.y_source,
                                   sample_weight=clf.weights_ / clf.weights_.mean())
    np.testing.assert_array_equal(clf.predict_proba(d3.X_target), ref.predict_proba(d3.X_target))
    # auto with an sklearn base uses importance-weighted CV and records both losses
    auto = CovariateShiftRegressor(LinearRegression(), random_state=0).fit(
        b2.X_source, b2.y_source, X_target=b2.X_target)
    dec = auto.auto_decision_
    assert dec["rule"] == "importance_weighted_cv" and dec["mwle_loss"] < dec["mle_loss"]
    assert auto.estimator_used_ == "mwle"
    # integer sample weights = repeated rows: doubling every row changes nothing
    twice = CovariateShiftRegressor(LinearRegression(), random_state=0).fit(
        b2.X_source, b2.y_source, X_target=b2.X_target, sample_weight=np.full(400, 2.0))
    assert twice.auto_decision_["mle_loss"] == pytest.approx(dec["mle_loss"], rel=1e-10)
    assert twice.auto_decision_["mwle_loss"] == pytest.approx(dec["mwle_loss"], rel=1e-10)


def test_classifier_logistic_and_multiclass():
    d3 = make_covariate_shift("B3", 400, random_state=0)
    est = CovariateShiftClassifier(estimator="mle", random_state=0).fit(
        d3.X_source, d3.y_source, X_target=d3.X_target)
    P = est.predict_proba(d3.X_target)
    assert P.shape == (400, 2) and np.allclose(P.sum(1), 1)
    assert set(est.predict(d3.X_target)) <= {0, 1} and est.estimator_used_ == "mle"
    assert est.auto_decision_ == {"rule": "fixed", "chosen": "mle"}
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    y = np.array(["a", "b", "c"])[np.argmax(X @ rng.normal(size=(2, 3)) + rng.gumbel(size=(300, 3)), 1)]
    m = CovariateShiftClassifier(estimator="mwle", random_state=0).fit(X, y, X_target=X + 0.5)
    assert list(m.classes_) == ["a", "b", "c"] and m.predict(X[:5]).dtype.kind == "U"
    assert m.target_fisher_ratio_ > 0


def test_poisson_and_phase_retrieval_bases():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 2))
    y = rng.poisson(np.exp(X @ [0.4, -0.3] + 0.2))
    est = CovariateShiftRegressor("poisson", estimator="mwle", random_state=0).fit(X, y, X_target=X + 0.3)
    assert isinstance(est.estimator_, WeightedPoissonRegression)
    np.testing.assert_allclose(est.coef_, [0.4, -0.3], atol=0.2)
    from sklearn.linear_model import PoissonRegressor

    ours = WeightedPoissonRegression().fit(X, y)
    ref = PoissonRegressor(alpha=0, tol=1e-10).fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-6)
    with pytest.raises(ValueError, match="non-negative"):
        WeightedPoissonRegression().fit(X, -y - 1)

    pr = make_covariate_shift("phase_retrieval", 600, random_state=0)
    m = CovariateShiftRegressor("phase_retrieval", estimator="mle").fit(pr.X_source, pr.y_source)
    assert isinstance(m.estimator_, PhaseRetrievalRegression) and m.estimator_.converged_
    # the spectral start is close, Newton polishes it (measured 0.11 -> 0.014)
    err0 = sign_invariant_error(m.estimator_.spectral_init_, pr.coef)
    err = sign_invariant_error(m.coef_, pr.coef)
    assert err < 0.05 and err < err0
    assert sign_invariant_error(-m.coef_, pr.coef) == err


class _GaussLinear(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = torch.nn.Linear(d, 1)
        self.log_sigma = torch.nn.Parameter(torch.zeros(()))

    def forward(self, X):
        return torch.distributions.Normal(self.lin(X).squeeze(-1), self.log_sigma.exp())


class _Logit(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.lin = torch.nn.Linear(d, 1)

    def forward(self, X):
        return torch.distributions.Bernoulli(logits=self.lin(X).squeeze(-1))


def test_torch_likelihood_base_matches_builtin(b2):
    template = _GaussLinear(1).double()
    before = [p.detach().clone() for p in template.parameters()]
    est = CovariateShiftRegressor(template, estimator="mwle", random_state=0, max_iter=200)
    est.fit(b2.X_source, b2.y_source, X_target=b2.X_target)
    ref = CovariateShiftRegressor("linear", estimator="mwle", random_state=0)
    ref.fit(b2.X_source, b2.y_source, X_target=b2.X_target)
    np.testing.assert_allclose(est.predict(b2.X_target), ref.predict(b2.X_target), atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(before, template.parameters(), strict=True))
    assert est.covariance_type_ == "sandwich" and est.target_fisher_ratio_ > 0
    d = est.to_pyro(b2.X_target[:7])
    assert d.batch_shape == (7,)
    idata = est.to_arviz(n_draws=50, random_state=0)
    assert set(idata.posterior.data_vars) == {"lin_weight", "lin_bias", "log_sigma"}
    d3 = make_covariate_shift("B3", 300, random_state=0)
    clf = CovariateShiftClassifier(_Logit(5).double(), estimator="auto", random_state=0)
    clf.fit(d3.X_source, d3.y_source, X_target=d3.X_target)
    ref = CovariateShiftClassifier("logistic", estimator="auto", random_state=0)
    ref.fit(d3.X_source, d3.y_source, X_target=d3.X_target)
    assert clf.estimator_used_ == ref.estimator_used_
    np.testing.assert_allclose(clf.predict_proba(d3.X_target), ref.predict_proba(d3.X_target), atol=1e-5)


def test_to_pyro_and_to_arviz_sandwich(b2):
    import pyro
    from pyro import poutine

    est = CovariateShiftRegressor(estimator="mwle", random_state=0).fit(
        b2.X_source, b2.y_source, X_target=b2.X_target)
    dist = est.to_pyro(b2.X_target)

    def model():
        with pyro.plate("data", len(b2.X_target)):
            return pyro.sample("y", dist, obs=torch.tensor(b2.y_target))

    tr = poutine.trace(model).get_trace()
    assert torch.isfinite(tr.log_prob_sum())
    idata = est.to_arviz(n_draws=4000, random_state=0)
    draws = idata.posterior["coef"].values.reshape(-1)
    assert idata.posterior.attrs["covariance"] == "sandwich"
    # draws have the sandwich spread, which is wider than the Laplace one under weighting
    sd_sand = np.sqrt(est.covariance_[0, 0])
    sd_lap = np.sqrt(est.estimator_.covariance_[0, 0])
    assert draws.std() == pytest.approx(sd_sand, rel=0.05) and sd_sand > sd_lap
    sk = CovariateShiftRegressor(LinearRegression(), estimator="mle").fit(b2.X_source, b2.y_source)
    assert sk.to_pyro(b2.X_target[:3]).batch_shape == (3,)
    with pytest.raises(NotImplementedError, match="likelihood"):
        sk.to_arviz()


def test_sandwich_coverage_b1():
    # B1 with the true (unbounded) ratio: the 95% sandwich interval of the shifted
    # coefficient covers far more often than the Laplace interval of the same weighted fit
    # (measured over these 60 draws at n=300: sandwich 47/60, Laplace 34/60; the sandwich
    # is below nominal because E_S[w^2] = e^2.25 makes its meat heavy-tailed at this n).
    cover_s = cover_l = 0
    for r in range(60):
        d = make_covariate_shift("B1", 300, random_state=1000 + r)
        est = CovariateShiftRegressor(estimator="mwle", density_ratio=d.density_ratio, clip=None)
        est.fit(d.X_source, d.y_source)
        err = abs(est.coef_[0] - d.coef[0])
        cover_s += err < 1.96 * np.sqrt(est.covariance_[0, 0])
        cover_l += err < 1.96 * np.sqrt(est.estimator_.covariance_[0, 0])
    assert cover_s / 60 > 0.7 and cover_s - cover_l >= 6, (cover_s, cover_l)


class _HugeLogRatio:
    """A ratio model in log space whose ratios exp(900 x) overflow float64."""

    def predict_log_ratio(self, X):
        return 900.0 * X[:, 0]


def test_bad_inputs(b2):
    X, y = b2.X_source, b2.y_source
    with pytest.raises(ValueError, match="features"):
        CovariateShiftRegressor().fit(X, y, X_target=np.zeros((10, 3)))
    with pytest.raises(ValueError, match="empty"):
        CovariateShiftRegressor().fit(X, y, X_target=np.empty((0, 1)))
    with pytest.raises(ValueError, match="estimator"):
        CovariateShiftRegressor(estimator="bayes").fit(X, y)
    with pytest.raises(ValueError, match="base"):
        CovariateShiftRegressor("logistic").fit(X, y)
    with pytest.raises(ValueError, match="density_ratio"):
        CovariateShiftRegressor(density_ratio="magic").fit(X, y, X_target=b2.X_target)
    with pytest.raises(ValueError, match="sample_weight"):
        CovariateShiftRegressor(density_ratio="true").fit(X, y)
    # overflowing ratios: a callable returning inf is a clear error, not NaN weights
    with pytest.raises(ValueError, match="infinite"):
        CovariateShiftRegressor(estimator="mwle", density_ratio=lambda Z: np.exp(900 * Z[:, 0])).fit(X, y)
    # zero effective sample size: every weight zero
    with pytest.raises(ValueError, match="effective sample size 0"):
        CovariateShiftRegressor(estimator="mwle", density_ratio=lambda Z: np.zeros(len(Z))).fit(X, y)
    # log-ratios up to 900 * 2: weights computed in log space stay finite, and a warning
    # says the effective sample size is ~1
    with pytest.warns(LowEffectiveSampleSizeWarning, match="effective sample size"):
        est = CovariateShiftRegressor(estimator="mwle", density_ratio=_HugeLogRatio(), clip=None,
                                      random_state=0).fit(X, y)
    assert np.all(np.isfinite(est.weights_)) and est.effective_sample_size_ < 2
    # clipping at the 0.99 quantile keeps the top 1% of points: ESS ~ 4 (still warned)
    with pytest.warns(LowEffectiveSampleSizeWarning):
        clipped = CovariateShiftRegressor(estimator="mwle", density_ratio=_HugeLogRatio(),
                                          clip=0.99).fit(X, y)
    assert clipped.effective_sample_size_ > 3 and np.all(np.isfinite(clipped.predict(X)))
    # a far-away target with the default logistic ratio: finite weights, finite predictions
    far = b2.X_target + 30.0
    with pytest.warns(NoOverlapWarning):  # 30 sd away: the domain classifier separates them
        est = CovariateShiftRegressor(estimator="mwle", random_state=0).fit(X, y, X_target=far)
    assert np.all(np.isfinite(est.weights_)) and np.all(np.isfinite(est.predict(far)))
    with pytest.raises(ValueError, match="sample_weight"):
        from sklearn.neighbors import KNeighborsRegressor

        CovariateShiftRegressor(KNeighborsRegressor(), estimator="mwle").fit(X, y, X_target=b2.X_target)
    with pytest.raises(ValueError, match="1 class"):
        CovariateShiftClassifier().fit(X, np.zeros(len(X)))


def test_importance_weighted_cv_selects_for_target(b2):
    # IW-CV estimates the target risk: it prefers the weighted fit under misspecification,
    # while plain CV (uniform weights) prefers the unweighted one (the source risk).
    w = b2.density_ratio(b2.X_source)
    iw_w = importance_weighted_cv(LinearRegression(), b2.X_source, b2.y_source, importance_weights=w)
    iw_u = importance_weighted_cv(LinearRegression(), b2.X_source, b2.y_source, importance_weights=w,
                                  fit_weighted=False)
    assert iw_w["loss"] < iw_u["loss"] and len(iw_w["fold_losses"]) == 5
    cv_w = importance_weighted_cv(LinearRegression(), b2.X_source, b2.y_source,
                                  importance_weights=np.ones(400), sample_weight=None)
    assert cv_w["loss"] < iw_w["loss"] * 10
    est = importance_weighted_cv(LinearRegression(), b2.X_source, b2.y_source, X_target=b2.X_target)
    assert est["weights"].shape == (400,)
    with pytest.raises(ValueError, match="importance_weights or X_target"):
        importance_weighted_cv(LinearRegression(), b2.X_source, b2.y_source)


def test_metadata_routing_gridsearch_and_pipeline(b2):
    w = b2.density_ratio(b2.X_source)
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = make_scorer(mean_squared_error, greater_is_better=False)
        scorer.set_score_request(sample_weight=True)
        est = CovariateShiftRegressor(estimator="mwle", density_ratio="true", clip=None)
        est.set_fit_request(sample_weight=True, X_target=False)
        gs = GridSearchCV(est, {"flatten": [0.0, 1.0]}, scoring=scorer, cv=3)
        gs.fit(b2.X_source, b2.y_source, sample_weight=w)
        # importance-weighted CV picks the full weights (flatten=1) in the misspecified B2
        assert gs.best_params_ == {"flatten": 1.0}
        pipe = make_pipeline(StandardScaler().set_fit_request(sample_weight=False),
                             clone(est))
        pipe.fit(b2.X_source, b2.y_source, sample_weight=w)
        direct = clone(est).fit(StandardScaler().fit_transform(b2.X_source), b2.y_source, sample_weight=w)
        np.testing.assert_allclose(pipe[-1].weights_, direct.weights_)
        assert pipe[-1].estimator_used_ == "mwle"
    # target information through a fitted ratio's bound method survives GridSearchCV's clone
    dre = DensityRatioEstimator(random_state=0).fit(b2.X_source, b2.X_target)
    gs = GridSearchCV(CovariateShiftRegressor(estimator="mwle", density_ratio=dre.predict_ratio),
                      {"clip": [None, 0.99]}, cv=3).fit(b2.X_source, b2.y_source)
    np.testing.assert_allclose(gs.best_estimator_.weights_,
                               dre.importance_weights(b2.X_source, clip=gs.best_params_["clip"]))
