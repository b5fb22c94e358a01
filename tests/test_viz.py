"""probest.viz: ArviZ conversion on the installed ArviZ and the 1.x from_dict signature."""

import numpy as np
import pytest

from probest import viz


def test_to_inference_data_adds_chain_axis():
    idata = viz.to_inference_data({"a": np.arange(10.0), "b": np.ones((10, 3))}, chains=2)
    assert idata.posterior["a"].dims[:2] == ("chain", "draw")
    assert idata.posterior["a"].shape == (2, 5)
    assert idata.posterior["b"].shape == (2, 5, 3)
    np.testing.assert_array_equal(idata.posterior["a"].values.ravel(), np.arange(10.0))


def test_to_inference_data_validates():
    with pytest.raises(ValueError, match="split"):
        viz.to_inference_data({"a": np.arange(9.0)}, chains=2)
    with pytest.raises(ValueError, match="chain, draw"):
        viz.to_inference_data({"a": np.arange(9.0)}, chains=None)
    with pytest.raises(ValueError, match="at least one"):
        viz.to_inference_data({})


def test_summary_and_plot_work(tmp_path):
    az = viz.import_arviz()
    rng = np.random.default_rng(0)
    idata = viz.to_inference_data({"mu": rng.normal(size=(2, 200))}, chains=None,
                                  sample_stats={"lp": rng.normal(size=(2, 200))})
    s = az.summary(idata)
    assert abs(float(s.loc["mu", "mean"])) < 0.2
    path = viz.plot_posterior(idata, path=tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000 and path.endswith("p.png")


def test_gaussian_inference_data_moments_and_names():
    cov = np.array([[1.0, 0.5], [0.5, 2.0]])
    idata = viz.gaussian_inference_data(np.array([1.0, -1.0]), cov, names={"a": 0, "b": 1},
                                        n_draws=20000, random_state=0,
                                        transforms={"b": np.exp})
    a = idata.posterior["a"].values.ravel()
    # 20000 draws: standard error of the mean 1/sqrt(20000) ~ 0.007
    assert abs(a.mean() - 1.0) < 0.03 and abs(a.var() - 1.0) < 0.05
    assert np.all(idata.posterior["b"].values > 0)
    with pytest.raises(ValueError, match="positive semi-definite"):
        viz.gaussian_inference_data(np.zeros(2), -np.eye(2))
    with pytest.raises(ValueError, match="finite"):
        viz.gaussian_inference_data(np.array([np.nan, 0.0]), np.eye(2))


def test_arviz_1x_from_dict_signature_is_used(monkeypatch):
    """ArviZ 1.x takes ``from_dict(data_dict, ...)``; emulate it and check the call shape."""
    calls = {}

    class FakeTree:
        def __init__(self):
            self.attrs = {}

    def from_dict(data, *, name=None, sample_dims=None, coords=None, dims=None):
        calls["data"] = data
        return FakeTree()

    class FakeAz:
        pass

    FakeAz.from_dict = staticmethod(from_dict)
    monkeypatch.setattr(viz, "import_arviz", lambda: FakeAz)
    out = viz.to_inference_data({"x": np.zeros(4)}, attrs={"k": 1})
    assert set(calls["data"]) == {"posterior"} and calls["data"]["posterior"]["x"].shape == (1, 4)
    assert out.attrs == {"k": 1}


def test_to_arviz_dispatch():
    idata = viz.to_arviz({"a": np.zeros(12)}, chains=3)
    assert idata.posterior["a"].shape == (3, 4)
    with pytest.raises(TypeError, match="cannot convert"):
        viz.to_arviz(3)
