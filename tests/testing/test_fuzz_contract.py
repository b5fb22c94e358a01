"""The fuzz contract (probest.testing._fuzz) and the base's fitted-state check catch what they
are meant to catch."""

import time

import numpy as np
import pytest
import torch
from sklearn.utils.validation import validate_data

from probest.base import ProbestEstimator
from probest.testing._fuzz import COUNTS, fit_cases, predict_cases, run_case


def _raise(exc):
    def call():
        raise exc
    return call


@pytest.mark.parametrize("call, match", [
    (_raise(RuntimeError("boom")), "RuntimeError instead of a clear"),
    (_raise(ValueError("linalg.cholesky: not positive-definite")), "internal words"),
    (_raise(TypeError("INTERNAL ASSERT FAILED, report a bug to PyTorch")), "internal words"),
    (_raise(IndexError("index 3 is out of bounds")), "IndexError instead"),
    (_raise(ValueError("")), "empty message"),
    (lambda: np.array([1.0, np.nan]), "non-finite output"),
    (lambda: (np.ones(2), np.array([np.inf])), "non-finite output"),
    (lambda: time.sleep(5), "TimeoutError"),
])
def test_run_case_fails_on_contract_breaches(call, match):
    before = COUNTS["_probe"]["fail"]
    with pytest.raises(AssertionError, match=match):
        run_case("_probe", "probe", call, seconds=1)
    assert COUNTS["_probe"]["fail"] == before + 1


def test_run_case_counts_clear_errors_and_finite_outputs():
    c0 = dict(COUNTS["_ok"])
    assert run_case("_ok", "e", _raise(ValueError("Input X contains NaN."))) == "error"
    assert run_case("_ok", "f", lambda: np.arange(3.0)) == "finite"
    assert run_case("_ok", "labels", lambda: np.array(["a", "b"])) == "finite"
    c = COUNTS["_ok"]
    assert (c["tried"], c["error"], c["finite"]) == (c0.get("tried", 0) + 3, c0.get("error", 0) + 1,
                                                     c0.get("finite", 0) + 2)


class _Bad(ProbestEstimator):
    _nonfinite_ok = ("bound_",)  # a documented -inf bound

    def __init__(self, what="scale_"):
        self.what = what

    def fit(self, X, y=None):
        X = validate_data(self, X)
        self.bound_ = -np.inf
        self.ok_ = {"a": [np.ones(2), torch.ones(2)], "n": 3, "s": "text"}
        values = {"scale_": np.array([1.0, np.inf]), "theta_": torch.tensor([0.0, float("nan")]),
                  "loss_": float("nan"), "nested_": {"k": [np.array([np.nan])]},
                  "net_": torch.nn.Linear(2, 1)}
        if self.what == "net_":
            values["net_"].bias.data.fill_(float("inf"))
        if self.what in values:
            setattr(self, self.what, values[self.what])
        return self


class _Child(_Bad):
    def fit(self, X, y=None):  # a subclass's own fit is checked too
        super().fit(X)
        self.late_ = np.array([np.inf]) if self.what == "late_" else np.zeros(1)
        return self


@pytest.mark.parametrize("what", ["scale_", "theta_", "loss_", "nested_", "net_"])
def test_fit_never_ends_with_a_non_finite_fitted_attribute(what):
    with pytest.raises(ValueError, match=rf"_Bad\.fit ended with a non-finite {what}: .*Rescale"):
        _Bad(what).fit(np.ones((3, 2)))


def test_declared_non_finite_attributes_and_subclass_fits():
    est = _Bad("none").fit(np.ones((3, 2)))
    assert est.bound_ == -np.inf  # declared in _nonfinite_ok
    assert _Child("none").fit(np.ones((3, 2))).late_.tolist() == [0.0]
    with pytest.raises(ValueError, match=r"_Child\.fit ended with a non-finite late_"):
        _Child("late_").fit(np.ones((3, 2)))
    assert _Bad.fit.__wrapped__.__name__ == "fit"  # the signature/docstring survive the wrap


def test_case_tables_name_every_requested_input():
    tab = fit_cases("tabular", classifier=True, has_y=True)
    for name in ("entry set to value", "constant column", "duplicate rows", "0 rows", "1 row",
                 "2 rows", "1-D X", "3-D X", "object strings", "bool X", "0 features",
                 "one class", "string labels", "short y"):
        assert name in tab
    cl = fit_cases("clients", classifier=False, has_y=False)
    for name in ("empty client", "ragged widths", "value in one client", "one client"):
        assert name in cl
    assert "wrong n_features" in predict_cases()
    X, y = np.arange(12.0).reshape(4, 3), np.array([0, 1, 0, 1])
    Xb, _ = tab["entry set to value"](X, y, np.nan, 5, 4)
    assert np.isnan(Xb[1, 1]) and np.isnan(Xb).sum() == 1 and not np.isnan(X).any()
