"""GaussianMixture: a torch drop-in for :class:`sklearn.mixture.GaussianMixture`."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings

import numpy as np
import torch
from sklearn.base import DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._available_if import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from probest._persist import Fitted
from probest._torch import resolve_dtype
from probest._validation import (
    Interval,
    Options,
    check_n_samples,
    check_params,
    check_sample_weight,
    check_scale,
)
from probest.base import EstimatorSpec, TorchEstimator
from probest.mixture import _base, _xp
from probest.mixture._driver import GMMProgram, run_driver
from probest.mixture._engines import LocalEngine
from probest.mixture._stats import COVARIANCE_TYPES, n_parameters
from probest.mixture._tasks import Client

INIT_PARAMS = ("kmeans", "k-means++", "random", "random_from_data")


class GaussianMixture(DensityMixin, TorchEstimator):
    """Gaussian mixture fitted by EM in torch; a drop-in for scikit-learn's.

    Same parameters, attributes, methods and error messages as
    :class:`sklearn.mixture.GaussianMixture` (its own test suite passes against this class,
    ``tests/mixture/test_sklearn_suite.py``), plus ``device`` ("auto" picks CUDA), ``dtype``
    (None: follow the input, as scikit-learn) and ``batch_size``: with it the data stay on
    the host and sufficient statistics are accumulated over chunks of ``batch_size`` rows,
    so the device holds one chunk at a time (k-means initialisation then uses a subsample
    of at most ``max(batch_size, 10_000)`` rows).  Beyond scikit-learn: ``fit(X,
    sample_weight=)``, :meth:`partial_fit` (stepwise EM over a stream),
    ``missing="marginalize"`` with :meth:`impute`, and :meth:`select` (model selection in
    one batched call).  Under ``sklearn.config_context(array_api_dispatch=True)`` torch
    tensors in give torch tensors out, on their device.

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
    dtype : {"float64", "float32"} or None, default=None
        Floating dtype of the fit; None follows the input (float32 data fit in float32,
        anything else in float64), as scikit-learn.
    batch_size : int, optional
        Stream the data to the device in chunks of this many rows (None: all at once).
    missing : {"raise", "marginalize"}, default="raise"
        NaN entries: "raise" rejects them (scikit-learn's behaviour); "marginalize" runs EM
        over the observed coordinates of each row (exact EM for data missing at random),
        and ``score_samples``/``predict``/``predict_proba`` use the marginal densities.
    learning_offset : float, default=2.0
        ``tau`` of the :meth:`partial_fit` step size ``rho_t = (t + tau) ** -kappa``.
    learning_decay : float, default=0.6
        ``kappa`` in (0.5, 1] of the :meth:`partial_fit` step size.

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
    n_steps_ : int
        Number of :meth:`partial_fit` calls since the stream started (only after
        ``partial_fit``).
    selection_ : dict of lists
        Only on the winner returned by :meth:`select`: one row per candidate
        (``n_components``, ``covariance_type``, ``criterion``, ``score``, ``n_iter``,
        ``converged``).

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
    #: the federated subclass has clients: partial_fit / impute / select are pooled-only
    _federated = False
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
        "missing": (Options(("raise", "marginalize")),),
        "learning_offset": (Interval(float, 0.0, None, closed="neither"),),
        "learning_decay": (Interval(float, 0.5, 1.0, closed="right"),),
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
        dtype=None,
        batch_size=None,
        missing="raise",
        learning_offset=2.0,
        learning_decay=0.6,
    ):
        self._store_params(locals())

    def _validate_params(self) -> None:
        """scikit-learn's checks and wording (``InvalidParameterError``, a ValueError)."""
        check_params(self, self._constraints, style="sklearn")

    # ------------------------------------------------------------------ fitting
    def _check_X(self, X, reset: bool, min_samples: int = 1):
        """Validated host array (NaN allowed with ``missing="marginalize"``) and the
        device of a torch input in array API mode (else None)."""
        X, device = _xp.split_input(X)
        nan_ok = getattr(self, "missing", "raise") == "marginalize"
        X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32],
                          ensure_min_samples=min_samples,
                          ensure_all_finite="allow-nan" if nan_ok else True)
        return X, device

    def _resolve(self, X, device) -> None:
        """``dtype_`` follows the input when ``dtype`` is None; a tensor input's device wins."""
        if getattr(self, "dtype", None) is None:
            self.dtype_ = resolve_dtype(X.dtype if X.dtype == np.float32 else np.float64)
        if device is not None:
            self.device_ = device

    @contextlib.contextmanager
    def _fit_context(self):
        """The house fit context, with ``ctx.seed`` (the initialisation seed) equal to an
        int ``random_state`` itself, so the first k-means start is scikit-learn's
        ``KMeans(random_state=random_state)``; torch is still seeded from the drawn seed.
        Subclasses (FederatedGaussianMixture) start from the same seed."""
        with super()._fit_context() as ctx:
            rs = getattr(self, "random_state", None)
            if isinstance(rs, (int, np.integer)) and not isinstance(rs, bool):
                ctx = dataclasses.replace(ctx, seed=int(rs))
            yield ctx

    def _init_seed(self, ctx) -> int:
        """The k-means seed of the first start (see :meth:`_fit_context`)."""
        return ctx.seed

    def fit(self, X, y=None, sample_weight=None):
        """Estimate the parameters with EM (best of ``n_init`` starts).

        ``sample_weight`` (non-negative, not all zero): integer weights are the same fit as
        repeated rows; zero weights drop rows.
        """
        self._validate_params()
        X, device = self._check_X(X, reset=True, min_samples=2)
        n, d = X.shape
        w = check_sample_weight(sample_weight, n)
        if n < self.n_components:
            raise ValueError(
                f"Expected n_samples >= n_components but got n_components = "
                f"{self.n_components}, n_samples = {n}; reduce n_components or add data."
            )
        warm = bool(self.warm_start) and hasattr(self, "converged_")
        K, ct = self.n_components, self.covariance_type
        self.__dict__.pop("_stream_", None)
        with self._fit_context() as ctx:
            self._resolve(X, device)
            check_scale(X, owner=type(self).__name__, dtype=self.dtype_)
            # the one-client case of federated EM: the same driver, program and tasks
            engine = LocalEngine([Client(0, X, sample_weight=w, device=self.device_,
                                         dtype=self.dtype_, batch_size=self.batch_size,
                                         width=K * d if ct == "full" else K)])
            program = GMMProgram(
                engine, n_components=K, covariance_type=ct, reg_covar=self.reg_covar,
                init_params=self.init_params, personalize=False, seed=self._init_seed(ctx),
                given=_base.user_params(self, d, self.device_, self.dtype_),
                init_rows=None if self.batch_size is None else max(self.batch_size, 10_000),
                generator=ctx.generator,
                warm=(_base.params_from_numpy(self), self._tensor(self.weights_), {})
                if warm else None)
            with self._progress((1 if warm else self.n_init) * max(self.max_iter, 1),
                                "EM") as prog:
                best = run_driver(program, n_init=self.n_init, max_iter=self.max_iter,
                                  tol=self.tol, warm=warm,
                                  previous_lower_bound=getattr(self, "lower_bound_", -np.inf),
                                  progress=prog)
            _base.params_to_numpy(self, best["state"]["params"], best["state"]["weights"])
        self.converged_ = bool(best["converged"])
        self.n_iter_ = int(best["n_iter"])
        self.lower_bound_ = float(best["lower_bound"])
        self.lower_bounds_ = list(best["lower_bounds"])
        if device is not None:
            _xp.to_torch_attributes(self, self.device_)
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning, stacklevel=2,
            )
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the most likely component of each sample."""
        fitted = self.fit(X) if sample_weight is None else self.fit(X, sample_weight=sample_weight)
        return fitted.predict(X)

    @available_if(lambda self: not self._federated)
    def partial_fit(self, X, y=None, sample_weight=None):
        """One stepwise-EM step on the chunk ``X`` (online EM over a stream).

        The first call initialises the components from the chunk (as ``fit`` would, or
        from ``*_init``); each call then mixes the chunk's normalised sufficient
        statistics into the running ones with step ``rho_t = (t + learning_offset) **
        -learning_decay`` (``t`` = ``n_steps_``, Cappé & Moulines 2009) and runs the M-step.
        Repeated passes over a data set's chunks approach the batch fit's log-likelihood.
        Works with ``device=`` and ``batch_size`` (the chunk is then streamed in pieces).
        """
        from probest.mixture._online import partial_fit_step

        return partial_fit_step(self, X, sample_weight)

    # --------------------------------------------------------------- prediction
    def _weighted_log_prob(self, X, what="score_samples"):
        check_is_fitted(self)
        Xh, _ = self._check_X(X, reset=False)
        lw = torch.log(torch.as_tensor(_base.host(self.weights_), device=self.device_,
                                       dtype=self.dtype_))
        return _base.weighted_log_prob(self, Xh, lw, what)

    def score_samples(self, X):
        """Log density ``log p(x)`` of each sample (``ValueError`` naming the rows whose
        density is not finite in floating point, e.g. rows of 1e300)."""
        out = torch.logsumexp(self._weighted_log_prob(X), 1)
        return _xp.output(out, _xp.wants_torch(self, X))

    def score(self, X, y=None):
        """Mean log-likelihood per sample."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X):
        """Posterior responsibilities ``p(component | x)``."""
        wlp = self._weighted_log_prob(X, "predict_proba")
        out = torch.exp(wlp - torch.logsumexp(wlp, 1, keepdim=True))
        return _xp.output(out, _xp.wants_torch(self, X))

    def predict(self, X):
        """Most likely component of each sample."""
        out = self._weighted_log_prob(X, "predict").argmax(1)
        return _xp.output(out, _xp.wants_torch(self, X))

    @available_if(lambda self: not self._federated)
    def impute(self, X):
        """``X`` with each missing (NaN) entry replaced by its conditional mean
        ``E[x_m | x_o] = sum_k p(k | x_o) E[x_m | x_o, k]`` under the fitted mixture
        (observed entries unchanged).  Needs ``missing="marginalize"``."""
        from probest.mixture._missing import impute_rows

        check_is_fitted(self)
        if self.missing != "marginalize":
            raise ValueError("impute needs missing='marginalize' (NaN entries are rejected "
                             "with missing='raise'); set it and refit.")
        Xh, _ = self._check_X(X, reset=False)
        Xt = torch.as_tensor(Xh, device=self.device_, dtype=self.dtype_)
        lw = torch.log(torch.as_tensor(_base.host(self.weights_), device=self.device_,
                                       dtype=self.dtype_))
        out = impute_rows(Xt, _base.params_from_numpy(self), lw)
        return _xp.output(out, _xp.wants_torch(self, X))

    def sample(self, n_samples=1):
        """Draw ``(X, y)``: samples and their components, grouped by component.
        ``n_samples`` must be an int >= 1 (``ValueError`` otherwise, as scikit-learn)."""
        check_is_fitted(self)
        Xs, y = _base.sample_mixture(self, check_n_samples(n_samples), self.weights_)
        if _xp.wants_torch(self):
            return (torch.as_tensor(Xs, device=self.device_), torch.as_tensor(y,
                                                                              device=self.device_))
        return Xs, y

    def _n_parameters(self) -> int:
        return n_parameters(self.n_components, self.means_.shape[1], self.covariance_type)

    def bic(self, X):
        """Bayesian information criterion (lower is better)."""
        n = X.shape[0] if hasattr(X, "shape") else len(X)
        return float(-2 * self.score(X) * n + self._n_parameters() * math.log(n))

    def aic(self, X):
        """Akaike information criterion (lower is better)."""
        n = X.shape[0] if hasattr(X, "shape") else len(X)
        return float(-2 * self.score(X) * n + 2 * self._n_parameters())

    # ------------------------------------------------------------- selection
    @classmethod
    def select(cls, X, n_components=range(1, 7), covariance_type=("full",), *,
               criterion="bic", validation_fraction=0.2, sample_weight=None, **params):
        """Fit every ``(n_components, covariance_type)`` candidate in one batched EM and
        return the winner (fitted), with the table of all candidates as ``selection_``.

        ``criterion``: "bic" or "aic" (lower wins) on the training data, or "heldout"
        (the mean log-likelihood of a random ``validation_fraction`` of the rows, higher
        wins; the winner is then refitted on all rows).  Candidates with the same
        ``n_components`` share one k-means initialisation, and the E-steps of all
        candidates run as one set of matrix products, so the call costs less than the
        loop of separate fits it replaces (same results: same starts, same EM).
        ``params`` are passed to every candidate (``random_state``, ``tol``, ...).
        """
        from probest.mixture._select import select

        return select(cls, X, n_components, covariance_type, criterion=criterion,
                      validation_fraction=validation_fraction, sample_weight=sample_weight,
                      **params)

    def plot_selection(self, ax=None):
        """Plot the criterion of every candidate of :meth:`select` against
        ``n_components``, one line per covariance type; returns the matplotlib axes."""
        from probest.mixture._select import plot_selection

        return plot_selection(self, ax)

    # ------------------------------------------------------------------- pyro
    def to_pyro(self):
        """The fitted mixture as ``pyro.distributions.MixtureSameFamily``.

        ``event_shape == (n_features,)``; usable as ``pyro.sample("x", gmm.to_pyro(),
        obs=x)`` inside a ``pyro.plate``.  The parameters are constant tensors (frozen);
        to learn them further, start ``pyro.param`` sites from ``means_``/``covariances_``.
        """
        check_is_fitted(self)
        params = _base.params_from_numpy(self)
        w = torch.as_tensor(_base.host(self.weights_), device=self.device_, dtype=self.dtype_)
        return _base.pyro_mixture(params, w)
