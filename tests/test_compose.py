"""probest.compose: EstimatorDistribution and the Pyro helpers, without any fitted estimator."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from torch.distributions import constraints

from probest.compose import EstimatorDistribution, register_module, scoped, weighted_factor


def _gaussian(d=3, rsample=False):
    """A standard normal over R^d written as closures, so every value can be checked."""
    base = torch.distributions.Normal(torch.zeros(d), torch.ones(d))
    calls = []

    def log_prob(x):
        calls.append(tuple(x.shape))
        return base.log_prob(x).sum(-1)

    def sample(n):
        return torch.randn(n, d, requires_grad=rsample) * 1.0

    return EstimatorDistribution(log_prob, sample, d, has_rsample=rsample), base, calls


def test_log_prob_shapes_and_values():
    d, base, calls = _gaussian()
    assert d.event_shape == (3,) and d.batch_shape == ()
    x = torch.randn(4, 5, 3)
    lp = d.log_prob(x)
    assert lp.shape == (4, 5)
    torch.testing.assert_close(lp, base.log_prob(x).sum(-1))
    assert calls == [(20, 3)]  # one flat call of shape (n, event_dim)
    assert d.log_prob(torch.zeros(3)).shape == ()
    with pytest.raises(ValueError, match="trailing shape"):
        d.log_prob(torch.zeros(4, 2))


def test_expand_sample_and_broadcast():
    d, _, _ = _gaussian()
    e = d.expand((2, 4))
    assert e.batch_shape == (2, 4) and e.event_shape == (3,)
    assert e.sample().shape == (2, 4, 3) and e.sample((5,)).shape == (5, 2, 4, 3)
    assert e.log_prob(torch.zeros(3)).shape == (2, 4)  # broadcast over the batch
    assert e.log_prob(torch.zeros(5, 2, 4, 3)).shape == (5, 2, 4)
    assert d.sample((0,)).shape == (0, 3)
    assert e.support is d.support is constraints.real_vector


def test_under_pyro_plate_the_site_sums_the_right_log_prob():
    d, base, _ = _gaussian()
    x = torch.randn(6, 3)

    def model():
        with pyro.plate("data", 6):
            pyro.sample("x", d, obs=x)

    tr = poutine.trace(model).get_trace()
    site = tr.nodes["x"]
    assert site["fn"].batch_shape == (6,) and site["fn"].event_shape == (3,)
    tr.compute_log_prob()
    torch.testing.assert_close(site["log_prob"], base.log_prob(x).sum(-1))

    def prior():  # without obs the plate draws one point per slot
        with pyro.plate("n", 7):
            return pyro.sample("z", d)

    tr = poutine.trace(prior).get_trace()
    assert tr.nodes["z"]["value"].shape == (7, 3)


def test_rsample_needs_a_reparameterised_sampler():
    d, _, _ = _gaussian(rsample=False)
    assert not d.has_rsample
    with pytest.raises(NotImplementedError, match="reparameterised"):
        d.rsample((2,))
    r, _, _ = _gaussian(rsample=True)
    assert r.has_rsample and r.rsample((2,)).requires_grad
    assert not r.sample((2,)).requires_grad  # sample() never carries gradients


def test_module_and_support_are_kept():
    net = torch.nn.Linear(2, 2)
    support = constraints.independent(constraints.integer_interval(0, 4), 1)
    d = EstimatorDistribution(lambda x: x.sum(-1), lambda n: torch.zeros(n, 2), 2, module=net,
                              support=support)
    e = d.expand((3,))
    assert e.module is net and e.support is support


def test_register_module_frozen_or_trainable():
    net = torch.nn.Linear(2, 1)
    assert register_module("net", net, frozen=True) is net
    assert not any(p.requires_grad for p in net.parameters())
    assert "net$$$weight" not in pyro.get_param_store()
    pyro.clear_param_store()
    try:
        register_module("net", net, frozen=False)
        assert all(p.requires_grad for p in net.parameters())
        assert {"net$$$weight", "net$$$bias"} <= set(pyro.get_param_store().keys())
    finally:
        pyro.clear_param_store()


def test_weighted_factor_allows_zero_weights_and_scoped_names():
    lp = torch.tensor([-1.0, -2.0, -3.0])

    def model():
        weighted_factor("f", lp, torch.tensor([1.0, 0.0, 2.0]))
        with scoped("a"):
            pyro.sample("z", dist.Normal(0.0, 1.0))

    tr = poutine.trace(model).get_trace()
    tr.compute_log_prob()
    assert float(tr.nodes["f"]["log_prob_sum"]) == pytest.approx(-7.0)
    assert "a/z" in tr.nodes
