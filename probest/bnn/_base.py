"""PartialBayesianMLPRegressor / PartialBayesianMLPClassifier: an MLP whose chosen layers are
stochastic (particles), the rest point-estimated by maximum marginal likelihood."""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted, validate_data

from probest._persist import Fitted
from probest._train import validation_split
from probest._validation import Interval, Options, check_scale
from probest.base import EstimatorSpec, TorchEstimator
from probest.bnn import _mlp, _smc
from probest.bnn._trainer import FeynmanKacTrainer

SAMPLERS = ("ohsmc", "sgsmc", "svi", "map")

_DOC_PARAMS = """
    hidden_layer_sizes : tuple of int
        Widths of the hidden layers; the net has ``len(hidden_layer_sizes) + 1`` linear layers.
    activation : {"gelu", "relu", "tanh", "silu"}
    stochastic_layers : tuple of int
        0-based indices of the linear layers whose weights and biases form the stochastic
        block ``phi`` (prior ``N(0, prior_scale^2)``); the default ``(2,)`` with
        ``(50, 20, 5)`` makes the 20-to-5 layer stochastic.  Naming none or every layer is
        refused.
    prior_scale : float
    sampler : {"ohsmc", "sgsmc", "svi", "map"}
        The Feynman–Kac samplers (see :class:`probest.bnn.FeynmanKacTrainer`), or the
        baselines: ``"svi"`` (Pyro ``PyroSample`` on the same block, ``AutoNormal`` guide,
        ``Trace_ELBO``; ``n_particles`` guide draws as equally weighted particles) and
        ``"map"`` (a deterministic net, the block's prior as an L2 penalty; one particle).
    n_particles : int
        At least 2 here (the one-particle limit lives in ``FeynmanKacTrainer``).
    kernel : {"rw", "ou", "rwmh"}
    kernel_scale : float, default=1e-3
        Variance of the RW/OU move per step. The spec's 1e-2 over-diffuses the block on
        standardised data: test NLPD on x sin(x tanh x) 0.601 vs 0.555 at 1e-3 (seeds 0-1),
        diabetes 1.187 vs 1.153, breast-cancer ECE 0.026 vs 0.020 (5 / 3 seeds, 1000
        particles; ``benchmarks/RESULTS.md``).
    resampling : {"stratified", "systematic", "multinomial"}
    ess_threshold : float
        Resample when ESS < ``ess_threshold * n_particles`` (1: every step).
    likelihood_power : float
        Power of each minibatch potential (1: the paper's open horizon).
    final_smc : bool, "auto" or None
        After training, draw the final particles by one adaptive tempered SMC from the prior
        to the block's posterior given the training rows at the learned deterministic
        weights (``final_mh_steps`` random-walk Metropolis moves per stage, proposals from
        the particles' covariance); ``log_evidence_`` is then that run's estimate of the
        training evidence.  ``"auto"``: keep its particles only if the validation NLPD
        improves.  ``None``: only for ``sampler="sgsmc"`` (whose last step's particles see
        one minibatch).  The open horizon's particles collapse onto a few
        prior draws at the first minibatch on small data; the final SMC fixes that, and it
        is the regressor's default (diabetes test NLPD, 5 seeds: 1.153 without, 1.123 with;
        the MLP 1.135; on x sin(x tanh x) it costs: 0.533 without, 0.556 with, the MLP
        0.565).  The classifier's default is ``None``: on breast cancer (20 seeds)
        it lowers the NLL (0.080 vs 0.122; MLP 0.120) but raises the ECE (0.029 vs 0.024;
        MLP 0.026) — the posterior at weights trained against the collapsed particles is
        under-confident (``benchmarks/RESULTS.md``).  Cost: stages x ``final_mh_steps``
        passes over the training rows (diabetes: ~10 stages, ~2 s a fit).
    final_mh_steps : int, default=20
    batch_size, max_epochs, learning_rate : int, int, float
        Minibatch size (permutation batches), passes over the data, Adam's learning rate.
    early_stopping : bool
        Hold out ``validation_fraction`` of the rows, score the BMA predictive NLPD every
        epoch, stop after ``patience`` epochs without improvement and keep the best epoch's
        weights and particles.
    validation_fraction : float
    patience : int
    n_restarts : int
        Independent runs (fresh ``psi`` and particles); the best validation NLPD is kept for
        prediction, every run is a chain in ``to_arviz``.
    device, dtype, random_state, verbose
        As everywhere in probest (``dtype`` default ``"float32"``).
"""

_DOC_ATTRS = """
    module_ : MLP
        The trained network (``psi``; the block holds the particle mean).
    particles_ : ndarray of shape (n_particles, n_block)
        Final particles of the stochastic block (names in ``stochastic_names_``, each
        parameter flattened in order).
    log_weights_ : ndarray of shape (n_particles,)
        Normalised log-weights.
    log_evidence_ : float
        The sampler's log-evidence estimate (standardised targets for the regressor); NaN
        for ``sampler="svi"`` and ``"map"``.
    ess_history_ : ndarray
        ESS per optimisation step (before each resampling decision).
    chain_particles_, chain_log_weights_ : ndarray
        Every restart's particles ``(n_restarts, n_particles, n_block)`` and log-weights.
    history_ : list of dict
        Per-epoch ``objective`` and ``val_objective`` (validation NLPD) of the kept run.
    stochastic_names_ : list of str
    n_iter_ : int
    converged_ : bool
"""


