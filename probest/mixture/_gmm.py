"""GaussianMixture: a torch drop-in for :class:`sklearn.mixture.GaussianMixture`."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from sklearn.base import DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from probest._persist import Fitted
from probest._validation import Interval, Options, check_n_samples, check_scale
from probest.base import EstimatorSpec, TorchEstimator
from probest.mixture import _base
from probest.mixture._em import ChunkedData, _data_sum, initial_params, run_em
from probest.mixture._stats import COVARIANCE_TYPES, n_parameters

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


class GaussianMixture(DensityMixin, TorchEstimator):
    """Gaussian mixture fitted by EM in torch; a drop-in for scikit-learn's.

    Same parameters, attributes and methods as :class:`sklearn.mixture.GaussianMixture`,
    plus ``device`` ("auto" picks CUDA), ``dtype`` ("float64" default, "float32" for speed
    on GPUs) and ``batch_size``: with it the data stay on the host and sufficient
    statistics are accumulated over chunks of ``batch_size`` rows, so the device holds one
    chunk at a time (k-means initialisation then uses a subsample of at most
    ``max(batch_size, 10_000)`` rows).

    The E-step produces additive sufficient statistics and the M-step reads their sum
    (:mod:`probest.mixture._stats`); :class:`FederatedGaussianMixture` runs the very same
    code with one statistic per client.  ``init_params="k-means++"`` and
    ``"random_from_data"`` start from a nearest-centre assignment to the chosen centres
    (scikit-learn starts from the single chosen points).  Components whose responsibility
    mass vanishes keep their previous mean/covariance and a ~0 weight, with a warning.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Covariance structure, as in scikit-learn.
    tol : float, default=1e-3
        Stop when the mean log-likelihood improves by less than this.
    reg_covar : float, default=1e-6
        Added to the covariance diagonals (keeps them positive definite).
    max_iter : int, default=100
        EM iterations per initialisation.
    n_init : int, default=1
        Number of initialisations; the best lower bound is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default="kmeans"
        How the responsibilities are initialised.
    weights_init : array-like of shape (n_components,), optional
        User-provided initial weights.
    means_init : array-like of shape (n_components, n_features), optional
        User-provided initial means.
    precisions_init : array-like, optional
        User-provided initial precisions (shape depends on ``covariance_type``).
    random_state : None, int or numpy RandomState/Generator, default=None
        Seeds the initialisation (global RNG states are never touched).
    warm_start : bool, default=False
        Start from the previous fit's parameters.
    verbose : int, default=0
        0 silent, 1 a progress bar with the lower bound, 2 also one line per iteration.
    verbose_interval : int, default=10
        Iterations between printed lines with ``verbose=2``.
    device : {"auto", "cpu", "cuda", "cuda:N"}, default="auto"
        Torch device ("auto" picks CUDA when present).
    dtype : {"float64", "float32"}, default="float64"
        Floating dtype of the fit.
    batch_size : int, optional
        Stream the data to the device in chunks of this many rows (None: all at once).

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Mixing weights.
    means_ : ndarray of shape (n_components, n_features)
        Component means.
    covariances_ : ndarray
        Component covariances (scikit-learn shapes for each ``covariance_type``).
    precisions_ : ndarray
        Inverses of ``covariances_``.
    precisions_cholesky_ : ndarray
        Cholesky factors of ``precisions_``.
    converged_ : bool
        Whether the best initialisation converged.
    n_iter_ : int
        EM iterations of the best initialisation.
    lower_bound_ : float
        Mean log-likelihood per sample of the best initialisation.
    lower_bounds_ : list of float
        Its per-iteration lower bounds.
    history_ : list of dict
        One record per EM iteration over all initialisations (``objective``, ``init``, ``time``).
    n_features_in_ : int
        Number of features seen in ``fit``.
    device_ : torch.device
        Device of the fit.
    dtype_ : torch.dtype
        Dtype of the fit.

    Notes
    -----
    Identical rows and constant columns are fitted as scikit-learn does: the covariance is
    ``reg_covar`` there (the regularised MLE exists).  Entries so large that squared
    distances overflow ``dtype`` raise ``ValueError`` at ``fit``; rows whose log density is
    not finite (e.g. 1e300) raise ``ValueError`` naming them in ``score_samples``,
    ``predict_proba`` and ``predict``.

    Examples
    --------
    >>> import numpy as np
    >>> from probest.mixture import GaussianMixture
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(-3, 1, size=(50, 2)), rng.normal(3, 1, size=(50, 2))])
    >>> gmm = GaussianMixture(2, device="cpu", random_state=0).fit(X)
    >>> gmm.means_[np.argsort(gmm.means_[:, 0])].round(0)
    array([[-3., -3.],
           [ 3.,  3.]])
    >>> gmm.weights_.round(2), gmm.converged_
    (array([0.5, 0.5]), True)
    >>> gmm.to_pyro().event_shape  # a Pyro MixtureSameFamily over one observation
    torch.Size([2])
    """

    _spec = EstimatorSpec(outputs=("predict", "predict_proba", "score_samples"))
    #: ``lower_bound_`` is -inf when no EM step ran (``max_iter=0``), exactly as scikit-learn's;
    #: the fitted parameters themselves are still checked.
    _nonfinite_ok = ("lower_bound_",)
    _constraints = {
        "n_components": (Interval(int, 1, None),),
        "covariance_type": (Options(COVARIANCE_TYPES),),
        "tol": (Interval(float, 0.0, None),),
        "reg_covar": (Interval(float, 0.0, None),),
        "max_iter": (Interval(int, 0, None),),
        "n_init": (Interval(int, 1, None),),
        "init_params": (Options(INIT_PARAMS),),
        "weights_init": ("array-like", None),
        "means_init": ("array-like", None),
        "precisions_init": ("array-like", None),
        "warm_start": ("boolean",),
        "verbose_interval": (Interval(int, 1, None),),
        "batch_size": (Interval(int, 1, None), None),
    }

    _fitted_attributes = (
        Fitted("weights_", ndim=1, shape=("n_components",), finite=True),
        Fitted("means_", ndim=2, shape=("n_components", "n_features_in_"), finite=True),
        Fitted("covariances_", finite=True), Fitted("precisions_", finite=True),
        Fitted("precisions_cholesky_", finite=True),
        "converged_", "n_iter_", "lower_bound_", "lower_bounds_")

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        device="auto",
        dtype="float64",
        batch_size=None,
    ):
        self._store_params(locals())

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None):
        """Estimate the parameters with EM (best of ``n_init`` starts)."""
        self._validate_params()
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
        n, d = X.shape
        if n < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = "
                f"{self.n_components}, n_samples = {n}; reduce n_components or add data."
            )
        K, ct = self.n_components, self.covariance_type
        warm = bool(self.warm_start) and hasattr(self, "converged_")
        n_init = 1 if warm else self.n_init
        width = K * d if ct == "full" else K
        with self._fit_context() as ctx:
            check_scale(X, owner=type(self).__name__, dtype=self.dtype_)
            given = _base.user_params(self, d, self.device_, self.dtype_)
            data = ChunkedData(X, device=self.device_, dtype=self.dtype_,
                               batch_size=self.batch_size, width=width)
            init_rows = None if self.batch_size is None else max(self.batch_size, 10_000)
            best = None
            with self._progress(n_init * max(self.max_iter, 1), "EM") as prog:
                for init in range(n_init):
                    if warm:
                        params = _base.params_from_numpy(self)
                        weights = torch.tensor(self.weights_, device=self.device_,
                                               dtype=self.dtype_)
                        tot, cnt = _data_sum([data])
                        ref = tot / cnt
                    else:
                        params, weights, ref, _ = initial_params(
                            [data], K, ct, self.reg_covar, self.init_params,
                            ctx.seed + init, ctx.generator, init_rows)
                        params, weights = _base.apply_user_params(params, weights, given)
                    res = run_em(
                        [data], params, [torch.log(weights)], ref,
                        reg_covar=self.reg_covar, max_iter=self.max_iter, tol=self.tol,
                        personalize=False, progress=prog,
                        log_extra=lambda _it, init=init: {"init": init},
                    )
                    if best is None or res["lower_bound"] > best["lower_bound"]:
                        best = res
                        if self.max_iter == 0:
                            best["weights"] = weights
            _base.params_to_numpy(self, best["params"], best["weights"])
        self.converged_ = bool(best["converged"])
        self.n_iter_ = int(best["n_iter"])
        self.lower_bound_ = float(best["lower_bound"])
        self.lower_bounds_ = list(best["lower_bounds"])
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning, stacklevel=2,
            )
        return self

    def fit_predict(self, X, y=None):
        """Fit, then return the most likely component of each sample."""
        return self.fit(X).predict(X)

    # --------------------------------------------------------------- prediction
    def _weighted_log_prob(self, X, what="score_samples") -> torch.Tensor:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        lw = torch.log(torch.tensor(self.weights_, device=self.device_, dtype=self.dtype_))
        return _base.weighted_log_prob(self, X, lw, what)

    def score_samples(self, X):
        """Log density ``log p(x)`` of each sample (``ValueError`` naming the rows whose
        density is not finite in floating point, e.g. rows of 1e300)."""
        return torch.logsumexp(self._weighted_log_prob(X), 1).cpu().numpy()

    def score(self, X, y=None):
        """Mean log-likelihood per sample."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X):
        """Posterior responsibilities ``p(component | x)``."""
        wlp = self._weighted_log_prob(X, "predict_proba")
        return torch.exp(wlp - torch.logsumexp(wlp, 1, keepdim=True)).cpu().numpy()

    def predict(self, X):
        """Most likely component of each sample."""
        return self._weighted_log_prob(X, "predict").argmax(1).cpu().numpy()

    def sample(self, n_samples=1):
        """Draw ``(X, y)``: samples and their components, grouped by component.
        ``n_samples`` must be an int >= 1 (``ValueError`` otherwise, as scikit-learn)."""
        check_is_fitted(self)
        return _base.sample_mixture(self, check_n_samples(n_samples), self.weights_)

    def _n_parameters(self) -> int:
        return n_parameters(self.n_components, self.means_.shape[1], self.covariance_type)

    def bic(self, X):
        """Bayesian information criterion (lower is better)."""
        X = np.asarray(X)
        return -2 * self.score(X) * X.shape[0] + self._n_parameters() * math.log(X.shape[0])

    def aic(self, X):
        """Akaike information criterion (lower is better)."""
        X = np.asarray(X)
        return -2 * self.score(X) * X.shape[0] + 2 * self._n_parameters()

    # ------------------------------------------------------------------- pyro
    def to_pyro(self):
        """The fitted mixture as ``pyro.distributions.MixtureSameFamily``.

        ``event_shape == (n_features,)``; usable as ``pyro.sample("x", gmm.to_pyro(),
        obs=x)`` inside a ``pyro.plate``.  The parameters are constant tensors (frozen);
        to learn them further, start ``pyro.param`` sites from ``means_``/``covariances_``.
        """
        check_is_fitted(self)
        params = _base.params_from_numpy(self)
        w = torch.tensor(self.weights_, device=self.device_, dtype=self.dtype_)
        return _base.pyro_mixture(params, w)
