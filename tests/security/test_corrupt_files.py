"""Every defect of the files (missing, truncated, malformed, deep) is one ValueError naming it."""

import json

import pytest


def test_missing_folder_and_files(glm_dir, tmp_path, tools):
    tools.assert_refused(tmp_path / "nowhere", "model.json")
    for name in ("model.json", "model.safetensors"):
        path = tools.copy_model(glm_dir, tmp_path / name)
        (path / name).unlink()
        tools.assert_refused(path, name)


@pytest.mark.parametrize("keep", [0, 7, 50, -10])
def test_truncated_safetensors(glm_dir, tmp_path, tools, keep):
    path = tools.copy_model(glm_dir, tmp_path / "m")
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[:keep] if keep >= 0 else data[:keep])
    tools.assert_refused(path, "model.safetensors")


def test_garbage_safetensors_header(glm_dir, tmp_path, tools):
    path = tools.copy_model(glm_dir, tmp_path / "m")
    (path / "model.safetensors").write_bytes((2**40).to_bytes(8, "little") + b"{}")
    tools.assert_refused(path, "model.safetensors")


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", "null", '"x"', "\udcff".encode(
    "utf-8", "surrogatepass").decode("latin-1"), '{"class": 1}',
    '{"class": "probest.shift._glm.WeightedLogisticRegression", "params": {}}'])
def test_bad_json(glm_dir, tmp_path, tools, text):
    path = tools.copy_model(glm_dir, tmp_path / "m")
    (path / "model.json").write_text(text, encoding="latin-1")
    tools.assert_refused(path, "model.json")


def test_binary_json(glm_dir, tmp_path, tools):
    path = tools.copy_model(glm_dir, tmp_path / "m")
    (path / "model.json").write_bytes(b"\xff\xfe\x00garbage")
    tools.assert_refused(path, "model.json")


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_json(glm_dir, tmp_path, tools, depth):
    path = tools.copy_model(glm_dir, tmp_path / "m")
    doc = json.loads((path / "model.json").read_text())
    text = json.dumps(doc)[:-1] + ', "deep_": ' + "[" * depth + "]" * depth + "}"
    (path / "model.json").write_text(text)
    tools.assert_refused(path, "deep")


@pytest.mark.parametrize("key", ["class", "params", "fitted"])
def test_missing_top_level_keys(glm_dir, tmp_path, tools, key):
    path = tools.copy_model(glm_dir, tmp_path / "m")
    tools.edit_json(path, lambda d: d.pop(key))
    tools.assert_refused(path, key)


@pytest.mark.parametrize("fitted", [[], "x", 3, None, {"coef_": {"__dict__": 3}}])
def test_wrong_types(glm_dir, tmp_path, tools, fitted):
    path = tools.copy_model(glm_dir, tmp_path / "m")
    tools.edit_json(path, lambda d: d.__setitem__("fitted", fitted))
    tools.assert_refused(path)


def test_tensor_referenced_but_removed_names_the_tensor(glm_dir, tmp_path, tools):
    from safetensors.torch import load_file, save_file

    path = tools.copy_model(glm_dir, tmp_path / "m")
    t = load_file(str(path / "model.safetensors"))
    t.pop("coef_")
    save_file(t, str(path / "model.safetensors"))
    tools.assert_refused(path, "'coef_'")
