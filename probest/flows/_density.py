"""FlowDensityEstimator: normalizing flows (zuko NSF/MAF/RealNVP, EBFlow, TARFlow)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from sklearn.base import DensityMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from probest._torch import draw_seed, seeded
from probest._train import autocast, train
from probest._validation import Interval, Options, check_n_samples, check_sample_weight
from probest.base import EstimatorSpec
from probest.compose import EstimatorDistribution, register_module
from probest.flows import _ebflow
from probest.flows._base import FlowEstimator
from probest.flows._models import FLOWS, OBJECTIVES, build_model
from probest.flows._preprocess import (
    Preprocessor,
    check_degenerate,
    check_dequantization,
    dequantization_noise,
)

_LN2 = math.log(2.0)


class FlowDensityEstimator(DensityMixin, TransformerMixin, FlowEstimator):
    """Normalizing-flow density estimator trained by maximum likelihood or score matching.

    Parameters
    ----------
    flow : {"nsf", "maf", "realnvp", "ebflow_fc", "tarflow"}, default="nsf"
        zuko's neural spline / masked autoregressive / RealNVP flows; ``"ebflow_fc"`` is a
        fully-connected energy-based flow (dense ``D x D`` linear layers with constant Jacobians
        and elementwise nonlinearities), the only flow that supports score matching;
        ``"tarflow"`` is an affine autoregressive flow with a causal-transformer conditioner.
    objective : {"mle", "ssm", "dsm", "fdssm"}, default="mle"
        ``"mle"`` (default) or, for ``flow="ebflow_fc"`` only, sliced / denoising /
        finite-difference sliced score matching (experimental: after training the exact NLL
        is computed and a warning is raised when it is worse than a full-covariance Gaussian).
    n_transforms : int, default=3
        Flow transformations (EBFlow: nonlinear blocks; TARFlow: transformer blocks).
    hidden : tuple of int, default=(64, 64)
        Hidden widths of the conditioner MLPs (TARFlow: ``hidden[0]`` is the width).
    dequantize : {None, "uniform", "truncnorm"}, default=None
        Add noise in ``[0, 1)`` to integer data at every step.  Then densities live on
        ``[0, n_levels)^D`` and :meth:`bits_per_dim` of integer data is a dequantization bound.
    n_levels : int or None, default=None
        Number of integer levels (default ``max(X) + 1``).
    preprocess : {"standardize", "logit", None}, default="standardize"
        Elementwise bijection applied before the flow; its log-Jacobian is always included
        in :meth:`score_samples`.  ``"logit"`` maps ``[0, n_levels)`` (or the data range) to R.
    ema : float or None, default=0.999
        Decay of the exponential moving average of the weights used after training
        (None: the last iterate).
    max_iter : int, default=1000
        Adam steps.
    batch_size : int, default=256
        Minibatch size.
    lr : float, default=1e-3
        Adam learning rate.
    weight_decay : float, default=0.0
        Adam weight decay.
    sm_sigma : float, default=0.05
        Noise level of DSM (in preprocessed units).
    fd_eps : float, default=0.1
        Perturbation norm of FDSSM.
    patch : int, default=4
        TARFlow tokens: ``patch`` consecutive features, or ``patch x patch`` tiles when
        ``image_shape`` is given.
    image_shape : (int, int) or None, default=None
        Height and width of image rows (TARFlow only), e.g. ``(8, 8)`` for digits.
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
        The trained flow (on preprocessed data).
    preprocessor_ : torch.nn.Module
        The fitted preprocessing bijection.
    n_levels_ : int or None
        Integer levels of dequantized data.
    train_nll_ : float
        Exact mean NLL (nats) of a subset of the training data after training.
    reference_gaussian_nll_ : float
        The same for a full-covariance Gaussian MLE (sanity bar).
    linear_logdet_ : float or None
        Cached sum of EBFlow's linear log-determinants.
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
    ``converged_ = False`` (not with ``dequantize``, whose noise fills them).  Entries so
    large that their squares overflow the fit ``dtype`` raise ``ValueError`` at ``fit``;
    rows whose outputs are not finite (far outside the training data) raise ``ValueError``
    naming them (``-inf`` is returned, exactly, outside the support of
    ``preprocess="logit"``).

    Examples
    --------
    >>> import numpy as np
    >>> from probest.datasets import make_flow_toy
    >>> from probest.flows import FlowDensityEstimator
    >>> X = make_flow_toy(200, random_state=0)  # two moons
    >>> est = FlowDensityEstimator(flow="maf", n_transforms=1, hidden=(8,), max_iter=20,
    ...                            batch_size=64, device="cpu", random_state=0).fit(X)
    >>> est.score_samples(X[:3]).shape, est.sample(4, random_state=0).shape
    ((3,), (4, 2))
    >>> est.to_pyro().event_shape  # a Pyro distribution over one 2-D point
    torch.Size([2])
    """
    _spec = EstimatorSpec(outputs=("score_samples", "transform"))

    _fitted_attributes = ("model_", "preprocessor_", "n_levels_", "linear_logdet_", "converged_",
                          "n_iter_", "train_nll_", "reference_gaussian_nll_")

    def __init__(
        self, flow="nsf", objective="mle", n_transforms=3, hidden=(64, 64), dequantize=None,
        n_levels=None, preprocess="standardize",
        ema=0.999, max_iter=1000, batch_size=256, lr=1e-3, weight_decay=0.0,  # training
        sm_sigma=0.05, fd_eps=0.1, patch=4, image_shape=None, amp=False,
        dtype="float32", device="auto", random_state=None, verbose=0,
    ):
        self._store_params(locals())

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags

    # --- fitting ---------------------------------------------------------------------------
    _constraints = {
        "flow": (Options(FLOWS),),
        "objective": (Options(OBJECTIVES),),
        "max_iter": (Interval(int, 1, None),),
        "batch_size": (Interval(int, 1, None),),
        "n_transforms": (Interval(int, 0, None),),
        "lr": (Interval(float, 0.0, None, closed="neither"),),
    }

    def _validate_params(self) -> None:
        super()._validate_params()
        if self.objective != "mle" and self.flow != "ebflow_fc":
            raise ValueError(
                f"objective={self.objective!r} needs a flow whose linear layers have constant "
                f"Jacobians (flow='ebflow_fc'); flow={self.flow!r} supports objective='mle' only."
            )
        if self.flow != "ebflow_fc" and self.n_transforms < 1:
            raise ValueError(f"n_transforms must be >= 1 (>= 0 for ebflow_fc), got {self.n_transforms}.")

    def fit(self, X, y=None, sample_weight=None):
        """Fit the flow to ``X`` (``n_samples x n_features``); ``y`` is ignored."""
        self._validate_params()
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        w = check_sample_weight(sample_weight, X.shape[0])
        self.n_levels_ = check_dequantization(X, self.dequantize, self.n_levels)
        # dequantization noise makes constant columns continuous: nothing degenerate then
        const = [] if self.dequantize else check_degenerate(X, w, type(self).__name__)
        with self._fit_context() as ctx:
            self._check_scale(X)
            Xt = self._tensor(X)
            deq_levels = self.n_levels_ if self.dequantize else None
            ref = Xt + 0.5 if self.dequantize else Xt
            self.preprocessor_ = Preprocessor.fit(self.preprocess, ref, deq_levels).to(self.device_)
            self.model_ = build_model(
                self.flow, X.shape[1], int(self.n_transforms), self.hidden, int(self.patch),
                self.image_shape if self.flow == "tarflow" else None,
            ).to(device=self.device_, dtype=self.dtype_)
            draw = self._batch_sampler(X.shape[0], w, ctx)
            loss_fn = self._loss_fn(Xt, draw, ctx.generator)
            result = train(self, self.model_, loss_fn, self._train_config(),
                           desc=f"{self.flow}/{self.objective}")
            self._record_training(result, degenerate=len(const) > 0)
            self._after_fit(Xt, ctx.generator)
        return self

    def _loss_fn(self, Xt, draw, gen):
        model, pre = self.model_, self.preprocessor_

        def loss_fn(step: int) -> torch.Tensor:
            xb = Xt[draw()]
            if self.dequantize:
                xb = xb + dequantization_noise(xb.shape, self.dequantize, gen, xb.dtype, xb.device)[0]
            with autocast(self.amp, self.device_):
                z = pre(xb)[0]
                if self.objective == "mle":
                    return -model.log_prob(z).mean()
                logp = model.unnormalized_log_prob
                if self.objective == "ssm":
                    return _ebflow.ssm_loss(logp, z, gen)
                if self.objective == "dsm":
                    return _ebflow.dsm_loss(logp, z, float(self.sm_sigma), gen)
                return _ebflow.fdssm_loss(logp, z, float(self.fd_eps), gen)

        return loss_fn

    @torch.no_grad()
    def _after_fit(self, Xt: torch.Tensor, gen: torch.Generator) -> None:
        self.model_.eval()
        self.linear_logdet_ = None
        if self.model_.has_linear_layers:
            self.model_.net.cache_linear_logdet()
            self.linear_logdet_ = float(self.model_.net.cached_logdet)
        sub = Xt[: min(len(Xt), 2000)]
        if self.dequantize:
            sub = sub + dequantization_noise(sub.shape, "uniform", gen, sub.dtype, sub.device)[0]
        self.train_nll_ = float(-self._log_prob(sub).mean())
        # a full-covariance Gaussian on the preprocessed data: a bar every flow should clear
        z, ld = self.preprocessor_(sub)
        zc = z - z.mean(0)
        cov = zc.T @ zc / len(z) + 1e-6 * torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
        mvn = torch.distributions.MultivariateNormal(z.mean(0), covariance_matrix=cov)
        self.reference_gaussian_nll_ = float(-(mvn.log_prob(z) + ld).mean())
        if self.objective != "mle" and not self.train_nll_ <= self.reference_gaussian_nll_ + 0.5:
            warnings.warn(
                f"objective={self.objective!r} (experimental) gave an exact training NLL of "
                f"{self.train_nll_:.2f} nats, worse than a full-covariance Gaussian fit "
                f"({self.reference_gaussian_nll_:.2f}); score matching fits the score, not the "
                "mass: use objective='mle' for likelihoods.",
                UserWarning,
                stacklevel=3,
            )

    # --- evaluation ------------------------------------------------------------------------
    def _log_prob(self, x: torch.Tensor, cached: bool = True) -> torch.Tensor:
        """Log-density of ``x`` (original units) including the preprocessing Jacobian."""
        out = []
        for chunk in torch.split(x, 4096):
            z, ld = self.preprocessor_(chunk)
            # rows whose latent overflowed (|x| past the dtype) get NaN here, named by
            # `_finite`; the flow (and its base distribution's support check) sees zeros
            bad = ~torch.isfinite(z).reshape(len(z), -1).all(-1)
            if bad.any():
                z = torch.where(bad.reshape(-1, *[1] * (z.dim() - 1)), torch.zeros_like(z), z)
            lp = self.model_.log_prob(z, cached=cached) + ld
            lp = torch.where(bad, torch.full_like(lp, math.nan), lp)
            out.append(torch.where(torch.isfinite(ld), lp, torch.full_like(lp, -math.inf)))
        return torch.cat(out)

    def _validated(self, X) -> torch.Tensor:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self._tensor(X)

    def score_samples(self, X) -> np.ndarray:
        """Log-density of each row of ``X`` (nats), preprocessing Jacobian included.

        With dequantization this is the continuous density on ``[0, n_levels)^D``: pass
        dequantized values (``X + U[0, 1)``), or use :meth:`bits_per_dim` for integer data.
        """
        x = self._validated(X)
        with torch.no_grad():
            lp = self._log_prob(x).cpu().numpy().astype(np.float64)
        # -inf is exact outside the bounded support of preprocess="logit"; NaN/overflow is not
        return self._finite(lp, "score_samples", X, allow_neg_inf=self.preprocess == "logit")

    def score(self, X, y=None) -> float:
        """Mean log-likelihood per sample (nats)."""
        return float(np.mean(self.score_samples(X)))

    def bits_per_dim(self, X, random_state=0) -> float:
        """Negative log-likelihood in bits per dimension.

        For integer ``X`` and a dequantized model this is the dequantization bound
        ``-E_q[log p(x + u) - log q(u)] / (D ln 2)`` with one seeded draw of ``u``.
        """
        x = self._validated(X)
        logq = torch.zeros(len(x), dtype=x.dtype, device=x.device)
        if self.dequantize and bool(torch.all(x == torch.round(x))):
            with seeded(draw_seed(random_state), self.device_) as gen:
                u, logq = dequantization_noise(x.shape, self.dequantize, gen, x.dtype, x.device)
            x = x + u
        with torch.no_grad():
            lp = self._log_prob(x) - logq
        self._finite(lp.cpu().numpy(), "bits_per_dim", X, allow_neg_inf=self.preprocess == "logit")
        return float(-lp.mean() / (x.shape[1] * _LN2))

    def transform(self, X) -> np.ndarray:
        """Latent (standard-normal) coordinates of ``X``."""
        x = self._validated(X)
        with torch.no_grad():
            z = self.model_.transform(self.preprocessor_(x)[0]).cpu().numpy().astype(np.float64)
        return self._finite(z, "transform", X)

    def sample(self, n_samples=1, random_state=None) -> np.ndarray:
        """``n_samples`` draws (original units; dequantized models give continuous values —
        ``np.floor`` them for integer levels).  ``random_state`` defaults to the estimator's.
        ``n_samples`` must be an int >= 1 (``ValueError`` otherwise), as everywhere in probest."""
        check_is_fitted(self, "model_")
        n_samples = check_n_samples(n_samples)
        seed = draw_seed(self.random_state if random_state is None else random_state)
        with seeded(seed, self.device_), torch.no_grad():
            z = self.model_.sample(int(n_samples))
            return self.preprocessor_.inverse(z).cpu().numpy().astype(np.float64)

    # --- Pyro ------------------------------------------------------------------------------
    def to_pyro(self, frozen: bool = True, name: str = "flow") -> EstimatorDistribution:
        """The fitted density as a Pyro distribution with ``event_shape == (n_features,)``.

        ``frozen=True``: parameters have ``requires_grad=False`` and are not registered (the
        prior is fixed).  ``frozen=False``: the estimator's own flow is registered with
        ``pyro.module(name, ...)`` and trained in place by SVI (``copy.deepcopy`` the estimator
        first to keep the fit); call ``to_pyro(frozen=False)`` inside the model.  NSF/MAF/
        RealNVP samples are reparameterised (``rsample``).
        """
        check_is_fitted(self, "model_")
        model = register_module(name, self.model_, frozen=frozen)
        pre = self.preprocessor_

        def log_prob(x: torch.Tensor) -> torch.Tensor:
            x = x.to(device=self.device_, dtype=self.dtype_)
            z, ld = pre(x)
            return model.log_prob(z, cached=frozen) + ld

        def sample(n: int) -> torch.Tensor:
            return pre.inverse(model.sample(n))

        return EstimatorDistribution(log_prob, sample, self.n_features_in_, module=model,
                                     has_rsample=model.has_rsample)

    # --- saving without pickle -------------------------------------------------------------
    def _default_data(self):
        """Data for ``probest fit FlowDensityEstimator`` without --data: two moons."""
        from probest.datasets import make_flow_toy

        return make_flow_toy(2000, random_state=0), None, "two moons (make_flow_toy)", {}

    def _rebuild_modules(self):
        """Untrained modules of the fitted architecture (``probest.load`` fills them)."""
        d = int(self.n_features_in_)
        with torch.random.fork_rng():  # building draws random initial weights
            model = build_model(self.flow, d, int(self.n_transforms), self.hidden, int(self.patch),
                                self.image_shape if self.flow == "tarflow" else None)
        empty = torch.zeros(d)
        return {"model_": model, "preprocessor_": Preprocessor(self.preprocess or "none", empty, empty)}
