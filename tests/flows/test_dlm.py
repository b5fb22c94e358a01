"""DiscretizedLogisticMixture: normalisation, stability at extreme scales, sampling, Pyro use."""

import pyro
import pyro.distributions as dist
import pytest
import torch

from probest.flows import DiscretizedLogisticMixture


def _random_params(n, k, log_scale, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g, dtype=dtype) * 2
    loc = torch.rand(n, k, generator=g, dtype=dtype) * 3.0 - 1.5  # some locs outside [-1, 1]
    if log_scale is None:
        s = torch.randn(n, k, generator=g, dtype=dtype) * 3
    else:
        s = torch.full((n, k), float(log_scale), dtype=dtype)
    return logits, loc, s


@pytest.mark.parametrize("num_bins", [256, 17])
@pytest.mark.parametrize("log_scale", [-7.0, 3.0, None])
def test_sums_to_one(num_bins, log_scale):
    d = DiscretizedLogisticMixture(*_random_params(50, 5, log_scale, 0), num_bins=num_bins)
    ks = torch.arange(num_bins, dtype=torch.float64).reshape(num_bins, 1)
    lp = d.log_prob(ks)
    assert torch.isfinite(lp).all()
    assert (lp.exp().sum(0) - 1).abs().max() < 1e-5


def test_float32_is_stable_at_extreme_scales():
    # measured: max |sum - 1| = 1.4e-6 in float32 for log_s = -7 and 256 bins
    for log_scale in (-7.0, 3.0):
        d = DiscretizedLogisticMixture(
            *_random_params(50, 5, log_scale, 1, torch.float32), num_bins=256
        )
        lp = d.log_prob(torch.arange(256.0).reshape(256, 1))
        assert torch.isfinite(lp).all()
        assert (lp.exp().sum(0) - 1).abs().max() < 1e-5


def test_far_tail_mass_is_finite_not_clamped():
    # a narrow component at -1 gives the top bin a tiny but representable mass
    d = DiscretizedLogisticMixture(
        torch.zeros(1, dtype=torch.float64), torch.tensor([-1.0], dtype=torch.float64),
        torch.tensor([-3.0], dtype=torch.float64), num_bins=256,
    )
    lp = d.log_prob(torch.tensor(200.0, dtype=torch.float64))
    assert torch.isfinite(lp) and lp < -30


def test_gumbel_max_sampling_matches_pmf():
    torch.manual_seed(0)
    d = DiscretizedLogisticMixture(
        torch.tensor([0.0, 1.0]), torch.tensor([-0.5, 0.3]), torch.tensor([-2.0, -1.5]),
        num_bins=17,
    )
    x = d.sample((100_000,))
    assert x.min() >= 0 and x.max() <= 16 and torch.equal(x, x.round())
    emp = torch.bincount(x.long(), minlength=17).double() / x.numel()
    pmf = d.log_prob(torch.arange(17.0)).exp().double()
    # binomial s.d. of a frequency <= sqrt(0.25 / 1e5) = 0.0016; measured max error 0.0011
    assert (emp - pmf).abs().max() < 0.006
    assert torch.allclose(d.mean, (pmf * torch.arange(17.0)).sum().float(), atol=1e-5)


def test_shapes_expand_and_pyro_plate():
    d = DiscretizedLogisticMixture(*_random_params(4, 3, None, 2), num_bins=17)
    assert d.batch_shape == (4,) and d.event_shape == ()
    e = d.expand((2, 4))
    assert e.sample().shape == (2, 4)
    data = torch.randint(0, 17, (10, 4)).double()

    def model():
        with pyro.plate("n", 10):
            pyro.sample("x", d.to_event(1), obs=data)

    tr = pyro.poutine.trace(model).get_trace()
    tr.compute_log_prob()
    assert tr.nodes["x"]["log_prob"].shape == (10,)
    assert isinstance(d, dist.TorchDistribution)


def test_gradients_are_finite_at_extremes():
    logits, loc, s = _random_params(20, 4, -7.0, 3)
    loc.requires_grad_(True)
    s.requires_grad_(True)
    d = DiscretizedLogisticMixture(logits, loc, s, num_bins=256)
    lp = d.log_prob(torch.randint(0, 256, (20,)).double()).sum()
    lp.backward()
    assert torch.isfinite(loc.grad).all() and torch.isfinite(s.grad).all()


def test_bad_num_bins():
    with pytest.raises(ValueError, match="num_bins"):
        DiscretizedLogisticMixture(torch.zeros(2), torch.zeros(2), torch.zeros(2), num_bins=1)
