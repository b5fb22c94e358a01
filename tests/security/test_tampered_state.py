"""Tampered parameters, attributes, dtypes, devices, shapes, modules and sub-estimators:
one ValueError naming the file, and nothing set or called."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import probest


def _tensors(path):
    return load_file(str(path / "model.safetensors"))


def _save_tensors(path, tensors):
    save_file(tensors, str(path / "model.safetensors"))


# -- parameters --------------------------------------------------------------------------
@pytest.mark.parametrize("params", [
    {"__class__": 1}, {"fit": 1}, {"alpha": {"__repr__": "Evil()"}}, {"alpha": {"a": 1}},
    {"alpha": [[1]]}, {"no_such_param": 3}, [], "alpha",
    {"alpha": {"__ndarray__": [1.0], "dtype": "object"}},
    {"alpha": {"__ndarray__": [1.0, "os.system"], "dtype": "float64"}},
    {"alpha": {"__ndarray__": [[1.0], [1.0, 2.0]], "dtype": "float64"}},
    {"alpha": {"__ndarray__": [{"__repr__": "x"}], "dtype": "float64"}},
    {"alpha": {"__ndarray__": [1.0], "dtype": "float64", "extra": 1}},
])
def test_bad_params_are_refused(glm_dir, tmp_path, tools, params):
    path = tools.copy_model(glm_dir, tmp_path / "m")
    tools.edit_json(path, lambda d: d.__setitem__("params", params))
    tools.assert_refused(path)


def test_array_parameters_round_trip_exactly(tmp_path):
    """Array-valued parameters (initial values) are written as plain numbers with their dtype
    and read back bit for bit, without running any code."""
    import numpy as np

    from probest.mixture import GaussianMixture

    X = np.random.default_rng(0).normal(size=(200, 2))
    m0 = np.array([[0.1, -1.0 / 3.0], [1.0, np.pi]])
    g = GaussianMixture(2, means_init=m0, weights_init=np.array([0.3, 0.7]), device="cpu",
                        random_state=0).fit(X)
    probest.save(g, tmp_path / "g")
    h = probest.load(tmp_path / "g")
    assert h.means_init.dtype == np.float64
    np.testing.assert_array_equal(h.means_init, m0)
    np.testing.assert_array_equal(h.predict_proba(X), g.predict_proba(X))


def test_nan_constant_in_json_is_refused(glm_dir, tmp_path, tools):
    path = tools.copy_model(glm_dir, tmp_path / "m")
    text = (path / "model.json").read_text().replace('"alpha": 0.5', '"alpha": NaN')
    assert "NaN" in text
    (path / "model.json").write_text(text)
    tools.assert_refused(path, "NaN")


# -- attributes ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["evil_", "predict", "__class__", "_private_", "fit",
                                  "__dict__", "coef", "a.b_", "X_fit_"])
def test_undeclared_attribute_names_are_refused(glm_dir, tmp_path, tools, name):
    path = tools.copy_model(glm_dir, tmp_path / "m")
    tools.edit_json(path, lambda d: d["fitted"].__setitem__(name, 1))
    tools.assert_refused(path, repr(name))


@pytest.mark.parametrize("name", ["load", "save", "manual_seed", "_probest_evil", "Tensor",
                                  "float64 ", "torch.float64", 7])
def test_dtype_names_outside_the_whitelist_are_refused(glm_dir, tmp_path, tools, monkeypatch,
                                                       name):
    called = []
    monkeypatch.setattr(torch, "_probest_evil", lambda *a: called.append(a), raising=False)
    path = tools.copy_model(glm_dir, tmp_path / "m")
    tools.edit_json(path, lambda d: d["fitted"].__setitem__("dtype_", {"__dtype__": name}))
    tools.assert_refused(path, "dtype")
    assert not called


@pytest.mark.parametrize("dev", ["meta", "cuda:0; rm -rf", "cpu:x", "ftp", 3])
def test_device_names_outside_the_whitelist_are_refused(glm_dir, tmp_path, tools, dev):
    path = tools.copy_model(glm_dir, tmp_path / "m")
    tools.edit_json(path, lambda d: d["fitted"].__setitem__("device_", {"__device__": dev}))
    tools.assert_refused(path, "device")


@pytest.mark.parametrize("value", [
    {"__tensor__": "missing", "numpy": True},  # a tensor not in the safetensors file
    {"__strarray__": [1, 2], "dtype": "O"}, {"__strarray__": ["a"], "dtype": "V"},
    {"__float__": "1e400"}, {"__float__": "__import__('os')"},
    {"__items__": [[{"__tuple__": [{"x": 1}]}, 1]]}, {"__items__": [[1]]},
    {"__unknown__": 1}, {"__tensor__": "coef_", "numpy": True, "extra": 1},
])
def test_malformed_markers_are_refused(glm_dir, tmp_path, tools, value):
    path = tools.copy_model(glm_dir, tmp_path / "m")
    tools.edit_json(path, lambda d: d["fitted"].__setitem__("loglik_", value))
    tools.assert_refused(path)


def test_extra_tensor_in_the_safetensors_file_is_refused(glm_dir, tmp_path, tools):
    path = tools.copy_model(glm_dir, tmp_path / "m")
    t = _tensors(path)
    _save_tensors(path, {**t, "smuggled": torch.zeros(3)})
    tools.assert_refused(path, "unexpected tensors")


def test_wrong_shape_and_non_finite_declared_arrays_are_refused(gmm_dir, tmp_path, tools):
    meta = json.loads((gmm_dir / "model.json").read_text())["fitted"]
    key = meta["means_"]["__tensor__"]
    t = _tensors(gmm_dir)
    for bad, why in [(torch.zeros(3, 2, dtype=torch.float64), "shape"),
                     (torch.zeros(2, dtype=torch.float64), "dimensions"),
                     (torch.full_like(t[key], float("nan")), "non-finite")]:
        path = tools.copy_model(gmm_dir, tmp_path / why)
        _save_tensors(path, {**t, key: bad})
        tools.assert_refused(path, why)
    assert probest.load(tools.copy_model(gmm_dir, tmp_path / "ok")).means_.shape == (2, 2)


# -- torch modules -------------------------------------------------------------------------
def test_tampered_module_state_is_refused(flow_dir, tmp_path, tools):
    t = _tensors(flow_dir)
    key = next(k for k in t if k.startswith("model_.") and t[k].ndim == 2)
    cases = {
        "missing": {k: v for k, v in t.items() if k != key},
        "shape": {**t, key: torch.zeros(t[key].shape[0] + 1, t[key].shape[1], dtype=t[key].dtype)},
        "dtype": {**t, key: torch.zeros(t[key].shape, dtype=torch.int64)},
        "unexpected": {**t, "model_.evil": torch.zeros(1)},
    }
    for why, tensors in cases.items():
        path = tools.copy_model(flow_dir, tmp_path / why)
        _save_tensors(path, tensors)
        tools.assert_refused(path)


@pytest.mark.parametrize("modules", [["n_iter_"], ["evil_"], "model_", [["model_"]],
                                     ["model_", "model_"]])
def test_tampered_module_list_is_refused(flow_dir, tmp_path, tools, modules):
    path = tools.copy_model(flow_dir, tmp_path / "m")
    tools.edit_json(path, lambda d: d["fitted"].__setitem__("__modules__", modules))
    tools.assert_refused(path)


def test_modules_in_a_class_without_modules_are_refused(glm_dir, tmp_path, tools):
    path = tools.copy_model(glm_dir, tmp_path / "m")
    tools.edit_json(path, lambda d: d["fitted"].__setitem__("__modules__", ["coef_"]))
    tools.assert_refused(path)


# -- sub-estimators ---------------------------------------------------------------------------
@pytest.mark.parametrize("cls", ["os.system", "probest.cli.main", "probest.base.TorchEstimator",
                                 "probest._optional.import_optional", None])
def test_sub_estimator_class_outside_the_registry_is_refused(shift_dir, tmp_path, tools, cls):
    path = tools.copy_model(shift_dir, tmp_path / "m")
    tools.edit_json(path, lambda d: d["fitted"]["estimator_"]["__estimator__"].__setitem__(
        "class", cls))
    tools.assert_refused(path, "not a probest estimator")


def test_self_referencing_sub_estimators_are_refused(shift_dir, tmp_path, tools):
    # the model's own document nested as its sub-estimator, again and again
    path = tools.copy_model(shift_dir, tmp_path / "m")
    doc = json.loads((path / "model.json").read_text())
    child = {"class": doc["class"], "params": doc["params"], "fitted": doc["fitted"]}
    for _ in range(8):
        child = {"class": doc["class"], "params": doc["params"],
                 "fitted": {**doc["fitted"], "estimator_": {"__estimator__": child}}}
    tools.edit_json(path, lambda d: d.__setitem__("fitted", child["fitted"]))
    tools.assert_refused(path)


@pytest.mark.parametrize("value", [{"__estimator__": []}, {"__estimator__": {"class": "x"}},
                                   {"__reference__": {"source": "x", "sha256": "0"}}])
def test_malformed_children_are_refused(shift_dir, tmp_path, tools, value):
    path = tools.copy_model(shift_dir, tmp_path / "m")
    tools.edit_json(path, lambda d: d["fitted"].__setitem__("estimator_", value))
    tools.assert_refused(path)


def test_unsaved_attribute_cannot_be_smuggled_in(shift_dir, tmp_path, tools):
    path = tools.copy_model(shift_dir, tmp_path / "m")
    tools.edit_json(path, lambda d: d["fitted"].__setitem__("ratio_estimator_", 1))
    tools.assert_refused(path, "ratio_estimator_")


def test_tampered_size_is_refused_before_allocating(flow_dir, tmp_path, tools, monkeypatch):
    # n_features_in_ = 10**9 would build a velocity net of billions of weights
    path = tools.copy_model(flow_dir, tmp_path / "m")
    tools.edit_json(path, lambda d: d["fitted"].__setitem__("n_features_in_", 10**9))
    allocated = []
    real = torch.nn.Linear.__init__

    def spy(self, i, o, *a, **kw):
        if kw.get("device") is None and i * o > 10**8 and str(torch.get_default_device()) != "meta":
            allocated.append((i, o))
            raise MemoryError("test: refused a huge allocation")
        real(self, i, o, *a, **kw)

    monkeypatch.setattr(torch.nn.Linear, "__init__", spy)
    tools.assert_refused(path, "shape")
    assert not allocated
