"""The Exp3 likelihood as a Pyro model and as a NumPyro model (the ``[jax]`` extra), and the
NUTS runners of both backends.

The joint models (``BayesianExp3(method="joint")``; the default collapsed model is in
:mod:`probest.bandits._collapsed`) are the same: subjects partially pooled on log c,
non-centred::

    mu ~ Normal(mu_loc, mu_scale);  tau ~ HalfNormal(tau_scale);  z_s ~ Normal(0, 1)
    log c_s = mu + tau * z_s;       factor(l_s(c_s))   (the replayed Exp3 log-likelihood)

(``hierarchical=False``: log c_s ~ Normal(mu_loc, mu_scale) independently.)  The Pyro model
replays with :func:`probest.bandits._replay.replay_exp3` (torch autograd); the NumPyro model
replays with an equivalent ``jax.lax.scan`` inside ``jax.enable_x64`` (float64 everywhere,
without changing JAX's global setting).  jax and numpyro are imported only here, inside the
functions, through :func:`probest._optional.import_optional`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from probest._optional import import_optional
from probest.bandits._replay import LOG_P_FLOOR, replay_exp3


def pyro_model(data: dict[str, Any], cfg: dict[str, Any]):
    """The Pyro model: ``data`` holds padded torch tensors (actions, rewards, lengths,
    n_used), ``cfg`` the learner and prior settings."""
    import pyro
    import pyro.distributions as dist

    f64 = dict(dtype=torch.float64)
    if cfg["hierarchical"]:
        mu = pyro.sample("mu", dist.Normal(torch.tensor(cfg["mu_loc"], **f64),
                                           torch.tensor(cfg["mu_scale"], **f64)))
        tau = pyro.sample("tau", dist.HalfNormal(torch.tensor(cfg["tau_scale"], **f64)))
    S = data["actions"].shape[0]
    if cfg["hierarchical"]:
        with pyro.plate("subjects", S):
            z = pyro.sample("z", dist.Normal(torch.zeros((), **f64), torch.ones((), **f64)))
        log_c = mu + tau * z
    else:
        with pyro.plate("subjects", S):
            log_c = pyro.sample("log_c", dist.Normal(torch.tensor(cfg["mu_loc"], **f64),
                                                     torch.tensor(cfg["mu_scale"], **f64)))
    ll, _ = replay_exp3(torch.exp(log_c).unsqueeze(1), data["actions"], data["rewards"],
                        data["lengths"], cfg["n_arms"], schedule=cfg["schedule"],
                        alpha=cfg["alpha"], gamma=cfg["gamma"], iw=cfg["iw"],
                        n_used=data["n_used"])
    pyro.factor("choices", ll[:, 0].sum())


def run_pyro(data, cfg, **kw):
    """NUTS in Pyro on :func:`pyro_model`; see :func:`nuts_pyro`."""
    return nuts_pyro(lambda: pyro_model(data, cfg), **kw)


def nuts_pyro(model, *, num_warmup, num_samples, num_chains, target_accept, seed,
              max_tree_depth=8, init=None):
    """NUTS in Pyro on ``model`` (chains one after the other, started at ``init``);
    returns ``{site: (chain, draw, ...)}`` numpy draws and divergences."""
    from pyro.infer import MCMC, NUTS
    from pyro.infer.autoguide.initialization import init_to_value

    out: dict[str, list] = {}
    div = []
    for chain in range(num_chains):
        torch.manual_seed(seed + chain)  # inside the estimator's fork_rng: global state kept
        values = {k: torch.as_tensor(np.asarray(v), dtype=torch.float64)
                  for k, v in (init or {}).items()}
        kernel = NUTS(model, target_accept_prob=target_accept, max_tree_depth=max_tree_depth,
                      init_strategy=init_to_value(values=values))
        mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=num_warmup,
                    disable_progbar=True)
        mcmc.run()
        for k, v in mcmc.get_samples().items():
            out.setdefault(k, []).append(v.detach().cpu().numpy())
        stats = mcmc.diagnostics() if num_samples >= 4 else {}  # Pyro needs >= 4 draws
        flags = np.zeros(num_samples, dtype=bool)
        idx = np.asarray(stats.get("divergences", {}).get("chain 0", []), dtype=np.int64)
        flags[idx[(idx >= 0) & (idx < num_samples)]] = True
        div.append(flags)
    return {k: np.stack(v) for k, v in out.items()}, np.stack(div)


def _jax_loglik(jnp, lax, log_c, data, cfg):
    """Per-subject Exp3 log-likelihood in JAX (``log_c`` (S,)): the same steps as the torch
    replay, scanned over trials."""
    K = cfg["n_arms"]
    gamma, alpha = cfg["gamma"], cfg["alpha"]
    c = jnp.exp(log_c)
    lengths = data["lengths"]
    base = c * (lengths.astype(jnp.float64) ** (-alpha) if cfg["schedule"] == "horizon" else 1.0)
    T = data["actions"].shape[1]
    onehot = jnp.eye(K, dtype=jnp.float64)[data["actions"]]  # (S, T, K)
    keep = (jnp.arange(T)[None, :] < data["n_used"][:, None]).astype(jnp.float64)
    xs = (jnp.moveaxis(onehot, 1, 0), data["rewards"].T, keep.T, jnp.arange(T))

    def step(S, x):
        oh, r, kp, t = x
        eta = base * (t + 1.0) ** (-alpha) if cfg["schedule"] == "anytime" else base
        logq = jax_log_softmax(jnp, eta[:, None] * S)
        if gamma > 0:
            logp = jnp.logaddexp(logq + math.log1p(-gamma), math.log(gamma / K))
        else:
            logp = logq
        lp_a = (logp * oh).sum(-1)
        w = jnp.exp(-jnp.maximum(lp_a, LOG_P_FLOOR))
        if cfg["iw"] == "loss":
            S = S + (1.0 - oh * ((1.0 - r) * w)[:, None])
        else:
            S = S + oh * (r * w)[:, None]
        return S, lp_a * kp

    S0 = jnp.zeros((data["actions"].shape[0], K), dtype=jnp.float64)
    _, lps = lax.scan(step, S0, xs)
    return lps.sum(0)


def jax_log_softmax(jnp, x):
    m = x.max(-1, keepdims=True)
    z = x - m
    return z - jnp.log(jnp.exp(z).sum(-1, keepdims=True))


def run_numpyro(data_np, cfg, **kw):
    """NUTS in NumPyro (float64 via ``jax.enable_x64``) on the joint model; same returns as
    :func:`nuts_pyro`."""
    jax = import_optional("jax", purpose="backend='numpyro'")
    numpyro = import_optional("numpyro", purpose="backend='numpyro'")
    import numpyro.distributions as ndist

    def build():
        jnp, lax = jax.numpy, jax.lax
        data = {k: jnp.asarray(v) for k, v in data_np.items()}
        S = data_np["actions"].shape[0]

        def model():
            if cfg["hierarchical"]:
                mu = numpyro.sample("mu", ndist.Normal(cfg["mu_loc"], cfg["mu_scale"]))
                tau = numpyro.sample("tau", ndist.HalfNormal(cfg["tau_scale"]))
                with numpyro.plate("subjects", S):
                    z = numpyro.sample("z", ndist.Normal(0.0, 1.0))
                log_c = mu + tau * z
            else:
                with numpyro.plate("subjects", S):
                    log_c = numpyro.sample("log_c", ndist.Normal(cfg["mu_loc"], cfg["mu_scale"]))
            numpyro.factor("choices", _jax_loglik(jnp, lax, log_c, data, cfg).sum())

        return model

    return nuts_numpyro(build, **kw)


def nuts_numpyro(build, *, num_warmup, num_samples, num_chains, target_accept, seed,
                 max_tree_depth=8, init=None):
    """NUTS in NumPyro on the model ``build()`` returns (built inside ``jax.enable_x64``, so
    float64 throughout without changing JAX's global setting); same returns as
    :func:`nuts_pyro`."""
    jax = import_optional("jax", purpose="backend='numpyro'")
    import_optional("numpyro", purpose="backend='numpyro'")
    from numpyro.infer import MCMC, NUTS, init_to_value

    with jax.enable_x64(True):
        jnp = jax.numpy
        model = build()
        values = {k: jnp.asarray(v, dtype=jnp.float64) for k, v in (init or {}).items()}
        mcmc = MCMC(NUTS(model, target_accept_prob=target_accept,
                         max_tree_depth=max_tree_depth, init_strategy=init_to_value(values=values)),
                    num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                    chain_method="sequential", progress_bar=False)
        mcmc.run(jax.random.PRNGKey(seed), extra_fields=("diverging",))
        draws = {k: np.asarray(v, dtype=np.float64)
                 for k, v in mcmc.get_samples(group_by_chain=True).items()}
        div = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"], dtype=bool)
    return draws, div


def jax_loglik_numpy(log_c: np.ndarray, data_np: dict, cfg: dict) -> np.ndarray:
    """The NumPyro model's per-subject log-likelihood at ``log_c`` (tests compare it with the
    torch replay)."""
    jax = import_optional("jax", purpose="the NumPyro likelihood")
    with jax.enable_x64(True):
        data = {k: jax.numpy.asarray(v) for k, v in data_np.items()}
        return np.asarray(_jax_loglik(jax.numpy, jax.lax, jax.numpy.asarray(log_c), data, cfg))
