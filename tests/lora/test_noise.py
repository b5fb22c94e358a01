"""The maths of BLoB and TFB on peft LoRA layers of a tiny random BERT: sigma -> 0, SVD
invariance, flipout moments, the closed-form KL, the sigma search."""

import math
import pathlib
import tempfile
import warnings

import pytest
import torch
from torch import nn

from probest.lora import _noise, _tfb


def _tiny() -> str:
    """A tiny random BERT (hidden 16, 2 layers, MiniLM's tokenizer), saved once per machine."""
    from probest.lora import make_tiny_backbone

    return str(make_tiny_backbone(pathlib.Path(tempfile.gettempdir()) / "probest-tiny-bert-v1"))


def _peft_bert(seed=0, r=4):
    import peft

    from probest.lora._backbone import load_backbone

    base, _ = load_backbone(pathlib.Path(_tiny()), None, torch.float32)
    cfg = peft.LoraConfig(r=r, lora_alpha=8, target_modules=["query", "value"], lora_dropout=0.0)
    with warnings.catch_warnings():  # peft asks transformers 5 a deprecated property
        warnings.filterwarnings("ignore", category=FutureWarning)
        model = peft.get_peft_model(base, cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # a trained-looking LoRA: B != 0 (peft initialises B = 0)
        for layer, ad in _noise.lora_layers(model).values():
            layer.lora_B[ad].weight.normal_(0, 0.5, generator=g)
    return model.eval()


def _batch():
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102, 0], [101, 2204, 3185, 102, 0, 0, 0]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def _out(model, **kw):
    with torch.no_grad():
        return model(**_batch(), **kw).last_hidden_state


def test_sigma_to_zero_equals_deterministic_lora():
    model = _peft_bert()
    ref = _out(model)
    state, mods = _noise.install(model, "tfb")
    _tfb.reparameterize(model, mods)
    state.generator, state.active, state.sigma = torch.Generator().manual_seed(0), True, 1e-9
    assert (_out(model) - ref).abs().max() < 1e-6
    state.sigma = 0.5  # and the noise is real at a finite sigma
    assert (_out(model) - ref).abs().max() > 1e-3
    _noise.remove(mods)
    blob = _peft_bert()
    ref = _out(blob)
    state, mods = _noise.install(blob, "blob")
    for m in mods.values():
        m.rho.data.fill_(1e-5)  # Omega = rho^2 = 1e-10
    state.generator, state.active = torch.Generator().manual_seed(0), True
    assert (_out(blob) - ref).abs().max() < 1e-6


def test_tfb_reparameterisation_leaves_outputs_unchanged():
    model = _peft_bert(seed=3)
    ref = _out(model)
    _, mods = _noise.install(model, "tfb")
    _tfb.reparameterize(model, mods)
    assert (_out(model) - ref).abs().max() < 1e-5
    for layer, ad in _noise.lora_layers(model).values():  # B' = U diag(d): orthogonal columns
        b = layer.lora_B[ad].weight.double()
        gram = b.T @ b
        assert torch.allclose(gram, torch.diag(torch.diagonal(gram)), atol=1e-5)


def test_tfb_noise_is_isotropic_in_the_column_space_of_b():
    # weight noise B' dA' with dA'_ij ~ N(0, (sigma/d_i)^2) is sigma * U eps: covariance
    # sigma^2 U U^T, whatever the singular values of B
    g = torch.Generator().manual_seed(0)
    lin_a, lin_b = nn.Linear(5, 3, bias=False), nn.Linear(3, 7, bias=False)
    with torch.no_grad():
        lin_b.weight.copy_(torch.randn(7, 3, generator=g) * torch.tensor([3.0, 1.0, 0.1]))
    state = _noise.NoiseState()
    mod = _noise.GaussianA(lin_a, state, "tfb")
    u, d, vh = torch.linalg.svd(lin_b.weight.detach(), full_matrices=False)
    mod.inv_d.copy_(1.0 / d)
    state.sigma = 0.3
    eps = torch.randn(20000, 3, generator=g) * mod.std()[:, 0]  # one column of dA'
    w_noise = eps @ (u * d).T
    cov = w_noise.T @ w_noise / len(w_noise)
    # 20k draws: relative sd of each covariance entry ~ sqrt(2/20000) = 1%; 5% is > 4 sd
    assert torch.allclose(cov, 0.09 * u @ u.T, atol=0.05 * 0.09)


