"""PartialBayesianMLPRegressor: Gaussian likelihood, fixed or learned noise."""

from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from probest._validation import check_scale
from probest.bnn import _mlp
from probest.bnn._base import _DOC_ATTRS, _DOC_PARAMS, _PartialBayesianMLP


class PartialBayesianMLPRegressor(RegressorMixin, _PartialBayesianMLP):
    __doc__ = """A partial Bayesian MLP regressor trained by Feynman–Kac SMC.

    The chosen layers carry a particle posterior; every other weight (and the noise scale,
    with ``noise="learn"``) is fitted by maximum marginal likelihood with the Fisher-identity
    gradient.  Inputs and targets are standardised inside; predictions are in ``y``'s units.

    Parameters
    ----------""" + _DOC_PARAMS.replace(
        "    prior_scale : float\n",
        "    prior_scale : float\n    noise : \"learn\" or float\n        Learned Gaussian "
        "noise, or a fixed standard deviation in ``y``'s units.\n") + """
    Attributes
    ----------""" + _DOC_ATTRS + """    noise_ : float
        Noise standard deviation in ``y``'s units.
    y_mean_, y_scale_ : float
        Target standardisation.

    Examples
    --------
    >>> from probest.bnn import PartialBayesianMLPRegressor
    >>> from probest.datasets import make_xsin_regression
    >>> X, y = make_xsin_regression(200, random_state=0)
    >>> est = PartialBayesianMLPRegressor(hidden_layer_sizes=(16, 8), stochastic_layers=(1,),
    ...                                   n_particles=50, max_epochs=5, device="cpu",
    ...                                   random_state=0).fit(X, y)
    >>> mean, std = est.predict(X[:3], return_std=True)
    >>> mean.shape, std.shape, est.particles_.shape
    ((3,), (3,), (50, 136))
    """

    _fitted_attributes = ("y_mean_", "y_scale_", "noise_")

    def __init__(self, hidden_layer_sizes=(50, 20, 5), activation="gelu", stochastic_layers=(2,),
                 prior_scale=1.0, noise="learn", sampler="ohsmc", n_particles=1000, kernel="rw",
                 kernel_scale=1e-3, resampling="stratified", ess_threshold=1.0,
                 likelihood_power=1.0, final_smc=True, final_mh_steps=20, batch_size=32,
                 max_epochs=200, learning_rate=1e-2,
                 early_stopping=True, validation_fraction=0.2, patience=20, n_restarts=1,
                 device="auto", dtype="float32", random_state=None, verbose=0):
        self._store_params(locals())

    def _validate_params(self) -> None:
        super()._validate_params()
        if not (self.noise == "learn" or (isinstance(self.noise, (int, float))
                                          and not isinstance(self.noise, bool) and self.noise > 0)):
            raise ValueError(f"noise must be 'learn' or a positive float, got {self.noise!r}.")

    def _learn_noise(self) -> bool:
        return self.noise == "learn"

    def _loglik(self, module):
        fixed = None if self._learn_noise() else math.log(float(self.noise) / self.y_scale_)
        return _mlp.gaussian_loglik(module, fixed)

    def fit(self, X, y):
        """Fit on ``X`` (n_samples, n_features) and real targets ``y``."""
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True, ensure_min_samples=2)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D (one target), got shape {y.shape}.")
        check_scale(X, owner=type(self).__name__, dtype=self.dtype or "float32")
        check_scale(y[:, None], owner=type(self).__name__, dtype=self.dtype or "float32", name="y")
        self.y_mean_ = float(y.mean())
        self.y_scale_ = float(y.std()) if y.std() > 0 else 1.0
        self._fit(X, (y - self.y_mean_) / self.y_scale_, 1)
        log_s = (float(self.module_.log_noise.detach()) if self._learn_noise()
                 else math.log(float(self.noise) / self.y_scale_))
        self.noise_ = float(math.exp(log_s) * self.y_scale_)
        return self

    def _moments(self, X):
        fk = self._engine()
        out = fk.predict_outputs(self._inputs(X))[..., 0]  # (S, n)
        w = torch.exp(fk.log_weights_ - torch.logsumexp(fk.log_weights_, 0))[:, None]
        mean = (w * out).sum(0)
        var = (w * (out - mean) ** 2).sum(0)
        return out, w[:, 0], mean, var

    def predict(self, X, return_std=False):
        """BMA mean; with ``return_std`` also the predictive standard deviation
        ``sqrt(noise^2 + epistemic variance of the particles)`` (in ``y``'s units)."""
        _, _, mean, var = self._moments(X)
        m = mean.cpu().numpy().astype(np.float64) * self.y_scale_ + self.y_mean_
        if not return_std:
            return m
        sd = np.sqrt(var.cpu().numpy().astype(np.float64) * self.y_scale_**2 + self.noise_**2)
        return m, sd

    def score_nlpd(self, X, y):
        """Mean negative log predictive density of ``y`` under the BMA mixture
        ``sum_s w_s N(f_s(x), noise^2)`` (nats, ``y``'s units; lower is better)."""
        out, w, _, _ = self._moments(X)
        y = np.asarray(validate_data(self, X, y, reset=False, dtype=np.float64)[1])
        out = out.double().cpu() * self.y_scale_ + self.y_mean_
        yt = torch.tensor(y, dtype=torch.float64)
        s = self.noise_
        ll = -0.5 * ((yt - out) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
        return float(-torch.logsumexp(torch.log(w.double().cpu())[:, None] + ll, 0).mean())

    def sample_predictive(self, X, n_samples=1, random_state=None):
        """``(n_samples, n)`` draws of ``y``: a particle by weight, then the noise."""
        out, _, _, _ = self._moments(X)
        idx, rng = self._draw_particles(int(n_samples), random_state)
        f = out.double().cpu().numpy()[idx] * self.y_scale_ + self.y_mean_
        return f + self.noise_ * rng.normal(size=f.shape)

    def to_pyro(self, X=None):
        """``to_pyro(X)``: the BMA predictive of ``y`` at ``X`` as a Pyro distribution
        (``MixtureSameFamily`` over the particles, ``batch_shape == (n,)``, ``y``'s units).
        ``to_pyro()``: a :class:`~probest.bnn._pyro.PartialBayesianPyroModule` — the block's
        posterior as ``Empirical`` (``module.posterior``) plus the net, in standardised
        units; all weights frozen."""
        import pyro.distributions as dist

        check_is_fitted(self)
        if X is None:
            from probest.bnn._pyro import PartialBayesianPyroModule

            named = dict(self.module_.named_parameters())
            sd = math.log(self.noise_ / self.y_scale_)
            return PartialBayesianPyroModule(
                self.module_, self.stochastic_names_, [named[n].shape for n in self.stochastic_names_],
                self._empirical(), lambda out: dist.Normal(out[..., 0], math.exp(sd)))
        out, w, _, _ = self._moments(X)
        loc = out.double().cpu().T * self.y_scale_ + self.y_mean_  # (n, S)
        mix = dist.Categorical(probs=w.double().cpu().expand(loc.shape[0], -1))
        return dist.MixtureSameFamily(mix, dist.Normal(loc, torch.full_like(loc, self.noise_)))