class _PartialBayesianMLP(TorchEstimator):
    """Shared machinery of the two estimators (private)."""

    _spec = EstimatorSpec(outputs=("predict",))
    #: ``log_evidence_`` is NaN for ``sampler="svi"``/``"map"`` (no evidence estimate).
    _nonfinite_ok = ("history_", "log_evidence_")
    _fitted_attributes = (
        "module_", Fitted("particles_", ndim=2, finite=True), Fitted("log_weights_", ndim=1),
        "log_evidence_", "ess_history_", "chain_particles_", "chain_log_weights_",
        "stochastic_names_", "n_iter_", "converged_", "x_mean_", "x_scale_", "n_outputs_",
        "best_restart_")
    _constraints = {
        "activation": (Options(_mlp.ACTIVATIONS),),
        "prior_scale": (Interval(float, 0.0, None, closed="neither"),),
        "sampler": (Options(SAMPLERS),),
        "n_particles": (Interval(int, 2, None),),
        "kernel": (Options(_smc.KERNELS),),
        "kernel_scale": (Interval(float, 0.0, None),),
        "resampling": (Options(_smc.RESAMPLING),),
        "ess_threshold": (Interval(float, 0.0, 1.0, closed="both"),),
        "likelihood_power": (Interval(float, 0.0, None, closed="neither"),),
        "final_smc": ("boolean", None, Options(("auto",))),
        "final_mh_steps": (Interval(int, 0, None),),
        "batch_size": (Interval(int, 1, None),),
        "max_epochs": (Interval(int, 1, None),),
        "learning_rate": (Interval(float, 0.0, None, closed="neither"),),
        "early_stopping": ("boolean",),
        "validation_fraction": (Interval(float, 0.0, 1.0, closed="neither"),),
        "patience": (Interval(int, 1, None),),
        "n_restarts": (Interval(int, 1, None),),
    }

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags

    def _validate_params(self) -> None:
        if isinstance(self.n_particles, int) and not isinstance(self.n_particles, bool) \
                and self.n_particles < 2:
            raise ValueError(
                f"n_particles must be >= 2, got {self.n_particles}: one particle is the "
                "deterministic net (use sampler='map', or probest.bnn.FeynmanKacTrainer with "
                "n_particles=1 for the exact limit).")
        super()._validate_params()
        _mlp.stochastic_names(self.hidden_layer_sizes, self.stochastic_layers)

    # --- fitting -----------------------------------------------------------------------------
    def _fit(self, X, T, n_out, stratify=None):
        """``X`` validated floats, ``T`` standardised targets / class indices."""
        names = _mlp.stochastic_names(self.hidden_layer_sizes, self.stochastic_layers)
        with self._fit_context() as ctx:
            self.x_mean_ = X.mean(0)
            self.x_scale_ = np.where(X.std(0) > 0, X.std(0), 1.0)
            Z = (X - self.x_mean_) / self.x_scale_
            Xt, Tt = self._tensor(Z), self._tensor(T)
            validation = None
            if self.early_stopping and X.shape[0] >= 4:
                tr, va = validation_split(len(X), self.validation_fraction, ctx.rng,
                                          stratify=self._stratify(stratify))
                validation = (Xt[va], Tt[va])
                Xt, Tt = Xt[tr], Tt[tr]
            module = self._new_module(X.shape[1], n_out).to(self.device_, self.dtype_)
            loglik = self._loglik(module)
            kw = {"batch_size": int(self.batch_size), "max_epochs": int(self.max_epochs),
                  "lr": float(self.learning_rate),
                  "patience": int(self.patience) if validation is not None else None}
            seed = int(ctx.seed) % (2**62)
            chains = None
            if self.sampler in ("ohsmc", "sgsmc"):
                fk = FeynmanKacTrainer(
                    module, names, loglik, sampler=self.sampler, n_particles=self.n_particles,
                    kernel=self.kernel, kernel_scale=self.kernel_scale,
                    resampling=self.resampling, ess_threshold=self.ess_threshold,
                    prior_scale=self.prior_scale, likelihood_power=self.likelihood_power,
                    final_smc=self.final_smc, final_mh_steps=self.final_mh_steps,
                    verbose=self.verbose)
                fk.fit(Xt, Tt, max_epochs=kw["max_epochs"], batch_size=kw["batch_size"],
                       lr=kw["lr"], validation=validation, patience=kw["patience"], seed=seed,
                       n_restarts=int(self.n_restarts), owner=self)
                phi, log_w, log_z = fk.particles_, fk.log_weights_, fk.log_evidence_
                ess, n_iter, ok = fk.ess_history_, fk.n_iter_, fk.converged_
                chains = (fk.chain_particles_, fk.chain_log_weights_)
                self.best_restart_ = int(fk.best_restart_)
            elif self.sampler == "svi":
                module, phi, log_w, res = _mlp.fit_svi(
                    self, module, names, loglik, Xt, Tt, validation, kw, seed,
                    float(self.prior_scale), int(self.n_particles))
                log_z, ess, n_iter, ok = math.nan, np.zeros(0), res.n_iter, res.converged
            else:
                phi, log_w, res = _mlp.fit_map(self, module, names, loglik, Xt, Tt, validation,
                                               kw, seed, float(self.prior_scale))
                log_z, ess, n_iter, ok = math.nan, np.zeros(0), res.n_iter, res.converged
            if chains is None:
                chains = (phi[None], log_w[None])
                self.best_restart_ = 0
            self._store_block(module, names, phi, log_w)
        self.module_, self.stochastic_names_ = module, names
        self.particles_ = phi.detach().cpu().numpy()
        self.log_weights_ = _smc.normalise(log_w).detach().cpu().numpy()
        self.log_evidence_ = float(log_z)
        self.ess_history_ = np.asarray(ess, dtype=np.float64)
        self.chain_particles_ = chains[0].detach().cpu().numpy()
        self.chain_log_weights_ = chains[1].detach().cpu().numpy()
        self.n_iter_, self.converged_ = int(n_iter), bool(ok)
        self.n_outputs_ = int(n_out)
        return self

    def _stratify(self, stratify):
        return None

    @torch.no_grad()
    def _store_block(self, module, names, phi, log_w):
        """Put the particle mean into the module's block (a readable ``module_``)."""
        mean = _mlp.block_mean(phi.detach(), log_w.detach())
        named = dict(module.named_parameters())
        offset = 0
        for n in names:
            k = named[n].numel()
            named[n].copy_(mean[offset:offset + k].reshape(named[n].shape))
            offset += k

    def _new_module(self, n_in, n_out):
        return _mlp.MLP(n_in, self.hidden_layer_sizes, n_out, self.activation,
                        learn_noise=self._learn_noise())

    def _learn_noise(self) -> bool:
        return False

    def _rebuild_modules(self):
        """An untrained MLP of the fitted shape (``probest.load`` fills it)."""
        with torch.random.fork_rng():
            return {"module_": self._new_module(len(self.x_mean_), int(self.n_outputs_))}

    # --- prediction helpers -------------------------------------------------------------------
    def _engine(self) -> FeynmanKacTrainer:
        """A trainer view of the fitted net and particles (no training)."""
        check_is_fitted(self)
        module = self.module_
        dev = next(module.parameters()).device
        dt = next(module.parameters()).dtype
        fk = FeynmanKacTrainer(module, self.stochastic_names_, self._loglik(module),
                               n_particles=len(self.particles_))
        fk.particles_ = torch.as_tensor(np.asarray(self.particles_), device=dev, dtype=dt)
        fk.log_weights_ = torch.as_tensor(np.asarray(self.log_weights_), device=dev, dtype=dt)
        return fk

    def _inputs(self, X) -> torch.Tensor:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        p = next(self.module_.parameters())
        check_scale(X, owner=type(self).__name__, dtype=p.dtype)
        Z = (X - self.x_mean_) / self.x_scale_
        return torch.tensor(Z, device=p.device, dtype=p.dtype)

    def _weights(self) -> np.ndarray:
        w = np.exp(self.log_weights_ - np.max(self.log_weights_))
        return w / w.sum()

    def _draw_particles(self, n, random_state):
        rng = np.random.default_rng(random_state)
        return rng.choice(len(self.particles_), size=n, p=self._weights()), rng

    # --- posterior exports ---------------------------------------------------------------------
    def to_arviz(self, random_state=0):
        """The particles as ArviZ draws: one chain per restart (so R-hat exposes mode drift
        between runs), each chain resampled by its weights through
        :func:`probest.viz.to_inference_data` (``weights=``; the weights and the ESS are in
        ``sample_stats``).  One variable per stochastic parameter (dots become ``_``)."""
        from probest.viz import to_inference_data

        check_is_fitted(self)
        cp = np.asarray(self.chain_particles_)
        lw = np.asarray(self.chain_log_weights_)
        w = np.exp(lw - lw.max(1, keepdims=True))
        module = self.module_
        shapes = {n: tuple(dict(module.named_parameters())[n].shape) for n in self.stochastic_names_}
        post, offset = {}, 0
        for n, shp in shapes.items():
            k = int(np.prod(shp))
            post[n.replace(".", "_")] = cp[:, :, offset:offset + k].reshape(cp.shape[:2] + shp)
            offset += k
        return to_inference_data(post, chains=None, weights=w, random_state=random_state)

    def _empirical(self):
        import pyro.distributions as dist

        p = next(self.module_.parameters())
        phi = torch.as_tensor(np.asarray(self.particles_), device=p.device, dtype=p.dtype)
        lw = torch.as_tensor(np.asarray(self.log_weights_), device=p.device, dtype=p.dtype)
        return dist.Empirical(phi, lw)
