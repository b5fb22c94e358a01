"""AutoregressiveDLMEstimator: a MADE whose conditionals are discretized logistic mixtures."""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.base import DensityMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn
from torch.distributions import constraints

from probest._torch import draw_seed, seeded
from probest._train import autocast, train
from probest._validation import check_n_samples, check_sample_weight
from probest.base import EstimatorSpec
from probest.compose import EstimatorDistribution, register_module
from probest.flows._base import FlowEstimator
from probest.flows._dlm import DiscretizedLogisticMixture

_LN2 = math.log(2.0)


class _MADE(nn.Module):
    """``p(x) = prod_i DLM(x_i | logits, loc, log_scale = f_i(x_<i))`` with a masked MLP."""

    def __init__(self, dim: int, n_components: int, hidden, n_levels: int):
        super().__init__()
        from zuko.nn import MaskedMLP

        k = n_components
        order = torch.arange(dim)
        # output row (i, param) may read input j iff j < i
        adjacency = (order[None, :] < order[:, None]).repeat_interleave(3 * k, dim=0)
        self.net = MaskedMLP(adjacency, tuple(int(h) for h in hidden), activation=nn.ELU)
        self.dim, self.k, self.n_levels = dim, k, n_levels
        # spread the initial component locations over [-1, 1] (output bias only)
        last = self.net[-1]
        with torch.no_grad():
            last.weight.mul_(0.1)
            b = last.bias.view(dim, 3, k)
            b.zero_()
            b[:, 1] = torch.linspace(-0.8, 0.8, k)
            b[:, 2] = math.log(1.0 / k)

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * x / (self.n_levels - 1) - 1.0

    def dist(self, x: torch.Tensor) -> DiscretizedLogisticMixture:
        h = self.net(self._scaled(x)).view(*x.shape[:-1], self.dim, 3, self.k)
        logits, loc, log_scale = h.unbind(-2)
        return DiscretizedLogisticMixture(logits, loc, log_scale.clamp_min(-7.0), self.n_levels)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.dist(x).log_prob(x).sum(-1)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        p = next(self.parameters())
        x = torch.zeros(n, self.dim, dtype=p.dtype, device=p.device)
        for i in range(self.dim):
            x[:, i] = self.dist(x).sample()[:, i]
        return x


