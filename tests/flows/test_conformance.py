"""probest conformance suite and sklearn's estimator checks on tiny-budget flows."""

import numpy as np
import pytest

from probest.flows import AutoregressiveDLMEstimator, FlowDensityEstimator, FlowMatchingEstimator
from probest.testing import EstimatorConformance, sklearn_checks


def _continuous():
    rng = np.random.default_rng(0)
    return rng.normal(size=(60, 3)) @ np.array([[1.0, 0.5, 0], [0, 1, 0.3], [0, 0, 1]]), None


class TestNSFConformance(EstimatorConformance):
    has_posterior = False  # a point estimate of the flow's weights; no posterior draws

    def make_estimator(self, **params):
        return FlowDensityEstimator(flow="nsf", n_transforms=1, hidden=(8,), max_iter=5,
                                    batch_size=32, device="cpu", **params)

    def make_data(self):
        return _continuous()


class TestEBFlowConformance(TestNSFConformance):
    def make_estimator(self, **params):
        return FlowDensityEstimator(flow="ebflow_fc", objective="mle", n_transforms=1,
                                    max_iter=5, batch_size=32, device="cpu", **params)


class TestTARFlowConformance(TestNSFConformance):
    def make_estimator(self, **params):
        return FlowDensityEstimator(flow="tarflow", n_transforms=2, hidden=(8,), patch=2,
                                    max_iter=5, batch_size=32, device="cpu", **params)


class TestFlowMatchingConformance(TestNSFConformance):
    def make_estimator(self, **params):
        return FlowMatchingEstimator(hidden=(8,), max_iter=5, batch_size=32, solver="euler",
                                     n_steps=8, device="cpu", **params)


class TestMADEConformance(TestNSFConformance):
    def make_estimator(self, **params):
        return AutoregressiveDLMEstimator(n_components=2, hidden=(8,), max_iter=5, batch_size=32,
                                          device="cpu", **params)

    def make_data(self):
        return np.random.default_rng(0).integers(0, 6, size=(60, 3)).astype(float), None


_WEIGHTS = ("weights enter stochastic minibatch training by weighted resampling, so integer "
            "weights equal repeated rows in expectation only, not bit for bit")
_INTEGER = ("sklearn feeds integer-valued X; the flow deliberately warns that a continuous "
            "density on integers needs dequantize= (warnings are errors in this suite)")
_MADE_DATA = ("the estimator models non-negative integer data only and rejects sklearn's "
              "continuous/negative test data with a ValueError")


def _expected(est):
    out = {"check_sample_weight_equivalence_on_dense_data": _WEIGHTS}
    if isinstance(est, (FlowDensityEstimator, FlowMatchingEstimator)):
        out.update({k: _INTEGER for k in (
            "check_sample_weights_pandas_series", "check_sample_weights_not_an_array",
            "check_sample_weights_shape", "check_sample_weights_not_overwritten")})
    if isinstance(est, AutoregressiveDLMEstimator):
        out.update({k: _MADE_DATA for k in (
            "check_fit2d_1feature", "check_estimators_dtypes", "check_fit_score_takes_y",
            "check_estimators_fit_returns_self", "check_pipeline_consistency",
            "check_estimators_overwrite_params", "check_estimators_pickle", "check_fit_idempotent",
            "check_n_features_in", "check_fit_check_is_fitted", "check_dict_unchanged",
            "check_dont_overwrite_parameters", "check_methods_subset_invariance",
            "check_methods_sample_order_invariance", "check_readonly_memmap_input",
            "check_f_contiguous_array_estimator", "check_sample_weights_invariance",
            "check_sample_weights_list", "check_fit2d_predict1d",
            "check_n_features_in_after_fitting", "check_positive_only_tag_during_fit",
            "check_estimators_nan_inf", "check_dtype_object")})
    return out


@sklearn_checks(
    [
        FlowDensityEstimator(flow="maf", n_transforms=1, hidden=(8,), max_iter=3, device="cpu",
                             random_state=0),
        FlowDensityEstimator(flow="ebflow_fc", n_transforms=1, max_iter=3, device="cpu",
                             random_state=0),
        FlowMatchingEstimator(hidden=(8,), max_iter=3, solver="euler", n_steps=4, device="cpu",
                              random_state=0),
        AutoregressiveDLMEstimator(n_components=2, hidden=(8,), max_iter=3, device="cpu",
                                   random_state=0),
    ],
    expected_failed_checks=_expected,
)
def test_sklearn_checks(estimator, check):
    check(estimator)


def test_all_estimators_lists_the_family():
    import probest

    names = {n for n, _ in probest.all_estimators("flows")}
    assert names == {"AutoregressiveDLMEstimator", "FlowDensityEstimator", "FlowMatchingEstimator"}


pytestmark = pytest.mark.filterwarnings("ignore:.*is_causal.*:UserWarning")
