"""Reliability of the flow estimators at the boundary (issue 10, defects 5, 7 and 8):
``sample`` sizes, input scales that overflow, far rows at predict time, degenerate data."""

import warnings

import numpy as np
import pytest
import torch

from probest.flows import (
    AutoregressiveDLMEstimator,
    DegenerateDataWarning,
    FlowDensityEstimator,
    FlowMatchingEstimator,
)

_TINY = {
    "density": lambda **kw: FlowDensityEstimator(flow="maf", n_transforms=1, hidden=(8,),
                                                 max_iter=15, batch_size=64, device="cpu",
                                                 random_state=0, **kw),
    "matching": lambda **kw: FlowMatchingEstimator(hidden=(8,), max_iter=15, batch_size=64,
                                                   solver="euler", n_steps=4, device="cpu",
                                                   random_state=0, **kw),
}
_CONTINUOUS = sorted(_TINY)


def _X(n=120, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 2))


@pytest.fixture(scope="module")
def fitted():
    out = {k: make().fit(_X()) for k, make in _TINY.items()}
    Xi = np.random.default_rng(0).integers(0, 4, size=(100, 3)).astype(float)
    out["dlm"] = AutoregressiveDLMEstimator(n_components=2, hidden=(8,), max_iter=10,
                                            batch_size=50, device="cpu", random_state=0).fit(Xi)
    return out


# --- defect 7: one rule for sample sizes, in probest's words -------------------------------
@pytest.mark.parametrize("kind", ["density", "matching", "dlm"])
@pytest.mark.parametrize("n", [0, -1, 1.5, "3", True, None])
def test_sample_needs_an_int_of_at_least_one(fitted, kind, n):
    with pytest.raises(ValueError, match="Invalid value for 'n_samples'"):
        fitted[kind].sample(n)


@pytest.mark.parametrize("kind", ["density", "matching", "dlm"])
def test_sample_accepts_numpy_ints(fitted, kind):
    assert fitted[kind].sample(np.int64(3), random_state=0).shape[0] == 3


# --- defect 7: inputs whose squares overflow are refused before torch sees them ------------
@pytest.mark.parametrize("kind", _CONTINUOUS)
@pytest.mark.parametrize("value", [1e300, -1e150, 1e20])
def test_fit_refuses_entries_whose_squares_overflow(kind, value):
    X = _X()
    X[5, 1] = value
    with pytest.raises(ValueError, match=r"entries up to .* \(rows \[5\]\); squared distances .* "
                                         r"overflow float32.*Rescale X"):
        _TINY[kind]().fit(X)


@pytest.mark.parametrize("coupling", ["exact_ot", "sinkhorn"])
def test_matching_fit_at_1e150_raises_no_torch_message(coupling):
    X = _X()
    X[0] = 1e150
    with pytest.raises(ValueError, match="overflow"):
        _TINY["matching"](coupling=coupling).fit(X)


def test_coupling_with_overflowing_costs_says_so():
    from probest.flows import _ode

    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(8, 2, generator=gen)
    x1 = torch.full((8, 2), 3e38)  # float32: the squared distances are inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # POT's own warnings about the inf costs
        with pytest.raises(ValueError, match="coupling of a minibatch failed.*overflow"):
            _ode.couple(x0, x1, "exact_ot", 0.05, gen)


@pytest.mark.parametrize("kind", _CONTINUOUS)
def test_large_but_representable_scales_still_fit(kind):
    X = 1e15 * _X()  # squares ~1e31, far below float32's 3.4e38
    est = _TINY[kind]().fit(X)
    assert np.all(np.isfinite(est.score_samples(X[:5])))


# --- defect 5: a far row at predict time is named, never a silent NaN -----------------------
@pytest.mark.parametrize("kind", _CONTINUOUS)
@pytest.mark.parametrize("method", ["score_samples", "transform"])
@pytest.mark.parametrize("value", [1e300, -1e300, 1e150])
def test_far_rows_at_predict_raise_naming_the_rows(fitted, kind, method, value):
    X = _X(4, seed=1)
    X[2, 0] = value
    with pytest.raises(ValueError, match=r"rows \[2\] of X give non-finite values"):
        getattr(fitted[kind], method)(X)
    out = getattr(fitted[kind], method)(np.delete(X, 2, axis=0))  # the other rows still work
    assert np.all(np.isfinite(out))


def test_bits_per_dim_of_far_rows_raises(fitted):
    X = _X(4, seed=1)
    X[0] = 1e300
    with pytest.raises(ValueError, match=r"rows \[0\]"):
        fitted["density"].bits_per_dim(X)


def test_logit_support_keeps_its_exact_minus_inf():
    X = np.random.default_rng(0).uniform(size=(120, 2))
    est = _TINY["density"](preprocess="logit").fit(X)
    lp = est.score_samples(np.array([[0.5, 0.5], [5.0, 0.5], [1e300, 0.5]]))
    assert np.isfinite(lp[0]) and lp[1] == -np.inf and lp[2] == -np.inf


def test_dlm_names_huge_values_briefly(fitted):
    X = np.zeros((2, 3))
    X[1, 0] = 1e300
    with pytest.raises(ValueError, match=r"the value 1e\+300 >= n_levels=4"):
        fitted["dlm"].score_samples(X)


# --- defect 8: degenerate data are never reported as converged ------------------------------
@pytest.mark.parametrize("kind", _CONTINUOUS)
def test_identical_rows_raise(kind):
    X = np.tile([[0.3, -1.2]], (60, 1))
    with pytest.raises(ValueError, match="all 60 rows of X are identical"):
        _TINY[kind]().fit(X)


def test_identical_positive_weight_rows_raise():
    X = _X()
    w = np.zeros(len(X))
    w[[3, 7]] = 1.0
    X[7] = X[3]
    with pytest.raises(ValueError, match="identical"):
        _TINY["density"]().fit(X, sample_weight=w)


@pytest.mark.parametrize("kind", _CONTINUOUS)
def test_constant_column_warns_and_is_not_converged(kind):
    X = _X()
    X[:, 1] = 2.5
    with pytest.warns(DegenerateDataWarning, match=r"constant columns \[1\]"):
        est = _TINY[kind]().fit(X)
    assert est.converged_ is False


def test_degenerate_warning_is_a_convergence_warning():
    from sklearn.exceptions import ConvergenceWarning

    assert issubclass(DegenerateDataWarning, ConvergenceWarning)


def test_dequantized_constant_column_is_not_degenerate():
    X = np.random.default_rng(0).integers(0, 4, size=(120, 3)).astype(float)
    X[:, 0] = 0.0  # a blank pixel: dequantization noise fills it
    with warnings.catch_warnings():
        warnings.simplefilter("error", DegenerateDataWarning)
        est = _TINY["density"](dequantize="uniform").fit(X)
    assert est.converged_ is True


def test_ordinary_fit_still_converges(fitted):
    assert fitted["density"].converged_ is True and fitted["matching"].converged_ is True


def test_dlm_fit_names_huge_levels_briefly():
    X = np.random.default_rng(0).integers(0, 4, size=(20, 2)).astype(float)
    X[0, 0] = 1e300
    with pytest.raises(ValueError, match=r"the value 1e\+300 >= n_levels=1e\+300; raise") as err:
        AutoregressiveDLMEstimator(max_iter=1, device="cpu").fit(X)
    assert len(str(err.value)) < 200