def test_flipout_mean_zero_and_per_example_variance():
    g = torch.Generator().manual_seed(1)
    lin = nn.Linear(6, 4, bias=False)
    state = _noise.NoiseState()
    state.generator = g
    mod = _noise.GaussianA(lin, state, "blob", init_std=0.5, generator=g)
    x = torch.randn(3, 6, generator=g)
    with torch.no_grad():
        draws = torch.stack([mod.noise(x) for _ in range(4000)])  # (4000, 3 examples, 4)
    omega2 = (mod.rho.detach() ** 4)  # Omega^2
    var = (x ** 2) @ omega2.T  # analytic per-example, per-output variance
    se = (var / 4000).sqrt()
    assert (draws.mean(0).abs() < 4.5 * se).all()  # mean ~ 0 (4.5 standard errors)
    emp = (draws ** 2).mean(0).sum(1)
    # per-example variance summed over 4 outputs: relative sd sqrt(2 / (4 * 4000)) ~ 1.1%
    assert torch.allclose(emp, var.sum(1), rtol=0.05)
    # flipout decorrelates examples that share one noise matrix
    c = torch.corrcoef(torch.stack([draws[:, 0, 0], draws[:, 1, 0]]))[0, 1]
    assert abs(float(c)) < 0.1  # |corr| of independent draws at n=4000: sd 0.016


def test_kl_closed_form_matches_torch_and_monte_carlo():
    g = torch.Generator().manual_seed(2)
    mean, std = torch.randn(3, 5, generator=g), torch.rand(3, 5, generator=g) * 0.3 + 0.01
    ours = _noise.gaussian_kl(mean, std, 0.2)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mean, std),
                                            torch.distributions.Normal(0.0, 0.2)).sum()
    assert abs(float(ours - ref)) < 1e-6 * max(1.0, abs(float(ref)))
    q, p = torch.distributions.Normal(mean, std), torch.distributions.Normal(0.0, 0.2)
    z = q.sample((100000,))
    mc = (q.log_prob(z) - p.log_prob(z)).sum((1, 2))
    assert abs(float(mc.mean() - ours)) < 4 * float(mc.std()) / math.sqrt(len(mc))


def test_blob_kl_weights():
    from probest.lora import _engine

    assert _engine.kl_weights("elbo", 500, 7)(3) == 1 / 500
    w = _engine.kl_weights("blob", 500, 5)
    assert [w(i) for i in range(5)] == pytest.approx([2 ** i / (2 ** 6 - 1) for i in range(5)])
    assert w(5) == w(0)  # the schedule restarts every epoch
    assert 0 < _engine.kl_weights("blob", 10, 2000)(1999) < 1  # no overflow at large M


@pytest.mark.parametrize("threshold", [3e-4, 0.0123, 0.5])
def test_search_finds_threshold_within_one_bracket(threshold):
    res = _tfb.search_sigma(lambda s: float(s > threshold), 0.5, 1e-4, 1.0, n_iter=10)
    lo, hi = res.bracket
    assert res.sigma == lo <= threshold < hi  # the largest sigma known to pass, not hi
    assert hi / lo <= (1e4) ** (1 / 2 ** 10) * (1 + 1e-9)
    assert all(v <= 0.5 for s, v in res.history if s <= res.sigma)


def test_search_edges():
    assert _tfb.search_sigma(lambda s: 0.0, 0.1).sigma == 1.0
    assert _tfb.search_sigma(lambda s: 1.0, 0.1).sigma == 0.0
    with pytest.raises(ValueError, match="sigma_min"):
        _tfb.search_sigma(lambda s: 0.0, 0.1, 1.0, 0.5)
