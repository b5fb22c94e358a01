"""The MLP of the partial-Bayesian estimators, its likelihoods, and the two in-house
baselines: Pyro SVI on the same stochastic block (PyroSample + AutoNormal) and the
deterministic (MAP) net."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from probest._train import BatchSampler, TrainConfig, train
from probest.bnn import _smc

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}


class MLP(nn.Module):
    """``Linear -> activation -> ... -> Linear``; ``layers[i]`` is the i-th linear layer.
    A regressor with a learned noise also holds ``log_noise`` (standardised units)."""

    def __init__(self, n_in: int, hidden: Sequence[int], n_out: int, activation: str = "gelu",
                 learn_noise: bool = False):
        super().__init__()
        sizes = [int(n_in), *[int(h) for h in hidden], int(n_out)]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:],
                                                                     strict=True))
        self.act = ACTIVATIONS[activation]()
        if learn_noise:
            self.log_noise = nn.Parameter(torch.tensor(math.log(0.5)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        return self.layers[-1](x)


def stochastic_names(hidden: Sequence[int], layers: Sequence[int]) -> list[str]:
    """Parameter names of the chosen linear layers, with the checks of ``stochastic_layers``."""
    n_linear = len(hidden) + 1
    layers = list(layers) if not isinstance(layers, int) else [layers]
    if not layers:
        raise ValueError("stochastic_layers names no layer: give the indices (0-based, of the "
                         f"{n_linear} linear layers) that carry the stochastic block, e.g. (2,).")
    bad = [i for i in layers if not isinstance(i, int) or not 0 <= i < n_linear]
    if bad:
        raise ValueError(f"stochastic_layers {bad} are not linear-layer indices in "
                         f"[0, {n_linear - 1}] of hidden_layer_sizes={tuple(hidden)}.")
    if len(set(layers)) == n_linear:
        raise ValueError(f"stochastic_layers names every one of the {n_linear} linear layers: "
                         "nothing is left for the deterministic part psi; use a fully Bayesian "
                         "method, or leave at least one layer deterministic.")
    return [f"layers.{i}.{p}" for i in sorted(set(layers)) for p in ("weight", "bias")]


def gaussian_loglik(module: MLP, fixed_log_noise: float | None):
    """Per-point ``log N(y; f(x), sigma^2)`` (sigma learned in ``module.log_noise`` or fixed)."""
    def ll(out, y):
        log_s = module.log_noise if fixed_log_noise is None else fixed_log_noise
        if not isinstance(log_s, torch.Tensor):
            log_s = torch.tensor(log_s, dtype=out.dtype, device=out.device)
        z = (y - out[..., 0]) * torch.exp(-log_s)
        return -0.5 * z * z - log_s - 0.5 * math.log(2 * math.pi)
    return ll


def categorical_loglik(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-point ``log softmax(out)[y]`` (``y`` holds class indices as floats or ints)."""
    return torch.log_softmax(out, -1).gather(-1, y.long()[..., None])[..., 0]


def fit_map(est, module: MLP, names, loglik, X, Y, validation, cfg_kw, seed, prior_scale):
    """The deterministic net: every weight trained, the block with its Gaussian prior as an
    L2 penalty (MAP); the same loss scale (a mean per point) and loop as the SMC runs."""
    N = X.shape[0]
    named = dict(module.named_parameters())
    block = [named[n] for n in names]
    gen = torch.Generator(device=X.device).manual_seed(int(seed))
    draw = BatchSampler(N, cfg_kw["batch_size"], None, gen, X.device, replace=False)

    def loss_fn(step):
        module.train()
        idx = draw()
        penalty = sum((p / prior_scale).pow(2).sum() for p in block) / (2 * N)
        return -loglik(module(X[idx]), Y[idx]).mean() + penalty

    def val_fn():
        module.eval()
        return -loglik(module(validation[0]), validation[1]).mean()

    cfg = TrainConfig(max_iter=cfg_kw["max_epochs"] * draw.steps_per_epoch, lr=cfg_kw["lr"],
                      log_every=draw.steps_per_epoch, patience=cfg_kw["patience"])
    result = train(est, module, loss_fn, cfg, validation=val_fn if validation else None,
                   desc="MAP")
    phi = torch.cat([p.detach().reshape(-1) for p in block])[None]
    return phi, torch.zeros(1, dtype=X.dtype, device=X.device), result


