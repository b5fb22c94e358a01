"""FlowMatchingEstimator: conditional flow matching with OT couplings and exact likelihoods."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import DensityMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from probest._torch import draw_seed, seeded
from probest._train import autocast, train
from probest._validation import Interval, Options, check_n_samples, check_sample_weight
from probest.base import EstimatorSpec
from probest.compose import EstimatorDistribution, register_module
from probest.flows import _ode
from probest.flows._base import FlowEstimator
from probest.flows._preprocess import Preprocessor, check_degenerate, check_dequantization

_COUPLINGS = ("independent", "exact_ot", "sinkhorn")
_SOLVERS = ("dopri5", "dopri8", "bosh3", "adaptive_heun", "euler", "midpoint", "rk4")
_TRACES = ("auto", "exact", "hutchinson")


class FlowMatchingEstimator(DensityMixin, TransformerMixin, FlowEstimator):
    """Conditional flow matching (Lipman et al.; OT-CFM, Tong et al.) with exact log-likelihoods.

    A velocity field ``v(t, x)`` is regressed on ``x1 - x0`` along ``x_t = t x1 + (1 - t) x0
    (+ sigma noise)``, with source draws ``x0 ~ N(0, I)`` paired to data ``x1`` independently,
    by exact minibatch OT (``ot.emd``) or by Sinkhorn.  Sampling integrates the ODE from
    ``t = 0`` to 1; :meth:`score_samples` integrates the log-density
    ``log p1(x) = log p0(x0) - int div v dt`` backwards with torchdiffeq.

    Parameters
    ----------
    coupling : {"independent", "exact_ot", "sinkhorn"}, default="exact_ot"
        How source draws are paired with data in a minibatch.
    sigma : float, default=0.0
        Noise s.d. around the straight path.
    source : {"gaussian"}, default="gaussian"
        Source distribution ``N(0, I)``.
    solver : str, default="dopri5"
        Torchdiffeq method ("dopri5" adaptive; "euler", "midpoint", "rk4" fixed-step).
    n_steps : int, default=100
        Steps of fixed-step solvers.
    rtol : float, default=1e-5
        Relative tolerance of adaptive solvers.
    atol : float, default=1e-5
        Absolute tolerance of adaptive solvers.
    trace : {"auto", "exact", "hutchinson"}, default="auto"
        Divergence for log-densities ("auto": exact up to 16 features).
    n_probes : int, default=8
        Rademacher probes per trajectory for Hutchinson (drawn once, held fixed).
    hidden : tuple of int, default=(128, 128, 128)
        Widths of the velocity MLP.
    preprocess : {"standardize", None}, default="standardize"
        Elementwise bijection before the flow; its Jacobian is included in densities.
    sinkhorn_reg : float, default=0.05
        Entropic regularisation (cost scaled to max 1).
    ema : float or None, default=0.999
        Decay of the exponential moving average of the weights used after training
        (None: the last iterate).
    max_iter : int, default=2000
        Adam steps.
    batch_size : int, default=256
        Minibatch size.
    lr : float, default=3e-3
        Adam learning rate.
    weight_decay : float, default=0.0
        Adam weight decay.
    amp : bool, default=False
        bf16 autocast for the training forward pass on CUDA.
    dtype : {"float32", "float64"}, default="float32"
        Floating dtype of the network.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
        Torch device ("auto" picks CUDA when present).
    random_state : None, int or numpy RandomState/Generator, default=None
        Seeds initialisation, minibatches and noise (global RNG states are never touched).
    verbose : int, default=0
        0 silent, 1 a progress bar with the loss, 2 also one line per logged step.

    Attributes
    ----------
    model_ : torch.nn.Module
        The velocity network.
    preprocessor_ : torch.nn.Module
        The fitted preprocessing bijection.
    nfe_ : int
        Number of velocity evaluations of the last ODE solve.
    converged_ : bool
        False when the loss became non-finite.
    n_iter_ : int
        Training steps run.
    history_ : list of dict
        Logged training steps (``iter``, ``objective`` = the training loss, ``time``).
    n_features_in_ : int
        Number of features seen in ``fit``.
    device_ : torch.device
        Device of the fit.
    dtype_ : torch.dtype
        Dtype of the fit.

    Notes
    -----
    Degenerate data: all rows identical raise ``ValueError``; constant columns warn with
    :class:`~probest.flows.DegenerateDataWarning` (a ``ConvergenceWarning``) and set
    ``converged_ = False``.  Entries so large that their squares overflow the fit
    ``dtype`` raise ``ValueError`` at ``fit``; rows whose outputs are not finite (far outside
    the training data) raise ``ValueError`` naming them.

    Examples
    --------
    >>> from probest.datasets import make_flow_toy
    >>> from probest.flows import FlowMatchingEstimator
    >>> X = make_flow_toy(200, random_state=0)
    >>> est = FlowMatchingEstimator(coupling="independent", hidden=(16,), max_iter=20,
    ...                             batch_size=64, solver="euler", n_steps=10, device="cpu",
    ...                             random_state=0).fit(X)
    >>> est.score_samples(X[:3]).shape, est.sample(4, random_state=0).shape, est.nfe_
    ((3,), (4, 2), 10)
    """
    _spec = EstimatorSpec(outputs=("score_samples", "transform"))

    _fitted_attributes = ("model_", "preprocessor_", "converged_", "n_iter_", "nfe_")

    def __init__(
        self, coupling="exact_ot", sigma=0.0, source="gaussian", solver="dopri5", n_steps=100,
        rtol=1e-5, atol=1e-5, trace="auto", n_probes=8, hidden=(128, 128, 128),
        preprocess="standardize", sinkhorn_reg=0.05,
        ema=0.999, max_iter=2000, batch_size=256, lr=3e-3, weight_decay=0.0, amp=False,  # training
        dtype="float32", device="auto", random_state=None, verbose=0,
    ):
        self._store_params(locals())

    _constraints = {
        "coupling": (Options(_COUPLINGS),),
        "solver": (Options(_SOLVERS),),
        "trace": (Options(_TRACES),),
        "source": (Options({"gaussian"}),),
        "preprocess": (Options({"standardize", "none"}), None),
        "max_iter": (Interval(int, 1, None),),
        "batch_size": (Interval(int, 1, None),),
        "n_steps": (Interval(int, 1, None),),
        "n_probes": (Interval(int, 1, None),),
        "sigma": (Interval(float, 0.0, None),),
    }

    def fit(self, X, y=None, sample_weight=None):
        """Regress the velocity field on minibatch pairs for ``max_iter`` Adam steps."""
        self._validate_params()
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        w = check_sample_weight(sample_weight, X.shape[0])
        check_dequantization(X, None, None)  # warns on integer data
        const = check_degenerate(X, w, type(self).__name__)
        with self._fit_context() as ctx:
            self._check_scale(X)
            Xt = self._tensor(X)
            self.preprocessor_ = Preprocessor.fit(self.preprocess, Xt, None).to(self.device_)
            Z = self.preprocessor_(Xt)[0]
            self.model_ = _ode.VelocityMLP(X.shape[1], self.hidden).to(self.device_, self.dtype_)
            draw = self._batch_sampler(len(Z), w, ctx)
            gen, sigma, coupling = ctx.generator, float(self.sigma), self.coupling
            reg = float(self.sinkhorn_reg)

            def loss_fn(step: int) -> torch.Tensor:
                x1 = Z[draw()]
                x0 = torch.randn(x1.shape, generator=gen, dtype=x1.dtype, device=x1.device)
                x0, x1 = _ode.couple(x0, x1, coupling, reg, gen)
                t = torch.rand(x1.shape[0], 1, generator=gen, dtype=x1.dtype, device=x1.device)
                xt = t * x1 + (1 - t) * x0
                if sigma > 0:
                    xt = xt + sigma * torch.randn(xt.shape, generator=gen, dtype=xt.dtype, device=xt.device)
                with autocast(self.amp, self.device_):
                    v = self.model_(t, xt)
                return ((v.float() - (x1 - x0).float()) ** 2).sum(-1).mean()

            result = train(self, self.model_, loss_fn, self._train_config(),
                           desc=f"CFM/{self.coupling}")
            self._record_training(result, degenerate=len(const) > 0)
            self.model_.eval()
            for p in self.model_.parameters():
                p.requires_grad_(False)
        return self

    # --- ODE helpers -----------------------------------------------------------------------
    def _use_exact(self) -> bool:
        return self.trace == "exact" or (self.trace == "auto" and self.n_features_in_ <= 16)

    def _probes(self, n: int, gen) -> torch.Tensor | None:
        if self._use_exact():
            return None
        return _ode.rademacher(int(self.n_probes), (n, self.n_features_in_), gen, self.dtype_, self.device_)

    def _solver_kw(self) -> dict:
        return dict(solver=self.solver, n_steps=int(self.n_steps), rtol=float(self.rtol),
                    atol=float(self.atol))

    def _log_prob(self, x: torch.Tensor, gen=None, differentiable=False, chunk=8192) -> torch.Tensor:
        out, nfe = [], 0
        for xc in torch.split(x, chunk):
            z, ld = self.preprocessor_(xc)
            lp, n = _ode.cnf_log_prob(self.model_, z, probes=self._probes(len(z), gen),
                                      differentiable=differentiable, **self._solver_kw())
            out.append(lp + ld)
            nfe = max(nfe, n)
        self.nfe_ = nfe
        return torch.cat(out)

    def _validated(self, X) -> torch.Tensor:
        check_is_fitted(self, "model_")
        return self._tensor(validate_data(self, X, dtype=np.float64, reset=False))

    # --- public API ------------------------------------------------------------------------
    def score_samples(self, X, random_state=0) -> np.ndarray:
        """Log-density of each row (nats) through the ODE; ``random_state`` seeds the
        Hutchinson probes (ignored for the exact trace)."""
        x = self._validated(X)
        with seeded(draw_seed(random_state), self.device_) as gen, torch.no_grad():
            lp = self._log_prob(x, gen).cpu().numpy().astype(np.float64)
        return self._finite(lp, "score_samples", X)

    def score(self, X, y=None) -> float:
        """Mean log-likelihood per sample (nats)."""
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples=1, random_state=None, return_log_prob=False):
        """Draws by integrating the ODE from source noise; with ``return_log_prob=True`` also
        the log-density of each draw, integrated jointly along the same trajectory.
        ``n_samples`` must be an int >= 1 (``ValueError`` otherwise)."""
        check_is_fitted(self, "model_")
        n = check_n_samples(n_samples)
        seed = draw_seed(self.random_state if random_state is None else random_state)
        with seeded(seed, self.device_) as gen:
            z0 = torch.randn(n, self.n_features_in_, generator=gen, dtype=self.dtype_, device=self.device_)
            z1, lp, self.nfe_ = _ode.cnf_sample(self.model_, z0, probes=self._probes(n, gen),
                                                with_log_prob=return_log_prob, **self._solver_kw())
            x = self.preprocessor_.inverse(z1.detach())
            X = x.cpu().numpy().astype(np.float64)
            if not return_log_prob:
                return X
            lp = lp.detach() + self.preprocessor_(x)[1]
            return X, lp.cpu().numpy().astype(np.float64)

    def transform(self, X) -> np.ndarray:
        """Source-space (``t = 0``) coordinates of ``X``: the ODE run backwards."""
        x = self._validated(X)
        z = self.preprocessor_(x)[0]
        with torch.no_grad():
            out = _ode._odeint(self.model_, z, 1.0, 0.0, **self._solver_kw())
        return self._finite(out.cpu().numpy().astype(np.float64), "transform", X)

    def to_pyro(self, frozen: bool = True, name: str = "flow_matching") -> EstimatorDistribution:
        """The model as a Pyro distribution (``event_shape == (n_features,)``).

        ``log_prob`` solves the ODE (differentiable in ``x`` and, with ``frozen=False``, in
        the registered velocity network); ``sample`` integrates it forwards.  Frozen by default.
        """
        check_is_fitted(self, "model_")
        model = register_module(name, self.model_, frozen=frozen)

        def log_prob(x: torch.Tensor) -> torch.Tensor:
            x = x.to(device=self.device_, dtype=self.dtype_)
            diff = torch.is_grad_enabled() and (x.requires_grad or not frozen)
            gen = torch.Generator(device=self.device_).manual_seed(0)
            return self._log_prob(x, gen, differentiable=diff)

        def sample(n: int) -> torch.Tensor:
            z0 = torch.randn(n, self.n_features_in_, dtype=self.dtype_, device=self.device_)
            with torch.no_grad():
                z1 = _ode._odeint(model, z0, 0.0, 1.0, **self._solver_kw())
            return self.preprocessor_.inverse(z1)

        return EstimatorDistribution(log_prob, sample, self.n_features_in_, module=model)

    def _default_data(self):
        """Data for ``probest fit FlowMatchingEstimator`` without --data: two moons."""
        from probest.datasets import make_flow_toy

        return make_flow_toy(2000, random_state=0), None, "two moons (make_flow_toy)", {}

    def _rebuild_modules(self):
        """Untrained modules of the fitted architecture (``probest.load`` fills them)."""
        d = int(self.n_features_in_)
        with torch.random.fork_rng():
            model = _ode.VelocityMLP(d, self.hidden).requires_grad_(False)
        empty = torch.zeros(d)
        return {"model_": model, "preprocessor_": Preprocessor(self.preprocess or "none", empty, empty)}

