"""GaussianProcessRegressor: exact Gaussian, robust Student-t and Poisson-count GP regression."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from probest.base import EstimatorSpec
from probest.gaussian_process._base import _GP_FITTED, _GPBase
from probest.gaussian_process._guards import check_input_scale, warn_on_bounds
from probest.gaussian_process._likelihoods import make_likelihood
from probest.gaussian_process._targets import standardise_targets

LIKELIHOODS = ("gaussian", "student_t", "poisson")


class GaussianProcessRegressor(RegressorMixin, _GPBase):
    """GP regression with a Gaussian (exact), Student-t or Poisson likelihood.

    The Gaussian likelihood has exact sites, so every inference mode gives the exact
    posterior and every objective equals the exact log marginal likelihood; the noise variance
    is learned with the kernel hyperparameters.  Student-t (``df`` fixed, scale learned) is
    robust to outliers; it is not log-concave, so CVI clips ``g_v <= -1e-8`` and cavities are
    clamped.  Poisson models counts with rate ``exp(f + offset)``, ``offset = log(mean(y))``.

    Duplicate inputs with a vanishing Gaussian noise are jittered with a warning.

    Parameters
    ----------
    kernel : None, str or gpytorch.kernels.Kernel, default=None
        None (Matérn-5/2 with an output scale), a name ("matern12", "matern32", "matern52",
        "rbf", optionally with "_ard") or a GPyTorch kernel (a template: it is copied, never
        trained in place).
    likelihood : {"gaussian", "student_t", "poisson"}, default="gaussian"
        Observation model.
    inference : {"hybrid", "vi", "ep", "laplace"}, default="hybrid"
        As :class:`GaussianProcessClassifier` (all exact for the Gaussian likelihood).
    df : float, default=4.0
        Student-t degrees of freedom (fixed).
    noise_init : float, default=0.1
        Initial noise variance / Student-t scale, as a fraction of ``var(y)`` / ``std(y)``.
    inducing_points : array-like of shape (n_inducing, n_features), optional
        Given points make the model sparse.
    n_inducing : int, optional
        Forces a sparse model with that many k-means inducing points.
    sparse_threshold : int or None, default=2000
        Above this many samples the model becomes sparse automatically (256 k-means
        inducing points).  None: never automatic.
    max_iter : int, default=50
        Outer iterations (E-step + M-step), or L-BFGS iterations for Laplace.
    e_steps : int, default=3
        CVI/EP steps per E-step.
    m_steps : int, default=3
        L-BFGS iterations per M-step.
    cvi_lr : float, default=0.5
        CVI natural-gradient step ``b``.
    tol : float, default=1e-4
        Relative change of the objective that counts as converged.
    random_state : None, int or numpy RandomState/Generator, default=None
        Seeds the k-means inducing points.
    verbose : int, default=0
        0 silent, 1 a progress bar with the objective, 2 also one line per iteration.
    device : {"cpu", "cuda", "cuda:N", "auto"}, default="cpu"
        Torch device of the fit.
    dtype : {"float64", "float32"}, default="float64"
        Floating dtype of the fit.
    normalize_y : bool, default=True
        Fit the standardised targets ``z = (y - y_mean_) / y_std_`` and map every output
        back (predictive mean and std, ``log_predictive_density`` with its Jacobian
        ``-log(y_std_)``, ``to_pyro``, ``sample_y``, ``latent_mean_and_variance``), so offsets
        and scales of ``y`` never matter; constant ``y`` gets ``y_std_ = 1`` and is predicted
        exactly.  Gaussian and Student-t targets are standardised (location-scale families);
        Poisson counts never are (``y_mean_ = 0``, ``y_std_ = 1``; their level is the
        likelihood's ``offset``).  ``kernel_``, ``theta_``, ``hyperparameters_``
        (``outputscale``, ``noise``, ``scale``), ``history_`` and the log marginal likelihood
        (``log_marginal_likelihood_value_``, ``log_marginal_likelihood``) are those of ``z``:
        ``log p(y) = log p(z) - n log(y_std_)``.  A hyperparameter that ends on its bound
        (``[1e-5, 1e5]``) raises a ``ConvergenceWarning``.

    Attributes
    ----------
    kernel_ : gpytorch.kernels.Kernel
        The fitted kernel.
    hyperparameters_ : dict
        Fitted hyperparameter values by name (with ``noise`` or ``scale``).
    theta_ : ndarray
        The flat (log-)hyperparameter vector optimised.
    theta_names_ : list of str
        Names of the entries of ``theta_``.
    sites_ : dict
        The site parameters ``{"l1", "l2"}`` of the posterior.
    log_marginal_likelihood_value_ : float
        The objective named by ``objective_`` at the optimum.
    objective_ : str
        Which objective: ``"laplace"``, ``"ep"`` or ``"elbo"``.
    n_iter_ : int
        Outer iterations run.
    converged_ : bool
        Whether ``tol`` was reached.
    stopped_by_ : str
        ``"tolerance"``, ``"ep_energy_decrease"`` (hybrid rollback) or ``"max_iter"``.
    sparse_ : bool
        Whether the model uses inducing points.
    inducing_points_ : ndarray or None
        The inducing points.
    gps_ : list
        The fitted latent GPs.
    history_ : list of dict
        One dict per outer iteration (``objective``, ``elbo``, ``ep_energy``; Laplace logs its
        evidence per L-BFGS evaluation).
    y_mean_, y_std_ : float
        The target normalisation (``0`` and ``1`` without it, or for Poisson counts).
    n_features_in_ : int
        Number of features seen in ``fit``.

    Examples
    --------
    >>> import numpy as np
    >>> from probest.gaussian_process import GaussianProcessRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-3, 3, size=(40, 1))
    >>> y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=40)
    >>> reg = GaussianProcessRegressor(random_state=0).fit(X, y)
    >>> sorted(reg.hyperparameters_)
    ['lengthscale', 'noise', 'outputscale']
    >>> mean, std = reg.predict(X[:3], return_std=True)
    >>> mean.shape, std.shape, bool(reg.score(X, y) > 0.9)
    ((3,), (3,), True)
    """
    _spec = EstimatorSpec(outputs=("predict",))
    _constraints = {**_GPBase._constraints, "normalize_y": ("boolean",)}

    _fitted_attributes = _GP_FITTED + ("y_mean_", "y_std_")

    def __init__(self, kernel=None, *, likelihood="gaussian", inference="hybrid", df=4.0,
                 noise_init=0.1, inducing_points=None, n_inducing=None, sparse_threshold=2000,
                 max_iter=50, e_steps=3, m_steps=3, cvi_lr=0.5, tol=1e-4, random_state=None,
                 verbose=0, device="cpu", dtype="float64", normalize_y=True):
        self._store_params(locals())


    def _make_lik(self, y: np.ndarray, var: float):
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood={self.likelihood!r} is not one of {LIKELIHOODS}.")
        if not float(self.noise_init) > 0:
            raise ValueError(f"noise_init={self.noise_init!r} must be positive.")
        if self.likelihood == "gaussian":
            return make_likelihood("gaussian", noise=float(self.noise_init) * max(var, 1e-12))
        if self.likelihood == "student_t":
            if not float(self.df) > 0:
                raise ValueError(f"df={self.df!r} must be positive.")
            return make_likelihood("student_t", df=float(self.df),
                                   scale=float(self.noise_init) * max(math.sqrt(var), 1e-6))
        lik = make_likelihood("poisson")
        lik.check_targets(y)
        lik.offset = math.log(max(float(np.mean(y)), 1e-3))
        return lik

    def fit(self, X, y):
        """Fit the latent GP, its hyperparameters and the likelihood's parameters."""
        self._validate_params()
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        # normalize_y: fit z = (y - y_mean_) / y_std_, whose variance is 1 (0 for constant y:
        # initial scales then come from 1); the identity for Poisson counts (see _targets)
        y, self.y_mean_, self.y_std_ = standardise_targets(y, self.likelihood,
                                                            bool(self.normalize_y))
        var = 1.0 if self.normalize_y and self.likelihood != "poisson" else float(np.var(y))
        lik = self._make_lik(y, var)
        if self.likelihood == "gaussian":
            X = self._jitter_duplicates(X, lik)
        with self._fit_context() as ctx:
            check_input_scale(X, self.dtype_, type(self).__name__)
            Xt = self._tensor(X)
            Z = self._inducing(X, ctx)
            scale = var if self.likelihood != "poisson" else 1.0
            with self._progress(None, f"GPR[{self.likelihood},{self.inference}]") as prog:
                fit = self._new_fit(X, Xt, self._tensor(y), lik, Z, ctx,
                                    outputscale=max(scale, 1e-6))
                fit.fit(prog)
        warn_on_bounds(fit, type(self).__name__)
        self._collect([fit])
        return self

    def _jitter_duplicates(self, X, lik):
        """Duplicate rows with (near-)zero noise make the Gram matrix singular: jitter them."""
        _, first, counts = np.unique(X, axis=0, return_index=True, return_counts=True)
        if np.all(counts == 1) or float(lik.noise.detach()) > 1e-8:
            return X
        warnings.warn("X has duplicate rows and the Gaussian noise is ~0; duplicates were "
                      "jittered by 1e-6 to keep the kernel matrix positive definite.",
                      UserWarning)
        rng = np.random.default_rng(0)
        dup = np.ones(X.shape[0], bool)
        dup[first] = False
        X = X.copy()
        X[dup] += 1e-6 * rng.standard_normal(X[dup].shape)
        return X

    # -- prediction ----------------------------------------------------------------------
    def predict(self, X, return_std: bool = False):
        """Predictive mean (the expected count for Poisson); ``return_std`` adds the
        predictive standard deviation of a new observation."""
        m, v = self._latent(X)
        m, v = m[:, 0], v[:, 0]
        lik = self.gps_[0].lik
        if self.likelihood == "poisson":
            mean = torch.exp(m + lik.offset + 0.5 * v)
            var = mean + torch.expm1(v) * mean**2
        elif self.likelihood == "gaussian":
            mean, var = m, v + lik.noise.detach()
        else:
            s2 = torch.exp(2 * lik.log_params["scale"].detach())
            tail = s2 * self.df / (self.df - 2) if self.df > 2 else torch.tensor(float("inf"))
            mean, var = m, v + tail
        mu, sd = self._y_scale()
        mean = mu + sd * mean.cpu().numpy()
        if return_std:
            return mean, sd * np.sqrt(var.cpu().numpy() if torch.is_tensor(var) else var)
        return mean

    def _y_scale(self) -> tuple[float, float]:
        """``(y_mean_, y_std_)``: outputs are ``y_mean_ + y_std_ * (standardised output)``
        (``(0, 1)`` for Poisson, for ``normalize_y=False`` and for models saved before it)."""
        return float(getattr(self, "y_mean_", 0.0)), float(getattr(self, "y_std_", 1.0))

    def latent_mean_and_variance(self, X):
        """Posterior mean and variance of the latent function at ``X`` on the scale of ``y``
        (``y_mean_ + y_std_ * f``; for Poisson the log-rate without ``offset``)."""
        m, v = super().latent_mean_and_variance(X)
        mu, sd = self._y_scale()
        return mu + sd * m, sd * sd * v

    def to_pyro(self, X=None, latent: bool = False, jitter: float = 1e-8):
        """As :meth:`_GPBase.to_pyro`; with ``normalize_y`` the latent posterior, like the
        predictive, is on the scale of ``y`` (``y_mean_ + y_std_ * f``)."""
        d = super().to_pyro(X, latent=latent, jitter=jitter)
        mu, sd = self._y_scale()
        if not latent or (mu, sd) == (0.0, 1.0):
            return d
        import pyro.distributions as dist

        return dist.MultivariateNormal(mu + sd * d.loc, scale_tril=sd * d.scale_tril)


    def log_predictive_density(self, X, y):
        """``log p(y_i | x_i, data)`` per sample (its negative mean is the NLPD)."""
        check_is_fitted(self)
        m, v = self._latent(X)
        mu, sd = self._y_scale()
        yt = self._tensor((np.asarray(y, dtype=np.float64) - mu) / sd)
        if yt.shape != m[:, 0].shape:
            raise ValueError(f"y has shape {tuple(yt.shape)}, expected ({m.shape[0]},).")
        with torch.no_grad():  # density of y = density of z / y_std_ (location-scale)
            out = self.gps_[0].lik.log_tilted(yt, m[:, 0], v[:, 0]).cpu().numpy()
        return out - math.log(sd) if sd != 1.0 else out

    def _predictive_pyro(self, X):
        """Predictive of ``y`` at ``X`` with ``batch_shape == (n,)``: ``Normal`` for the
        Gaussian likelihood (exact), otherwise a 20-component ``MixtureSameFamily`` of the
        likelihood at the Gauss-Hermite nodes of the latent marginal (the quadrature the
        estimator itself uses for ``log_predictive_density``)."""
        import pyro.distributions as dist

        from probest.gaussian_process._likelihoods import _gh_nodes

        m, v = self._latent(X)
        m, v = m[:, 0], v[:, 0]
        lik = self.gps_[0].lik
        mu, sd = self._y_scale()
        if self.likelihood == "gaussian":
            return dist.Normal(mu + sd * m, sd * torch.sqrt(v + lik.noise.detach()))
        x, lw = _gh_nodes(m.dtype, m.device)
        f = m[:, None] + torch.sqrt(2 * v)[:, None] * x
        mix = dist.Categorical(logits=lw.expand(f.shape))
        if self.likelihood == "poisson":
            comp = dist.Poisson(torch.exp(f + lik.offset))
        else:
            scale = sd * torch.exp(lik.log_params["scale"].detach()).expand(f.shape)
            comp = dist.StudentT(torch.full_like(f, float(self.df)), mu + sd * f, scale)
        return dist.MixtureSameFamily(mix, comp)

    def _likelihood_for_load(self):
        if self.likelihood == "student_t":
            return make_likelihood("student_t", df=float(self.df))
        return make_likelihood(self.likelihood)

    def sample_y(self, X, n_samples: int = 1, random_state=None):
        """Draws of the latent function at ``X`` (shape ``(n, n_samples)``)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        d = self.to_pyro(X, latent=True)
        from probest._torch import draw_seed, seeded

        with seeded(draw_seed(random_state)):
            return d.sample((n_samples,)).T.cpu().numpy()