def fit_svi(est, module: MLP, names, loglik, X, Y, validation, cfg_kw, seed, prior_scale,
            n_draws: int):
    """Pyro SVI pBNN: the block as ``PyroSample(Normal(0, prior_scale))`` on a PyroModule
    copy of the net, an ``AutoNormal`` (mean-field) guide, ``Trace_ELBO`` with minibatch
    subsampling; trained on the shared loop.  Returns ``n_draws`` guide draws as equally
    weighted particles (and the net, whose deterministic weights were trained)."""
    import pyro
    import pyro.distributions as dist
    from pyro.infer import Trace_ELBO
    from pyro.infer.autoguide import AutoNormal
    from pyro.nn import PyroSample
    from pyro.nn.module import to_pyro_module_

    N = X.shape[0]
    to_pyro_module_(module)
    shapes = {n: dict(module.named_parameters())[n].shape for n in names}
    for n in names:
        owner = module.get_submodule(n.rsplit(".", 1)[0])
        loc = torch.zeros(shapes[n], dtype=X.dtype, device=X.device)
        setattr(owner, n.rsplit(".", 1)[1],
                PyroSample(dist.Normal(loc, prior_scale).to_event(len(shapes[n]))))

    def model(x, y, idx):
        out = module(x)
        with pyro.plate("data", N, subsample=idx):
            pyro.factor("loglik", loglik(out, y))

    guide = AutoNormal(model, init_scale=0.01)
    gen = torch.Generator(device=X.device).manual_seed(int(seed))
    draw = BatchSampler(N, cfg_kw["batch_size"], None, gen, X.device, replace=False)
    guide(X[:2], Y[:2], torch.arange(2, device=X.device))  # creates the guide's parameters
    elbo = Trace_ELBO()

    def loss_fn(step):
        idx = draw()
        return elbo.differentiable_loss(model, guide, X[idx], Y[idx], idx) / N

    params = [p for p in module.parameters()] + list(guide.parameters())
    cfg = TrainConfig(max_iter=cfg_kw["max_epochs"] * draw.steps_per_epoch, lr=cfg_kw["lr"],
                      log_every=draw.steps_per_epoch, patience=cfg_kw["patience"])
    state = {"phi": None}

    def val_fn():  # BMA NLPD with a few guide draws
        phi = _guide_draws(guide, names, shapes, 32, gen)
        return _plain_nlpd(module, names, shapes, loglik, phi, *validation)

    result = train(est, params, loss_fn, cfg, validation=val_fn if validation else None,
                   desc="SVI")
    state["phi"] = _guide_draws(guide, names, shapes, n_draws, gen)
    plain = _plain_copy(module, names, shapes, X)
    return plain, state["phi"], torch.full((n_draws,), -math.log(n_draws), dtype=X.dtype,
                                           device=X.device), result


@torch.no_grad()
def _guide_draws(guide, names, shapes, n, gen):
    """``(n, D)`` draws of the mean-field guide, from its public ``median``/``quantiles``."""
    med = guide.median()
    hi = guide.quantiles([0.8413447460685429])  # +1 sd of a normal
    loc = torch.cat([med[k].reshape(-1) for k in names])
    sd = torch.cat([(hi[k][0] - med[k]).reshape(-1) for k in names]).clamp_min(0)
    eps = torch.randn((n, loc.numel()), generator=gen, device=loc.device, dtype=loc.dtype)
    return loc + sd * eps


def _plain_copy(pmodule, names, shapes, X):
    """An ordinary MLP with the PyroModule's trained deterministic weights."""
    from torch.func import functional_call  # noqa: F401  (same path as the trainer)

    layers = pmodule.layers
    n_in, n_out = layers[0].in_features, layers[-1].out_features
    hidden = [lay.out_features for lay in layers[:-1]]
    act = next(k for k, v in ACTIVATIONS.items() if isinstance(pmodule.act, v))
    plain = MLP(n_in, hidden, n_out, act, hasattr(pmodule, "log_noise")).to(X.device, X.dtype)
    sd = {k: v.detach() for k, v in pmodule.named_parameters()}
    for n in names:
        sd[n] = torch.zeros(shapes[n], dtype=X.dtype, device=X.device)
    plain.load_state_dict(sd)
    return plain


def _plain_nlpd(pmodule, names, shapes, loglik, phi, Xv, Yv):
    plain = _plain_copy(pmodule, names, shapes, Xv)
    from probest.bnn._trainer import FeynmanKacTrainer

    fk = FeynmanKacTrainer(plain, names, _rebind(loglik, plain, pmodule), n_particles=phi.shape[0])
    fk.particles_ = phi
    fk.log_weights_ = torch.full((phi.shape[0],), -math.log(phi.shape[0]), dtype=phi.dtype,
                                 device=phi.device)
    return fk.predictive_nlpd(Xv, Yv)


def _rebind(loglik, plain, pmodule):
    return loglik  # the likelihood reads pmodule.log_noise, which stays the trained one


def block_mean(phi: torch.Tensor, log_w: torch.Tensor) -> torch.Tensor:
    """The weighted particle mean ``sum_s w_s phi_s``."""
    return (torch.exp(_smc.normalise(log_w))[:, None] * phi).sum(0)
