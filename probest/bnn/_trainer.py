"""The Feynman–Kac trainer: particles for a named stochastic block of any ``nn.Module``,
a Fisher-identity gradient for the rest, on the house's shared training loop."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.func import functional_call, vmap

from probest._train import BatchSampler, TrainConfig, train
from probest.base import Progress
from probest.bnn import _smc

SAMPLERS = ("ohsmc", "sgsmc")


class ParticleDegeneracyWarning(UserWarning):
    """The particle system collapsed: the effective sample size stayed a tiny fraction of
    the number of particles (raise ``n_particles``, lower ``ess_threshold`` or the
    likelihood power, or add restarts).

    Examples
    --------
    >>> import warnings
    >>> from probest.bnn import ParticleDegeneracyWarning
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", ParticleDegeneracyWarning)
    ...     warnings.warn("ESS collapsed", ParticleDegeneracyWarning)
    >>> issubclass(ParticleDegeneracyWarning, UserWarning)
    True
    """


class FeynmanKacTrainer:
    """Train a partial Bayesian network: SMC particles for the stochastic parameters,
    maximum marginal likelihood (Fisher identity) for every other parameter.

    The Feynman–Kac model has minibatches as time: potentials
    ``G_t(phi) = p(y_{B_t} | phi; psi)**likelihood_power`` and Markov kernels ``M_t`` moving
    the particles.  With weighted particles ``(w_s, phi_s)`` the gradient of the deterministic
    parameters ``psi`` is ``(N/M) sum_s w_s grad log p(y_B | phi_s; psi)`` (the Fisher
    identity); the loss handed to the optimiser is that estimate divided by ``-N`` (a mean
    per data point, so learning rates mean what they mean for an ordinary net), obtained in
    one backward pass of ``-(1/M) sum_s w_s.detach() * loglik_s``.  Every particle is
    evaluated at once with ``torch.func.functional_call`` under ``vmap``: layers before the
    stochastic block see no particle axis and run once.

    Parameters
    ----------
    module : torch.nn.Module
        The network, trained in place (its stochastic parameters are frozen and overridden
        by the particles; the others are optimised).
    stochastic : sequence of str
        Names (``module.named_parameters()``) of the stochastic block ``phi``, prior
        ``N(0, prior_scale^2 I)``.  Every other trainable parameter is ``psi`` (there may be
        none: then the run is plain SMC).
    log_likelihood : callable
        ``log_likelihood(output, y) -> (M,)`` per-point log-likelihood of a batch for one
        particle (``output = module(x)``); it may use parameters of ``module`` (a learned
        noise scale), which are then trained like any ``psi``.
    sampler : {"ohsmc", "sgsmc"}
        ``"ohsmc"`` (open-horizon SMC): the particles persist across every step and epoch;
        per minibatch: move, reweight by the batch likelihood, resample (when the ESS is
        below ``ess_threshold * n_particles``), one optimiser step.  ``"sgsmc"``: per step a
        fresh tempered SMC from the prior to ``p(phi) p(y_B | phi)^(N/M)`` in ``n_stages``
        stages with random-walk Metropolis moves, then the gradient step (after training,
        ``final_smc`` gives the final particles).
    n_particles : int
        ``S``; 1 is allowed here (the deterministic-network limit: weight 1, the ordinary
        gradient).  The MLP estimators require at least 2.
    kernel : {"rw", "ou", "rwmh"}
        OHSMC move: Gaussian random walk of variance ``kernel_scale``; an
        Ornstein–Uhlenbeck step towards the prior (innovation variance ``kernel_scale``,
        prior invariant); or ``n_mh_steps`` random-walk Metropolis moves invariant for the
        current partial posterior ``p(phi) prod_{seen} G`` (its proposal adapts to the
        particle spread; it evaluates every row seen so far, so it costs ``O(N)`` a step).
    kernel_scale : float
        Variance of the RW/OU move (0: no move).
    resampling : {"stratified", "systematic", "multinomial"}
    ess_threshold : float in [0, 1]
        Resample when ``ESS < ess_threshold * n_particles`` (1: every step; 0: never).
    prior_scale : float
        Prior standard deviation of every stochastic coordinate.
    likelihood_power : float
        Power of each OHSMC potential.  1 is the paper's open-horizon model (each epoch adds
        the full likelihood once more; the jitter forgets).  ``1 / n_epochs`` with
        permutation minibatches counts every point exactly once over the run, so with
        ``kernel="rwmh"`` the final particles target the partial posterior itself.
    n_mh_steps : int
        Metropolis moves per step (``kernel="rwmh"``) or per stage (``"sgsmc"``).
    n_stages : int
        Tempering stages of each SGSMC run.
    final_smc : bool, "auto" or None
        After training, replace the particles by one adaptive tempered SMC from the prior to
        the partial posterior ``p(phi | X, Y; psi)`` of the training rows at the learned
        ``psi`` (temperatures chosen so that each stage keeps half the particles' ESS,
        ``final_mh_steps`` random-walk Metropolis moves per stage); its evidence estimate
        becomes ``log_evidence_`` (unbiased for ``p(Y | psi)``).  The open horizon's
        particles have seen every row once per epoch, and on small data the first minibatch
        collapses them onto a few prior draws; this pass targets the posterior itself.
        ``"auto"``: run it, and keep its particles only if their validation NLPD is not
        worse than the open horizon's (without validation rows, or for ``"sgsmc"``, whose
        last particles saw one minibatch: keep them).  ``None``
        (default): only for ``"sgsmc"``, whose per-step particles see one minibatch.
    final_mh_steps : int
        Metropolis moves per stage of the final SMC.
    init_particles : tensor, optional
        ``(S, D)`` initial particles (default: prior draws).
    verbose : int
        Progress bar / printed lines when the trainer runs on its own.

    Attributes
    ----------
    particles_ : torch.Tensor
        ``(S, D)`` final particles of the best restart (coordinates in the order of
        ``stochastic``, each parameter flattened).
    log_weights_ : torch.Tensor
        ``(S,)`` their normalised log-weights.
    log_evidence_ : float
        The sampler's log-evidence estimate: ``sum_t log sum_s W_{t-1,s} G_t(phi_s)``.  For
        one pass over the data with fixed ``psi`` and ``kernel="rwmh"``, and for the final
        SMC, it estimates ``log p(y)`` without bias in ``p``; otherwise it is the evidence of
        the Feynman–Kac model that was run.
    ess_history_ : numpy.ndarray
        ESS before each resampling decision, one entry per step (best restart).
    chain_particles_, chain_log_weights_ : torch.Tensor
        ``(R, S, D)`` and ``(R, S)``: every restart's final particles and log-weights.
    history_ : list of dict
        Per-epoch records (objective, validation NLPD, mean ESS) of the best restart.
    n_iter_ : int
        Steps taken by the best restart.
    final_smc_info_ : dict
        With the final SMC: its ``betas`` (temperatures), Metropolis ``acceptance`` per
        stage, whether its particles were ``kept`` and the validation NLPD before and after
        (``val_before`` / ``val_after``; last restart).

    Examples
    --------
    >>> import torch
    >>> from probest.bnn import FeynmanKacTrainer
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> net = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    >>> X = torch.linspace(-2, 2, 64)[:, None]
    >>> y = torch.sin(2 * X[:, 0])
    >>> gauss = lambda out, y: -0.5 * ((out[..., 0] - y) / 0.5) ** 2
    >>> fk = FeynmanKacTrainer(net, ["2.weight", "2.bias"], gauss, n_particles=50,
    ...                        kernel_scale=1e-3, ess_threshold=0.5)
    >>> fk = fk.fit(X, y, max_epochs=3, batch_size=16)
    >>> fk.particles_.shape, fk.predict_outputs(X[:5]).shape
    (torch.Size([50, 9]), torch.Size([50, 5, 1]))
    """

    def __init__(self, module: torch.nn.Module, stochastic: Sequence[str],
                 log_likelihood: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], *,
                 sampler: str = "ohsmc", n_particles: int = 100, kernel: str = "rw",
                 kernel_scale: float = 1e-2, resampling: str = "stratified",
                 ess_threshold: float = 1.0, prior_scale: float = 1.0,
                 likelihood_power: float = 1.0, n_mh_steps: int = 1, n_stages: int = 8,
                 final_smc: bool | None = None, final_mh_steps: int = 20,
                 init_particles: torch.Tensor | None = None, verbose: int = 0):
        named = dict(module.named_parameters())
        stochastic = list(stochastic)
        if not stochastic:
            raise ValueError("stochastic names no parameter: give at least one name of "
                             f"module.named_parameters(), e.g. {list(named)[:3]}.")
        missing = [n for n in stochastic if n not in named]
        if missing:
            raise ValueError(f"stochastic names {missing} are not parameters of the module; "
                             f"it has {list(named)}.")
        checks = {"sampler": (sampler, SAMPLERS), "kernel": (kernel, _smc.KERNELS),
                  "resampling": (resampling, _smc.RESAMPLING)}
        for what, (value, allowed) in checks.items():
            if value not in allowed:
                raise ValueError(f"{what}={value!r} is not one of {allowed}.")
        if int(n_particles) < 1:
            raise ValueError(f"n_particles must be >= 1, got {n_particles}.")
        if int(n_mh_steps) < 0 or int(final_mh_steps) < 0 or int(n_stages) < 1:
            raise ValueError("need n_mh_steps >= 0, final_mh_steps >= 0 and n_stages >= 1; got "
                             f"{n_mh_steps}, {final_mh_steps}, {n_stages}.")
        if not (kernel_scale >= 0 and prior_scale > 0 and likelihood_power > 0
                and 0 <= ess_threshold <= 1):
            raise ValueError("need kernel_scale >= 0, prior_scale > 0, likelihood_power > 0 "
                             f"and 0 <= ess_threshold <= 1; got {kernel_scale}, {prior_scale}, "
                             f"{likelihood_power}, {ess_threshold}.")
        self.module, self.stochastic, self.log_likelihood = module, stochastic, log_likelihood
        self.sampler, self.n_particles, self.kernel = sampler, int(n_particles), kernel
        self.kernel_scale, self.resampling = float(kernel_scale), resampling
        self.ess_threshold, self.prior_scale = float(ess_threshold), float(prior_scale)
        self.likelihood_power, self.n_mh_steps = float(likelihood_power), int(n_mh_steps)
        self.n_stages, self.init_particles, self.verbose = int(n_stages), init_particles, verbose
        if final_smc not in (None, True, False, "auto"):
            raise ValueError(f"final_smc must be True, False, None or 'auto', got {final_smc!r}.")
        self.final_smc = final_smc
        self.final_mh_steps = int(final_mh_steps)
        self._shapes = [named[n].shape for n in stochastic]
        self._sizes = [int(np.prod(s)) if len(s) else 1 for s in self._shapes]
        for n in stochastic:
            named[n].requires_grad_(False)
        self.history_: list = []

    # --- the particle-batched network ----------------------------------------------------
    @property
    def n_stochastic(self) -> int:
        """``D``, the number of stochastic coordinates."""
        return int(sum(self._sizes))

    def _unflatten(self, phi: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(phi, self._sizes, dim=-1)
        return {n: p.reshape(s) for n, p, s in zip(self.stochastic, parts, self._shapes,
                                                   strict=True)}

    def flatten_block(self) -> torch.Tensor:
        """The module's current stochastic parameters as one ``(D,)`` vector."""
        named = dict(self.module.named_parameters())
        return torch.cat([named[n].detach().reshape(-1) for n in self.stochastic])

    def _outputs(self, phi: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return vmap(lambda p: functional_call(self.module, self._unflatten(p), (x,)))(phi)

    def _loglik(self, phi: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``(S, M)`` per-particle, per-point log-likelihood (with gradients to ``psi``)."""
        def one(p):
            return self.log_likelihood(functional_call(self.module, self._unflatten(p), (x,)), y)
        return vmap(one)(phi)

    def _loglik_sum(self, phi, X, Y, counts=None, chunk: int = 2048) -> torch.Tensor:
        """``(S,)``: ``sum_i counts_i log p(y_i | phi)`` over all rows, in row chunks."""
        total = torch.zeros(phi.shape[0], device=phi.device, dtype=phi.dtype)
        for a in range(0, X.shape[0], chunk):
            ll = self._loglik(phi, X[a:a + chunk], Y[a:a + chunk])
            total = total + (ll.sum(-1) if counts is None else ll @ counts[a:a + chunk])
        return total

    @torch.no_grad()
    def predict_outputs(self, X: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """``(S, n, ...)`` network outputs for every final particle."""
        self.module.eval()
        return torch.cat([self._outputs(self.particles_, X[a:a + chunk])
                          for a in range(0, X.shape[0], chunk)], 1)

    @torch.no_grad()
    def predictive_nlpd(self, X, Y, particles=None, log_w=None) -> torch.Tensor:
        """Mean negative log BMA predictive density ``-log sum_s w_s p(y_i | phi_s)``."""
        phi = self.particles_ if particles is None else particles
        lw = _smc.normalise(self.log_weights_ if log_w is None else log_w)
        out = []
        for a in range(0, X.shape[0], 2048):
            ll = self._loglik(phi, X[a:a + 2048], Y[a:a + 2048])
            out.append(-torch.logsumexp(lw[:, None] + ll, 0))
        return torch.cat(out).mean()

    # --- training ------------------------------------------------------------------------
    def _progress(self, total, desc):
        self.history_ = []
        return Progress(self.history_, total, desc, self.verbose)

    def fit(self, X: torch.Tensor, Y: torch.Tensor, *, max_epochs: int = 10, batch_size: int = 32,
            lr: float = 1e-2, validation: tuple[torch.Tensor, torch.Tensor] | None = None,
            patience: int | None = None, seed: int = 0, n_restarts: int = 1, clip: float | None = 10.0,
            owner=None) -> FeynmanKacTrainer:
        """Run the sampler over ``max_epochs`` passes of permutation minibatches.

        Minibatches come from :class:`probest._train.BatchSampler` (``replace=False``) seeded
        with ``seed``; the particle moves and resampling use a second generator seeded with
        ``seed + 1``, so the minibatches do not depend on the sampler.  ``validation``
        ``(X_val, Y_val)`` is scored once per epoch by the BMA predictive NLPD; with
        ``patience`` training stops early, and the best epoch's parameters *and particles*
        are kept.  ``n_restarts > 1`` repeats the run from re-initialised ``psi`` (seeds
        ``seed + 2r``) and keeps the restart with the best validation NLPD (else the best
        evidence); every restart's particles stay in ``chain_particles_``.
        ``owner`` (an estimator) receives ``history_`` and its progress bar.
        """
        if X.shape[0] != Y.shape[0] or X.shape[0] < 1:
            raise ValueError(f"X and Y need the same number (>= 1) of rows; got {X.shape[0]} "
                             f"and {Y.shape[0]}.")
        base_state = copy.deepcopy(self.module.state_dict())
        runs = []
        for r in range(int(n_restarts)):
            if r:
                self.module.load_state_dict(base_state)
                _reinitialise(self.module, seed + 2 * r)
            run = self._fit_once(X, Y, max_epochs, batch_size, lr, validation, patience,
                                 seed + 2 * r, clip, owner)
            run["state"] = copy.deepcopy(self.module.state_dict())
            run["history"] = list((owner or self).history_)
            runs.append(run)
        key = (lambda q: q["val"]) if validation is not None else (lambda q: -q["log_z"])
        best = min(range(len(runs)), key=lambda i: key(runs[i]))
        b = runs[best]
        self.module.load_state_dict(b["state"])
        self.particles_, self.log_weights_ = b["particles"], b["log_w"]
        self.log_evidence_, self.ess_history_ = b["log_z"], b["ess"]
        self.n_iter_, self.converged_, self.best_restart_ = b["n_iter"], b["converged"], best
        self.chain_particles_ = torch.stack([q["particles"] for q in runs])
        self.chain_log_weights_ = torch.stack([q["log_w"] for q in runs])
        (owner or self).history_ = b["history"]
        self._warn_degenerate()
        return self

    def _fit_once(self, X, Y, max_epochs, batch_size, lr, validation, patience, seed, clip, owner):
        dev, dt = X.device, X.dtype
        S, D, N = self.n_particles, self.n_stochastic, X.shape[0]
        bgen = torch.Generator(device=dev).manual_seed(int(seed))
        pgen = torch.Generator(device=dev).manual_seed(int(seed) + 1)
        draw = BatchSampler(N, batch_size, None, bgen, dev, replace=False)
        if self.init_particles is not None:
            phi0 = torch.as_tensor(self.init_particles, device=dev, dtype=dt).reshape(S, D).clone()
        else:
            phi0 = self.prior_scale * torch.randn((S, D), generator=pgen, device=dev, dtype=dt)
        st = {"phi": phi0, "log_w": torch.full((S,), -math.log(S), device=dev, dtype=dt),
              "log_z": torch.zeros((), device=dev, dtype=dt),
              "seen": torch.zeros(N, device=dev, dtype=dt)}
        ess_log: list[torch.Tensor] = []
        params = [p for n, p in self.module.named_parameters()
                  if p.requires_grad and n not in self.stochastic]
        if not params:  # pure SMC: a placeholder keeps the shared loop's optimiser happy
            params = [torch.zeros((), device=dev, dtype=dt, requires_grad=True)]
        anchor = params[0]

        def loss_fn(step: int) -> torch.Tensor:
            self.module.train()
            idx = draw()
            xb, yb = X[idx], Y[idx]
            if self.sampler == "ohsmc":
                phi, log_w = self._ohsmc_move(st, X, Y, pgen)
                ll = self._loglik(phi, xb, yb).sum(-1)
                log_g = self.likelihood_power * ll.detach()
                st["log_z"] = st["log_z"] + torch.logsumexp(_smc.normalise(log_w) + log_g, 0)
                log_w = _smc.normalise(log_w + log_g)
                st["seen"][idx] += 1.0
            else:
                phi, log_w, log_z = self._tempered_smc(xb, yb, N / xb.shape[0], pgen)
                ll = self._loglik(phi, xb, yb).sum(-1)
                st["log_z"] = log_z
            w = torch.exp(log_w)
            loss = -(w * ll).sum() / xb.shape[0] + 0.0 * anchor.sum()
            e = _smc.ess(log_w)
            ess_log.append(e)
            if self.sampler == "ohsmc" and S > 1 and self.ess_threshold > 0:
                # resample where ESS < threshold * S, without a host sync: draw the
                # ancestors always, keep them only when the test says so
                do = e < self.ess_threshold * S - 1e-9
                anc = torch.where(do, _smc.resample(log_w, self.resampling, pgen),
                                  torch.arange(S, device=dev))
                phi = phi[anc]
                log_w = torch.where(do, torch.full_like(log_w, -math.log(S)), log_w)
            st["phi"], st["log_w"] = phi.detach(), log_w.detach()
            return loss

        def val_fn():
            return self.predictive_nlpd(*validation, particles=st["phi"], log_w=st["log_w"])

        def get_state():
            return {k: v.clone() for k, v in st.items()}

        def set_state(snap):
            st.update(snap)

        per_epoch = draw.steps_per_epoch
        cfg = TrainConfig(max_iter=int(max_epochs) * per_epoch, lr=lr, clip=clip,
                          log_every=per_epoch, patience=patience)
        result = train(owner or self, params, loss_fn, cfg,
                       validation=val_fn if validation is not None else None,
                       desc=f"FK-{self.sampler}", state=(get_state, set_state))
        final = self.sampler == "sgsmc" if self.final_smc is None else self.final_smc
        val = float("inf")

        def score(q):
            return float(self.predictive_nlpd(*validation, particles=q["phi"], log_w=q["log_w"]))

        if validation is not None:
            val = score(st)
        if final:  # final particles: one adaptive tempered SMC on all training rows at psi
            self.module.eval()
            with torch.no_grad():
                phi, log_w, log_z = self._tempered_smc(X, Y, 1.0, pgen, adaptive=True)
            new = {"phi": phi, "log_w": log_w, "log_z": log_z}
            new_val = score(new) if validation is not None else float("inf")
            keep = (final != "auto" or validation is None or self.sampler == "sgsmc"
                    or new_val <= val)
            self.final_smc_info_.update(kept=bool(keep), val_before=val, val_after=new_val)
            if keep:
                st.update(new)
                val = new_val
        ess = torch.stack(ess_log[:result.n_iter]).cpu().numpy() if ess_log else np.zeros(0)
        return {"particles": st["phi"], "log_w": _smc.normalise(st["log_w"]),
                "log_z": float(st["log_z"]), "ess": ess, "n_iter": result.n_iter,
                "converged": result.converged, "val": val}

    @torch.no_grad()
    def _ohsmc_move(self, st, X, Y, gen):
        phi, log_w = st["phi"], st["log_w"]
        if self.kernel == "rw":
            phi = _smc.random_walk(phi, self.kernel_scale, gen)
        elif self.kernel == "ou":
            phi = _smc.ornstein_uhlenbeck(phi, self.kernel_scale, self.prior_scale, gen)
        else:
            counts = st["seen"] * self.likelihood_power
            rows = counts > 0
            Xs, Ys, cs = X[rows], Y[rows], counts[rows]

            def target(p):
                lp = _smc.log_prior(p, self.prior_scale)
                return lp if cs.numel() == 0 else lp + self._loglik_sum(p, Xs, Ys, cs)

            phi = _smc.metropolis(phi, target, _smc.adaptive_step(phi, log_w),
                                  self.n_mh_steps, gen)[0]
        return phi, log_w

    @torch.no_grad()
    def _tempered_smc(self, X, Y, scale, gen, adaptive=False):
        """Tempered SMC from the prior to ``p(phi) p(Y | phi)^scale`` (RW-Metropolis moves):
        ``n_stages`` equal steps and ``n_mh_steps`` moves a stage, or (``adaptive``) the
        ESS-driven schedule with ``final_mh_steps``.  Returns particles, normalised
        log-weights and the log-evidence estimate."""
        S, D = self.n_particles, self.n_stochastic
        phi = self.prior_scale * torch.randn((S, D), generator=gen, device=X.device, dtype=X.dtype)
        kw = ({"betas": None, "n_mh_steps": self.final_mh_steps} if adaptive else
              {"betas": np.linspace(0.0, 1.0, self.n_stages + 1), "n_mh_steps": self.n_mh_steps,
               "resample_below": max(self.ess_threshold, 0.5)})
        phi, log_w, log_z, info = _smc.tempered_smc(
            lambda p: scale * self._loglik_sum(p, X, Y), phi, self.prior_scale, gen,
            resampling=self.resampling, **kw)
        if adaptive:
            self.final_smc_info_ = info
        return phi, log_w, log_z

    def _warn_degenerate(self) -> None:
        S = self.n_particles
        if S < 2 or self.ess_history_.size == 0:
            return
        tail = self.ess_history_[-max(1, self.ess_history_.size // 4):]
        frac = float(np.median(tail)) / S
        if frac < 0.05:
            warnings.warn(
                f"particle degeneracy: the median ESS over the last quarter of the steps was "
                f"{frac:.1%} of n_particles={S}; the posterior is represented by a handful of "
                "particles. Raise n_particles, use ess_threshold < 1, a smaller likelihood_power "
                "or restarts; the ESS per step is in ess_history_.",
                ParticleDegeneracyWarning, stacklevel=3)


def _reinitialise(module: torch.nn.Module, seed: int) -> None:
    """Fresh initial values for every submodule with ``reset_parameters`` (own RNG stream)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for m in module.modules():
            if m is not module and hasattr(m, "reset_parameters"):
                m.reset_parameters()
