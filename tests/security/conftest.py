"""Shared fixtures of the tampered-model suite: small saved models and a JSON editor."""

import json
import pathlib
import types

import numpy as np
import pytest

import probest


@pytest.fixture(scope="module")
def glm_dir(tmp_path_factory):
    """A saved WeightedLogisticRegression (fast to fit) and its data."""
    from probest.shift import WeightedLogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] + 0.5 * rng.normal(size=40) > 0).astype(int)
    path = tmp_path_factory.mktemp("glm") / "m"
    probest.save(WeightedLogisticRegression(alpha=0.5).fit(X, y), path)
    return path


@pytest.fixture(scope="module")
def gmm_dir(tmp_path_factory):
    from probest.mixture import GaussianMixture

    X = np.random.default_rng(1).normal(size=(60, 2))
    path = tmp_path_factory.mktemp("gmm") / "m"
    probest.save(GaussianMixture(2, random_state=0, max_iter=20).fit(X), path)
    return path


@pytest.fixture(scope="module")
def flow_dir(tmp_path_factory):
    from probest.flows import FlowMatchingEstimator

    X = np.random.default_rng(2).normal(size=(40, 2))
    est = FlowMatchingEstimator(hidden=(8,), max_iter=3, batch_size=20, solver="euler",
                                device="cpu", random_state=0).fit(X)
    path = tmp_path_factory.mktemp("flow") / "m"
    probest.save(est, path)
    return path


@pytest.fixture(scope="module")
def shift_dir(tmp_path_factory):
    from probest.datasets import make_covariate_shift
    from probest.shift import CovariateShiftRegressor

    d = make_covariate_shift("B2", 60, random_state=0)
    est = CovariateShiftRegressor(max_iter=30, random_state=0).fit(
        d.X_source, d.y_source, X_target=d.X_target)
    path = tmp_path_factory.mktemp("shift") / "m"
    probest.save(est, path)
    return path


def copy_model(src: pathlib.Path, dst: pathlib.Path) -> pathlib.Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def edit_json(path: pathlib.Path, fn) -> pathlib.Path:
    """Apply ``fn`` to the parsed model.json of ``path`` (in place) and write it back."""
    doc = json.loads((path / "model.json").read_text())
    out = fn(doc)
    (path / "model.json").write_text(json.dumps(doc if out is None else out))
    return path


def assert_refused(path: pathlib.Path, match: str | None = None) -> ValueError:
    """``probest.load(path)`` raises one ValueError that names the model's folder."""
    with pytest.raises(ValueError) as info:
        probest.load(path)
    assert type(info.value) is ValueError
    assert str(path) in str(info.value), f"the error does not name the file: {info.value}"
    if match is not None:
        assert match in str(info.value), str(info.value)
    return info.value


@pytest.fixture
def tools():
    """``copy_model``, ``edit_json`` and ``assert_refused`` for the tests."""
    return types.SimpleNamespace(copy_model=copy_model, edit_json=edit_json,
                                 assert_refused=assert_refused)
