"""The fitted partial-Bayesian net as a Pyro model: the block's particle posterior as an
``Empirical`` distribution, the deterministic weights frozen."""

from __future__ import annotations

import torch
from pyro.nn import PyroModule
from torch.func import functional_call


class PartialBayesianPyroModule(PyroModule):
    """``forward(X, y=None)`` samples the block ``phi ~ posterior`` (site ``"phi"``, an
    ``Empirical`` over the weighted particles), runs the net with it and samples ``"y"`` in a
    ``pyro.plate("data", n)`` from the likelihood (observed when ``y`` is given).  Returns the
    network output.  The deterministic weights are plain frozen tensors
    (``requires_grad=False``); unfreeze with ``module.net.requires_grad_(True)``.
    """

    def __init__(self, net, names, shapes, posterior, likelihood):
        super().__init__()
        self.net = net.requires_grad_(False)
        self.names, self.shapes = list(names), [tuple(s) for s in shapes]
        self.posterior, self.likelihood = posterior, likelihood

    def forward(self, X, y=None):
        import pyro

        X = torch.as_tensor(X, dtype=self.posterior.sample().dtype)
        phi = pyro.sample("phi", self.posterior)
        sizes = [int(torch.tensor(s).prod()) if s else 1 for s in self.shapes]
        parts = torch.split(phi, sizes, dim=-1)
        params = {n: p.reshape(s) for n, p, s in zip(self.names, parts, self.shapes, strict=True)}
        out = functional_call(self.net, params, (X,))
        with pyro.plate("data", X.shape[0]):
            pyro.sample("y", self.likelihood(out), obs=y)
        return out