class AutoregressiveDLMEstimator(DensityMixin, FlowEstimator):
    """Autoregressive density for integer data (pixels, counts): MADE + discretized logistics.

    ``p(x) = prod_i sum_k pi_ik DLogistic(x_i; mu_ik, s_ik)`` where the mixture parameters of
    feature ``i`` come from a masked MLP reading features ``< i`` (one pass for the
    likelihood, ``D`` passes to sample).  Scores are exact log-probabilities of the integer
    vectors, directly comparable (as bits per dim) with a dequantized flow's bound.

    Parameters
    ----------
    n_components : int, default=5
        Mixture components per feature.
    hidden : tuple of int, default=(256, 256)
        MADE hidden widths.
    n_levels : int or None, default=None
        Integer levels ``0 .. n_levels-1`` (default ``max(X) + 1``).
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
        The trained MADE.
    n_levels_ : int
        Integer levels of the data.
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

    Examples
    --------
    >>> import numpy as np
    >>> from probest.flows import AutoregressiveDLMEstimator
    >>> X = np.random.default_rng(0).integers(0, 4, size=(100, 3))
    >>> est = AutoregressiveDLMEstimator(n_components=2, hidden=(16,), max_iter=20,
    ...                                  batch_size=50, device="cpu", random_state=0).fit(X)
    >>> est.n_levels_, est.score_samples(X[:3]).shape, est.sample(2, random_state=0).shape
    (4, (3,), (2, 3))
    >>> est.to_pyro().event_shape
    torch.Size([3])
    """
    _spec = EstimatorSpec(outputs=("score_samples",))

    _fitted_attributes = ("model_", "n_levels_", "converged_", "n_iter_")

    def __init__(self, n_components=5, hidden=(256, 256), n_levels=None, ema=0.999, max_iter=1000,
                 batch_size=256, lr=1e-3, weight_decay=0.0, amp=False, dtype="float32",
                 device="auto", random_state=None, verbose=0):
        self._store_params(locals())

    def _check_levels(self, X: np.ndarray, levels: int) -> None:
        if not np.all(np.equal(np.mod(X, 1), 0)) or X.min() < 0:
            raise ValueError(
                "AutoregressiveDLMEstimator models non-negative integer data (e.g. pixel "
                "levels); X has negative or non-integer values. Use FlowDensityEstimator for "
                "continuous data."
            )
        if X.max() >= levels:
            raise ValueError(f"X has the value {X.max():.15g} >= n_levels={levels:.15g}; raise n_levels.")

    def fit(self, X, y=None, sample_weight=None):
        """Maximum likelihood by Adam on minibatches."""
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        for name in ("max_iter", "batch_size", "n_components"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        w = check_sample_weight(sample_weight, X.shape[0])
        self.n_levels_ = int(X.max()) + 1 if self.n_levels is None else int(self.n_levels)
        self.n_levels_ = max(self.n_levels_, 2)
        self._check_levels(X, self.n_levels_)
        with self._fit_context() as ctx:
            Xt = self._tensor(X)
            self.model_ = _MADE(X.shape[1], int(self.n_components), self.hidden,
                                self.n_levels_).to(self.device_, self.dtype_)
            draw = self._batch_sampler(len(Xt), w, ctx)

            def loss_fn(step: int) -> torch.Tensor:
                with autocast(self.amp, self.device_):
                    return -self.model_.log_prob(Xt[draw()]).mean()

            result = train(self, self.model_, loss_fn, self._train_config(), desc="MADE-DLM")
            self._record_training(result)
            self.model_.eval()
        return self

    def _validated(self, X) -> torch.Tensor:
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        self._check_levels(X, self.n_levels_)
        return self._tensor(X)

    def score_samples(self, X) -> np.ndarray:
        """Log-probability (nats) of each integer row."""
        x = self._validated(X)
        with torch.no_grad():
            return torch.cat([self.model_.log_prob(c) for c in torch.split(x, 4096)]).cpu().numpy()

    def score(self, X, y=None) -> float:
        """Mean log-probability per sample (nats)."""
        return float(np.mean(self.score_samples(X)))

    def bits_per_dim(self, X) -> float:
        """``-mean log2 p(x) / D``."""
        return float(-self.score(X) / (self.n_features_in_ * _LN2))

    def sample(self, n_samples=1, random_state=None) -> np.ndarray:
        """Integer-valued draws (``D`` sequential passes); ``n_samples`` must be an int >= 1
        (``ValueError`` otherwise)."""
        check_is_fitted(self, "model_")
        n_samples = check_n_samples(n_samples)
        seed = draw_seed(self.random_state if random_state is None else random_state)
        with seeded(seed, self.device_):
            return self.model_.sample(n_samples).cpu().numpy().astype(np.float64)

    def to_pyro(self, frozen: bool = True, name: str = "made_dlm") -> EstimatorDistribution:
        """A Pyro distribution over integer vectors (``event_shape == (n_features,)``)."""
        check_is_fitted(self, "model_")
        model = register_module(name, self.model_, frozen=frozen)
        support = constraints.independent(constraints.integer_interval(0, self.n_levels_ - 1), 1)
        return EstimatorDistribution(
            lambda x: model.log_prob(x.to(self.device_, self.dtype_)), model.sample,
            self.n_features_in_, module=model, support=support,
        )

    def _default_data(self):
        """Data for ``probest fit AutoregressiveDLMEstimator`` without --data: digits levels."""
        from sklearn.datasets import load_digits

        return load_digits().data.astype(float), None, "load_digits (17 integer levels)", {}

    def _rebuild_modules(self):
        """An untrained MADE of the fitted shape (``probest.load`` fills it)."""
        with torch.random.fork_rng():
            return {"model_": _MADE(int(self.n_features_in_), int(self.n_components), self.hidden,
                                    int(self.n_levels_))}
