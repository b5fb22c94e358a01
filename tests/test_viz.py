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


# --- weighted draws (SMC particles, ensembles) ------------------------------------------------
def _weighted_normal(n=2000, seed=0):
    """x ~ N(0, 1) with weights exp(x): importance draws of N(1, 1)."""
    x = np.random.default_rng(seed).normal(size=n)
    w = np.exp(x)
    return x, w


def test_resampled_means_match_the_weighted_mean_within_the_measured_spread():
    from probest.viz import _resample_indices

    x, w = _weighted_normal()
    p = w / w.sum()
    m_w = float(np.sum(p * x))
    var_w = float(np.sum(p * (x - m_w) ** 2))
    spread = {}
    for method in ("systematic", "multinomial"):
        errs = [x[_resample_indices(p, method, seed)].mean() - m_w for seed in range(300)]
        spread[method] = float(np.std(errs))
        assert abs(np.mean(errs)) < 4 * spread[method] / np.sqrt(300)  # unbiased
    # multinomial: the mean of n i.i.d. draws from the weighted sample has sd sqrt(var_w / n)
    assert spread["multinomial"] == pytest.approx(np.sqrt(var_w / len(x)), rel=0.2)
    assert spread["systematic"] < 0.5 * spread["multinomial"]  # why systematic is the default
    for method in ("systematic", "multinomial"):
        idata = viz.to_inference_data({"x": x}, weights=w, resampling=method, random_state=7)
        got = float(idata.posterior["x"].values.mean())
        assert abs(got - m_w) < 4 * spread[method], (method, got, m_w)
        # the weighted sample targets N(1, 1): summaries of the resampled posterior say so
        s = viz.import_arviz().summary(idata, kind="stats")
        assert float(s.loc["x", "mean"]) == pytest.approx(got, abs=1e-3)
        assert abs(float(s.loc["x", "mean"]) - 1.0) < 0.25 and abs(float(s.loc["x", "sd"]) - 1.0) < 0.25


def test_weighted_draws_keep_weights_indices_and_ess_in_sample_stats():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 50))
    w = rng.uniform(size=(2, 50))
    w[1, ::2] = 0.0  # half of chain 1 has zero weight
    lp = rng.normal(size=(2, 50))
    idata = viz.to_inference_data({"x": x, "v": np.stack([x, -x], -1)}, chains=None, weights=w,
                                  sample_stats={"lp": lp}, random_state=0)
    post, st = idata.posterior, idata.sample_stats
    idx = st["resample_index"].values
    pn = w / w.sum(1, keepdims=True)
    for c in range(2):
        np.testing.assert_array_equal(post["x"].values[c], x[c, idx[c]])  # chain c copies chain c
        np.testing.assert_array_equal(post["v"].values[c, :, 1], -x[c, idx[c]])
        np.testing.assert_array_equal(st["lp"].values[c], lp[c, idx[c]])  # stats stay aligned
        np.testing.assert_allclose(st["weight"].values[c], pn[c, idx[c]])
        np.testing.assert_allclose(st["ess"].values[c], 1.0 / np.sum(pn[c] ** 2))
    assert np.all(idx[1] % 2 == 1)  # zero-weight draws are never copied
    assert 1.0 <= st["ess"].values.min() and st["ess"].values.max() <= 50.0
    again = viz.to_inference_data({"x": x}, chains=None, weights=w, random_state=0)
    np.testing.assert_array_equal(again.sample_stats["resample_index"].values, idx)
    other = viz.to_inference_data({"x": x}, chains=None, weights=w, random_state=1)
    assert not np.array_equal(other.sample_stats["resample_index"].values, idx)


def test_equal_weights_keep_every_draw_once_and_flat_weights_split_into_chains():
    x = np.arange(40.0)
    idata = viz.to_inference_data({"x": x}, chains=2, weights=np.full(40, 3.0), random_state=0)
    np.testing.assert_array_equal(idata.posterior["x"].values.ravel(), x)
    np.testing.assert_allclose(idata.sample_stats["ess"].values, 20.0)
    np.testing.assert_allclose(idata.sample_stats["weight"].values, 1 / 20)


@pytest.mark.parametrize("weights,match", [
    (np.r_[np.nan, np.ones(9)], "finite"),
    (np.r_[-1.0, np.ones(9)], "non-negative"),
    (np.r_[np.inf, np.ones(9)], "finite"),
    (np.r_[np.zeros(5), np.ones(5)], "all zero"),  # chain 0 of 2 has no weight
    (np.ones(8), "shape"),
    (np.ones((2, 5)), "one entry per draw"),
])
def test_bad_weights_raise(weights, match):
    with pytest.raises(ValueError, match=match):
        viz.to_inference_data({"x": np.arange(10.0)}, chains=2, weights=weights)


def test_bad_resampling_and_misaligned_stats_raise():
    with pytest.raises(ValueError, match="resampling"):
        viz.to_inference_data({"x": np.arange(10.0)}, weights=np.ones(10), resampling="residual")
    with pytest.raises(ValueError, match="sample_stats"):
        viz.to_inference_data({"x": np.arange(10.0)}, weights=np.ones(10),
                              sample_stats={"lp": np.ones(9)})


def test_to_arviz_passes_weights_through():
    x, w = _weighted_normal(n=200)
    idata = viz.to_arviz({"x": x}, weights=w, random_state=0)
    assert set(idata.sample_stats.data_vars) == {"weight", "resample_index", "ess"}
    assert idata.attrs["resampling"] == "systematic"
