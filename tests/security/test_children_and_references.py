"""Round trips of fitted children (sub-estimators, torch modules) and of parts saved by
reference (a frozen base model: recorded by source + sha256, never its weights)."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import probest
from probest._persist import content_hash, reference
from probest.base import ProbestEstimator


def _make_base(path, seed=0):
    """A small torch module standing in for a frozen transformer, stored as safetensors."""
    g = torch.Generator().manual_seed(seed)
    save_file({"weight": torch.randn(4, 3, generator=g, dtype=torch.float64),
               "bias": torch.randn(4, generator=g, dtype=torch.float64)}, str(path))
    return path


def _load_base(source):
    net = torch.nn.Linear(3, 4).to(torch.float64).requires_grad_(False)
    net.load_state_dict(load_file(str(source)))
    return net.eval()


class _Adapted(ProbestEstimator):
    """A head fitted on top of a frozen base that is saved by reference."""

    _fitted_attributes = (reference("base_", source="base"), "head_")

    def __init__(self, base="base.safetensors"):
        self.base = base

    def fit(self, X, y):
        self.base_ = _load_base(self.base)
        H = self._features(X)
        self.head_ = np.linalg.lstsq(H, y, rcond=None)[0]
        self.n_features_in_ = X.shape[1]
        return self

    def _features(self, X):
        with torch.no_grad():
            return self.base_(torch.tensor(np.asarray(X, dtype=np.float64))).numpy()

    def predict(self, X):
        return self._features(X) @ self.head_

    def _resolve_reference(self, name, source):
        return _load_base(source)


@pytest.fixture
def adapted(tmp_path, monkeypatch):
    from probest import _persist

    # register the toy like a family's class (only code can extend the registry)
    monkeypatch.setattr(_persist, "_REGISTERED", dict(_persist._REGISTERED))
    _persist.register_estimator(_Adapted)
    base = _make_base(tmp_path / "base.safetensors")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    est = _Adapted(base=str(base)).fit(X, X @ [1.0, -2.0, 0.5])
    probest.save(est, tmp_path / "m")
    return est, X, tmp_path


def test_reference_round_trip_gives_identical_outputs(adapted):
    est, X, tmp = adapted
    saved = load_file(str(tmp / "m" / "model.safetensors"))
    assert not [k for k in saved if k.startswith("base_")], "the base's weights were written"
    ref = json.loads((tmp / "m" / "model.json").read_text())["fitted"]["base_"]["__reference__"]
    assert ref == {"source": est.base, "sha256": content_hash(est.base_)}
    back = probest.load(tmp / "m")
    np.testing.assert_array_equal(back.predict(X), est.predict(X))


def test_changed_reference_is_refused(adapted, tools):
    _, _, tmp = adapted
    _make_base(tmp / "base.safetensors", seed=1)  # the referenced model changed on disk
    tools.assert_refused(tmp / "m", "sha256")


def test_tampered_hash_or_source_is_refused(adapted, tools):
    _, _, tmp = adapted
    m = tools.copy_model(tmp / "m", tmp / "hash")
    tools.edit_json(m, lambda d: d["fitted"]["base_"]["__reference__"].__setitem__("sha256", "0" * 64))
    tools.assert_refused(m, "sha256")
    other = _make_base(tmp / "other.safetensors", seed=2)
    m = tools.copy_model(tmp / "m", tmp / "source")
    tools.edit_json(m, lambda d: d["fitted"]["base_"]["__reference__"].__setitem__("source",
                                                                                 str(other)))
    tools.assert_refused(m, "names")
    m = tools.copy_model(tmp / "m", tmp / "plain")  # the reference replaced by inline data
    tools.edit_json(m, lambda d: d["fitted"].__setitem__("base_", [1, 2]))
    tools.assert_refused(m, "by reference")


def test_only_declared_estimators_can_be_registered():
    from probest._persist import register_estimator

    class _Undeclared(ProbestEstimator):
        pass

    for bad in (_Undeclared, dict, len):
        with pytest.raises(TypeError, match="declare"):
            register_estimator(bad)


def test_content_hash_sees_every_change(tmp_path):
    a = torch.nn.Linear(2, 2)
    h = content_hash(a)
    assert content_hash(a) == h and len(h) == 64
    with torch.no_grad():
        a.weight[0, 0] += 1e-7
    assert content_hash(a) != h
    assert content_hash(torch.zeros(2)) != content_hash(torch.zeros(2, dtype=torch.float64))
    assert content_hash(torch.zeros(2, 1)) != content_hash(torch.zeros(1, 2))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "w.bin").write_bytes(b"abc")
    hd = content_hash(tmp_path / "d")
    (tmp_path / "d" / "w.bin").write_bytes(b"abd")
    assert content_hash(tmp_path / "d") != hd


def test_sub_estimator_round_trip(shift_dir):
    from probest.datasets import make_covariate_shift
    from probest.shift import CovariateShiftRegressor, WeightedLinearRegression

    d = make_covariate_shift("B2", 60, random_state=0)
    est = CovariateShiftRegressor(max_iter=30, random_state=0).fit(
        d.X_source, d.y_source, X_target=d.X_target)
    doc = json.loads((shift_dir / "model.json").read_text())
    child = doc["fitted"]["estimator_"]["__estimator__"]
    assert child["class"] == "probest.shift._glm.WeightedLinearRegression"
    assert all(k.startswith("estimator_/") or "/" not in k
               for k in load_file(str(shift_dir / "model.safetensors")))
    back = probest.load(shift_dir)
    assert type(back.estimator_) is WeightedLinearRegression and back.ratio_estimator_ is None
    np.testing.assert_array_equal(back.estimator_.coef_, est.estimator_.coef_)
    np.testing.assert_array_equal(back.predict(d.X_target), est.predict(d.X_target))


def test_module_children_round_trip(flow_dir):
    back = probest.load(flow_dir)
    assert isinstance(back.model_, torch.nn.Module) and not back.model_.training
    X = np.random.default_rng(2).normal(size=(40, 2))
    again = probest.load(flow_dir)
    np.testing.assert_array_equal(back.score_samples(X[:5]), again.score_samples(X[:5]))


def test_undeclared_fitted_attribute_cannot_be_saved(tmp_path):
    from probest.shift import WeightedLogisticRegression

    X = np.random.default_rng(0).normal(size=(30, 2))
    est = WeightedLogisticRegression(alpha=1.0).fit(X, (X[:, 0] > 0).astype(int))
    est.extra_ = 1.0
    with pytest.raises(TypeError, match="not declared"):
        probest.save(est, tmp_path / "m")


def test_unregistered_sub_estimator_is_a_clear_error():
    from probest.base import TorchEstimator

    class _Holder(TorchEstimator):
        _fitted_attributes = ("inner_",)

        def __init__(self):
            pass

    class _Inner(TorchEstimator):
        _fitted_attributes = ()

        def __init__(self):
            pass

    h = _Holder()
    h.inner_ = _Inner()
    with pytest.raises(TypeError, match="built-in probest estimators"):
        h._get_fitted_state()
