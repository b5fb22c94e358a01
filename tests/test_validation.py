"""The fit contract the base owns: declared specs, shared parameter checks, hook defaults."""

import numpy as np
import pytest

import probest
from probest._validation import Interval, Options, check_params, check_sample_weight
from probest.base import EstimatorSpec, ProbestEstimator

_ALL = probest.all_estimators()
_BAD_SHARED = {"device": "gpu", "dtype": "int32", "random_state": -1, "verbose": -2}


class _Params(ProbestEstimator):
    _constraints = {"n": (Interval(int, 1, None),), "rate": (Interval(float, 0, 1, "right"),),
                    "kind": (Options({"a", "b"}), None), "flag": ("boolean",)}

    def __init__(self, n=1, rate=0.5, kind="a", flag=False, device="auto", random_state=None):
        self._store_params(locals())


def test_interval_and_options_accept_and_refuse():
    _Params()._validate_params()
    _Params(n=3, rate=1.0, kind=None, flag=True, device="cuda:1",
            random_state=np.random.RandomState(0))._validate_params()
    for bad, name in [({"n": 0}, "n"), ({"n": 2.0}, "n"), ({"n": True}, "n"),
                      ({"rate": 0.0}, "rate"), ({"rate": 1.5}, "rate"),
                      ({"rate": float("nan")}, "rate"), ({"kind": "c"}, "kind"),
                      ({"flag": 1}, "flag"), ({"device": "gpu"}, "device"),
                      ({"random_state": "seed"}, "random_state")]:
        with pytest.raises(ValueError, match=f"^{name}=.* is not valid for _Params: {name} must"):
            _Params(**bad)._validate_params()
    with pytest.raises(ValueError, match=r"an int in the range \[1, inf\)"):
        check_params(_Params(n=0), _Params._constraints)
    with pytest.raises(ValueError, match=r"one of 'a', 'b' or None"):
        _Params(kind="z")._validate_params()


@pytest.mark.parametrize(("name", "cls"), _ALL, ids=[n for n, _ in _ALL])
def test_every_estimator_declares_its_spec_and_validates_shared_params(name, cls):
    spec = cls._spec
    assert isinstance(spec, EstimatorSpec) and spec is not ProbestEstimator._spec, (
        f"{name} declares no _spec")
    for method in spec.outputs:
        assert callable(getattr(cls, method, None)), f"{name} declares missing output {method}"
    est = cls()
    est._validate_params()  # the defaults are valid
    params = est.get_params()
    shared = [p for p in _BAD_SHARED if p in params]
    assert "random_state" in shared or "device" in shared, f"{name} has no shared parameter"
    for param in shared:
        with pytest.raises(ValueError, match=f"{param}="):
            cls(**{param: _BAD_SHARED[param]})._validate_params()


def test_federated_estimators_declare_client_lists():
    from probest.mixture import FederatedGaussianMixture, FedGMMClassifier

    for cls in (FederatedGaussianMixture, FedGMMClassifier):
        assert cls._spec.input_kind == "clients" and "tabular" in cls._spec.also_accepts


def test_fit_validates_shared_params_before_any_work():
    from probest.gaussian_process import GaussianProcessRegressor
    from probest.mixture import GaussianMixture

    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="device='gpu'"):
        GaussianMixture(device="gpu").fit(X)
    with pytest.raises(ValueError, match="dtype='int32'"):
        GaussianProcessRegressor(dtype="int32").fit(X, X[:, 0])
    with pytest.raises(ValueError, match="verbose=-1"):
        GaussianMixture(verbose=-1).fit(X)


def test_hook_defaults():
    from probest.gaussian_process import GaussianProcessClassifier
    from probest.mixture import GaussianMixture
    from probest.shift import DensityRatioEstimator

    X, y, name, kw = GaussianProcessClassifier()._default_data()
    assert name == "breast_cancer" and kw == {} and len(X) == len(y)
    np.testing.assert_allclose(X.mean(0), 0, atol=1e-12)
    assert GaussianMixture()._default_data()[1] is None
    assert GaussianMixture()._extra_metrics(X) == {}
    assert "X_target" in DensityRatioEstimator()._default_data()[3]


def test_check_sample_weight():
    assert check_sample_weight(None, 3) is None
    np.testing.assert_array_equal(check_sample_weight(2, 3), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(check_sample_weight([0, 1, 2], 3), [0.0, 1.0, 2.0])
    for bad, pattern in [(np.ones(4), "4 entries"), (np.ones((3, 2)), "1-D"),
                         ([1, np.nan, 1], "finite"), ([1, -1, 1], "non-negative"),
                         (np.zeros(3), "zero for every sample")]:
        with pytest.raises(ValueError, match=pattern):
            check_sample_weight(bad, 3)
