"""CovariateShiftRegressor/Classifier share one __init__; each keeps its own default base."""

import inspect

from sklearn.base import clone

from probest.shift import CovariateShiftClassifier, CovariateShiftRegressor


def test_each_class_keeps_its_default_base_and_the_same_other_params():
    reg, clf = CovariateShiftRegressor(), CovariateShiftClassifier()
    assert reg.base == "linear" and clf.base == "logistic"
    pr, pc = reg.get_params(), clf.get_params()
    assert pr.keys() == pc.keys() and {k: v for k, v in pr.items() if k != "base"} == {
        k: v for k, v in pc.items() if k != "base"}
    sig_r = inspect.signature(CovariateShiftRegressor).parameters
    assert sorted(sig_r) == list(pr) and list(sig_r)[0] == "base"
    assert sig_r["base"].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for n, p in sig_r.items() if n != "base")


def test_positional_base_get_params_and_clone_round_trip():
    est = CovariateShiftRegressor("poisson", alpha=2.0, clip=None)
    assert est.get_params()["base"] == "poisson"
    twin = clone(est)
    assert type(twin) is CovariateShiftRegressor and twin.get_params() == est.get_params()
    assert repr(est) == "CovariateShiftRegressor(alpha=2.0, base='poisson', clip=None)"
    assert repr(CovariateShiftClassifier()) == "CovariateShiftClassifier()"
