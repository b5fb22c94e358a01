"""Saving without pickle: safetensors + JSON."""

import json

import numpy as np
import pytest
import torch

import probest
from probest._io import join_state, split_state


def test_split_join_round_trip():
    state = {
        "a_": np.arange(3.0), "t_": torch.ones(2, dtype=torch.float32), "s_": 1.5, "n_": None,
        "l_": [np.zeros(2), 3, "x"], "d_": {"k": np.ones(1), "inf": float("inf")},
        "classes_": np.array(["a", "b"], dtype=object), "dev_": torch.device("cpu"),
        "dt_": torch.float64, "i_": np.int64(4),
        "cv_": {(0.5, None): 1.0, (np.float64(2.0), 1e-3): np.float64(2.0)}, "ik_": {3: "a"},
    }
    tensors, meta = split_state(state)
    json.dumps(meta)  # metadata is plain JSON
    back = join_state(tensors, meta)
    np.testing.assert_array_equal(back["a_"], state["a_"])
    assert torch.equal(back["t_"], state["t_"]) and back["s_"] == 1.5 and back["n_"] is None
    assert back["l_"][1:] == [3, "x"] and back["d_"]["inf"] == float("inf")
    assert list(back["classes_"]) == ["a", "b"] and back["dev_"] == torch.device("cpu")
    assert back["dt_"] is torch.float64 and back["i_"] == 4
    assert back["cv_"] == {(0.5, None): 1.0, (2.0, 1e-3): 2.0} and back["ik_"] == {3: "a"}


def test_unsavable_attribute_is_a_clear_error():
    with pytest.raises(TypeError, match="without pickle"):
        split_state({"model_": object()}, owner="Thing")


def test_save_load_glm(tmp_path):
    from sklearn.datasets import make_classification

    from probest.shift import WeightedLogisticRegression

    X, y = make_classification(50, 3, n_informative=2, n_redundant=0, random_state=0)
    est = WeightedLogisticRegression(alpha=0.5).fit(X, y)
    probest.save(est, tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["model.json", "model.safetensors"]
    back = probest.load(tmp_path / "m")
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    assert back.get_params() == est.get_params()


def test_load_refuses_foreign_classes(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.json").write_text(json.dumps({"class": "os.system", "params": {}, "fitted": {}}))
    with pytest.raises(ValueError, match="not a probest estimator"):
        probest.load(tmp_path / "m")


def test_module_attributes_round_trip_through_rebuild_hook(tmp_path):
    import torch

    from probest.base import TorchEstimator

    class _Net(TorchEstimator):
        def __init__(self, width=3, dtype="float64"):
            self.width = width
            self.dtype = dtype

        def fit(self, X=None, y=None):
            with self._fit_context():
                self.net_ = torch.nn.Linear(2, self.width).to(self.dtype_)
                self.scale_ = np.array([2.0])
            return self

        def _rebuild_modules(self):
            return {"net_": torch.nn.Linear(2, self.width)}

    est = _Net().fit()
    tensors, meta = est._get_fitted_state()
    assert meta["__modules__"] == ["net_"] and "net_.weight" in tensors
    back = _Net()
    back._set_fitted_state(tensors, meta)
    assert back.net_.weight.dtype == torch.float64  # saved dtype kept (assign=True)
    assert torch.equal(back.net_.weight, est.net_.weight) and not back.net_.training
    assert back.device_ == torch.device("cpu") and back.scale_[0] == 2.0

    class _NoHook(_Net):
        _rebuild_modules = TorchEstimator._rebuild_modules

    with pytest.raises(NotImplementedError, match="_rebuild_modules"):
        _NoHook()._set_fitted_state(tensors, meta)
